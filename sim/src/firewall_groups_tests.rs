//! Security groups and aliases through the API, without a network: the groups' names,
//! comments, renames and rules (with the habits of every rule list), `type=group` rules at
//! the datacenter, a node and a guest, aliases and what names them, and what PVE refuses
//! to delete.

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

const GROUPS: &str = "/cluster/firewall/groups";
const WEB: &str = "/cluster/firewall/groups/web-front";
const ALIASES: &str = "/cluster/firewall/aliases";
const RULES: &str = "/cluster/firewall/rules";
const NODE_RULES: &str = "/nodes/phoenix/firewall/rules";
const GUEST_RULES: &str = "/nodes/phoenix/lxc/100/firewall/rules";

fn with_group(server: &Server) {
    ok(
        server,
        "POST",
        GROUPS,
        json!({"group": "Web-Front", "comment": " front "}),
    );
}

fn server_error(result: Result<Value, PveError>) -> String {
    let e = result.expect_err("refused");
    assert_eq!(e.status, 500, "{e:?}");
    e.message
}

#[test]
fn groups_are_listed_by_name_in_lower_case_with_comment_and_digest() {
    let server = server();
    with_group(&server);
    ok(&server, "POST", GROUPS, json!({"group": "db"}));
    let listed = ok(&server, "GET", GROUPS, json!({}));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["group"], "db");
    assert!(listed[0].get("comment").is_none());
    assert_eq!(
        (listed[1]["group"].clone(), listed[1]["comment"].clone()),
        (json!("web-front"), json!("front"))
    );
    assert_eq!(listed[0]["digest"], listed[1]["digest"]);
    assert_eq!(listed[0]["digest"].as_str().unwrap().len(), 40);
    // Names are compared exactly, as kept.
    assert_eq!(
        param_error(
            api(&server, "POST", GROUPS, json!({"group": "web-front"})),
            "group"
        ),
        "Security group 'web-front' already exists"
    );
    assert_eq!(
        server_error(api(
            &server,
            "GET",
            "/cluster/firewall/groups/Web-Front",
            json!({})
        )),
        "no such security group 'Web-Front'"
    );
    // The schema's name rules: at most 18 characters, a letter first.
    for bad in ["abcdefghijklmnopqrs", "9web"] {
        let refused = api(&server, "POST", GROUPS, json!({"group": bad}));
        assert!(!param_error(refused, "group").is_empty(), "{bad}");
    }
    ok(
        &server,
        "POST",
        GROUPS,
        json!({"group": "abcdefghijklmnopqr"}),
    );
}

