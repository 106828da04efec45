//! The datacenter firewall through the API, without a network: PVE's habits with IP set
//! entries, new rules, missing sets (at the datacenter and a guest), options, the
//! operation log, and the state across a restart.

use crate::api::PveError;
use crate::cluster::{Cluster, Guest, GuestKind};
use crate::server::Server;
use crate::test_server::{admin, api, ok, param_error, server_with};
use serde_json::{Value, json};
use std::sync::Arc;

fn server() -> Server {
    let mut cluster = Cluster::new(1);
    let guest = Guest::new(100, "phoenix", GuestKind::Lxc, Default::default());
    cluster.guests.insert(100, guest);
    server_with(cluster, None)
}

const SET: &str = "/cluster/firewall/ipset/web";
const RULES: &str = "/cluster/firewall/rules";

fn with_set(server: &Server) {
    ok(
        server,
        "POST",
        "/cluster/firewall/ipset",
        json!({"name": "web", "comment": " front "}),
    );
}

fn cidrs(server: &Server) -> Vec<String> {
    let listed = ok(server, "GET", SET, json!({}));
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cidr"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn ipset_entries_are_normalised_sorted_and_found_by_their_stored_address() {
    let server = server();
    with_set(&server);
    for cidr in ["10.0.0.11/24", "10.0.0.5", "10.0.0.7/32", "fd00:0:0::9/64"] {
        ok(&server, "POST", SET, json!({"cidr": cidr}));
    }
    // Host bits cleared, /32 dropped, a bare address kept, written (and listed) sorted.
    assert_eq!(
        cidrs(&server),
        ["10.0.0.0/24", "10.0.0.5", "10.0.0.7", "fd00::/64"]
    );
    // The same network with other host bits is a duplicate, named as stored.
    assert_eq!(
        param_error(
            api(&server, "POST", SET, json!({"cidr": "10.0.0.99/24"})),
            "cidr"
        ),
        "address '10.0.0.0/24' already exists"
    );
    assert_eq!(
        param_error(
            api(&server, "POST", SET, json!({"cidr": "10.1.0.0/0"})),
            "cidr"
        ),
        "a zero prefix is not allowed in ipset entries"
    );
    assert!(
        param_error(
            api(&server, "POST", SET, json!({"cidr": "10.0.0.300"})),
            "cidr"
        )
        .contains("does not look like a valid IP address or CIDR network")
    );
    // An entry's path takes the slash (encoded or not); PVE does not normalise it there.
    let entry = ok(&server, "GET", &format!("{SET}/10.0.0.0/24"), json!({}));
    assert_eq!(entry["cidr"], "10.0.0.0/24");
    assert!(entry["digest"].is_string());
    ok(
        &server,
        "PUT",
        &format!("{SET}/10.0.0.0%2F24"),
        json!({"nomatch": 1, "comment": "lan"}),
    );
    let entry = ok(&server, "GET", &format!("{SET}/10.0.0.0%2F24"), json!({}));
    assert_eq!(
        (entry["nomatch"].clone(), entry["comment"].clone()),
        (json!(1), json!("lan"))
    );
    assert_eq!(
        param_error(
            api(&server, "GET", &format!("{SET}/10.0.0.11/24"), json!({})),
            "cidr"
        ),
        "no such IP/Network"
    );
    ok(&server, "DELETE", &format!("{SET}/10.0.0.5"), json!({}));
    ok(&server, "DELETE", &format!("{SET}/10.9.9.9"), json!({}));
    assert_eq!(cidrs(&server), ["10.0.0.0/24", "10.0.0.7", "fd00::/64"]);
}

#[test]
fn ipset_names_are_kept_in_lower_case_and_duplicates_refused() {
    let server = server();
    ok(
        &server,
        "POST",
        "/cluster/firewall/ipset",
        json!({"name": "Web-Front"}),
    );
    let sets = ok(&server, "GET", "/cluster/firewall/ipset", json!({}));
    assert_eq!(sets[0]["name"], "web-front");
    let missing = api(
        &server,
        "GET",
        "/cluster/firewall/ipset/Web-Front",
        json!({}),
    );
    assert_eq!(missing.unwrap_err().message, "no such IPSet 'Web-Front'");
    assert_eq!(
        param_error(
            api(
                &server,
                "POST",
                "/cluster/firewall/ipset",
                json!({"name": "web-front"})
            ),
            "name"
        ),
        "IPSet 'web-front' already exists"
    );
    // The schema's name format runs before the handler.
    assert!(
        api(
            &server,
            "POST",
            "/cluster/firewall/ipset",
            json!({"name": "9x"})
        )
        .is_err()
    );
}

