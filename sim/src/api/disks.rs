//! A node's disks and ZFS pools: `disks/list`, `disks/zfs` (list, create) and
//! `disks/zfs/{name}`, as pve-storage's `API2/Disks.pm` and `API2/Disks/ZFS.pm` answer.

use super::{ApiResult, Call, PveError, permissions, split_list};
use crate::cluster::{Cluster, Effect};
use crate::state::Sim;
use crate::zfs::{NewPool, Pool, Zfs};
use serde_json::{Value, json};

fn zfs<'a>(cluster: &'a Cluster, call: &Call) -> &'a Zfs {
    &cluster
        .node(&call.node())
        .expect("the router checked the node")
        .zfs
}

/// `GET disks/list [type=unused|journal_disks]`, sorted by device name.
pub(super) fn list(cluster: &Cluster, call: &Call) -> Value {
    let kind = call.text("type").unwrap_or_default();
    let mut disks: Vec<_> = zfs(cluster, call)
        .disks
        .iter()
        .filter(|d| match kind.as_str() {
            "unused" => d.used.is_none(),
            // Disks with partitions or LVM could carry a journal; ZFS members cannot.
            "journal_disks" => d.used.is_none(),
            _ => true,
        })
        .collect();
    disks.sort_by(|a, b| a.devpath.cmp(&b.devpath));
    Value::Array(disks.into_iter().map(|d| d.json()).collect())
}

/// `GET disks/zfs`: `zpool list -HpPLo name,size,alloc,free,frag,dedup,health`.
pub(super) fn pools(cluster: &Cluster, call: &Call) -> Value {
    Value::Array(
        zfs(cluster, call)
            .pools
            .iter()
            .map(|(name, p)| {
                json!({"name": name, "size": p.size, "alloc": p.alloc, "free": p.size - p.alloc,
                       "frag": 0, "dedup": 1, "health": p.health})
            })
            .collect(),
    )
}

/// A vdev row of `zpool status` as PVE's parser makes it (`leaf` from its `preparetree`).
fn vdev(name: &str, state: &str, children: Vec<Value>) -> Value {
    let mut v = json!({"name": name, "state": state, "read": 0, "write": 0, "cksum": 0,
                       "msg": "", "leaf": children.is_empty() as i32});
    if !children.is_empty() {
        v["children"] = Value::Array(children);
    }
    v
}

/// `GET disks/zfs/{name}`: `zpool status -P NAME` parsed as PVE does: the pool is the
/// first row of its config, its vdevs (`mirror-0`, `raidz2-0`) below it, the leaves by
/// their full path.
pub(super) fn pool(cluster: &Cluster, call: &Call) -> ApiResult {
    let name = call.text("name").unwrap_or_default();
    let pool = zfs(cluster, call).pools.get(&name).ok_or_else(|| {
        PveError::server(format!(
            "command '/sbin/zpool status -P {name}' failed: exit code 1"
        ))
    })?;
    let state = pool.health.as_str();
    let leaves = |names: &[String]| names.iter().map(|l| vdev(l, state, vec![])).collect();
    let vdevs: Vec<Value> = pool
        .vdevs()
        .into_iter()
        .flat_map(|(group, names)| match group {
            Some(group) => vec![vdev(&group, state, leaves(&names))],
            None => leaves(&names),
        })
        .collect();
    Ok(
        json!({"name": name, "state": state, "scan": "none requested",
              "errors": "No known data errors", "leaf": 0,
              "children": [vdev(&name, state, vdevs)]}),
    )
}

/// The fewest disks each level takes (`$mindisks` of PVE's create).
fn min_disks(raidlevel: &str) -> usize {
    match raidlevel {
        "single" => 1,
        "mirror" => 2,
        "raid10" | "raidz2" | "draid2" => 4,
        "raidz" | "draid" => 3,
        _ => 5,
    }
}

/// The number fields of `draid-config` (`data=N,spares=N`).
fn draid_config(text: &str) -> (usize, usize) {
    let fields: std::collections::BTreeMap<&str, usize> = text
        .split(',')
        .filter_map(|f| f.split_once('='))
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    (
        fields.get("data").copied().unwrap_or(0),
        fields.get("spares").copied().unwrap_or(0),
    )
}

/// PVE's count checks, in its order.
fn check_counts(
    raidlevel: &str,
    count: usize,
    draid: Option<(usize, usize)>,
) -> Result<(), String> {
    if raidlevel == "raid10" && !count.is_multiple_of(2) {
        return Err("raid10 needs an even number of disks".into());
    }
    if raidlevel == "single" && count > 1 {
        return Err("please give only one disk for single disk mode".into());
    }
    let min = min_disks(raidlevel);
    if count < min {
        return Err(format!("{raidlevel} needs at least {min} disks"));
    }
    if raidlevel.starts_with("draid") {
        let (data, spares) = draid.unwrap_or_default();
        let needed = min - 2 + data + spares;
        if count < needed {
            return Err(format!(
                "At least {needed} disks needed for current dRAID config"
            ));
        }
    }
    Ok(())
}

/// `POST disks/zfs`: the checks PVE makes before its worker starts, then a `zfscreate`
/// task that makes the pool (and with `add_storage` its storage) when it ends.
pub(super) fn create(sim: &mut Sim, call: &Call) -> ApiResult {
    let (node, name) = (call.node(), call.text("name").unwrap_or_default());
    let raidlevel = call.text("raidlevel").unwrap_or_default();
    let add_storage = call.flag("add_storage");
    if add_storage {
        permissions::require(sim, call, "/storage", &["Datastore.Allocate"])?;
    }
    let draid = match call.text("draid-config") {
        Some(_) if !raidlevel.starts_with("draid") => {
            return Err(PveError::server(
                "draid-config set without using dRAID level",
            ));
        }
        Some(text) => Some(draid_config(&text)),
        None => None,
    };
    let zfs = &sim
        .cluster
        .node(&node)
        .expect("the router checked the node")
        .zfs;
    let devices = split_list(&call.text("devices").unwrap_or_default());
    let mut disks = Vec::new();
    for dev in &devices {
        let disk = zfs
            .disk(dev)
            .ok_or_else(|| PveError::server("not a valid block device"))?;
        if disk.used.is_some() {
            return Err(PveError::server(format!(
                "device '{dev}' is already in use"
            )));
        }
        disks.push(disk);
    }
    if add_storage {
        sim.cluster
            .check_zfspool(&name, &node)
            .map_err(PveError::server)?;
    }
    if zfs.pools.contains_key(&name) {
        return Err(PveError::server(format!(
            "pool '{name}' already exists on node '{node}'"
        )));
    }
    check_counts(&raidlevel, disks.len(), draid).map_err(PveError::server)?;
    let new = NewPool {
        node: node.clone(),
        name: name.clone(),
        pool: Pool::new(&raidlevel, &disks),
        compression: call.text("compression").unwrap_or_else(|| "on".into()),
        add_storage,
    };
    let effect = Effect::CreatePool(Box::new(new));
    Ok(json!(sim.task(
        &node,
        "zfscreate",
        &name,
        &call.user,
        effect
    )))
}
