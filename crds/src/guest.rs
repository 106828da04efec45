//! The part of a guest's spec that containers and VMs share, flattened into both.

use crate::common::*;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Placement, sizing, lifecycle policies and in-guest provisioning common to LxcGuest and
/// VmGuest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestCommon {
    /// The ProxmoxCluster to use; may be left out when there is only one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<LocalRef>,
    /// The PVE node to run on. Leave out and set `placement` to let Phoenix choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PVE_ID_PATTERN))]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[schemars(range(min = 1, max = 8192))]
    #[serde(default = "default_cores")]
    pub cores: u32,
    /// Memory in MiB.
    #[schemars(range(min = 16))]
    #[serde(default = "default_memory")]
    pub memory: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<PveTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PVE_ID_PATTERN))]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Startup>,
    /// PVE's `protection` flag: while set, PVE refuses to remove the guest.
    #[serde(default)]
    pub protection: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<Provisioning>,
    /// At most 32, each checked on its own schedule.
    // Bounded because kube-apiserver's CEL cost budget counts every entry's rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub health_checks: Vec<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<Snapshots>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<Firewall>,
    /// Phoenix objects that must be Ready before this guest is created or changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyRef>,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    #[serde(default)]
    pub drift_policy: DriftPolicy,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// Take over an existing guest with this vmid that Phoenix did not create, after
    /// checking it matches the spec, without restarting it.
    #[serde(default)]
    pub adopt: bool,
    /// What adoption may change: by default nothing but the ownership marker (a guest that
    /// differs from the spec is reported, not adopted). `protection` is never changed.
    #[serde(default)]
    pub adoption_policy: AdoptionPolicy,
}

impl GuestCommon {
    /// Whether the guest is on ProxmoxCluster `cluster` (without `clusterRef`: on the only
    /// one there is).
    pub fn is_on(&self, cluster: &str) -> bool {
        self.cluster_ref.as_ref().is_none_or(|c| c.name == cluster)
    }
}

/// What adopting a guest made outside Phoenix may change in it.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum AdoptionPolicy {
    /// Adopt only a guest that already matches the spec; report the keys that differ.
    #[default]
    RequireMatch,
    /// Also apply the differences PVE applies live (never `protection`, never a restart).
    ApplyLiveChanges,
}

/// A PVE tag.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct PveTag(#[schemars(regex(pattern = PVE_TAG_PATTERN), length(max = 64))] pub String);

fn default_cores() -> u32 {
    1
}
fn default_memory() -> u32 {
    512
}

/// Clone from an existing template guest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSource {
    /// VMID of the template to clone, e.g. 900 or 9000.
    #[schemars(range(min = 100, max = 999999999))]
    pub vmid: u32,
    /// A full copy (independent of the template) rather than a linked clone.
    #[serde(default = "default_true")]
    pub full: bool,
    /// Target storage of a full clone; defaults to the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PVE_ID_PATTERN))]
    pub storage: Option<String>,
}
