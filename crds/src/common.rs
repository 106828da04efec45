//! Types shared by several kinds: references, policies, conditions, networking and the
//! in-guest provisioning, health-check, snapshot and firewall blocks of both guest kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// RFC 1123 DNS subdomain (lower case labels joined by dots), as Kubernetes and PVE's
/// `dns-name` format accept for hostnames.
pub const HOSTNAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A DNS name a certificate may carry: a hostname, or a wildcard as its whole first label
/// (`*.example.com`), the one place ACME allows one.
pub const CERTIFICATE_DNS_NAME_PATTERN: &str =
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// An IPv4 address.
pub const IPV4_PATTERN: &str = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$";
/// `dhcp`, `manual` or an IPv4 address with prefix length (`10.0.0.103/24`).
pub const IPV4_CONFIG_PATTERN: &str = r"^(dhcp|manual|((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9]))$";
/// `auto`, `dhcp`, `manual` or an IPv6 address with prefix length.
pub const IPV6_CONFIG_PATTERN: &str = r"^(auto|dhcp|manual|[0-9a-fA-F:]+/[0-9]{1,3})$";
/// A size with a unit as PVE writes them: `8G`, `512M`, `1T`.
pub const SIZE_PATTERN: &str = r"^[1-9][0-9]*[MGT]$";
/// A PVE storage or node identifier (`pve-storage-id`, `pve-node`).
pub const PVE_ID_PATTERN: &str = r"^[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]$";
/// A PVE tag (`pve-tag`).
pub const PVE_TAG_PATTERN: &str = r"^[a-z0-9_][a-z0-9_\-+.]*$";
/// An environment variable's name, as shells and systemd accept it.
pub const ENV_NAME_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";
/// No control characters (a newline would start a new line of a systemd unit or a PVE
/// config file).
pub const SINGLE_LINE_PATTERN: &str = r"^[^\x00-\x1F\x7F]*$";
/// An absolute path spliced into a PVE property string: no `,` or `=` (PVE splits the
/// string on them into keys) and no control characters.
pub const PVE_PATH_PATTERN: &str = r"^/[^,=\x00-\x1F\x7F]*$";
/// The message of the rule that keeps a namespaced object's Secret and ConfigMap
/// references in its own namespace.
pub const OWN_NAMESPACE_ONLY: &str =
    "namespace: a namespaced object reads Secrets and ConfigMaps of its own namespace only";

/// A SHA-256 fingerprint as PVE and `step ca bootstrap` print it: 32 hex pairs, colons optional.
pub const SHA256_FINGERPRINT_PATTERN: &str =
    r"^([0-9a-fA-F]{2}:){31}[0-9a-fA-F]{2}$|^[0-9a-fA-F]{64}$";
/// A Go duration as Kubernetes tools write them (`24h`, `90m`, `1h30m`).
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$";

/// The lowest and highest VMID Proxmox VE accepts.
pub const VMID_MIN: u32 = 100;
pub const VMID_MAX: u32 = 999_999_999;

/// Status written by every Phoenix controller: the conditions (`Ready`, `Reconciling`
/// while work is under way, `Stalled` when only a spec change can help — as kstatus reads
/// them — and kind-specific ones) and the generation the controller last acted on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A Phoenix object this one waits for before it acts.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct DependencyRef {
    pub kind: PhoenixKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Defaults to the namespace of the object that depends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The kinds a dependency may name.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum PhoenixKind {
    LxcGuest,
    VmGuest,
    DockerStack,
    TraefikService,
    Certificate,
}

/// A guest (container or VM) in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestRef {
    pub kind: GuestKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum GuestKind {
    LxcGuest,
    VmGuest,
}

/// An object by name alone: a cluster-scoped object, or one in the referrer's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct LocalRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// One key of a Secret in the referrer's namespace (every referrer is namespaced).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.__namespace__) || self.__namespace__ == ''").message(OWN_NAMESPACE_ONLY))]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub key: String,
    /// Must be left out: a namespaced object reads Secrets of its own namespace only
    /// (refused at admission; ignored by the controllers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One key of a ConfigMap in the referrer's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ConfigMapKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub key: String,
}

