//! The system part of a ProxmoxHost: packages, locale, AppArmor profiles, the NVIDIA
//! driver and Linux accounts, each applied on the node by a script run under a lock, once per content hash
//! (the in-guest features' mechanism).

use crate::common::AppliedFeature;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Debian package name.
/// Not ending in `-`: apt reads `name-` as "remove name".
pub const PACKAGE_PATTERN: &str = r"^[a-z0-9][a-z0-9+.-]*[a-z0-9+.]$";
/// A glibc locale: `en_US.UTF-8`, `de_DE@euro`.
pub const LOCALE_PATTERN: &str = r"^[A-Za-z]{2,3}(_[A-Z]{2})?(\.[A-Za-z0-9-]+)?(@[a-z]+)?$";
/// A kernel module name.
pub const PLAIN_NAME_PATTERN: &str = r"^[a-z0-9][a-z0-9_.-]*$";
/// A profile Phoenix owns under /etc/apparmor.d: never one of the distribution's.
pub const PROFILE_NAME_PATTERN: &str = r"^phoenix-[a-z0-9][a-z0-9_.-]*$";
/// A Linux user or group name as Debian's `adduser` accepts it by default.
pub const ACCOUNT_PATTERN: &str = r"^[a-z_][a-z0-9_-]{0,31}$";
/// A login shell.
pub const SHELL_PATTERN: &str = r"^(/[A-Za-z0-9_.-]+)+$";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostSystem {
    /// Debian packages installed (never removed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128), inner(regex(pattern = PACKAGE_PATTERN), length(max = 64)))]
    pub packages: Vec<String>,
    /// The system locale (generated and set as `LANG`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = LOCALE_PATTERN))]
    pub locale: Option<String>,
    /// AppArmor profiles loaded on the node (`/etc/apparmor.d/NAME`), e.g. for nested
    /// containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub apparmor_profiles: Vec<AppArmorProfile>,
    /// The NVIDIA driver on the node, for GPU passthrough to containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvidia: Option<HostNvidia>,
    /// Linux groups on the node (created when missing; never removed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub groups: Vec<LinuxGroup>,
    /// Linux users on the node (created when missing and added to their groups; never
    /// removed, no password set: keys or `passwd` by a person).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub users: Vec<LinuxUser>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinuxGroup {
    #[schemars(regex(pattern = ACCOUNT_PATTERN))]
    pub name: String,
    /// A fixed id (e.g. to match the ids mapped into unprivileged containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967294u32))]
    pub gid: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinuxUser {
    #[schemars(regex(pattern = ACCOUNT_PATTERN))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967294u32))]
    pub uid: Option<u32>,
    /// Supplementary groups it is added to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(regex(pattern = ACCOUNT_PATTERN)))]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SHELL_PATTERN), length(max = 64))]
    pub shell: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppArmorProfile {
    /// `phoenix-…`: the file `/etc/apparmor.d/NAME`.
    #[schemars(regex(pattern = PROFILE_NAME_PATTERN), length(max = 64))]
    pub name: String,
    /// The profile's text, checked by `apparmor_parser` before it is loaded.
    #[schemars(length(min = 1, max = 65536))]
    pub content: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostNvidia {
    /// The driver's Debian package.
    #[serde(default = "nvidia_package")]
    #[schemars(regex(pattern = PACKAGE_PATTERN), length(max = 64))]
    pub package: String,
    /// Kernel modules loaded at boot and now; their device nodes (`/dev/nvidia*`) are what
    /// containers are given.
    #[serde(default = "nvidia_modules")]
    #[schemars(length(max = 8), inner(regex(pattern = PLAIN_NAME_PATTERN), length(max = 64)))]
    pub modules: Vec<String>,
}

fn nvidia_package() -> String {
    "nvidia-driver".into()
}

fn nvidia_modules() -> Vec<String> {
    ["nvidia", "nvidia_uvm", "nvidia_modeset"]
        .map(str::to_owned)
        .to_vec()
}

/// What the system area applied.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<AppliedFeature>,
}
