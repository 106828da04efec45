//! The tools Phoenix replaces, timed on the same fleet, each against a simulated PVE of its
//! own with the same task durations, and compared with the same critical-path bound.

use phoenix_clients::proxmox::{self, GuestType, ProxmoxClient, TaskOutcome, Trust, Upid};
use std::time::{Duration, Instant};

/// The fleet's guest `i` as PVE create parameters (what `guest(i)` asks Phoenix for).
fn create_params(i: u32) -> proxmox::Params {
    let vmid = 1000 + i;
    [
        ("vmid", vmid.to_string()),
        (
            "ostemplate",
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
        ),
        ("hostname", format!("ct-{vmid}")),
        ("memory", "512".into()),
        ("rootfs", "local-zfs:4".into()),
        (
            "net0",
            format!(
                "name=eth0,bridge=vmbr0,ip=10.1.{}.{}/16",
                i / 250,
                i % 250 + 1
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn wait(client: &ProxmoxClient, upid: &Upid) {
    loop {
        match client.task(upid).await.expect("task status").outcome() {
            TaskOutcome::Running => tokio::time::sleep(Duration::from_millis(100)).await,
            TaskOutcome::Succeeded => return,
            TaskOutcome::Failed(e) => panic!("task {} failed: {e}", upid.raw),
        }
    }
}

/// One guest at a time, create then start, each waited for — as `phoenix create` in the
/// old shell scripts did (`pct create` then `pct start`).
pub async fn one_at_a_time(guests: u32, nodes: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (mut sim, credentials) = super::simulator(nodes, &dir.path().join("sim.json"));
    let text = |k: &str| credentials[k].as_str().unwrap().to_owned();
    let client = ProxmoxClient::new(&proxmox::Config {
        endpoint: text("url"),
        token_id: text("token_id"),
        token_secret: text("token_secret"),
        trust: Trust::Fingerprint(text("fingerprint")),
        timeout: Duration::from_secs(30),
    })
    .unwrap();
    let started = Instant::now();
    for i in 0..guests {
        let node = format!("pve{}", i % nodes + 1);
        let upid = client
            .create(&node, GuestType::Lxc, &create_params(i))
            .await
            .unwrap();
        wait(&client, &upid).await;
        let upid = client
            .power(&node, GuestType::Lxc, 1000 + i, "start")
            .await
            .unwrap();
        wait(&client, &upid).await;
    }
    let took = started.elapsed().as_secs_f64();
    let (bound, _) = super::critical_path(&credentials).await;
    let _ = sim.kill();
    let _ = sim.wait();
    format!(
        "Peer: one guest at a time, create -> start (the old shell scripts), {guests} guests on {nodes} nodes: \
         {took:.1} s; ratio {:.3} to the critical-path bound ({bound:.1} s); no steady state (run once)",
        took / bound
    )
}

/// Ansible's `community.proxmox.proxmox` module (forks at its default 5), installed from
/// PyPI by `benches/peers/ansible/install.sh`; a second run shows what an idle re-run costs.
pub async fn ansible(guests: u32, nodes: u32) -> String {
    let here = format!(
        "{}/benches/peers/ansible",
        std::env::var("CARGO_MANIFEST_DIR").unwrap()
    );
    let installed = std::process::Command::new("bash")
        .arg(format!("{here}/install.sh"))
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        return "Peer: Ansible — SKIPPED: benches/peers/ansible/install.sh failed (PyPI unreachable?)".into();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.json");
    let (mut sim, credentials) = super::simulator(nodes, &file);
    let run = format!("{here}/run.sh");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(run)
            .arg(guests.to_string())
            .arg(file)
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    // run.sh prints `key=value` figures, several to a line.
    let figure = |key: &str| {
        printed
            .split_whitespace()
            .find_map(|word| word.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let (bound, _) = super::critical_path(&credentials).await;
    let _ = sim.kill();
    let _ = sim.wait();
    let Some(took) = figure("ansible_seconds") else {
        return format!(
            "Peer: Ansible — FAILED:\n{printed}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    format!(
        "Peer: Ansible community.proxmox.proxmox (forks 5), {guests} guests on {nodes} nodes: {took:.1} s; \
         ratio {:.3} to the critical-path bound ({bound:.1} s); idle re-run {:.1} s, {} PVE calls, {} mutating",
        took / bound,
        figure("ansible_second_run_seconds").unwrap_or(f64::NAN),
        figure("ansible_second_run_calls").unwrap_or(f64::NAN),
        figure("ansible_second_run_mutating").unwrap_or(f64::NAN),
    )
}