/// What happens to the guest when its object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Stop and destroy the guest (with purge), then drop the finalizer.
    #[default]
    Delete,
    /// Leave the guest running and remove Phoenix's ownership marker.
    Retain,
}

/// What happens when the live configuration differs from the spec.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DriftPolicy {
    /// Change it back, with an event.
    #[default]
    Correct,
    /// Only report it, as an event and the `Drifted` condition.
    Report,
}

/// Whether Phoenix may restart a guest to apply a change that needs it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RestartPolicy {
    /// Restart when a change cannot be applied live.
    #[default]
    IfRequired,
    /// Never restart: the change waits (condition `RestartRequired`) until the guest is
    /// restarted by someone else.
    Never,
}

/// Where a guest may run: one node, or any of several (the controller picks by free memory).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Nodes the guest may be placed on; empty means any node of the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Guests of the same group are spread over different nodes where possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity_group: Option<String>,
}

/// Boot order: PVE's `startup` property (`order=N,up=S,down=S`) and `onboot`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Startup {
    /// Start with the node.
    #[serde(default)]
    pub on_boot: bool,
    /// Lower orders start first and stop last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub order: Option<u32>,
    /// Seconds to wait after this guest started before starting the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub up_delay_seconds: Option<u32>,
    /// Seconds to wait for this guest to shut down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub down_delay_seconds: Option<u32>,
}

/// A disk on a storage: `storage:size`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Volume {
    #[schemars(regex(pattern = PVE_ID_PATTERN))]
    pub storage: String,
    /// Size with unit: `8G`, `512M`, `1T`.
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub size: String,
}

/// Name servers and search domain handed to the guest.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// IPv4 or IPv6 addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[0-9A-Fa-f.:]+(%[A-Za-z0-9_.\-]+)?$")))]
    pub nameservers: Vec<String>,
    /// DNS domains, separated by spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(
            pattern = r"^[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?( [A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?)*$"
        ),
        length(max = 1024)
    )]
    pub search_domain: Option<String>,
}

/// In-guest software, applied once per content hash in catalog order (base, nvidia,
/// docker, stepCli, trustedCa, traefik, nginxGateway, ollama, vllm, custom), recorded in
/// status and in a marker file inside the guest.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Provisioning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseFeature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvidia: Option<NvidiaFeature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerFeature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_cli: Option<StepCliFeature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_ca: Option<TrustedCaFeature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traefik: Option<TraefikFeature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx_gateway: Option<NginxGatewayFeature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ollama: Option<OllamaFeature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vllm: Option<VllmFeature>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom: Vec<CustomFeature>,
}

/// System updates and common packages.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BaseFeature {
    /// Extra Debian/Ubuntu packages on top of the base set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
}

/// NVIDIA driver user space and container toolkit; the device nodes come from `devices`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NvidiaFeature {
    /// Must match the host's kernel driver, e.g. `550.127.05`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9][0-9A-Za-z.+~-]*$"), length(max = 64))]
    pub driver_version: Option<String>,
}

/// Docker Engine; with `tls`, the daemon listens on 2376 with a Step-CA certificate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DockerFeature {
    /// The Certificate whose Secret holds the daemon's TLS key pair (mTLS on tcp/2376).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate_ref: Option<LocalRef>,
}

/// The `step` CLI, bootstrapped against the cluster's Step-CA.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct StepCliFeature {
    /// A release of smallstep/cli, e.g. `0.28.2`; the latest when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9][0-9A-Za-z.+~-]*$"), length(max = 64))]
    pub version: Option<String>,
}

/// Traefik as the internal router: the release binary, entry points `web` (redirecting to
/// HTTPS) and `websecure`, `/ping` on 8082, the file provider watching the directory the
/// TraefikService controller writes routes into, and the middlewares routes may name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraefikFeature {
    /// A Traefik v3 release, e.g. `3.7.13`.
    #[serde(default = "default_traefik_version")]
    #[schemars(regex(pattern = r"^3\.[0-9]+\.[0-9]+$"))]
    pub version: String,
    /// The Certificate Traefik serves when no route's certificate matches (its default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_ref: Option<LocalRef>,
}

