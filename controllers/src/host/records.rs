//! The DNS records dnsmasq serves, derived from the objects: one hosts-format file per
//! guest (HOSTNAME and HOSTNAME.DOMAIN → the address the guest reports), one per route
//! (its host → Traefik, or the Nginx gateway for a public route), one for the spec's own
//! records. One file per source, so a guest changing is one file written; each name in
//! exactly one file (dnsmasq keeps a name under the file it read first): the spec's
//! records win, then the routes, then the guests.

use phoenix_crds::proxmox_host::Dnsmasq;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A guest as the records see it.
#[derive(Clone, Debug, PartialEq)]
pub struct GuestName {
    /// `LxcGuest` or `VmGuest`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    /// As the guest reports it (status); `None` while it has none.
    pub address: Option<String>,
}

/// A route as the records see it.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteName {
    pub namespace: String,
    pub name: String,
    pub host: String,
    /// What answers for the host (Traefik's guest, or the gateway's for a public route),
    /// and its address once it has one.
    pub via: String,
    pub address: Option<String>,
}

/// The record files, by file name, and what has no record yet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Records {
    pub files: BTreeMap<String, String>,
    /// Names answered.
    pub names: usize,
    /// Sources without a usable address yet (`LxcGuest default/web: no address yet`).
    pub waiting: Vec<String>,
}

/// The file of the spec's own records.
pub const STATIC_FILE: &str = "static";

pub fn derive(dnsmasq: &Dnsmasq, guests: &[GuestName], routes: &[RouteName]) -> Records {
    let mut records = Records::default();
    let mut taken = BTreeSet::new();
    // The spec's own records first, then the routes' hosts (the names clients are meant to
    // use: a route named like a guest's FQDN answers at Traefik), then the guests.
    let own: Vec<(&str, &str)> = dnsmasq
        .records
        .iter()
        .map(|r| (r.name.as_str(), r.address.as_str()))
        .collect();
    let lines: Vec<String> = own
        .iter()
        .filter_map(|(name, address)| line(address, &[name], &mut taken))
        .collect();
    records.add(STATIC_FILE, "the spec's records", lines);
    for route in routes {
        // Only names of the platform's domain are answered here: a route cannot make the
        // node's resolver lie about a name elsewhere.
        if !under(&route.host, &dnsmasq.domain) {
            continue;
        }
        let source = format!("TraefikService {}/{}", route.namespace, route.name);
        let Some(address) = usable(route.address.as_deref()) else {
            records
                .waiting
                .push(format!("{source}: {} has no address yet", route.via));
            continue;
        };
        let lines = line(&address, &[route.host.as_str()], &mut taken)
            .into_iter()
            .collect();
        let file = format!("traefikservice.{}.{}", route.namespace, route.name);
        records.add(&file, &source, lines);
    }
    for guest in guests {
        let source = format!("{} {}/{}", guest.kind, guest.namespace, guest.name);
        let Some(address) = usable(guest.address.as_deref()) else {
            records.waiting.push(format!("{source}: no address yet"));
            continue;
        };
        let fqdn = qualified(&guest.hostname, &dnsmasq.domain);
        let names = [guest.hostname.as_str(), fqdn.as_str()];
        let lines = line(&address, &names, &mut taken).into_iter().collect();
        let file = format!(
            "{}.{}.{}",
            guest.kind.to_lowercase(),
            guest.namespace,
            guest.name
        );
        records.add(&file, &source, lines);
    }
    records
}

impl Records {
    /// A file for `source` holding `lines` (none when every name was taken already).
    fn add(&mut self, file: &str, source: &str, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        self.names += lines
            .iter()
            .map(|l| l.split_whitespace().count() - 1)
            .sum::<usize>();
        let mut content = format!("# {source} (managed by Phoenix; rewritten on change)\n");
        for l in lines {
            content.push_str(&l);
            content.push('\n');
        }
        self.files.insert(file.to_owned(), content);
    }
}

/// `ADDRESS NAME…` for the names not taken yet (taking them).
fn line(address: &str, names: &[&str], taken: &mut BTreeSet<String>) -> Option<String> {
    let fresh: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| taken.insert((*n).to_owned()))
        .collect();
    (!fresh.is_empty()).then(|| format!("{address} {}", fresh.join(" ")))
}

