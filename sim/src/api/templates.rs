//! Templates and their clones: `/template` turns a guest into a template (its disks
//! become base volumes), `/clone` copies a guest, as a linked clone of a template's base
//! volumes or in full.

use super::guests::{locked, pool_of, random_mac};
use super::{ApiResult, Call, PveError};
use crate::cluster::{Effect, Guest, GuestKind};
use crate::state::Sim;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(super) fn template(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let (vmid, node, id, kind) = (guest.vmid, call.node(), guest.vmid.to_string(), guest.kind);
    let label = guest.label();
    locked(guest)?;
    if !guest.snapshots.is_empty() {
        return Err(PveError::server(format!(
            "unable to create template, because {} contains snapshots",
            kind.label()
        )));
    }
    if guest.running {
        return Err(PveError::server(format!("{label} is running")));
    }
    let mut config = guest.config.clone();
    config.insert("template".into(), "1".into());
    // A template's disks become base volumes (`vm-9000-disk-0` → `base-9000-disk-0`).
    for value in config.values_mut() {
        *value = value
            .replace(&format!(":vm-{vmid}-"), &format!(":base-{vmid}-"))
            .replace(&format!(":subvol-{vmid}-"), &format!(":basevol-{vmid}-"));
    }
    if kind == GuestKind::Lxc {
        // PVE answers null and converts in the background.
        if let Some(g) = sim.cluster.guests.get_mut(&vmid) {
            g.config = config;
        }
        return Ok(Value::Null);
    }
    Ok(json!(sim.task(
        &node,
        "qmtemplate",
        &id,
        &call.user,
        Effect::SetConfig(vmid, config)
    )))
}

pub(super) fn clone(sim: &mut Sim, call: &Call, source: &Guest) -> ApiResult {
    let (vmid, node, kind) = (source.vmid, call.node(), source.kind);
    let newid: u32 = call.text("newid").and_then(|v| v.parse().ok()).unwrap_or(0);
    let full = call.flag("full") || !source.is_template();
    if !full && (call.params.contains_key("storage") || call.params.contains_key("format")) {
        return Err(PveError::param(
            "storage",
            "parameter 'storage' not allowed for linked clones",
        ));
    }
    // The target storage (or, for a full clone without one, the source's): PVE checks
    // `Datastore.AllocateSpace` on it in the handler.
    let storages = match call.text("storage") {
        Some(storage) => vec![storage],
        None if full => super::guests::disk_storages(&source.config),
        None => Vec::new(),
    };
    for storage in storages {
        let path = format!("/storage/{storage}");
        super::permissions::require(sim, call, &path, &["Datastore.AllocateSpace"])?;
    }
    if kind == GuestKind::Lxc || source.lock() != Some("clone") {
        locked(source)?;
    }
    if let Some(existing) = sim.cluster.guests.get(&newid) {
        return Err(PveError::server(format!(
            "{} {newid} already exists on node '{}'",
            kind.label(),
            existing.node
        )));
    }
    let mut config = source.config.clone();
    for k in ["template", "parent", "lock"] {
        config.remove(k);
    }
    for (k, v) in config.iter_mut() {
        let base = format!(":base-{vmid}-");
        if !full && v.contains(&base) {
            // A linked clone's disk is a child of the template's base volume.
            let (volume, options) = v.split_once(',').unwrap_or((v.as_str(), ""));
            let own = volume.replace(&base, &format!(":vm-{newid}-"));
            let own = own
                .split_once(':')
                .map_or(own.clone(), |(_, name)| name.to_owned());
            *v = format!("{volume}/{own},{options}")
                .trim_end_matches(',')
                .to_owned();
            continue;
        }
        *v = v
            .replace(&format!("-{vmid}-"), &format!("-{newid}-"))
            .replace(&format!(":base-{newid}-"), &format!(":vm-{newid}-"))
            .replace(&format!(":basevol-{newid}-"), &format!(":subvol-{newid}-"));
        if k.starts_with("net") {
            let mac = random_mac(newid, k);
            *v = v
                .split(',')
                .map(|p| {
                    if p.starts_with("hwaddr=") {
                        format!("hwaddr={mac}")
                    } else if p.contains("=BC:24:11") || p.starts_with("virtio=") {
                        format!("{}={mac}", p.split('=').next().unwrap_or("virtio"))
                    } else {
                        p.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
        }
    }
    let name_key = if kind == GuestKind::Lxc {
        "hostname"
    } else {
        "name"
    };
    match call.text(name_key) {
        Some(name) => {
            config.insert(name_key.into(), name);
        }
        None if kind == GuestKind::Qemu => {
            config.insert("name".into(), format!("Copy-of-VM-{}", source.name()));
        }
        None => {}
    }
    if let Some(description) = call.text("description") {
        config.insert("description".into(), description);
    }
    // `target` places the clone on another node (PVE copies, then moves it).
    let target_node = match call.text("target") {
        Some(t) if sim.cluster.node(&t).is_none() => {
            return Err(PveError::server(format!("no such node '{t}'")));
        }
        Some(t) => t,
        None => node.clone(),
    };
    let mut target = Guest::new(newid, &target_node, kind, config);
    target.pool = pool_of(&sim.cluster, call)?;
    let mut placeholder = target.clone();
    let target_lock = if kind == GuestKind::Lxc {
        "create"
    } else {
        "clone"
    };
    placeholder.config = BTreeMap::from([("lock".to_string(), target_lock.to_string())]);
    sim.cluster.guests.insert(newid, placeholder);
    // LXC locks the source for the whole copy; QEMU clones of a template share a lock.
    if kind == GuestKind::Lxc {
        sim.set_lock(vmid, "disk");
    }
    let task_type = if kind == GuestKind::Lxc {
        "vzclone"
    } else {
        "qmclone"
    };
    let effect = Effect::Many(vec![
        Effect::PutGuest(Box::new(target)),
        if kind == GuestKind::Lxc {
            Effect::Unlock(vmid)
        } else {
            Effect::None
        },
    ]);
    let upid = sim.task(&node, task_type, &vmid.to_string(), &call.user, effect);
    if let Some(t) = sim.cluster.tasks.get_mut(&upid) {
        t.remove_on_failure = Some(newid);
        t.unlock_on_failure = (kind == GuestKind::Lxc).then_some(vmid);
    }
    Ok(json!(upid))
}
