//! Light on the hypervisor: at steady state a guest costs one PVE read (its config) per
//! resync, the whole cluster one `/cluster/resources` per view interval; yet drift is
//! still corrected within one resync, and a guest stopped by hand is noticed within the
//! view interval, long before its resync.

mod support;

use kube::api::Api;
use phoenix_crds::LxcGuest;
use reqwest::Method;
use std::time::{Duration, Instant};
use support::{ApiServer, SimAdmin};

const GUESTS: u32 = 6;

fn guests() -> String {
    (0..GUESTS)
        .map(|i| support::guest_yaml(&format!("light-{i}"), 700 + i, "") + "---\n")
        .map(|y| y.replace("10.0.0.70/24", "10.0.0.170/24"))
        .collect()
}

async fn converged(server: &ApiServer) {
    let client = support::client(server).await;
    support::homelab_cluster(server).await;
    support::kubectl_apply(server, &guests());
    let api: Api<LxcGuest> = Api::namespaced(client, "default");
    support::wait_for(&api, "every guest Ready", Duration::from_secs(60), |gs| {
        gs.len() == GUESTS as usize
            && gs.iter().all(|g| {
                support::is_ready(
                    &g.status
                        .as_ref()
                        .map(|s| s.common.conditions.clone())
                        .unwrap_or_default(),
                )
            })
    })
    .await;
}

async fn oplog(sim: &SimAdmin) -> Vec<String> {
    let log = sim.get("oplog").await;
    log.as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            format!(
                "{} {}",
                o["method"].as_str().unwrap_or(""),
                o["path"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn steady_state_costs_one_config_read_per_guest_per_resync() {
    let (_dir, _server, sim) = converged_fleet(2).await;
    sim.clear_oplog().await;
    let started = Instant::now();
    // Three resync rounds: every guest's config read three times.
    let calls = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let calls = oplog(&sim).await;
            let config_reads = calls.iter().filter(|c| c.ends_with("/config")).count();
            if config_reads >= 3 * GUESTS as usize {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("three resync rounds");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(calls.iter().all(|c| c.starts_with("GET ")), "{calls:?}");
    // Of a guest, only its config is read.
    let mut of_guests: Vec<&String> = calls
        .iter()
        .filter(|c| c.contains("/lxc/") && !c.ends_with("/config"))
        .collect();
    of_guests.dedup();
    assert!(
        of_guests.is_empty(),
        "a guest costs its config only: {of_guests:?}"
    );
    // Per cluster, a constant: the view on its interval, and the ProxmoxCluster's own look
    // (version, nodes, storages) at its resync.
    let views = calls
        .iter()
        .filter(|c| c.ends_with("/cluster/resources"))
        .count();
    assert!(
        views as f64 <= elapsed / 1.0 + 2.0,
        "one cluster view per interval: {views} in {elapsed:.1} s"
    );
    let firewall = |c: &&String| c.contains("/cluster/firewall/");
    let cluster: Vec<&String> = calls
        .iter()
        .filter(|c| !c.contains("/lxc/") && !c.ends_with("/cluster/resources") && !firewall(c))
        .collect();
    // The window can cut a round at each end: whole rounds in it, plus two.
    let rounds = (elapsed / 2.0).floor() + 2.0;
    assert!(
        cluster.len() as f64 <= rounds * 3.0,
        "the ProxmoxCluster's look, three reads per resync: {} in {elapsed:.1} s: {cluster:?}",
        cluster.len()
    );
    // The datacenter firewall's: the IP set list, its four sets (management, Traefik's,
    // the gateways', Step-CA's clients), the aliases, the security groups and the one
    // group's rules, options and rules.
    let looks = calls.iter().filter(firewall).count();
    assert!(
        looks as f64 <= rounds * 10.0,
        "the datacenter firewall's look, ten reads per resync: {looks} in {elapsed:.1} s"
    );
    println!(
        "steady state: {} calls in {elapsed:.1} s ({views} cluster views)",
        calls.len()
    );
}

/// `phoenix up --simulate` with a fast cluster view and this resync, the fleet Ready.
async fn converged_fleet(resync_seconds: u64) -> (tempfile::TempDir, ApiServer, SimAdmin) {
    let dir = tempfile::tempdir().unwrap();
    let resync = resync_seconds.to_string();
    let args = [
        "--task-duration",
        "default=0.2",
        "--resync-seconds",
        resync.as_str(),
        "--cluster-view-seconds",
        "1",
    ];
    let server = ApiServer::up_simulated(dir.path(), &args);
    converged(&server).await;
    let sim = SimAdmin::of(&server);
    (dir, server, sim)
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_corrected_within_one_resync() {
    const RESYNC: u64 = 4;
    let (_dir, server, sim) = converged_fleet(RESYNC).await;
    // A config key changed by hand (the cluster view does not show it): the resync finds it.
    let changed = Instant::now();
    sim.api(
        Method::PUT,
        "/nodes/phoenix/lxc/700/config",
        &[("memory", "4096")],
    )
    .await;
    support::wait_sim(&sim, "memory of 700 corrected", |s| {
        s["700"]["config"]["memory"] == "512"
    })
    .await;
    let took = changed.elapsed();
    assert!(
        took <= Duration::from_secs(RESYNC + 2),
        "drift corrected within one resync ({RESYNC} s): {took:?}"
    );
    let story = support::kubectl(&server, &["describe", "lxc", "light-0"]);
    assert!(story.contains("DriftCorrected"), "{story}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_stopped_by_hand_is_noticed_within_the_view_interval() {
    // A resync far away: only the cluster view can notice the stop in time.
    const RESYNC: u64 = 300;
    let (_dir, _server, sim) = converged_fleet(RESYNC).await;
    sim.api(Method::POST, "/nodes/phoenix/lxc/701/status/stop", &[])
        .await;
    support::wait_sim(&sim, "701 stopped", |s| s["701"]["running"] == false).await;
    let stopped = Instant::now();
    support::wait_sim(&sim, "701 started again", |s| s["701"]["running"] == true).await;
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "noticed within the view interval (1 s) and started again: {took:?}"
    );
}
