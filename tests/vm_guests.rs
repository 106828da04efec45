//! The VmGuest slice end to end: `phoenix up --simulate`, the stock kubectl, and the
//! simulated PVE (its operation log, its VMs' agents and their docker swarm) as witness.

mod support;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use phoenix_crds::VmGuest;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{ApiServer, SimAdmin};

/// Not on the simulated node yet (unlike the examples' image): PVE downloads it.
const IMAGE: &str =
    "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64-disk-kvm.img";

const TEMPLATE: &str = r#"
apiVersion: phoenix.thinkheads.ai/v1alpha1
kind: VmGuest
metadata: {name: golden, namespace: default}
spec:
  vmid: 9000
  name: golden
  node: phoenix
  template: true
  source: {cloudImage: {url: "IMAGE"}}
  disks: [{slot: scsi0, storage: fastData, size: 8G}]
  network: [{index: 0}]
  cloudInit: {user: ubuntu, driveStorage: fastData}
"#;

const CLONE: &str = r#"
apiVersion: phoenix.thinkheads.ai/v1alpha1
kind: VmGuest
metadata: {name: NAME, namespace: default}
spec:
  vmid: VMID
  name: NAME
  node: phoenix
  source: {clone: {vmid: 9000, full: true}}
  memory: 2048
  hotplug: [cpu, memory, disk, network]
  disks: [{slot: scsi0, storage: fastData, size: 16G}]
  network: [{index: 0, ip: 10.0.0.OCTET/24, gateway: 10.0.0.1}]
  cloudInit:
    user: ubuntu
    sshKeysSecretRefs: [{name: admin-ssh-keys, key: authorized_keys}]
  provisioning: {docker: {}}
  dependsOn: [{kind: VmGuest, name: golden}]
"#;

fn template() -> String {
    TEMPLATE.replace("IMAGE", IMAGE)
}

/// A clone of 9000 with docker, at 10.0.0.(100 + vmid % 100), `extra` appended to its spec.
fn clone(name: &str, vmid: u32, extra: &str) -> String {
    CLONE
        .replace("NAME", name)
        .replace("VMID", &vmid.to_string())
        .replace("OCTET", &(100 + vmid % 100).to_string())
        + extra
}

const MANAGER: &str = "  swarm: {role: manager}\n";
const WORKER: &str = "  swarm: {role: worker, managerRef: {name: manager}}\n";

/// The cluster, the ssh keys, the template and a manager (1001) and worker (1002).
async fn swarm_platform(server: &ApiServer) {
    let manifests = [
        template(),
        clone("manager", 1001, MANAGER),
        clone("worker", 1002, WORKER),
    ];
    platform_with(server, &manifests).await;
}

/// Deletes `name` under `policy` and waits until the object is gone.
async fn delete_with(api: &Api<VmGuest>, name: &str, policy: &str) {
    api.patch(
        name,
        &PatchParams::default(),
        &patch(json!({"spec": {"deletionPolicy": policy}})),
    )
    .await
    .unwrap();
    api.delete(name, &DeleteParams::default()).await.unwrap();
    support::wait_for(
        api,
        &format!("{name} gone"),
        Duration::from_secs(60),
        |vms| vms.iter().all(|v| v.metadata.name.as_deref() != Some(name)),
    )
    .await;
}

/// The cluster, the ssh keys' Secret, and `manifests`.
async fn platform_with(server: &ApiServer, manifests: &[String]) {
    support::homelab_cluster(server).await;
    let keys = format!(
        "{}/examples/secret-admin-ssh-keys.yaml",
        std::env::var("CARGO_MANIFEST_DIR").unwrap()
    );
    support::kubectl(server, &["apply", "-f", &keys]);
    support::kubectl_apply(server, &manifests.join("---\n"));
}

fn conditions(vm: &VmGuest) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    vm.status
        .as_ref()
        .map(|s| s.common.conditions.clone())
        .unwrap_or_default()
}

