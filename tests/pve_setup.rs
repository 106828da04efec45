//! `phoenix setup` against the simulated PVE, which checks every call's privileges as PVE
//! 9 does: one role, user and token are created, the Secret they are written to is what
//! the whole platform then runs on, a second run changes nothing, and neither the
//! password nor the token's secret shows anywhere.

mod support;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use phoenix_crds::DockerStack;
use std::path::{Path, PathBuf};
use support::setup::{setup, sim_credentials, text};
use support::{ApiServer, SimAdmin};

const MINUTES: std::time::Duration = std::time::Duration::from_secs(240);

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A 0600 file holding `content`.
fn secret_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut file, content.as_bytes()).unwrap();
    path
}

/// What setup may have created: roles, users, ACL entries and tokens not there at start.
async fn access(sim: &SimAdmin) -> serde_json::Value {
    sim.get("access").await
}

/// The `key` of every entry of `list`.
fn ids(access: &serde_json::Value, list: &str, key: &str) -> Vec<String> {
    access[list]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e[key].as_str().map(str::to_owned))
        .collect()
}

/// Entries of an array or keys of an object.
fn size(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(a) => a.len(),
        serde_json::Value::Object(o) => o.len(),
        _ => 0,
    }
}

fn token_secret(secret: &Secret) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()["tokenSecret"].0.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_creates_one_role_user_and_token_that_the_platform_then_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("phoenix.log");
    let server = ApiServer::up_simulated_logged(
        dir.path(),
        &[
            "--sim-token-from-secret",
            "--resync-seconds",
            "2",
            "--task-duration",
            "default=0.2",
        ],
        &log,
    );
    let sim = SimAdmin::of(&server);
    let password = sim_credentials(&server)["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = access(&sim).await;

    // A wrong password: refused by PVE, nothing created.
    let refused = setup(&server, &[], "not-the-password\n");
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("authentication failure"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        access(&sim).await,
        before,
        "a refused login created nothing"
    );

    // The password on stdin (as from a pipe): the role, the user, the grant, the token and
    // the Secret.
    let first = setup(&server, &[], &format!("{password}\n"));
    let said = text(&first);
    assert!(first.status.success(), "{said}");
    for step in [
        "create the role",
        "create the user",
        "grant the role",
        "create the API token",
        "write the token into the Secret",
        "Next: kubectl apply",
    ] {
        assert!(said.contains(step), "{step:?} in {said}");
    }
    let created = access(&sim).await;
    assert_eq!(
        created["roles"]["Phoenix"].as_array().map(Vec::len),
        Some(phoenix_controllers::privileges::CONTROLLER.len()),
        "the role with exactly the controllers' privileges: {created:#}"
    );
    let users = ids(&created, "users", "userid");
    assert!(users.contains(&"phoenix@pve".to_owned()), "{created:#}");
    let tokens = ids(&created, "tokens", "tokenid");
    assert_eq!(
        tokens
            .iter()
            .filter(|t| *t == "phoenix@pve!controller")
            .count(),
        1,
        "{tokens:?}"
    );
    let grants = &created["acl"];
    assert_eq!(
        grants,
        &serde_json::json!([{"path": "/", "type": "user", "ugid": "phoenix@pve", "roleid": "Phoenix", "propagate": true}])
    );
    for (list, more) in [("roles", 1), ("users", 1), ("tokens", 1), ("acl", 1)] {
        assert_eq!(
            size(&created[list]),
            size(&before[list]) + more,
            "exactly one new entry in {list}: {created:#}"
        );
    }
    let client = support::client(&server).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "phoenix-system");
    let secret = secrets.get("pve-token").await.unwrap();
    let token = token_secret(&secret);

    // The platform runs on that token alone: every example converges with the privileges
    // the role holds (the simulator answers any missing one with PVE's 403).
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "secret-pve-token.yaml" {
            support::kubectl(&server, &["apply", "-f", path.to_str().unwrap()]);
        }
    }
    support::homelab_ready(&server).await;
    support::all_guests_ready(&client, 6, 3).await;
    let denied = || async {
        let oplog = sim.get("oplog").await;
        let denied: Vec<serde_json::Value> = oplog
            .as_array()
            .unwrap()
            .iter()
            .filter(|op| op["status"] == 403)
            .cloned()
            .collect();
        denied
    };
    assert_eq!(
        denied().await,
        Vec::<serde_json::Value>::new(),
        "calls PVE refused the token"
    );
    let stacks: Api<DockerStack> = Api::namespaced(client.clone(), "default");
    support::wait_for(&stacks, "the example stacks Ready", MINUTES, |all| {
        support::all_ready(all, 2, |s| s.status.as_ref().map(|s| &s.common))
    })
    .await;
    // The host too: its pools, storages, bridge and node firewall on the same token.
    let hosts: Api<phoenix_crds::ProxmoxHost> = Api::all(client.clone());
    support::wait_for(&hosts, "the example host Ready", MINUTES, |all| {
        support::all_ready(all, 1, |h| h.status.as_ref().map(|s| &s.common))
    })
    .await;
    assert_eq!(
        denied().await,
        Vec::<serde_json::Value>::new(),
        "calls PVE refused the token"
    );

    // Again, now with the administrator's token from a file: nothing changes.
    sim.clear_oplog().await;
    let root_token = format!(
        "{}={}",
        sim_credentials(&server)["token_id"].as_str().unwrap(),
        sim_credentials(&server)["token_secret"].as_str().unwrap()
    );
    let token_file = secret_file(dir.path(), "root-token", &root_token);
    let second = setup(&server, &["--token-file", token_file.to_str().unwrap()], "");
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("Nothing to change"),
        "{}",
        text(&second)
    );
    assert_eq!(access(&sim).await, created, "a second run created nothing");
    let again = secrets.get("pve-token").await.unwrap();
    assert_eq!(
        again.metadata.resource_version, secret.metadata.resource_version,
        "the Secret was not rewritten"
    );
    let written: Vec<_> = sim
        .mutating_calls()
        .await
        .into_iter()
        .filter(|op| op["path"].as_str().is_some_and(|p| p.contains("/access/")))
        .collect();
    assert!(
        written.is_empty(),
        "access writes on a second run: {written:#?}"
    );

    // Neither the password nor the token's secret in any output, log or argument.
    let logged = std::fs::read_to_string(&log).unwrap();
    let oplog = sim.get("oplog").await.to_string();
    for (what, secret) in [("password", &password), ("token secret", &token)] {
        for (place, content) in [
            ("the first run's output", &said),
            ("the second run's output", &text(&second)),
            ("Phoenix's log", &logged),
            ("the simulator's operation log", &oplog),
        ] {
            assert!(!content.contains(secret.as_str()), "the {what} in {place}");
        }
    }
}
