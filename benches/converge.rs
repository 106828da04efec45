//! `make bench`: how fast the LxcGuest controller converges a fleet, against the best any
//! controller could do. A real `phoenix up --simulate` with 4 simulated nodes and PVE's
//! realistic task durations; 200 LxcGuests created at once. Prints the time to all Ready as
//! a ratio to the critical-path lower bound (per node: the sum of its tasks' durations ÷
//! its task budget, the slowest node), then the PVE calls per minute at steady state and
//! the process's RSS. Then provisioning: features (base, step-cli) and a health check on
//! 50 of them — the time until all are applied, the commands run in guests per feature, and
//! the steady state again (no mutating PVE call; checks on their interval).

mod common;

use kube::api::{Api, PostParams};
use phoenix_crds::LxcGuest;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GUESTS: u32 = 200;
const NODES: u32 = 4;
const BUDGET: u32 = 4;
const STEADY_WINDOW: Duration = Duration::from_secs(60);
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

fn guest(i: u32) -> LxcGuest {
    let vmid = 1000 + i;
    let yaml = format!(
        "apiVersion: phoenix.thinkheads.ai/v1alpha1\nkind: LxcGuest\nmetadata: {{name: ct-{vmid}, namespace: default}}\n\
         spec:\n  vmid: {vmid}\n  node: pve{}\n  source: {{ostemplate: \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"}}\n  \
         hostname: ct-{vmid}\n  memory: 512\n  rootfs: {{storage: local-zfs, size: 4G}}\n  network: [{{ip: 10.1.{}.{}/16}}]\n",
        i % NODES + 1,
        i / 250,
        i % 250 + 1
    );
    serde_yaml_ng::from_str(&yaml).expect("bench guest")
}

fn kubectl_apply(kubeconfig: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("apply")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("kubectl");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

async fn admin(
    credentials: &serde_json::Value,
    method: reqwest::Method,
    path: &str,
) -> serde_json::Value {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let authorization = format!(
        "PVEAPIToken={}={}",
        credentials["token_id"].as_str().unwrap(),
        credentials["token_secret"].as_str().unwrap()
    );
    let url = format!("{}/{path}", credentials["admin_url"].as_str().unwrap());
    let response = http
        .request(method, url)
        .header("Authorization", authorization)
        .send()
        .await
        .unwrap();
    response.json().await.unwrap_or(serde_json::Value::Null)
}

fn ready(g: &LxcGuest) -> bool {
    g.status.as_ref().is_some_and(|s| {
        s.common
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
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

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (mut up, kubeconfig) = common::launch(
        &[
            "up",
            "--simulate",
            "--sim-nodes",
            "4",
            "--resync-seconds",
            "20",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        dir.path(),
        "error",
    );
    let examples = format!("{}/examples", env!("CARGO_MANIFEST_DIR"));
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
    let credentials: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sim.json")).unwrap())
            .unwrap();

    let api: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    for i in 0..GUESTS {
        api.create(&PostParams::default(), &guest(i)).await.unwrap();
    }
    loop {
        let guests = api.list(&Default::default()).await.unwrap().items;
        if guests.iter().filter(|g| ready(g)).count() == GUESTS as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let converged = started.elapsed();

    // The critical path: per node, every task PVE ran (retries included) at its duration.
    let durations = phoenix_sim::state::Sim::realistic_durations();
    let tasks = admin(&credentials, reqwest::Method::GET, "tasks").await;
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

    admin(&credentials, reqwest::Method::DELETE, "oplog").await;
    tokio::time::sleep(STEADY_WINDOW).await;
    let log = admin(&credentials, reqwest::Method::GET, "oplog").await;
    let calls = log.as_array().unwrap();
    let mutating = calls.iter().filter(|o| o["mutating"] == true).count();
    let per_minute = calls.len() as f64 * 60.0 / STEADY_WINDOW.as_secs_f64();
    let rss = common::rss_kib(up.id());

    println!(
        "LxcGuest convergence ({GUESTS} guests, {NODES} nodes, budget {BUDGET}/node, realistic task durations):"
    );
    println!(
        "  converged in {:.1} s; critical-path lower bound {bound:.1} s; ratio {:.3} (goal <= 1.10)",
        converged.as_secs_f64(),
        converged.as_secs_f64() / bound
    );
    println!("  per-node task work: {work:?}");
    println!(
        "  steady state: {per_minute:.0} PVE calls/min, {mutating} mutating in {} s",
        STEADY_WINDOW.as_secs()
    );
    println!("  phoenix up RSS: {:.1} MiB", rss as f64 / 1024.0);
    provisioning(&api, &credentials, up.id()).await;
    let _ = up.kill();
    let _ = up.wait();
}
