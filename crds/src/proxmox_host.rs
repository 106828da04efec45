//! ProxmoxHost: one PVE node's own setup (cluster-scoped, one per node): its time zone and
//! resolver, storage (ZFS pools, datasets, NFS exports, PVE storages), bridges and firewall,
//! system (packages, locale, AppArmor, NVIDIA), and dnsmasq serving the platform's names,
//! derived from the guests and routes.

use crate::common::*;
use crate::host_network::{HostNetwork, NetworkStatus, NodeFirewall};
use crate::host_storage::{HostStorage, StorageStatus};
use crate::host_system::{HostSystem, SystemStatus};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One Proxmox VE node's host-level setup, kept in step continuously.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "phoenix.thinkheads.ai",
    version = "v1alpha1",
    kind = "ProxmoxHost",
    status = "ProxmoxHostStatus",
    shortname = "pxh",
    category = "phoenix",
    doc = "One Proxmox VE node's host setup: settings, storage, network, firewall, system, and dnsmasq with the platform's names",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Settings",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"NodeSettingsReady\")].status"
    ),
    printcolumn(
        name = "Storage",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"StorageReady\")].status"
    ),
    printcolumn(
        name = "Network",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"NetworkReady\")].status"
    ),
    printcolumn(
        name = "Firewall",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"FirewallReady\")].status"
    ),
    printcolumn(
        name = "System",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"SystemReady\")].status"
    ),
    printcolumn(
        name = "DNS",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"DnsReady\")].status"
    ),
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
pub struct ProxmoxHostSpec {
    /// The ProxmoxCluster this node belongs to.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable: a host object is one node of one cluster"))]
    pub cluster_ref: LocalRef,
    /// The PVE node's name; defaults to the object's name.
    #[x_kube(validation = Rule::new("self == oldSelf").message("node is immutable: a host object is one node"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PVE_ID_PATTERN), length(max = 63))]
    pub node: Option<String>,
    /// What happens when the host differs from the spec.
    #[serde(default)]
    pub drift_policy: DriftPolicy,
    /// The node's time zone (`PUT /nodes/{node}/time`), e.g. `America/New_York`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TIMEZONE_PATTERN), length(max = 64))]
    pub timezone: Option<String>,
    /// The node's own resolver (`PUT /nodes/{node}/dns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<NodeResolver>,
    /// ZFS pools, datasets, NFS exports and PVE storages of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<HostStorage>,
    /// Bridges of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<HostNetwork>,
    /// The node's own firewall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<NodeFirewall>,
    /// Packages, locale, AppArmor profiles, NVIDIA driver, Linux accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<HostSystem>,
    /// dnsmasq on the node, serving every guest's and route's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnsmasq: Option<Dnsmasq>,
}

/// An IANA zone name: `Area/Location`, or `UTC`.
pub const TIMEZONE_PATTERN: &str = r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$";

/// An IPv4 or IPv6 address (no prefix).
pub const IP_PATTERN: &str = r"^[0-9A-Fa-f.:]+$";

/// `/etc/resolv.conf` of the node, as PVE sets it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeResolver {
    /// The search domain.
    #[schemars(regex(pattern = HOSTNAME_PATTERN), length(max = 253))]
    pub search: String,
    /// Up to three name servers, in order.
    #[schemars(length(min = 1, max = 3), inner(regex(pattern = IP_PATTERN)))]
    pub servers: Vec<String>,
}

/// dnsmasq on the node: names of the platform answered from records Phoenix keeps in a
/// directory dnsmasq watches; every other name forwarded upstream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dnsmasq {
    /// The platform's domain: every guest answers as HOSTNAME and HOSTNAME.DOMAIN, every
    /// route as its host; names under it are never forwarded.
    #[schemars(regex(pattern = HOSTNAME_PATTERN), length(max = 253))]
    pub domain: String,
    /// Where dnsmasq answers; empty: every address of the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(regex(pattern = IP_PATTERN)))]
    pub listen_addresses: Vec<String>,
    /// Servers asked for names outside the domain, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(regex(pattern = IP_PATTERN)))]
    pub upstreams: Vec<String>,
    /// Every name under the domain without a record of its own answers this address
    /// (typically Traefik's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IP_PATTERN))]
    pub wildcard: Option<String>,
    /// Records beyond the derived ones (the host itself, devices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub records: Vec<DnsRecord>,
}

/// One name and its address.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecord {
    #[schemars(regex(pattern = HOSTNAME_PATTERN), length(max = 253))]
    pub name: String,
    #[schemars(regex(pattern = IP_PATTERN))]
    pub address: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxHostStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The PVE node this object manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsStatus>,
}

/// What dnsmasq serves.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsStatus {
    /// Names answered from Phoenix's records.
    pub records: u32,
    /// The record files in the watched directory (one per guest or route).
    pub files: u32,
    /// Guests and routes without an address yet (no record until they have one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
    /// One hash of the config and record files Phoenix last put on the node: files that
    /// differ from it were changed on the node, not by a change of the objects (drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_digest: Option<String>,
}
