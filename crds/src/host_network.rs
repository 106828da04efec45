//! The network part of a ProxmoxHost: Linux bridges through PVE's API (changes staged in
//! `interfaces.new`, then applied), and the node's own firewall.

use crate::common::{FirewallRule, IPV4_PATTERN, SECURITY_GROUP_PATTERN, SINGLE_LINE_PATTERN};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Linux bridge's name as PVE accepts it for guests' NICs.
pub const BRIDGE_PATTERN: &str = r"^vmbr[0-9]{1,4}$";
/// A network interface of the node (`eno1`, `enp3s0f1`, `bond0`, `eno1.20`).
pub const IFACE_PATTERN: &str = r"^[a-zA-Z][a-zA-Z0-9_.-]{0,19}$";
/// An IPv4 address with its prefix length.
pub const IPV4_CIDR_PATTERN: &str = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])$";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostNetwork {
    /// Bridges Phoenix creates or keeps at these settings; others are left alone, and a
    /// bridge leaving the spec stays (guests may be on it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub bridges: Vec<Bridge>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bridge {
    #[schemars(regex(pattern = BRIDGE_PATTERN))]
    pub name: String,
    /// The interfaces it bridges; empty: an internal bridge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(regex(pattern = IFACE_PATTERN)))]
    pub ports: Vec<String>,
    /// The node's address on it; absent: the bridge has none (method manual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IPV4_CIDR_PATTERN))]
    pub cidr: Option<String>,
    /// The node's default gateway (one bridge of the node at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IPV4_PATTERN))]
    pub gateway: Option<String>,
    /// Guests' NICs may carry VLAN tags.
    #[serde(default)]
    pub vlan_aware: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SINGLE_LINE_PATTERN), length(max = 120))]
    pub comment: Option<String>,
}

/// The node's own firewall (`/nodes/{node}/firewall`): whether it is on and its rules.
/// It takes effect only while the datacenter firewall is enabled.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeFirewall {
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Security groups (the ProxmoxCluster's `firewall.securityGroups`) applied before
    /// `rules`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(regex(pattern = SECURITY_GROUP_PATTERN), length(min = 2, max = 18)))]
    pub security_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub rules: Vec<FirewallRule>,
}

fn enabled() -> bool {
    true
}

/// What the network area found and keeps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// The spec's bridges as they run.
    #[serde(default)]
    pub bridges: u32,
    /// Hash of PVE's pending-changes diff right after Phoenix staged its changes: pending
    /// changes are Phoenix's own (and may be applied) only while the diff is that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<String>,
    /// PVE's task applying the staged changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}
