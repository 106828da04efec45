//! Firewall rules, wherever they live (the datacenter's, a security group's, a node's, a
//! guest's): listed, read, created, changed, moved and removed as pve-firewall's
//! `API2/Firewall/Rules.pm` does, checked by its `verify_rule` and kept as `Firewall.pm`
//! writes them and reads them back.

use super::{ApiResult, Call, PveError};
use crate::firewall::{Alias, IpSet, list_with_digest};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// PVE's `rule_env`: which rule types a place takes and whether `iface` must be `netN`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Env {
    Cluster,
    /// A security group's rules.
    Group,
    /// A node's host firewall.
    Host,
    /// A guest: PVE names it `vm` or `ct` in its messages.
    Guest(&'static str),
}

impl Env {
    fn name(self) -> &'static str {
        match self {
            Env::Cluster => "cluster",
            Env::Group => "group",
            Env::Host => "host",
            Env::Guest(kind) => kind,
        }
    }

    fn types(self) -> &'static [&'static str] {
        match self {
            Env::Cluster | Env::Host => &["in", "out", "forward", "group"],
            Env::Group => &["in", "out", "forward"],
            Env::Guest(_) => &["in", "out", "group"],
        }
    }
}

/// What a rule's addresses may name: the datacenter's IP sets (`+name`) and aliases
/// (guests' own sets and aliases are not simulated).
#[derive(Clone, Copy)]
pub(super) struct Refs<'a> {
    pub sets: &'a BTreeMap<String, IpSet>,
    /// By name in lower case.
    pub aliases: &'a BTreeMap<String, Alias>,
}

/// The parameters PVE copies into a rule (`$rule_properties`); `pos` and `digest` among
/// them, but the file writer drops those.
const PROPERTIES: [&str; 15] = [
    "pos",
    "digest",
    "type",
    "action",
    "macro",
    "iface",
    "source",
    "dest",
    "proto",
    "enable",
    "log",
    "sport",
    "dport",
    "comment",
    "icmp-type",
];

/// Protocols whose rules may name ports (`$PROTOCOLS_WITH_PORTS`).
const WITH_PORTS: [&str; 10] = [
    "udp", "17", "udplite", "136", "tcp", "6", "dccp", "33", "sctp", "132",
];

const NAME: &str = r"[A-Za-z][A-Za-z0-9\-_]+";

fn name_pattern(prefixes: &str) -> regex::Regex {
    regex::Regex::new(&format!("^{prefixes}({NAME})$")).expect("static pattern")
}

/// A rule being edited: every property as text, as the handlers see parameters.
type Draft = BTreeMap<String, String>;

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Perl's truth of a string: what the file writer writes at all.
fn truthy(v: &str) -> bool {
    !v.is_empty() && v != "0"
}

/// `GET rules`: every rule with the list's digest and its position; a rule naming an IP
/// set or alias that is gone carries the parser's `errors` (PVE lists it so, it does not
/// refuse to delete the set or alias).
pub(super) fn list(rules: &[Value], refs: Refs, env: Env) -> Value {
    let items = rules.iter().map(|r| listed(r, refs, env)).collect();
    let (items, _) = list_with_digest(items);
    Value::Array(
        items
            .into_iter()
            .enumerate()
            .map(|(pos, mut r)| {
                r.insert("pos".into(), json!(pos));
                Value::Object(r)
            })
            .collect(),
    )
}

/// A rule as the parser reads it back: the `errors` of what it names, and the IP version
/// of an alias it names (read from the alias as it is now).
fn listed(rule: &Value, refs: Refs, env: Env) -> Map<String, Value> {
    let mut out = rule.as_object().cloned().unwrap_or_default();
    let mut errors = Map::new();
    for field in ["source", "dest"] {
        let Some(value) = out.get(field).map(as_text) else {
            continue;
        };
        if let Err(msg) = set_or_alias(&value, refs) {
            errors.insert(field.into(), json!(msg));
        }
        if !out.contains_key("ipversion")
            && let Some(v) = alias_version(&value, refs, env, true)
        {
            out.insert("ipversion".into(), json!(v));
        }
    }
    if !errors.is_empty() {
        out.insert("errors".into(), Value::Object(errors));
    }
    out
}

