//! A PVE node's disks, ZFS pools and datasets, as one state that the API (`disks/list`,
//! `disks/zfs`) and the node's shell (`zfs`, `zpool`: [`crate::zfs_shell`]) both answer
//! from. Datasets keep only their locally set properties; every other value is inherited
//! or a default, worked out as ZFS does when asked.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A disk of the node, as `disks/list` describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Disk {
    pub devpath: String,
    /// `nvme`, `ssd` or `hdd`.
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    pub model: String,
    pub serial: String,
    pub vendor: String,
    pub wwn: String,
    pub rpm: u32,
    /// What uses it (`ZFS`); `None` when unused.
    #[serde(default)]
    pub used: Option<String>,
}

impl Disk {
    /// The udev link PVE's `get_udev_info` picks (`by_id_link`), which `disks/zfs` creates
    /// pools with: `nvme-MODEL_SERIAL` or `ata-MODEL_SERIAL`.
    pub fn by_id_link(&self) -> String {
        let bus = if self.kind == "nvme" { "nvme" } else { "ata" };
        let model = self.model.replace(' ', "_");
        format!("/dev/disk/by-id/{bus}-{model}_{}", self.serial)
    }

    /// As `GET /nodes/{node}/disks/list` lists it (PVE's `get_disks`).
    pub fn json(&self) -> serde_json::Value {
        let ssd = self.kind != "hdd";
        let mut v = serde_json::json!({
            "devpath": self.devpath, "type": self.kind, "size": self.size, "model": self.model,
            "serial": self.serial, "vendor": self.vendor, "wwn": self.wwn, "rpm": self.rpm,
            "health": "PASSED", "gpt": self.used.is_some() as i32, "osdid": -1,
            "osdid-list": null, "by_id_link": self.by_id_link(),
            "wearout": if ssd { serde_json::json!(100) } else { serde_json::json!("N/A") },
        });
        if let Some(used) = &self.used {
            v["used"] = serde_json::json!(used);
        }
        v
    }
}

/// A pool and how it was made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Pool {
    /// `single`, `mirror`, `raid10`, `raidz`, `raidz2`, `raidz3`, `draid*`.
    pub raidlevel: String,
    /// The disks, as given (`/dev/nvme1n1`).
    pub devices: Vec<String>,
    /// Its vdev leaves as `zpool status -P` names them (the by-id link's partition).
    pub leaves: Vec<String>,
    pub size: u64,
    pub alloc: u64,
    pub health: String,
}

impl Pool {
    /// A new pool on `disks` (all found): leaves on their first partition, as a whole
    /// disk given to `zpool create` gets; size as `zpool list` counts it (a mirror is one
    /// side, raidz counts parity too).
    pub fn new(raidlevel: &str, disks: &[&Disk]) -> Self {
        let smallest = disks.iter().map(|d| d.size).min().unwrap_or(0);
        let n = disks.len() as u64;
        let size = match raidlevel {
            "mirror" => smallest,
            "raid10" => smallest * (n / 2),
            "single" => disks.iter().map(|d| d.size).sum(),
            _ => smallest * n,
        };
        Self {
            raidlevel: raidlevel.into(),
            devices: disks.iter().map(|d| d.devpath.clone()).collect(),
            leaves: disks
                .iter()
                .map(|d| format!("{}-part1", d.by_id_link()))
                .collect(),
            size,
            alloc: 0,
            health: "ONLINE".into(),
        }
    }

    /// The vdevs under the pool as `zpool status` groups them: `(name, leaves)`, with no
    /// name when the leaves sit directly under the pool.
    pub fn vdevs(&self) -> Vec<(Option<String>, Vec<String>)> {
        let group = |kind: &str, i: usize, leaves: &[String]| {
            (Some(format!("{kind}-{i}")), leaves.to_vec())
        };
        match self.raidlevel.as_str() {
            "single" => vec![(None, self.leaves.clone())],
            "raid10" => self
                .leaves
                .chunks(2)
                .enumerate()
                .map(|(i, pair)| group("mirror", i, pair))
                .collect(),
            level => vec![group(level, 0, &self.leaves)],
        }
    }
}

