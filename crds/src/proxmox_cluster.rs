//! ProxmoxCluster: the connection to one Proxmox VE cluster (cluster-scoped).

use crate::cluster_access::{ClusterAccess, ClusterAccessStatus};
use crate::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How Phoenix reaches a Proxmox VE cluster, and the platform-wide settings that go with it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "phoenix.thinkheads.ai",
    version = "v1alpha1",
    kind = "ProxmoxCluster",
    status = "ProxmoxClusterStatus",
    shortname = "pxc",
    category = "phoenix",
    doc = "The connection to one Proxmox VE cluster and its platform-wide settings",
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".spec.endpoint"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version"),
    printcolumn(name = "Nodes", type_ = "integer", json_path = ".status.nodeCount"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxClusterSpec {
    /// The PVE API, e.g. `https://10.0.0.13:8006`.
    #[schemars(regex(pattern = r"^https://[^/]+(:[0-9]+)?/?$"))]
    pub endpoint: String,
    /// Secret with the API token: keys `tokenId` (`USER@REALM!NAME`) and `tokenSecret`.
    pub credentials_secret_ref: SecretRef,
    #[serde(default)]
    pub tls: ClusterTls,
    /// Nodes Phoenix may use; empty means every node the API lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<ClusterNode>,
    #[serde(default)]
    pub defaults: ClusterDefaults,
    /// Concurrent PVE tasks Phoenix starts per node (clones, creates, starts...).
    #[serde(default = "default_task_budget")]
    #[schemars(range(min = 1, max = 64))]
    pub task_budget_per_node: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<ClusterAcme>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshAccess>,
    /// The namespaces whose objects may use this cluster; empty: every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_namespaces: Vec<String>,
    /// Who may use host-level powers — hostPath mounts, `/dev` devices, privileged
    /// containers, PCI passthrough, cloning a template another namespace made, importing a
    /// volume that is not an image; absent: every allowed namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_powers: Option<HostPowers>,
    /// The datacenter firewall (one per PVE cluster, hence here rather than on a kind of
    /// its own that two objects could both claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<DatacenterFirewall>,
    /// PVE users, groups and ACL entries Phoenix keeps (one set per PVE cluster, as the
    /// firewall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<ClusterAccess>,
}

/// The datacenter firewall: its options and rules (as a guest's: `enabled`, `policyIn`,
/// `policyOut`, `rules`; `enabled: true` is refused (`WouldLockOut`) unless `management`
/// holds the address Phoenix reaches PVE from), PVE's `management` IP set, and the IP sets
/// Phoenix derives per role (`phoenix-traefik`: the Traefik guests routes go through;
/// `phoenix-gateway`: the Nginx gateways of public routes), which rules may name as
/// `+phoenix-traefik` so that a changed address is one IP-set entry, not a rule rewrite.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatacenterFirewall {
    #[serde(flatten)]
    pub firewall: Firewall,
    /// Addresses or networks (`10.0.0.0/24`) that always reach PVE's web UI, API and SSH
    /// (PVE's `management` IP set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = CIDR_PATTERN)))]
    pub management: Vec<String>,
    /// Names for addresses or networks (PVE's aliases), usable as a rule's source or dest.
    /// Phoenix adds and keeps these; others are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub aliases: Vec<FirewallAlias>,
    /// Named rule sets (PVE's security groups) that the datacenter, nodes and guests apply
    /// with `securityGroups`. Phoenix adds these and keeps their rules; others are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub security_groups: Vec<SecurityGroup>,
}

/// A named address or network.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirewallAlias {
    #[schemars(regex(pattern = FIREWALL_NAME_PATTERN), length(max = 64))]
    pub name: String,
    #[schemars(regex(pattern = CIDR_PATTERN))]
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SINGLE_LINE_PATTERN), length(max = 200))]
    pub comment: Option<String>,
}

