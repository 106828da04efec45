//! A node's network through the API, without a network: changes pending in
//! `interfaces.new` (listed with their diff as `changes`) until a reload applies them,
//! interfaces changed with `delete`, PVE's refusals, reverting, the admin route.

use crate::cluster::Cluster;
use crate::network::Network;
use crate::server::Server;
use crate::test_server::{admin, answer, api, ok, param_error, server_with};
use serde_json::{Value, json};
use std::sync::Arc;

const NETWORK: &str = "/nodes/phoenix/network";

fn server() -> Server {
    server_with(Cluster::new(1), None)
}

/// The interface `name` as `GET network` lists it.
fn listed(server: &Server, name: &str) -> Option<Value> {
    let list = ok(server, "GET", NETWORK, json!({}));
    list.as_array()?
        .iter()
        .find(|i| i["iface"] == name)
        .cloned()
}

fn network(server: &Server) -> Network {
    server
        .sim()
        .cluster
        .node("phoenix")
        .unwrap()
        .network
        .clone()
}

fn add_bridge(server: &Server) {
    let bridge = json!({"iface": "vmbr1", "type": "bridge", "bridge_ports": "eno2",
                        "cidr": "192.168.50.1/24", "autostart": 1, "comments": "lab",
                        "bridge_vlan_aware": 1});
    ok(server, "POST", NETWORK, bridge);
}

/// Reloads the network and waits for the task: its UPID and exit status.
fn reload(server: &Server) -> (String, Value) {
    let upid = ok(server, "PUT", NETWORK, json!({}));
    let upid = upid.as_str().unwrap().to_owned();
    let path = format!("/nodes/phoenix/tasks/{upid}/status");
    let status = ok(server, "GET", &path, json!({}));
    (upid, status["exitstatus"].clone())
}

#[test]
fn the_installed_network_lists_as_pve_does_without_changes() {
    let server = server();
    let envelope = answer(&server, "GET", NETWORK, json!({})).unwrap();
    assert!(!envelope.contains_key("changes"), "{envelope:?}");
    let vmbr0 = listed(&server, "vmbr0").unwrap();
    for (key, value) in [
        ("type", json!("bridge")),
        ("method", json!("static")),
        ("cidr", json!("10.0.0.13/24")),
        ("gateway", json!("10.0.0.1")),
        ("bridge_ports", json!("eno1")),
        ("active", json!(1)),
        ("autostart", json!(1)),
    ] {
        assert_eq!(vmbr0[key], value, "{key}: {vmbr0}");
    }
    let eno2 = listed(&server, "eno2").unwrap();
    assert_eq!((&eno2["type"], &eno2["exists"]), (&json!("eth"), &json!(1)));
    // The loopback is not listed, but can be read.
    assert_eq!(listed(&server, "lo"), None);
    let lo = ok(&server, "GET", &format!("{NETWORK}/lo"), json!({}));
    assert_eq!(lo["type"], "loopback");
}

