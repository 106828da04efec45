//! In-guest provisioning end to end: `phoenix up --simulate`, kubectl, and the simulated
//! guest's command log, files and snapshots as the witnesses. Failures are scripted
//! answers of the simulated guest; crashes are SIGKILLs of the whole process.

mod support;

use kube::api::{Api, Patch, PatchParams};
use phoenix_crds::LxcGuest;
use serde_json::{Value, json};
use std::time::Duration;
use support::{ApiServer, SimAdmin};

const FAST: [&str; 2] = ["--task-duration", "default=0.2"];

fn conditions(g: &LxcGuest) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    g.status
        .as_ref()
        .map(|s| s.common.conditions.clone())
        .unwrap_or_default()
}

fn ready_with(g: &LxcGuest, features: &[&str]) -> bool {
    let applied: Vec<String> = g
        .status
        .as_ref()
        .map(|s| s.guest.features.iter().map(|f| f.name.clone()).collect())
        .unwrap_or_default();
    support::is_ready(&conditions(g)) && applied == features
}

fn hash(g: &LxcGuest, feature: &str) -> String {
    g.status
        .as_ref()
        .and_then(|s| s.guest.features.iter().find(|f| f.name == feature))
        .map(|f| f.hash.clone())
        .unwrap_or_default()
}

/// A running guest without features, then `answers` scripted into it, then `provisioning`
/// patched in: the answers are in place before the first feature runs.
async fn provisioned_guest(
    server: &ApiServer,
    name: &str,
    vmid: u32,
    answers: Value,
    spec: Value,
) -> Api<LxcGuest> {
    support::homelab_cluster(server).await;
    support::kubectl_apply(server, &support::guest_yaml(name, vmid, ""));
    let api: Api<LxcGuest> = Api::namespaced(support::client(server).await, "default");
    support::wait_for(&api, "the guest Ready", Duration::from_secs(60), |gs| {
        gs.iter().all(|g| ready_with(g, &[]))
    })
    .await;
    let sim = SimAdmin::of(server);
    sim.put(&format!("guests/{vmid}/answers"), answers).await;
    patch(&api, name, spec).await;
    api
}

async fn patch(api: &Api<LxcGuest>, name: &str, spec: Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .unwrap();
}

/// Command-log entries of guest `vmid` containing `text`.
async fn runs(sim: &SimAdmin, vmid: u32, text: &str) -> Vec<Value> {
    sim.guest(vmid).await["log"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["command"].as_str().is_some_and(|l| l.contains(text)))
        .cloned()
        .collect()
}

