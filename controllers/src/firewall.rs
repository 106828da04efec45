//! A PVE firewall — a guest's (`spec.firewall`), a node's or the datacenter's — as options
//! (enabled, default policies) and rules, in order. Phoenix owns the whole rule list of a
//! firewall the spec describes: when the live list differs in any rule, it is written
//! again (PVE's rules have no ids to diff by, and order matters). The new rules go on top
//! before the old ones are removed, and the options come last, so nothing is ever left
//! with a DROP policy and no rules. A spec without a firewall leaves it alone.

use crate::error::Error;
use phoenix_clients::proxmox::{GuestType, Params, ProxmoxClient};

/// Whose firewall: a guest's, a node's, or the datacenter's.
#[derive(Clone, Copy, Debug)]
pub enum Place<'a> {
    Guest(&'a str, GuestType, u32),
    /// A node's own firewall.
    Node(&'a str),
    Datacenter,
    /// A security group of the datacenter: rules only.
    Group(&'a str),
}

impl Place<'_> {
    /// The API path of `rest` (`options`, `rules`, `rules/3`) of this firewall.
    fn path(&self, rest: &str) -> String {
        match self {
            Place::Guest(node, kind, vmid) => {
                format!("/nodes/{node}/{}/{vmid}/firewall/{rest}", kind.segment())
            }
            Place::Node(node) => format!("/nodes/{node}/firewall/{rest}"),
            Place::Datacenter => format!("/cluster/firewall/{rest}"),
            // A group's rules are the group itself: `groups/{name}`, `groups/{name}/{pos}`.
            Place::Group(name) => {
                let pos = rest.strip_prefix("rules").unwrap_or(rest);
                format!("/cluster/firewall/groups/{name}{pos}")
            }
        }
    }
}
use phoenix_crds::common::{Direction, Firewall, FirewallAction, FirewallRule};
use serde_json::Value;
use std::collections::BTreeMap;

fn action(a: FirewallAction) -> &'static str {
    match a {
        FirewallAction::Accept => "ACCEPT",
        FirewallAction::Drop => "DROP",
        FirewallAction::Reject => "REJECT",
    }
}

/// The options PVE should have: `enable` and the policies the spec sets.
pub fn options(fw: &Firewall) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([("enable".to_string(), u8::from(fw.enabled).to_string())]);
    if let Some(p) = fw.policy_in {
        out.insert("policy_in".into(), action(p).into());
    }
    if let Some(p) = fw.policy_out {
        out.insert("policy_out".into(), action(p).into());
    }
    out
}

/// One rule as PVE's API takes and lists it.
pub fn rule(r: &FirewallRule) -> BTreeMap<String, String> {
    let direction = match r.direction {
        Direction::In => "in",
        Direction::Out => "out",
    };
    let mut out = BTreeMap::from([
        ("type".to_string(), direction.to_string()),
        ("action".to_string(), action(r.action).to_string()),
        ("enable".to_string(), u8::from(r.enabled).to_string()),
    ]);
    let optional = [
        ("proto", &r.proto),
        ("dport", &r.dport),
        ("source", &r.source),
        ("dest", &r.dest),
        ("macro", &r.macro_),
        ("comment", &r.comment),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            out.insert(key.into(), v.clone());
        }
    }
    out
}

/// A live value as text (PVE lists `enable` and `pos` as numbers).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether the live rules are the wanted ones, in order, as PVE lists them: macro names
/// in its own spelling, comments trimmed, any field Phoenix does not set (added by hand)
/// a difference.
pub fn rules_match(live: &[Value], wanted: &[BTreeMap<String, String>]) -> bool {
    const IGNORED: [&str; 5] = ["pos", "digest", "ipversion", "enable", "type"];
    let normal = |key: &str, value: &str| match key {
        "macro" => value.to_ascii_lowercase(),
        _ => value.trim().to_owned(),
    };
    live.len() == wanted.len()
        && live.iter().zip(wanted).all(|(l, w)| {
            let Some(fields) = l.as_object() else {
                return false;
            };
            let has = |k: &str| fields.get(k).map(text).map(|v| normal(k, &v));
            w.iter().all(|(k, v)| has(k) == Some(normal(k, v)))
                && fields
                    .keys()
                    .all(|k| IGNORED.contains(&k.as_str()) || w.contains_key(k))
        })
}