/// The disks, pools and datasets of one node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Zfs {
    pub disks: Vec<Disk>,
    pub pools: BTreeMap<String, Pool>,
    /// Filesystem datasets by name, with their locally set properties (sizes in bytes).
    pub datasets: BTreeMap<String, BTreeMap<String, String>>,
}

const TB: u64 = 1_000_204_886_016;

fn disk(devpath: &str, kind: &str, size: u64, model: &str, serial: &str, rpm: u32) -> Disk {
    let (vendor, wwn) = match kind {
        "nvme" => (
            "unknown".into(),
            format!("eui.0025385b{}", &serial[serial.len() - 8..]),
        ),
        _ => (
            "ATA".into(),
            format!("0x50014ee{}", &serial[serial.len() - 9..]),
        ),
    };
    Disk {
        devpath: devpath.into(),
        kind: kind.into(),
        size,
        model: model.into(),
        serial: serial.into(),
        vendor,
        wwn,
        rpm,
        used: None,
    }
}

/// What the PVE installer leaves on a node: `rpool` on the first NVMe disk (its third
/// partition) with `ROOT/pve-1`, `data` and `var-lib-vz`; the other disks unused.
impl Default for Zfs {
    fn default() -> Self {
        let mut disks = vec![
            disk(
                "/dev/nvme0n1",
                "nvme",
                TB,
                "Samsung SSD 980 PRO 1TB",
                "S5GXNX0T100001A",
                0,
            ),
            disk(
                "/dev/nvme1n1",
                "nvme",
                TB,
                "Samsung SSD 980 PRO 1TB",
                "S5GXNX0T100002B",
                0,
            ),
            disk(
                "/dev/nvme2n1",
                "nvme",
                TB,
                "Samsung SSD 980 PRO 1TB",
                "S5GXNX0T100003C",
                0,
            ),
        ];
        for (i, letter) in ["a", "b", "c", "d"].iter().enumerate() {
            let serial = format!("WD-WX12D0000{i:03}");
            let path = format!("/dev/sd{letter}");
            disks.push(disk(
                &path,
                "hdd",
                4 * TB,
                "WDC WD40EFPX-68C6CN0",
                &serial,
                5400,
            ));
        }
        disks.push(disk(
            "/dev/sde",
            "hdd",
            2 * TB,
            "ST2000VN004-2E4164",
            "Z4Z00000E5",
            5900,
        ));
        disks[0].used = Some("ZFS".into());
        let rpool = Pool {
            leaves: vec![format!("{}-part3", disks[0].by_id_link())],
            size: TB - (1 << 30),
            alloc: 4 << 30,
            ..Pool::new("single", &[&disks[0]])
        };
        let local = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let datasets = [
            ("rpool", local(&[("compression", "on")])),
            ("rpool/ROOT", local(&[])),
            ("rpool/ROOT/pve-1", local(&[("mountpoint", "/")])),
            ("rpool/data", local(&[])),
            ("rpool/var-lib-vz", local(&[("mountpoint", "/var/lib/vz")])),
        ];
        Self {
            disks,
            pools: [("rpool".to_string(), rpool)].into(),
            datasets: datasets
                .into_iter()
                .map(|(n, p)| (n.to_string(), p))
                .collect(),
        }
    }
}

/// What a `zfscreate` task makes when it ends.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewPool {
    pub node: String,
    pub name: String,
    pub pool: Pool,
    pub compression: String,
    /// `add_storage`: a `zfspool` storage named after the pool.
    pub add_storage: bool,
}

/// How a property's values are checked and shown.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Bytes (`100G`), `none` being 0.
    Size,
    /// A power of two from 512 to 16M.
    RecordSize,
    /// One of the listed values; the text is how ZFS names them in its message.
    Index(&'static [&'static str], &'static str),
    Mountpoint,
    Text,
}

struct Prop {
    name: &'static str,
    inherit: bool,
    default: &'static str,
    kind: Kind,
}

const ON_OFF: Kind = Kind::Index(&["on", "off"], "on | off");