/// A named set of rules.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroup {
    #[schemars(regex(pattern = SECURITY_GROUP_PATTERN), length(min = 2, max = 18))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SINGLE_LINE_PATTERN), length(max = 200))]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub rules: Vec<FirewallRule>,
}

/// An IPv4 or IPv6 address, with or without a prefix length.
pub const CIDR_PATTERN: &str = r"^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$";

/// The namespaces whose guests may use host-level powers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostPowers {
    #[serde(default)]
    pub namespaces: Vec<String>,
}

fn default_task_budget() -> u32 {
    4
}

/// A Secret in a given namespace (the cluster object has none of its own).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default = "default_secret_namespace")]
    pub namespace: String,
}

fn default_secret_namespace() -> String {
    "phoenix-system".into()
}

/// How the PVE certificate is trusted; exactly one way, or PVE's certificate is checked
/// against the system roots.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.caBundle), has(self.fingerprintSha256), self.insecureSkipTlsVerify].filter(x, x).size() <= 1").message("set at most one of caBundle, fingerprintSha256, insecureSkipTlsVerify"))]
pub struct ClusterTls {
    /// PEM CA bundle PVE's certificate chains to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// SHA-256 fingerprint of PVE's certificate, as the PVE UI shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SHA256_FINGERPRINT_PATTERN))]
    pub fingerprint_sha256: Option<String>,
    /// Accept any certificate. Logged as a warning on every connect.
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNode {
    #[schemars(regex(pattern = PVE_ID_PATTERN))]
    pub name: String,
    /// Address for SSH (guest exec); defaults to the endpoint's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Overrides `taskBudgetPerNode` for this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub task_budget: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDefaults {
    #[serde(default = "default_storage")]
    #[schemars(regex(pattern = PVE_ID_PATTERN))]
    pub storage: String,
    #[serde(default = "default_bridge_name")]
    pub bridge: String,
    /// Storage holding appliance templates and ISOs.
    #[serde(default = "default_template_storage")]
    #[schemars(regex(pattern = PVE_ID_PATTERN))]
    pub template_storage: String,
}

impl Default for ClusterDefaults {
    fn default() -> Self {
        Self {
            storage: default_storage(),
            bridge: default_bridge_name(),
            template_storage: default_template_storage(),
        }
    }
}

fn default_storage() -> String {
    "local-zfs".into()
}
fn default_bridge_name() -> String {
    "vmbr0".into()
}
fn default_template_storage() -> String {
    "local".into()
}

/// The Step-CA ACME provisioner used by Certificates that name this cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAcme {
    /// e.g. `https://10.0.0.10:9000/acme/acme/directory`.
    #[schemars(regex(pattern = r"^https://.+$"))]
    pub directory_url: String,
    /// SHA-256 fingerprint of the Step-CA root, as `step ca bootstrap --fingerprint` takes.
    #[schemars(regex(pattern = SHA256_FINGERPRINT_PATTERN))]
    pub root_fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Other ACME directories a Certificate may name in its own `issuer.acme`; none by
    /// default: every Certificate of the cluster comes from its Step-CA. Certificates from
    /// these never publish their CA root as the platform's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^https://.+$")))]
    pub allowed_directories: Vec<String>,
}

/// SSH to the PVE nodes, for `pct exec` / `pct push` into containers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SshAccess {
    #[serde(default = "default_ssh_user")]
    pub user: String,
    #[serde(default = "default_ssh_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Secret with `id_ed25519` (the private key) and `known_hosts` (pinned host keys).
    pub secret_ref: SecretRef,
}

fn default_ssh_user() -> String {
    "root".into()
}
fn default_ssh_port() -> u16 {
    22
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxClusterStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storages: Vec<StorageStatus>,
    /// What Phoenix keeps of `spec.access`: the ACL entries it added, the users and groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<ClusterAccessStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub name: String,
    /// `online` or `offline`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_memory_mib: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    pub name: String,
    /// `dir`, `zfspool`, `nfs`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// PVE content types: `images`, `rootdir`, `vztmpl`, `iso`, `snippets`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}
