//! A guest's status and power: `/status/current`, `start`, `stop`, `shutdown`, `reboot`.

use super::guests::summary;
use super::{ApiResult, Call, PveError};
use crate::cluster::{Cluster, Effect, Guest, GuestKind};
use crate::state::Sim;
use serde_json::{Value, json};

pub(super) fn current(guest: &Guest) -> Value {
    let mut v = summary(guest);
    v["ha"] = json!({"managed": 0});
    if guest.kind == GuestKind::Qemu {
        v["qmpstatus"] = json!(if guest.running { "running" } else { "stopped" });
        v["shares"] = json!(1000);
        if guest.running {
            v["running-qemu"] = json!("10.0.2");
            v["running-machine"] = json!("pc-i440fx-10.0+pve0");
            v["freemem"] = json!(guest.memory().saturating_mul(512 * 1024));
        }
        if guest
            .config
            .get("agent")
            .is_some_and(|a| a.starts_with('1') || a.contains("enabled=1"))
        {
            v["agent"] = json!(1);
        }
    }
    v
}

pub(super) fn start(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let (vmid, node, id, kind) = (guest.vmid, call.node(), guest.vmid.to_string(), guest.kind);
    let (label, prefix) = (guest.label(), kind.task_prefix());
    if guest.running {
        return Err(PveError::server(format!("{label} already running")));
    }
    let upid = sim.task(
        &node,
        &format!("{prefix}start"),
        &id,
        &call.user,
        Effect::SetRunning(vmid, true),
    );
    if guest.is_template() {
        sim.fail(
            &upid,
            if kind == GuestKind::Lxc {
                "you can't start a CT if it's a template"
            } else {
                "you can't start a vm if it's a template"
            },
        );
    } else if let Some(lock) = guest.lock() {
        sim.fail(&upid, &format!("{} is locked ({lock})", kind.label()));
    } else if let Some(missing) = missing_snippet(&sim.cluster, guest) {
        // Generating the cloud-init drive reads the snippets `cicustom` names.
        sim.fail(&upid, &format!("volume '{missing}' does not exist"));
    }
    Ok(json!(upid))
}

/// `stop` or `shutdown`, as `how` says.
pub(super) fn stop(sim: &mut Sim, call: &Call, guest: &Guest, how: &str) -> ApiResult {
    let (vmid, node, id) = (guest.vmid, call.node(), guest.vmid.to_string());
    let (label, prefix) = (guest.label(), guest.kind.task_prefix());
    if !guest.running {
        return Err(PveError::server(format!("{label} not running")));
    }
    Ok(json!(sim.task(
        &node,
        &format!("{prefix}{how}"),
        &id,
        &call.user,
        Effect::SetRunning(vmid, false)
    )))
}

pub(super) fn reboot(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let (vmid, node, id) = (guest.vmid, call.node(), guest.vmid.to_string());
    let (label, prefix) = (guest.label(), guest.kind.task_prefix());
    if !guest.running {
        return Err(PveError::server(format!("{label} not running")));
    }
    let upid = sim.task(
        &node,
        &format!("{prefix}reboot"),
        &id,
        &call.user,
        Effect::SetRunning(vmid, true),
    );
    // A reboot starts the VM afresh: its cloud-init drive is generated again.
    if let Some(missing) = missing_snippet(&sim.cluster, guest) {
        sim.fail(&upid, &format!("volume '{missing}' does not exist"));
    }
    Ok(json!(upid))
}

/// The first snippet volume of `cicustom` (`user=local:snippets/u.yaml,...`) that is not
/// on the guest's node.
fn missing_snippet(cluster: &Cluster, guest: &Guest) -> Option<String> {
    let cicustom = guest.config.get("cicustom")?;
    cicustom
        .split(',')
        .filter_map(|part| part.split_once('=').map(|(_, volid)| volid))
        .find(|volid| {
            // A shared storage's snippets are on every node.
            let shared = volid
                .split(':')
                .next()
                .and_then(|id| cluster.storage(id))
                .is_some_and(|s| s.shared);
            !cluster
                .volumes
                .iter()
                .any(|v| v.volid == *volid && (shared || v.node == guest.node))
        })
        .map(str::to_owned)
}
