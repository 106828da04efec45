//! The ProxmoxCluster pass against the embedded API server and the simulator (both
//! in-process on 127.0.0.1): it connects with the Secret's token and a pinned fingerprint,
//! reports version, nodes and storages, and says why when it cannot connect. With a
//! redirect (simulate mode) the example's 10.0.0.13 endpoint is never dialled.

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use phoenix_controllers::proxmox_cluster::reconcile;
use phoenix_controllers::pve::Redirect;
use phoenix_crds::ProxmoxCluster;
use std::time::Duration;

struct World {
    kube: kube::Client,
    sim: phoenix_sim::Running,
    _api: phoenix_apiserver::Running,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let api = phoenix_apiserver::start(phoenix_apiserver::Config {
        data_dir: dir.path().to_owned(),
        listen: "127.0.0.1:0".into(),
        limits: Default::default(),
    })
    .await
    .unwrap();
    let kubeconfig = Kubeconfig::read_from(&api.kubeconfig).unwrap();
    let kube = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let sim = phoenix_sim::start(phoenix_sim::Options {
        durations: [("default".to_string(), Duration::ZERO)].into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(kube.clone());
    crds.create(&PostParams::default(), &ProxmoxCluster::crd())
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("phoenix-system".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    World {
        kube,
        sim,
        _api: api,
        _dir: dir,
    }
}

async fn secret(w: &World, secret: &str) {
    let secrets: Api<Secret> = Api::namespaced(w.kube.clone(), "phoenix-system");
    let s = Secret {
        metadata: ObjectMeta {
            name: Some("pve-token".into()),
            ..Default::default()
        },
        string_data: Some(
            [
                ("tokenId".to_string(), w.sim.credentials.token_id.clone()),
                ("tokenSecret".to_string(), secret.to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &s).await.unwrap();
}

async fn example(w: &World, point_at_simulator: bool) -> ProxmoxCluster {
    let text = std::fs::read_to_string(format!(
        "{}/../examples/proxmoxcluster-homelab.yaml",
        std::env::var("CARGO_MANIFEST_DIR").unwrap()
    ))
    .unwrap();
    let mut cluster: ProxmoxCluster = serde_yaml_ng::from_str(&text).unwrap();
    if point_at_simulator {
        cluster.spec.endpoint = w.sim.credentials.url.clone();
        cluster.spec.tls.fingerprint_sha256 = Some(w.sim.credentials.fingerprint.clone());
    }
    Api::<ProxmoxCluster>::all(w.kube.clone())
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap()
}

fn ready(cluster: &ProxmoxCluster) -> (String, String) {
    let c = cluster
        .status
        .as_ref()
        .unwrap()
        .common
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    (c.status.clone(), c.reason.clone())
}

#[tokio::test]
async fn connects_and_reports_the_cluster() {
    let w = world().await;
    secret(&w, &w.sim.credentials.token_secret.clone()).await;
    let cluster = example(&w, true).await;
    let status = reconcile(&w.kube, &cluster, None).await.expect("connected");
    assert_eq!(
        (status.version.as_deref(), status.node_count),
        (Some("9.1.1"), Some(1))
    );
    assert!(
        status
            .storages
            .iter()
            .any(|s| s.name == "fastData" && s.content.contains(&"rootdir".to_string()))
    );
    let stored = Api::<ProxmoxCluster>::all(w.kube.clone())
        .get("homelab")
        .await
        .unwrap();
    assert_eq!(ready(&stored), ("True".into(), "Connected".into()));
    assert_eq!(stored.status.unwrap().nodes[0].name, "phoenix");
}

#[tokio::test]
async fn says_why_it_cannot_connect() {
    let w = world().await;
    secret(&w, "not-the-secret").await;
    let cluster = example(&w, true).await;
    let err = reconcile(&w.kube, &cluster, None).await.unwrap_err();
    assert_eq!(err.category(), "ProxmoxUnauthorized");
    let stored = Api::<ProxmoxCluster>::all(w.kube.clone())
        .get("homelab")
        .await
        .unwrap();
    assert_eq!(
        ready(&stored),
        ("False".into(), "ProxmoxUnauthorized".into())
    );
    assert!(
        !format!("{stored:?}").contains("not-the-secret"),
        "the token never reaches status"
    );
}

#[tokio::test]
async fn simulate_mode_redirects_the_real_endpoint() {
    let w = world().await;
    let cluster = example(&w, false).await;
    assert_eq!(cluster.spec.endpoint, "https://10.0.0.13:8006");
    let c = &w.sim.credentials;
    let redirect = Redirect {
        endpoint: c.url.clone(),
        token_id: c.token_id.clone(),
        token_secret: c.token_secret.clone(),
        fingerprint: c.fingerprint.clone(),
        ..Default::default()
    };
    let status = reconcile(&w.kube, &cluster, Some(&redirect))
        .await
        .expect("connected through the redirect");
    assert_eq!(status.node_count, Some(1));
}
