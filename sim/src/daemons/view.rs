//! What a real daemon reads for a simulated guest, as pure functions: the guest's files
//! under the daemon's directory (`/etc/traefik/`, `/etc/nginx/`), rewritten so that the
//! daemon runs on loopback: the paths it names moved under the daemon's directory, the
//! ports it listens on mapped to loopback ports, and every URL naming a platform address
//! (`https://10.0.0.141:8000`) sent to the loopback listener the simulator's resolver
//! gives for it. An address the resolver does not know becomes [`UNREACHABLE`]: a daemon
//! the simulator runs never sends a packet to the platform's addresses.

use regex::Regex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::LazyLock;

/// A guest's files, path → content.
pub type Files = BTreeMap<String, String>;

/// Where a URL naming an address nobody stands in for goes: loopback port 1, where
/// nothing listens, so the connection is refused as an unreachable host's would fail.
pub const UNREACHABLE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 1);

/// Platform addresses by (address, port) → the loopback listener standing in for them.
pub type Resolved = HashMap<(Ipv4Addr, u16), SocketAddr>;

static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(https?://)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d{1,5})").expect("valid")
});

static LISTEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^(\s*)listen\s+(\[::\]:)?(\d{1,5})(\s+ssl)?\s*;").expect("valid")
});

/// The platform addresses `text` names in URLs (loopback ones are left as they are).
pub fn addresses(text: &str) -> BTreeSet<(Ipv4Addr, u16)> {
    URL.captures_iter(text)
        .filter_map(|c| Some((c[2].parse::<Ipv4Addr>().ok()?, c[3].parse().ok()?)))
        .filter(|(ip, _)| !ip.is_loopback())
        .collect()
}

/// `text` with every URL naming a platform address sent where `resolved` says.
pub fn urls(text: &str, resolved: &Resolved) -> String {
    URL.replace_all(text, |c: &regex::Captures| {
        let target = match (c[2].parse::<Ipv4Addr>(), c[3].parse::<u16>()) {
            (Ok(ip), _) if ip.is_loopback() => return c[0].to_owned(),
            (Ok(ip), Ok(port)) => resolved.get(&(ip, port)).copied(),
            _ => None,
        };
        format!("{}{}", &c[1], target.unwrap_or(UNREACHABLE))
    })
    .into_owned()
}