fn ready(vm: &VmGuest) -> bool {
    support::is_ready(&conditions(vm))
}

async fn all_ready(api: &Api<VmGuest>, count: usize, timeout: Duration) {
    support::wait_for(api, &format!("{count} VmGuests Ready"), timeout, |vms| {
        vms.len() == count && vms.iter().all(|v| ready(v))
    })
    .await;
}

/// Until `done` holds of the simulator's state at `path` (under `/admin`).
async fn wait_sim(sim: &SimAdmin, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let state = sim.get(path).await;
            if done(&state) {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The lines of VM `vmid`'s command log that contain `needle`.
async fn commands(sim: &SimAdmin, vmid: u32, needle: &str) -> Vec<String> {
    sim.guest(vmid).await["log"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["command"].as_str())
        .filter(|c| c.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// The nodes of the simulated swarms: (vmid, id, status).
async fn swarm_nodes(sim: &SimAdmin) -> Vec<(u64, String, String)> {
    let guests = sim.get("swarms").await;
    guests
        .as_object()
        .into_iter()
        .flat_map(|swarms| swarms.values())
        .flat_map(|s| s["nodes"].as_array().cloned().unwrap_or_default())
        .map(|n| {
            (
                n["vmid"].as_u64().unwrap_or(0),
                n["id"].as_str().unwrap_or("").to_owned(),
                n["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Mutating calls in the oplog whose path names `vmid`.
fn touching(calls: &[Value], vmid: u32) -> Vec<Value> {
    calls
        .iter()
        .filter(|c| {
            c["path"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("/{vmid}"))
        })
        .cloned()
        .collect()
}

fn patch(value: Value) -> Patch<Value> {
    Patch::Merge(value)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_its_parallel_clones_and_their_swarm_converge_change_in_place_and_leave_cleanly()
{
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("phoenix.log");
    let server = ApiServer::up_simulated_logged(
        dir.path(),
        &[
            "--resync-seconds",
            "1",
            "--task-duration",
            "default=0.2",
            "--task-duration",
            "qmclone=1.5",
        ],
        &log,
    );
    let sim = SimAdmin::of(&server);
    swarm_platform(&server).await;
    let client = support::client(&server).await;
    let api: Api<VmGuest> = Api::namespaced(client.clone(), "default");

    // The two clones of the stopped template run at the same time (PVE's shared lock).
    let watcher = {
        let sim = SimAdmin::of(&server);
        tokio::spawn(async move {
            let mut most = 0;
            for _ in 0..1200 {
                let tasks = sim.get("tasks").await;
                let cloning = tasks
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|t| t["kind"] == "qmclone" && t["state"] == "Running")
                    .count();
                most = most.max(cloning);
                if most >= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            most
        })
    };
    all_ready(&api, 3, Duration::from_secs(120)).await;
    assert_eq!(watcher.await.unwrap(), 2, "both clones ran at once");

    // The template: downloaded, imported with a cloud-init drive and a serial console,
    // converted; the calls were all valid (no 4xx in a clean run).
    let oplog = sim.get("oplog").await;
    let ops = oplog.as_array().unwrap();
    let bad: Vec<&Value> = ops
        .iter()
        .filter(|o| o["status"].as_u64() >= Some(400))
        .collect();
    assert!(
        bad.iter().all(|o| o["status"] != 400),
        "no call refused by the schema: {bad:?}"
    );
    let download = ops
        .iter()
        .find(|o| o["path"].as_str().unwrap().ends_with("/download-url"))
        .expect("the image is downloaded through PVE");
    let file = download["params"]["filename"].as_str().unwrap().to_owned();
    assert!(
        file.starts_with("noble-server-cloudimg-amd64-disk-kvm-") && file.ends_with(".qcow2"),
        "{file}"
    );
    assert_eq!(download["params"]["url"], IMAGE);
    let create = ops
        .iter()
        .find(|o| o["method"] == "POST" && o["path"] == "/nodes/phoenix/qemu")
        .expect("9000 is created");
    assert_eq!(
        create["params"]["scsi0"],
        format!("fastData:0,import-from=local:import/{file}")
    );
    assert_eq!(create["params"]["ide2"], "fastData:cloudinit");
    assert_eq!(create["params"]["serial0"], "socket");
    assert_eq!(create["params"]["agent"], "1");
    assert!(
        ops.iter()
            .any(|o| o["path"] == "/nodes/phoenix/qemu/9000/template")
    );
    let golden = api.get("golden").await.unwrap().status.unwrap();
    assert_eq!(golden.template_generation, Some(1));
    assert_eq!(golden.guest.state.as_deref(), Some("template"));

    // The clones: agent addresses, docker applied, the swarm formed.
    let manager = api.get("manager").await.unwrap().status.unwrap();
    let worker = api.get("worker").await.unwrap().status.unwrap();
    assert_eq!(manager.guest.ip.as_deref(), Some("10.0.0.101"));
    assert_eq!(worker.guest.ip.as_deref(), Some("10.0.0.102"));
    assert_eq!(worker.agent.as_deref(), Some("running"));
    // A pass may start from a status older than the last one written (the cache lags the
    // write); the agent's state follows the addresses the pass recalls, not that status.
    let stale = json!({"status": {"agent": "starting"}});
    let patched = api
        .patch_status("worker", &PatchParams::default(), &Patch::Merge(&stale))
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().agent.as_deref(), Some("starting"));
    support::wait_for(
        &api,
        "the worker's agent reported running again",
        Duration::from_secs(30),
        |vms| {
            vms.iter().any(|v| {
                v.metadata.name.as_deref() == Some("worker")
                    && v.status.as_ref().and_then(|s| s.agent.as_deref()) == Some("running")
            })
        },
    )
    .await;
    assert!(worker.guest.features.iter().any(|f| f.name == "docker"));
    let manager_swarm = manager.swarm.clone().unwrap();
    let worker_swarm = worker.swarm.clone().unwrap();
    assert_eq!(
        (
            manager_swarm.role.as_deref(),
            manager_swarm.state.as_deref()
        ),
        (Some("manager"), Some("active"))
    );
    assert_eq!(
        (worker_swarm.role.as_deref(), worker_swarm.state.as_deref()),
        (Some("worker"), Some("active"))
    );
    let nodes = swarm_nodes(&sim).await;
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(nodes.iter().all(|(_, _, status)| status == "ready"));
    let config = &sim.guest(1002).await["config"];
    assert_eq!(
        config["sshkeys"],
        "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIReplaceWithYourKey%20admin%40phoenix"
    );
    assert_eq!(config["ipconfig0"], "ip=10.0.0.102/24,gw=10.0.0.1");
    assert!(config["scsi0"].as_str().unwrap().contains("size=16G"));
    let table = support::kubectl(&server, &["get", "vmguests", "-o", "wide"]);
    for expected in [
        "golden",
        "template",
        "manager",
        "worker",
        "10.0.0.102",
        "running",
    ] {
        assert!(table.contains(expected), "{expected} in:\n{table}");
    }

    // Steady state: resyncs read, and change nothing in PVE.
    sim.clear_oplog().await;
    support::resync_rounds(&server, "VmGuest", 3, 3).await;
    assert_eq!(sim.mutating_calls().await, Vec::<Value>::new());

    // The join token went from the manager to the worker and nowhere else.
    let swarms = sim.get("swarms").await;
    let token = swarms.as_object().unwrap().values().next().unwrap()["workerToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = support::kubectl(&server, &["get", "events", "-o", "yaml"]);
    let statuses = support::kubectl(&server, &["get", "vmguests", "-o", "yaml"]);
    let logged = std::fs::read_to_string(&log).unwrap();
    for (place, text) in [("events", &events), ("status", &statuses), ("log", &logged)] {
        assert!(!text.contains(&token), "the swarm token in the {place}");
    }

    // Drift: memory changed in the PVE UI is put back at the next resync, with an event;
    // a NIC the spec does not list is removed.
    sim.api(
        Method::PUT,
        "/nodes/phoenix/qemu/1001/config",
        &[("memory", "1024"), ("net1", "virtio,bridge=vmbr0")],
    )
    .await;
    wait_sim(&sim, "guests/1001", "the drift corrected", |g| {
        g["config"]["memory"] == "2048" && g["config"]["net1"].is_null()
    })
    .await;
    let story = support::kubectl(&server, &["describe", "vmguest", "manager"]);
    assert!(
        story.contains("DriftCorrected") && story.contains("memory 1024 → 2048"),
        "{story}"
    );

    // `phoenix plan` says which changes need a reboot and which a replace.
    sim.clear_oplog().await;
    let file = dir.path().join("changed.yaml");
    let changed = [
        template().replace("current/", "20261101/"),
        clone("worker", 1002, WORKER)
            .replace("memory: 2048", "memory: 4096")
            .replace("[cpu, memory, disk, network]", "[cpu, disk, network]"),
    ];
    std::fs::write(&file, changed.join("---\n")).unwrap();
    let text = support::plan(&server, file.to_str().unwrap());
    assert!(
        text.contains("memory: 2048 -> 4096 (needs restart)"),
        "{text}"
    );
    assert!(
        text.contains("restart (to apply changes that need it)"),
        "{text}"
    );
    assert!(
        text.contains(
            "1. destroy the template to build a new generation from the changed source (replace)"
        ),
        "{text}"
    );
    assert_eq!(
        sim.mutating_calls().await,
        Vec::<Value>::new(),
        "plan changes nothing"
    );

    // Memory of the worker: hot-plugged in place, never a restart or a re-create.
    let started = sim.guest(1002).await["started_at_ms"].clone();
    api.patch(
        "worker",
        &PatchParams::default(),
        &patch(json!({"spec": {"memory": 4096}})),
    )
    .await
    .unwrap();
    wait_sim(&sim, "guests/1002", "memory hot-plugged", |g| {
        g["config"]["memory"] == "4096"
    })
    .await;
    all_ready(&api, 3, Duration::from_secs(30)).await;
    let calls = touching(&sim.mutating_calls().await, 1002);
    assert!(
        calls
            .iter()
            .all(|c| c["path"] == "/nodes/phoenix/qemu/1002/config"),
        "only a config change: {calls:?}"
    );
    assert_eq!(
        sim.guest(1002).await["started_at_ms"],
        started,
        "not restarted"
    );

    // Without memory hotplug the change needs a reboot, which restartPolicy allows.
    sim.clear_oplog().await;
    api.patch(
        "worker",
        &PatchParams::default(),
        &patch(json!({"spec": {"memory": 6144, "hotplug": ["cpu", "disk", "network"]}})),
    )
    .await
    .unwrap();
    wait_sim(&sim, "oplog", "the reboot", |log| {
        log.as_array()
            .unwrap()
            .iter()
            .any(|o| o["path"] == "/nodes/phoenix/qemu/1002/status/reboot")
    })
    .await;
    all_ready(&api, 3, Duration::from_secs(30)).await;
    let calls = touching(&sim.mutating_calls().await, 1002);
    assert!(
        calls.iter().all(|c| {
            let path = c["path"].as_str().unwrap();
            path.ends_with("/config") || path.ends_with("/status/reboot")
        }),
        "no re-create: {calls:?}"
    );

    // A new image builds a new template generation; the running clones are not touched.
    sim.clear_oplog().await;
    let newer =
        "https://cloud-images.ubuntu.com/noble/20261101/noble-server-cloudimg-amd64-disk-kvm.img";
    api.patch(
        "golden",
        &PatchParams::default(),
        &patch(json!({"spec": {"source": {"cloudImage": {"url": newer}}}})),
    )
    .await
    .unwrap();
    support::wait_for(&api, "generation 2", Duration::from_secs(60), |vms| {
        vms.iter().any(|v| {
            v.metadata.name.as_deref() == Some("golden")
                && ready(v)
                && v.status.as_ref().and_then(|s| s.template_generation) == Some(2)
        })
    })
    .await;
    let calls = sim.mutating_calls().await;
    assert!(touching(&calls, 1001).is_empty() && touching(&calls, 1002).is_empty());
    let description = sim.guest(9000).await["config"]["description"].clone();
    assert!(
        description.as_str().unwrap().contains(newer),
        "{description}"
    );

    // A worker that left the swarm is joined again, its old node removed on the manager.
    sim.api(
        Method::POST,
        "/nodes/phoenix/qemu/1002/agent/exec",
        &[
            ("command", "docker"),
            ("command", "swarm"),
            ("command", "leave"),
        ],
    )
    .await;
    let old_id = worker_swarm.node_id.clone().unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let nodes = swarm_nodes(&sim).await;
            let rejoined = nodes.len() == 2
                && nodes.iter().all(|(_, id, s)| s == "ready" && *id != old_id)
                && nodes.iter().filter(|(v, _, _)| *v == 1002).count() == 1;
            if rejoined {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the worker rejoined and the manager forgot the old node");
    assert_eq!(commands(&sim, 1002, "docker swarm join").await.len(), 2);

    // Deleting the worker: it leaves the swarm, the manager removes it, then it is destroyed.
    api.delete("worker", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for(&api, "the worker gone", Duration::from_secs(60), |vms| {
        vms.iter()
            .all(|v| v.metadata.name.as_deref() != Some("worker"))
    })
    .await;
    assert!(sim.get("guests").await["1002"].is_null(), "1002 destroyed");
    let nodes = swarm_nodes(&sim).await;
    assert_eq!(
        nodes.iter().map(|n| n.0).collect::<Vec<_>>(),
        vec![1001],
        "{nodes:?}"
    );
    assert!(
        !commands(&sim, 1001, "docker node rm").await.is_empty(),
        "the manager removed the node"
    );

    // Retain: the manager VM and its swarm stay, without Phoenix's marker.
    delete_with(&api, "manager", "Retain").await;
    let kept = sim.guest(1001).await;
    assert_eq!(kept["running"], true);
    assert!(kept["config"]["description"].is_null());
    assert_eq!(
        swarm_nodes(&sim).await.len(),
        1,
        "the swarm is left as it is"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_agent_is_reported_after_its_timeout_without_a_hot_loop_and_converges_later() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &["--task-duration", "default=0.2"]);
    let sim = SimAdmin::of(&server);
    sim.put("faults", json!({"agentDown": [1003]})).await;
    let quiet = clone("quiet", 1003, "  agent: {timeoutSeconds: 10}\n");
    platform_with(&server, &[template(), quiet]).await;
    let api: Api<VmGuest> = Api::namespaced(support::client(&server).await, "default");
    support::wait_for(&api, "AgentNotResponding", Duration::from_secs(90), |vms| {
        vms.iter()
            .any(|v| support::ready_reason(&conditions(v)) == "AgentNotResponding")
    })
    .await;
    let vm = api.get("quiet").await.unwrap();
    assert_eq!(
        vm.status.as_ref().unwrap().agent.as_deref(),
        Some("notResponding")
    );
    let story = support::kubectl(&server, &["describe", "vmguest", "quiet"]);
    assert!(
        story.contains("Warning") && story.contains("qemu-guest-agent installed"),
        "{story}"
    );

    // No hot loop: the agent is asked again at the timeout's pace.
    let asked = |log: &Value| {
        log.as_array()
            .unwrap()
            .iter()
            .filter(|o| o["path"] == "/nodes/phoenix/qemu/1003/agent/network-get-interfaces")
            .count()
    };
    sim.clear_oplog().await;
    let mut times = Vec::new();
    for n in 1..=2 {
        wait_sim(&sim, "oplog", "the agent asked again", |log| {
            asked(log) >= n
        })
        .await;
        times.push(Instant::now());
    }
    let gap = times[1] - times[0];
    assert!(gap >= Duration::from_secs(8), "asked again after {gap:?}");

    // The agent comes up: the VM converges.
    sim.put("faults", json!({})).await;
    support::wait_for(&api, "Ready", Duration::from_secs(60), |vms| {
        vms.iter()
            .any(|v| v.metadata.name.as_deref() == Some("quiet") && ready(v))
    })
    .await;
    let vm = api.get("quiet").await.unwrap();
    assert_eq!(vm.status.unwrap().guest.ip.as_deref(), Some("10.0.0.103"));
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_a_clone_and_during_a_swarm_join_one_vm_each_and_one_membership() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--task-duration",
        "default=0.2",
        "--task-duration",
        "qmclone=3",
    ];
    let server = ApiServer::up_simulated(dir.path(), &args);
    swarm_platform(&server).await;
    let sim = SimAdmin::of(&server);
    wait_sim(&sim, "tasks", "a clone running", |tasks| {
        tasks
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"] == "qmclone" && t["state"] == "Running")
    })
    .await;
    server.kill();

    let server = ApiServer::up_simulated(dir.path(), &args);
    let sim = SimAdmin::of(&server);
    // The join answers only after 3 s: the kill lands between the join and its record.
    sim.put(
        "guests/1002/answers",
        json!([{"matches": "docker swarm join", "delayMs": 3000, "times": 1}]),
    )
    .await;
    wait_sim(&sim, "guests/1002", "the swarm join", |g| {
        g["log"].as_array().into_iter().flatten().any(|r| {
            r["command"]
                .as_str()
                .unwrap_or("")
                .contains("docker swarm join")
        })
    })
    .await;
    server.kill();

    let server = ApiServer::up_simulated(dir.path(), &args);
    let sim = SimAdmin::of(&server);
    let api: Api<VmGuest> = Api::namespaced(support::client(&server).await, "default");
    all_ready(&api, 3, Duration::from_secs(120)).await;
    let guests = sim.get("guests").await;
    let vms: Vec<&String> = guests
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, g)| g["kind"] == "Qemu")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        vms,
        vec!["1001", "1002", "9000"],
        "no VM twice, none left over"
    );
    let clones = sim
        .get("tasks")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "qmclone")
        .count();
    assert_eq!(clones, 2, "one clone per VM");
    assert_eq!(commands(&sim, 1002, "docker swarm join").await.len(), 1);
    let nodes = swarm_nodes(&sim).await;
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(nodes.iter().all(|(_, _, s)| s == "ready"));
    let worker = api.get("worker").await.unwrap().status.unwrap();
    assert_eq!(worker.swarm.unwrap().state.as_deref(), Some("active"));

    // Retain: the worker's object goes; the VM and its place in the swarm stay.
    delete_with(&api, "worker", "Retain").await;
    assert_eq!(sim.guest(1002).await["running"], true);
    assert!(commands(&sim, 1002, "docker swarm leave").await.is_empty());
    let nodes = swarm_nodes(&sim).await;
    assert_eq!(nodes.len(), 2, "both still in the swarm: {nodes:?}");
}

const USER_DATA: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cloud-config, namespace: default}
data:
  user-data: |
    #cloud-config
    packages: [PACKAGE]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn user_data_reaches_cloud_init_as_a_snippet_and_a_change_reboots_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(
        dir.path(),
        &["--resync-seconds", "1", "--task-duration", "default=0.2"],
    );
    let sim = SimAdmin::of(&server);
    let configured = clone("configured", 1004, "").replace(
        "    user: ubuntu\n",
        "    user: ubuntu\n    userData: {name: cloud-config, key: user-data}\n",
    );
    let misplaced = clone("misplaced", 1005, "").replace(
        "    user: ubuntu\n",
        "    user: ubuntu\n    userData: {name: cloud-config, key: user-data}\n    snippetStorage: fastData\n",
    );
    let manifests = [
        USER_DATA.replace("PACKAGE", "jq"),
        template(),
        configured,
        misplaced,
    ];
    platform_with(&server, &manifests).await;
    let api: Api<VmGuest> = Api::namespaced(support::client(&server).await, "default");
    support::wait_for(
        &api,
        "1004 Ready, 1005 refused",
        Duration::from_secs(90),
        |vms| {
            let reason = |name: &str| {
                vms.iter()
                    .find(|v| v.metadata.name.as_deref() == Some(name))
                    .map(|v| support::ready_reason(&conditions(v)))
            };
            vms.iter()
                .any(|v| v.metadata.name.as_deref() == Some("configured") && ready(v))
                && reason("misplaced").as_deref() == Some("SnippetStorageUnsupported")
        },
    )
    .await;
    assert!(
        sim.get("guests").await["1005"].is_null(),
        "nothing created for 1005"
    );

    let snippet = |guest: Value| {
        let cicustom = guest["config"]["cicustom"].as_str().unwrap().to_owned();
        let name = cicustom.rsplit('/').next().unwrap().to_owned();
        (cicustom, name)
    };
    let (cicustom, name) = snippet(sim.guest(1004).await);
    assert!(
        cicustom.starts_with("user=local:snippets/phoenix-1004-user-"),
        "{cicustom}"
    );
    let files = sim.get("nodes/phoenix/files").await;
    let written = &files[format!("/var/lib/vz/snippets/{name}")];
    assert!(
        written.as_str().unwrap().contains("packages: [jq]"),
        "{written}"
    );

    // New user data: a new snippet, a new cicustom (a new instance-id), a reboot into it.
    sim.clear_oplog().await;
    support::kubectl_apply(&server, &USER_DATA.replace("PACKAGE", "htop"));
    let rebooted = wait_sim(&sim, "oplog", "the reboot", |log| {
        log.as_array()
            .unwrap()
            .iter()
            .any(|o| o["path"] == "/nodes/phoenix/qemu/1004/status/reboot")
    })
    .await;
    let (changed, _) = snippet(sim.guest(1004).await);
    assert_ne!(changed, cicustom);
    let order: Vec<&str> = rebooted
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["mutating"] == true)
        .filter_map(|o| o["path"].as_str())
        .filter(|p| p.contains("/1004/"))
        .collect();
    assert_eq!(
        order,
        vec![
            "/nodes/phoenix/qemu/1004/config",
            "/nodes/phoenix/qemu/1004/status/reboot"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_with_linked_clones_keeps_its_generation_when_its_source_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &["--task-duration", "default=0.2"]);
    let sim = SimAdmin::of(&server);
    let linked = clone("linked", 1006, "").replace("full: true", "full: false");
    platform_with(&server, &[template(), linked]).await;
    let api: Api<VmGuest> = Api::namespaced(support::client(&server).await, "default");
    all_ready(&api, 2, Duration::from_secs(90)).await;
    let disk = sim.guest(1006).await["config"]["scsi0"].clone();
    assert!(
        disk.as_str()
            .unwrap()
            .starts_with("fastData:base-9000-disk-0/vm-1006-disk-0"),
        "{disk}"
    );

    sim.clear_oplog().await;
    let newer = IMAGE.replace("current/", "20261101/");
    api.patch(
        "golden",
        &PatchParams::default(),
        &patch(json!({"spec": {"source": {"cloudImage": {"url": newer}}}})),
    )
    .await
    .unwrap();
    support::wait_for(&api, "TemplateInUse", Duration::from_secs(60), |vms| {
        vms.iter()
            .any(|v| support::ready_reason(&conditions(v)) == "TemplateInUse")
    })
    .await;
    let golden = api.get("golden").await.unwrap();
    assert_eq!(golden.status.unwrap().template_generation, Some(1));
    assert_eq!(
        sim.mutating_calls().await,
        Vec::<Value>::new(),
        "neither the template nor its linked clone touched"
    );
    assert_eq!(sim.guest(1006).await["running"], true);
}
