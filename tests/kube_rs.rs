//! kube-rs 5 against `phoenix apiserver`, unmodified: watchers see every change in order
//! across watch restarts (resuming from bookmarks) and across a server restart, a
//! kube-runtime Controller reconciles and its Recorder's events reach `kubectl get events`,
//! and two contenders elect one leader through a Lease (kube-lease-manager). Each but the
//! restart also runs against kube-apiserver (tests/k8s), which must agree.

#[path = "k8s/cluster.rs"]
mod cluster;
mod support;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use phoenix_crds::LxcGuest;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn counter(name: &str, n: u32, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("n".to_string(), n.to_string())])),
        ..Default::default()
    }
}

async fn set_counter(api: &Api<ConfigMap>, name: &str, n: u32, labels: &[(&str, &str)]) {
    let patch = Patch::Apply(counter(name, n, labels));
    api.patch(name, &PatchParams::apply("writer").force(), &patch)
        .await
        .expect("write acknowledged");
}

/// Collects the counter values a watcher delivers until `last` arrives.
fn spawn_watcher(
    api: Api<ConfigMap>,
    config: watcher::Config,
    last: u32,
) -> tokio::task::JoinHandle<Vec<u32>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut stream = watcher(api, config)
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(item) = stream.next().await {
            let Ok(cm) = item else { continue };
            let n: u32 = cm
                .data
                .as_ref()
                .and_then(|d| d.get("n"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if seen.last() != Some(&n) {
                seen.push(n);
            }
            if n == last {
                break;
            }
        }
        seen
    })
}

#[tokio::test]
async fn watcher_sees_every_change_across_watch_restarts_from_bookmarks() {
    let server = support::ApiServer::start();
    every_change_seen(support::client(&server).await).await;
}

#[tokio::test]
async fn watcher_sees_every_change_on_kube_apiserver_too() {
    let cluster = cluster::RealCluster::start().await;
    every_change_seen(cluster.client().await).await;
}

async fn every_change_seen(client: Client) {
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    set_counter(&api, "counter", 0, &[("watch", "me")]).await;
    // One-second watches: the stream is closed (after a bookmark) many times while we
    // write; changes to the unlabelled `noise` object move the revision on without the
    // watcher seeing them, so each resume starts from a bookmark's revision.
    let watch = spawn_watcher(
        api.clone(),
        watcher::Config::default().labels("watch=me").timeout(1),
        40,
    );
    for n in 1..=40 {
        set_counter(&api, "counter", n, &[("watch", "me")]).await;
        set_counter(&api, "noise", n, &[]).await;
        // Pacing, so that the writes span several watch timeouts.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = tokio::time::timeout(Duration::from_secs(30), watch)
        .await
        .expect("watcher finishes")
        .unwrap();
    let start = seen.first().copied().unwrap_or(0);
    assert_eq!(
        seen,
        (start..=40).collect::<Vec<_>>(),
        "every change, in order, no gap"
    );
}

#[tokio::test]
async fn watcher_resumes_across_a_server_restart() {
    let server = support::ApiServer::start();
    let url = server.url();
    let port = url.rsplit(':').next().unwrap().to_owned();
    let api: Api<ConfigMap> = Api::namespaced(support::client(&server).await, "default");
    set_counter(&api, "counter", 0, &[]).await;
    let watch = spawn_watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=counter"),
        20,
    );
    for n in 1..=10 {
        set_counter(&api, "counter", n, &[]).await;
    }
    let temp = server.kill();
    let dir = temp.as_ref().unwrap().path().to_owned();
    let restarted = support::ApiServer::start_in_at(&dir, &format!("127.0.0.1:{port}"));
    for n in 11..=20 {
        set_counter(&api, "counter", n, &[]).await;
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), watch)
        .await
        .expect("watcher finishes")
        .unwrap();
    assert_eq!(*seen.last().unwrap(), 20);
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap and no reordering: {seen:?}"
    );
    drop(restarted);
}

#[derive(Clone)]
struct Ctx {
    client: Client,
    recorder: Recorder,
}

