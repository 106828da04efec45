//! VmGuest: one Proxmox VE virtual machine (QEMU), including cloud-image templates.

use crate::common::*;
use crate::guest::{CloneSource, GuestCommon};
use crate::lxc::default_bridge;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One QEMU virtual machine on a Proxmox VE cluster.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "phoenix.thinkheads.ai",
    version = "v1alpha1",
    kind = "VmGuest",
    namespaced,
    status = "VmGuestStatus",
    shortname = "vm",
    category = "phoenix",
    doc = "One QEMU virtual machine on a Proxmox VE cluster, or a template built from a cloud image",
    printcolumn(name = "VMID", type_ = "integer", json_path = ".spec.vmid"),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "IP", type_ = "string", json_path = ".status.ip"),
    printcolumn(name = "Swarm", type_ = "string", json_path = ".status.swarm.role"),
    printcolumn(
        name = "Swarm State",
        type_ = "string",
        json_path = ".status.swarm.state",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Agent",
        type_ = "string",
        json_path = ".status.agent",
        priority = 1
    ),
    printcolumn(
        name = "Generation",
        type_ = "integer",
        json_path = ".status.templateGeneration",
        priority = 1
    ),
    printcolumn(
        name = "Step",
        type_ = "string",
        json_path = ".status.step",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!(has(self.node) && has(self.placement))").message("node and placement are mutually exclusive"))]
#[x_kube(validation = Rule::new("!(self.template && has(self.swarm))").message("a template cannot have a swarm role"))]
#[serde(rename_all = "camelCase")]
pub struct VmGuestSpec {
    /// Proxmox VMID, unique in the cluster; cannot change.
    #[schemars(range(min = 100, max = 999999999))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("vmid is immutable"))]
    pub vmid: u32,
    /// The VM's name in PVE (a DNS name).
    #[schemars(regex(pattern = HOSTNAME_PATTERN), length(max = 253))]
    pub name: String,
    pub source: VmSource,
    /// Build this VM as a template (e.g. 9000) instead of running it.
    #[serde(default)]
    pub template: bool,
    #[serde(default = "default_sockets")]
    #[schemars(range(min = 1, max = 4))]
    pub sockets: u32,
    /// QEMU CPU type, e.g. `host` or `x86-64-v2-AES` (a name alone: PVE's `cpu` property
    /// string takes no further keys from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$"), length(max = 64))]
    pub cpu_type: Option<String>,
    /// Features PVE may change live; memory hotplug also needs NUMA, which Phoenix enables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hotplug: Vec<Hotplug>,
    /// The boot disk (from the image or the template) is the first entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 30))]
    pub disks: Vec<VmDisk>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub network: Vec<VmNetwork>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInit>,
    #[serde(default)]
    pub agent: Agent,
    /// PCI devices passed through (PVE's `hostpci0` to `hostpci15`), such as a GPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub pci_devices: Vec<PciDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<Swarm>,
    #[serde(flatten)]
    pub common: GuestCommon,
}

fn default_sockets() -> u32 {
    1
}

/// Where the VM comes from: exactly one of a cloud image or a clone of a template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.cloudImage) != has(self.clone)").message("exactly one of cloudImage or clone must be set"))]
pub struct VmSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_image: Option<CloudImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneSource>,
}

/// A cloud image imported as the boot disk (`import-from`); exactly one of volume or url.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.volume) != has(self.url)").message("exactly one of volume or url must be set"))]
pub struct CloudImage {
    /// An image already on a storage, e.g. `local:import/noble-server-cloudimg-amd64.qcow2`.
    /// It goes into the boot disk's `import-from=`: no `,`, `=` or white space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9\-_.]*:[^\s,=]+$"))]
    pub volume: Option<String>,
    /// Downloaded by PVE (`download-url`) into `downloadStorage`; the file name (the
    /// path's last segment, which goes into `import-from=`) has no `,` or `=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://([^\s?#]*/)?[^\s/?#,=]*([?#]\S*)?$"))]
    pub url: Option<String>,
    /// Checksum of the download, `sha256:<hex>` or `sha512:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(sha256|sha512):[0-9a-fA-F]+$"))]
    pub checksum: Option<String>,
    #[serde(default = "default_download_storage")]
    #[schemars(regex(pattern = PVE_ID_PATTERN))]
    pub download_storage: String,
}