#[test]
fn a_new_rule_lands_on_top_whatever_pos_says_and_is_disabled_without_enable() {
    let server = server();
    let rule = |action: &str, extra: Value| {
        let mut body = json!({"type": "in", "action": action, "proto": "tcp", "dport": "22"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap());
        ok(&server, "POST", RULES, body);
    };
    rule("ACCEPT", json!({"enable": 1, "comment": "  ssh  "}));
    rule("DROP", json!({"pos": 5, "source": "10.0.0.0/24"}));
    let listed = ok(&server, "GET", RULES, json!({}));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (
            listed[0]["action"].clone(),
            listed[0]["pos"].clone(),
            listed[0]["enable"].clone()
        ),
        (json!("DROP"), json!(0), json!(0))
    );
    assert_eq!(listed[0]["ipversion"], 4);
    assert_eq!(
        (
            listed[1]["action"].clone(),
            listed[1]["enable"].clone(),
            listed[1]["comment"].clone()
        ),
        (json!("ACCEPT"), json!(1), json!("ssh"))
    );
    assert_eq!(listed[0]["digest"], listed[1]["digest"]);
    assert_eq!(
        ok(&server, "GET", &format!("{RULES}/1"), json!({}))["action"],
        "ACCEPT"
    );
    // PVE's move puts it before the rule at `moveto`; a stale digest is refused.
    ok(&server, "PUT", &format!("{RULES}/0"), json!({"moveto": 2}));
    assert_eq!(
        ok(&server, "GET", &format!("{RULES}/1"), json!({}))["action"],
        "DROP"
    );
    let stale = api(
        &server,
        "DELETE",
        &format!("{RULES}/0"),
        json!({"digest": "0"}),
    );
    assert!(
        stale
            .unwrap_err()
            .message
            .starts_with("detected modified configuration")
    );
    let gone = api(&server, "DELETE", &format!("{RULES}/7"), json!({}));
    assert_eq!(gone.unwrap_err().message, "no rule at position 7");
    assert_eq!(
        param_error(
            api(
                &server,
                "POST",
                RULES,
                json!({"type": "in", "action": "ACCEPT", "dport": "80"})
            ),
            "proto"
        ),
        "missing property - 'dport' requires this property"
    );
}

#[test]
fn a_rule_naming_a_missing_set_is_refused_at_the_datacenter_and_a_guest() {
    let server = server();
    let guest_rules = "/nodes/phoenix/lxc/100/firewall/rules";
    for path in [RULES, guest_rules] {
        let refused = api(
            &server,
            "POST",
            path,
            json!({"type": "in", "action": "ACCEPT", "source": "+web"}),
        );
        assert_eq!(param_error(refused, "source"), "no such ipset 'web'");
    }
    with_set(&server);
    for path in [RULES, guest_rules] {
        ok(
            &server,
            "POST",
            path,
            json!({"type": "out", "action": "DROP", "dest": "+web"}),
        );
        // Set names are matched exactly, and kept in lower case.
        let refused = api(
            &server,
            "POST",
            path,
            json!({"type": "in", "action": "ACCEPT", "dest": "+Web"}),
        );
        assert_eq!(param_error(refused, "dest"), "no such ipset 'Web'");
    }
    let forward = api(
        &server,
        "POST",
        guest_rules,
        json!({"type": "forward", "action": "ACCEPT"}),
    );
    assert_eq!(
        param_error(forward, "type"),
        "invalid rule type 'forward' for rule_env 'ct'"
    );
    let listed = ok(&server, "GET", guest_rules, json!({}));
    assert_eq!(
        (listed[0]["dest"].clone(), listed[0]["enable"].clone()),
        (json!("+web"), json!(0))
    );
}

