//! ZFS decisions, pure: which of the spec's pools to create (and which exist with another
//! layout, which Phoenix never changes), and which datasets to create or set, from what
//! PVE's API and one `zfs list` on the node report.

use phoenix_crds::host_storage::{DatasetProperties, ZfsDataset, ZfsPool};
use std::collections::BTreeMap;

/// The properties Phoenix reads and sets, in the order of the `zfs list` columns.
pub const PROPERTIES: [&str; 8] = [
    "compression",
    "recordsize",
    "quota",
    "mountpoint",
    "atime",
    "xattr",
    "acltype",
    "sync",
];

/// Size properties: compared in bytes (`zfs list -p` prints bytes; the spec says `1M`).
const SIZES: [&str; 2] = ["recordsize", "quota"];

/// The one command observing every dataset: name and [`PROPERTIES`], tab-separated.
pub fn list_command() -> Vec<String> {
    let columns = format!("name,{}", PROPERTIES.join(","));
    [
        "zfs",
        "list",
        "-H",
        "-p",
        "-o",
        &columns,
        "-t",
        "filesystem",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Datasets by name, each with its properties.
pub type Datasets = BTreeMap<String, BTreeMap<String, String>>;

/// Reads [`list_command`]'s output; lines of another shape are skipped.
pub fn parse_list(output: &str) -> Datasets {
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let name = fields.next()?.trim();
            let values: Vec<&str> = fields.collect();
            (!name.is_empty() && values.len() == PROPERTIES.len()).then(|| {
                let properties = PROPERTIES
                    .iter()
                    .zip(values)
                    .map(|(p, v)| ((*p).to_owned(), v.trim().to_owned()))
                    .collect();
                (name.to_owned(), properties)
            })
        })
        .collect()
}

/// A pool as PVE's `disks/zfs/{name}` shows its layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `mirror`, `raidz2`, `raid10`, `single`, … in PVE's create terms.
    pub level: String,
    /// Device names as `zpool status` shows them (`nvme1n1`).
    pub devices: Vec<String>,
}

/// The layout of a pool from PVE's detail answer (`zpool status -P` parsed: the pool is
/// the first child, its vdevs below it), with each leaf named as the disk `disks/list`
/// says it is (leaves are by-id partition paths: `/dev/disk/by-id/nvme-X-part1` → `nvme1n1`).
pub fn layout(detail: &serde_json::Value, disks: &[serde_json::Value]) -> Layout {
    let top: Vec<&serde_json::Value> = detail["children"]
        .as_array()
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let pool_row = top
        .first()
        .filter(|p| p["name"] == detail["name"] && vdev_group(p).is_none());
    let vdevs: Vec<&serde_json::Value> = match pool_row {
        Some(pool) => pool["children"]
            .as_array()
            .map(|c| c.iter().collect())
            .unwrap_or_default(),
        None => top,
    };
    let kinds: Vec<&str> = vdevs.iter().filter_map(|v| vdev_group(v)).collect();
    let level = match (kinds.as_slice(), vdevs.len()) {
        ([], _) => "single".to_owned(),
        (["mirror"], 1) => "mirror".to_owned(),
        (all, _) if all.len() > 1 && all.iter().all(|k| *k == "mirror") => "raid10".to_owned(),
        ([k], 1) => k.replace("raidz1", "raidz"),
        _ => "mixed".to_owned(),
    };
    let mut leaves = Vec::new();
    for v in vdevs {
        match v["children"].as_array() {
            Some(children) if vdev_group(v).is_some() => {
                leaves.extend(children.iter().filter_map(|l| l["name"].as_str()))
            }
            _ => leaves.extend(v["name"].as_str()),
        }
    }
    let devices = leaves.into_iter().map(|l| disk_of(l, disks)).collect();
    Layout { level, devices }
}

/// The disk a leaf (or a spec's device) is, by its device name (`nvme1n1`): the listed disk
/// whose by-id link it is (or a partition of), the listed disk it is a kernel partition of
/// (`sdb1`, `nvme1n1p1`), else its own name without a partition suffix.
fn disk_of(leaf: &str, disks: &[serde_json::Value]) -> String {
    let whole = whole_disk(leaf);
    let listed = |d: &&serde_json::Value| {
        let link = d["by_id_link"].as_str().unwrap_or_default();
        !link.is_empty() && (link == whole || device_name(link) == device_name(&whole))
    };
    if let Some(path) = disks
        .iter()
        .find(listed)
        .and_then(|d| d["devpath"].as_str())
    {
        return device_name(path);
    }
    let name = device_name(&whole);
    let partition_of = |d: &&serde_json::Value| {
        let disk = device_name(d["devpath"].as_str().unwrap_or_default());
        let rest = name.strip_prefix(disk.as_str()).unwrap_or_default();
        let number = rest.strip_prefix('p').unwrap_or(rest);
        !disk.is_empty() && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
    };
    match disks
        .iter()
        .find(partition_of)
        .and_then(|d| d["devpath"].as_str())
    {
        Some(path) => device_name(path),
        None => name,
    }
}

