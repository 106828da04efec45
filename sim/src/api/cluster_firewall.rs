//! The datacenter firewall, `/cluster/firewall`: options, IP sets and their entries, rules
//! — with the checks, messages and habits of pve-firewall's `API2/Firewall/Cluster.pm`,
//! `IPSet.pm` and `Rules.pm` (the rules' are [`firewall_rules`]'s, shared with guests).
//! Security groups and aliases are [`firewall_groups`]' and [`firewall_aliases`]'.
//!
//! [`firewall_rules`]: super::firewall_rules
//! [`firewall_groups`]: super::firewall_groups
//! [`firewall_aliases`]: super::firewall_aliases

use super::firewall_rules::{self, Env, Refs};
use super::{ApiResult, Call, PveError};
use crate::firewall::{
    Alias, ClusterFirewall, IpSet, IpSetEntry, list_with_digest, normalise_cidr, object_with_digest,
};
use crate::state::Sim;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub(super) fn call(sim: &mut Sim, call: &Call) -> ApiResult {
    let fw = &mut sim.cluster.firewall;
    let path = call.template.trim_start_matches("/cluster/firewall");
    match (call.method, path) {
        ("GET", "/options") => Ok(Value::Object(options(fw).0)),
        ("PUT", "/options") => set_options(fw, call),
        ("GET", "/ipset") => Ok(Value::Array(ipsets(fw).0)),
        ("POST", "/ipset") => create_ipset(fw, call),
        ("DELETE", "/ipset/{name}") => delete_ipset(fw, call),
        ("GET", "/ipset/{name}") => Ok(Value::Array(entries(set(fw, call)?, &fw.aliases).0)),
        ("POST", "/ipset/{name}") => add_entry(fw, call),
        ("GET", "/ipset/{name}/{cidr}") => entry(fw, call),
        ("PUT", "/ipset/{name}/{cidr}") => update_entry(fw, call),
        ("DELETE", "/ipset/{name}/{cidr}") => remove_entry(fw, call),
        ("GET", "/rules") => Ok(firewall_rules::list(&fw.rules, refs(fw), Env::Cluster)),
        ("GET", "/rules/{pos}") => firewall_rules::get(&fw.rules, refs(fw), Env::Cluster, call),
        ("POST", "/rules") => {
            let refs = Refs {
                sets: &fw.ipsets,
                aliases: &fw.aliases,
            };
            firewall_rules::create(&mut fw.rules, refs, call, Env::Cluster)
        }
        ("PUT", "/rules/{pos}") => {
            let refs = Refs {
                sets: &fw.ipsets,
                aliases: &fw.aliases,
            };
            firewall_rules::update(&mut fw.rules, refs, call, Env::Cluster)
        }
        ("DELETE", "/rules/{pos}") => {
            let refs = Refs {
                sets: &fw.ipsets,
                aliases: &fw.aliases,
            };
            firewall_rules::delete(&mut fw.rules, refs, Env::Cluster, call)
        }
        _ => Err(PveError {
            status: 501,
            message: format!("Method '{} {}' not implemented", call.method, call.template),
            errors: None,
        }),
    }
}

/// What the datacenter's rules (and everyone else's) may name.
pub(super) fn refs(fw: &ClusterFirewall) -> Refs<'_> {
    Refs {
        sets: &fw.ipsets,
        aliases: &fw.aliases,
    }
}

/// PVE's `assert_if_modified`.
pub(super) fn unmodified(current: &str, call: &Call) -> Result<(), PveError> {
    match call.text("digest") {
        Some(d) if d != current => Err(PveError::server(
            "detected modified configuration - file changed by other user? Try again.",
        )),
        _ => Ok(()),
    }
}

/// A comment as the file keeps it: trimmed, and none when it is empty or `0`.
pub(super) fn kept_comment(text: Option<String>) -> Option<String> {
    text.map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty() && c != "0")
}

const OPTIONS: [&str; 6] = [
    "enable",
    "ebtables",
    "policy_in",
    "policy_out",
    "policy_forward",
    "log_ratelimit",
];

/// The options as read, with their digest. An `enable` above 1 is the time it was set
/// (PVE's anti-lockout double call): read as 0 once it is older than a minute.
fn options(fw: &ClusterFirewall) -> (Map<String, Value>, String) {
    let mut read: Map<String, Value> = fw.options.clone().into_iter().collect();
    if let Some(since) = read.get("enable").and_then(Value::as_u64)
        && since > 1
        && crate::clock::now_s().saturating_sub(since) > 60
    {
        read.insert("enable".into(), json!(0));
    }
    object_with_digest(read)
}

