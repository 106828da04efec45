//! `make bench`: DockerStacks through Portainer. `phoenix up --simulate` with the examples
//! (the swarm of VMs 1001/1002, Portainer deployed through the agent and taken over), then
//! 30 stacks applied at once through Portainer's API: stacks deployed per minute (applied →
//! every one Ready, the simulated Portainer deploying each in the background as newer
//! releases do), and at steady state the Portainer calls per stack per resync, from the
//! simulated Portainer's own log.

mod common;

use common::{admin, kubectl_apply};
use kube::api::Api;
use phoenix_crds::DockerStack;
use std::time::{Duration, Instant};

const STACKS: usize = 30;
const RESYNC_SECONDS: u64 = 10;
/// Three resync periods.
const STEADY_WINDOW: Duration = Duration::from_secs(3 * RESYNC_SECONDS);

fn stack(i: usize) -> String {
    format!(
        "apiVersion: phoenix.thinkheads.ai/v1alpha1\nkind: DockerStack\nmetadata: {{name: bench-{i}, namespace: default}}\nspec:\n  target:\n    managerRef: {{name: portainer}}\n    portainer:\n      url: https://portainer.internal.thinkheads.ai\n      apiKeySecretRef: {{name: portainer-api-key, key: token}}\n  compose:\n    inline: |\n      services:\n        web:\n          image: nginx:1.27\n          deploy: {{replicas: 2}}\n---\n"
    )
}

fn ready(s: &DockerStack) -> bool {
    common::ready(s.status.as_ref().map(|s| &s.common.conditions[..]))
}

/// Until `count` stacks (those `keep` keeps) are Ready.
async fn until_ready(api: &Api<DockerStack>, count: usize, keep: impl Fn(&DockerStack) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let all = api.list(&Default::default()).await.unwrap().items;
        let done = all.iter().filter(|s| keep(s) && ready(s)).count();
        if done >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{done}/{count} stacks Ready after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn portainer_calls(credentials: &serde_json::Value) -> (usize, usize) {
    let log = admin(credentials, reqwest::Method::GET, "portainer/oplog").await;
    let log = log.as_array().cloned().unwrap_or_default();
    let writes = log.iter().filter(|o| o["mutating"] == true).count();
    (log.len(), writes)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let examples = format!("{}/examples", env!("CARGO_MANIFEST_DIR"));
    let resync = RESYNC_SECONDS.to_string();
    let data = dir.path().join("data");
    let (mut up, kubeconfig) = common::launch(
        &[
            "up",
            "--simulate",
            "--apply",
            &examples,
            "--resync-seconds",
            &resync,
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &data,
        "error",
    );
    let credentials: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("sim.json")).unwrap()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let api: Api<DockerStack> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    let started = Instant::now();
    until_ready(&api, 2, |_| true).await;
    println!(
        "DockerStacks: the examples (Portainer through the agent, bootstrapped; qdrant through it) Ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let yaml: String = (0..STACKS).map(stack).collect();
    let started = Instant::now();
    kubectl_apply(&kubeconfig, &["-f", "-"], Some(&yaml));
    let bench = |s: &DockerStack| {
        s.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("bench-"))
    };
    until_ready(&api, STACKS, bench).await;
    let took = started.elapsed().as_secs_f64();
    println!(
        "  {STACKS} stacks through Portainer (background deploys of 300 ms): all Ready in {took:.1} s = {:.0} stacks/min",
        STACKS as f64 / took * 60.0
    );

    // Steady state: every stack looked at each resync, nothing deployed again.
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS)).await;
    let (calls, writes) = portainer_calls(&credentials).await;
    tokio::time::sleep(STEADY_WINDOW).await;
    let (after, writes_after) = portainer_calls(&credentials).await;
    let per = (after - calls) as f64 / (STACKS + 2) as f64 / 3.0;
    println!(
        "  steady state over 3 resyncs ({RESYNC_SECONDS} s): {per:.2} Portainer calls per stack per resync, {} writes",
        writes_after - writes
    );
    let _ = up.kill();
}