fn default_traefik_version() -> String {
    "3.7.13".into()
}

/// Nginx as the public gateway: Debian's package, its default site removed, and the
/// directory the TraefikService controller writes public routes' sites into included.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NginxGatewayFeature {}

/// Installs the Step-CA root into the guest's trust store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustedCaFeature {
    /// ConfigMap key holding the root; defaults to the guest's cluster's Step-CA root, as
    /// the Certificate controller publishes it (`phoenix-system/phoenix-ca-root`,
    /// `<cluster>.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
}

/// Ollama, listening on `port`, with models pulled ahead of time.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct OllamaFeature {
    #[serde(default = "default_ollama_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

fn default_ollama_port() -> u16 {
    11434
}

/// vLLM serving one model through a systemd unit generated from this block; nothing of
/// it can add a line to the unit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VllmFeature {
    /// Hugging Face model id, e.g. `ibm-granite/granite-embedding-278m-multilingual`, or
    /// a path in the guest.
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9_./][A-Za-z0-9_./\-]*$"),
        length(min = 1, max = 256)
    )]
    pub model: String,
    #[serde(default = "default_vllm_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Extra `vllm serve` arguments, passed as given (one line each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = SINGLE_LINE_PATTERN)))]
    pub args: Vec<String>,
    /// Fraction of GPU memory vLLM may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.05, max = 1.0))]
    pub gpu_memory_utilization: Option<f64>,
    /// The Certificate whose key pair vLLM serves TLS with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate_ref: Option<LocalRef>,
    /// Extra environment of the unit (`HF_HOME`, ...), in order; a name given twice takes
    /// its last value, as systemd does.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "unit_env_list_or_map"
    )]
    #[schemars(length(max = 64))]
    pub env: Vec<UnitEnvVar>,
}

/// `env` as a list, or as the map it was before it became one: an object stored then
/// still reads (a controller's cache fails as a whole on one object it cannot read), and
/// its next write, admitted against the schema, is a list.
fn unit_env_list_or_map<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<UnitEnvVar>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        List(Vec<UnitEnvVar>),
        Map(BTreeMap<String, String>),
    }
    Ok(match Shape::deserialize(deserializer)? {
        Shape::List(list) => list,
        Shape::Map(map) => map
            .into_iter()
            .map(|(name, value)| UnitEnvVar { name, value })
            .collect(),
    })
}

/// One `Environment=` of a unit Phoenix writes.
// A list entry rather than a map key, so that the schema bounds and checks names and
// values itself: kube-apiserver refuses CEL over a map's keys, whose length it cannot
// bound (its cost budget).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct UnitEnvVar {
    #[schemars(regex(pattern = ENV_NAME_PATTERN), length(max = 128))]
    pub name: String,
    #[schemars(regex(pattern = SINGLE_LINE_PATTERN), length(max = 4096))]
    pub value: String,
}

fn default_vllm_port() -> u16 {
    8000
}

/// A script of the user's, from a ConfigMap, run with parameters as environment variables.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct CustomFeature {
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub name: String,
    pub script: ConfigMapKeyRef,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// A health check; exactly one of `http`, `tcp`, `exec`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.http), has(self.tcp), has(self.exec)].filter(x, x).size() == 1").message("exactly one of http, tcp or exec must be set"))]
pub struct HealthCheck {
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecCheck>,
    /// Run from the controller instead of inside the guest (http and tcp only).
    #[serde(default)]
    pub from_controller: bool,
    #[serde(default = "default_check_interval")]
    #[schemars(range(min = 5))]
    pub interval_seconds: u32,
    #[serde(default = "default_check_timeout")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: u32,
    /// Consecutive failures before the guest is reported unhealthy.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1))]
    pub failure_threshold: u32,
}

