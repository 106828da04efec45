//! `make bench`: how fast and how lightly the LxcGuest controller runs a fleet, against the
//! best any controller could do and against the tools it replaces. A real `phoenix up
//! --simulate` (API server + controllers) beside a simulated PVE in its own process, with
//! PVE's realistic task durations.
//!
//! 1. 200 LxcGuests on 4 nodes created at once: time to all Ready as a ratio to the
//!    critical-path lower bound (per node: the sum of its tasks' durations ÷ its task
//!    budget, the slowest node); then the steady state — PVE calls per guest per resync —
//!    and RSS at 0 and 200 guests; then provisioning (features and a health check on 50).
//! 2. 1,000 LxcGuests on 10 nodes: the same ratio, the API server's LIST and watch latency
//!    while they are reconciled, the steady state and RSS at 1,000.
//! 3. Peers, on the 200-guest fleet, each against a simulator of its own: one guest at a
//!    time, create → start, as the old shell scripts did (run beside Ansible: it is
//!    almost all waiting), and Ansible's `community.proxmox.proxmox` with its default 5
//!    forks (`benches/peers/ansible/`), with the calls a second, idle run makes.

mod common;
mod peers;

use common::{admin, kubectl_apply};

use kube::api::{Api, PostParams};
use phoenix_crds::LxcGuest;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const BUDGET: u32 = 4;
const RESYNC_SECONDS: u64 = 20;
/// Three resync periods.
const STEADY_WINDOW: Duration = Duration::from_secs(3 * RESYNC_SECONDS);
const PROVISIONED: u32 = 50;

const CLUSTER: &str = r#"
apiVersion: phoenix.thinkheads.ai/v1alpha1
kind: ProxmoxCluster
metadata: {name: bench}
spec:
  endpoint: https://10.0.0.13:8006
  credentialsSecretRef: {name: pve-token, namespace: phoenix-system}
  tls: {fingerprintSha256: "3A:7F:9C:11:2B:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7"}
  taskBudgetPerNode: 4
"#;

fn guest(i: u32, nodes: u32) -> LxcGuest {
    let vmid = 1000 + i;
    let yaml = format!(
        "apiVersion: phoenix.thinkheads.ai/v1alpha1\nkind: LxcGuest\nmetadata: {{name: ct-{vmid}, namespace: default}}\n\
         spec:\n  vmid: {vmid}\n  node: pve{}\n  source: {{ostemplate: \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"}}\n  \
         hostname: ct-{vmid}\n  memory: 512\n  rootfs: {{storage: local-zfs, size: 4G}}\n  network: [{{ip: 10.1.{}.{}/16}}]\n",
        i % nodes + 1,
        i / 250,
        i % 250 + 1
    );
    serde_yaml_ng::from_str(&yaml).expect("bench guest")
}

fn ready(g: &LxcGuest) -> bool {
    common::ready(g.status.as_ref().map(|s| &s.common.conditions[..]))
}

/// Commands run inside the simulated guests so far.
async fn guest_commands(credentials: &serde_json::Value) -> usize {
    let guests = admin(credentials, reqwest::Method::GET, "guests").await;
    guests.as_object().map_or(0, |g| {
        g.values()
            .map(|g| g["log"].as_array().map_or(0, Vec::len))
            .sum()
    })
}

async fn provisioning(api: &Api<LxcGuest>, credentials: &serde_json::Value, pid: u32) {
    use kube::api::{Patch, PatchParams};
    let features = serde_json::json!({"spec": {
        "provisioning": {"base": {"packages": ["jq"]}, "stepCli": {}},
        "healthChecks": [{"name": "shell", "exec": {"command": ["true"]}, "intervalSeconds": 30}]
    }});
    let before = guest_commands(credentials).await;
    let started = Instant::now();
    for i in 0..PROVISIONED {
        let name = format!("ct-{}", 1000 + i);
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&features))
            .await
            .unwrap();
    }
    loop {
        let guests = api.list(&Default::default()).await.unwrap().items;
        let done = guests
            .iter()
            .filter(|g| {
                ready(g)
                    && g.status
                        .as_ref()
                        .is_some_and(|s| s.guest.features.len() == 2)
            })
            .count();
        if done == PROVISIONED as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    let commands = guest_commands(credentials).await - before;
    admin(credentials, reqwest::Method::DELETE, "oplog").await;
    let quiet_from = guest_commands(credentials).await;
    tokio::time::sleep(STEADY_WINDOW).await;
    let log = admin(credentials, reqwest::Method::GET, "oplog").await;
    let mutating = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["mutating"] == true)
        .count();
    let checks = guest_commands(credentials).await - quiet_from;
    println!(
        "Provisioning ({PROVISIONED} guests × base + step-cli + an exec health check, through `phoenix sim pct`):"
    );
    println!(
        "  all applied in {:.1} s ({:.1} features/s); {commands} lines run in guests ({:.1} per feature)",
        took.as_secs_f64(),
        f64::from(PROVISIONED * 2) / took.as_secs_f64(),
        commands as f64 / f64::from(PROVISIONED * 2)
    );
    println!(
        "  steady state: {mutating} mutating PVE calls and {checks} guest commands in {} s (checks every 30 s)",
        STEADY_WINDOW.as_secs()
    );
    println!(
        "  phoenix up RSS: {:.1} MiB",
        common::rss_kib(pid) as f64 / 1024.0
    );
}

