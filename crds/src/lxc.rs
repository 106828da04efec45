//! LxcGuest: one Proxmox VE container.

use crate::common::*;
use crate::guest::{CloneSource, GuestCommon};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One LXC container on a Proxmox VE cluster.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "phoenix.thinkheads.ai",
    version = "v1alpha1",
    kind = "LxcGuest",
    namespaced,
    status = "LxcGuestStatus",
    shortname = "lxc",
    category = "phoenix",
    doc = "One LXC container on a Proxmox VE cluster",
    printcolumn(name = "VMID", type_ = "integer", json_path = ".spec.vmid"),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "IP", type_ = "string", json_path = ".status.ip"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Healthy",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Healthy\")].status"
    ),
    printcolumn(
        name = "Features",
        type_ = "string",
        json_path = ".status.features[*].name",
        priority = 1
    ),
    printcolumn(
        name = "Step",
        type_ = "string",
        json_path = ".status.step",
        priority = 1
    ),
    printcolumn(
        name = "Hostname",
        type_ = "string",
        json_path = ".spec.hostname",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!(has(self.node) && has(self.placement))").message("node and placement are mutually exclusive"))]
#[x_kube(validation = Rule::new("!(self.template && has(self.snapshots))").message("a template cannot have snapshots: PVE refuses to convert a guest that has any, and the template itself is the post-setup image"))]
#[serde(rename_all = "camelCase")]
pub struct LxcGuestSpec {
    /// Proxmox VMID, unique in the cluster; cannot change.
    #[schemars(range(min = 100, max = 999999999))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("vmid is immutable"))]
    pub vmid: u32,
    pub source: LxcSource,
    /// Convert the container into a template once provisioned (e.g. 900 Copy-Base).
    #[serde(default)]
    pub template: bool,
    #[schemars(regex(pattern = HOSTNAME_PATTERN), length(max = 253))]
    pub hostname: String,
    /// Swap in MiB.
    #[serde(default = "default_swap")]
    #[schemars(range(min = 0))]
    pub swap: u32,
    pub rootfs: Volume,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub network: Vec<LxcNetwork>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub mount_points: Vec<MountPoint>,
    /// Container features (PVE's `features`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<LxcFeatures>,
    #[serde(default = "default_true")]
    pub unprivileged: bool,
    /// Device nodes passed through (PVE's `devN`), e.g. `/dev/nvidia0` for a GPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DevicePassthrough>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Public keys for root inside the container, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = SINGLE_LINE_PATTERN)))]
    pub ssh_public_keys: Vec<String>,
    #[serde(flatten)]
    pub common: GuestCommon,
}

fn default_swap() -> u32 {
    512
}

/// Where the container comes from: exactly one of an OS template volume or a clone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.ostemplate) != has(self.clone)").message("exactly one of ostemplate or clone must be set"))]
pub struct LxcSource {
    /// An appliance template volume, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9\-_.]*:vztmpl/.+$"))]
    pub ostemplate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneSource>,
}

/// A container NIC (PVE's `netN`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LxcNetwork {
    /// Interface name inside the container.
    #[serde(default = "default_eth")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9_.\-]{0,14}$"))]
    pub name: String,
    #[serde(default = "default_bridge")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9_.\-]{0,14}$"))]
    pub bridge: String,
    /// `dhcp`, `manual`, or an address with prefix length such as `10.0.0.103/24`.
    #[schemars(regex(pattern = IPV4_CONFIG_PATTERN))]
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IPV4_PATTERN))]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IPV6_CONFIG_PATTERN))]
    pub ip6: Option<String>,
    /// VLAN tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4094))]
    pub vlan: Option<u16>,
    /// Enable the PVE firewall on this interface.
    #[serde(default)]
    pub firewall: bool,
    /// Fixed MAC; generated by PVE and then kept when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"))]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 576, max = 65535))]
    pub mtu: Option<u32>,
}

fn default_eth() -> String {
    "eth0".into()
}
pub(crate) fn default_bridge() -> String {
    "vmbr0".into()
}

/// A mount point (PVE's `mpN`): a new volume on a storage, or a host path bind mount
/// (such as the NFS share).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.volume) != has(self.hostPath)").message("exactly one of volume or hostPath must be set"))]
pub struct MountPoint {
    /// N of `mpN`.
    #[schemars(range(min = 0, max = 255))]
    pub index: u32,
    /// Path inside the container (no `,` or `=`: it is part of PVE's `mpN` string).
    #[schemars(regex(pattern = PVE_PATH_PATTERN))]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<Volume>,
    /// A path on the node (no `,` or `=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PVE_PATH_PATTERN))]
    pub host_path: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    /// Include in vzdump backups.
    #[serde(default)]
    pub backup: bool,
}

/// PVE container features.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LxcFeatures {
    #[serde(default)]
    pub nesting: bool,
    #[serde(default)]
    pub keyctl: bool,
    #[serde(default)]
    pub fuse: bool,
    /// Allowed filesystem types to mount, e.g. `nfs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[a-zA-Z0-9_]+$")))]
    pub mount: Vec<String>,
}

/// A device node passed into the container (PVE's `devN`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct DevicePassthrough {
    /// A device node (no `,` or `=`: it is part of PVE's `devN` string).
    #[schemars(regex(pattern = r"^/dev/[^,=\x00-\x1F\x7F]+$"))]
    pub path: String,
    /// Octal access mode, e.g. `0666`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^0?[0-7]{3}$"))]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// What the controller observed of the container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LxcGuestStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    #[serde(flatten)]
    pub guest: GuestObservation,
}