#[test]
fn a_set_goes_only_empty_or_forced_and_rules_naming_it_then_list_errors() {
    let server = server();
    with_set(&server);
    ok(&server, "POST", SET, json!({"cidr": "10.0.0.0/24"}));
    ok(
        &server,
        "POST",
        RULES,
        json!({"type": "in", "action": "ACCEPT", "source": "+web"}),
    );
    let refused = api(&server, "DELETE", SET, json!({}));
    assert_eq!(
        refused.unwrap_err(),
        PveError::server("IPSet 'web' is not empty")
    );
    // PVE does not look at the rules: the set goes, the rule stays and lists the parser's
    // error (its digest unchanged, as PVE leaves nested values out).
    let before = ok(&server, "GET", RULES, json!({}))[0]["digest"].clone();
    ok(&server, "DELETE", SET, json!({"force": 1}));
    let rule = ok(&server, "GET", RULES, json!({}))[0].clone();
    assert_eq!(rule["errors"], json!({"source": "no such ipset 'web'"}));
    assert_eq!(rule["digest"], before);
    let missing = api(&server, "GET", SET, json!({}));
    assert_eq!(
        missing.unwrap_err(),
        PveError::server("no such IPSet 'web'")
    );
}

#[test]
fn options_round_trip_with_digest_and_delete() {
    let server = server();
    let path = "/cluster/firewall/options";
    let empty = ok(&server, "GET", path, json!({}));
    assert_eq!(
        empty,
        json!({"digest": "da39a3ee5e6b4b0d3255bfef95601890afd80709"})
    );
    ok(
        &server,
        "PUT",
        path,
        json!({"enable": "1", "policy_in": "DROP", "policy_out": "ACCEPT", "ebtables": "0",
               "log_ratelimit": "enable=1,burst=10,rate=5/second"}),
    );
    let read = ok(&server, "GET", path, json!({}));
    assert_eq!(
        (
            read["enable"].clone(),
            read["ebtables"].clone(),
            read["policy_in"].clone()
        ),
        (json!(1), json!(0), json!("DROP"))
    );
    assert_eq!(read["log_ratelimit"], "enable=1,burst=10,rate=5/second");
    let stale = api(
        &server,
        "PUT",
        path,
        json!({"enable": "0", "digest": "f00"}),
    );
    assert!(
        stale
            .unwrap_err()
            .message
            .starts_with("detected modified configuration")
    );
    ok(
        &server,
        "PUT",
        path,
        json!({"delete": "policy_out,ebtables", "digest": read["digest"]}),
    );
    let read = ok(&server, "GET", path, json!({}));
    assert!(read.get("policy_out").is_none() && read.get("ebtables").is_none());
    assert_eq!(
        param_error(
            api(&server, "PUT", path, json!({"delete": "nosuch"})),
            "delete"
        ),
        "no such option 'nosuch'"
    );
    let bad = api(&server, "PUT", path, json!({"policy_in": "MAYBE"}));
    assert!(param_error(bad, "policy_in").contains("enumeration"));
}

#[test]
fn writes_are_logged_as_mutating_and_reads_are_not() {
    let server = server();
    with_set(&server);
    ok(&server, "GET", "/cluster/firewall/ipset", json!({}));
    ok(
        &server,
        "PUT",
        "/cluster/firewall/options",
        json!({"enable": "1"}),
    );
    let log: Vec<(String, bool)> = server
        .sim()
        .oplog
        .iter()
        .map(|o| (o.method.clone(), o.mutating))
        .collect();
    assert_eq!(
        log,
        [
            ("POST".into(), true),
            ("GET".into(), false),
            ("PUT".into(), true)
        ]
    );
}

#[tokio::test]
async fn the_firewall_survives_a_restart_and_the_admin_route_shows_it() {
    let dir = std::env::temp_dir().join(format!("phoenix-sim-fw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let first = server_with(Cluster::new(1), Some(state.clone()));
    with_set(&first);
    ok(
        &first,
        "POST",
        SET,
        json!({"cidr": "10.0.0.11/24", "comment": "lan"}),
    );
    ok(
        &first,
        "POST",
        RULES,
        json!({"type": "in", "action": "ACCEPT", "source": "+web", "enable": 1}),
    );
    ok(
        &first,
        "PUT",
        "/cluster/firewall/options",
        json!({"enable": "1", "policy_in": "DROP"}),
    );
    let before = first.sim().cluster.firewall.clone();
    drop(first);
    let saved: Cluster = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let second = Arc::new(server_with(saved, Some(state)));
    assert_eq!(second.sim().cluster.firewall, before);
    assert_eq!(
        ok(&second, "GET", "/cluster/firewall/options", json!({}))["policy_in"],
        "DROP"
    );
    let admin = admin(&second, "/firewall").await;
    assert_eq!(admin["ipsets"]["web"]["comment"], "front");
    assert_eq!(admin["ipsets"]["web"]["entries"][0]["cidr"], "10.0.0.0/24");
    assert_eq!(admin["rules"][0]["source"], "+web");
    assert_eq!(admin["options"]["enable"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}