#[test]
fn group_rules_have_the_habits_of_every_rule_list() {
    let server = server();
    with_group(&server);
    ok(
        &server,
        "POST",
        WEB,
        json!({"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "443", "enable": 1}),
    );
    ok(
        &server,
        "POST",
        WEB,
        json!({"type": "forward", "action": "DROP", "pos": 3, "comment": " fwd "}),
    );
    let listed = ok(&server, "GET", WEB, json!({}));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    // New rules on top whatever `pos` says, disabled without `enable`.
    assert_eq!(
        listed[0],
        json!({"type": "forward", "action": "DROP", "enable": 0, "comment": "fwd", "pos": 0,
               "digest": listed[0]["digest"]})
    );
    assert_eq!(
        (listed[1]["dport"].clone(), listed[1]["enable"].clone()),
        (json!("443"), json!(1))
    );
    assert_eq!(ok(&server, "GET", &format!("{WEB}/1"), json!({}))["pos"], 1);
    ok(&server, "PUT", &format!("{WEB}/0"), json!({"moveto": 2}));
    assert_eq!(
        ok(&server, "GET", &format!("{WEB}/1"), json!({}))["action"],
        "DROP"
    );
    let stale = api(
        &server,
        "PUT",
        &format!("{WEB}/0"),
        json!({"enable": 1, "digest": "0"}),
    );
    assert!(server_error(stale).starts_with("detected modified configuration"));
    assert_eq!(
        server_error(api(&server, "GET", &format!("{WEB}/5"), json!({}))),
        "no rule at position 5"
    );
    // What a group's rules may not be or name.
    let refused = |body: Value| api(&server, "POST", WEB, body);
    assert_eq!(
        param_error(
            refused(json!({"type": "group", "action": "web-front"})),
            "type"
        ),
        "invalid rule type 'group' for rule_env 'group'"
    );
    assert_eq!(
        param_error(
            refused(json!({"type": "in", "action": "ACCEPT", "iface": "eth0"})),
            "type"
        ),
        "parameter -i not allowed for this rule type"
    );
    assert_eq!(
        param_error(
            refused(json!({"type": "in", "action": "ACCEPT", "source": "+web"})),
            "source"
        ),
        "no such ipset 'web'"
    );
    ok(&server, "DELETE", &format!("{WEB}/0"), json!({}));
    assert_eq!(
        ok(&server, "GET", WEB, json!({})).as_array().unwrap().len(),
        1
    );
    let missing = api(
        &server,
        "POST",
        "/cluster/firewall/groups/nosuch",
        json!({"type": "in", "action": "ACCEPT"}),
    );
    assert_eq!(server_error(missing), "no such security group 'nosuch'");
}

#[test]
fn group_rules_are_taken_and_listed_at_the_datacenter_a_node_and_a_guest() {
    let server = server();
    with_group(&server);
    for path in [RULES, NODE_RULES, GUEST_RULES] {
        ok(
            &server,
            "POST",
            path,
            json!({"type": "group", "action": "web-front", "enable": 1, "comment": "web"}),
        );
        let rule = ok(&server, "GET", &format!("{path}/0"), json!({}));
        assert_eq!(
            rule,
            json!({"type": "group", "action": "web-front", "enable": 1, "comment": "web",
                   "pos": 0, "digest": rule["digest"]}),
            "{path}"
        );
    }
    // PVE checks the name's characters only, not that the group exists (the compiler
    // warns and uses an empty chain): a missing group is taken, and listed without errors.
    ok(
        &server,
        "POST",
        RULES,
        json!({"type": "group", "action": "nosuch"}),
    );
    let rule = ok(&server, "GET", &format!("{RULES}/0"), json!({}));
    assert_eq!(
        (rule["action"].clone(), rule["enable"].clone()),
        (json!("nosuch"), json!(0))
    );
    assert!(rule.get("errors").is_none());
    let bad = api(
        &server,
        "POST",
        RULES,
        json!({"type": "group", "action": "web front"}),
    );
    assert!(!param_error(bad, "action").is_empty());
}

#[test]
fn a_renamed_group_takes_the_rules_naming_it_along() {
    let server = server();
    with_group(&server);
    ok(
        &server,
        "POST",
        WEB,
        json!({"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "80"}),
    );
    ok(&server, "POST", GROUPS, json!({"group": "db"}));
    for path in [RULES, NODE_RULES, GUEST_RULES] {
        ok(
            &server,
            "POST",
            path,
            json!({"type": "group", "action": "web-front"}),
        );
    }
    let rename = |body: Value| api(&server, "POST", GROUPS, body);
    assert!(
        server_error(rename(
            json!({"group": "web", "rename": "web-front", "digest": "0"})
        ))
        .starts_with("detected modified configuration")
    );
    assert_eq!(
        param_error(rename(json!({"group": "web", "rename": "nosuch"})), "group"),
        "Security group 'nosuch' does not exist"
    );
    assert_eq!(
        param_error(
            rename(json!({"group": "db", "rename": "web-front"})),
            "group"
        ),
        "Security group 'db' does already exist"
    );
    let digest = ok(&server, "GET", GROUPS, json!({}))[0]["digest"].clone();
    ok(
        &server,
        "POST",
        GROUPS,
        json!({"group": "web", "rename": "web-front", "digest": digest}),
    );
    let names: Vec<Value> = ok(&server, "GET", GROUPS, json!({}))
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].clone())
        .collect();
    assert_eq!(names, [json!("db"), json!("web")]);
    let web = ok(&server, "GET", "/cluster/firewall/groups/web", json!({}));
    assert_eq!(web[0]["dport"], "80");
    // The comment moved along, and `rename` = `group` changes only the comment.
    assert_eq!(ok(&server, "GET", GROUPS, json!({}))[1]["comment"], "front");
    ok(
        &server,
        "POST",
        GROUPS,
        json!({"group": "web", "rename": "web", "comment": "http"}),
    );
    assert_eq!(ok(&server, "GET", GROUPS, json!({}))[1]["comment"], "http");
    for path in [RULES, NODE_RULES, GUEST_RULES] {
        let rule = ok(&server, "GET", &format!("{path}/0"), json!({}));
        assert_eq!(rule["action"], "web", "{path}");
    }
}

#[test]
fn a_group_goes_only_without_rules_of_its_own() {
    let server = server();
    with_group(&server);
    ok(
        &server,
        "POST",
        WEB,
        json!({"type": "in", "action": "DROP"}),
    );
    assert_eq!(
        api(&server, "DELETE", WEB, json!({})).unwrap_err(),
        PveError::server("Security group 'web-front' is not empty")
    );
    ok(&server, "DELETE", &format!("{WEB}/0"), json!({}));
    // A rule naming it does not keep it (PVE does not look).
    ok(
        &server,
        "POST",
        RULES,
        json!({"type": "group", "action": "web-front"}),
    );
    ok(&server, "DELETE", WEB, json!({}));
    assert_eq!(ok(&server, "GET", GROUPS, json!({})), json!([]));
    assert_eq!(
        ok(&server, "GET", &format!("{RULES}/0"), json!({}))["action"],
        "web-front"
    );
    assert_eq!(
        server_error(api(&server, "DELETE", WEB, json!({}))),
        "no such security group 'web-front'"
    );
}

#[test]
fn aliases_keep_their_name_and_address_as_pve_reads_them_back() {
    let server = server();
    ok(
        &server,
        "POST",
        ALIASES,
        json!({"name": "Gateway", "cidr": "10.0.0.1/32", "comment": " gw "}),
    );
    ok(
        &server,
        "POST",
        ALIASES,
        json!({"name": "lan", "cidr": "10.0.0.11/24", "comment": "0"}),
    );
    let listed = ok(&server, "GET", ALIASES, json!({}));
    let digest = listed[0]["digest"].clone();
    assert_eq!(
        listed,
        json!([
            {"name": "Gateway", "cidr": "10.0.0.1", "comment": "gw", "ipversion": 4,
             "digest": digest},
            {"name": "lan", "cidr": "10.0.0.11/24", "ipversion": 4, "digest": digest},
        ])
    );
    assert_eq!(
        param_error(
            api(
                &server,
                "POST",
                ALIASES,
                json!({"name": "GATEWAY", "cidr": "10.0.0.2"})
            ),
            "name"
        ),
        "alias 'GATEWAY' already exists"
    );
    let bad = api(
        &server,
        "POST",
        ALIASES,
        json!({"name": "dns", "cidr": "10.0.0.300"}),
    );
    assert!(param_error(bad, "cidr").contains("does not look like a valid IP address"));
    // Found in any case, without a digest.
    assert_eq!(
        ok(&server, "GET", &format!("{ALIASES}/gateway"), json!({})),
        json!({"name": "Gateway", "cidr": "10.0.0.1", "comment": "gw", "ipversion": 4})
    );
    assert_eq!(
        param_error(
            api(&server, "GET", &format!("{ALIASES}/nosuch"), json!({})),
            "name"
        ),
        "no such alias"
    );
    // PUT: the name takes the path's case, the comment not given is gone.
    ok(
        &server,
        "PUT",
        &format!("{ALIASES}/gateway"),
        json!({"cidr": "fd00::1/128", "digest": digest}),
    );
    assert_eq!(
        ok(&server, "GET", &format!("{ALIASES}/gateway"), json!({})),
        json!({"name": "gateway", "cidr": "fd00::1", "ipversion": 6})
    );
    let put = |name: &str, body: Value| api(&server, "PUT", &format!("{ALIASES}/{name}"), body);
    assert!(
        server_error(put("lan", json!({"cidr": "10.0.1.0/24", "digest": digest})))
            .starts_with("detected modified configuration")
    );
    assert_eq!(
        param_error(
            put("lan", json!({"cidr": "10.0.1.0/24", "rename": "GateWay"})),
            "name"
        ),
        "alias 'GateWay' already exists"
    );
    assert_eq!(
        param_error(put("nosuch", json!({"cidr": "10.0.1.0/24"})), "name"),
        "no such alias"
    );
    put("lan", json!({"cidr": "10.0.1.0/24", "rename": "Office"})).unwrap();
    let names: Vec<Value> = ok(&server, "GET", ALIASES, json!({}))
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, [json!("gateway"), json!("Office")]);
    ok(&server, "DELETE", &format!("{ALIASES}/OFFICE"), json!({}));
    ok(&server, "DELETE", &format!("{ALIASES}/nosuch"), json!({}));
    assert_eq!(
        ok(&server, "GET", ALIASES, json!({}))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn rules_and_ip_sets_may_name_only_existing_aliases() {
    let server = server();
    with_group(&server);
    for (path, value) in [
        (RULES, "lan"),
        (NODE_RULES, "dc/lan"),
        (GUEST_RULES, "LAN"),
        (WEB, "lan"),
    ] {
        let refused = api(
            &server,
            "POST",
            path,
            json!({"type": "in", "action": "ACCEPT", "source": value}),
        );
        assert_eq!(
            param_error(refused, "source"),
            format!("no such alias '{value}'"),
            "{path}"
        );
    }
    ok(
        &server,
        "POST",
        ALIASES,
        json!({"name": "lan", "cidr": "10.0.0.0/24"}),
    );
    for (path, value) in [
        (RULES, "lan"),
        (NODE_RULES, "dc/lan"),
        (GUEST_RULES, "LAN"),
        (WEB, "lan"),
    ] {
        ok(
            &server,
            "POST",
            path,
            json!({"type": "in", "action": "ACCEPT", "source": value}),
        );
        // Listed as given, with the alias's IP version.
        let rule = ok(&server, "GET", &format!("{path}/0"), json!({}));
        assert_eq!(
            (rule["source"].clone(), rule["ipversion"].clone()),
            (json!(value), json!(4)),
            "{path}"
        );
    }
    // An IPv4 alias beside an IPv6 address: PVE's error outside its parameter checks.
    let mixed = api(
        &server,
        "POST",
        RULES,
        json!({"type": "in", "action": "ACCEPT", "source": "fd00::/64", "dest": "lan"}),
    );
    assert_eq!(
        server_error(mixed),
        "detected mixed ipv4/ipv6 addresses in rule"
    );
    // IP set entries: a datacenter alias, kept as named; `guest/` has none at the datacenter.
    let set = "/cluster/firewall/ipset/office";
    ok(
        &server,
        "POST",
        "/cluster/firewall/ipset",
        json!({"name": "office"}),
    );
    assert_eq!(
        server_error(api(&server, "POST", set, json!({"cidr": "dns"}))),
        "no such alias 'dns'"
    );
    assert_eq!(
        server_error(api(&server, "POST", set, json!({"cidr": "guest/lan"}))),
        "no such alias 'lan'"
    );
    ok(&server, "POST", set, json!({"cidr": "dc/lan"}));
    ok(&server, "POST", set, json!({"cidr": "10.9.0.0/16"}));
    let entries = ok(&server, "GET", set, json!({}));
    assert_eq!(entries[1]["cidr"], "dc/lan");
    assert!(entries[1].get("errors").is_none());
    // PVE removes an alias in use: what names it then lists the parser's errors.
    ok(&server, "DELETE", &format!("{ALIASES}/lan"), json!({}));
    let rule = ok(&server, "GET", &format!("{RULES}/0"), json!({}));
    assert_eq!(rule["errors"], json!({"source": "no such alias 'lan'"}));
    assert!(rule.get("ipversion").is_none());
    let entries = ok(&server, "GET", set, json!({}));
    assert_eq!(entries[1]["errors"], json!({"cidr": "no such alias 'lan'"}));
}

#[tokio::test]
async fn the_admin_route_shows_groups_and_aliases() {
    let server = Arc::new(server());
    with_group(&server);
    ok(
        &server,
        "POST",
        WEB,
        json!({"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "443", "enable": 1}),
    );
    ok(
        &server,
        "POST",
        ALIASES,
        json!({"name": "Gateway", "cidr": "10.0.0.1", "comment": "gw"}),
    );
    let admin = admin(&server, "/firewall").await;
    assert_eq!(admin["groups"]["web-front"]["comment"], "front");
    assert_eq!(
        admin["groups"]["web-front"]["rules"],
        json!([{"type": "in", "action": "ACCEPT", "enable": 1, "proto": "tcp", "dport": "443"}])
    );
    assert_eq!(
        admin["aliases"]["gateway"],
        json!({"name": "Gateway", "cidr": "10.0.0.1", "comment": "gw"})
    );
    assert!(admin["rules"].is_array() && admin["ipsets"].is_object());
}
