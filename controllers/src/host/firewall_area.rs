//! The node's own firewall (`/nodes/{node}/firewall`): whether it is on and its rules,
//! kept by the firewall sync guests and the datacenter share. A node has no policies of
//! its own (the datacenter's apply).

use super::{Area, HostPass};
use crate::conditions::reason;
use crate::error::Error;
use crate::firewall::{self, Place};
use kube::runtime::events::EventType;
use phoenix_crds::common::{DriftPolicy, Firewall};
use phoenix_crds::host_network::NodeFirewall;

pub async fn reconcile(
    pass: &HostPass<'_>,
    spec: &NodeFirewall,
    converged_before: bool,
) -> Result<Area, Error> {
    let fw = Firewall {
        enabled: spec.enabled,
        policy_in: None,
        policy_out: None,
        security_groups: spec.security_groups.clone(),
        rules: spec.rules.clone(),
    };
    let client = &pass.pve.client;
    let place = Place::Node(&pass.node);
    let report = converged_before && pass.drift_policy == DriftPolicy::Report;
    let changed = firewall::sync(client, place, &fw, !report)
        .await
        .map_err(|e| Error::host_step("node firewall", e))?;
    if report && !changed.is_empty() {
        return Ok(Area::drifted(format!(
            "the firewall of {} differs from the spec ({}); driftPolicy Report leaves it",
            pass.node,
            changed.join("; ")
        )));
    }
    if !changed.is_empty() {
        let why = match converged_before {
            true => reason::DRIFT_CORRECTED,
            false => reason::FIREWALL_CONFIGURED,
        };
        let note = format!("firewall of {}: {}", pass.node, changed.join("; "));
        pass.event(EventType::Normal, why, note).await;
    }
    let state = if spec.enabled { "on" } else { "off" };
    Ok(Area::ready(
        reason::FIREWALL_CONFIGURED,
        format!(
            "the firewall of {} is {state} with {} rules",
            pass.node,
            spec.rules.len()
        ),
    ))
}
