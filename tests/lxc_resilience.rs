//! The LxcGuest controller under crashes and an unreliable PVE, and `phoenix plan`.

mod support;

use kube::ResourceExt;
use kube::api::{Api, Patch};
use phoenix_crds::LxcGuest;
use rand::Rng;
use std::time::Duration;
use support::{ApiServer, SimAdmin};

const FAST: [&str; 2] = ["--task-duration", "default=0.2"];

fn guests(count: u32, first_vmid: u32) -> String {
    (0..count)
        .map(|i| {
            let vmid = first_vmid + i;
            format!(
                "apiVersion: phoenix.thinkheads.ai/v1alpha1\nkind: LxcGuest\nmetadata: {{name: ct-{vmid}, namespace: default}}\n\
                 spec:\n  vmid: {vmid}\n  node: phoenix\n  source: {{ostemplate: \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"}}\n  \
                 hostname: ct-{vmid}\n  memory: 256\n  rootfs: {{storage: local-zfs, size: 2G}}\n  network: [{{ip: 10.0.{}.{}/16}}]\n---\n",
                vmid / 250,
                vmid % 250
            )
        })
        .collect()
}

fn ready(g: &LxcGuest) -> bool {
    support::is_ready(
        &g.status
            .as_ref()
            .map(|s| s.common.conditions.clone())
            .unwrap_or_default(),
    )
}

/// Every PVE guest belongs to exactly one object (its uid in the marker) and runs.
async fn one_guest_per_object(sim: &SimAdmin, api: &Api<LxcGuest>) {
    let objects = api.list(&Default::default()).await.unwrap().items;
    let pve = sim.get("guests").await;
    let pve = pve.as_object().unwrap();
    assert_eq!(
        pve.len(),
        objects.len(),
        "no orphan and no duplicate: {:?}",
        pve.keys().collect::<Vec<_>>()
    );
    for object in objects {
        let guest = &pve[&object.spec.vmid.to_string()];
        let description = guest["config"]["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(&object.uid().unwrap()),
            "CT {} is {}'s: {description}",
            object.spec.vmid,
            object.name_any()
        );
        assert_eq!(guest["running"], true);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_twenty_times_while_thirty_guests_converge_nothing_is_duplicated_or_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ApiServer::up_simulated(dir.path(), &FAST);
    support::homelab_cluster(&server).await;
    support::kubectl_apply(&server, &guests(30, 300));
    let mut rng = rand::rng();
    for _ in 0..20 {
        // A random moment of the convergence (the chaos schedule, not a wait for a state).
        let moment = Duration::from_millis(rng.random_range(50..1200));
        tokio::time::sleep(moment).await;
        server.kill();
        server = ApiServer::up_simulated(dir.path(), &FAST);
    }
    let client = support::client(&server).await;
    let api: Api<LxcGuest> = Api::namespaced(client, "default");
    support::wait_for(
        &api,
        "30 guests Ready after the crashes",
        Duration::from_secs(120),
        |gs| gs.len() == 30 && gs.iter().all(|g| ready(g)),
    )
    .await;
    one_guest_per_object(&SimAdmin::of(&server), &api).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_errors_latency_and_foreign_locks_everything_converges_without_a_hot_loop() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &FAST);
    let sim = SimAdmin::of(&server);
    sim.put(
        "faults",
        serde_json::json!({"errorRate": 0.2, "latencyMs": [0, 2000], "locked": {"400": "backup", "401": "backup"}}),
    )
    .await;
    support::homelab_cluster(&server).await;
    support::kubectl_apply(&server, &guests(6, 400));
    let client = support::client(&server).await;
    let api: Api<LxcGuest> = Api::namespaced(client.clone(), "default");
    // The guests PVE has locked say so (they exist once their create went through).
    let locked_guests = Api::<LxcGuest>::namespaced(client, "default");
    support::wait_for(
        &locked_guests,
        "the injected failures visible in conditions",
        Duration::from_secs(180),
        |gs| {
            gs.iter().any(|g| {
                g.status.as_ref().is_some_and(|s| {
                    s.common
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.reason == "ProxmoxTransient")
                })
            })
        },
    )
    .await;
    let warnings = support::kubectl(
        &server,
        &["get", "events", "--field-selector", "type=Warning"],
    );
    assert!(
        warnings.contains("ProxmoxTransient"),
        "errors are events:\n{warnings}"
    );
    sim.put(
        "faults",
        serde_json::json!({"errorRate": 0.2, "latencyMs": [0, 2000]}),
    )
    .await;
    support::wait_for(
        &api,
        "6 guests Ready despite the faults",
        Duration::from_secs(360),
        |gs| gs.len() == 6 && gs.iter().all(|g| ready(g)),
    )
    .await;
    sim.put("faults", serde_json::json!({})).await;
    let calls = sim.get("oplog").await.as_array().unwrap().len();
    // 6 guests × (observe, create, start, configure, read back) plus task polls and
    // retries: hundreds. A hot loop would be tens of thousands.
    assert!(calls < 2500, "{calls} PVE calls for 6 guests");
    one_guest_per_object(&sim, &api).await;
}