fn default_download_storage() -> String {
    "local".into()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Hotplug {
    Cpu,
    Memory,
    Disk,
    Network,
    Usb,
}

/// A VM disk (`scsiN`, `virtioN`, `sataN`); the boot disk is resized to `size`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmDisk {
    #[schemars(regex(
        pattern = r"^(scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5])|sata[0-5]|ide[0-3])$"
    ))]
    pub slot: String,
    #[schemars(regex(pattern = PVE_ID_PATTERN))]
    pub storage: String,
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub size: String,
    #[serde(default)]
    pub ssd: bool,
    #[serde(default)]
    pub discard: bool,
    #[serde(default)]
    pub iothread: bool,
}

/// A VM NIC (PVE's `netN`) and its cloud-init address (`ipconfigN`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmNetwork {
    /// N of `netN`.
    #[schemars(range(min = 0, max = 31))]
    pub index: u32,
    #[serde(default)]
    pub model: NicModel,
    #[serde(default = "default_bridge")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9_.\-]{0,14}$"))]
    pub bridge: String,
    /// `dhcp` or an address with prefix length, handed over by cloud-init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IPV4_CONFIG_PATTERN))]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IPV4_PATTERN))]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4094))]
    pub vlan: Option<u16>,
    #[serde(default)]
    pub firewall: bool,
    /// Fixed MAC; generated by PVE on create and then kept stable by Phoenix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"))]
    pub mac: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NicModel {
    #[default]
    Virtio,
    E1000,
    Vmxnet3,
}

/// Cloud-init settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudInit {
    /// Default user (PVE's `ciuser`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_-]*$"), length(max = 32))]
    pub user: Option<String>,
    /// Secret keys each holding one or more authorized keys (PVE's `sshkeys`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys_secret_refs: Vec<SecretKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// User data written as a snippet (`cicustom: user=...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<ConfigMapKeyRef>,
    /// A storage with `snippets` content for the user data.
    #[serde(default = "default_snippet_storage")]
    #[schemars(regex(pattern = PVE_ID_PATTERN))]
    pub snippet_storage: String,
    /// Storage of the cloud-init drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PVE_ID_PATTERN))]
    pub drive_storage: Option<String>,
}

fn default_snippet_storage() -> String {
    "local".into()
}

/// The QEMU guest agent: IPs and exec go through it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long to wait for the agent after a start before reporting it missing.
    #[serde(default = "default_agent_timeout")]
    #[schemars(range(min = 10))]
    pub timeout_seconds: u32,
}

impl Default for Agent {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout_seconds: default_agent_timeout(),
        }
    }
}

fn default_agent_timeout() -> u32 {
    300
}

/// A PCI device by cluster resource mapping or raw id.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.mapping) != has(self.id)").message("exactly one of mapping or id must be set"))]
pub struct PciDevice {
    /// A cluster PCI resource mapping's id (PVE's `mapping=` key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9_\-]*$"), length(max = 128))]
    pub mapping: Option<String>,
    /// Raw PCI id such as `0000:01:00` (needs root@pam on PVE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(\.[0-7])?$"))]
    pub id: Option<String>,
    #[serde(default)]
    pub pcie: bool,
    #[serde(default)]
    pub primary_gpu: bool,
}

/// This VM's part in a Docker Swarm.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.role == 'manager' || has(self.managerRef)").message("a worker must name the manager it joins in managerRef"))]
pub struct Swarm {
    pub role: SwarmRole,
    /// The VmGuest (manager) a worker joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_ref: Option<LocalRef>,
    /// Address advertised to the swarm; defaults to the VM's first IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IPV4_PATTERN))]
    pub advertise_address: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SwarmRole {
    Manager,
    Worker,
}

/// What the controller observed of the VM.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmGuestStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    #[serde(flatten)]
    pub guest: GuestObservation,
    /// `running`, `starting` (waiting for it after a start), `notResponding` (silent past
    /// `agent.timeoutSeconds`), or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// For templates: bumped each time a changed source builds a new template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<SwarmStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `active` (in the swarm), `pending` (joining), or `left` (leaving before deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}