fn default_check_interval() -> u32 {
    30
}
fn default_check_timeout() -> u32 {
    5
}
fn default_failure_threshold() -> u32 {
    3
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// An absolute path (with query), e.g. `/health`.
    #[serde(default = "default_http_path")]
    #[schemars(regex(pattern = r"^/[^\s]*$"), length(max = 2048))]
    pub path: String,
    #[serde(default)]
    pub scheme: Scheme,
    /// Hostname sent (SNI and Host header); defaults to the guest's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default = "default_expect_status")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: u16,
}

fn default_http_path() -> String {
    "/".into()
}
fn default_expect_status() -> u16 {
    200
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct TcpCheck {
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ExecCheck {
    /// argv; exit code 0 is healthy.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
}

/// Snapshots Phoenix takes and prunes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Snapshots {
    /// Name of the snapshot taken once provisioning has succeeded (e.g. `post-setup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9_\-]*$"), length(max = 40))]
    pub after_provisioning: Option<String>,
    /// Take a snapshot before any change the plan marks risky.
    #[serde(default)]
    pub before_risky_changes: bool,
    /// Roll back to that snapshot when the risky change fails.
    #[serde(default)]
    pub rollback_on_failure: bool,
    /// How many automatic snapshots to keep; older ones are deleted.
    #[serde(default = "default_snapshot_retain")]
    #[schemars(range(min = 1, max = 100))]
    pub retain: u32,
}

fn default_snapshot_retain() -> u32 {
    3
}

/// The guest's PVE firewall: options and rules.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Firewall {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_in: Option<FirewallAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_out: Option<FirewallAction>,
    /// Security groups (the ProxmoxCluster's `firewall.securityGroups`) whose rules apply
    /// here, before `rules`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(regex(pattern = SECURITY_GROUP_PATTERN), length(min = 2, max = 18)))]
    pub security_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<FirewallRule>,
}

/// An alias's name, as PVE accepts it.
pub const FIREWALL_NAME_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9_-]+$";
/// A security group's name: in lower case, as PVE stores (and then only finds) it.
pub const SECURITY_GROUP_PATTERN: &str = r"^[a-z][a-z0-9_-]+$";

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum FirewallAction {
    Accept,
    Drop,
    Reject,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// One rule, in PVE's terms.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirewallRule {
    pub direction: Direction,
    pub action: FirewallAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(tcp|udp|icmp|icmpv6|[0-9]+)$"))]
    pub proto: Option<String>,
    /// Port, range (`8000:8100`) or list (`80,443`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(:[0-9]+)?(,[0-9]+(:[0-9]+)?)*$"))]
    pub dport: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    /// A PVE macro such as `SSH` or `HTTPS`, instead of proto/port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "macro")]
    pub macro_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

pub(crate) fn default_true() -> bool {
    true
}

/// A feature the guest has had applied, as recorded in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedFeature {
    pub name: String,
    /// Content hash of the rendered script that was applied.
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
}

/// What a guest status shares between LXC and VM.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestObservation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// PVE's status: `running`, `stopped`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The primary address, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// The plan step being worked on (`Create`, `Configure`, `Start`, `Provision`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The PVE task in flight, awaited across reconciles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_upid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<AppliedFeature>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
    /// The generation whose spec was last fully in place: differences found while it is
    /// still the object's generation are out-of-band changes (drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converged_generation: Option<i64>,
}

/// `name=value` or `name` from a Secret key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.secretKeyRef)").message("exactly one of value or secretKeyRef must be set"))]
pub struct EnvVar {
    #[schemars(regex(pattern = ENV_NAME_PATTERN))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vllm_env_reads_as_a_list_and_as_the_map_it_once_was() {
        let read = |env: serde_json::Value| {
            let feature: VllmFeature =
                serde_json::from_value(serde_json::json!({"model": "m", "env": env})).unwrap();
            feature.env
        };
        let expected = vec![UnitEnvVar {
            name: "HF_HOME".into(),
            value: "/models/hf".into(),
        }];
        assert_eq!(
            read(serde_json::json!([{"name": "HF_HOME", "value": "/models/hf"}])),
            expected
        );
        assert_eq!(read(serde_json::json!({"HF_HOME": "/models/hf"})), expected);
    }
}
