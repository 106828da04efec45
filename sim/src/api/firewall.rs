//! A guest's firewall: its options and rules (the rules' habits are [`firewall_rules`]'s,
//! shared with the datacenter's; a `+set` or an alias must be one of the datacenter's, as
//! guests' own sets and aliases are not simulated).
//!
//! [`firewall_rules`]: super::firewall_rules

use super::cluster_firewall::refs;
use super::firewall_rules::{self, Env, Refs};
use super::{ApiResult, Call};
use crate::cluster::{Guest, GuestKind};
use crate::state::Sim;
use serde_json::Value;

pub(super) fn set_options(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let vmid = guest.vmid;
    let g = super::looked_up(sim, vmid);
    for (k, _) in &call.params {
        if !matches!(k.as_str(), "node" | "vmid" | "digest" | "delete") {
            g.firewall_options
                .insert(k.clone(), call.text(k).unwrap_or_default());
        }
    }
    Ok(Value::Null)
}

/// How PVE names the guest's kind as a `rule_env`.
fn env(guest: &Guest) -> Env {
    match guest.kind {
        GuestKind::Lxc => Env::Guest("ct"),
        GuestKind::Qemu => Env::Guest("vm"),
    }
}

pub(super) fn rules(sim: &Sim, guest: &Guest) -> Value {
    firewall_rules::list(
        &guest.firewall_rules,
        refs(&sim.cluster.firewall),
        env(guest),
    )
}

pub(super) fn rule(sim: &Sim, call: &Call, guest: &Guest) -> ApiResult {
    let refs = refs(&sim.cluster.firewall);
    firewall_rules::get(&guest.firewall_rules, refs, env(guest), call)
}

/// Runs `f` on the guest's rules with what they may name beside them.
fn with_rules(
    sim: &mut Sim,
    guest: &Guest,
    f: impl FnOnce(&mut Vec<Value>, Refs) -> ApiResult,
) -> ApiResult {
    let cluster = &mut sim.cluster;
    let g = cluster
        .guests
        .get_mut(&guest.vmid)
        .expect("the router looked it up");
    f(&mut g.firewall_rules, refs(&cluster.firewall))
}

pub(super) fn add_rule(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let env = env(guest);
    with_rules(sim, guest, |rules, refs| {
        firewall_rules::create(rules, refs, call, env)
    })
}

pub(super) fn update_rule(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let env = env(guest);
    with_rules(sim, guest, |rules, refs| {
        firewall_rules::update(rules, refs, call, env)
    })
}

pub(super) fn delete_rule(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let env = env(guest);
    with_rules(sim, guest, |rules, refs| {
        firewall_rules::delete(rules, refs, env, call)
    })
}
