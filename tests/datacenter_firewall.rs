//! The datacenter firewall of the example ProxmoxCluster on the simulated PVE: its IP sets
//! (management, and the role sets holding the addresses of the guests routes go through),
//! rules and options as the spec says; a moved Traefik is one IP-set entry changed and no
//! rule; enabling it without the address Phoenix comes from is refused; nothing written at
//! steady state.

mod support;

use kube::api::{Api, Patch, PatchParams};
use phoenix_crds::{LxcGuest, ProxmoxCluster};
use serde_json::Value;
use std::time::Duration;
use support::{ApiServer, SimAdmin};

const MINUTES: Duration = Duration::from_secs(240);

fn examples() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples")
}

fn firewall_condition(c: &ProxmoxCluster) -> Option<(String, String, String)> {
    let status = c.status.as_ref()?;
    let found = status
        .common
        .conditions
        .iter()
        .find(|c| c.type_ == "FirewallReady")?;
    Some((
        found.status.clone(),
        found.reason.clone(),
        found.message.clone(),
    ))
}

/// The entries of IP set `name` as the simulator holds them.
fn entries(firewall: &Value, name: &str) -> Vec<String> {
    let listed = firewall["ipsets"][name]["entries"].as_array().cloned();
    let mut found: Vec<String> = listed
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["cidr"].as_str().map(str::to_owned))
        .collect();
    found.sort();
    found
}

