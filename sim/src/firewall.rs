//! The datacenter firewall (`/etc/pve/firewall/cluster.fw`): options, aliases, IP sets,
//! rules and security groups. PVE answers every call from a fresh parse of that file, so
//! what its writer and parser do to a value is what clients see; the state is kept as it
//! reads back (IP set and group names in lower case, entries sorted, `/32` dropped), and
//! this module holds those habits (pve-firewall `src/PVE/Firewall.pm`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterFirewall {
    /// `[OPTIONS]`: `enable`, `ebtables` (numbers), `policy_*`, `log_ratelimit`.
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
    /// `[IPSET name]` sections, by name.
    #[serde(default)]
    pub ipsets: BTreeMap<String, IpSet>,
    /// `[RULES]`, top first, each as the parser reads it back.
    #[serde(default)]
    pub rules: Vec<Value>,
    /// `[group name]` sections (security groups), by name in lower case.
    #[serde(default)]
    pub groups: BTreeMap<String, Group>,
    /// `[ALIASES]`, by name in lower case (PVE's key; each keeps its name as given).
    #[serde(default)]
    pub aliases: BTreeMap<String, Alias>,
}

/// A security group: its comment and rules (top first, as the parser reads them back).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub rules: Vec<Value>,
}

/// An IP alias as `parse_alias` reads it back: the name as written, the address as given
/// but for a `/32` (IPv4) or `/128` (IPv6) prefix (no host bits cleared).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    pub name: String,
    pub cidr: String,
    #[serde(default)]
    pub comment: Option<String>,
}

impl Alias {
    /// `parse_ip_or_cidr`'s IP version.
    pub fn ipversion(&self) -> u8 {
        if self.cidr.contains(':') { 6 } else { 4 }
    }

    /// As `GET aliases` lists it (without the digest).
    pub fn json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("cidr".into(), json!(self.cidr));
        out.insert("ipversion".into(), json!(self.ipversion()));
        if let Some(c) = &self.comment {
            out.insert("comment".into(), json!(c));
        }
        out
    }
}

/// An alias's address as `parse_ip_or_cidr` reads it back: a full-length prefix dropped,
/// nothing else changed.
pub fn alias_cidr(text: &str) -> String {
    let full = if text.contains(':') { "/128" } else { "/32" };
    text.strip_suffix(full).unwrap_or(text).to_owned()
}

/// A node's host firewall (`/etc/pve/nodes/<node>/host.fw`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFirewall {
    /// `[OPTIONS]` as the parser reads them back (flags and numbers as numbers, log levels
    /// in lower case); absent ones take their defaults (`enable` is on).
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
    /// `[RULES]`, top first, each as the parser reads it back.
    #[serde(default)]
    pub rules: Vec<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IpSet {
    #[serde(default)]
    pub comment: Option<String>,
    /// Sorted by `cidr`: PVE writes a set's entries sorted and lists them as read.
    #[serde(default)]
    pub entries: Vec<IpSetEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IpSetEntry {
    pub cidr: String,
    #[serde(default)]
    pub nomatch: bool,
    #[serde(default)]
    pub comment: Option<String>,
}

impl IpSetEntry {
    /// As listed, without the parser's `errors`.
    pub fn json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("cidr".into(), json!(self.cidr));
        if self.nomatch {
            out.insert("nomatch".into(), json!(1));
        }
        if let Some(c) = &self.comment {
            out.insert("comment".into(), json!(c));
        }
        out
    }
}

impl IpSet {
    /// Adds an entry where the file's sorted order puts it.
    pub fn insert(&mut self, entry: IpSetEntry) {
        let at = self.entries.partition_point(|e| e.cidr < entry.cidr);
        self.entries.insert(at, entry);
    }
}