fn position(call: &Call, len: usize) -> Result<usize, PveError> {
    let text = call.text("pos").unwrap_or_default();
    match text.parse::<usize>() {
        Ok(p) if p < len => Ok(p),
        _ => Err(PveError::server(format!("no rule at position {text}"))),
    }
}

/// PVE's `assert_if_modified` against the digest of the list.
fn unmodified(rules: &[Value], refs: Refs, env: Env, call: &Call) -> Result<(), PveError> {
    let current = list_with_digest(rules.iter().map(|r| listed(r, refs, env)).collect()).1;
    match call.text("digest") {
        Some(d) if d != current => Err(PveError::server(
            "detected modified configuration - file changed by other user? Try again.",
        )),
        _ => Ok(()),
    }
}

/// `GET rules/{pos}`.
pub(super) fn get(rules: &[Value], refs: Refs, env: Env, call: &Call) -> ApiResult {
    let pos = position(call, rules.len())?;
    Ok(list(rules, refs, env)[pos].clone())
}

/// `POST rules`: checked, then put on top whatever `pos` says (`unshift`); without
/// `enable` it is disabled.
pub(super) fn create(rules: &mut Vec<Value>, refs: Refs, call: &Call, env: Env) -> ApiResult {
    let mut draft = Draft::new();
    copy_data(&mut draft, call);
    let ipversion = verify(&draft, refs, env)?;
    if !call.params.contains_key("enable") {
        draft.insert("enable".into(), "0".into());
    }
    rules.insert(0, stored(&draft, ipversion));
    Ok(Value::Null)
}

/// `PUT rules/{pos}`: `moveto` moves it (other arguments ignored), else its properties
/// change (`delete` removes some) and it is checked again.
pub(super) fn update(rules: &mut Vec<Value>, refs: Refs, call: &Call, env: Env) -> ApiResult {
    unmodified(rules, refs, env, call)?;
    let pos = position(call, rules.len())?;
    if let Some(moveto) = call.text("moveto").and_then(|m| m.parse::<usize>().ok()) {
        if moveto != pos {
            move_rule(rules, pos, moveto);
        }
        return Ok(Value::Null);
    }
    let mut draft: Draft = rules[pos]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "ipversion")
        .map(|(k, v)| (k.clone(), as_text(v)))
        .collect();
    copy_data(&mut draft, call);
    if let Some(delete) = call.text("delete") {
        delete_properties(&mut draft, &delete)?;
    }
    let ipversion = verify(&draft, refs, env)?;
    rules[pos] = stored(&draft, ipversion);
    Ok(Value::Null)
}

/// PVE's move: the rule goes before the one now at `moveto`, or last past the end.
fn move_rule(rules: &mut Vec<Value>, pos: usize, moveto: usize) {
    let rule = rules[pos].clone();
    let mut moved = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        if i == pos {
            continue;
        }
        if i == moveto {
            moved.push(rule.clone());
        }
        moved.push(r.clone());
    }
    if moveto >= rules.len() {
        moved.push(rule);
    }
    *rules = moved;
}

/// `DELETE rules/{pos}`.
pub(super) fn delete(rules: &mut Vec<Value>, refs: Refs, env: Env, call: &Call) -> ApiResult {
    unmodified(rules, refs, env, call)?;
    let pos = position(call, rules.len())?;
    rules.remove(pos);
    Ok(Value::Null)
}

/// `copy_rule_data`: every rule property given; `''` or `-` removes it.
fn copy_data(draft: &mut Draft, call: &Call) {
    for key in PROPERTIES {
        match call.text(key) {
            Some(v) if v.is_empty() || v == "-" => {
                draft.remove(key);
            }
            Some(v) => {
                draft.insert(key.into(), v);
            }
            None => {}
        }
    }
}

/// `delete_rule_properties`.
fn delete_properties(draft: &mut Draft, list: &str) -> Result<(), PveError> {
    let names = list
        .split(|c: char| c == ',' || c == ';' || c == '\0' || c.is_whitespace())
        .filter(|n| !n.is_empty());
    for name in names {
        if !PROPERTIES.contains(&name) {
            return Err(PveError::param(
                "delete",
                format!("no such property ('{name}')"),
            ));
        }
        if name == "type" || name == "action" {
            return Err(PveError::param(
                "delete",
                format!("unable to delete required property '{name}'"),
            ));
        }
        draft.remove(name);
    }
    Ok(())
}