#[test]
fn a_new_bridge_is_pending_with_its_diff_until_a_reload_applies_it() {
    let server = server();
    add_bridge(&server);
    let envelope = answer(&server, "GET", NETWORK, json!({})).unwrap();
    let changes = envelope["changes"].as_str().expect("changes beside data");
    assert!(
        changes.starts_with("--- /etc/network/interfaces\t"),
        "{changes}"
    );
    assert!(
        changes.contains("\n+++ /etc/network/interfaces.new\t"),
        "{changes}"
    );
    for line in [
        "+auto vmbr1\n",
        "+iface vmbr1 inet static\n",
        "+\taddress 192.168.50.1/24\n",
        "+\tbridge-ports eno2\n",
        "+\tbridge-vlan-aware yes\n",
        "+#lab\n",
    ] {
        assert!(changes.contains(line), "{line:?} in {changes}");
    }
    let vmbr1 = listed(&server, "vmbr1").unwrap();
    assert_eq!(vmbr1["cidr"], "192.168.50.1/24");
    assert_eq!(
        (&vmbr1["address"], &vmbr1["netmask"]),
        (&json!("192.168.50.1"), &json!("24"))
    );
    assert_eq!(vmbr1["comments"], "lab\n");
    assert_eq!(vmbr1.get("active"), None, "not up before the reload");
    // Filtered by type; one interface read alone has no `iface`.
    let bridges = ok(&server, "GET", NETWORK, json!({"type": "bridge"}));
    let names: Vec<&str> = bridges
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["iface"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vmbr0", "vmbr1"]);
    let one = ok(&server, "GET", &format!("{NETWORK}/vmbr1"), json!({}));
    assert_eq!(
        (one["type"].clone(), one.get("iface")),
        (json!("bridge"), None)
    );

    let (upid, exit) = reload(&server);
    assert!(
        upid.contains(":srvreload:networking:root@pam!phoenix:"),
        "{upid}"
    );
    assert_eq!(exit, "OK");
    let envelope = answer(&server, "GET", NETWORK, json!({})).unwrap();
    assert!(!envelope.contains_key("changes"), "{envelope:?}");
    assert_eq!(listed(&server, "vmbr1").unwrap()["active"], 1);
    assert!(network(&server).running.contains("iface vmbr1 inet static"));
    assert_eq!(network(&server).pending, None);
}

#[test]
fn an_update_replaces_what_is_given_deletes_what_is_named_and_keeps_the_rest() {
    let server = server();
    add_bridge(&server);
    let path = format!("{NETWORK}/vmbr1");
    let change = json!({"type": "bridge", "cidr": "192.168.60.1/24", "autostart": 1,
                        "delete": "comments,bridge_vlan_aware"});
    ok(&server, "PUT", &path, change);
    let vmbr1 = listed(&server, "vmbr1").unwrap();
    assert_eq!(vmbr1["cidr"], "192.168.60.1/24");
    assert_eq!(vmbr1["bridge_ports"], "eno2", "kept");
    assert_eq!(
        (vmbr1.get("comments"), vmbr1.get("bridge_vlan_aware")),
        (None, None)
    );
    // Without an address given, PVE makes the interface `manual` (the address stays).
    ok(
        &server,
        "PUT",
        &path,
        json!({"type": "bridge", "comments": "x"}),
    );
    let vmbr1 = listed(&server, "vmbr1").unwrap();
    assert_eq!(
        (&vmbr1["method"], &vmbr1["cidr"]),
        (&json!("manual"), &json!("192.168.60.1/24"))
    );
    let unknown = format!("{NETWORK}/vmbr9");
    for (method, body) in [
        ("GET", json!({})),
        ("PUT", json!({"type": "bridge"})),
        ("DELETE", json!({})),
    ] {
        let refused = api(&server, method, &unknown, body);
        assert_eq!(
            param_error(refused, "iface"),
            "interface does not exist",
            "{method}"
        );
    }
}

#[test]
fn refusals_leave_the_files_as_they_were() {
    let server = server();
    add_bridge(&server);
    let before = network(&server);
    let post = |body: Value| api(&server, "POST", NETWORK, body);
    let bridge = |extra: Value| {
        let mut body = json!({"iface": "vmbr2", "type": "bridge"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for existing in ["vmbr0", "vmbr1", "eno1"] {
        let refused = post(json!({"iface": existing, "type": "bridge"}));
        assert_eq!(param_error(refused, "iface"), "interface already exists");
    }
    let gateway = post(bridge(
        json!({"cidr": "10.1.0.2/24", "gateway": "10.1.0.1"}),
    ));
    assert_eq!(
        param_error(gateway, "gateway"),
        "Default gateway already exists on interface 'vmbr0'."
    );
    let taken = post(bridge(json!({"bridge_ports": "eno1"})));
    assert_eq!(
        param_error(taken, "bridge_ports"),
        "eno1 is already used on interface 'vmbr0'."
    );
    let both = post(bridge(
        json!({"cidr": "10.1.0.2/24", "address": "10.1.0.2", "netmask": "24"}),
    ));
    assert_eq!(param_error(both, "address"), "address conflicts with cidr");
    let missing = post(bridge(json!({"bridge_ports": "eno9"}))).unwrap_err();
    assert_eq!(
        (missing.status, missing.message.as_str()),
        (500, "bridge 'vmbr2' - unable to find bridge port 'eno9'")
    );
    // A type PVE does not know, and Open vSwitch, which a PVE node lacks by default.
    let unknown = param_error(post(json!({"iface": "vmbr2", "type": "wlan"})), "type");
    assert!(unknown.contains("wlan"), "{unknown}");
    let ovs = post(json!({"iface": "vmbr2", "type": "OVSBridge"})).unwrap_err();
    assert_eq!(
        ovs.message,
        "Open VSwitch is not installed (need package 'openvswitch-switch')"
    );
    let gateway = api(
        &server,
        "PUT",
        &format!("{NETWORK}/vmbr1"),
        json!({"type": "bridge", "gateway": "192.168.50.254"}),
    );
    assert_eq!(
        param_error(gateway, "gateway"),
        "Default gateway already exists on interface 'vmbr0'."
    );
    assert_eq!(network(&server), before);
}

#[tokio::test]
async fn revert_drops_the_pending_file_and_a_removal_applies_on_reload() {
    let server = Arc::new(server());
    add_bridge(&server);
    let shown = admin(&server, "/nodes/phoenix/network").await;
    let pending: Vec<&str> = shown["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["iface"].as_str().unwrap())
        .collect();
    assert!(pending.contains(&"vmbr1"), "{shown}");
    assert!(!shown["running"].to_string().contains("vmbr1"), "{shown}");
    ok(&server, "DELETE", NETWORK, json!({}));
    assert_eq!(listed(&server, "vmbr1"), None);
    assert!(
        !answer(&server, "GET", NETWORK, json!({}))
            .unwrap()
            .contains_key("changes")
    );
    assert_eq!(
        admin(&server, "/nodes/phoenix/network").await["pending"],
        Value::Null
    );

    add_bridge(&server);
    assert_eq!(reload(&server).1, "OK");
    ok(&server, "DELETE", &format!("{NETWORK}/vmbr1"), json!({}));
    let changes = answer(&server, "GET", NETWORK, json!({})).unwrap()["changes"].clone();
    assert!(
        changes.as_str().unwrap().contains("-auto vmbr1\n"),
        "{changes}"
    );
    assert_eq!(reload(&server).1, "OK");
    assert_eq!(listed(&server, "vmbr1"), None);
    assert!(!network(&server).up.contains("vmbr1"));
    // With nothing pending a reload still runs, as on PVE.
    assert_eq!(reload(&server).1, "OK");
}

#[test]
fn pending_changes_survive_a_restart() {
    let server = server();
    add_bridge(&server);
    let saved: Cluster =
        serde_json::from_value(serde_json::to_value(&server.sim().cluster).unwrap()).unwrap();
    let again = server_with(saved, None);
    assert_eq!(network(&again), network(&server));
    assert!(
        answer(&again, "GET", NETWORK, json!({}))
            .unwrap()
            .contains_key("changes")
    );
}
