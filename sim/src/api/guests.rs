//! Guests of a node: listing and creating them, the checks every call about one makes,
//! its config, disks, interfaces and its destruction; and the summary and lock check the
//! other guest families share.

use super::{ApiResult, Call, PveError};
use crate::cluster::{Cluster, Effect, Guest, GuestKind, TaskState, now_s};
use crate::state::Sim;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(super) fn list(cluster: &Cluster, node: &str, kind: GuestKind) -> Value {
    Value::Array(
        cluster
            .guests
            .values()
            .filter(|g| g.node == node && g.kind == kind)
            .map(summary)
            .collect(),
    )
}

pub(super) fn summary(g: &Guest) -> Value {
    let type_ = if g.kind == GuestKind::Lxc {
        "lxc"
    } else {
        "qemu"
    };
    let mut v = json!({"vmid": g.vmid, "name": g.name(), "status": if g.running { "running" } else { "stopped" },
                       "maxmem": g.memory().saturating_mul(1024 * 1024), "mem": if g.running { g.memory().saturating_mul(512 * 1024) } else { 0 },
                       "cpus": g.config.get("cores").and_then(|c| c.parse::<u32>().ok()).unwrap_or(1),
                       "maxdisk": 8u64 << 30, "disk": 0, "uptime": if g.running { now_s() - g.started_at } else { 0 },
                       "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0, "cpu": 0, "type": type_});
    if g.kind == GuestKind::Lxc {
        let swap: u64 = g
            .config
            .get("swap")
            .and_then(|s| s.parse().ok())
            .unwrap_or(512);
        v["maxswap"] = json!(swap.saturating_mul(1024 * 1024));
        v["swap"] = json!(0);
    }
    if g.running {
        v["pid"] = json!(10_000 + g.vmid);
    }
    if g.is_template() {
        v["template"] = json!(1);
    }
    if let Some(lock) = g.lock() {
        v["lock"] = json!(lock);
    }
    if let Some(tags) = g.config.get("tags") {
        v["tags"] = json!(tags);
    }
    if let Some(pool) = &g.pool {
        v["pool"] = json!(pool);
    }
    v
}

/// `pool` on create/clone must name an existing pool.
pub(super) fn pool_of(cluster: &Cluster, call: &Call) -> Result<Option<String>, PveError> {
    match call.text("pool") {
        Some(pool) if !cluster.pools.contains_key(&pool) => Err(PveError {
            status: 403,
            message: format!("Permission check failed (pool '{pool}' does not exist)"),
            errors: None,
        }),
        other => Ok(other),
    }
}

/// Keys the API accepts on create but never stores or returns (options of the operation,
/// not of the guest: Ansible's proxmox module sends `force=0` on every create).
const WRITE_ONLY: [&str; 10] = [
    "password",
    "ssh-public-keys",
    "start",
    "storage",
    "pool",
    "force",
    "unique",
    "restore",
    "ignore-unpack-errors",
    "bwlimit",
];

pub(super) fn random_mac(vmid: u32, index: &str) -> String {
    let n: u32 = index
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    format!(
        "BC:24:11:{:02X}:{:02X}:{:02X}",
        (vmid >> 8) & 0xff,
        vmid & 0xff,
        n & 0xff
    )
}

fn config_from_params(
    call: &Call,
    kind: GuestKind,
    vmid: u32,
) -> Result<BTreeMap<String, String>, PveError> {
    let mut config = BTreeMap::new();
    for (k, _) in &call.params {
        if matches!(k.as_str(), "node" | "vmid")
            || WRITE_ONLY.contains(&k.as_str())
            || k == "ostemplate"
        {
            continue;
        }
        let value = call.text(k).unwrap_or_default();
        config.insert(k.clone(), volume_spec(k, &value, vmid)?);
    }
    for (k, v) in config.iter_mut().filter(|(k, _)| k.starts_with("net")) {
        if kind == GuestKind::Lxc && !v.contains("hwaddr=") {
            *v = format!("{v},hwaddr={}", random_mac(vmid, k));
        }
        if kind == GuestKind::Qemu && !v.contains(':') {
            let (model, rest) = v.split_once(',').unwrap_or((v.as_str(), ""));
            *v = format!("{model}={},{rest}", random_mac(vmid, k))
                .trim_end_matches(',')
                .to_owned();
        }
    }
    if kind == GuestKind::Lxc {
        config
            .entry("hostname".into())
            .or_insert_with(|| format!("CT{vmid}"));
        config
            .entry("unprivileged".into())
            .or_insert_with(|| "1".into());
    }
    config
        .entry("memory".into())
        .or_insert_with(|| "512".into());
    Ok(config)
}

/// `local-zfs:8` allocates: it is stored as `local-zfs:subvol-801-disk-0,size=8G`.
fn volume_spec(key: &str, value: &str, vmid: u32) -> Result<String, PveError> {
    let is_disk = key == "rootfs"
        || key.starts_with("mp")
        || ["scsi", "virtio", "sata", "ide", "efidisk"]
            .iter()
            .any(|p| key.starts_with(p));
    let Some((storage, rest)) = value.split_once(':').filter(|_| is_disk) else {
        return Ok(value.to_owned());
    };
    let (size, options) = rest.split_once(',').map_or((rest, ""), |(s, o)| (s, o));
    match size.parse::<f64>() {
        Ok(gib) => {
            let prefix = if key == "rootfs" || key.starts_with("mp") {
                "subvol"
            } else {
                "vm"
            };
            let size = if options.contains("import-from") {
                8.0
            } else {
                gib
            };
            let options = options
                .split(',')
                .filter(|o| !o.is_empty() && !o.starts_with("import-from"))
                .collect::<Vec<_>>()
                .join(",");
            let tail = if options.is_empty() {
                String::new()
            } else {
                format!(",{options}")
            };
            Ok(format!(
                "{storage}:{prefix}-{vmid}-disk-{},size={size}G{tail}",
                key.trim_start_matches(|c: char| !c.is_ascii_digit())
                    .parse::<u32>()
                    .unwrap_or(0)
            ))
        }
        Err(_) => Ok(value.to_owned()),
    }
}

/// The storages a config's disks are on.
pub(super) fn disk_storages(config: &BTreeMap<String, String>) -> Vec<String> {
    let mut storages: Vec<String> = config
        .values()
        .filter(|v| v.contains(":subvol-") || v.contains(":vm-") || v.contains(":base-"))
        .filter_map(|v| Some(v.split_once(':')?.0.to_owned()))
        .collect();
    storages.sort();
    storages.dedup();
    storages
}

fn check_storages(cluster: &Cluster, config: &BTreeMap<String, String>) -> Result<(), PveError> {
    for v in config.values() {
        let is_volume = v.contains(":subvol-") || v.contains(":vm-") || v.contains(":cloudinit");
        if let Some((storage, _)) = v.split_once(':').filter(|_| is_volume)
            && cluster.storage(storage).is_none()
        {
            return Err(PveError::server(format!(
                "storage '{storage}' does not exist"
            )));
        }
    }
    Ok(())
}

pub(super) fn create(sim: &mut Sim, call: &Call, kind: GuestKind) -> ApiResult {
    let (vmid, node) = (call.vmid(), call.node());
    let storages = disk_storages(&config_from_params(call, kind, vmid)?);
    let privileged = kind == GuestKind::Lxc && !call.flag("unprivileged");
    super::permissions::create_guest(sim, call, &storages, privileged)?;
    if let Some(existing) = sim.cluster.guests.get(&vmid) {
        return Err(PveError::server(format!(
            "{} {vmid} already exists on node '{}'",
            kind.label(),
            existing.node
        )));
    }
    let config = config_from_params(call, kind, vmid)?;
    check_storages(&sim.cluster, &config)?;
    if kind == GuestKind::Lxc {
        let template = call.text("ostemplate").unwrap_or_default();
        if !sim
            .cluster
            .volumes
            .iter()
            .any(|v| v.volid == template && v.node == node)
        {
            return Err(PveError::server(format!(
                "volume '{template}' does not exist"
            )));
        }
    }
    for (k, v) in config
        .iter()
        .filter(|(k, _)| k.starts_with("scsi") || k.starts_with("virtio") || k.starts_with("sata"))
    {
        if let Some(source) = call.text(k).and_then(|raw| {
            raw.split(',')
                .find_map(|o| o.strip_prefix("import-from=").map(str::to_owned))
        }) && !sim.cluster.volumes.iter().any(|vol| vol.volid == source)
        {
            return Err(PveError::server(format!(
                "{k}: volume '{source}' does not exist ({v})"
            )));
        }
    }
    let memory: u64 = config
        .get("memory")
        .and_then(|m| m.parse().ok())
        .unwrap_or(512);
    let node_max = sim.cluster.node(&node).map_or(0, |n| n.maxmem_mib);
    if memory > node_max {
        return Err(PveError::server(format!(
            "unable to create {} {vmid} - not enough memory on node '{node}' ({memory} MiB > {node_max} MiB)",
            kind.label()
        )));
    }
    let mut guest = Guest::new(vmid, &node, kind, config);
    guest.pool = pool_of(&sim.cluster, call)?;
    let mut placeholder = guest.clone();
    placeholder.config = BTreeMap::from([("lock".to_string(), "create".to_string())]);
    sim.cluster.guests.insert(vmid, placeholder);
    let task_type = if kind == GuestKind::Lxc {
        "vzcreate"
    } else {
        "qmcreate"
    };
    let mut effect = Effect::PutGuest(Box::new(guest));
    if call.flag("start") {
        effect = Effect::Many(vec![effect, Effect::SetRunning(vmid, true)]);
    }
    let upid = sim.task(&node, task_type, &vmid.to_string(), &call.user, effect);
    if let Some(t) = sim.cluster.tasks.get_mut(&upid) {
        t.remove_on_failure = Some(vmid);
    }
    Ok(json!(upid))
}

fn config_missing(kind: GuestKind, node: &str, vmid: u32) -> PveError {
    let dir = if kind == GuestKind::Lxc {
        "lxc"
    } else {
        "qemu-server"
    };
    PveError::server(format!(
        "Configuration file 'nodes/{node}/{dir}/{vmid}.conf' does not exist"
    ))
}

pub(super) fn locked(g: &Guest) -> Result<(), PveError> {
    match g.lock() {
        Some(lock) => Err(PveError::server(format!(
            "{} is locked ({lock})",
            g.kind.label()
        ))),
        None => Ok(()),
    }
}

/// The guest a call under `/{lxc,qemu}/{vmid}` is about (`rest` the path after that),
/// once the checks PVE makes before any handler pass.
pub(super) fn lookup(
    sim: &Sim,
    call: &Call,
    kind: GuestKind,
    rest: &str,
) -> Result<Guest, PveError> {
    let (vmid, node) = (call.vmid(), call.node());
    let guest = sim
        .cluster
        .guests
        .get(&vmid)
        .filter(|g| g.kind == kind && g.node == node)
        .cloned()
        .ok_or_else(|| config_missing(kind, &node, vmid))?;
    if let Some(holder) = sim.faults.locked.get(&vmid).cloned()
        && call.method != "GET"
    {
        return Err(PveError::server(format!(
            "{} is locked ({holder})",
            kind.label()
        )));
    }
    // A task working on the guest holds its config flock; PVE waits briefly, then gives up.
    let shared_lock = kind == GuestKind::Qemu && rest == "/clone" && guest.is_template();
    let busy = sim.cluster.tasks.values().any(|t| {
        t.state == TaskState::Running && t.id == vmid.to_string() && !t.kind.ends_with("clone")
    });
    if call.method != "GET" && !rest.starts_with("/agent/") && !shared_lock && busy {
        let path = match kind {
            GuestKind::Lxc => format!("/run/lock/lxc/pve-config-{vmid}.lock"),
            GuestKind::Qemu => format!("/var/lock/qemu-server/lock-{vmid}.conf"),
        };
        return Err(PveError::server(format!(
            "can't lock file '{path}' - got timeout"
        )));
    }
    Ok(guest)
}

/// `PUT` (at once) or `POST` (as a task) `/config`.
pub(super) fn set_config(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let (vmid, node, id) = (guest.vmid, call.node(), guest.vmid.to_string());
    locked(guest)?;
    if let Some(digest) = call.text("digest")
        && digest != guest.digest()
    {
        return Err(PveError::server(
            "detected modified configuration - file changed by other user? Try again.",
        ));
    }
    let mut config = guest.config.clone();
    for (k, _) in &call.params {
        if matches!(
            k.as_str(),
            "node" | "vmid" | "digest" | "delete" | "revert" | "skiplock" | "background_delay"
        ) {
            continue;
        }
        let value = call.text(k).unwrap_or_default();
        config.insert(k.clone(), volume_spec(k, &value, vmid)?);
    }
    for key in call
        .text("delete")
        .unwrap_or_default()
        .split([',', ';', ' '])
        .filter(|k| !k.is_empty())
    {
        config.remove(key);
    }
    check_storages(&sim.cluster, &config)?;
    if call.method == "POST" {
        return Ok(json!(sim.task(
            &node,
            "qmconfig",
            &id,
            &call.user,
            Effect::SetConfig(vmid, config)
        )));
    }
    if let Some(g) = sim.cluster.guests.get_mut(&vmid) {
        g.config = config;
    }
    Ok(Value::Null)
}

pub(super) fn resize(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let (vmid, node, id) = (guest.vmid, call.node(), guest.vmid.to_string());
    locked(guest)?;
    let disk = call.text("disk").unwrap_or_default();
    let current = guest
        .config
        .get(&disk)
        .cloned()
        .ok_or_else(|| PveError::server(format!("unable to parse config for disk '{disk}'")))?;
    let size = call.text("size").unwrap_or_default();
    let old = current
        .split("size=")
        .nth(1)
        .and_then(|s| gib(s.split(',').next().unwrap_or(s)))
        .unwrap_or(0.0);
    let wanted = gib(size.trim_start_matches('+'))
        .ok_or_else(|| PveError::param("size", "invalid format - unable to parse disk size"))?;
    let new = if size.starts_with('+') {
        old + wanted
    } else {
        wanted
    };
    if new < old {
        return Err(PveError::server(format!(
            "unable to shrink disk size ({old}G > {new}G)"
        )));
    }
    let mut config = guest.config.clone();
    let base = current
        .split(",size=")
        .next()
        .unwrap_or(&current)
        .to_owned();
    config.insert(disk, format!("{base},size={new}G"));
    Ok(json!(sim.task(
        &node,
        "resize",
        &id,
        &call.user,
        Effect::SetConfig(vmid, config)
    )))
}

/// A PVE size (`8G`, `512M`, `1T`, `300K`, or bytes) in GiB.
fn gib(text: &str) -> Option<f64> {
    let (number, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        'K' => n / (1024.0 * 1024.0),
        'M' => n / 1024.0,
        'G' => n,
        'T' => n * 1024.0,
        _ => n / (1024.0 * 1024.0 * 1024.0),
    })
}

/// A running guest's interfaces (null while it is stopped).
pub(super) fn interfaces(guest: &Guest) -> Value {
    if !guest.running {
        return Value::Null;
    }
    let mut list = vec![
        json!({"name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128",
                               "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8}]}),
    ];
    for (name, mac, addr, prefix) in guest.addresses() {
        let mac = mac.to_lowercase();
        let link_local = format!("fe80::{}/64", mac.replace(':', "").get(6..).unwrap_or("1"));
        list.push(json!({"name": name, "hwaddr": mac, "hardware-address": mac, "inet": format!("{addr}/{prefix}"), "inet6": link_local,
                         "ip-addresses": [{"ip-address": addr, "ip-address-type": "inet", "prefix": prefix}]}));
    }
    Value::Array(list)
}

pub(super) fn destroy(sim: &mut Sim, call: &Call, guest: &Guest) -> ApiResult {
    let (vmid, node, id, kind) = (guest.vmid, call.node(), guest.vmid.to_string(), guest.kind);
    let (label, prefix) = (guest.label(), kind.task_prefix());
    locked(guest)?;
    if guest.config.get("protection").is_some_and(|p| p == "1") {
        return Err(PveError::server(format!(
            "can't remove {label} - protection mode enabled"
        )));
    }
    if guest.running && !(kind == GuestKind::Lxc && call.flag("force")) {
        return Err(PveError::server(match kind {
            GuestKind::Lxc => format!("unable to destroy CT {vmid} - container is running"),
            GuestKind::Qemu => format!("VM {vmid} is running - destroy failed"),
        }));
    }
    // A template whose base volumes linked clones still use cannot go (ZFS says so
    // in the destroy task).
    let base = format!(":base-{vmid}-");
    let in_use = sim
        .cluster
        .guests
        .values()
        .filter(|g| g.vmid != vmid)
        .find_map(|g| g.config.values().find(|v| v.contains(&base)).cloned());
    sim.set_lock(vmid, "destroyed");
    let upid = sim.task(
        &node,
        &format!("{prefix}destroy"),
        &id,
        &call.user,
        Effect::RemoveGuest(vmid),
    );
    if let Some(t) = sim.cluster.tasks.get_mut(&upid) {
        t.unlock_on_failure = Some(vmid);
    }
    if let Some(volume) = in_use {
        let parent = volume
            .split('/')
            .next()
            .unwrap_or_default()
            .replace(':', "/");
        sim.fail(
            &upid,
            &format!("zfs error: cannot destroy '{parent}': filesystem has dependent clones"),
        );
    }
    Ok(json!(upid))
}