async fn reconcile(guest: Arc<LxcGuest>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let reference = guest.object_ref(&());
    let event = Event {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("seen by the kube-rs test controller".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    ctx.recorder.publish(&event, &reference).await?;
    let api: Api<LxcGuest> = Api::namespaced(
        ctx.client.clone(),
        guest.metadata.namespace.as_deref().unwrap(),
    );
    let status = serde_json::json!({"apiVersion": "phoenix.thinkheads.ai/v1alpha1", "kind": "LxcGuest",
                                    "status": {"state": "running", "observedGeneration": guest.metadata.generation}});
    api.patch_status(
        &guest.metadata.name.clone().unwrap(),
        &PatchParams::apply("test-controller").force(),
        &Patch::Apply(status),
    )
    .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<LxcGuest>, _: &kube::Error, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

#[tokio::test]
async fn a_controller_reconciles_and_its_events_show_in_kubectl() {
    let server = support::ApiServer::start();
    reconciled_with_events(support::client(&server).await, &server.kubeconfig).await;
}

#[tokio::test]
async fn a_controller_reconciles_on_kube_apiserver_too() {
    let cluster = cluster::RealCluster::start().await;
    reconciled_with_events(cluster.client().await, &cluster.kubeconfig).await;
}

async fn reconciled_with_events(client: Client, kubeconfig: &std::path::Path) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = support::lxc_crd();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("CRD created");
    let established = kube::runtime::wait::conditions::is_crd_established();
    let name = crd.metadata.name.as_deref().unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        kube::runtime::wait::await_condition(crds, name, established),
    )
    .await
    .expect("CRD established in time")
    .expect("watch works");
    let guest: LxcGuest = support::example("lxc-801.yaml");
    let api: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &guest)
        .await
        .expect("guest created");

    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "phoenix-test".into(),
                instance: Some("test-1".into()),
            },
        ),
    });
    let controller = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    let running = |g: Option<&LxcGuest>| {
        g.and_then(|g| g.status.as_ref())
            .and_then(|s| s.guest.state.as_deref())
            == Some("running")
    };
    tokio::time::timeout(
        Duration::from_secs(30),
        kube::runtime::wait::await_condition(api.clone(), "granite-embedding", running),
    )
    .await
    .expect("reconciled in time")
    .expect("watch works");
    controller.abort();

    let out = std::process::Command::new("kubectl")
        .args(["get", "events", "-o", "json"])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    let events: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("kubectl prints JSON");
    let ours = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "Reconciled")
        .expect("the Recorder's event");
    assert_eq!(ours["involvedObject"]["name"], "granite-embedding");
    assert_eq!(ours["message"], "seen by the kube-rs test controller");
    let described = std::process::Command::new("kubectl")
        .args(["describe", "lxc", "granite-embedding"])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&described.stdout).contains("seen by the kube-rs test controller")
    );
}

#[tokio::test]
async fn two_contenders_elect_one_leader_through_a_lease() {
    let server = support::ApiServer::start();
    one_leader(support::client(&server).await).await;
}

#[tokio::test]
async fn two_contenders_elect_one_leader_on_kube_apiserver_too() {
    let cluster = cluster::RealCluster::start().await;
    one_leader(cluster.client().await).await;
}

async fn one_leader(client: Client) {
    let manager = |identity: &str| {
        kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "phoenix-leader")
            .with_namespace("default")
            .with_identity(identity)
            .with_duration(3)
            .with_grace(1)
            .build()
    };
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "default");
    let (mut a, task_a) = manager("a").await.unwrap().watch().await;
    let (mut b, task_b) = manager("b").await.unwrap().watch().await;
    let mut first = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while first.is_none() {
        tokio::select! {
            _ = a.changed() => {}
            _ = b.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {
                let lease = leases.get("phoenix-leader").await.map(|l| serde_json::to_string(&l).unwrap());
                panic!("nobody became leader; the lease: {lease:?}")
            }
        }
        let (la, lb) = (*a.borrow(), *b.borrow());
        assert!(!(la && lb), "both contenders hold the lease");
        first = if la {
            Some("a")
        } else if lb {
            Some("b")
        } else {
            None
        };
    }
    let lease = leases.get("phoenix-leader").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), first);
    // The leader steps down: closing its channel ends its task, and the lease is released
    // (or expires); the other contender takes over.
    let (leader, leader_task, mut other, other_task) = if first == Some("a") {
        (a, task_a, b, task_b)
    } else {
        (b, task_b, a, task_a)
    };
    drop(leader);
    let _ = tokio::time::timeout(Duration::from_secs(10), leader_task).await;
    let took_over = tokio::time::timeout(Duration::from_secs(30), async {
        while !*other.borrow() {
            other.changed().await.unwrap();
        }
    })
    .await;
    assert!(
        took_over.is_ok(),
        "the second contender takes over after the leader is gone"
    );
    other_task.abort();
}