const PROPS: &[Prop] = &[
    Prop {
        name: "recordsize",
        inherit: true,
        default: "131072",
        kind: Kind::RecordSize,
    },
    Prop {
        name: "quota",
        inherit: false,
        default: "0",
        kind: Kind::Size,
    },
    Prop {
        name: "refquota",
        inherit: false,
        default: "0",
        kind: Kind::Size,
    },
    Prop {
        name: "reservation",
        inherit: false,
        default: "0",
        kind: Kind::Size,
    },
    Prop {
        name: "refreservation",
        inherit: false,
        default: "0",
        kind: Kind::Size,
    },
    Prop {
        name: "compression",
        inherit: true,
        default: "off",
        kind: Kind::Text,
    },
    Prop {
        name: "mountpoint",
        inherit: true,
        default: "",
        kind: Kind::Mountpoint,
    },
    Prop {
        name: "atime",
        inherit: true,
        default: "on",
        kind: ON_OFF,
    },
    Prop {
        name: "relatime",
        inherit: true,
        default: "on",
        kind: ON_OFF,
    },
    Prop {
        name: "exec",
        inherit: true,
        default: "on",
        kind: ON_OFF,
    },
    Prop {
        name: "setuid",
        inherit: true,
        default: "on",
        kind: ON_OFF,
    },
    Prop {
        name: "devices",
        inherit: true,
        default: "on",
        kind: ON_OFF,
    },
    Prop {
        name: "readonly",
        inherit: true,
        default: "off",
        kind: ON_OFF,
    },
    Prop {
        name: "xattr",
        inherit: true,
        default: "on",
        kind: Kind::Index(&["on", "off", "dir", "sa"], "on | off | dir | sa"),
    },
    Prop {
        name: "acltype",
        inherit: true,
        default: "off",
        kind: Kind::Index(&["off", "nfsv4", "posix"], "off | nfsv4 | posix"),
    },
    Prop {
        name: "sync",
        inherit: true,
        default: "standard",
        kind: Kind::Index(
            &["standard", "always", "disabled"],
            "standard | always | disabled",
        ),
    },
    Prop {
        name: "canmount",
        inherit: false,
        default: "on",
        kind: Kind::Index(&["on", "off", "noauto"], "on | off | noauto"),
    },
    Prop {
        name: "snapdir",
        inherit: true,
        default: "hidden",
        kind: Kind::Index(
            &["hidden", "visible", "disabled"],
            "disabled | hidden | visible",
        ),
    },
    Prop {
        name: "logbias",
        inherit: true,
        default: "latency",
        kind: Kind::Index(&["latency", "throughput"], "latency | throughput"),
    },
    Prop {
        name: "primarycache",
        inherit: true,
        default: "all",
        kind: Kind::Index(&["all", "none", "metadata"], "all | none | metadata"),
    },
    Prop {
        name: "secondarycache",
        inherit: true,
        default: "all",
        kind: Kind::Index(&["all", "none", "metadata"], "all | none | metadata"),
    },
    Prop {
        name: "copies",
        inherit: true,
        default: "1",
        kind: Kind::Index(&["1", "2", "3"], "1 | 2 | 3"),
    },
    Prop {
        name: "dedup",
        inherit: true,
        default: "off",
        kind: Kind::Index(
            &[
                "on",
                "off",
                "verify",
                "sha256",
                "sha256,verify",
                "sha512",
                "sha512,verify",
                "skein",
                "skein,verify",
                "edonr,verify",
                "blake3",
                "blake3,verify",
            ],
            "on | off | verify | sha256[,verify] | sha512[,verify] | skein[,verify] | edonr,verify | blake3[,verify]",
        ),
    },
    Prop {
        name: "sharenfs",
        inherit: true,
        default: "off",
        kind: Kind::Text,
    },
    Prop {
        name: "sharesmb",
        inherit: true,
        default: "off",
        kind: Kind::Text,
    },
];

/// Properties ZFS computes: readable, never set.
const READONLY: &[&str] = &[
    "used",
    "available",
    "avail",
    "referenced",
    "refer",
    "type",
    "creation",
    "compressratio",
    "mounted",
    "origin",
    "usedbydataset",
    "usedbychildren",
    "logicalused",
    "written",
];

