//! The conventions every controller keeps: status computed whole and written at most once
//! per pass, by server-side apply under the controller's own field manager
//! (`phoenix-<kind>`), and only when it changed; `observedGeneration`, `Ready`,
//! `Reconciling` and `Stalled` as kstatus and `kubectl wait` read them; a guest waiting for
//! a slot of its node's task budget says `Queued` and is woken when one frees, rather
//! than holding its reconcile; an event repeated is a count on the first one, with its
//! note as it was said.

mod support;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use phoenix_crds::LxcGuest;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::ApiServer;

const RECONCILES: &str = "phoenix_reconciles_total{kind=\"LxcGuest\"}";

/// Every status the server stored for each LxcGuest, in order, from now on.
fn record_statuses(api: Api<LxcGuest>) -> Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>> {
    let seen: Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(guest)) = events.next().await {
            let status = serde_json::to_value(&guest.status).unwrap();
            let mut seen = record.lock().unwrap();
            let history = seen.entry(guest.metadata.name.unwrap()).or_default();
            if history.last() != Some(&status) {
                history.push(status);
            }
        }
    });
    seen
}

fn kubectl_wait(server: &ApiServer, args: &[&str]) {
    let mut all = vec!["wait", "--timeout=60s"];
    all.extend_from_slice(args);
    support::kubectl(server, &all);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_is_applied_once_per_pass_by_its_controller_and_queued_guests_are_woken() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(
        dir.path(),
        &["--task-duration", "default=0.5", "--resync-seconds", "1"],
    );
    support::homelab_cluster(&server).await;
    // One task at a time on the node: two of three new guests must queue for it.
    support::patch_homelab(
        &server,
        &serde_json::json!({"spec": {"taskBudgetPerNode": 1}}),
    );
    kubectl_wait(
        &server,
        &[
            "--for=jsonpath={.status.observedGeneration}=2",
            "proxmoxcluster/homelab",
        ],
    );
    kubectl_wait(
        &server,
        &["--for=condition=Ready", "proxmoxcluster/homelab"],
    );
    let client = support::client(&server).await;
    let api: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    let statuses = record_statuses(api.clone());
    let reconciles_before = support::metric(&server, RECONCILES).await;
    for (name, vmid) in [("queue-a", 301), ("queue-b", 302), ("queue-c", 303)] {
        support::kubectl_apply(&server, &support::guest_yaml(name, vmid, ""));
    }
    support::wait_for(&api, "3 guests Ready", Duration::from_secs(120), |gs| {
        gs.len() == 3
            && gs
                .iter()
                .all(|g| support::is_ready(&g.status.clone().unwrap_or_default().common.conditions))
    })
    .await;
    let passes = support::metric(&server, RECONCILES).await - reconciles_before;

    // At most one status write per pass; and a guest in line said so.
    let history = statuses.lock().unwrap().clone();
    let writes: usize = history.values().map(|h| h.len() - 1).sum();
    assert!(
        writes as f64 <= passes,
        "{writes} status writes in {passes} passes"
    );
    let reasons: Vec<String> = history
        .values()
        .flatten()
        .flat_map(|s| s["conditions"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["type"] == "Ready")
        .map(|c| c["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(reasons.iter().any(|r| r == "Queued"), "{reasons:?}");
    let silent: Vec<&serde_json::Value> = history
        .values()
        .flatten()
        .filter(|s| {
            let conditions = s["conditions"].as_array().cloned().unwrap_or_default();
            let is = |t: &str, v: &str| {
                conditions
                    .iter()
                    .any(|c| c["type"] == t && c["status"] == v)
            };
            is("Ready", "False") && !is("Reconciling", "True") && !is("Stalled", "True")
        })
        .collect();
    assert!(
        silent.is_empty(),
        "not Ready, yet neither Reconciling nor Stalled: {silent:#?}"
    );

    // The status belongs to the controller's field manager, by apply, and to no one else.
    for guest in api.list(&Default::default()).await.unwrap() {
        let owners: Vec<(String, String)> = guest
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.subresource.as_deref() == Some("status"))
            .map(|m| {
                (
                    m.manager.unwrap_or_default(),
                    m.operation.unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            owners,
            vec![("phoenix-lxcguest".to_owned(), "Apply".to_owned())],
            "{:?}",
            guest.metadata.name
        );
    }

    // Converged: passes go on (resync every second) and write nothing.
    let versions = |gs: Vec<LxcGuest>| -> Vec<Option<String>> {
        gs.into_iter()
            .map(|g| g.metadata.resource_version)
            .collect()
    };
    let before = versions(api.list(&Default::default()).await.unwrap().items);
    let target = support::metric(&server, RECONCILES).await + 9.0;
    while support::metric(&server, RECONCILES).await < target {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = versions(api.list(&Default::default()).await.unwrap().items);
    assert_eq!(before, after, "no status write while nothing changes");

    // kstatus: `kubectl wait` on the generation the controller acted on, and on Ready.
    kubectl_wait(&server, &["--for=condition=Ready", "lxcguests", "--all"]);
    kubectl_wait(
        &server,
        &[
            "--for=jsonpath={.status.observedGeneration}=1",
            "lxcguest/queue-a",
        ],
    );
    support::kubectl(
        &server,
        &[
            "patch",
            "lxcguest",
            "queue-a",
            "--type=merge",
            "-p",
            r#"{"spec":{"memory":768}}"#,
        ],
    );
    kubectl_wait(
        &server,
        &[
            "--for=jsonpath={.status.observedGeneration}=2",
            "lxcguest/queue-a",
        ],
    );
    kubectl_wait(&server, &["--for=condition=Ready", "lxcguest/queue-a"]);
    assert_eq!(
        support::SimAdmin::of(&server).guest(301).await["config"]["memory"],
        "768"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spec_only_a_change_can_fix_is_stalled_and_a_fix_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &["--task-duration", "default=0.2"]);
    support::homelab_cluster(&server).await;
    // No such OS template on the node: preflight refuses, nothing is created.
    let bad = support::guest_yaml("stalled", 310, "").replace(
        "debian-12-standard_12.7-1_amd64.tar.zst",
        "no-such-template.tar.zst",
    );
    support::kubectl_apply(&server, &bad);
    kubectl_wait(&server, &["--for=condition=Stalled", "lxcguest/stalled"]);
    let reason = support::kubectl(
        &server,
        &[
            "get",
            "lxcguest",
            "stalled",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Stalled\")].reason}",
        ],
    );
    assert_eq!(reason, "TemplateNotFound");
    support::kubectl_apply(&server, &support::guest_yaml("stalled", 310, ""));
    kubectl_wait(
        &server,
        &[
            "--for=jsonpath={.status.observedGeneration}=2",
            "lxcguest/stalled",
        ],
    );
    kubectl_wait(&server, &["--for=condition=Ready", "lxcguest/stalled"]);
    let conditions = support::kubectl(
        &server,
        &[
            "get",
            "lxcguest",
            "stalled",
            "-o",
            "jsonpath={.status.conditions[*].type}",
        ],
    );
    assert!(!conditions.contains("Stalled"), "{conditions}");
    assert!(!conditions.contains("Reconciling"), "{conditions}");
}

#[tokio::test]
async fn a_repeated_event_is_counted_on_the_first_and_a_new_note_is_a_new_event() {
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::EventType;
    let server = ApiServer::start();
    let client = support::client(&server).await;
    let events = phoenix_controllers::events::Publisher::new(client, "phoenix", "test-1");
    let regarding = ObjectReference {
        api_version: Some("phoenix.thinkheads.ai/v1alpha1".into()),
        kind: Some("LxcGuest".into()),
        namespace: Some("default".into()),
        name: Some("ct-801".into()),
        uid: Some("9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d".into()),
        ..ObjectReference::default()
    };
    for note in [
        "VMID 801 is already in use",
        "VMID 801 is already in use",
        "VMID 801 is free",
    ] {
        events
            .publish(
                regarding.clone(),
                EventType::Warning,
                "VmidClaimed",
                note.into(),
            )
            .await
            .expect("published");
    }
    let listed: serde_json::Value = serde_json::from_str(&support::kubectl(
        &server,
        &["get", "events.v1.events.k8s.io", "-o", "json"],
    ))
    .expect("kubectl prints JSON");
    let mut seen: Vec<(String, i64)> = listed["items"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            let count = e["series"]["count"].as_i64().unwrap_or(1);
            (e["note"].as_str().unwrap_or_default().to_owned(), count)
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("VMID 801 is already in use".into(), 2),
            ("VMID 801 is free".into(), 1)
        ]
    );
}
