//! A ProxmoxCluster's `spec.access` on the simulated PVE, run on the token `phoenix setup`
//! makes: refused by PVE (AccessNotPermitted, naming the flag) until setup runs with
//! `--manage-access`, then applied (the group, the user in it, the ACL entry), nothing
//! written at steady state, an entry Phoenix added removed when it leaves the spec while one
//! added by hand stays, a user that left stays, an entry naming Phoenix's own user refused
//! with nothing written, and the role taken back by setup without the flag.

mod support;

use kube::api::Api;
use phoenix_crds::ProxmoxCluster;
use serde_json::{Value, json};
use std::time::Duration;
use support::setup::{setup, sim_credentials, text};
use support::{ApiServer, SimAdmin};

const MINUTE: Duration = Duration::from_secs(60);

fn example(file: &str) -> String {
    format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// The example's `access`, which it keeps commented out (it needs `--manage-access`).
fn example_access() -> Value {
    let text = std::fs::read_to_string(example("proxmoxcluster-homelab.yaml")).unwrap();
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "  # access:")
        .take_while(|l| l.starts_with("  # "))
        .map(|l| l.trim_start_matches("  # "))
        .collect();
    let parsed: Value = serde_yaml_ng::from_str(&block.join("\n")).unwrap();
    assert!(parsed["access"]["groups"].is_array(), "{parsed:#}");
    parsed["access"].clone()
}

/// AccessReady's status, reason and message.
fn access_ready(cluster: &ProxmoxCluster) -> Option<(String, String, String)> {
    let status = cluster.status.as_ref()?;
    let c = status
        .common
        .conditions
        .iter()
        .find(|c| c.type_ == "AccessReady")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Until the cluster's AccessReady has `reason`; its message.
async fn wait_reason(clusters: &Api<ProxmoxCluster>, reason: &str) -> String {
    let mut message = String::new();
    support::wait_for(clusters, &format!("AccessReady {reason}"), MINUTE, |cs| {
        let found = cs.first().and_then(|c| access_ready(c));
        match found {
            Some((_, r, m)) if r == reason => {
                message = m;
                true
            }
            _ => false,
        }
    })
    .await;
    message
}

/// The calls that changed PVE's access control.
async fn access_writes(sim: &SimAdmin) -> Vec<Value> {
    let writes = sim.mutating_calls().await.into_iter();
    writes
        .filter(|op| op["path"].as_str().is_some_and(|p| p.contains("/access")))
        .collect()
}

fn has_entry(access: &Value, entry: &Value) -> bool {
    access["acl"].as_array().unwrap().contains(entry)
}

fn user<'a>(access: &'a Value, id: &str) -> Option<&'a Value> {
    let users = access["users"].as_array()?;
    users.iter().find(|u| u["userid"] == id)
}