/// `text` with the absolute paths under `dirs` (`/etc/traefik/`) moved under `root`.
pub fn paths(text: &str, dirs: &[&str], root: &str) -> String {
    dirs.iter().fold(text.to_owned(), |text, dir| {
        let pattern = Regex::new(&format!(r#"(^|[\s"'=:]){}"#, regex::escape(dir))).expect("valid");
        pattern
            .replace_all(&text, |c: &regex::Captures| format!("{}{root}{dir}", &c[1]))
            .into_owned()
    })
}

/// The ports nginx's `listen` lines name in `text`.
pub fn nginx_ports(text: &str) -> BTreeSet<u16> {
    LISTEN
        .captures_iter(text)
        .filter_map(|c| c[3].parse().ok())
        .collect()
}

/// `text` with each `listen PORT [ssl];` on the loopback address `ports` maps PORT to,
/// and the IPv6 ones (`listen [::]:PORT`) dropped: the loopback address serves both.
pub fn nginx_listens(text: &str, ports: &HashMap<u16, SocketAddr>) -> String {
    LISTEN
        .replace_all(text, |c: &regex::Captures| {
            let ssl = c.get(4).map_or("", |_| " ssl");
            match (c.get(2), c[3].parse().ok().and_then(|p: u16| ports.get(&p))) {
                (None, Some(address)) => format!("{}listen {address}{ssl};", &c[1]),
                _ => format!("{}# (simulator) {}", &c[1], c[0].trim_start()),
            }
        })
        .into_owned()
}

/// The entry points of a Traefik static configuration (YAML): name → port.
pub fn traefik_ports(text: &str) -> Result<BTreeMap<String, u16>, String> {
    let config: serde_json::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let Some(entry_points) = config["entryPoints"].as_object() else {
        return Ok(BTreeMap::new());
    };
    entry_points
        .iter()
        .map(|(name, e)| {
            let address = e["address"].as_str().unwrap_or_default();
            let port = address.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
            port.map(|p| (name.clone(), p))
                .ok_or_else(|| format!("entry point {name}: no port in {address:?}"))
        })
        .collect()
}

/// A Traefik static configuration with each entry point on the loopback address `ports`
/// maps its port to, written back as JSON (which Traefik reads as YAML).
pub fn traefik_static(text: &str, ports: &HashMap<u16, SocketAddr>) -> Result<String, String> {
    let mut config: serde_json::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let wanted = traefik_ports(text)?;
    for (name, port) in wanted {
        let address = ports
            .get(&port)
            .ok_or_else(|| format!("entry point {name}: port {port} has no loopback address"))?;
        config["entryPoints"][&name]["address"] = address.to_string().into();
    }
    serde_json::to_string_pretty(&config).map_err(|e| e.to_string())
}

/// The files of `files` under `dir` (`/etc/traefik/`).
pub fn under(files: &Files, dir: &str) -> Files {
    files
        .iter()
        .filter(|(path, _)| path.starts_with(dir))
        .map(|(p, c)| (p.clone(), c.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved() -> Resolved {
        [(
            ("10.0.0.12".parse().unwrap(), 443),
            "127.0.0.1:40443".parse().unwrap(),
        )]
        .into()
    }

    #[test]
    fn urls_naming_platform_addresses_go_to_loopback_or_nowhere() {
        let text = "proxy_pass https://10.0.0.12:443;\nproxy_pass http://10.0.0.13:8089;\n\
                    \"url\": \"http://127.0.0.1:5000\"";
        assert_eq!(
            addresses(text),
            [
                ("10.0.0.12".parse().unwrap(), 443),
                ("10.0.0.13".parse().unwrap(), 8089)
            ]
            .into()
        );
        assert_eq!(
            urls(text, &resolved()),
            "proxy_pass https://127.0.0.1:40443;\nproxy_pass http://127.0.0.1:1;\n\
             \"url\": \"http://127.0.0.1:5000\""
        );
    }

    #[test]
    fn paths_under_the_daemons_directories_move_under_the_root_and_nothing_else_does() {
        let text = "ssl_certificate /etc/nginx/phoenix/certs/a.crt;\n\
                    \"certFile\": \"/etc/traefik/certs/a.crt\"\ninclude /etc/nginx/phoenix/*.conf;\n\
                    return 301 https://$host/etc/nginx/x;\ndirectory: /etc/traefik/dynamic\n";
        let out = paths(text, &["/etc/nginx/", "/etc/traefik/"], "/v/102");
        assert_eq!(
            out,
            "ssl_certificate /v/102/etc/nginx/phoenix/certs/a.crt;\n\
             \"certFile\": \"/v/102/etc/traefik/certs/a.crt\"\ninclude /v/102/etc/nginx/phoenix/*.conf;\n\
             return 301 https://$host/etc/nginx/x;\ndirectory: /v/102/etc/traefik/dynamic\n"
        );
    }

    #[test]
    fn nginx_listens_on_the_mapped_loopback_ports_only() {
        let site = "server {\n    listen 443 ssl;\n    listen [::]:443 ssl;\n}\n\
                    server {\n    listen 80;\n    listen [::]:80;\n}\n";
        assert_eq!(nginx_ports(site), [80, 443].into());
        let ports = [
            (443, "127.0.0.1:40001".parse().unwrap()),
            (80, "127.0.0.1:40002".parse().unwrap()),
        ]
        .into();
        let out = nginx_listens(site, &ports);
        assert!(out.contains("    listen 127.0.0.1:40001 ssl;\n"), "{out}");
        assert!(out.contains("    listen 127.0.0.1:40002;\n"), "{out}");
        assert!(out.contains("# (simulator) listen [::]:443 ssl;"), "{out}");
        assert!(!out.contains("listen 443") && !out.contains("listen 80"));
    }

    #[test]
    fn traefik_entry_points_move_to_loopback() {
        let text = "entryPoints:\n  web:\n    address: \":80\"\n  websecure:\n    address: \":443\"\n\
                    providers:\n  file:\n    directory: /etc/traefik/dynamic\n";
        assert_eq!(
            traefik_ports(text).unwrap(),
            [("web".into(), 80), ("websecure".into(), 443)].into()
        );
        let ports = [
            (80, "127.0.0.1:40080".parse().unwrap()),
            (443, "127.0.0.1:40443".parse().unwrap()),
        ]
        .into();
        let out: serde_json::Value =
            serde_json::from_str(&traefik_static(text, &ports).unwrap()).unwrap();
        assert_eq!(
            out["entryPoints"]["websecure"]["address"],
            "127.0.0.1:40443"
        );
        assert_eq!(
            out["providers"]["file"]["directory"],
            "/etc/traefik/dynamic"
        );
        assert!(traefik_static(text, &HashMap::new()).is_err());
        assert!(traefik_ports("entryPoints:\n  x:\n    address: nowhere\n").is_err());
    }
}