/// The rule as `cluster.fw`/`<vmid>.fw` gets it and the parser reads it back: enabled
/// unless `enable` is 0, a group rule keeps only its interface, empty and `0` values
/// dropped, the comment trimmed, the IP version PVE derives from the addresses (an alias's
/// is not kept: the listing reads it from the alias).
fn stored(draft: &Draft, ipversion: Option<u8>) -> Value {
    let text = |k: &str| draft.get(k).filter(|v| truthy(v)).cloned();
    let kind = draft
        .get("type")
        .map(|t| t.to_lowercase())
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), json!(kind));
    out.insert(
        "action".into(),
        json!(draft.get("action").cloned().unwrap_or_default()),
    );
    let enabled = draft.get("enable").is_none_or(|e| e != "0");
    out.insert("enable".into(), json!(enabled as u8));
    let mut fields = vec!["macro", "iface"];
    if kind != "group" {
        fields.extend([
            "source",
            "dest",
            "proto",
            "dport",
            "sport",
            "log",
            "icmp-type",
        ]);
    }
    for key in fields {
        if let Some(v) = text(key) {
            out.insert(key.into(), json!(v));
        }
    }
    if let Some(c) = draft.get("comment").map(|c| c.trim()).filter(|c| truthy(c)) {
        out.insert("comment".into(), json!(c));
    }
    if let Some(v) = ipversion.filter(|_| kind != "group") {
        out.insert("ipversion".into(), json!(v));
    }
    Value::Object(out)
}

/// `verify_rule` as the API calls it: the first error as PVE's parameter error; the IP
/// version the addresses (or an ICMP protocol) imply, but for aliases' (which count for
/// the mixed-versions check only).
fn verify(draft: &Draft, refs: Refs, env: Env) -> Result<Option<u8>, PveError> {
    let get = |k: &str| draft.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let (kind, action) = (get("type"), get("action"));
    let kind = kind.ok_or_else(|| PveError::param("type", "missing property"))?;
    let action = action.ok_or_else(|| PveError::param("action", "missing property"))?;
    if !env.types().contains(&kind) {
        return Err(PveError::param(
            "type",
            format!("invalid rule type '{kind}' for rule_env '{}'", env.name()),
        ));
    }
    if kind == "group" && !name_pattern("").is_match(action) {
        return Err(PveError::param(
            "action",
            "invalid characters in security group name",
        ));
    }
    if kind != "group" {
        if kind == "forward" && action == "REJECT" {
            return Err(PveError::param(
                "action",
                "cannot define REJECT rules on forward chain",
            ));
        }
        if !matches!(action, "ACCEPT" | "DROP" | "REJECT") {
            return Err(PveError::param(
                "action",
                format!("unknown action '{action}'"),
            ));
        }
    }
    if get("iface").is_some() && env == Env::Group {
        return Err(PveError::param(
            "type",
            "parameter -i not allowed for this rule type",
        ));
    }
    if let (Some(iface), Env::Guest(_)) = (get("iface"), env)
        && !regex::Regex::new(r"^net\d+$")
            .expect("static")
            .is_match(iface)
    {
        return Err(PveError::param(
            "iface",
            r"value does not match the regex pattern 'net\d+'",
        ));
    }
    let mut plain = match get("proto") {
        Some("icmp") => Some(4),
        Some("icmpv6" | "ipv6-icmp") => Some(6),
        _ => None,
    };
    let is_icmp = matches!(
        get("proto"),
        Some("icmp" | "icmpv6" | "ipv6-icmp" | "1" | "58")
    );
    for port in ["dport", "sport"] {
        if get(port).is_some() {
            let Some(proto) = get("proto") else {
                return Err(PveError::param(
                    "proto",
                    format!("missing property - '{port}' requires this property"),
                ));
            };
            if !(WITH_PORTS.contains(&proto) || port == "dport" && is_icmp) {
                return Err(PveError::param(
                    port,
                    format!("protocol '{proto}' does not support ports"),
                ));
            }
        }
    }
    // The running version, aliases' included.
    let mut version = plain;
    for field in ["source", "dest"] {
        if let Some(value) = get(field) {
            let found = address_version(value).map_err(|e| PveError::param(field, e))?;
            match (version, found) {
                (Some(a), Some(b)) if a != b => {
                    return Err(PveError::param(
                        field,
                        "detected mixed ipv4/ipv6 addresses in rule",
                    ));
                }
                (_, Some(b)) => {
                    version = Some(b);
                    plain = Some(b);
                }
                _ => {}
            }
            set_or_alias(value, refs).map_err(|e| PveError::param(field, e))?;
            // Outside `verify_rule`'s evals: a plain error, not a parameter's.
            match (version, alias_version(value, refs, env, false)) {
                (Some(a), Some(b)) if a != b => {
                    return Err(PveError::server(
                        "detected mixed ipv4/ipv6 addresses in rule",
                    ));
                }
                (_, Some(b)) => version = Some(b),
                _ => {}
            }
        }
    }
    Ok(plain)
}