/// ZFS's other names for properties (`compress` is `compression`).
fn canonical(name: &str) -> &str {
    match name {
        "compress" => "compression",
        "recsize" => "recordsize",
        "refreserv" => "refreservation",
        "reserv" => "reservation",
        other => other,
    }
}

fn prop(name: &str) -> Option<&'static Prop> {
    PROPS.iter().find(|p| p.name == canonical(name))
}

/// A user property (`module:name`), kept as text and inherited.
fn is_user_prop(name: &str) -> bool {
    name.contains(':')
}

/// Whether `zfs list -o` knows the column.
pub fn is_column(name: &str) -> bool {
    name == "name" || prop(name).is_some() || READONLY.contains(&name) || is_user_prop(name)
}

/// `zfs_nicestrtonum`: `100G`, `1.5M`, `512` → bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad numeric value '{text}'"))?;
    let unit = suffix.to_ascii_uppercase();
    let unit = unit.trim_end_matches("IB").trim_end_matches('B');
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        "E" => 60,
        _ => return Err(format!("invalid numeric suffix '{suffix}'")),
    };
    Ok((value * (1u64 << shift) as f64) as u64)
}

/// `zfs_nicenum`: bytes as `zfs list` shows them without `-p` (`128K`, `1.50G`).
pub fn nicenum(n: u64) -> String {
    const UNITS: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let mut index = 0;
    while index < 6 && n >= 1u64 << (10 * (index + 1)) {
        index += 1;
    }
    if index == 0 {
        return n.to_string();
    }
    let unit = UNITS[index];
    if n.is_multiple_of(1u64 << (10 * index)) {
        return format!("{}{unit}", n >> (10 * index));
    }
    let value = n as f64 / (1u64 << (10 * index)) as f64;
    (0..=2)
        .rev()
        .map(|digits| format!("{value:.digits$}{unit}"))
        .find(|s| s.len() <= 5)
        .unwrap_or_else(|| format!("{value:.0}{unit}"))
}

/// ZFS's `compression` values: `on | off | lzjb | gzip | gzip-[1-9] | zle | lz4 | zstd |
/// zstd-[1-19] | zstd-fast | zstd-fast-[1-10,20,30,...,100,500,1000]`.
fn is_compression(value: &str) -> bool {
    let level = |rest: &str, ok: &dyn Fn(u32) -> bool| rest.parse().is_ok_and(ok);
    match value {
        "on" | "off" | "lzjb" | "gzip" | "zle" | "lz4" | "zstd" | "zstd-fast" => true,
        v if v.starts_with("zstd-fast-") => level(&v[10..], &|n| {
            (1..=10).contains(&n) || (n <= 100 && n % 10 == 0) || n == 500 || n == 1000
        }),
        v if v.starts_with("gzip-") => level(&v[5..], &|n| (1..=9).contains(&n)),
        v if v.starts_with("zstd-") => level(&v[5..], &|n| (1..=19).contains(&n)),
        _ => false,
    }
}

const COMPRESSION_VALUES: &str = "on | off | lzjb | gzip | gzip-[1-9] | zle | lz4 | zstd | zstd-[1-19] | zstd-fast | zstd-fast-[1-10,20,30,...,100,500,1000]";

