//! ProxmoxHost's storage, network, firewall and system areas on the simulated node: the
//! example host converges (pools made through PVE's API, datasets and the NFS export on
//! the node, storages, the bridge through PVE's pending/apply cycle, the node firewall,
//! the system features under their lock and marker) and then stays still; a failing
//! `zfs` step names itself, backs off and recovers; a dataset changed on the node is put
//! back; network changes someone else staged are never applied, and the address Phoenix
//! reaches PVE at is never moved.

mod support;

use kube::api::{Api, Patch, PatchParams};
use phoenix_crds::ProxmoxHost;
use serde_json::{Value, json};
use std::path::Path;
use support::host::{self, MINUTES};
use support::{ApiServer, SimAdmin};

/// The simulator and Phoenix with the homelab cluster, and the example host applied.
async fn with_host(dir: &Path, answers: Value) -> (ApiServer, SimAdmin, Api<ProxmoxHost>) {
    let server = host::up_with_cluster(dir, "2").await;
    let sim = SimAdmin::of(&server);
    sim.put("nodes/phoenix/answers", answers).await;
    support::kubectl_apply(&server, &host::example_yaml());
    let client = support::client(&server).await;
    (server, sim, Api::all(client))
}

/// `phoenix sim show WHAT` against the test's simulator.
fn sim_show(server: &ApiServer, what: &str) -> Value {
    let credentials = server.data_dir.join("sim.json");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"));
    command
        .args(["sim", "show", "--credentials"])
        .arg(&credentials)
        .arg(what);
    serde_json::from_str(&support::succeed(&mut command, "phoenix sim show")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_host_converges_every_area_and_then_stays_still() {
    let dir = tempfile::tempdir().unwrap();
    let (server, sim, hosts) = with_host(dir.path(), json!([])).await;
    host::wait_ready(&hosts).await;
    let listed = support::kubectl(&server, &["get", "proxmoxhosts"]);
    for column in ["STORAGE", "NETWORK", "FIREWALL", "SYSTEM", "DNS"] {
        assert!(listed.contains(column), "{listed}");
    }
    assert!(listed.matches("True").count() >= 7, "{listed}");

    // Pools as the spec says, made through PVE's API (as `phoenix sim show zfs` prints
    // them for `make run`); the datasets and their properties.
    let zfs = sim_show(&server, "zfs");
    assert_eq!(zfs["pools"]["fastData"]["raidlevel"], "mirror", "{zfs:#}");
    assert_eq!(zfs["pools"]["slowData"]["raidlevel"], "raidz2", "{zfs:#}");
    let listed = sim
        .exec_node(
            "phoenix",
            &[
                "zfs",
                "list",
                "-H",
                "-p",
                "-o",
                "name,recordsize,mountpoint,atime",
                "-t",
                "filesystem",
            ],
        )
        .await;
    let datasets = listed["output"].as_str().unwrap_or_default();
    for line in [
        "fastData/ISOs\t1048576\t/fastData/ISOs\ton",
        "fastData/VMs\t131072\t/fastData/VMs\ton",
        "fastData/LXCs\t131072\t/fastData/LXCs\ton",
        "fastData/quickOS\t131072\t/mnt/pve/quickOS\toff",
    ] {
        assert!(datasets.lines().any(|l| l == line), "{line} in {datasets}");
    }
    // The export, read by exportfs from Phoenix's file; the storages.
    let exports = sim.get("nodes/phoenix/exports").await;
    let export = &exports[0];
    assert_eq!(export["path"], "/mnt/pve/quickOS", "{exports:#}");
    assert!(export.to_string().contains("10.0.0.0/24"), "{exports:#}");
    let storages = sim.api(reqwest::Method::GET, "/storage", &[]).await;
    let quick = storages
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["storage"] == "quickOS")
        .unwrap_or_else(|| panic!("quickOS added: {storages:#}"));
    assert_eq!(quick["type"], "dir");
    assert_eq!(quick["path"], "/mnt/pve/quickOS");

    // The bridge: changed in the pending config, then applied; nothing left pending.
    let network = sim_show(&server, "network");
    assert!(network["pending"].is_null(), "{network:#}");
    let vmbr0 = network["running"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["iface"] == "vmbr0")
        .unwrap()
        .clone();
    assert_eq!(
        vmbr0["bridge_vlan_aware"].to_string().trim_matches('"'),
        "1",
        "{vmbr0:#}"
    );
    assert_eq!(
        vmbr0["comments"].as_str().map(str::trim),
        Some("Phoenix LAN")
    );

    // The node's firewall, and the system features with their files and markers.
    let firewall = sim.get("nodes/phoenix/firewall").await;
    assert_eq!(
        firewall["rules"].as_array().unwrap().len(),
        4,
        "{firewall:#}"
    );
    // The datacenter's security group first, as the spec lists it.
    assert_eq!(firewall["rules"][0]["type"], "group", "{firewall:#}");
    assert_eq!(
        firewall["rules"][0]["action"], "ssh-from-lan",
        "{firewall:#}"
    );
    let files = sim.get("nodes/phoenix/files").await;
    for path in [
        "/etc/exports.d/phoenix.exports",
        "/etc/apparmor.d/phoenix-docker-in-lxc",
        "/etc/modules-load.d/phoenix-nvidia.conf",
        "/var/lib/phoenix/features/host-packages.done",
        "/var/lib/phoenix/features/host-nvidia.done",
    ] {
        assert!(files.get(path).is_some(), "{path} on the node");
    }
    let log = host::node_log(&sim).await;
    let ran = |needle: &str| {
        log.iter()
            .any(|(c, exit, _)| c.contains(needle) && *exit == 0)
    };
    assert!(ran("apt-get install -y -q nfs-kernel-server dnsmasq curl"));
    assert!(ran(
        "apparmor_parser -r -W /etc/apparmor.d/phoenix-docker-in-lxc"
    ));
    assert!(ran("localedef -i en_US -c -f UTF-8"));
    assert!(ran(
        "getent group quickos >/dev/null || groupadd -g 2000 quickos"
    ));
    assert!(ran("useradd -m -u 2000 -s /usr/sbin/nologin quickos"));

    // Steady state: three resyncs change nothing, on PVE or on the node.
    sim.clear_oplog().await;
    let before = host::node_log(&sim).await.len();
    support::resync_rounds(&server, "ProxmoxHost", 1, 3).await;
    let writes = sim.mutating_calls().await;
    assert!(
        writes.is_empty(),
        "no PVE writes at steady state: {writes:#?}"
    );
    let after = host::node_log(&sim).await;
    let acting: Vec<&String> = after[before..]
        .iter()
        .map(|(c, _, _)| c)
        .filter(|c| !host::observation(c))
        .collect();
    assert!(
        acting.is_empty(),
        "only observations on the node: {acting:#?}"
    );
    assert_eq!(files, sim.get("nodes/phoenix/files").await);

    // A dataset's property changed on the node is drift: put back, and said.
    sim.exec_node(
        "phoenix",
        &["zfs", "set", "recordsize=131072", "fastData/ISOs"],
    )
    .await;
    let put_back = || async {
        let out = sim
            .exec_node(
                "phoenix",
                &[
                    "zfs",
                    "list",
                    "-H",
                    "-p",
                    "-o",
                    "name,recordsize",
                    "fastData/ISOs",
                ],
            )
            .await;
        out["output"].as_str().unwrap_or_default().trim() == "fastData/ISOs\t1048576"
    };
    support::until("the recordsize put back", put_back).await;
    let events = support::kubectl(
        &server,
        &["get", "events", "--field-selector", "reason=DriftCorrected"],
    );
    assert!(
        events.contains("set recordsize=1M on fastData/ISOs"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_zfs_step_names_itself_backs_off_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let refuse = "create -p -o recordsize=1M fastData/ISOs";
    let answers = json!([{"matches": refuse, "exit": 1,
        "output": "cannot create 'fastData/ISOs': out of space", "times": 2}]);
    let (server, sim, hosts) = with_host(dir.path(), answers).await;
    support::wait_for(&hosts, "the failing step named", MINUTES, |hs| {
        hs.first()
            .and_then(|h| host::condition(h, "StorageReady"))
            .is_some_and(|(status, reason, message)| {
                status == "False"
                    && reason == "HostStepFailed"
                    && message.contains("create fastData/ISOs")
                    && message.contains("out of space")
            })
    })
    .await;
    host::wait_ready(&hosts).await;
    let attempts: Vec<(i64, u64)> = host::node_log(&sim)
        .await
        .into_iter()
        .filter(|(c, _, _)| c.contains(refuse))
        .map(|(_, exit, started)| (exit, started))
        .collect();
    let exits: Vec<i64> = attempts.iter().map(|(e, _)| *e).collect();
    assert_eq!(exits, [1, 1, 0], "two refusals, then made: {attempts:?}");
    let gaps: Vec<u64> = attempts.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(
        gaps[0] >= 900 && gaps[1] > gaps[0],
        "retried after a growing pause: {gaps:?} ms"
    );
    let events = host::events(&server);
    assert!(
        events.contains("HostStepFailed") && events.contains("PoolCreating"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn network_changes_someone_else_staged_are_never_applied_nor_the_management_address_moved() {
    let dir = tempfile::tempdir().unwrap();
    let server = host::up_with_cluster(dir.path(), "2").await;
    let sim = SimAdmin::of(&server);
    // Someone staged a bridge in PVE's UI and did not apply it.
    sim.api(
        reqwest::Method::POST,
        "/nodes/phoenix/network",
        &[("iface", "vmbr9"), ("type", "bridge")],
    )
    .await;
    support::kubectl_apply(&server, &host::example_yaml());
    let hosts: Api<ProxmoxHost> = Api::all(support::client(&server).await);
    support::wait_for(&hosts, "the foreign pending changes said", MINUTES, |hs| {
        hs.first()
            .and_then(|h| host::condition(h, "NetworkReady"))
            .is_some_and(|(status, reason, _)| {
                status == "False" && reason == "PendingNetworkChanges"
            })
    })
    .await;
    let network = sim.get("nodes/phoenix/network").await;
    let pending = network["pending"].as_array().unwrap();
    let vmbr0 = pending.iter().find(|i| i["iface"] == "vmbr0").unwrap();
    assert!(
        vmbr0["bridge_vlan_aware"].is_null() || vmbr0["bridge_vlan_aware"] == 0,
        "nothing of Phoenix's staged beside them: {vmbr0:#}"
    );
    assert!(pending.iter().any(|i| i["iface"] == "vmbr9"));
    // Reverted by their owner: Phoenix goes on.
    sim.api(reqwest::Method::DELETE, "/nodes/phoenix/network", &[])
        .await;
    host::wait_ready(&hosts).await;

    // Moving the node's own address (the one Phoenix reaches PVE at) is refused.
    let patch = json!({"spec": {"network": {"bridges": [{"name": "vmbr0", "ports": ["eno1"],
        "cidr": "10.0.0.14/24", "gateway": "10.0.0.1", "vlanAware": true, "comment": "Phoenix LAN"}]}}});
    hosts
        .patch("phoenix", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    support::wait_for(&hosts, "the lock-out refused", MINUTES, |hs| {
        hs.first()
            .and_then(|h| host::condition(h, "NetworkReady"))
            .is_some_and(|(status, reason, message)| {
                status == "False" && reason == "WouldLockOut" && message.contains("10.0.0.13")
            })
    })
    .await;
    let network = sim.get("nodes/phoenix/network").await;
    assert!(network["pending"].is_null(), "nothing staged: {network:#}");
}
