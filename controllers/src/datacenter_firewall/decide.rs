//! The datacenter firewall decided: the IP sets wanted (the spec's `management`, and one
//! per role derived from the routes), what changes them, and whether enabling the firewall
//! would lock Phoenix out. Entries are compared as PVE stores them (`10.0.0.11/24` is the
//! network `10.0.0.0/24`), so nothing flaps.

use phoenix_crds::proxmox_cluster::{FirewallAlias, SecurityGroup};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// PVE's IP set whose members always reach the web UI, API and SSH.
pub const MANAGEMENT: &str = "management";
pub const TRAEFIK: &str = "phoenix-traefik";
pub const GATEWAY: &str = "phoenix-gateway";
pub const ACME_CLIENTS: &str = crate::step_ca_access::SET;

/// IP sets by name, each a set of normalised entries.
pub type Sets = BTreeMap<String, BTreeSet<String>>;

/// `10.0.0.11/24` → `10.0.0.0/24`; a host prefix (`/32`, `/128`) or none → the bare
/// address; anything else → `None`.
pub fn normalise(entry: &str) -> Option<String> {
    let (address, prefix) = match entry.split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
        None => (entry.parse::<IpAddr>().ok()?, None),
    };
    let bits = if address.is_ipv4() { 32 } else { 128 };
    match prefix {
        None => Some(address.to_string()),
        Some(p) if p > bits => None,
        Some(p) if p == bits => Some(address.to_string()),
        Some(p) => Some(format!("{}/{p}", network(address, p))),
    }
}

fn network(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// Whether `entry` (normalised) covers `ip`.
pub fn covers(entry: &str, ip: IpAddr) -> bool {
    match entry.split_once('/') {
        None => entry.parse::<IpAddr>().is_ok_and(|a| a == ip),
        Some((net, prefix)) => match (net.parse::<IpAddr>(), prefix.parse::<u8>()) {
            (Ok(net), Ok(p)) => net.is_ipv4() == ip.is_ipv4() && network(ip, p) == net,
            _ => false,
        },
    }
}

/// Enabling the firewall without the address Phoenix reaches PVE from in `management`
/// would cut Phoenix (and likely its operator) off: refused.
pub fn would_lock_out(enabled: bool, management: &BTreeSet<String>, from: IpAddr) -> bool {
    enabled && !management.iter().any(|e| covers(e, from))
}

/// One change to the IP sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetChange {
    Create(String),
    Add(String, String),
    Remove(String, String),
}

/// The changes from `observed` to `wanted`; sets Phoenix does not manage are left alone.
pub fn plan_sets(wanted: &Sets, observed: &Sets) -> Vec<SetChange> {
    let mut changes = Vec::new();
    let none = BTreeSet::new();
    for (name, entries) in wanted {
        let live = match observed.get(name) {
            Some(live) => live,
            None => {
                changes.push(SetChange::Create(name.clone()));
                &none
            }
        };
        for entry in entries.difference(live) {
            changes.push(SetChange::Add(name.clone(), entry.clone()));
        }
        for entry in live.difference(entries) {
            changes.push(SetChange::Remove(name.clone(), entry.clone()));
        }
    }
    changes
}

/// The sets wanted: `management` from the spec (when it names any) and the role sets
/// from the addresses of the guests routes go through and of Step-CA's clients.
pub fn wanted_sets(
    management: &[String],
    traefik: &[String],
    gateway: &[String],
    acme_clients: Option<&[String]>,
) -> Sets {
    let set = |entries: &[String]| entries.iter().filter_map(|e| normalise(e)).collect();
    let mut sets = Sets::from([
        (TRAEFIK.to_owned(), set(traefik)),
        (GATEWAY.to_owned(), set(gateway)),
    ]);
    if let Some(clients) = acme_clients {
        sets.insert(ACME_CLIENTS.to_owned(), set(clients));
    }
    if !management.is_empty() {
        sets.insert(MANAGEMENT.to_owned(), set(management));
    }
    sets
}

/// A change to one of the spec's aliases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AliasChange<'a> {
    Add(&'a FirewallAlias),
    Update(&'a FirewallAlias),
}

/// The spec's aliases against PVE's list (`GET /cluster/firewall/aliases`): addresses
/// compared as PVE stores them, names as PVE matches them (case aside); aliases not in the
/// spec are left alone.
pub fn plan_aliases<'a>(spec: &'a [FirewallAlias], live: &[Value]) -> Vec<AliasChange<'a>> {
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().trim().to_owned();
    spec.iter()
        .filter_map(|alias| {
            let found = live
                .iter()
                .find(|l| text(l, "name").eq_ignore_ascii_case(&alias.name));
            let Some(found) = found else {
                return Some(AliasChange::Add(alias));
            };
            let same_cidr = text(found, "cidr") == as_alias_stored(&alias.cidr);
            let same_comment =
                text(found, "comment") == alias.comment.as_deref().unwrap_or("").trim();
            (!same_cidr || !same_comment).then_some(AliasChange::Update(alias))
        })
        .collect()
}