/// Polls the simulator (it has no watch) until `done` holds.
async fn until_sim(sim: &SimAdmin, vmid: u32, what: &str, done: impl Fn(&Value) -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            if done(&sim.guest(vmid).await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_feature_names_its_step_backs_off_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &FAST);
    let answers = json!([{"matches": "apt-get install", "exit": 100,
        "output": "E: Unable to locate package nosuchpkg\n"}]);
    let spec = json!({"provisioning": {"base": {"packages": ["nosuchpkg"]}}});
    let api = provisioned_guest(&server, "flaky", 501, answers, spec).await;
    support::wait_for(
        &api,
        "the failure in Ready",
        Duration::from_secs(60),
        |gs| {
            gs.iter()
                .all(|g| support::ready_reason(&conditions(g)) == "FeatureFailed")
        },
    )
    .await;
    let g = api.get("flaky").await.unwrap();
    let provisioned = conditions(&g)
        .into_iter()
        .find(|c| c.type_ == "Provisioned")
        .unwrap();
    assert_eq!(provisioned.reason, "FeatureFailed");
    assert!(
        provisioned
            .message
            .contains("feature base failed in step packages (exit 100)")
            && provisioned.message.contains("Unable to locate package"),
        "{}",
        provisioned.message
    );
    let warnings = support::kubectl(
        &server,
        &["get", "events", "--field-selector", "type=Warning"],
    );
    assert!(warnings.contains("FeatureFailed"), "{warnings}");

    // Retried with a growing pause, never in a hot loop.
    let sim = SimAdmin::of(&server);
    until_sim(&sim, 501, "four failed attempts", |g| {
        g["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                c["command"].as_str().unwrap().contains("apt-get install") && c["exit"] == 100
            })
            .count()
            >= 4
    })
    .await;
    let starts: Vec<u64> = runs(&sim, 501, "apt-get install")
        .await
        .iter()
        .map(|c| c["started_ms"].as_u64().unwrap())
        .collect();
    let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Each retry waits at least the pause the failures so far earned: 1 s, 2 s, 4 s.
    for (i, gap) in gaps.iter().enumerate() {
        let floor = 1000 * 2u64.pow(i as u32) * 9 / 10;
        assert!(
            *gap >= floor,
            "retry {i} after {gap} ms, before its pause: {gaps:?}"
        );
    }

    sim.put("guests/501/answers", json!([])).await;
    support::wait_for(&api, "recovered", Duration::from_secs(90), |gs| {
        gs.iter().all(|g| ready_with(g, &["base"]))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_script_the_feature_is_redone_and_completed_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &FAST);
    // The upgrade takes a while: long enough to be killed in the middle of it.
    let answers = json!([{"matches": "upgrade", "delayMs": 3000}]);
    let spec = json!({"provisioning": {"base": {}}});
    provisioned_guest(&server, "crashy", 502, answers, spec).await;
    let sim = SimAdmin::of(&server);
    until_sim(&sim, 502, "the upgrade under way", |g| {
        g["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["command"].as_str().unwrap().contains("upgrade") && c["exit"].is_null())
    })
    .await;
    server.kill();
    let server = ApiServer::up_simulated(dir.path(), &FAST);
    let api: Api<LxcGuest> = Api::namespaced(support::client(&server).await, "default");
    support::wait_for(
        &api,
        "base applied after the restart",
        Duration::from_secs(90),
        |gs| gs.iter().all(|g| ready_with(g, &["base"])),
    )
    .await;
    let sim = SimAdmin::of(&server);
    let upgrades = runs(&sim, 502, "upgrade").await;
    assert_eq!(
        upgrades.len(),
        2,
        "the cut-off run and its redo: {upgrades:?}"
    );
    assert!(upgrades[0]["exit"].is_null(), "the first run was cut off");
    assert_eq!(upgrades[1]["exit"], 0);
    let marks = runs(&sim, 502, "> /var/lib/phoenix/features/base.done").await;
    assert_eq!(marks.len(), 1, "completed exactly once: {marks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_feature_alone_is_reapplied_after_a_snapshot_and_a_failed_change_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &FAST);
    let spec = json!({
        "provisioning": {"base": {}, "ollama": {"port": 11434}},
        "snapshots": {"beforeRiskyChanges": true, "rollbackOnFailure": true, "retain": 2}
    });
    let api = provisioned_guest(&server, "models", 503, json!([]), spec).await;
    support::wait_for(&api, "features applied", Duration::from_secs(60), |gs| {
        gs.iter().all(|g| ready_with(g, &["base", "ollama"]))
    })
    .await;
    let before = api.get("models").await.unwrap();
    let sim = SimAdmin::of(&server);

    patch(
        &api,
        "models",
        json!({"provisioning": {"ollama": {"port": 11500}}}),
    )
    .await;
    let old = hash(&before, "ollama");
    support::wait_for(&api, "ollama re-applied", Duration::from_secs(60), |gs| {
        gs.iter()
            .all(|g| ready_with(g, &["base", "ollama"]) && hash(g, "ollama") != old)
    })
    .await;
    let after = api.get("models").await.unwrap();
    assert_eq!(hash(&after, "base"), hash(&before, "base"));
    assert_eq!(
        runs(&sim, 503, "features/base.done")
            .await
            .iter()
            .filter(|c| c["command"].as_str().unwrap().starts_with("echo"))
            .count(),
        1,
        "base not re-run"
    );
    assert_eq!(
        runs(&sim, 503, "features/ollama.done")
            .await
            .iter()
            .filter(|c| c["command"].as_str().unwrap().starts_with("echo"))
            .count(),
        2
    );
    let guest = sim.guest(503).await;
    assert!(
        guest["files"]["/etc/systemd/system/ollama.service.d/phoenix.conf"]
            .as_str()
            .unwrap()
            .contains("11500")
    );
    let snapshot = format!("pre-{}", hash(&after, "ollama"));
    let snapshots: Vec<&str> = guest["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        snapshots,
        [snapshot.as_str()],
        "a snapshot before the risky change"
    );

    // The next change fails: the guest goes back to the snapshot taken before it.
    sim.put(
        "guests/503/answers",
        json!([{"matches": "systemctl restart ollama", "exit": 1}]),
    )
    .await;
    patch(
        &api,
        "models",
        json!({"provisioning": {"ollama": {"port": 11600}}}),
    )
    .await;
    support::wait_for(&api, "rolled back", Duration::from_secs(60), |gs| {
        gs.iter()
            .all(|g| support::ready_reason(&conditions(g)) == "ChangeRolledBack")
    })
    .await;
    let rollbacks: Vec<Value> = sim
        .mutating_calls()
        .await
        .into_iter()
        .filter(|o| o["path"].as_str().unwrap().ends_with("/rollback"))
        .collect();
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    let guest = sim.guest(503).await;
    assert!(
        guest["files"]["/etc/systemd/system/ollama.service.d/phoenix.conf"]
            .as_str()
            .unwrap()
            .contains("11500"),
        "the files are the snapshot's again"
    );
    assert!(
        guest["running"].as_bool().unwrap(),
        "started again after the rollback"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_name_the_failing_check_and_controller_checks_reach_only_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::up_simulated(dir.path(), &FAST);
    // From the controller: through the simulator's resolver (the guest's 10.0.0.x is never dialled;
    // if it were, these checks could not pass here).
    let spec = json!({"healthChecks": [
        {"name": "app", "exec": {"command": ["systemctl", "is-active", "app"]},
         "intervalSeconds": 5, "failureThreshold": 1},
        {"name": "web", "http": {"port": 8443, "path": "/health", "scheme": "https"},
         "fromController": true, "intervalSeconds": 5},
        {"name": "port", "tcp": {"port": 22}, "fromController": true, "intervalSeconds": 5}
    ]});
    // `app` is not started yet: its check fails.
    let api = provisioned_guest(&server, "checked", 504, json!([]), spec).await;
    let healthy = |g: &LxcGuest| {
        conditions(g)
            .into_iter()
            .find(|c| c.type_ == "Healthy")
            .map(|c| (c.status, c.message))
    };
    support::wait_for(&api, "unhealthy", Duration::from_secs(60), |gs| {
        gs.iter().all(|g| {
            healthy(g).is_some_and(|(s, m)| s == "False" && m.contains("check app failed"))
        })
    })
    .await;
    let warnings = support::kubectl(
        &server,
        &["get", "events", "--field-selector", "type=Warning"],
    );
    assert!(warnings.contains("Unhealthy"), "{warnings}");
    let started = SimAdmin::of(&server)
        .exec(504, &["systemctl", "start", "app"])
        .await;
    assert_eq!(started["exitcode"], 0);
    support::wait_for(&api, "healthy again", Duration::from_secs(60), |gs| {
        gs.iter()
            .all(|g| healthy(g).is_some_and(|(s, _)| s == "True"))
    })
    .await;
    let g = api.get("checked").await.unwrap();
    assert!(
        support::is_ready(&conditions(&g)),
        "health does not flap Ready"
    );
}