/// `…/nvme-X-part1` → `…/nvme-X`; `sda1` stays (a kernel name is compared as listed).
fn whole_disk(leaf: &str) -> String {
    match leaf.rsplit_once("-part") {
        Some((disk, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => disk.into(),
        _ => leaf.to_owned(),
    }
}

/// `mirror` of a `mirror-0` vdev (`raidz1` of `raidz1-0`); `None` for a disk.
fn vdev_group(v: &serde_json::Value) -> Option<&str> {
    let name = v["name"].as_str().unwrap_or_default();
    let kind = name.rsplit_once('-').map_or(name, |(k, _)| k);
    matches!(kind, "mirror" | "raidz1" | "raidz2" | "raidz3" | "raidz").then_some(kind)
}

/// How a spec pool stands against the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolPlan<'a> {
    Present,
    Create(&'a ZfsPool),
    /// Present with another layout: said, never changed.
    Differs(String),
}

/// `disks` is PVE's `disks/list`: the spec's devices (a path or a by-id link) and the
/// layout's are compared as the disks they name.
pub fn plan_pool<'a>(
    pool: &'a ZfsPool,
    observed: Option<&Layout>,
    disks: &[serde_json::Value],
) -> PoolPlan<'a> {
    let Some(layout) = observed else {
        return PoolPlan::Create(pool);
    };
    let mut wanted: Vec<String> = pool.devices.iter().map(|d| disk_of(d, disks)).collect();
    let mut found = layout.devices.clone();
    wanted.sort();
    found.sort();
    if layout.level == pool.raid_level.as_str() && wanted == found {
        return PoolPlan::Present;
    }
    PoolPlan::Differs(format!(
        "pool {} is a {} of [{}] on the node, the spec says a {} of [{}]; Phoenix never changes a pool's layout",
        pool.name,
        layout.level,
        found.join(", "),
        pool.raid_level.as_str(),
        wanted.join(", ")
    ))
}

/// The last path component: `/dev/nvme1n1` and `nvme1n1` name the same disk.
fn device_name(device: &str) -> String {
    device.rsplit('/').next().unwrap_or(device).to_owned()
}

/// A change to one dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetChange {
    Create {
        name: String,
        properties: Vec<(String, String)>,
    },
    Set {
        name: String,
        properties: Vec<(String, String)>,
    },
}

impl DatasetChange {
    /// The `zfs` command making it.
    pub fn command(&self) -> Vec<String> {
        let assignments = |properties: &[(String, String)]| -> Vec<String> {
            properties.iter().map(|(k, v)| format!("{k}={v}")).collect()
        };
        match self {
            DatasetChange::Create { name, properties } => {
                let mut argv = vec!["zfs".to_owned(), "create".into(), "-p".into()];
                for assignment in assignments(properties) {
                    argv.extend(["-o".to_owned(), assignment]);
                }
                argv.push(name.clone());
                argv
            }
            DatasetChange::Set { name, properties } => {
                let mut argv = vec!["zfs".to_owned(), "set".into()];
                argv.extend(assignments(properties));
                argv.push(name.clone());
                argv
            }
        }
    }
}

impl std::fmt::Display for DatasetChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |p: &[(String, String)]| {
            p.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            DatasetChange::Create { name, properties } if properties.is_empty() => {
                write!(f, "create {name}")
            }
            DatasetChange::Create { name, properties } => {
                write!(f, "create {name} ({})", list(properties))
            }
            DatasetChange::Set { name, properties } => {
                write!(f, "set {} on {name}", list(properties))
            }
        }
    }
}

/// What the datasets need: changes, and the pools they wait for (absent from the node).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatasetPlan {
    pub changes: Vec<DatasetChange>,
    pub waiting_for: Vec<String>,
}

pub fn plan_datasets(spec: &[ZfsDataset], observed: &Datasets) -> DatasetPlan {
    let mut plan = DatasetPlan::default();
    for dataset in spec {
        let pool = dataset.name.split('/').next().unwrap_or_default();
        if !observed.contains_key(pool) {
            if !plan.waiting_for.iter().any(|p| p == pool) {
                plan.waiting_for.push(pool.to_owned());
            }
            continue;
        }
        let wanted = wanted_properties(&dataset.properties);
        match observed.get(&dataset.name) {
            None => plan.changes.push(DatasetChange::Create {
                name: dataset.name.clone(),
                properties: wanted,
            }),
            Some(found) => {
                let differing: Vec<(String, String)> = wanted
                    .into_iter()
                    .filter(|(k, v)| !same_value(k, v, found.get(k).map_or("", String::as_str)))
                    .collect();
                if !differing.is_empty() {
                    plan.changes.push(DatasetChange::Set {
                        name: dataset.name.clone(),
                        properties: differing,
                    });
                }
            }
        }
    }
    plan
}

