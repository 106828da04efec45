//! The Nginx gateway's part of a public route, as pure functions: one server block for
//! the route's host that terminates TLS with the route's certificate and proxies to
//! Traefik over TLS (SNI and `Host` the client's host, Traefik's certificate checked
//! against the Step-CA root, websockets upgraded), and one on port 80 that redirects to
//! HTTPS except ACME's HTTP-01 challenges, which go to Phoenix's responder so a public
//! route can carry a certificate from a public CA. Nginx 1.22 (Debian 12) syntax.

use std::net::SocketAddr;

/// Where the gateway (LXC 101, feature `nginx-gateway`) reads what Phoenix writes: its
/// `nginx.conf` includes `conf.d/*.conf`, which includes this directory's `*.conf`.
pub const SITES_DIR: &str = "/etc/nginx/phoenix";
pub const CERTS_DIR: &str = "/etc/nginx/phoenix/certs";
/// The `map` every route's websocket upgrade uses, defined once for all of them.
pub const UPGRADE_MAP_FILE: &str = "/etc/nginx/phoenix/00-upgrade-map.conf";

/// The gateway's part of one public route, every value checked against the spec.
pub struct PublicRoute<'a> {
    /// `<namespace>_<name>`, as the route's Traefik names.
    pub id: &'a str,
    pub host: &'a str,
    pub path_prefix: &'a str,
    /// Traefik's `websecure` entry point.
    pub traefik: SocketAddr,
    /// Phoenix's HTTP-01 responder as the gateway reaches it, when there is one.
    pub acme_responder: Option<SocketAddr>,
    /// Where the gateway's filesystem starts for the paths (empty inside the guest).
    pub root: &'a str,
    /// Where the gateway listens: `443`/`80` in the guest, loopback ports in a test.
    pub listen: Listen,
}

#[derive(Clone, Copy, Debug)]
pub struct Listen {
    pub https: u16,
    pub http: u16,
    /// An address to bind (`127.0.0.1` in a test); all addresses when `None`.
    pub address: Option<std::net::IpAddr>,
}

impl Listen {
    pub const PLATFORM: Listen = Listen {
        https: 443,
        http: 80,
        address: None,
    };

    fn lines(&self, port: u16, ssl: bool) -> String {
        let ssl = if ssl { " ssl" } else { "" };
        match self.address {
            Some(address) => format!("    listen {};\n", endpoint(address, port, ssl)),
            None => format!("    listen {port}{ssl};\n    listen [::]:{port}{ssl};\n"),
        }
    }
}

fn endpoint(address: std::net::IpAddr, port: u16, ssl: &str) -> String {
    format!("{}{ssl}", SocketAddr::new(address, port))
}

/// The paths of route `id`'s gateway files in a filesystem starting at `root`.
pub struct GatewayPaths {
    pub site: String,
    pub cert: String,
    pub key: String,
    /// The Step-CA root Traefik's certificate is checked against.
    pub ca: String,
}

impl GatewayPaths {
    pub fn of(root: &str, id: &str) -> GatewayPaths {
        GatewayPaths {
            site: format!("{root}{SITES_DIR}/{id}.conf"),
            cert: format!("{root}{CERTS_DIR}/{id}.crt"),
            key: format!("{root}{CERTS_DIR}/{id}.key"),
            ca: format!("{root}{CERTS_DIR}/{id}-ca.crt"),
        }
    }
}

/// The websocket upgrade `map`, in the http context once for every route.
pub fn upgrade_map() -> &'static str {
    "# Written by Phoenix for the public routes; edits are undone.\n\
     map $http_upgrade $connection_upgrade {\n    default upgrade;\n    '' close;\n}\n"
}

