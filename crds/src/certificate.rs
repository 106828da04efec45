//! Certificate: one X.509 certificate from Step-CA over ACME, cert-manager-like.

use crate::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A certificate issued by the platform's Step-CA (its ACME provisioner), kept in a
/// `kubernetes.io/tls` Secret, renewed ahead of expiry and installed into guests.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "phoenix.thinkheads.ai",
    version = "v1alpha1",
    kind = "Certificate",
    namespaced,
    status = "CertificateStatus",
    shortname = "cert",
    category = "phoenix",
    doc = "One certificate from Step-CA over ACME, renewed and installed into guests",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Secret", type_ = "string", json_path = ".spec.secretName"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.notAfter"),
    printcolumn(
        name = "Renewal",
        type_ = "string",
        json_path = ".status.renewalTime",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.commonName) || size(self.dnsNames) > 0 || size(self.ipAddresses) > 0").message("at least one of commonName, dnsNames or ipAddresses must be set"))]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// The `kubernetes.io/tls` Secret written with `tls.crt`, `tls.key` and `ca.crt`.
    #[schemars(regex(pattern = HOSTNAME_PATTERN), length(max = 253))]
    pub secret_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub common_name: Option<String>,
    /// Names the certificate covers; a wildcard only as the whole first label. At most
    /// 100, as ACME CAs allow in one order.
    #[serde(default)]
    #[schemars(inner(regex(pattern = CERTIFICATE_DNS_NAME_PATTERN), length(max = 253)), length(max = 100))]
    pub dns_names: Vec<String>,
    /// IPv4 or IPv6 addresses the certificate covers.
    #[serde(default)]
    #[schemars(inner(length(max = 45)), length(max = 100))]
    #[x_kube(validation = Rule::new("self.all(ip, isIP(ip))").message("every entry must be an IPv4 or IPv6 address"))]
    pub ip_addresses: Vec<String>,
    /// Requested lifetime; Step-CA's ACME provisioner defaults to 24h.
    #[serde(default = "default_duration")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub duration: String,
    /// Renew this long before expiry; defaults to a third of the lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub renew_before: Option<String>,
    #[serde(default)]
    pub private_key: PrivateKey,
    #[serde(default)]
    pub issuer: Issuer,
    /// Guests to install the certificate into.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub install: Vec<InstallTarget>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyRef>,
}

fn default_duration() -> String {
    "24h".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKey {
    #[serde(default)]
    pub algorithm: KeyAlgorithm,
    /// RSA key size in bits (2048, 3072, 4096); ignored for ECDSA P-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2048, max = 8192))]
    pub size: Option<u32>,
    #[serde(default)]
    pub rotation_policy: RotationPolicy,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum KeyAlgorithm {
    #[default]
    ECDSA,
    RSA,
    Ed25519,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RotationPolicy {
    /// A new key with every issuance (cert-manager's default since 1.18).
    #[default]
    Always,
    Never,
}

/// Which ACME server issues: the ProxmoxCluster's Step-CA (the default) or an explicit
/// directory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.clusterRef) && has(self.acme))").message("clusterRef and acme are mutually exclusive"))]
pub struct Issuer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<LocalRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuer>,
    #[serde(default)]
    pub solver: Solver,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuer {
    #[schemars(regex(pattern = r"^https://.+$"))]
    pub directory_url: String,
    /// SHA-256 fingerprint of the CA root, pinned as `step ca bootstrap` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SHA256_FINGERPRINT_PATTERN))]
    pub root_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Solver {
    /// Answered by the controller's own challenge responder.
    #[default]
    Http01,
    /// Answered through the dnsmasq host records.
    Dns01,
}

/// Where a certificate goes inside a guest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallTarget {
    pub guest_ref: GuestRef,
    #[schemars(regex(pattern = r"^/.+$"))]
    pub cert_path: String,
    #[schemars(regex(pattern = r"^/.+$"))]
    pub key_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/.+$"))]
    pub chain_path: Option<String>,
    /// `user:group` of the files.
    #[serde(default = "default_owner")]
    pub owner: String,
    /// Octal mode of the key file.
    #[serde(default = "default_key_mode")]
    #[schemars(regex(pattern = r"^0?[0-7]{3}$"))]
    pub key_mode: String,
    /// Run once per new certificate, e.g. `systemctl reload nginx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_command: Option<String>,
}

fn default_owner() -> String {
    "root:root".into()
}
fn default_key_mode() -> String {
    "0600".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Bumped with every issuance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_issuance_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
    /// Guests holding the current certificate, by SHA-256 of the chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installed: Vec<InstalledCopy>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstalledCopy {
    pub guest: String,
    pub sha256: String,
}