/// Checks `name=value` as `zfs create -o`/`zfs set` do: the value as stored, or ZFS's
/// reason (without the `cannot …:` prefix the caller adds).
pub fn check_property(name: &str, value: &str) -> Result<(String, String), String> {
    if is_user_prop(name) {
        return Ok((name.to_owned(), value.to_owned()));
    }
    let Some(p) = prop(name) else {
        return Err(match READONLY.contains(&name) {
            true => format!("'{name}' is readonly"),
            false => format!("invalid property '{name}'"),
        });
    };
    let stored = match p.kind {
        Kind::Size if value == "none" => "0".to_owned(),
        Kind::Size => parse_size(value)?.to_string(),
        Kind::RecordSize => {
            let n = parse_size(value)?;
            if !(512..=16 << 20).contains(&n) || !n.is_power_of_two() {
                return Err(format!("'{}' must be power of 2 from 512B to 16M", p.name));
            }
            n.to_string()
        }
        Kind::Index(values, text) => {
            // `acltype`'s older names.
            let value = match (p.name, value) {
                ("acltype", "noacl") => "off",
                ("acltype", "posixacl") => "posix",
                _ => value,
            };
            if !values.contains(&value) {
                return Err(format!("'{}' must be one of '{text}'", p.name));
            }
            value.to_owned()
        }
        Kind::Mountpoint if value.starts_with('/') || value == "none" || value == "legacy" => {
            value.to_owned()
        }
        Kind::Mountpoint => {
            return Err("'mountpoint' must be an absolute path, 'none', or 'legacy'".into());
        }
        Kind::Text if p.name == "compression" && !is_compression(value) => {
            return Err(format!(
                "'compression' must be one of '{COMPRESSION_VALUES}'"
            ));
        }
        Kind::Text => value.to_owned(),
    };
    Ok((p.name.to_owned(), stored))
}

/// `a/b/c` → `a/b`; a pool's root has no parent.
pub fn parent(dataset: &str) -> Option<&str> {
    dataset.rsplit_once('/').map(|(p, _)| p)
}

impl Zfs {
    pub fn disk(&self, devpath: &str) -> Option<&Disk> {
        self.disks.iter().find(|d| d.devpath == devpath)
    }

    /// A finished `zpool create` and `zfs set compression=…`: the pool, its disks in use
    /// and its root dataset.
    pub fn add_pool(&mut self, name: &str, pool: Pool, compression: &str) {
        for disk in &mut self.disks {
            if pool.devices.contains(&disk.devpath) {
                disk.used = Some("ZFS".into());
            }
        }
        let root = [("compression".to_string(), compression.to_string())].into();
        self.datasets.insert(name.to_owned(), root);
        self.pools.insert(name.to_owned(), pool);
    }

    /// `prop` of `dataset` as ZFS reports it with `-p`: set locally, inherited, or the
    /// default (a mountpoint inherits path-wise, below the ancestor that set it).
    pub fn value(&self, dataset: &str, name: &str) -> String {
        let name = canonical(name);
        match name {
            "name" => return dataset.to_owned(),
            "type" => return "filesystem".into(),
            "used" | "referenced" | "refer" | "usedbydataset" | "logicalused" => {
                return (96u64 << 10).to_string();
            }
            "available" | "avail" => return self.available(dataset).to_string(),
            _ => {}
        }
        let Some(p) = prop(name) else {
            return match is_user_prop(name) {
                true => self.inherited(dataset, name).map_or("-".into(), |(_, v)| v),
                false => "-".into(),
            };
        };
        if p.kind == Kind::Mountpoint {
            return self.mountpoint(dataset);
        }
        let found = match p.inherit {
            true => self.inherited(dataset, name).map(|(_, v)| v),
            false => self.local(dataset, name),
        };
        found.unwrap_or_else(|| p.default.to_owned())
    }

    /// `value` as `zfs list` shows it without `-p`.
    pub fn display(&self, dataset: &str, name: &str) -> String {
        let value = self.value(dataset, name);
        let sized = matches!(
            prop(name).map(|p| p.kind),
            Some(Kind::Size | Kind::RecordSize)
        ) || matches!(
            canonical(name),
            "used" | "available" | "avail" | "referenced" | "refer"
        );
        match value.parse::<u64>() {
            Ok(0) if prop(name).is_some_and(|p| p.kind == Kind::Size) => "none".into(),
            Ok(n) if sized => nicenum(n),
            _ => value,
        }
    }

    fn local(&self, dataset: &str, name: &str) -> Option<String> {
        self.datasets.get(dataset)?.get(name).cloned()
    }

    /// The nearest of `dataset` and its ancestors that sets `name`, with the value.
    fn inherited(&self, dataset: &str, name: &str) -> Option<(String, String)> {
        let mut at = Some(dataset);
        while let Some(d) = at {
            if let Some(v) = self.local(d, name) {
                return Some((d.to_owned(), v));
            }
            at = parent(d);
        }
        None
    }