/// The route's server blocks.
pub fn site(route: &PublicRoute, object: &str) -> String {
    let paths = GatewayPaths::of(route.root, route.id);
    let host = route.host;
    let acme = match route.acme_responder {
        Some(responder) => format!(
            "    location /.well-known/acme-challenge/ {{\n        proxy_pass http://{responder};\n        proxy_set_header Host $host;\n    }}\n"
        ),
        None => String::new(),
    };
    format!(
        "# Written by Phoenix for TraefikService {object}; edits are undone.\n\
         server {{\n{https}    server_name {host};\n\
         \x20   ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
         \x20   ssl_protocols TLSv1.2 TLSv1.3;\n\
         \x20   location \"{prefix}\" {{\n\
         \x20       proxy_pass https://{traefik};\n\
         \x20       proxy_ssl_server_name on;\n\
         \x20       proxy_ssl_name $host;\n\
         \x20       proxy_ssl_verify on;\n\
         \x20       proxy_ssl_trusted_certificate {ca};\n\
         \x20       proxy_http_version 1.1;\n\
         \x20       proxy_set_header Host $host;\n\
         \x20       proxy_set_header Upgrade $http_upgrade;\n\
         \x20       proxy_set_header Connection $connection_upgrade;\n\
         \x20       proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         \x20       proxy_set_header X-Forwarded-Proto https;\n\
         \x20   }}\n}}\n\
         server {{\n{http}    server_name {host};\n{acme}\
         \x20   location / {{\n        return 301 https://$host$request_uri;\n    }}\n}}\n",
        https = route.listen.lines(route.listen.https, true),
        http = route.listen.lines(route.listen.http, false),
        cert = paths.cert,
        key = paths.key,
        ca = paths.ca,
        // Quoted: the spec's pattern admits `;` and `$`, which nginx would otherwise read as
        // the end of the directive (the pattern excludes `"` and `\\`).
        prefix = route.path_prefix,
        traefik = route.traefik,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(acme: Option<&str>) -> PublicRoute<'static> {
        PublicRoute {
            id: "default_granite-embedding",
            host: "embedding.internal.thinkheads.ai",
            path_prefix: "/",
            traefik: "10.0.0.12:443".parse().unwrap(),
            acme_responder: acme.map(|a| a.parse().unwrap()),
            root: "",
            listen: Listen::PLATFORM,
        }
    }

    #[test]
    fn a_public_route_terminates_tls_and_reencrypts_to_traefik_by_name() {
        let text = site(&route(None), "default/granite-embedding");
        for line in [
            "listen 443 ssl;",
            "listen [::]:443 ssl;",
            "server_name embedding.internal.thinkheads.ai;",
            "ssl_certificate /etc/nginx/phoenix/certs/default_granite-embedding.crt;",
            "proxy_pass https://10.0.0.12:443;",
            "proxy_ssl_server_name on;",
            "proxy_ssl_name $host;",
            "proxy_ssl_verify on;",
            "proxy_ssl_trusted_certificate /etc/nginx/phoenix/certs/default_granite-embedding-ca.crt;",
            "proxy_set_header Host $host;",
            "proxy_set_header Connection $connection_upgrade;",
            "listen 80;",
            "return 301 https://$host$request_uri;",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        assert!(!text.contains("acme-challenge"));
    }

    #[test]
    fn a_path_prefix_stays_one_quoted_location_whatever_it_holds() {
        let mut r = route(None);
        r.path_prefix = "/a;return 200 x;";
        let text = site(&r, "x");
        assert!(text.contains("location \"/a;return 200 x;\" {"), "{text}");
        assert!(!text.contains("\n    return 200 x;"));
    }

    #[test]
    fn acme_challenges_go_to_phoenix_and_nothing_else_does() {
        let text = site(&route(Some("10.0.0.13:8089")), "default/granite-embedding");
        let acme = text.find("location /.well-known/acme-challenge/").unwrap();
        let redirect = text.find("return 301").unwrap();
        assert!(text[acme..redirect].contains("proxy_pass http://10.0.0.13:8089;"));
    }

    #[test]
    fn a_test_listens_on_loopback_ports_only() {
        let mut r = route(None);
        r.listen = Listen {
            https: 8443,
            http: 8080,
            address: Some("127.0.0.1".parse().unwrap()),
        };
        let text = site(&r, "x");
        assert!(
            text.contains("listen 127.0.0.1:8443 ssl;") && text.contains("listen 127.0.0.1:8080;")
        );
        assert!(!text.contains("[::]"));
    }
}
