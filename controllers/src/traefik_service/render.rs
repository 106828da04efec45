//! Traefik's dynamic configuration for one route, as a pure function: one document per
//! route, so that Traefik's file provider, which rejects a whole document on one unknown
//! key, can never lose the other routes to a bad one. The document is JSON (a subset of
//! YAML, every string quoted, so no value can turn into a boolean or a template), written
//! as `<id>.yml` into the directory Traefik's file provider watches.

use serde_json::{Value, json};

/// Where Traefik (LXC 102, feature `traefik`) reads what Phoenix writes.
pub const DYNAMIC_DIR: &str = "/etc/traefik/dynamic";
pub const CERTS_DIR: &str = "/etc/traefik/certs";
/// The entry point routes are served on (the static configuration's `websecure`).
pub const ENTRY_POINT: &str = "websecure";

/// The middlewares Phoenix's `traefik` feature defines (file provider), by the name a
/// route uses for them; Traefik disables a router naming any other.
pub const KNOWN_MIDDLEWARES: &[&str] = &["compress", "secure-headers"];

/// One route, every value already checked against the spec's patterns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// `<namespace>_<name>`: unique (neither part holds `_`), and the name of every
    /// router, service and transport it defines.
    pub id: String,
    pub host: String,
    pub path_prefix: String,
    /// `http://10.0.0.51:8000` or the spec's URL.
    pub server: String,
    /// Middleware names as the spec gives them (`compress`, `compress@file`).
    pub middlewares: Vec<String>,
    /// Whether the route carries a certificate of its own.
    pub tls: bool,
    /// Where Traefik's filesystem starts for the paths the document names: empty for the
    /// guest itself; a directory where a test runs the real Traefik on loopback.
    pub root: String,
}

/// The files a route puts into the guest, by path.
pub struct Files {
    pub config: (String, String),
    pub certificate: Option<[(String, String); 3]>,
}

/// Where a route's files live in Traefik's guest, by the route's id.
pub struct Paths {
    pub config: String,
    pub cert: String,
    pub key: String,
    /// The root the route's backend is checked against (`https` backends).
    pub ca: String,
}

impl Paths {
    /// The paths of route `id` in a filesystem starting at `root` (empty: `/`).
    pub fn of(root: &str, id: &str) -> Paths {
        Paths {
            config: format!("{root}{DYNAMIC_DIR}/phoenix-{id}.yml"),
            cert: format!("{root}{CERTS_DIR}/{id}.crt"),
            key: format!("{root}{CERTS_DIR}/{id}.key"),
            ca: format!("{root}{CERTS_DIR}/{id}-ca.crt"),
        }
    }

    /// Every path, for the route's removal.
    pub fn all(self) -> [String; 4] {
        [self.config, self.cert, self.key, self.ca]
    }
}

impl Route {
    pub fn paths(&self) -> Paths {
        Paths::of(&self.root, &self.id)
    }

    fn rule(&self) -> String {
        let host = format!("Host(`{}`)", self.host);
        match self.path_prefix.as_str() {
            "/" => host,
            prefix => format!("{host} && PathPrefix(`{prefix}`)"),
        }
    }

    fn https_backend(&self) -> bool {
        self.server.starts_with("https://")
    }
}

/// The route's dynamic-configuration document.
pub fn document(route: &Route) -> Value {
    let id = &route.id;
    let middlewares: Vec<String> = route
        .middlewares
        .iter()
        .map(|m| match m.contains('@') {
            true => m.clone(),
            false => format!("{m}@file"),
        })
        .collect();
    let mut router = json!({
        "entryPoints": [ENTRY_POINT],
        "rule": route.rule(),
        "service": id,
        "tls": {},
    });
    if !middlewares.is_empty() {
        router["middlewares"] = json!(middlewares);
    }
    let mut load_balancer = json!({
        "servers": [{"url": route.server}],
        "passHostHeader": true,
    });
    let mut http = json!({
        "routers": {id: router},
        "services": {id: {"loadBalancer": Value::Null}},
    });
    let paths = route.paths();
    if route.https_backend() {
        load_balancer["serversTransport"] = json!(id);
        // The backend presents the route's own name, signed by the Step-CA root.
        http["serversTransports"] = json!({id: {
            "serverName": route.host,
            "rootCAs": [paths.ca],
        }});
    }
    http["services"][id]["loadBalancer"] = load_balancer;
    let mut document = json!({ "http": http });
    if route.tls {
        document["tls"] = json!({"certificates": [{
            "certFile": paths.cert,
            "keyFile": paths.key,
        }]});
    }
    document
}