/// The spec's properties as `zfs` takes them, in [`PROPERTIES`] order.
pub fn wanted_properties(p: &DatasetProperties) -> Vec<(String, String)> {
    let values: [Option<String>; 8] = [
        word(&p.compression),
        p.recordsize.clone(),
        p.quota.clone(),
        p.mountpoint.clone(),
        word(&p.atime),
        word(&p.xattr),
        word(&p.acltype),
        word(&p.sync),
    ];
    PROPERTIES
        .iter()
        .zip(values)
        .filter_map(|(k, v)| Some(((*k).to_owned(), v?)))
        .collect()
}

/// An enum value as the spec (and `zfs`) spell it.
fn word<T: serde::Serialize>(value: &Option<T>) -> Option<String> {
    let value = serde_json::to_value(value.as_ref()?).ok()?;
    value.as_str().map(str::to_owned)
}

/// Whether the spec's `wanted` is what `zfs list -p` printed as `found`.
fn same_value(property: &str, wanted: &str, found: &str) -> bool {
    if SIZES.contains(&property) {
        return bytes(wanted).is_some() && bytes(wanted) == bytes(found);
    }
    wanted == found
}

/// `1M` → 1048576; `none` → 0 (ZFS's "no quota").
pub fn bytes(size: &str) -> Option<u64> {
    if size == "none" {
        return Some(0);
    }
    let (number, unit) = match size.char_indices().last()? {
        (at, c) if c.is_ascii_alphabetic() => (&size[..at], c),
        _ => (size, 'B'),
    };
    let shift = match unit.to_ascii_uppercase() {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_crds::host_storage::{Compression, RaidLevel};
    use serde_json::json;

    fn pool(level: RaidLevel, devices: &[&str]) -> ZfsPool {
        ZfsPool {
            name: "fastData".into(),
            raid_level: level,
            devices: devices.iter().map(|d| (*d).to_owned()).collect(),
            ashift: Some(12),
            compression: Some(Compression::Lz4),
            add_storage: false,
        }
    }

    fn disks() -> Vec<serde_json::Value> {
        ["nvme1n1", "nvme2n1", "sda", "sdb", "sdc", "sdd", "sde"]
            .iter()
            .map(|d| json!({"devpath": format!("/dev/{d}"), "by_id_link": format!("/dev/disk/by-id/id-{d}")}))
            .collect()
    }

    fn leaf(disk: &str) -> serde_json::Value {
        json!({"name": format!("/dev/disk/by-id/id-{disk}-part1"), "leaf": 1})
    }

    /// PVE's answer: the pool is the first row, its vdevs below it.
    fn detail(vdevs: serde_json::Value) -> serde_json::Value {
        json!({"name": "p", "state": "ONLINE", "children": [{"name": "p", "leaf": 0, "children": vdevs}]})
    }

    #[test]
    fn a_layout_is_read_from_pves_vdev_tree_with_leaves_named_as_their_disks() {
        let mirror =
            detail(json!([{"name": "mirror-0", "children": [leaf("nvme1n1"), leaf("nvme2n1")]}]));
        assert_eq!(
            layout(&mirror, &disks()),
            Layout {
                level: "mirror".into(),
                devices: vec!["nvme1n1".into(), "nvme2n1".into()]
            }
        );
        let raidz = detail(json!([{"name": "raidz1-0", "children": [leaf("sda")]}]));
        assert_eq!(layout(&raidz, &disks()).level, "raidz");
        let raid10 = detail(json!([
            {"name": "mirror-0", "children": [leaf("sda"), leaf("sdb")]},
            {"name": "mirror-1", "children": [leaf("sdc"), leaf("sdd")]}]));
        assert_eq!(layout(&raid10, &disks()).level, "raid10");
        assert_eq!(layout(&raid10, &disks()).devices.len(), 4);
        let single = detail(json!([leaf("sde")]));
        assert_eq!(layout(&single, &disks()).level, "single");
        assert_eq!(layout(&single, &disks()).devices, vec!["sde".to_owned()]);
        // A disk PVE does not list: its by-id name, without the partition.
        let unknown = detail(json!([leaf("nvme9n1")]));
        assert_eq!(
            layout(&unknown, &disks()).devices,
            vec!["id-nvme9n1".to_owned()]
        );
    }

    #[test]
    fn a_pool_is_created_when_absent_and_never_changed_when_it_differs() {
        let spec = pool(RaidLevel::Mirror, &["/dev/nvme1n1", "/dev/nvme2n1"]);
        assert_eq!(plan_pool(&spec, None, &disks()), PoolPlan::Create(&spec));
        let same = Layout {
            level: "mirror".into(),
            devices: vec!["nvme2n1".into(), "nvme1n1".into()],
        };
        assert_eq!(plan_pool(&spec, Some(&same), &disks()), PoolPlan::Present);
        let other = Layout {
            level: "raidz".into(),
            ..same
        };
        let PoolPlan::Differs(message) = plan_pool(&spec, Some(&other), &disks()) else {
            panic!("a different level is a difference");
        };
        assert!(message.contains("raidz") && message.contains("never changes"));
        // A spec naming a disk by its by-id link, a leaf by its kernel partition: the same.
        let by_id = pool(RaidLevel::Single, &["/dev/disk/by-id/id-sde"]);
        let found = layout(&detail(json!([{"name": "sde1"}])), &disks());
        assert_eq!(found.devices, vec!["sde".to_owned()]);
        assert_eq!(plan_pool(&by_id, Some(&found), &disks()), PoolPlan::Present);
        let nvme = layout(&detail(json!([{"name": "nvme1n1p1"}])), &disks());
        assert_eq!(nvme.devices, vec!["nvme1n1".to_owned()]);
    }

    fn listed(lines: &[&str]) -> Datasets {
        parse_list(&lines.join("\n"))
    }

    const ROOT: &str = "fastData\tlz4\t131072\t0\t/fastData\ton\ton\toff\tstandard";

    fn dataset(name: &str, properties: DatasetProperties) -> ZfsDataset {
        ZfsDataset {
            name: name.into(),
            properties,
        }
    }

    #[test]
    fn datasets_are_created_set_or_left_and_wait_for_their_pool() {
        let iso = DatasetProperties {
            recordsize: Some("1M".into()),
            ..Default::default()
        };
        let spec = vec![
            dataset("fastData/ISOs", iso.clone()),
            dataset("fastData/VMs", DatasetProperties::default()),
            dataset("slowData/backup", DatasetProperties::default()),
        ];
        let observed = listed(&[
            ROOT,
            "fastData/VMs\tlz4\t131072\t0\t/fastData/VMs\ton\ton\toff\tstandard",
        ]);
        let plan = plan_datasets(&spec, &observed);
        assert_eq!(
            plan.changes,
            vec![DatasetChange::Create {
                name: "fastData/ISOs".into(),
                properties: vec![("recordsize".into(), "1M".into())]
            }]
        );
        assert_eq!(plan.waiting_for, vec!["slowData".to_owned()]);
        // 1M is 1048576 bytes: listed so, nothing to do; 128K is a change.
        let observed = listed(&[
            ROOT,
            "fastData/ISOs\tlz4\t1048576\t0\t/fastData/ISOs\ton\ton\toff\tstandard",
        ]);
        let spec = vec![dataset("fastData/ISOs", iso)];
        assert!(plan_datasets(&spec, &observed).changes.is_empty());
        let smaller = DatasetProperties {
            recordsize: Some("128K".into()),
            quota: Some("none".into()),
            ..Default::default()
        };
        let plan = plan_datasets(&[dataset("fastData/ISOs", smaller)], &observed);
        assert_eq!(
            plan.changes,
            vec![DatasetChange::Set {
                name: "fastData/ISOs".into(),
                properties: vec![("recordsize".into(), "128K".into())]
            }]
        );
    }

    #[test]
    fn commands_carry_each_property_as_one_word() {
        let create = DatasetChange::Create {
            name: "fastData/quickOS".into(),
            properties: vec![("mountpoint".into(), "/mnt/pve/quickOS".into())],
        };
        assert_eq!(
            create.command(),
            [
                "zfs",
                "create",
                "-p",
                "-o",
                "mountpoint=/mnt/pve/quickOS",
                "fastData/quickOS"
            ]
        );
        let set = DatasetChange::Set {
            name: "a/b".into(),
            properties: vec![
                ("atime".into(), "off".into()),
                ("sync".into(), "always".into()),
            ],
        };
        assert_eq!(
            set.command(),
            ["zfs", "set", "atime=off", "sync=always", "a/b"]
        );
        assert_eq!(set.to_string(), "set atime=off sync=always on a/b");
    }

    #[test]
    fn sizes_read_as_zfs_reads_them() {
        assert_eq!(bytes("1M"), Some(1 << 20));
        assert_eq!(bytes("128K"), Some(131072));
        assert_eq!(bytes("131072"), Some(131072));
        assert_eq!(bytes("none"), Some(0));
        assert_eq!(bytes("-"), None);
        assert_eq!(bytes("12X"), None);
    }

    #[test]
    fn lines_of_another_shape_are_skipped() {
        let observed = parse_list("garbage\nfastData\tlz4\n");
        assert!(observed.is_empty());
        assert_eq!(listed(&[ROOT])["fastData"]["mountpoint"], "/fastData");
    }
}