/// `PUT options`: `delete` first, then what is given, stored as the parser reads it back
/// (numbers for `enable`/`ebtables`).
fn set_options(fw: &mut ClusterFirewall, call: &Call) -> ApiResult {
    unmodified(&options(fw).1, call)?;
    delete_options(&mut fw.options, call, &OPTIONS)?;
    for name in OPTIONS {
        let Some(text) = call.text(name) else {
            continue;
        };
        let value = match name {
            "enable" => match text.parse::<u64>().unwrap_or(0) {
                n if n > 1 => json!(crate::clock::now_s()),
                n => json!(n),
            },
            "ebtables" => json!(u8::from(text == "1")),
            // The parser takes `log_ratelimit: \S+` only.
            "log_ratelimit" if text.contains(char::is_whitespace) => {
                fw.options.remove(name);
                continue;
            }
            _ => json!(text),
        };
        fw.options.insert(name.into(), value);
    }
    Ok(Value::Null)
}

/// `PUT options`' `delete`: the options named removed; one the scope does not have is
/// refused.
pub(super) fn delete_options(
    options: &mut BTreeMap<String, Value>,
    call: &Call,
    known: &[&str],
) -> Result<(), PveError> {
    let deleted = call.text("delete").unwrap_or_default();
    for name in deleted
        .split(|c: char| c == ',' || c == ';' || c == '\0' || c.is_whitespace())
        .filter(|n| !n.is_empty())
    {
        if !known.contains(&name) {
            return Err(PveError::param(
                "delete",
                format!("no such option '{name}'"),
            ));
        }
        options.remove(name);
    }
    Ok(())
}

/// `GET ipset`: names sorted, comments, the list's digest.
fn ipsets(fw: &ClusterFirewall) -> (Vec<Value>, String) {
    let items = fw
        .ipsets
        .iter()
        .map(|(name, set)| {
            let mut item = Map::new();
            item.insert("name".into(), json!(name));
            if let Some(c) = &set.comment {
                item.insert("comment".into(), json!(c));
            }
            item
        })
        .collect();
    let (items, digest) = list_with_digest(items);
    (items.into_iter().map(Value::Object).collect(), digest)
}

/// `POST ipset`: a new set, or with `rename` an existing one renamed (or its comment
/// changed). The file's parser lower-cases set names, so that is how they are kept.
fn create_ipset(fw: &mut ClusterFirewall, call: &Call) -> ApiResult {
    let name = call.text("name").unwrap_or_default();
    let comment = kept_comment(call.text("comment"));
    match call.text("rename").filter(|r| !r.is_empty() && r != "0") {
        Some(old) => {
            unmodified(&ipsets(fw).1, call)?;
            if !fw.ipsets.contains_key(&old) {
                return Err(PveError::param(
                    "name",
                    format!("IPSet '{old}' does not exist"),
                ));
            }
            if fw.ipsets.contains_key(&name) && name != old {
                return Err(PveError::param(
                    "name",
                    format!("IPSet '{name}' does already exist"),
                ));
            }
            let mut set = fw.ipsets.remove(&old).unwrap_or_default();
            if call.params.contains_key("comment") {
                set.comment = comment;
            }
            fw.ipsets.insert(name.to_lowercase(), set);
        }
        None => {
            if fw.ipsets.contains_key(&name) {
                return Err(PveError::param(
                    "name",
                    format!("IPSet '{name}' already exists"),
                ));
            }
            // `Web` beside an existing `web`: both sections are written, and reading them
            // back the existing one wins (its entries; its comment if it has one).
            let set = fw.ipsets.entry(name.to_lowercase()).or_default();
            if set.comment.is_none() {
                set.comment = comment;
            }
        }
    }
    Ok(Value::Null)
}

fn set<'a>(fw: &'a ClusterFirewall, call: &Call) -> Result<&'a IpSet, PveError> {
    let name = call.text("name").unwrap_or_default();
    fw.ipsets
        .get(&name)
        .ok_or_else(|| PveError::server(format!("no such IPSet '{name}'")))
}

fn set_mut<'a>(fw: &'a mut ClusterFirewall, call: &Call) -> Result<&'a mut IpSet, PveError> {
    set_mut_in(&mut fw.ipsets, call)
}

fn set_mut_in<'a>(
    sets: &'a mut BTreeMap<String, IpSet>,
    call: &Call,
) -> Result<&'a mut IpSet, PveError> {
    let name = call.text("name").unwrap_or_default();
    sets.get_mut(&name)
        .ok_or_else(|| PveError::server(format!("no such IPSet '{name}'")))
}

/// `DELETE ipset/{name}`: refused while it has entries, unless `force`. PVE does not
/// look at the rules: one naming the set then lists with `errors`.
fn delete_ipset(fw: &mut ClusterFirewall, call: &Call) -> ApiResult {
    let name = call.text("name").unwrap_or_default();
    if !set(fw, call)?.entries.is_empty() && !call.flag("force") {
        return Err(PveError::server(format!("IPSet '{name}' is not empty")));
    }
    fw.ipsets.remove(&name);
    Ok(Value::Null)
}

