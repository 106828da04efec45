//! A guest's firewall: its options and rules.

use super::{ApiResult, Call, PveError, looked_up};
use crate::cluster::Guest;
use crate::state::Sim;
use serde_json::{Map, Value, json};

pub(super) fn set_options(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let vmid = guest.vmid;
    let g = looked_up(sim, vmid);
    for (k, _) in &call.params {
        if !matches!(k.as_str(), "node" | "vmid" | "digest" | "delete") {
            g.firewall_options
                .insert(k.clone(), call.text(k).unwrap_or_default());
        }
    }
    Ok(Value::Null)
}

pub(super) fn rules(guest: &Guest) -> Value {
    Value::Array(
        guest
            .firewall_rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut r = r.clone();
                r["pos"] = json!(i);
                r
            })
            .collect(),
    )
}

pub(super) fn add_rule(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let vmid = guest.vmid;
    let mut rule = Map::new();
    for (k, v) in &call.params {
        if !matches!(k.as_str(), "node" | "vmid" | "pos" | "digest") {
            rule.insert(k.clone(), v.clone());
        }
    }
    // PVE's create_rule puts the new rule on top (`unshift`), whatever `pos` says,
    // and a rule created without `enable` is disabled.
    rule.entry("enable").or_insert(json!(0));
    let g = looked_up(sim, vmid);
    g.firewall_rules.insert(0, Value::Object(rule));
    Ok(Value::Null)
}

pub(super) fn delete_rule(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let vmid = guest.vmid;
    let g = looked_up(sim, vmid);
    let pos = call.text("pos").and_then(|p| p.parse::<usize>().ok());
    match pos.filter(|p| *p < g.firewall_rules.len()) {
        Some(p) => {
            g.firewall_rules.remove(p);
            Ok(Value::Null)
        }
        None => Err(PveError::server(
            "no rule at position {pos}".replace("{pos}", &call.text("pos").unwrap_or_default()),
        )),
    }
}
