//! The network area performed through PVE's pending/apply cycle: observe the bridges (and
//! whether changes are pending), stage what differs, then apply with PVE's reload task,
//! followed across passes. Pending changes someone else staged are never applied by
//! Phoenix: it waits until they are applied or reverted (pending changes are its own only
//! while PVE's diff is the one it saw right after staging).

use super::host_task::{self, TaskState};
use super::network::{self, BridgeChange};
use super::{Area, HostPass};
use crate::conditions::reason;
use crate::error::Error;
use crate::hashing::sha256;
use crate::node_exec::endpoint_host;
use kube::runtime::events::EventType;
use phoenix_crds::common::DriftPolicy;
use phoenix_crds::host_network::{HostNetwork, NetworkStatus};
use reqwest::Method;

pub async fn reconcile(
    pass: &HostPass<'_>,
    spec: &HostNetwork,
    converged_before: bool,
    status: &mut Option<NetworkStatus>,
) -> Result<Area, Error> {
    let state = status.get_or_insert_with(Default::default);
    let applying = state.task.clone();
    match host_task::check(pass, &mut state.task, "apply network changes").await? {
        TaskState::Running => {
            let note = format!(
                "applying network changes on {} (task {})",
                pass.node,
                applying.unwrap_or_default()
            );
            return Ok(Area::working(reason::NETWORK_APPLYING, note));
        }
        TaskState::Succeeded => {
            let note = format!("network changes applied on {}", pass.node);
            pass.event(EventType::Normal, reason::NETWORK_APPLIED, note)
                .await;
        }
        TaskState::Failed(e) => {
            let note = format!("applying network changes on {} failed: {e}", pass.node);
            pass.event(EventType::Warning, reason::NETWORK_APPLY_FAILED, note)
                .await;
            return Err(e);
        }
        TaskState::None => {}
    }
    network::validate(&spec.bridges).map_err(|m| Error::spec(reason::INVALID_BRIDGE, m))?;
    let (listed, pending) = observe(pass).await?;
    if pending.is_none() {
        state.staged = None;
    }
    let changes = network::plan(&spec.bridges, &listed);
    state.bridges = (spec.bridges.len() - changes.len()) as u32;
    // Pending changes are Phoenix's only while PVE's diff is the one it staged: anything
    // else (someone's edit in the UI, before or since) is never applied by Phoenix.
    let ours = pending.is_some() && pending == state.staged;
    if pending.is_some() && !ours {
        return Ok(Area::working(
            reason::PENDING_NETWORK_CHANGES,
            format!(
                "{} has network changes pending that Phoenix did not make: apply or revert them in PVE (Node → Network), then Phoenix goes on",
                pass.node
            ),
        ));
    }
    if changes.is_empty() && !ours {
        return Ok(Area::ready(
            reason::NETWORK_CONFIGURED,
            format!(
                "{} bridges on {} as the spec says",
                spec.bridges.len(),
                pass.node
            ),
        ));
    }
    let described: Vec<String> = changes.iter().map(ToString::to_string).collect();
    if converged_before && !changes.is_empty() && pass.drift_policy == DriftPolicy::Report {
        return Ok(Area::drifted(format!(
            "bridges of {} differ from the spec ({}); driftPolicy Report leaves them",
            pass.node,
            described.join("; ")
        )));
    }
    let endpoint = endpoint_host(&pass.pve.cluster.spec.endpoint);
    if let Some(why) = network::lock_out(&spec.bridges, &changes, &listed, &endpoint) {
        return Err(Error::spec(reason::WOULD_LOCK_OUT, why));
    }
    if !changes.is_empty() {
        stage(pass, &changes).await?;
        state.staged = observe(pass).await?.1;
    }
    let upid = pass
        .pve
        .client
        .upid(Method::PUT, &network_path(pass), &[])
        .await
        .map_err(|e| Error::host_step("apply network changes", e))?;
    host_task::started(pass, &mut state.task, upid);
    let note = match described.is_empty() {
        true => format!("applying Phoenix's staged network changes on {}", pass.node),
        false => format!("applying on {}: {}", pass.node, described.join("; ")),
    };
    pass.event(EventType::Normal, reason::NETWORK_APPLYING, note.clone())
        .await;
    Ok(Area::working(reason::NETWORK_APPLYING, note))
}

fn network_path(pass: &HostPass<'_>) -> String {
    format!("/nodes/{}/network", pass.node)
}

/// The node's interfaces (the pending config's, when there is one) and the hash of PVE's
/// diff of the pending changes, if any.
async fn observe(pass: &HostPass<'_>) -> Result<(Vec<serde_json::Value>, Option<String>), Error> {
    let answer = pass
        .pve
        .client
        .envelope(Method::GET, &network_path(pass), &[])
        .await
        .map_err(|e| Error::host_step("list interfaces", e))?;
    let listed = answer["data"].as_array().cloned().unwrap_or_default();
    let pending = answer["changes"]
        .as_str()
        .filter(|c| !c.trim().is_empty())
        .map(sha256);
    Ok((listed, pending))
}

/// Writes each change into the pending config.
async fn stage(pass: &HostPass<'_>, changes: &[BridgeChange]) -> Result<(), Error> {
    let base = network_path(pass);
    for change in changes {
        let (method, path, params) = match change {
            BridgeChange::Create { params, .. } => (Method::POST, base.clone(), params.clone()),
            // The name is in the path: the update's form carries the rest.
            BridgeChange::Update { name, params } => (
                Method::PUT,
                format!("{base}/{name}"),
                params
                    .iter()
                    .filter(|(k, _)| k != "iface")
                    .cloned()
                    .collect(),
            ),
        };
        pass.pve
            .client
            .call(method, &path, &params)
            .await
            .map_err(|e| Error::host_step(&change.to_string(), e))?;
    }
    Ok(())
}
