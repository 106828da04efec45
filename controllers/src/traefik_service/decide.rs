//! The route's checks before anything is written, as pure functions: who holds a host
//! and path, which middlewares exist, whether a certificate covers the host, and the
//! backend's URL from a guest's address or the spec's URL.

use super::render::KNOWN_MIDDLEWARES;
use phoenix_crds::common::Scheme;
use std::net::IpAddr;

/// One route's claim on a Traefik: its host and path there, and its age.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub namespace: String,
    pub name: String,
    /// The Traefik guest, as `<namespace>/<name>`.
    pub traefik: String,
    pub host: String,
    pub path_prefix: String,
    pub created: Option<jiff::Timestamp>,
}

impl Claim {
    fn same_place(&self, other: &Claim) -> bool {
        self.traefik == other.traefik
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.path_prefix == other.path_prefix
    }

    /// Older first; the same age decided by namespace and name, so every pass agrees.
    fn rank(&self) -> (Option<jiff::Timestamp>, &str, &str) {
        (self.created, &self.namespace, &self.name)
    }
}

/// The route that keeps `mine`'s host and path when another claims it too: the oldest.
/// `None` when `mine` holds it.
pub fn holder<'a>(mine: &Claim, all: &'a [Claim]) -> Option<&'a Claim> {
    all.iter()
        .filter(|c| c.same_place(mine) && (c.namespace != mine.namespace || c.name != mine.name))
        .min_by(|a, b| a.rank().cmp(&b.rank()))
        .filter(|oldest| oldest.rank() < mine.rank())
}

/// The first middleware Phoenix's Traefik does not define.
pub fn unknown_middleware(middlewares: &[String]) -> Option<&str> {
    middlewares
        .iter()
        .map(String::as_str)
        .find(|m| !KNOWN_MIDDLEWARES.contains(&m.strip_suffix("@file").unwrap_or(m)))
}

/// Whether a certificate naming `dns_names` serves `host` (a wildcard covers one label).
pub fn covers(dns_names: &[String], host: &str) -> bool {
    dns_names.iter().any(|name| {
        name.eq_ignore_ascii_case(host)
            || name.strip_prefix("*.").is_some_and(|domain| {
                host.split_once('.')
                    .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(domain))
            })
    })
}

/// `scheme://address:port` for a guest backend (IPv6 in brackets).
pub fn guest_server(scheme: Scheme, address: IpAddr, port: u16) -> String {
    let scheme = match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    match address {
        IpAddr::V4(a) => format!("{scheme}://{a}:{port}"),
        IpAddr::V6(a) => format!("{scheme}://[{a}]:{port}"),
    }
}

/// The spec's URL backend as Traefik gets it (`scheme://host[:port]`), or why not: no
/// credentials, query or fragment (Traefik ignores the path, so a path is refused rather
/// than silently dropped).
pub fn url_server(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?}: only http and https backends"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "{url:?}: credentials do not belong in a backend URL"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || parsed.path() != "/" {
        return Err(format!(
            "{url:?}: Traefik sends the request's own path; give the backend as scheme://host:port"
        ));
    }
    let host = parsed.host_str().ok_or(format!("{url:?} names no host"))?;
    Ok(match parsed.port() {
        Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
        None => format!("{}://{host}", parsed.scheme()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(ns: &str, name: &str, host: &str, path: &str, second: Option<i64>) -> Claim {
        Claim {
            namespace: ns.into(),
            name: name.into(),
            traefik: "default/traefik-internal".into(),
            host: host.into(),
            path_prefix: path.into(),
            created: second.map(|s| jiff::Timestamp::from_second(s).unwrap()),
        }
    }

    #[test]
    fn the_older_route_keeps_a_host_and_path() {
        let old = claim("default", "a", "x.internal", "/", Some(10));
        let new = claim("team", "b", "X.internal", "/", Some(20));
        let other_path = claim("default", "c", "x.internal", "/api", Some(5));
        let all = [old.clone(), new.clone(), other_path.clone()];
        assert_eq!(holder(&new, &all), Some(&old));
        assert_eq!(holder(&old, &all), None);
        assert_eq!(holder(&other_path, &all), None);
        // Same second: namespace, then name.
        let twin = claim("default", "b", "x.internal", "/", Some(10));
        assert_eq!(holder(&twin, &[old.clone(), twin.clone()]), Some(&old));
        assert_eq!(holder(&old, &[old.clone(), twin.clone()]), None);
        // Another Traefik is another place.
        let elsewhere = Claim {
            traefik: "default/traefik-edge".into(),
            ..new.clone()
        };
        assert_eq!(holder(&elsewhere, &all), None);
    }

    #[test]
    fn middlewares_must_be_ones_phoenix_defines() {
        let names = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            unknown_middleware(&names(&["compress", "secure-headers@file"])),
            None
        );
        assert_eq!(
            unknown_middleware(&names(&["compress", "auth"])),
            Some("auth")
        );
        assert_eq!(
            unknown_middleware(&names(&["compress@docker"])),
            Some("compress@docker")
        );
    }

    #[test]
    fn certificates_cover_their_names_and_one_label_below_a_wildcard() {
        let names = vec!["a.internal".to_string(), "*.apps.internal".to_string()];
        assert!(covers(&names, "A.internal"));
        assert!(covers(&names, "x.apps.internal"));
        assert!(!covers(&names, "y.x.apps.internal"));
        assert!(!covers(&names, "b.internal"));
    }

    #[test]
    fn backends_become_server_urls() {
        let v4: IpAddr = "10.0.0.51".parse().unwrap();
        let v6: IpAddr = "fd00::5".parse().unwrap();
        assert_eq!(
            guest_server(Scheme::Https, v4, 8000),
            "https://10.0.0.51:8000"
        );
        assert_eq!(guest_server(Scheme::Http, v6, 80), "http://[fd00::5]:80");
        assert_eq!(
            url_server("http://nas.lan:5000").unwrap(),
            "http://nas.lan:5000"
        );
        assert_eq!(url_server("https://nas.lan/").unwrap(), "https://nas.lan");
        for bad in [
            "ftp://nas.lan",
            "http://u:p@nas.lan",
            "http://nas.lan/app",
            "http://nas.lan/?x=1",
        ] {
            assert!(url_server(bad).is_err(), "{bad}");
        }
    }
}
