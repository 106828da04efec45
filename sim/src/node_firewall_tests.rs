//! A node's host firewall through the API, without a network: options as `host.fw`
//! reads them back, with digest and `delete`; rules with the habits the datacenter's and
//! the guests' share; the admin route; the state across a restart.

use crate::cluster::Cluster;
use crate::test_server::{admin, api, ok, param_error, server_with};
use serde_json::{Value, json};
use std::sync::Arc;

const OPTIONS: &str = "/nodes/phoenix/firewall/options";
const RULES: &str = "/nodes/phoenix/firewall/rules";

#[test]
fn options_round_trip_as_the_file_reads_them_back() {
    let server = server_with(Cluster::new(1), None);
    // A fresh node's file has no options (the firewall is on by default): the digest alone.
    let fresh = ok(&server, "GET", OPTIONS, json!({}));
    assert_eq!(
        fresh,
        json!({"digest": "da39a3ee5e6b4b0d3255bfef95601890afd80709"})
    );
    let set = json!({"enable": 0, "nosmurfs": "1", "log_level_in": "info",
                     "nf_conntrack_max": "131072", "nftables": true});
    ok(&server, "PUT", OPTIONS, set);
    let read = ok(&server, "GET", OPTIONS, json!({}));
    for (key, value) in [
        ("enable", json!(0)),
        ("nosmurfs", json!(1)),
        ("nftables", json!(1)),
        ("log_level_in", json!("info")),
        ("nf_conntrack_max", json!(131072)),
    ] {
        assert_eq!(read[key], value, "{key}: {read}");
    }
    let stale = api(
        &server,
        "PUT",
        OPTIONS,
        json!({"enable": 1, "digest": fresh["digest"]}),
    );
    assert_eq!(
        stale.unwrap_err().message,
        "detected modified configuration - file changed by other user? Try again."
    );
    let digest = read["digest"].clone();
    ok(
        &server,
        "PUT",
        OPTIONS,
        json!({"delete": "log_level_in,nosmurfs", "digest": digest}),
    );
    let read = ok(&server, "GET", OPTIONS, json!({}));
    assert_eq!(
        (read.get("log_level_in"), read.get("nosmurfs")),
        (None, None)
    );
    assert_eq!(read["enable"], 0);
    let unknown = api(&server, "PUT", OPTIONS, json!({"delete": "policy_in"}));
    assert_eq!(param_error(unknown, "delete"), "no such option 'policy_in'");
}

#[tokio::test]
async fn rules_land_on_top_disabled_without_enable_and_name_only_existing_sets() {
    let dir = std::env::temp_dir().join(format!("phoenix-sim-hostfw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let server = Arc::new(server_with(Cluster::new(1), Some(state.clone())));
    let ssh = json!({"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "22", "pos": 5,
                     "iface": "vmbr0"});
    ok(&server, "POST", RULES, ssh);
    let missing = json!({"type": "in", "action": "ACCEPT", "source": "+admins", "enable": 1});
    assert_eq!(
        param_error(api(&server, "POST", RULES, missing.clone()), "source"),
        "no such ipset 'admins'"
    );
    ok(
        &server,
        "POST",
        "/cluster/firewall/ipset",
        json!({"name": "admins"}),
    );
    ok(&server, "POST", RULES, missing);
    // The host takes forward rules, unlike a guest.
    ok(
        &server,
        "POST",
        RULES,
        json!({"type": "forward", "action": "DROP", "enable": 1}),
    );
    let rules = ok(&server, "GET", RULES, json!({}));
    let shown: Vec<(Value, Value, Value)> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["pos"].clone(), r["type"].clone(), r["enable"].clone()))
        .collect();
    assert_eq!(
        shown,
        [
            (json!(0), json!("forward"), json!(1)),
            (json!(1), json!("in"), json!(1)),
            (json!(2), json!("in"), json!(0)),
        ]
    );
    let ssh = ok(&server, "GET", &format!("{RULES}/2"), json!({}));
    assert_eq!(
        (&ssh["dport"], &ssh["iface"]),
        (&json!("22"), &json!("vmbr0"))
    );
    let digest = rules[0]["digest"].clone();
    ok(
        &server,
        "DELETE",
        &format!("{RULES}/0"),
        json!({"digest": digest.clone()}),
    );
    let stale = api(
        &server,
        "DELETE",
        &format!("{RULES}/0"),
        json!({"digest": digest}),
    );
    assert_eq!(stale.unwrap_err().status, 500);
    ok(&server, "PUT", OPTIONS, json!({"tcpflags": 1}));

    let shown = admin(&server, "/nodes/phoenix/firewall").await;
    assert_eq!(shown["options"], json!({"tcpflags": 1}));
    assert_eq!(shown["rules"][0]["source"], "+admins");
    assert_eq!(shown["rules"].as_array().unwrap().len(), 2);
    let before = server
        .sim()
        .cluster
        .node("phoenix")
        .unwrap()
        .firewall
        .clone();
    drop(server);
    let saved: Cluster = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let again = server_with(saved, Some(state));
    assert_eq!(
        again.sim().cluster.node("phoenix").unwrap().firewall,
        before
    );
    let _ = std::fs::remove_dir_all(&dir);
}