/// The rules of `fw` as PVE lists them: its security groups first, then its own.
pub fn wanted_rules(fw: &Firewall) -> Vec<BTreeMap<String, String>> {
    let groups = fw.security_groups.iter().map(|group| {
        BTreeMap::from([
            ("type".to_owned(), "group".to_owned()),
            ("action".to_owned(), group.clone()),
            ("enable".to_owned(), "1".to_owned()),
        ])
    });
    groups.chain(fw.rules.iter().map(rule)).collect()
}

/// Brings the firewall at `place` to `fw` (or, unless `apply`, only says how it differs);
/// what differed, for the event (empty: nothing). A security group has no options.
pub async fn sync(
    client: &ProxmoxClient,
    place: Place<'_>,
    fw: &Firewall,
    apply: bool,
) -> Result<Vec<String>, Error> {
    use reqwest::Method;
    let differing: Params = match place {
        Place::Group(_) => Params::new(),
        _ => {
            let live = client
                .call(Method::GET, &place.path("options"), &[])
                .await?;
            options(fw)
                .into_iter()
                .filter(|(k, v)| live.get(k.as_str()).map(text).as_deref() != Some(v.as_str()))
                .collect()
        }
    };
    let mut changed: Vec<String> = differing
        .iter()
        .map(|(k, v)| format!("firewall {k}={v}"))
        .collect();
    let rules = wanted_rules(fw);
    changed.extend(sync_rules(client, place, &rules, apply).await?);
    if apply && !differing.is_empty() {
        client
            .call(Method::PUT, &place.path("options"), &differing)
            .await?;
    }
    Ok(changed)
}

/// The rules at `place` brought to `rules` (unless `apply` is false); what differed.
async fn sync_rules(
    client: &ProxmoxClient,
    place: Place<'_>,
    rules: &[BTreeMap<String, String>],
    apply: bool,
) -> Result<Option<String>, Error> {
    use reqwest::Method;
    let live = client.call(Method::GET, &place.path("rules"), &[]).await?;
    let live = live.as_array().cloned().unwrap_or_default();
    if rules_match(&live, rules) {
        return Ok(None);
    }
    let changed = format!("firewall rules ({} wanted)", rules.len());
    if !apply {
        return Ok(Some(changed));
    }
    // PVE puts a new rule on top: the last first, so they end in the spec's order.
    for r in rules.iter().rev() {
        let params: Params = r.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        client
            .call(Method::POST, &place.path("rules"), &params)
            .await?;
    }
    // The old rules are below the new ones now; from the bottom up, so the positions of
    // the rest do not move.
    for pos in (rules.len()..rules.len() + live.len()).rev() {
        let path = place.path(&format!("rules/{pos}"));
        client.call(Method::DELETE, &path, &[]).await?;
    }
    Ok(Some(changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn firewall() -> Firewall {
        let guest: phoenix_crds::LxcGuest = crate::examples::example("lxc-103.yaml");
        guest.spec.common.firewall.unwrap()
    }

    #[test]
    fn the_step_ca_firewall_in_pve_terms() {
        let fw = firewall();
        assert_eq!(options(&fw)["policy_in"], "DROP");
        assert_eq!(options(&fw)["enable"], "1");
        let rules: Vec<_> = fw.rules.iter().map(rule).collect();
        assert_eq!(rules[0]["dport"], "9000");
        assert_eq!(rules[1]["macro"], "SSH");
        assert_eq!(rules[1]["source"], "10.0.0.0/24");
    }

    #[test]
    fn rules_match_by_the_fields_set_and_their_order() {
        let fw = firewall();
        let rules: Vec<_> = fw.rules.iter().map(rule).collect();
        let live: Vec<Value> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut v = json!(r);
                v["pos"] = json!(i);
                v["enable"] = json!(1);
                v["ipversion"] = json!(4);
                v
            })
            .collect();
        assert!(rules_match(&live, &rules));
        let mut reordered = live.clone();
        reordered.reverse();
        assert!(!rules_match(&reordered, &rules));
        let mut extra = live.clone();
        extra[0]["source"] = json!("0.0.0.0/0");
        assert!(!rules_match(&extra, &rules), "a field added by hand");
        let mut spelled = live.clone();
        spelled[1]["macro"] = json!("ssh");
        spelled[0]["comment"] = json!("ACME and CA API ");
        assert!(
            rules_match(&spelled, &rules),
            "PVE's spelling is not a difference"
        );
        assert!(!rules_match(&live[..1], &rules));
    }
}