/// An IP set entry's address as PVE stores it: host bits cleared below the prefix
/// (`clean_cidr`, IPv6 compressed), then a `/32` (IPv4) or `/128` (IPv6) prefix dropped
/// (`parse_ip_or_cidr`); a bare address is kept as given. `None` if it is no address.
pub fn normalise_cidr(text: &str) -> Option<String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    // Perl's `!$len`: an empty or "0" prefix leaves the text alone (a zero prefix is refused
    // later, with its own message).
    let cleaned = match len.filter(|l| !l.is_empty() && *l != "0") {
        None => text.to_owned(),
        Some(l) => {
            let bits: u32 = l.parse().ok()?;
            format!("{}/{l}", masked(ip, bits)?)
        }
    };
    let full = if ip.is_ipv4() { "/32" } else { "/128" };
    Some(
        cleaned
            .strip_suffix(full)
            .map(str::to_owned)
            .unwrap_or(cleaned),
    )
}

fn masked(ip: IpAddr, bits: u32) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask)))
        }
        IpAddr::V6(v6) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            Some(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
        }
        _ => None,
    }
}

/// A value as Perl prints it into the digest (numbers bare, strings as they are).
fn perl_text(v: &Value) -> Option<String> {
    match v {
        Value::Null | Value::Object(_) | Value::Array(_) => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn sha1_hex(text: &str) -> String {
    use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
    digest(&SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `k:v\n` for every scalar of `object`, keys sorted: what PVE's digests hash (nested
/// values such as a rule's `errors` are left out, as PVE leaves out references).
fn hashed(object: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort();
    keys.into_iter()
        .filter_map(|k| Some(format!("{k}:{}\n", perl_text(&object[k])?)))
        .collect()
}

/// PVE's `copy_list_with_digest`: the items, each with the digest of the whole list.
pub fn list_with_digest(items: Vec<Map<String, Value>>) -> (Vec<Map<String, Value>>, String) {
    let digest = sha1_hex(&items.iter().map(hashed).collect::<String>());
    let items = items
        .into_iter()
        .map(|mut i| {
            i.insert("digest".into(), json!(digest));
            i
        })
        .collect();
    (items, digest)
}

/// PVE's `copy_opject_with_digest` (sic): the object with its own digest.
pub fn object_with_digest(mut object: Map<String, Value>) -> (Map<String, Value>, String) {
    let digest = sha1_hex(&hashed(&object));
    object.insert("digest".into(), json!(digest));
    (object, digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_stored_as_pve_parses_them() {
        let cases = [
            ("10.0.0.11/24", "10.0.0.0/24"),
            ("10.0.0.11", "10.0.0.11"),
            ("10.0.0.11/32", "10.0.0.11"),
            ("192.168.7.200/30", "192.168.7.200/30"),
            ("192.168.7.201/30", "192.168.7.200/30"),
            ("10.0.0.1/0", "10.0.0.1/0"),
            ("fd00:0:0:0::5/64", "fd00::/64"),
            ("fd00::5/128", "fd00::5"),
            ("fd00:0::5", "fd00:0::5"),
        ];
        for (given, stored) in cases {
            assert_eq!(normalise_cidr(given).as_deref(), Some(stored), "{given}");
        }
        assert_eq!(normalise_cidr("10.0.0.1/33"), None);
        // An alias keeps its host bits: only a full-length prefix goes.
        assert_eq!(alias_cidr("10.0.0.11/24"), "10.0.0.11/24");
        assert_eq!(alias_cidr("10.0.0.11/32"), "10.0.0.11");
        assert_eq!(alias_cidr("fd00::5/128"), "fd00::5");
        assert_eq!(alias_cidr("fd00::/32"), "fd00::/32");
        assert_eq!(normalise_cidr("nonsense"), None);
    }

    #[test]
    fn the_digest_is_pves_sha1_of_sorted_key_lines() {
        // sha1("") as PVE answers for empty options.
        let (_, empty) = object_with_digest(Map::new());
        assert_eq!(empty, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        let mut one = Map::new();
        one.insert("enable".into(), json!(1));
        one.insert("errors".into(), json!({"source": "x"}));
        assert_eq!(object_with_digest(one).1, sha1_hex("enable:1\n"));
    }
}
