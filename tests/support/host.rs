//! What the host tests share: the example ProxmoxHost, its conditions, and what the
//! simulated node ran.

use super::SimAdmin;
use kube::api::Api;
use phoenix_crds::ProxmoxHost;
use std::time::Duration;

pub const MINUTES: Duration = Duration::from_secs(240);

/// The examples directory.
pub fn examples() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples")
}

/// The platform on the simulator with every example applied, resyncing every 2 s.
pub fn up_examples(dir: &std::path::Path) -> super::ApiServer {
    up_examples_and(dir, &[])
}

/// As [`up_examples`], the simulator running the real Traefik and nginx for the guests
/// with those features (LXC 102 and 101), on the files Phoenix writes into them.
pub fn up_examples_with_daemons(dir: &std::path::Path) -> super::ApiServer {
    let traefik = super::https::traefik_binary();
    let programs = [
        "--sim-traefik",
        traefik.to_str().expect("a UTF-8 path"),
        "--sim-nginx",
        super::https::NGINX,
    ];
    up_examples_and(dir, &programs)
}

fn up_examples_and(dir: &std::path::Path, extra: &[&str]) -> super::ApiServer {
    let mut args = vec![
        "--apply",
        examples(),
        "--resync-seconds",
        "2",
        "--task-duration",
        "default=0.2",
    ];
    args.extend_from_slice(extra);
    super::ApiServer::up_simulated(dir, &args)
}

/// `examples/host-phoenix.yaml`.
pub fn example_yaml() -> String {
    std::fs::read_to_string(format!("{}/host-phoenix.yaml", examples())).unwrap()
}

/// Condition `type_` of `host`: status, reason, message.
pub fn condition(host: &ProxmoxHost, type_: &str) -> Option<(String, String, String)> {
    host.status.as_ref().and_then(|s| {
        s.common
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    })
}

pub fn is_ready(host: &ProxmoxHost) -> bool {
    host.status
        .as_ref()
        .is_some_and(|s| super::is_ready(&s.common.conditions))
}

/// Until the (one) host is Ready.
pub async fn wait_ready(hosts: &Api<ProxmoxHost>) {
    super::wait_for(hosts, "the host Ready", MINUTES, |hs| {
        hs.first().is_some_and(|h| is_ready(h))
    })
    .await;
}

/// The simulator and Phoenix with the homelab cluster Ready (fast tasks, a resync every
/// `resync` seconds), nothing else applied.
pub async fn up_with_cluster(dir: &std::path::Path, resync: &str) -> super::ApiServer {
    let args = ["--resync-seconds", resync, "--task-duration", "default=0.2"];
    let server = super::ApiServer::up_simulated(dir, &args);
    super::homelab_cluster(&server).await;
    server
}

/// `kubectl get events` of the host.
pub fn events(server: &super::ApiServer) -> String {
    let selector = "involvedObject.kind=ProxmoxHost";
    super::kubectl(server, &["get", "events", "--field-selector", selector])
}

/// The commands node `phoenix` ran, in order: the line, its exit, when it started (ms).
pub async fn node_log(sim: &SimAdmin) -> Vec<(String, i64, u64)> {
    let inside = sim.get("nodes/phoenix/inside").await;
    inside["log"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["command"].as_str().unwrap_or_default().to_owned(),
                e["exit"].as_i64().unwrap_or(-1),
                e["started_ms"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Whether a command the host controller ran on a node only looked (its observations:
/// file hashes, dnsmasq's state, the datasets) rather than changed anything.
pub fn observation(command: &str) -> bool {
    ["sha256sum", "systemctl is-active", "zfs list"]
        .iter()
        .any(|o| command.starts_with(o))
}