/// The document as the file's text: a comment naming its object, then the JSON.
pub fn config_text(route: &Route, object: &str) -> String {
    let body = serde_json::to_string_pretty(&document(route)).expect("JSON values serialise");
    format!("# Written by Phoenix for TraefikService {object}; edits are undone.\n{body}\n")
}

/// The files for `route`: its document, and with a certificate its chain, key and root.
pub fn files(route: &Route, object: &str, pair: Option<&TlsPair>) -> Files {
    let paths = route.paths();
    Files {
        config: (paths.config, config_text(route, object)),
        certificate: pair.map(|p| {
            [
                (paths.cert, p.chain.clone()),
                (paths.key, p.key.clone()),
                (paths.ca, p.root.clone()),
            ]
        }),
    }
}

/// A Certificate's Secret as a route installs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPair {
    pub chain: String,
    pub key: String,
    pub root: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(server: &str, prefix: &str, middlewares: &[&str]) -> Route {
        Route {
            id: "default_portainer".into(),
            host: "portainer.internal.thinkheads.ai".into(),
            path_prefix: prefix.into(),
            server: server.into(),
            middlewares: middlewares.iter().map(|m| m.to_string()).collect(),
            tls: true,
            root: String::new(),
        }
    }

    #[test]
    fn a_route_becomes_one_router_one_service_and_its_certificate() {
        let doc = document(&route("http://10.0.0.11:9000", "/", &[]));
        let router = &doc["http"]["routers"]["default_portainer"];
        assert_eq!(router["rule"], "Host(`portainer.internal.thinkheads.ai`)");
        assert_eq!(router["entryPoints"], json!(["websecure"]));
        assert_eq!(router["service"], "default_portainer");
        assert!(router.get("middlewares").is_none());
        let lb = &doc["http"]["services"]["default_portainer"]["loadBalancer"];
        assert_eq!(lb["servers"], json!([{"url": "http://10.0.0.11:9000"}]));
        assert!(lb.get("serversTransport").is_none());
        assert!(doc["http"].get("serversTransports").is_none());
        assert_eq!(
            doc["tls"]["certificates"][0]["certFile"],
            "/etc/traefik/certs/default_portainer.crt"
        );
    }

    #[test]
    fn https_backends_trust_the_routes_root_and_name() {
        let doc = document(&route("https://10.0.0.11:9443", "/api", &["compress"]));
        let router = &doc["http"]["routers"]["default_portainer"];
        assert_eq!(
            router["rule"],
            "Host(`portainer.internal.thinkheads.ai`) && PathPrefix(`/api`)"
        );
        assert_eq!(router["middlewares"], json!(["compress@file"]));
        let transport = &doc["http"]["serversTransports"]["default_portainer"];
        assert_eq!(transport["serverName"], "portainer.internal.thinkheads.ai");
        assert_eq!(
            transport["rootCAs"],
            json!(["/etc/traefik/certs/default_portainer-ca.crt"])
        );
        let lb = &doc["http"]["services"]["default_portainer"]["loadBalancer"];
        assert_eq!(lb["serversTransport"], "default_portainer");
    }

    #[test]
    fn the_file_is_yaml_a_go_template_leaves_alone() {
        let text = config_text(
            &route("http://10.0.0.11:9000", "/", &[]),
            "default/portainer",
        );
        let read: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(read, document(&route("http://10.0.0.11:9000", "/", &[])));
        assert!(!text.contains("{{"));
    }
}
