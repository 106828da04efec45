//! The ProxmoxCluster decides who may use it: namespaces not in `allowedNamespaces` are
//! refused, and host-level powers (devices, hostPath mounts, privileged containers, PCI,
//! foreign templates, non-image volumes) only for the namespaces `hostPowers` names — a
//! refusal is a condition with its reason, and no call that changes PVE.

mod support;

use kube::api::Api;
use phoenix_crds::LxcGuest;
use std::time::Duration;
use support::{ApiServer, SimAdmin};

fn reason_of(g: &LxcGuest) -> String {
    support::ready_reason(&g.status.clone().unwrap_or_default().common.conditions)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_decides_which_namespaces_and_which_host_powers() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &["--task-duration", "default=0.2"]);
    support::homelab_cluster(&server).await;
    support::kubectl(&server, &["create", "namespace", "tenant"]);
    support::kubectl(&server, &["create", "namespace", "lab"]);
    let policy = serde_json::json!({"spec": {
        "allowedNamespaces": ["default", "lab"],
        "hostPowers": {"namespaces": ["default"]},
    }});
    support::patch_homelab(&server, &policy);
    support::kubectl(
        &server,
        &[
            "wait",
            "--timeout=30s",
            "--for=jsonpath={.status.observedGeneration}=2",
            "proxmoxcluster/homelab",
        ],
    );
    let sim = SimAdmin::of(&server);
    sim.clear_oplog().await;
    let gpu = "  devices: [{path: /dev/nvidia0}]\n";
    let in_namespace =
        |yaml: String, ns: &str| yaml.replace("namespace: default", &format!("namespace: {ns}"));
    support::kubectl_apply(
        &server,
        &in_namespace(support::guest_yaml("outsider", 701, ""), "tenant"),
    );
    support::kubectl_apply(
        &server,
        &in_namespace(support::guest_yaml("gpu-user", 702, gpu), "lab"),
    );
    support::kubectl_apply(
        &server,
        &in_namespace(support::guest_yaml("plain", 703, ""), "lab"),
    );
    support::kubectl_apply(&server, &support::guest_yaml("trusted", 704, gpu));
    let client = support::client(&server).await;
    let all: Api<LxcGuest> = Api::all(client);
    support::wait_for(
        &all,
        "each as the cluster says",
        Duration::from_secs(90),
        |gs| {
            let reason = |name: &str| {
                gs.iter()
                    .find(|g| g.metadata.name.as_deref() == Some(name))
                    .map(|g| reason_of(g))
                    .unwrap_or_default()
            };
            reason("outsider") == "NamespaceNotAllowed"
                && reason("gpu-user") == "HostPowerNotAllowed"
                && reason("plain") == "Running"
                && reason("trusted") == "Running"
        },
    )
    .await;
    let refused = support::kubectl(
        &server,
        &[
            "get",
            "lxcguest",
            "gpu-user",
            "-n",
            "lab",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Stalled\")].message}",
        ],
    );
    assert!(refused.contains("device /dev/nvidia0"), "{refused}");
    let touched: Vec<serde_json::Value> = sim
        .mutating_calls()
        .await
        .into_iter()
        .filter(|c| {
            let path = c["path"].as_str().unwrap_or_default();
            path.contains("/701")
                || path.contains("/702")
                || c.to_string().contains("\"701\"")
                || c.to_string().contains("\"702\"")
        })
        .collect();
    assert_eq!(
        touched,
        Vec::<serde_json::Value>::new(),
        "nothing done for the refused"
    );
}
