//! A guest's snapshots: `/snapshot`, taking one, deleting one, rolling back to one.

use super::guests::locked;
use super::{ApiResult, Call, PveError};
use crate::cluster::{Effect, Guest, Snapshot, now_s};
use crate::state::Sim;
use serde_json::{Value, json};

pub(super) fn list(guest: &Guest) -> Value {
    let mut list: Vec<Value> = guest
        .snapshots
        .iter()
        .map(|s| {
            let mut v =
                json!({"name": s.name, "description": s.description, "snaptime": s.snaptime});
            if let Some(p) = &s.parent {
                v["parent"] = json!(p);
            }
            v
        })
        .collect();
    let mut current = json!({"name": "current", "description": "You are here!", "digest": guest.digest(), "running": guest.running as i32});
    if let Some(p) = guest.snapshots.last() {
        current["parent"] = json!(p.name);
    }
    list.push(current);
    Value::Array(list)
}

pub(super) fn create(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let (vmid, node, id) = (guest.vmid, call.node(), guest.vmid.to_string());
    let prefix = guest.kind.task_prefix();
    locked(guest)?;
    let name = call.text("snapname").unwrap_or_default();
    if guest.snapshots.iter().any(|s| s.name == name) {
        return Err(PveError::server(format!(
            "snapshot name '{name}' already used"
        )));
    }
    let mut config = guest.config.clone();
    config.remove("parent");
    let snapshot = Snapshot {
        name,
        description: call.text("description").unwrap_or_default(),
        snaptime: now_s(),
        parent: guest.snapshots.last().map(|s| s.name.clone()),
        config,
        files: guest.inside.files.clone(),
        modes: guest.inside.modes.clone(),
        services: guest.inside.services.clone(),
    };
    sim.set_lock(vmid, "snapshot");
    Ok(json!(sim.locked_task(
        &node,
        &format!("{prefix}snapshot"),
        &id,
        &call.user,
        vmid,
        Effect::Snapshot { vmid, snapshot }
    )))
}

/// The snapshot `snapname` names, when the guest is not locked and has it.
fn existing(call: &Call, guest: &Guest) -> Result<String, PveError> {
    locked(guest)?;
    let name = call.text("snapname").unwrap_or_default();
    if !guest.snapshots.iter().any(|s| s.name == name) {
        return Err(PveError::server(format!(
            "snapshot '{name}' does not exist"
        )));
    }
    Ok(name)
}

pub(super) fn delete(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let (vmid, node, id) = (guest.vmid, call.node(), guest.vmid.to_string());
    let prefix = guest.kind.task_prefix();
    let name = existing(call, guest)?;
    sim.set_lock(vmid, "snapshot-delete");
    Ok(json!(sim.locked_task(
        &node,
        &format!("{prefix}delsnapshot"),
        &id,
        &call.user,
        vmid,
        Effect::DeleteSnapshot { vmid, name }
    )))
}

pub(super) fn rollback(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let (vmid, node, id) = (guest.vmid, call.node(), guest.vmid.to_string());
    let prefix = guest.kind.task_prefix();
    let name = existing(call, guest)?;
    sim.set_lock(vmid, "rollback");
    let mut effect = Effect::Rollback { vmid, name };
    if call.flag("start") {
        effect = Effect::Many(vec![effect, Effect::SetRunning(vmid, true)]);
    }
    Ok(json!(sim.locked_task(
        &node,
        &format!("{prefix}rollback"),
        &id,
        &call.user,
        vmid,
        effect
    )))
}