    pub fn mountpoint(&self, dataset: &str) -> String {
        match self.inherited(dataset, "mountpoint") {
            Some((_, v)) if v == "none" || v == "legacy" => v,
            Some((at, v)) => {
                let below = &dataset[at.len()..];
                match v.as_str() {
                    "/" if !below.is_empty() => below.to_owned(),
                    _ => format!("{v}{below}"),
                }
            }
            None => format!("/{dataset}"),
        }
    }

    fn available(&self, dataset: &str) -> u64 {
        let pool = dataset.split('/').next().unwrap_or_default();
        self.pools
            .get(pool)
            .map_or(0, |p| p.size.saturating_sub(p.alloc))
    }

    /// `GET /admin/nodes/{node}/zfs`: the disks as `disks/list` has them, the pools
    /// (level, disks, health) and the datasets with the properties set locally or at
    /// create, and their mountpoint.
    pub fn summary(&self) -> serde_json::Value {
        let pools: BTreeMap<&String, serde_json::Value> = self
            .pools
            .iter()
            .map(|(name, p)| {
                let v = serde_json::json!({"raidlevel": p.raidlevel, "devices": p.devices,
                                           "health": p.health});
                (name, v)
            })
            .collect();
        let datasets: BTreeMap<&String, BTreeMap<String, String>> = self
            .datasets
            .iter()
            .map(|(name, props)| {
                let mut shown = props.clone();
                shown.insert("mountpoint".into(), self.mountpoint(name));
                (name, shown)
            })
            .collect();
        let disks: Vec<serde_json::Value> = self.disks.iter().map(Disk::json).collect();
        serde_json::json!({"disks": disks, "pools": pools, "datasets": datasets})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_as_zfs_does() {
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("100G"), Ok(100 << 30));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("x"), Err("bad numeric value 'x'".into()));
        assert_eq!(parse_size("5Q"), Err("invalid numeric suffix 'Q'".into()));
        assert_eq!(nicenum(131072), "128K");
        assert_eq!(nicenum(1536 << 20), "1.50G");
        assert_eq!(nicenum(512), "512");
    }

    #[test]
    fn values_are_checked_and_stored_as_zfs_keeps_them() {
        assert_eq!(
            check_property("recsize", "1M"),
            Ok(("recordsize".into(), "1048576".into()))
        );
        assert_eq!(
            check_property("recordsize", "3000"),
            Err("'recordsize' must be power of 2 from 512B to 16M".into())
        );
        assert_eq!(
            check_property("quota", "none"),
            Ok(("quota".into(), "0".into()))
        );
        assert_eq!(
            check_property("acltype", "posixacl"),
            Ok(("acltype".into(), "posix".into()))
        );
        assert_eq!(
            check_property("foo", "1"),
            Err("invalid property 'foo'".into())
        );
        assert_eq!(
            check_property("used", "1"),
            Err("'used' is readonly".into())
        );
        assert!(check_property("compression", "zstd-3").is_ok());
        assert!(check_property("compression", "zstd-20").is_err());
        assert!(check_property("mountpoint", "relative").is_err());
    }

    #[test]
    fn mountpoints_inherit_path_wise_below_the_ancestor_that_set_one() {
        let mut zfs = Zfs::default();
        let set = |zfs: &mut Zfs, d: &str, k: &str, v: &str| {
            zfs.datasets
                .entry(d.into())
                .or_default()
                .insert(k.into(), v.into());
        };
        set(&mut zfs, "rpool/data/a", "mountpoint", "/srv/a");
        zfs.datasets
            .insert("rpool/data/a/b".into(), BTreeMap::new());
        assert_eq!(zfs.mountpoint("rpool/data"), "/rpool/data");
        assert_eq!(zfs.mountpoint("rpool/data/a/b"), "/srv/a/b");
        assert_eq!(zfs.mountpoint("rpool/ROOT/pve-1"), "/");
        assert_eq!(zfs.value("rpool/data/a/b", "compression"), "on");
        assert_eq!(zfs.value("rpool/data/a/b", "quota"), "0");
        assert_eq!(zfs.display("rpool/data/a/b", "quota"), "none");
        assert_eq!(zfs.display("rpool/data", "recordsize"), "128K");
    }
}
