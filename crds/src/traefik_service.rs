//! TraefikService: one internal route on Traefik, optionally public through Nginx.

use crate::common::*;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// One route: `host` + `pathPrefix` on the internal Traefik to a backend guest or URL, TLS
/// from a Certificate, and with `public: true` also on the Nginx gateway.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "phoenix.thinkheads.ai",
    version = "v1alpha1",
    kind = "TraefikService",
    namespaced,
    status = "TraefikServiceStatus",
    shortname = "tsvc",
    category = "phoenix",
    doc = "One route on the internal Traefik, optionally public through the Nginx gateway",
    printcolumn(name = "Host", type_ = "string", json_path = ".spec.host"),
    printcolumn(name = "Backend", type_ = "string", json_path = ".status.backend"),
    printcolumn(name = "Public", type_ = "boolean", json_path = ".spec.public"),
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
pub struct TraefikServiceSpec {
    #[schemars(regex(pattern = HOSTNAME_PATTERN), length(max = 253))]
    pub host: String,
    /// An absolute URL path of RFC 3986 characters: it becomes part of a Traefik rule
    /// (`PathPrefix(`…`)`) and of an Nginx `location`, so no backtick, quote, space or
    /// brace can reach either.
    #[serde(default = "default_path_prefix")]
    #[schemars(regex(pattern = PATH_PREFIX_PATTERN), length(max = 1024))]
    pub path_prefix: String,
    pub backend: Backend,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RouteTls>,
    /// Also expose the route on the public Nginx gateway.
    #[serde(default)]
    pub public: bool,
    /// Traefik middlewares (by name, `name@provider`) applied in order; Phoenix's Traefik
    /// defines `compress` and `secure-headers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}(@[a-z0-9]{1,32})?$"))
    )]
    pub middlewares: Vec<String>,
    /// The LxcGuest running Traefik; defaults to `traefik-internal`.
    #[serde(default = "default_traefik_ref")]
    pub traefik_ref: LocalRef,
    /// The LxcGuest running the Nginx gateway; defaults to `nginx-phoenix`.
    #[serde(default = "default_gateway_ref")]
    pub gateway_ref: LocalRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyRef>,
}

/// Unreserved and sub-delimiter characters, `:`, `@`, `/` and percent-escapes.
pub const PATH_PREFIX_PATTERN: &str = r"^/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*$";

fn default_path_prefix() -> String {
    "/".into()
}
fn default_traefik_ref() -> LocalRef {
    LocalRef {
        name: "traefik-internal".into(),
    }
}
fn default_gateway_ref() -> LocalRef {
    LocalRef {
        name: "nginx-phoenix".into(),
    }
}

/// Exactly one of a guest (and port) or a URL.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.guestRef) != has(self.url)").message("exactly one of guestRef or url must be set"))]
#[x_kube(validation = Rule::new("!has(self.guestRef) || has(self.port)").message("port is required with guestRef"))]
pub struct Backend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_ref: Option<GuestRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    #[serde(default)]
    pub scheme: Scheme,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://.+$"))]
    pub url: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteTls {
    /// The Certificate whose Secret Traefik serves for `host`.
    pub certificate_ref: LocalRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraefikServiceStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Resolved backend URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Hash of the Traefik (and Nginx) configuration last written for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// What a client asks for: `https://<host><pathPrefix>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The hops a request takes: `traefik 10.0.0.12 → https://10.0.0.51:8000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// What a request through the chain last got back, and since when it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<RouteCheck>,
    /// When the route's certificate expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteCheck {
    /// RFC 3339: since when the chain answers so.
    pub time: String,
    /// The HTTP status the backend answered with; absent when nothing answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub message: String,
}
