//! The network area performed through PVE's pending/apply cycle: observe the bridges (and
//! whether changes are pending), stage what differs, then apply with PVE's reload task,
//! followed across passes. Pending changes someone else staged are never applied by
//! Phoenix: it waits until they are applied or reverted.

use super::host_task::{self, TaskState};
use super::network::{self, BridgeChange};
use super::{Area, HostPass};
use crate::conditions::reason;
use crate::error::Error;
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
    match host_task::check(pass, &mut state.task, "apply network changes").await {
        Ok(TaskState::Running) => {
            let note = format!(
                "applying network changes on {} (task {})",
                pass.node,
                applying.unwrap_or_default()
            );
            return Ok(Area::working(reason::NETWORK_APPLYING, note));
        }
        Ok(TaskState::Succeeded) => {
            state.staged = false;
            let note = format!("network changes applied on {}", pass.node);
            pass.event(EventType::Normal, reason::NETWORK_APPLIED, note)
                .await;
        }
        Ok(TaskState::None) => {}
        Err(e) => {
            let note = format!("applying network changes on {} failed: {e}", pass.node);
            pass.event(EventType::Warning, reason::NETWORK_APPLY_FAILED, note)
                .await;
            return Err(e);
        }
    }
    let path = format!("/nodes/{}/network", pass.node);
    let answer = pass
        .pve
        .client
        .envelope(Method::GET, &path, &[])
        .await
        .map_err(|e| Error::host_step("list interfaces", e))?;
    let listed = answer["data"].as_array().cloned().unwrap_or_default();
    let pending = answer["changes"]
        .as_str()
        .is_some_and(|c| !c.trim().is_empty());
    let changes = network::plan(&spec.bridges, &listed);
    state.bridges = (spec.bridges.len() - changes.len()) as u32;
    if pending && !state.staged {
        return Err(Error::host_step(
            "stage network changes",
            Error::conflict(
                reason::PENDING_NETWORK_CHANGES,
                format!(
                    "{} has network changes pending that Phoenix did not make: apply or revert them in PVE (Node → Network), then Phoenix goes on",
                    pass.node
                ),
            ),
        ));
    }
    if changes.is_empty() && !pending {
        state.staged = false;
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
    stage(pass, &changes, state).await?;
    let upid = pass
        .pve
        .client
        .upid(Method::PUT, &path, &[])
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

/// Writes each change into the pending config; from the first one on, what is pending is
/// Phoenix's (remembered in status, so a pass cut off before the apply resumes it).
async fn stage(
    pass: &HostPass<'_>,
    changes: &[BridgeChange],
    state: &mut NetworkStatus,
) -> Result<(), Error> {
    let base = format!("/nodes/{}/network", pass.node);
    for change in changes {
        state.staged = true;
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