#[tokio::test(flavor = "multi_thread")]
async fn access_is_kept_on_the_token_setup_makes_only_with_manage_access() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--sim-token-from-secret", "--resync-seconds", "1"];
    let server = ApiServer::up_simulated(dir.path(), &args);
    let sim = SimAdmin::of(&server);
    let password = sim_credentials(&server)["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let stdin = format!("{password}\n");
    let first = setup(&server, &[], &stdin);
    assert!(first.status.success(), "{}", text(&first));
    for file in [
        "namespace-phoenix-system.yaml",
        "proxmoxcluster-homelab.yaml",
    ] {
        support::kubectl(&server, &["apply", "-f", &example(file)]);
    }
    support::homelab_ready(&server).await;
    let clusters: Api<ProxmoxCluster> = Api::all(support::client(&server).await);

    // On the default token PVE refuses the first write; the condition names the flag.
    let access = example_access();
    support::patch_homelab(&server, &json!({"spec": {"access": access}}));
    let message = wait_reason(&clusters, "AccessNotPermitted").await;
    assert!(
        message.contains("phoenix setup --manage-access"),
        "{message}"
    );
    let held = sim.get("access").await;
    assert!(held["groups"].get("homelab-admins").is_none(), "{held:#}");

    // With the flag: the example's group, its user in it, and the group's entry on /vms.
    let managed = setup(&server, &["--manage-access"], &stdin);
    let said = text(&managed);
    assert!(managed.status.success(), "{said}");
    assert!(said.contains("create the role PhoenixAccess"), "{said}");
    let message = wait_reason(&clusters, "AccessConfigured").await;
    assert!(message.contains("1 group(s), 1 user(s)"), "{message}");
    let held = sim.get("access").await;
    assert!(held["groups"].get("homelab-admins").is_some(), "{held:#}");
    let alice = user(&held, "alice@pve").expect("alice@pve created");
    assert_eq!(alice["groups"], json!(["homelab-admins"]), "{alice:#}");
    assert_eq!(alice["email"], "alice@example.org", "{alice:#}");
    assert_eq!(alice["enable"], true);
    assert_eq!(alice["hasPassword"], false, "Phoenix never sets a password");
    let vms = json!({"path": "/vms", "type": "group", "ugid": "homelab-admins",
                     "roleid": "PVEVMAdmin", "propagate": true});
    assert!(has_entry(&held, &vms), "{held:#}");
    let remembered = clusters
        .get("homelab")
        .await
        .unwrap()
        .status
        .unwrap()
        .access;
    assert_eq!(remembered.map(|a| a.acls.len()), Some(1));

    // Steady state: three resyncs, no write to /access.
    sim.clear_oplog().await;
    support::resync_rounds(&server, "ProxmoxCluster", 1, 3).await;
    assert_eq!(access_writes(&sim).await, Vec::<Value>::new());

    // An entry added by hand stays; Phoenix's own leaves with the spec; the user too
    // leaves the spec but stays in PVE, and the condition says so.
    let by_hand = [
        ("path", "/storage/local"),
        ("roles", "PVEDatastoreUser"),
        ("users", "alice@pve"),
    ];
    sim.api(reqwest::Method::PUT, "/access/acl", &by_hand).await;
    let hand = json!({"path": "/storage/local", "type": "user", "ugid": "alice@pve",
                      "roleid": "PVEDatastoreUser", "propagate": true});
    assert!(has_entry(&sim.get("access").await, &hand));
    let fewer = json!({"spec": {"access": {"users": [], "acls": []}}});
    support::patch_homelab(&server, &fewer);
    support::wait_for(&clusters, "alice named as left", MINUTE, |cs| {
        cs.first()
            .and_then(|c| access_ready(c))
            .is_some_and(|(_, _, m)| m.contains("user alice@pve left the spec"))
    })
    .await;
    let held = sim.get("access").await;
    assert!(!has_entry(&held, &vms), "Phoenix's entry removed: {held:#}");
    assert!(has_entry(&held, &hand), "the entry added by hand stays");
    assert!(
        user(&held, "alice@pve").is_some(),
        "users are never deleted"
    );
    assert!(held["groups"].get("homelab-admins").is_some());

    // Phoenix's own user named: refused, nothing written (not even the group's comment).
    sim.clear_oplog().await;
    let own = json!({"spec": {"access": {
        "groups": [{"id": "homelab-admins", "comment": "changed"}],
        "acls": [{"path": "/", "role": "Administrator", "user": "phoenix@pve"}]}}});
    support::patch_homelab(&server, &own);
    let message = wait_reason(&clusters, "AccessRefused").await;
    assert!(message.contains("phoenix@pve"), "{message}");
    support::resync_rounds(&server, "ProxmoxCluster", 1, 2).await;
    assert_eq!(access_writes(&sim).await, Vec::<Value>::new());

    // Setup without the flag takes the role back.
    let plain = setup(&server, &[], &stdin);
    let said = text(&plain);
    assert!(plain.status.success(), "{said}");
    assert!(said.contains("delete the role PhoenixAccess"), "{said}");
    let held = sim.get("access").await;
    assert!(held["roles"].get("PhoenixAccess").is_none(), "{held:#}");
    assert!(held["roles"].get("Phoenix").is_some(), "{held:#}");
}
