//! Flux's own apply and health code against the embedded server: `tests/flux` applies the
//! examples with `github.com/fluxcd/pkg/ssa` as kustomize-controller does (server-side
//! apply, dry-run first, staged) and waits with kstatus until every object is Current; an
//! object its controller reports Stalled is reported Failed at once, not at the timeout.
//! tests/real_kubernetes.rs runs the same harness against kube-apiserver.

mod support;

use std::path::Path;
use support::ApiServer;

#[tokio::test(flavor = "multi_thread")]
async fn flux_applies_the_examples_until_current_and_sees_a_stalled_guest_fail() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &["--task-duration", "default=0.2"]);
    let examples = format!("{}/examples", std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let step_ca = format!("{examples}/lxc-103.yaml");
    let (current, printed, took) = support::flux_takes_over_from_kubectl(
        &server.kubeconfig,
        &step_ca,
        "lxcguest/step-ca",
        || {
            support::flux_apply(
                dir.path(),
                &server.kubeconfig,
                &[Path::new(&examples)],
                "4m",
            )
        },
    );
    assert!(
        current,
        "every example Current:\n{printed}\nStalled:\n{}",
        support::kubectl(
            &server,
            &[
                "get",
                "lxcguests,vmguests,certificates,proxmoxclusters",
                "-A",
                "-o",
                support::STALLED
            ]
        )
    );
    assert!(
        printed.contains("LxcGuest/default/granite-embedding created"),
        "{printed}"
    );
    println!("embedded server: the examples Current in {took:?}");
    // Current is kstatus's word; the guests are Ready too (an object with no status yet
    // would also count as Current).
    let client = support::client(&server).await;
    support::all_guests_ready(&client, 6, 3).await;

    let stalled = dir.path().join("stalled.yaml");
    std::fs::write(&stalled, support::stalled_guest_yaml("flux-stalled", 313)).unwrap();
    let took = support::flux_sees_failed(dir.path(), &server.kubeconfig, &stalled);
    println!("embedded server: the stalled guest reported Failed in {took:?}");
}
