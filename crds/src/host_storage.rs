//! The storage part of a ProxmoxHost: ZFS pools (made through PVE's API), datasets and
//! their properties, NFS exports (over SSH on the node), and the PVE storages on them.

use crate::common::PVE_ID_PATTERN;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole block device of the node, as PVE lists it (`/dev/sdb`, `/dev/disk/by-id/…`).
pub const DEVICE_PATTERN: &str = r"^/dev/[A-Za-z0-9_.:+-]+(/[A-Za-z0-9_.:+-]+)*$";
/// A dataset below a pool: `pool/child[/…]`, in ZFS's component alphabet.
pub const DATASET_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9_.:-]*(/[A-Za-z0-9][A-Za-z0-9_.:-]*)+$";
/// A pool or dataset (the pool's root included).
pub const ZFS_NAME_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9_.:-]*(/[A-Za-z0-9][A-Za-z0-9_.:-]*)*$";
/// An absolute path without spaces or quotes, no component starting with a dot (so no
/// `..`).
pub const ABSOLUTE_PATH_PATTERN: &str = r"^(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)+$|^/$";
/// A ZFS size: bytes, or a number with K/M/G/T.
pub const ZFS_SIZE_PATTERN: &str = r"^[0-9]+[KMGT]?$";
/// A ZFS size, or `none` (no limit).
pub const ZFS_LIMIT_PATTERN: &str = r"^([0-9]+[KMGT]?|none)$";
/// A server: an IP address or a host name.
pub const SERVER_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9.:-]*$";
/// An NFS client: `*`, an address or network, or a host name (wildcards allowed).
pub const NFS_CLIENT_PATTERN: &str =
    r"^(\*|[0-9A-Fa-f.:]+(/[0-9]{1,3})?|[A-Za-z0-9*?][A-Za-z0-9*?.-]*)$";
/// One NFS export option: `rw`, `no_subtree_check`, `fsid=1`, `sec=krb5p`.
pub const NFS_OPTION_PATTERN: &str = r"^[a-z_]+(=[A-Za-z0-9_:.@/]+)?$";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostStorage {
    /// Pools made from whole disks through PVE (`POST /nodes/{node}/disks/zfs`). A pool
    /// is created once; Phoenix never destroys one, nor changes its layout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub zfs_pools: Vec<ZfsPool>,
    /// Datasets below the pools, created with their parents and kept at their properties.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub datasets: Vec<ZfsDataset>,
    /// Directories the node exports over NFS (`/etc/exports.d/phoenix.exports`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub nfs_exports: Vec<NfsExport>,
    /// PVE storages on them (`/storage`), limited to this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub storages: Vec<PveStorage>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZfsPool {
    /// The pool's name (also a PVE storage ID when `addStorage`).
    #[schemars(regex(pattern = PVE_ID_PATTERN), length(max = 64))]
    pub name: String,
    pub raid_level: RaidLevel,
    /// Whole, unused disks.
    #[schemars(length(min = 1, max = 32), inner(regex(pattern = DEVICE_PATTERN)))]
    pub devices: Vec<String>,
    /// Sector size exponent (12 for 4K disks); PVE's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 9, max = 16))]
    pub ashift: Option<u8>,
    /// The pool root's compression, inherited by its datasets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// PVE also adds a `zfspool` storage named after the pool (images and container disks).
    #[serde(default)]
    pub add_storage: bool,
}

/// PVE's raid levels for a new pool.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RaidLevel {
    Single,
    Mirror,
    Raid10,
    Raidz,
    Raidz2,
    Raidz3,
}

impl RaidLevel {
    /// As PVE's API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            RaidLevel::Single => "single",
            RaidLevel::Mirror => "mirror",
            RaidLevel::Raid10 => "raid10",
            RaidLevel::Raidz => "raidz",
            RaidLevel::Raidz2 => "raidz2",
            RaidLevel::Raidz3 => "raidz3",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    On,
    Off,
    Lz4,
    Zstd,
    Gzip,
    Lzjb,
    Zle,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZfsDataset {
    /// `pool/child[/…]`; missing parents are created too.
    #[schemars(regex(pattern = DATASET_PATTERN), length(max = 200))]
    pub name: String,
    /// Properties set on it; those not named are inherited and left alone.
    #[serde(default)]
    pub properties: DatasetProperties,
}

/// The ZFS properties Phoenix sets, each optional.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// A power of two from 512 to 16M (`128K`, `1M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ZFS_SIZE_PATTERN))]
    pub recordsize: Option<String>,
    /// `100G`, or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ZFS_LIMIT_PATTERN))]
    pub quota: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ABSOLUTE_PATH_PATTERN), length(max = 200))]
    pub mountpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime: Option<OnOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xattr: Option<Xattr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acltype: Option<AclType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncMode>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    On,
    Off,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Xattr {
    On,
    Off,
    Sa,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclType {
    Off,
    Posix,
    Nfsv4,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    Standard,
    Always,
    Disabled,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NfsExport {
    /// The exported directory (a dataset's mountpoint or below one).
    #[schemars(regex(pattern = ABSOLUTE_PATH_PATTERN), length(max = 200))]
    pub path: String,
    #[schemars(length(min = 1, max = 32))]
    pub clients: Vec<NfsClient>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NfsClient {
    /// `10.0.0.0/24`, `10.0.0.21`, `*.internal.thinkheads.ai`, `*`.
    #[schemars(regex(pattern = NFS_CLIENT_PATTERN), length(max = 253))]
    pub host: String,
    /// exports(5) options; empty: `ro,sync,no_subtree_check`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(regex(pattern = NFS_OPTION_PATTERN)))]
    pub options: Vec<String>,
}

/// A PVE storage Phoenix adds and keeps (never removes: guests' disks may be on it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PveStorage {
    #[schemars(regex(pattern = PVE_ID_PATTERN), length(max = 64))]
    pub id: String,
    #[serde(rename = "type")]
    pub type_: StorageType,
    /// What PVE may keep on it.
    #[schemars(length(min = 1, max = 8))]
    pub content: Vec<StorageContent>,
    /// `zfspool`: the pool or dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ZFS_NAME_PATTERN), length(max = 200))]
    pub pool: Option<String>,
    /// `dir`: the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ABSOLUTE_PATH_PATTERN), length(max = 200))]
    pub path: Option<String>,
    /// `nfs`: the server's address or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SERVER_PATTERN), length(max = 253))]
    pub server: Option<String>,
    /// `nfs`: the exported path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ABSOLUTE_PATH_PATTERN), length(max = 200))]
    pub export: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    Zfspool,
    Dir,
    Nfs,
}

impl StorageType {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageType::Zfspool => "zfspool",
            StorageType::Dir => "dir",
            StorageType::Nfs => "nfs",
        }
    }
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum StorageContent {
    Images,
    Rootdir,
    Iso,
    Vztmpl,
    Backup,
    Snippets,
    Import,
}

impl StorageContent {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageContent::Images => "images",
            StorageContent::Rootdir => "rootdir",
            StorageContent::Iso => "iso",
            StorageContent::Vztmpl => "vztmpl",
            StorageContent::Backup => "backup",
            StorageContent::Snippets => "snippets",
            StorageContent::Import => "import",
        }
    }
}

/// What the storage area found and keeps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// The spec's pools present on the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
    #[serde(default)]
    pub datasets: u32,
    #[serde(default)]
    pub exports: u32,
    #[serde(default)]
    pub storages: u32,
    /// A pool being created: PVE's task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Hash of the exports file Phoenix last put on the node (drift when it differs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_exports: Option<String>,
}
