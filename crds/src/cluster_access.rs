//! PVE's users, groups and ACL entries as a ProxmoxCluster declares them (`spec.access`),
//! and what its controller remembers of them (`status.access`). The patterns are PVE's own
//! (`pve-userid`, `pve-groupid`, `pve-roleid`, `check_path`), so the API server refuses what
//! PVE would, with the field's path.

use crate::common::SINGLE_LINE_PATTERN;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// PVE's user id, `NAME@REALM` (`pve-userid`), without the characters that would change
/// the meaning of the API path it becomes part of (`?`, `#`, `%`).
pub const USER_ID_PATTERN: &str = r"^[^\s:/?#%@]+@[A-Za-z][A-Za-z0-9.\-_]+$";
/// PVE's group and role ids.
pub const ACCESS_NAME_PATTERN: &str = r"^[A-Za-z0-9.\-_]+$";
/// The ACL paths PVE knows (`check_path`): `/`, `/vms/101`, `/storage/fastData`,
/// `/pool/NAME`, `/nodes/NAME`, `/access/groups/NAME`, `/sdn/...`, `/mapping/...`.
pub const ACL_PATH_PATTERN: &str = r"^/(access(/groups(/[A-Za-z0-9.\-_]+)?|/realm(/[A-Za-z0-9.\-_]+)?)?|nodes(/[A-Za-z0-9.\-_]+)?|pool(/[A-Za-z0-9.\-_]+){0,3}|sdn(/[A-Za-z0-9.\-_]+){0,4}|storage(/[A-Za-z0-9.\-_]+)?|vms(/[1-9][0-9]{2,})?|mapping(/[A-Za-z0-9.\-_]+){0,2})?$";
/// PVE's `email-opt` format.
pub const EMAIL_PATTERN: &str =
    r"^[A-Za-z0-9_+~\-]+(\.[A-Za-z0-9_+~\-]+)*@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*$";

/// Users, groups and ACL entries Phoenix keeps in PVE. It adds and updates them, and removes
/// only the ACL entries it added once they leave this list; users and groups that leave it
/// stay (the condition `AccessReady` names them). Needs `phoenix setup --manage-access`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAccess {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub groups: Vec<AccessGroup>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub users: Vec<AccessUser>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub acls: Vec<AccessAcl>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessGroup {
    #[schemars(regex(pattern = ACCESS_NAME_PATTERN), length(min = 1, max = 64))]
    pub id: String,
    /// Absent: PVE's comment is left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SINGLE_LINE_PATTERN), length(max = 2048))]
    pub comment: Option<String>,
}

/// A user; Phoenix never sets a password (the person logs in through their realm, or with
/// a password an administrator sets by hand).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessUser {
    /// `NAME@REALM`, e.g. `alice@pve`.
    #[schemars(regex(pattern = USER_ID_PATTERN), length(min = 3, max = 64))]
    pub id: String,
    /// Every group the user is in (groups added by hand are taken away); each must be in
    /// `groups` or exist in PVE.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = ACCESS_NAME_PATTERN)))]
    pub groups: Vec<String>,
    /// Absent: PVE's comment is left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SINGLE_LINE_PATTERN), length(max = 2048))]
    pub comment: Option<String>,
    /// Absent: PVE's email is left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = EMAIL_PATTERN), length(max = 254))]
    pub email: Option<String>,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// `role` granted on `path` to one group or one user (exactly one of them).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessAcl {
    /// e.g. `/`, `/vms/101`, `/storage/fastData`, `/pool/lab`.
    #[schemars(regex(pattern = ACL_PATH_PATTERN), length(max = 256))]
    pub path: String,
    /// A PVE role, built in (`PVEVMAdmin`, `PVEAuditor`...) or made by hand.
    #[schemars(regex(pattern = ACCESS_NAME_PATTERN), length(min = 1, max = 64))]
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ACCESS_NAME_PATTERN), length(min = 1, max = 64))]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = USER_ID_PATTERN), length(min = 3, max = 64))]
    pub user: Option<String>,
    /// Whether the role also holds below `path`.
    #[serde(default = "default_true")]
    pub propagate: bool,
}

fn default_true() -> bool {
    true
}

/// What the controller keeps of `spec.access` between passes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAccessStatus {
    /// The groups and users it keeps or kept (one that left the spec is listed while it
    /// exists in PVE, so that the condition can say it stays).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// The ACL entries it added: the only ones it removes, once they leave the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acls: Vec<AccessAcl>,
}

impl ClusterAccessStatus {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.users.is_empty() && self.acls.is_empty()
    }
}