/// An alias's address as PVE keeps it: as given, but for a host prefix (`/32`, `/128`).
fn as_alias_stored(cidr: &str) -> &str {
    cidr.strip_suffix("/32")
        .or_else(|| cidr.strip_suffix("/128"))
        .unwrap_or(cidr)
}

/// The spec's security groups PVE does not have yet (`GET /cluster/firewall/groups`).
pub fn missing_groups<'a>(spec: &'a [SecurityGroup], live: &[Value]) -> Vec<&'a SecurityGroup> {
    spec.iter()
        .filter(|g| {
            !live
                .iter()
                .any(|l| l["group"].as_str() == Some(g.name.as_str()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(name: &str, cidr: &str) -> FirewallAlias {
        FirewallAlias {
            name: name.into(),
            cidr: cidr.into(),
            comment: None,
        }
    }

    #[test]
    fn aliases_are_added_updated_or_left_as_pve_stores_them() {
        let spec = [
            alias("nas", "10.0.0.5"),
            alias("lan", "10.0.0.7/24"),
            alias("new", "10.0.0.9"),
        ];
        let live = serde_json::json!([
            {"name": "nas", "cidr": "10.0.0.6", "ipversion": 4},
            {"name": "LAN", "cidr": "10.0.0.7/24", "ipversion": 4},
            {"name": "theirs", "cidr": "10.0.0.1"}
        ]);
        let changes = plan_aliases(&spec, live.as_array().unwrap());
        assert_eq!(
            changes,
            [AliasChange::Update(&spec[0]), AliasChange::Add(&spec[2])]
        );
        let mut commented = alias("nas", "10.0.0.6");
        commented.comment = Some("the NAS".into());
        let changes = plan_aliases(std::slice::from_ref(&commented), live.as_array().unwrap());
        assert_eq!(changes, [AliasChange::Update(&commented)]);
    }

    #[test]
    fn only_groups_pve_lacks_are_created() {
        let group = |name: &str| SecurityGroup {
            name: name.into(),
            comment: None,
            rules: vec![],
        };
        let spec = [group("web"), group("ssh")];
        let live = serde_json::json!([{"group": "web", "digest": "x"}]);
        assert_eq!(missing_groups(&spec, live.as_array().unwrap()), [&spec[1]]);
    }

    #[test]
    fn entries_are_compared_as_pve_stores_them() {
        let cases = [
            ("10.0.0.11/24", Some("10.0.0.0/24")),
            ("10.0.0.11", Some("10.0.0.11")),
            ("10.0.0.11/32", Some("10.0.0.11")),
            ("10.0.0.0/8", Some("10.0.0.0/8")),
            ("fd00::13/64", Some("fd00::/64")),
            ("10.0.0.1/33", None),
            ("nonsense", None),
        ];
        for (entry, normal) in cases {
            assert_eq!(normalise(entry).as_deref(), normal, "{entry}");
        }
    }

    #[test]
    fn enabling_without_the_address_phoenix_comes_from_is_a_lock_out() {
        let from: IpAddr = "10.0.0.50".parse().unwrap();
        let set = |e: &[&str]| e.iter().map(|s| normalise(s).unwrap()).collect();
        assert!(would_lock_out(true, &set(&[]), from));
        assert!(would_lock_out(true, &set(&["10.0.1.0/24"]), from));
        assert!(!would_lock_out(true, &set(&["10.0.0.0/24"]), from));
        assert!(!would_lock_out(true, &set(&["10.0.0.50"]), from));
        assert!(!would_lock_out(false, &set(&[]), from));
    }

    #[test]
    fn a_moved_guest_is_one_entry_removed_and_one_added() {
        let wanted = wanted_sets(&["10.0.0.0/24".into()], &["10.0.0.13".into()], &[], None);
        let mut observed = wanted.clone();
        assert!(
            plan_sets(&wanted, &observed).is_empty(),
            "nothing at steady state"
        );
        observed
            .get_mut(TRAEFIK)
            .unwrap()
            .extend(["10.0.0.12".to_owned()]);
        observed.get_mut(TRAEFIK).unwrap().remove("10.0.0.13");
        assert_eq!(
            plan_sets(&wanted, &observed),
            [
                SetChange::Add(TRAEFIK.into(), "10.0.0.13".into()),
                SetChange::Remove(TRAEFIK.into(), "10.0.0.12".into()),
            ]
        );
        observed.remove(GATEWAY);
        observed.insert("theirs".into(), BTreeSet::from(["1.2.3.4".to_owned()]));
        let changes = plan_sets(&wanted, &observed);
        assert!(changes.contains(&SetChange::Create(GATEWAY.into())));
        assert!(!changes.iter().any(|c| format!("{c:?}").contains("theirs")));
    }
}
