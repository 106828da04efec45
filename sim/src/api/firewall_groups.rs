//! Security groups, `/cluster/firewall/groups`: created, renamed, commented and removed as
//! pve-firewall's `API2/Firewall/Groups.pm` does, their rules served as `Rules.pm`'s
//! `GroupRules` (the rules' habits are [`firewall_rules`]'s). `cluster.fw` keeps a group as
//! a `[group name] # comment` section and its parser lower-cases the name, so that is how
//! groups are kept.
//!
//! PVE does not check that the group a `type=group` rule names exists (`verify_rule` only
//! checks the name's characters; the compiler warns and uses an empty chain), nor does it
//! refuse to delete a group rules name: only a group with rules of its own.
//!
//! [`firewall_rules`]: super::firewall_rules

use super::cluster_firewall::{kept_comment, unmodified};
use super::firewall_rules::{self, Env, Refs};
use super::{ApiResult, Call, PveError};
use crate::firewall::{ClusterFirewall, Group, list_with_digest};
use crate::state::Sim;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub(super) fn call(sim: &mut Sim, call: &Call) -> ApiResult {
    let path = call.template.trim_start_matches("/cluster/firewall/groups");
    let fw = &mut sim.cluster.firewall;
    match (call.method, path) {
        ("GET", "") => Ok(Value::Array(list(fw).0)),
        ("POST", "") => create(sim, call),
        ("DELETE", "/{group}") => delete(fw, call),
        ("GET", "/{group}") => with_rules(fw, call, |rules, refs| {
            Ok(firewall_rules::list(rules, refs, Env::Group))
        }),
        ("POST", "/{group}") => with_rules(fw, call, |rules, refs| {
            firewall_rules::create(rules, refs, call, Env::Group)
        }),
        ("GET", "/{group}/{pos}") => with_rules(fw, call, |rules, refs| {
            firewall_rules::get(rules, refs, Env::Group, call)
        }),
        ("PUT", "/{group}/{pos}") => with_rules(fw, call, |rules, refs| {
            firewall_rules::update(rules, refs, call, Env::Group)
        }),
        ("DELETE", "/{group}/{pos}") => with_rules(fw, call, |rules, refs| {
            firewall_rules::delete(rules, refs, Env::Group, call)
        }),
        _ => Err(PveError {
            status: 501,
            message: format!("Method '{} {}' not implemented", call.method, call.template),
            errors: None,
        }),
    }
}

/// `GET groups`: `{group, comment?}` sorted by name, with the list's digest.
fn list(fw: &ClusterFirewall) -> (Vec<Value>, String) {
    let items = fw
        .groups
        .iter()
        .map(|(name, group)| {
            let mut item = Map::new();
            item.insert("group".into(), json!(name));
            if let Some(c) = &group.comment {
                item.insert("comment".into(), json!(c));
            }
            item
        })
        .collect();
    let (items, digest) = list_with_digest(items);
    (items.into_iter().map(Value::Object).collect(), digest)
}

/// `GroupRules`' `load_config`: the group named exactly (names are kept in lower case).
fn no_such_group(name: &str) -> PveError {
    PveError::server(format!("no such security group '{name}'"))
}

/// Runs `f` on the rules of the group `{group}` with what they may name beside them.
fn with_rules(
    fw: &mut ClusterFirewall,
    call: &Call,
    f: impl FnOnce(&mut Vec<Value>, Refs) -> ApiResult,
) -> ApiResult {
    let name = call.text("group").unwrap_or_default();
    let ClusterFirewall {
        groups,
        ipsets,
        aliases,
        ..
    } = fw;
    let group = groups.get_mut(&name).ok_or_else(|| no_such_group(&name))?;
    f(
        &mut group.rules,
        Refs {
            sets: ipsets,
            aliases,
        },
    )
}

/// `POST groups`: a new group; with `rename` an existing one renamed (the rules of the
/// datacenter, every node and every guest naming it follow, as the name was given), or
/// with `rename` equal to `group` its comment changed. Only a rename checks `digest`.
fn create(sim: &mut Sim, call: &Call) -> ApiResult {
    let name = call.text("group").unwrap_or_default();
    // `defined($comment)`: given at all, even empty (which the file then drops).
    let comment = call
        .params
        .contains_key("comment")
        .then(|| kept_comment(call.text("comment")));
    let fw = &mut sim.cluster.firewall;
    let Some(old) = call.text("rename").filter(|r| !r.is_empty() && r != "0") else {
        if fw.groups.contains_key(&name) {
            return Err(PveError::param(
                "group",
                format!("Security group '{name}' already exists"),
            ));
        }
        let group = Group {
            comment: comment.flatten(),
            rules: Vec::new(),
        };
        read_back(&mut fw.groups, &name, group);
        return Ok(Value::Null);
    };
    unmodified(&list(fw).1, call)?;
    if !fw.groups.contains_key(&old) {
        return Err(PveError::param(
            "group",
            format!("Security group '{old}' does not exist"),
        ));
    }
    if fw.groups.contains_key(&name) && name != old {
        return Err(PveError::param(
            "group",
            format!("Security group '{name}' does already exist"),
        ));
    }
    if old == name {
        if let (Some(comment), Some(group)) = (comment, fw.groups.get_mut(&old)) {
            group.comment = comment;
        }
        return Ok(Value::Null);
    }
    let mut group = fw.groups.remove(&old).unwrap_or_default();
    if let Some(comment) = comment {
        group.comment = comment;
    }
    read_back(&mut fw.groups, &name, group);
    let cluster = &mut sim.cluster;
    let guests = cluster.guests.values_mut().map(|g| &mut g.firewall_rules);
    let nodes = cluster.nodes.iter_mut().map(|n| &mut n.firewall.rules);
    for rules in guests
        .chain(nodes)
        .chain(std::iter::once(&mut cluster.firewall.rules))
    {
        for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
            if rule.get("type") == Some(&json!("group")) && rule.get("action") == Some(&json!(old))
            {
                rule.insert("action".into(), json!(name));
            }
        }
    }
    Ok(Value::Null)
}

/// A group written as `[group {name}]` and read back: under its name in lower case. A
/// mixed-case name beside an existing group of that name is written before it (sorted),
/// so reading back the existing one wins: its rules, and its comment if it has one.
fn read_back(groups: &mut BTreeMap<String, Group>, name: &str, group: Group) {
    let key = name.to_lowercase();
    match groups.get_mut(&key) {
        Some(existing) if key != name => {
            if existing.comment.is_none() {
                existing.comment = group.comment;
            }
        }
        _ => {
            groups.insert(key, group);
        }
    }
}

/// `DELETE groups/{group}`: refused while it has rules; rules elsewhere naming it do not
/// matter.
fn delete(fw: &mut ClusterFirewall, call: &Call) -> ApiResult {
    let name = call.text("group").unwrap_or_default();
    let group = fw.groups.get(&name).ok_or_else(|| no_such_group(&name))?;
    if !group.rules.is_empty() {
        return Err(PveError::server(format!(
            "Security group '{name}' is not empty"
        )));
    }
    fw.groups.remove(&name);
    Ok(Value::Null)
}