/// A pass that does not know of its own clone in flight (it started from a cached object
/// older than the status naming the task) finds PVE's placeholder: a config holding only
/// `lock: create`, no marker yet. That is a wait, not a guest someone else owns.
#[tokio::test(flavor = "multi_thread")]
async fn a_pass_that_finds_its_clone_still_being_made_waits_instead_of_refusing_it() {
    let dir = tempfile::tempdir().unwrap();
    let slow_clone = [
        "--task-duration",
        "default=0.2",
        "--task-duration",
        "vzclone=8",
    ];
    let server = ApiServer::up_simulated(dir.path(), &slow_clone);
    support::homelab_cluster(&server).await;
    let spec = "node: phoenix\n  memory: 256\n  rootfs: {storage: local-zfs, size: 2G}\n  network: [{ip: dhcp}]";
    support::kubectl_apply(
        &server,
        &format!(
            "apiVersion: phoenix.thinkheads.ai/v1alpha1\nkind: LxcGuest\nmetadata: {{name: golden, namespace: default}}\n\
             spec:\n  vmid: 950\n  hostname: golden\n  template: true\n  source: {{ostemplate: \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"}}\n  {spec}\n---\n\
             apiVersion: phoenix.thinkheads.ai/v1alpha1\nkind: LxcGuest\nmetadata: {{name: copy, namespace: default}}\n\
             spec:\n  vmid: 951\n  hostname: copy\n  source: {{clone: {{vmid: 950, full: true}}}}\n  {spec}\n"
        ),
    );
    let api: Api<LxcGuest> = Api::namespaced(support::client(&server).await, "default");
    let minutes = Duration::from_secs(180);
    let copy =
        |gs: &[std::sync::Arc<LxcGuest>]| gs.iter().find(|g| g.name_any() == "copy").cloned();
    support::wait_for(&api, "the clone's task in flight", minutes, |gs| {
        copy(gs).is_some_and(|g| {
            g.status
                .as_ref()
                .is_some_and(|s| s.guest.task_upid.is_some())
        })
    })
    .await;
    // The stale status a lagging cache would give the next pass. A pass already under way
    // when the task is forgotten may write its upid back: forget it again until a pass
    // has looked without it.
    let forgotten = serde_json::json!({"status": {"taskUpid": null}});
    let in_flight = |g: &LxcGuest| {
        g.status
            .as_ref()
            .is_some_and(|s| s.guest.task_upid.is_some())
    };
    let waited_as_locked = |g: &LxcGuest| {
        g.status.as_ref().is_some_and(|s| {
            s.common.conditions.iter().any(|c| {
                c.type_ == "Ready" && c.reason == "Locked" && c.message.contains("still making")
            })
        })
    };
    let mut seen_locked = false;
    while !seen_locked {
        api.patch_status("copy", &Default::default(), &Patch::Merge(&forgotten))
            .await
            .unwrap();
        let mut ended = false;
        support::wait_for(&api, "a pass without the task", minutes, |gs| {
            copy(gs).is_some_and(|g| {
                seen_locked |= waited_as_locked(&g);
                ended |= ready(&g);
                // Each wait lists afresh, after the patch: a upid seen is one written back.
                seen_locked || ended || in_flight(&g)
            })
        })
        .await;
        assert!(
            seen_locked || !ended,
            "the clone ended before a pass looked at it without its task"
        );
    }
    support::wait_for(&api, "the clone Ready", minutes, |gs| {
        copy(gs).is_some_and(|g| ready(&g))
    })
    .await;
    let warnings = support::kubectl(
        &server,
        &["get", "events", "--field-selector", "type=Warning"],
    );
    assert!(
        !warnings.contains("VmidInUse"),
        "its own clone refused as someone else's:\n{warnings}"
    );
    let uid = api.get("copy").await.unwrap().uid().unwrap();
    let cloned = SimAdmin::of(&server).guest(951).await;
    let description = cloned["config"]["description"].as_str().unwrap_or_default();
    assert!(
        description.contains(&uid),
        "CT 951 is copy's: {description}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_prints_the_steps_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &FAST);
    support::homelab_cluster(&server).await;
    let client = support::client(&server).await;
    let sim = SimAdmin::of(&server);
    sim.clear_oplog().await;
    let plan = |file: &str| support::plan(&server, file);
    let examples = format!("{}/examples", std::env::var("CARGO_MANIFEST_DIR").unwrap());
    // The VMs' cloud-init keys are read from their Secret.
    support::kubectl(
        &server,
        &[
            "apply",
            "-f",
            &format!("{examples}/secret-admin-ssh-keys.yaml"),
        ],
    );
    let text = plan(&examples);
    assert!(text.contains("LxcGuest default/copy-base (CT 900) on phoenix:\n  1. create from local:vztmpl/ubuntu-24.04"), "{text}");
    assert!(text.contains("2. convert to a template"), "{text}");
    assert!(
        text.contains(
            "LxcGuest default/step-ca (CT 103) on phoenix:\n  1. full clone of 900\n  2. configure"
        ),
        "{text}"
    );
    assert!(
        text.contains("VmGuest default/ubuntu-2404-cloud-template (VM 9000) on phoenix:\n  1. create from local:import/noble-server-cloudimg-amd64-"),
        "{text}"
    );
    assert!(
        text.contains("VmGuest default/portainer (VM 1001) on phoenix:\n  1. full clone of 9000\n  2. configure"),
        "{text}"
    );
    assert_eq!(
        sim.mutating_calls().await,
        Vec::<serde_json::Value>::new(),
        "plan changes nothing"
    );

    // Against a converged guest: no changes; after a change in PVE: the one change.
    let file = dir.path().join("one.yaml");
    std::fs::write(&file, guests(1, 450)).unwrap();
    support::kubectl(&server, &["apply", "-f", file.to_str().unwrap()]);
    let api: Api<LxcGuest> = Api::namespaced(client, "default");
    support::wait_for(&api, "ct-450 Ready", Duration::from_secs(30), |gs| {
        gs.iter().all(|g| ready(g))
    })
    .await;
    assert!(plan(file.to_str().unwrap()).contains("(CT 450) on phoenix: no changes"));
    // Changed in the "PVE UI"; the controller's next resync is minutes away (default).
    sim.api(
        reqwest::Method::PUT,
        "/nodes/phoenix/lxc/450/config",
        &[("memory", "1024")],
    )
    .await;
    let text = plan(file.to_str().unwrap());
    assert!(text.contains("memory: 1024 -> 256"), "{text}");
}