/// A simulated PVE in its own process and `phoenix up` pointed at it.
struct Platform {
    sim: std::process::Child,
    up: std::process::Child,
    credentials: serde_json::Value,
    client: kube::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Platform {
    fn drop(&mut self) {
        for child in [&mut self.up, &mut self.sim] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `phoenix sim pve` on loopback; its credentials once it has written them.
fn simulator(
    nodes: u32,
    credentials: &std::path::Path,
) -> (std::process::Child, serde_json::Value) {
    let nodes = nodes.to_string();
    let args = [
        "sim",
        "pve",
        "--listen",
        "127.0.0.1:0",
        "--nodes",
        &nodes,
        "--credentials-out",
    ];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    args.push(credentials.as_os_str());
    // It announces itself once the credentials are written.
    let (sim, _) = common::announced(&args, "error");
    let text = std::fs::read_to_string(credentials).expect("credentials written");
    (sim, serde_json::from_str(&text).unwrap())
}

async fn platform(nodes: u32) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let credentials_file = dir.path().join("sim-credentials.json");
    let (sim, credentials) = simulator(nodes, &credentials_file);
    let resync = RESYNC_SECONDS.to_string();
    let (up, kubeconfig) = common::launch(
        &[
            "up",
            "--simulate",
            "--sim-pve-credentials",
            credentials_file.to_str().unwrap(),
            "--resync-seconds",
            &resync,
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &dir.path().join("data"),
        "error",
    );
    let examples = format!("{}/examples", std::env::var("CARGO_MANIFEST_DIR").unwrap());
    for file in ["namespace-phoenix-system.yaml", "secret-pve-token.yaml"] {
        kubectl_apply(&kubeconfig, &["-f", &format!("{examples}/{file}")], None);
    }
    kubectl_apply(&kubeconfig, &["-f", "-"], Some(CLUSTER));
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let clusters: Api<phoenix_crds::ProxmoxCluster> = Api::all(client.clone());
    while !clusters
        .get("bench")
        .await
        .unwrap()
        .status
        .is_some_and(|s| {
            s.common
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Platform {
        sim,
        up,
        credentials,
        client,
        _dir: dir,
    }
}

impl Platform {
    fn rss_mib(&self) -> f64 {
        common::rss_kib(self.up.id()) as f64 / 1024.0
    }

    fn guests(&self) -> Api<LxcGuest> {
        Api::namespaced(self.client.clone(), "default")
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The critical path of the tasks a simulator ran: per node, every task (retries
/// included) at its duration, divided by the node's budget; the slowest node.
async fn critical_path(credentials: &serde_json::Value) -> (f64, BTreeMap<String, f64>) {
    let durations = phoenix_sim::state::Sim::realistic_durations();
    let tasks = admin(credentials, reqwest::Method::GET, "tasks").await;
    let mut work: BTreeMap<String, f64> = BTreeMap::new();
    for task in tasks.as_array().unwrap() {
        let kind = task["kind"].as_str().unwrap();
        let seconds = durations
            .get(kind)
            .or(durations.get("default"))
            .unwrap()
            .as_secs_f64();
        *work
            .entry(task["node"].as_str().unwrap().to_owned())
            .or_default() += seconds;
    }
    let bound = work.values().fold(0.0f64, |a, b| a.max(*b)) / f64::from(BUDGET);
    (bound, work)
}

/// Creates the fleet at once and waits for it to be Ready; the LIST latencies seen while
/// polling (raw bytes, as the API server bench times them: the client's decoding of 1,000
/// typed objects is not the server's figure), and the write→watch-event latencies of a
/// ConfigMap pinged meanwhile (ms).
async fn converge(p: &Platform, guests: u32, nodes: u32) -> (Duration, Vec<f64>, Vec<f64>) {
    let api = p.guests();
    let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let pings = tokio::spawn(watch_latency(p.client.clone(), samples.clone()));
    let started = Instant::now();
    for i in 0..guests {
        api.create(&PostParams::default(), &guest(i, nodes))
            .await
            .unwrap();
    }
    let mut lists = Vec::new();
    loop {
        let (body, ms) = common::timed_get(&p.client, api.resource_url()).await;
        lists.push(ms);
        let all: kube::core::ObjectList<LxcGuest> = serde_json::from_slice(&body).unwrap();
        if all.items.iter().filter(|g| ready(g)).count() == guests as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let converged = started.elapsed();
    pings.abort();
    lists.sort_by(f64::total_cmp);
    let mut watch = samples.lock().unwrap().clone();
    watch.sort_by(f64::total_cmp);
    (converged, lists, watch)
}

/// Writes one ConfigMap every 100 ms and records how long each write takes to arrive as a
/// watch event; runs until aborted.
async fn watch_latency(client: kube::Client, samples: std::sync::Arc<std::sync::Mutex<Vec<f64>>>) {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams, WatchEvent, WatchParams};
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let ping = |t: u128| {
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "bench-ping"}, "data": {"sent": t.to_string()}})
    };
    let params = PatchParams::apply("bench").force();
    api.patch("bench-ping", &params, &Patch::Apply(ping(0)))
        .await
        .unwrap();
    let mut events = api
        .watch(
            &WatchParams::default().fields("metadata.name=bench-ping"),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    let write = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = api
                .patch("bench-ping", &params, &Patch::Apply(ping(micros_now())))
                .await;
        }
    };
    let read = async {
        while let Some(Ok(event)) = events.next().await {
            let sent = match event {
                WatchEvent::Modified(cm) => cm
                    .data
                    .and_then(|d| d.get("sent").and_then(|s| s.parse::<u128>().ok())),
                _ => None,
            };
            if let Some(sent) = sent.filter(|s| *s > 0) {
                let ms = (micros_now() - sent) as f64 / 1000.0;
                samples.lock().unwrap().push(ms);
            }
        }
    };
    futures::join!(write, read);
}

fn micros_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// PVE calls over three resync periods of an idle fleet: (calls per minute, config reads
/// per guest per resync, other reads per guest per resync, cluster views per minute,
/// mutating calls).
async fn steady(p: &Platform, guests: u32) -> (f64, f64, f64, f64, usize) {
    admin(&p.credentials, reqwest::Method::DELETE, "oplog").await;
    tokio::time::sleep(STEADY_WINDOW).await;
    let log = admin(&p.credentials, reqwest::Method::GET, "oplog").await;
    let calls = log.as_array().unwrap();
    let path = |o: &serde_json::Value| o["path"].as_str().unwrap_or("").to_owned();
    let mutating = calls.iter().filter(|o| o["mutating"] == true).count();
    let configs = calls
        .iter()
        .filter(|o| path(o).ends_with("/config"))
        .count();
    let views = calls
        .iter()
        .filter(|o| path(o).ends_with("/cluster/resources"))
        .count();
    let others = calls.len() - configs - views;
    let minutes = STEADY_WINDOW.as_secs_f64() / 60.0;
    let rounds = STEADY_WINDOW.as_secs_f64() / RESYNC_SECONDS as f64 * f64::from(guests);
    (
        calls.len() as f64 / minutes,
        configs as f64 / rounds,
        others as f64 / rounds,
        views as f64 / minutes,
        mutating,
    )
}

async fn fleet(guests: u32, nodes: u32, provision: bool) {
    let p = platform(nodes).await;
    let idle = p.rss_mib();
    let (converged, lists, watch) = converge(&p, guests, nodes).await;
    let (bound, work) = critical_path(&p.credentials).await;
    println!(
        "LxcGuest convergence ({guests} guests, {nodes} nodes, budget {BUDGET}/node, realistic task durations):"
    );
    println!(
        "  converged in {:.1} s; critical-path lower bound {bound:.1} s; ratio {:.3} (goal <= 1.10)",
        converged.as_secs_f64(),
        converged.as_secs_f64() / bound
    );
    println!("  per-node task work (s): {work:?}");
    println!(
        "  API server while reconciling: LIST of {guests} LxcGuests {:.1} ms p50, {:.1} ms p99 ({} lists); watch write->event {:.2} ms p50, {:.2} ms p99 ({} writes)",
        percentile(&lists, 0.5),
        percentile(&lists, 0.99),
        lists.len(),
        percentile(&watch, 0.5),
        percentile(&watch, 0.99),
        watch.len()
    );
    let (per_minute, configs, others, views, mutating) = steady(&p, guests).await;
    println!(
        "  steady state ({} s, resync {RESYNC_SECONDS} s): {per_minute:.0} PVE calls/min, {mutating} mutating; \
         per guest per resync {configs:.2} config reads + {others:.2} other reads (goal <= 1); {views:.1} cluster views/min",
        STEADY_WINDOW.as_secs()
    );
    println!(
        "  phoenix up RSS (API server + controllers; simulator in its own process): {idle:.1} MiB at 0 guests, {:.1} MiB at {guests} ({}; goal <= 50 at 1,000)",
        p.rss_mib(),
        common::rss_parts(p.up.id())
    );
    if provision {
        provisioning(&p.guests(), &p.credentials, p.up.id()).await;
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    const FLEET: u32 = 200;
    // PHOENIX_BENCH_PHASES=200,1000,peers (the default: all) runs some of them.
    let phases = std::env::var("PHOENIX_BENCH_PHASES").unwrap_or("200,1000,peers".into());
    let phase = |name: &str| phases.split(',').any(|p| p.trim() == name);
    if phase("200") {
        fleet(FLEET, 4, true).await;
    }
    if phase("1000") {
        fleet(1_000, 10, false).await;
    }
    if phase("peers") {
        // One at a time is almost all waiting on simulated tasks: it runs beside Ansible
        // (after Phoenix's figures, which it would disturb) rather than half an hour after.
        let shell = tokio::spawn(peers::one_at_a_time(FLEET, 4));
        println!("{}", peers::ansible(FLEET, 4).await);
        println!("{}", shell.await.unwrap());
    }
}