/// The derived rules of guest `vmid` (dport, source), as the simulator holds them.
async fn derived(sim: &SimAdmin, vmid: u32) -> Vec<(String, String)> {
    let guest = sim.guest(vmid).await;
    let text = |r: &Value, k: &str| r[k].as_str().unwrap_or_default().to_owned();
    guest["firewall_rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| text(r, "comment").starts_with("phoenix derived"))
        .map(|r| (text(r, "dport"), text(r, "source")))
        .collect()
}

fn firewall_writes(oplog: &[Value]) -> Vec<String> {
    oplog
        .iter()
        .filter(|o| o["mutating"] == true)
        .filter_map(|o| o["path"].as_str())
        .filter(|p| p.contains("/firewall/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn role_sets_follow_the_guests_rules_stay_and_enabling_is_refused_without_management() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--apply",
        examples(),
        "--resync-seconds",
        "1",
        "--task-duration",
        "default=0.2",
    ];
    let server = ApiServer::up_simulated(dir.path(), &args);
    let client = support::client(&server).await;
    support::all_guests_ready(&client, 6, 3).await;
    let lxcs: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    let address = |g: &LxcGuest| g.status.as_ref()?.guest.ip.clone();
    let traefik = address(&lxcs.get("traefik-internal").await.unwrap()).unwrap();
    let gateway = address(&lxcs.get("nginx-phoenix").await.unwrap()).unwrap();
    let sim = SimAdmin::of(&server);
    let clusters: Api<ProxmoxCluster> = Api::all(client.clone());
    support::wait_for(&clusters, "the firewall as the spec says", MINUTES, |cs| {
        cs.first()
            .and_then(|c| firewall_condition(c))
            .is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    support::until("the role sets filled", || async {
        let fw = sim.get("firewall").await;
        entries(&fw, "phoenix-traefik") == [traefik.clone()]
            && entries(&fw, "phoenix-gateway") == [gateway.clone()]
    })
    .await;
    let fw = sim.get("firewall").await;
    assert_eq!(entries(&fw, "management"), ["10.0.0.0/24"]);
    assert_eq!(fw["rules"].as_array().map(Vec::len), Some(3), "{fw:#}");
    // The spec's alias and security group, with the group's rule naming the alias.
    assert_eq!(fw["aliases"]["lan"]["cidr"], "10.0.0.0/24", "{fw:#}");
    let group = &fw["groups"]["ssh-from-lan"]["rules"];
    assert_eq!(group.as_array().map(Vec::len), Some(1), "{fw:#}");
    assert_eq!(group[0]["source"], "lan", "{fw:#}");
    assert_eq!(fw["options"]["enable"].as_i64().unwrap_or(0), 0, "{fw:#}");

    // The routes' derived rules: the backend opens its port to Traefik's set, the gateway
    // 80 and 443, each marked as derived, after the rules the spec states.
    // Step-CA's guest opens its ACME port to the set of the containers that depend on it
    // (the gateway, Traefik, ...) and Phoenix (here on loopback).
    support::until("the derived rules in place", || async {
        derived(&sim, 801).await == [("8000".to_owned(), "+phoenix-traefik".to_owned())]
            && derived(&sim, 101).await == [("80,443".to_owned(), String::new())]
            && derived(&sim, 103).await == [("9000".to_owned(), "+phoenix-acme-clients".to_owned())]
    })
    .await;
    let mut dependents: Vec<String> = lxcs
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|g| g.spec.common.depends_on.iter().any(|d| d.name == "step-ca"))
        .filter_map(|g| g.status.as_ref()?.guest.ip.clone())
        .map(|ip| ip.split('/').next().unwrap().to_owned())
        .chain(["127.0.0.1".to_owned()])
        .collect();
    dependents.sort();
    assert!(
        dependents.len() >= 3,
        "the gateway, Traefik and Phoenix at least: {dependents:?}"
    );
    assert_eq!(
        entries(&sim.get("firewall").await, "phoenix-acme-clients"),
        dependents
    );

    // Steady state: nothing written to the firewall over three resyncs.
    sim.clear_oplog().await;
    support::resync_rounds(&server, "ProxmoxCluster", 1, 3).await;
    support::resync_rounds(&server, "LxcGuest", 6, 3).await;
    let oplog = sim.get("oplog").await.as_array().cloned().unwrap();
    assert_eq!(firewall_writes(&oplog), Vec::<String>::new());

    // Traefik moves: one entry out, one in, no rule rewritten.
    sim.clear_oplog().await;
    let moved = serde_json::json!({"spec": {"network": [{"name": "eth0", "bridge": "vmbr0", "ip": "10.0.0.182/24", "gateway": "10.0.0.1"}]}});
    lxcs.patch(
        "traefik-internal",
        &PatchParams::default(),
        &Patch::Merge(&moved),
    )
    .await
    .unwrap();
    support::until("Traefik's new address in its sets", || async {
        let fw = sim.get("firewall").await;
        entries(&fw, "phoenix-traefik") == ["10.0.0.182"]
            && entries(&fw, "phoenix-acme-clients").contains(&"10.0.0.182".to_owned())
    })
    .await;
    let oplog = sim.get("oplog").await.as_array().cloned().unwrap();
    let writes = firewall_writes(&oplog);
    // Traefik is in two sets: Traefik's, and Step-CA's clients (it depends on Step-CA).
    let in_sets = |p: &String| {
        p.contains("/ipset/phoenix-traefik") || p.contains("/ipset/phoenix-acme-clients")
    };
    assert!(
        writes.iter().all(in_sets) && writes.len() == 4,
        "one entry added and one removed per set, no rule touched: {writes:?}"
    );

    // Enabling without the address Phoenix reaches PVE from (127.0.0.1 here) is refused.
    let enable = |management: &[&str]| serde_json::json!({"spec": {"firewall": {"enabled": true, "management": management}}});
    clusters
        .patch(
            "homelab",
            &PatchParams::default(),
            &Patch::Merge(&enable(&["10.0.0.0/24"])),
        )
        .await
        .unwrap();
    support::wait_for(&clusters, "WouldLockOut", MINUTES, |cs| {
        cs.first()
            .and_then(|c| firewall_condition(c))
            .is_some_and(|(s, reason, message)| {
                s == "False" && reason == "WouldLockOut" && message.contains("127.0.0.1")
            })
    })
    .await;
    let fw = sim.get("firewall").await;
    assert_eq!(
        fw["options"]["enable"].as_i64().unwrap_or(0),
        0,
        "not enabled"
    );
    clusters
        .patch(
            "homelab",
            &PatchParams::default(),
            &Patch::Merge(&enable(&["10.0.0.0/24", "127.0.0.0/8"])),
        )
        .await
        .unwrap();
    support::until("the firewall enabled", || async {
        sim.get("firewall").await["options"]["enable"].as_i64() == Some(1)
    })
    .await;
    assert_eq!(
        entries(&sim.get("firewall").await, "management"),
        ["10.0.0.0/24", "127.0.0.0/8"]
    );
}