/// An address a record can carry: an IP, with any prefix length dropped. Status is ours,
/// but nothing reaches a file on the host without being parsed first.
fn usable(address: Option<&str>) -> Option<String> {
    let bare = address?.split('/').next()?;
    bare.parse::<IpAddr>().ok().map(|ip| ip.to_string())
}

fn under(name: &str, domain: &str) -> bool {
    name == domain || name.ends_with(&format!(".{domain}"))
}

/// `web` → `web.internal.example`; a name already under the domain stays as it is.
fn qualified(hostname: &str, domain: &str) -> String {
    if under(hostname, domain) {
        hostname.to_owned()
    } else {
        format!("{hostname}.{domain}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_crds::proxmox_host::DnsRecord;

    fn dnsmasq(records: &[(&str, &str)]) -> Dnsmasq {
        Dnsmasq {
            domain: "internal.example".into(),
            listen_addresses: vec![],
            upstreams: vec![],
            wildcard: None,
            records: records
                .iter()
                .map(|(n, a)| DnsRecord {
                    name: (*n).into(),
                    address: (*a).into(),
                })
                .collect(),
        }
    }

    fn guest(name: &str, hostname: &str, address: Option<&str>) -> GuestName {
        GuestName {
            kind: "LxcGuest",
            namespace: "default".into(),
            name: name.into(),
            hostname: hostname.into(),
            address: address.map(str::to_owned),
        }
    }

    fn route(name: &str, host: &str, address: Option<&str>) -> RouteName {
        RouteName {
            namespace: "default".into(),
            name: name.into(),
            host: host.into(),
            via: "LxcGuest default/traefik".into(),
            address: address.map(str::to_owned),
        }
    }

    #[test]
    fn each_guest_and_route_gets_its_own_file() {
        let records = derive(
            &dnsmasq(&[("pve.internal.example", "10.0.0.13")]),
            &[
                guest("web", "web", Some("10.0.0.20")),
                guest("db", "db.internal.example", Some("10.0.0.21/24")),
            ],
            &[route("app", "app.internal.example", Some("10.0.0.12"))],
        );
        let files: Vec<(&str, &str)> = records
            .files
            .iter()
            .map(|(f, c)| (f.as_str(), c.lines().nth(1).unwrap()))
            .collect();
        assert_eq!(
            files,
            [
                ("lxcguest.default.db", "10.0.0.21 db.internal.example"),
                ("lxcguest.default.web", "10.0.0.20 web web.internal.example"),
                ("static", "10.0.0.13 pve.internal.example"),
                (
                    "traefikservice.default.app",
                    "10.0.0.12 app.internal.example"
                ),
            ]
        );
        assert_eq!(records.names, 5);
        assert!(records.waiting.is_empty());
    }

    #[test]
    fn no_address_no_record_and_each_name_once() {
        let records = derive(
            &dnsmasq(&[("web.internal.example", "10.0.0.99")]),
            &[
                guest("web", "web", Some("10.0.0.20")),
                guest("new", "new", None),
                guest("odd", "odd", Some("not-an-address")),
                guest("twin", "web", Some("10.0.0.30")),
            ],
            &[
                route("app", "app.internal.example", None),
                route("elsewhere", "github.com", Some("10.0.0.12")),
            ],
        );
        assert!(
            !records
                .files
                .contains_key("traefikservice.default.elsewhere"),
            "a host outside the domain is not answered"
        );
        // The spec's record keeps its name; the first guest keeps the short one; the twin
        // has nothing left.
        assert_eq!(
            records.files["lxcguest.default.web"].lines().nth(1),
            Some("10.0.0.20 web")
        );
        assert!(!records.files.contains_key("lxcguest.default.twin"));
        assert_eq!(
            records.waiting,
            [
                "TraefikService default/app: LxcGuest default/traefik has no address yet",
                "LxcGuest default/new: no address yet",
                "LxcGuest default/odd: no address yet",
            ]
        );
    }
}