fn alias_pattern() -> regex::Regex {
    regex::Regex::new(r"^(dc/|guest/)?([A-Za-z][A-Za-z0-9\-_]+)$").expect("static")
}

/// A set's entries (sorted by address, as the file has them) with the list's digest; one
/// naming an alias that is gone carries the parser's `errors` (left out of the digest).
fn entries(set: &IpSet, aliases: &BTreeMap<String, Alias>) -> (Vec<Value>, String) {
    let alias = alias_pattern();
    let items = set
        .entries
        .iter()
        .map(|e| {
            let mut item = e.json();
            if let Some(c) = alias.captures(&e.cidr)
                && !aliases.contains_key(&c[2].to_lowercase())
            {
                let msg = format!("no such alias '{}'", &c[2]);
                item.insert("errors".into(), json!({"cidr": msg}));
            }
            item
        })
        .collect();
    let (items, digest) = list_with_digest(items);
    (items.into_iter().map(Value::Object).collect(), digest)
}

/// `POST ipset/{name}`: an alias (kept as named) must be one of the datacenter's
/// (`resolve_alias`: not `guest/`, which a datacenter set has none of); an address is
/// normalised as PVE does before it looks for a duplicate.
fn add_entry(fw: &mut ClusterFirewall, call: &Call) -> ApiResult {
    let given = call.text("cidr").unwrap_or_default();
    set(fw, call)?;
    if let Some(c) = alias_pattern().captures(&given) {
        let scope = c.get(1).map_or("", |m| m.as_str());
        if scope == "guest/" || !fw.aliases.contains_key(&c[2].to_lowercase()) {
            return Err(PveError::server(format!("no such alias '{}'", &c[2])));
        }
        let set = set_mut(fw, call)?;
        return add_checked(set, given, call);
    }
    let set = set_mut(fw, call)?;
    let cidr = normalise_cidr(&given).ok_or_else(|| {
        PveError::param(
            "cidr",
            "invalid format - value does not look like a valid IP address or CIDR network",
        )
    })?;
    add_checked(set, cidr, call)
}

/// The entry added unless the set has it already or it has a zero prefix.
fn add_checked(set: &mut IpSet, cidr: String, call: &Call) -> ApiResult {
    if set.entries.iter().any(|e| e.cidr == cidr) {
        return Err(PveError::param(
            "cidr",
            format!("address '{cidr}' already exists"),
        ));
    }
    if cidr
        .rsplit_once('/')
        .is_some_and(|(_, l)| l.chars().all(|c| c == '0'))
    {
        return Err(PveError::param(
            "cidr",
            "a zero prefix is not allowed in ipset entries",
        ));
    }
    set.insert(IpSetEntry {
        cidr,
        nomatch: call.flag("nomatch"),
        comment: kept_comment(call.text("comment")),
    });
    Ok(Value::Null)
}

/// The position of the entry whose address is exactly `{cidr}` (PVE does not normalise
/// it here: `10.0.0.11/24` does not find `10.0.0.0/24`).
fn find(set: &IpSet, call: &Call) -> Option<usize> {
    let cidr = call.text("cidr").unwrap_or_default();
    set.entries.iter().position(|e| e.cidr == cidr)
}

fn no_such_entry() -> PveError {
    PveError::param("cidr", "no such IP/Network")
}

fn entry(fw: &ClusterFirewall, call: &Call) -> ApiResult {
    let set = set(fw, call)?;
    let at = find(set, call).ok_or_else(no_such_entry)?;
    Ok(entries(set, &fw.aliases).0[at].clone())
}

/// `PUT ipset/{name}/{cidr}`: `nomatch` and `comment` replaced (absent ones cleared).
fn update_entry(fw: &mut ClusterFirewall, call: &Call) -> ApiResult {
    let aliases = &fw.aliases;
    let set = set_mut_in(&mut fw.ipsets, call)?;
    unmodified(&entries(set, aliases).1, call)?;
    let at = find(set, call).ok_or_else(no_such_entry)?;
    set.entries[at].nomatch = call.flag("nomatch");
    set.entries[at].comment = kept_comment(call.text("comment"));
    Ok(Value::Null)
}

/// `DELETE ipset/{name}/{cidr}`: an address not in the set is no error.
fn remove_entry(fw: &mut ClusterFirewall, call: &Call) -> ApiResult {
    let aliases = &fw.aliases;
    let set = set_mut_in(&mut fw.ipsets, call)?;
    unmodified(&entries(set, aliases).1, call)?;
    if let Some(at) = find(set, call) {
        set.entries.remove(at);
    }
    Ok(Value::Null)
}