/// The IP version of the alias `value` names, where PVE looks it up: `verify_rule` when
/// the API checks a rule (datacenter and group rules look in `cluster.fw` unless the name
/// says `dc/`, nodes' and guests' unless it says `guest/`), or the parser reading the
/// file back (`read_back`: the datacenter's rules find every scope, the others not
/// `guest/`, as guests' own aliases are not simulated).
fn alias_version(value: &str, refs: Refs, env: Env, read_back: bool) -> Option<u8> {
    let c = name_pattern("(dc/|guest/)?").captures(value)?;
    let scope = c.get(1).map_or("", |m| m.as_str());
    let looked = match env {
        Env::Cluster if read_back => true,
        Env::Cluster | Env::Group if !read_back => scope != "dc/",
        _ => scope != "guest/",
    };
    match looked {
        true => refs.aliases.get(&c[2].to_lowercase()).map(Alias::ipversion),
        false => None,
    }
}

/// `parse_address_list`: the IP version of an address list, `None` for a set or an
/// alias.
fn address_version(text: &str) -> Result<Option<u8>, String> {
    if let Some(set) = text.strip_prefix('+')
        && !set.is_empty()
        && !set.contains(char::is_whitespace)
    {
        return match text.len() > 65 {
            true => Err("ipset name too long".into()),
            false => Ok(None),
        };
    }
    if name_pattern("(dc/|guest/)?").is_match(text) {
        return match text.len() > 64 {
            true => Err("alias name too long".into()),
            false => Ok(None),
        };
    }
    let mut elements: Vec<&str> = text.split(',').collect();
    while elements.last() == Some(&"") {
        elements.pop();
    }
    if elements.join(",") != text {
        return Err("extraneous commas in list".into());
    }
    let mut version = None;
    for element in &elements {
        let found = if element.contains(':') { 6 } else { 4 };
        if version.is_some_and(|v| v != found) {
            return Err(format!(
                "detected mixed ipv4/ipv6 addresses in address list '{text}'"
            ));
        }
        version = Some(found);
    }
    if elements.len() > 1 && elements.iter().any(|e| e.contains('-')) {
        return Err("you can't use a range in a list".into());
    }
    Ok(version)
}

/// The IP set (`+name`) or alias a rule's address names must exist: the datacenter's
/// sets, matched by exact name (PVE keeps set names in lower case, so `+Web` misses
/// `web`); the datacenter's aliases, matched in lower case whatever the scope prefix
/// says (`verify_rule` looks in both the datacenter's and the rule's own file).
fn set_or_alias(value: &str, refs: Refs) -> Result<(), String> {
    if value.starts_with('+') {
        let set = name_pattern(r"\+(guest/|dc/|sdn/)?");
        return match set.captures(value) {
            Some(c) if refs.sets.contains_key(&c[2]) => Ok(()),
            Some(c) => Err(format!("no such ipset '{}'", &c[2])),
            None => Err(format!("invalid ipset name '{value}'")),
        };
    }
    match name_pattern("(dc/|guest/)?").captures(value) {
        Some(c) if !refs.aliases.contains_key(&c[2].to_lowercase()) => {
            Err(format!("no such alias '{value}'"))
        }
        _ => Ok(()),
    }
}
