//! The controllers, the HTTP-01 responder included, live and die together: a replica that
//! loses the lease stops answering challenges, and one that regains it binds the port
//! again (an old responder left serving would hold the port and answer for a replica that
//! no longer leads).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::time::Duration;

async fn kube_client(dir: &std::path::Path) -> (kube::Client, phoenix_apiserver::Running) {
    let api = phoenix_apiserver::start(phoenix_apiserver::Config {
        data_dir: dir.to_owned(),
        listen: "127.0.0.1:0".into(),
        limits: Default::default(),
    })
    .await
    .unwrap();
    let kubeconfig = Kubeconfig::read_from(&api.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let kube = kube::Client::try_from(config).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(kube.clone());
    for crd in [
        phoenix_crds::ProxmoxCluster::crd(),
        phoenix_crds::LxcGuest::crd(),
        phoenix_crds::VmGuest::crd(),
        phoenix_crds::Certificate::crd(),
    ] {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    (kube, api)
}

/// Until a challenge request on `port` gets `answered` (an HTTP answer, or none at all).
async fn until_answered(port: u16, answered: bool) {
    let url = format!("http://127.0.0.1:{port}/.well-known/acme-challenge/none");
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let got = reqwest::get(&url).await.is_ok();
            if got == answered {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the responder on {port} never became answered={answered}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_responder_stops_with_the_controllers_and_binds_again_when_they_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (kube, _api) = kube_client(dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = || phoenix_controllers::Options {
        http01_listen: Some(format!("127.0.0.1:{port}")),
        ..Default::default()
    };
    for round in 0..2 {
        let leading = tokio::spawn(phoenix_controllers::run(kube.clone(), options()));
        until_answered(port, true).await;
        // The lease is lost: the controllers' task is stopped, as `phoenix controller` does.
        leading.abort();
        let _ = leading.await;
        until_answered(port, false).await;
        assert!(round < 2);
    }
}
