//! A node's host firewall, `/nodes/{node}/firewall`: options and rules with the checks,
//! messages and habits of pve-firewall's `API2/Firewall/Host.pm` (options as
//! `parse_hostfw_option` reads them back) and `Rules.pm` (the rules' are
//! [`firewall_rules`]'s, shared with the datacenter and the guests; a `+set` or an alias
//! must be one of the datacenter's).
//!
//! [`firewall_rules`]: super::firewall_rules

use super::cluster_firewall::{delete_options, refs, unmodified};
use super::firewall_rules::{self, Env};
use super::{ApiResult, Call, PveError};
use crate::firewall::{NodeFirewall, object_with_digest};
use crate::state::Sim;
use serde_json::{Map, Value, json};

pub(super) fn call(sim: &mut Sim, call: &Call) -> ApiResult {
    let cluster = &mut sim.cluster;
    let refs = refs(&cluster.firewall);
    let node = call.node();
    let fw = &mut cluster
        .nodes
        .iter_mut()
        .find(|n| n.name == node)
        .expect("dispatch checked the node")
        .firewall;
    let path = call.template.trim_start_matches("/nodes/{node}/firewall");
    match (call.method, path) {
        ("GET", "/options") => Ok(Value::Object(options(fw).0)),
        ("PUT", "/options") => set_options(fw, call),
        ("GET", "/rules") => Ok(firewall_rules::list(&fw.rules, refs, Env::Host)),
        ("GET", "/rules/{pos}") => firewall_rules::get(&fw.rules, refs, Env::Host, call),
        ("POST", "/rules") => firewall_rules::create(&mut fw.rules, refs, call, Env::Host),
        ("PUT", "/rules/{pos}") => firewall_rules::update(&mut fw.rules, refs, call, Env::Host),
        ("DELETE", "/rules/{pos}") => firewall_rules::delete(&mut fw.rules, refs, Env::Host, call),
        _ => Err(PveError {
            status: 501,
            message: format!("Method '{} {}' not implemented", call.method, call.template),
            errors: None,
        }),
    }
}

/// The host options PVE 9 knows, by how `host.fw` keeps them.
const FLAGS: [&str; 8] = [
    "enable",
    "nosmurfs",
    "tcpflags",
    "ndp",
    "log_nf_conntrack",
    "nf_conntrack_allow_invalid",
    "protection_synflood",
    "nftables",
];
const LOG_LEVELS: [&str; 5] = [
    "log_level_in",
    "log_level_out",
    "log_level_forward",
    "tcp_flags_log_level",
    "smurf_log_level",
];
const NUMBERS: [&str; 5] = [
    "nf_conntrack_max",
    "nf_conntrack_tcp_timeout_established",
    "nf_conntrack_tcp_timeout_syn_recv",
    "protection_synflood_rate",
    "protection_synflood_burst",
];
const HELPERS: &str = "nf_conntrack_helpers";

fn known() -> Vec<&'static str> {
    [&FLAGS[..], &LOG_LEVELS[..], &NUMBERS[..], &[HELPERS]].concat()
}

/// The options the file has (none by default: absent ones take their defaults, `enable`
/// on), with their digest.
fn options(fw: &NodeFirewall) -> (Map<String, Value>, String) {
    object_with_digest(fw.options.clone().into_iter().collect())
}

/// `PUT options`: `delete` first, then what is given, kept as the file reads back.
fn set_options(fw: &mut NodeFirewall, call: &Call) -> ApiResult {
    unmodified(&options(fw).1, call)?;
    delete_options(&mut fw.options, call, &known())?;
    for name in known() {
        let Some(given) = call.text(name) else {
            continue;
        };
        match read_back(name, &given) {
            Some(value) => fw.options.insert(name.into(), value),
            // A line the parser cannot read is skipped with a warning.
            None => fw.options.remove(name),
        };
    }
    Ok(Value::Null)
}

/// `name: value` as `parse_hostfw_option` reads it: flags and numbers as numbers, log
/// levels and helpers in lower case; `None` for what it does not parse.
fn read_back(name: &str, given: &str) -> Option<Value> {
    let given = given.trim();
    if FLAGS.contains(&name) {
        let on = given == "1" || given.eq_ignore_ascii_case("true");
        return Some(json!(u8::from(on)));
    }
    if NUMBERS.contains(&name) {
        return given.parse::<u64>().ok().map(|n| json!(n));
    }
    if name == HELPERS && given.is_empty() {
        return None;
    }
    Some(json!(given.to_lowercase()))
}
