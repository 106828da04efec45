//! A node's network configuration as PVE keeps it: the running `/etc/network/interfaces`,
//! the pending `interfaces.new` that every API change writes (a reload makes it the running
//! one), and the interfaces the kernel has up. PVE parses the file anew on every call and
//! writes it back from what it parsed, so the files are kept as text and read and written
//! here as pve-common's `Network/Interfaces.pm` does — the part of it that Linux bridges,
//! bonds, VLANs and NICs use (Open vSwitch is not installed on the simulated nodes, VXLAN
//! and SDN are not simulated).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// One interface as PVE's parser hands it to the API: a hash of its properties.
pub type Iface = Map<String, Value>;

/// A parsed file: interfaces by name, and the lines outside any stanza (`source ...`)
/// with the place they had.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub ifaces: BTreeMap<String, Iface>,
    pub options: Vec<(u64, String)>,
}

/// The physical NICs of a simulated node (`ip link` shows them whatever the file says).
pub const NICS: [&str; 2] = ["eno1", "eno2"];

pub const RUNNING: &str = "/etc/network/interfaces";
pub const PENDING: &str = "/etc/network/interfaces.new";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// `/etc/network/interfaces`.
    #[serde(default)]
    pub running: String,
    /// `/etc/network/interfaces.new`, while changes wait for a reload.
    #[serde(default)]
    pub pending: Option<String>,
    /// Interfaces the kernel has up (what PVE reports as `active`).
    #[serde(default)]
    pub up: BTreeSet<String>,
    /// When each file was last written (seconds): the diff's headers carry them.
    #[serde(default)]
    pub running_mtime: u64,
    #[serde(default)]
    pub pending_mtime: u64,
}

impl Network {
    /// What the PVE installer leaves: the management bridge `vmbr0` on the first NIC with
    /// the node's address, the second NIC unused; all of them up.
    pub fn installed(cidr: &str, gateway: &str) -> Self {
        let running = format!(
            "auto lo\niface lo inet loopback\n\niface eno1 inet manual\n\n\
             auto vmbr0\niface vmbr0 inet static\n\taddress {cidr}\n\tgateway {gateway}\n\
             \tbridge-ports eno1\n\tbridge-stp off\n\tbridge-fd 0\n\n\
             iface eno2 inet manual\n\nsource /etc/network/interfaces.d/*\n"
        );
        Self {
            running,
            pending: None,
            up: ["lo", "eno1", "eno2", "vmbr0"].map(String::from).into(),
            running_mtime: crate::clock::now_s(),
            pending_mtime: 0,
        }
    }

    /// `read_file('interfaces')`: the pending file if there is one, else the running one.
    pub fn read(&self) -> Config {
        parse(self.pending.as_deref().unwrap_or(&self.running), &self.up)
    }

    /// The running file alone, as the kernel has it.
    pub fn read_running(&self) -> Config {
        parse(&self.running, &self.up)
    }

    /// `write_file('interfaces', ...)`: checked and written to `interfaces.new`.
    pub fn write(&mut self, config: Config) -> Result<(), String> {
        self.pending = Some(write(config)?);
        self.pending_mtime = crate::clock::now_s();
        Ok(())
    }

    /// The `changes` PVE reports: `diff -b -N -u interfaces interfaces.new`, or `None`
    /// when nothing differs.
    pub fn changes(&self) -> Option<String> {
        let pending = self.pending.as_deref()?;
        crate::unified_diff::diff(
            (RUNNING, self.running_mtime, &self.running),
            (PENDING, self.pending_mtime, pending),
        )
    }

    /// What `ifreload -a` leaves after `interfaces.new` was renamed over the running
    /// file: what the new file starts (its `auto` interfaces and their ports) is up, as is
    /// whatever was up and is still configured or physical; the rest is gone.
    pub fn apply(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.running = pending;
            self.running_mtime = self.pending_mtime;
        }
        let config = parse(&self.running, &BTreeSet::new());
        let mut up: BTreeSet<String> = self
            .up
            .iter()
            .filter(|i| config.ifaces.contains_key(*i) || NICS.contains(&i.as_str()))
            .cloned()
            .collect();
        for (name, iface) in &config.ifaces {
            if !truthy(iface.get("autostart")) {
                continue;
            }
            up.insert(name.clone());
            for key in ["bridge_ports", "slaves"] {
                up.extend(text(iface, key).split_whitespace().map(str::to_owned));
            }
        }
        self.up = up;
    }
}

/// Perl's truth: what the writer writes at all.
pub fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty() && s != "0",
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(_) => true,
    }
}

/// A property as Perl interpolates it into the file.
pub fn text(iface: &Iface, key: &str) -> String {
    match iface.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Option names the parser reads under PVE's names.
fn alternative(id: &str) -> &str {
    match id {
        "ovs_mtu" => "mtu",
        "bond-slaves" | "bond_slaves" => "slaves",
        "bond-xmit-hash-policy" => "bond_xmit_hash_policy",
        "bond-mode" => "bond_mode",
        "bond-miimon" => "bond_miimon",
        "bridge-vlan-aware" => "bridge_vlan_aware",
        "bridge-fd" => "bridge_fd",
        "bridge-stp" => "bridge_stp",
        "bridge-ports" => "bridge_ports",
        "bridge-vids" => "bridge_vids",
        other => other,
    }
}

/// Options kept as they are written.
const SIMPLE: [&str; 26] = [
    "mtu",
    "ovs_type",
    "ovs_options",
    "ovs_bridge",
    "ovs_bonds",
    "ovs_ports",
    "bridge_fd",
    "bridge_vids",
    "bridge-access",
    "bridge-learning",
    "bridge-arp-nd-suppress",
    "bridge-unicast-flood",
    "bridge-multicast-flood",
    "bridge-disable-mac-learning",
    "bond_miimon",
    "bond_xmit_hash_policy",
    "bond-primary",
    "link-type",
    "uplink-id",
    "vlan-protocol",
    "vlan-raw-device",
    "vlan-id",
    "vxlan-id",
    "vxlan-svcnodeip",
    "vxlan-physdev",
    "vxlan-local-tunnelip",
];

/// The bond modes by the numbers the file may use.
const BOND_MODES: [&str; 7] = [
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
];

fn regex(pattern: &str) -> regex::Regex {
    regex::Regex::new(pattern).expect("static pattern")
}

/// `__read_etc_network_interfaces`, with the NICs of [`NICS`] existing and `up` active.
pub fn parse(text: &str, up: &BTreeSet<String>) -> Config {
    let lines: Vec<&str> = text.lines().collect();
    let mut config = Config::default();
    let auto = regex(r"^\s*(allow-auto|auto|allow-ovs|allow-hotplug)\s+(.*)$");
    let stanza = regex(r"^\s*iface\s+(\S+)(?:\s+(inet6?)\s+(\S+))?\s*$");
    // 1 is reserved for lo.
    let mut priority = 2;
    let mut at = 0;
    while at < lines.len() {
        let line = lines[at];
        at += 1;
        if regex(r"^\s*#").is_match(line) {
            continue;
        }
        if let Some(c) = auto.captures(line) {
            for name in c[2].split_whitespace() {
                let iface = config.ifaces.entry(name.to_owned()).or_default();
                iface.insert("autostart".into(), json!(1));
            }
        } else if let Some(c) = stanza.captures(line) {
            let iface = config.ifaces.entry(c[1].to_owned()).or_default();
            if !truthy(iface.get("priority")) {
                iface.insert("priority".into(), json!(priority));
                priority += 1;
            }
            let family = c.get(2).map(|m| m.as_str().to_owned());
            let method = c.get(3).map(|m| m.as_str().to_owned());
            at = parse_stanza(&lines, at, iface, family, method);
        } else if regex(r"\w").is_match(line) {
            config.options.push((priority, line.to_owned()));
            priority += 1;
        }
    }
    for nic in NICS {
        let iface = config.ifaces.entry(nic.to_owned()).or_default();
        iface.insert("exists".into(), json!(1));
    }
    for name in up {
        if let Some(iface) = config.ifaces.get_mut(name) {
            iface.insert("active".into(), json!(1));
        }
    }
    config.ifaces.entry("lo".into()).or_insert_with(|| {
        json!({"priority": 1, "method": "loopback", "type": "loopback", "autostart": 1})
            .as_object()
            .cloned()
            .unwrap_or_default()
    });
    let names: Vec<String> = config.ifaces.keys().cloned().collect();
    for name in names {
        settle(&mut config.ifaces, &name);
    }
    config
}

/// One `iface` stanza from line `at` on: its options into `iface` (those of an `inet6`
/// block with the suffix `6`). Returns the line that ends it, to be read again.
fn parse_stanza(
    lines: &[&str],
    mut at: usize,
    iface: &mut Iface,
    family: Option<String>,
    method: Option<String>,
) -> usize {
    let suffix = family.as_deref().map(|f| f.trim_start_matches("inet"));
    let families = iface.entry("families").or_insert_with(|| json!([]));
    if let Value::Array(list) = families {
        list.push(json!(family));
    }
    // The family's own properties, merged with the suffix at the end.
    let mut own = Iface::new();
    own.insert("method".into(), json!(method));
    let comment = regex(r"^\s*#(.*?)\s*$");
    let ends = regex(r"^\s*(?:(?:iface|mapping|auto|source|source-directory)\s|allow-)");
    let option = regex(r"^\s*((\S+)\s+(.+))$");
    while at < lines.len() {
        let line = lines[at].trim_end();
        if let Some(c) = comment.captures(line) {
            let to = if suffix.is_some() {
                &mut own
            } else {
                &mut *iface
            };
            let mut comments = text(to, "comments");
            comments.push_str(&format!("{}\n", &c[1]));
            to.insert("comments".into(), json!(comments));
        } else if ends.is_match(line) {
            break;
        } else if let Some(c) = option.captures(line) {
            parse_option(iface, &c[1], &c[2], &c[3], suffix);
        } else {
            break;
        }
        at += 1;
    }
    if let Some(suffix) = suffix {
        for (key, value) in own {
            iface.insert(format!("{key}{suffix}"), value);
        }
    }
    at
}

/// One `key value` line of a stanza into `iface`, as the parser keeps it (options it does
/// not know in the family's own list, `options` or `options6`).
fn parse_option(iface: &mut Iface, line: &str, id: &str, value: &str, suffix: Option<&str>) {
    let id = alternative(id);
    let mut put = |k: String, v: Value| {
        iface.insert(k, v);
    };
    match id {
        "address" | "netmask" | "broadcast" | "gateway" => match suffix {
            Some(suffix) => put(format!("{id}{suffix}"), json!(value)),
            None if id != "netmask" && value.contains(':') => put(format!("{id}6"), json!(value)),
            None => put(id.to_owned(), json!(value)),
        },
        _ if SIMPLE.contains(&id) => put(id.to_owned(), json!(value)),
        "slaves" | "bridge_ports" => {
            let mut devices = BTreeSet::new();
            for port in value.split_whitespace() {
                match port {
                    "none" if id == "bridge_ports" => put("is_empty_bridge".into(), json!(1)),
                    "none" => {}
                    port => {
                        devices.insert(port);
                    }
                }
            }
            let list = devices.into_iter().collect::<Vec<_>>().join(" ");
            let joined = match text(iface, id) {
                old if !old.is_empty() && !list.is_empty() => format!("{old} {list}"),
                old if !old.is_empty() => old,
                _ => list,
            };
            iface.insert(id.to_owned(), json!(joined));
        }
        "bridge_stp" => {
            let on = regex(r"(?i)^\s*(on|yes)\s*$").is_match(value);
            put(id.to_owned(), json!(if on { "on" } else { "off" }));
        }
        "bridge_vlan_aware" => put(id.to_owned(), json!(1)),
        "bond_mode" => {
            let named = value
                .parse::<usize>()
                .ok()
                .and_then(|n| BOND_MODES.get(n).copied())
                .unwrap_or(value);
            put(id.to_owned(), json!(named));
        }
        _ => {
            let key = match suffix {
                Some(suffix) => format!("options{suffix}"),
                None => "options".into(),
            };
            let list = iface.entry(key).or_insert_with(|| json!([]));
            if let Value::Array(list) = list {
                list.push(json!(line));
            }
        }
    }
}

/// The parser's second pass over one interface: its type from its name and options, the
/// bridge defaults, `cidr` from `address`/`netmask`, default methods and families.
fn settle(ifaces: &mut BTreeMap<String, Iface>, name: &str) {
    let kind = kind(ifaces, name);
    let d = ifaces.get_mut(name).expect("listed");
    d.insert("type".into(), json!(kind));
    if kind == "bridge" {
        d.remove("is_empty_bridge");
        if !d.contains_key("bridge_stp") {
            d.insert("bridge_stp".into(), json!("off"));
        }
        if !d.contains_key("bridge_fd") && text(d, "bridge_stp") == "off" {
            d.insert("bridge_fd".into(), json!(0));
        }
    }
    for suffix in ["", "6"] {
        settle_cidr(d, suffix);
    }
    for method in ["method", "method6"] {
        if !truthy(d.get(method)) {
            d.insert(method.into(), json!("manual"));
        }
    }
    if let Some(comments6) = d.remove("comments6") {
        let comments = text(d, "comments") + comments6.as_str().unwrap_or_default();
        d.insert("comments".into(), json!(comments));
    }
    if !truthy(d.get("families")) {
        d.insert("families".into(), json!(["inet"]));
    }
    if kind == "vlan" {
        vlan_exists(ifaces, name);
    }
}

/// The interface's type as the parser derives it.
fn kind(ifaces: &BTreeMap<String, Iface>, name: &str) -> &'static str {
    let d = &ifaces[name];
    let physical = regex(r"^(?:eth\d+|en[^:.]+|ib[^:.]+|(?:nic|if)\d+)$");
    if d.contains_key("bridge_ports") || d.contains_key("is_empty_bridge") {
        "bridge"
    } else if regex(r"^bond\d+$").is_match(name) && !d.contains_key("ovs_type") {
        "bond"
    } else if regex(r"^\S+:\d+$").is_match(name) {
        "alias"
    } else if regex(r"^\S+\.\d+$").is_match(name) || truthy(d.get("vlan-raw-device")) {
        "vlan"
    } else if (NICS.contains(&name) || physical.is_match(name)) && !d.contains_key("ovs_type") {
        "eth"
    } else if name == "lo" {
        "loopback"
    } else if truthy(d.get("vxlan-id")) {
        "vxlan"
    } else if text(d, "link-type") == "dummy" {
        "dummy"
    } else {
        "unknown"
    }
}

/// A VLAN's raw device and id from its name; it exists when its device does.
fn vlan_exists(ifaces: &mut BTreeMap<String, Iface>, name: &str) {
    let d = ifaces.get_mut(name).expect("listed");
    if let Some(c) = regex(r"^(\S+)\.(\d+)$").captures(name) {
        if !truthy(d.get("vlan-raw-device")) {
            d.insert("vlan-raw-device".into(), json!(&c[1]));
        }
        if c[2].parse::<u32>().unwrap_or(0) > 0 {
            d.insert("vlan-id".into(), json!(&c[2]));
        }
    }
    let raw = text(d, "vlan-raw-device");
    let exists = ifaces.get(&raw).map_or(json!(0), |r| {
        r.get("exists").cloned().unwrap_or(Value::Null)
    });
    if let Some(d) = ifaces.get_mut(name) {
        d.insert("exists".into(), exists);
    }
}

/// `address` (`address6`) and `netmask` mapped to `cidr` (`cidr6`) as the parser does.
fn settle_cidr(d: &mut Iface, suffix: &str) {
    let address = text(d, &format!("address{suffix}"));
    if address.is_empty() {
        return;
    }
    let full = if suffix.is_empty() { 32 } else { 128 };
    let netmask = text(d, &format!("netmask{suffix}"));
    let cidr = match address.rsplit_once('/') {
        Some((base, bits)) if bits.chars().all(|c| c.is_ascii_digit()) => {
            d.insert(format!("address{suffix}"), json!(base));
            d.insert(format!("netmask{suffix}"), json!(bits));
            address.clone()
        }
        _ => match mask_bits(&netmask) {
            Some(bits) => {
                if suffix.is_empty() {
                    d.insert("netmask".into(), json!(bits.to_string()));
                }
                format!("{address}/{bits}")
            }
            None => format!("{address}/{full}"),
        },
    };
    d.insert(format!("cidr{suffix}"), json!(cidr));
}

/// A netmask as prefix bits: `24` or `255.255.255.0` (`get_netmask_bits`).
pub fn mask_bits(mask: &str) -> Option<u32> {
    if !mask.is_empty() && mask.chars().all(|c| c.is_ascii_digit()) {
        return mask.parse().ok().filter(|b| *b > 0);
    }
    let ip: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(ip);
    (bits.leading_ones() + bits.trailing_zeros() == 32 && bits != 0).then(|| bits.leading_ones())
}

/// The writer's checks and the file it writes (`__write_etc_network_interfaces`).
pub fn write(mut config: Config) -> Result<String, String> {
    check_ports(&mut config.ifaces)?;
    check_bonds(&mut config.ifaces)?;
    check_vlans(&config.ifaces)?;
    check_bridges(&config.ifaces)?;
    Ok(render(&config))
}

/// The ports an interface takes (bridge ports, bond slaves, OVS ports), as PVE lists them.
pub fn port_list(d: &Iface) -> Vec<String> {
    ["bridge_ports", "ovs_ports", "slaves", "ovs_bonds"]
        .iter()
        .flat_map(|k| {
            text(d, k)
                .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `cidr` back into `address`; a port used by two interfaces is refused.
fn check_ports(ifaces: &mut BTreeMap<String, Iface>) -> Result<(), String> {
    let mut used: BTreeMap<String, String> = BTreeMap::new();
    for (name, d) in ifaces.iter_mut() {
        for suffix in ["", "6"] {
            if let Some(cidr) = d.remove(&format!("cidr{suffix}"))
                && !d.contains_key(&format!("address{suffix}"))
            {
                d.insert(format!("address{suffix}"), cidr);
            }
        }
        for port in port_list(d) {
            if let Some(other) = used.get(&port).filter(|o| *o != name) {
                return Err(format!(
                    "port '{port}' is already used on interface '{other}'"
                ));
            }
            used.insert(port, name.clone());
        }
    }
    Ok(())
}

/// A bond's slaves must be NICs or bonds (they start with it).
fn check_bonds(ifaces: &mut BTreeMap<String, Iface>) -> Result<(), String> {
    let bonds: Vec<(String, Iface)> = ifaces
        .iter()
        .filter(|(_, d)| text(d, "type") == "bond" && truthy(d.get("slaves")))
        .map(|(n, d)| (n.clone(), d.clone()))
        .collect();
    for (name, d) in bonds {
        let primary = text(&d, "bond-primary");
        let slaves = text(&d, "slaves");
        for slave in slaves.split_whitespace() {
            let n = ifaces
                .get_mut(slave)
                .ok_or_else(|| format!("bond '{name}' - unable to find slave '{slave}'"))?;
            n.insert("autostart".into(), json!(1));
            let kind = text(n, "type");
            if kind != "eth" && kind != "bond" {
                return Err(format!(
                    "bond '{name}' - wrong interface type on slave '{slave}' ('{kind}' != 'eth or bond')"
                ));
            }
        }
        if !primary.is_empty() && !slaves.split_whitespace().any(|s| s == primary) {
            return Err(format!(
                "bond '{name}' - bond-primary interface is not a slave"
            ));
        }
    }
    Ok(())
}

/// A VLAN needs its parent, a NIC, bond, bridge or VLAN.
fn check_vlans(ifaces: &BTreeMap<String, Iface>) -> Result<(), String> {
    for (name, d) in ifaces.iter().filter(|(_, d)| text(d, "type") == "vlan") {
        let (parent, id) = match regex(r"^(\S+)\.(\d+)$").captures(name) {
            Some(c) => (c[1].to_owned(), c[2].to_owned()),
            None => {
                let raw = text(d, "vlan-raw-device");
                if raw.is_empty() {
                    return Err("missing vlan-raw-device option".into());
                }
                let id = match regex(r"^vlan(\d+)$").captures(name) {
                    Some(c) => c[1].to_owned(),
                    None => text(d, "vlan-id"),
                };
                if id.is_empty() {
                    return Err("missing vlan-id option".into());
                }
                (raw, id)
            }
        };
        if id.parse::<u64>().unwrap_or(0) > 4094 {
            return Err(format!("vlan '{name}' - vlan-id {id} should be <= 4094"));
        }
        let n = ifaces
            .get(&parent)
            .ok_or_else(|| format!("vlan '{name}' - unable to find parent '{parent}'"))?;
        let kind = text(n, "type");
        if !matches!(kind.as_str(), "eth" | "bridge" | "bond" | "vlan") {
            return Err(format!(
                "vlan '{name}' - wrong interface type on parent '{parent}' ('{kind}' != 'eth|bond|bridge|vlan' )"
            ));
        }
    }
    Ok(())
}

/// A bridge's ports must exist (a `dev.N` port is a VLAN made for it) and carry no address.
fn check_bridges(ifaces: &BTreeMap<String, Iface>) -> Result<(), String> {
    for (name, d) in ifaces.iter().filter(|(_, d)| text(d, "type") == "bridge") {
        for port in text(d, "bridge_ports").split_whitespace() {
            let made = regex(r"\S+\.\d+$").is_match(port);
            let Some(n) = ifaces.get(port) else {
                if made {
                    continue;
                }
                return Err(format!(
                    "bridge '{name}' - unable to find bridge port '{port}'"
                ));
            };
            let static4 = text(n, "method") == "static" && text(n, "address") != "0.0.0.0";
            let static6 = text(n, "method6") == "static" && text(n, "address6") != "::";
            if static4 || static6 {
                return Err(format!(
                    "iface {port} - ip address can't be set on interface if bridged in {name}"
                ));
            }
        }
    }
    Ok(())
}

const HEADER: &str = "# network interface settings; autogenerated
# Please do NOT modify this file directly, unless you know what
# you're doing.
#
# If you want to manage parts of the network configuration manually,
# please utilize the 'source' or 'source-directory' directives to do
# so.
# PVE will preserve these directives, but will NOT read its network
# configuration from sourced files, so do not attempt to move any of
# the PVE managed interfaces into external files!

";

/// Where a type goes in the file (`$if_type_hash`).
fn type_rank(kind: &str) -> Option<u64> {
    Some(match kind {
        "loopback" | "dummy" => 100_000,
        "eth" | "OVSPort" => 200_000,
        "OVSIntPort" => 300_000,
        "OVSBond" | "bond" => 400_000,
        "bridge" | "OVSBridge" => 500_000,
        "vlan" | "vxlan" => 600_000,
        _ => return None,
    })
}

/// The order the writer prints interfaces in: by type (a child after its root), then by
/// the place they had, then by name; unknown types by place alone.
fn order(ifaces: &BTreeMap<String, Iface>) -> Vec<String> {
    let rank = |name: &str| {
        let mut parts = name.split(['.', ':']);
        let root = parts.next().unwrap_or_default();
        let kind = ifaces.get(root).map(|d| text(d, "type"))?;
        Some(type_rank(&kind)? + parts.count() as u64)
    };
    let priority = |name: &str| {
        ifaces[name]
            .get("priority")
            .and_then(|p| p.as_u64().or_else(|| p.as_str()?.parse().ok()))
            .unwrap_or(50_000)
    };
    let mut names: Vec<String> = ifaces.keys().cloned().collect();
    names.sort_by(|a, b| {
        let (ta, tb) = match (rank(a), rank(b)) {
            (Some(ta), Some(tb)) => (ta, tb),
            _ => (0, 0),
        };
        (ta + priority(a), a).cmp(&(tb + priority(b), b))
    });
    names
}

/// The file's text.
fn render(config: &Config) -> String {
    let mut raw = HEADER.to_owned();
    let mut options = config.options.iter().peekable();
    for name in order(&config.ifaces) {
        let d = &config.ifaces[&name];
        let priority = d.get("priority").and_then(Value::as_u64).unwrap_or(0);
        if options.peek().is_some_and(|(p, _)| *p < priority) {
            while let Some((_, line)) = options.next_if(|(p, _)| *p < priority) {
                raw.push_str(&format!("{line}\n"));
            }
            raw.push('\n');
        }
        if truthy(d.get("autostart")) {
            raw.push_str(&format!("auto {name}\n"));
        }
        let families: Vec<Option<String>> = d
            .get("families")
            .and_then(Value::as_array)
            .map(|f| f.iter().map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let mut d = d.clone();
        if families.len() == 1 && families[0].as_deref() == Some("inet6") {
            let comments = d.remove("comments").unwrap_or(Value::Null);
            d.insert("comments6".into(), comments);
        }
        for (i, family) in families.iter().enumerate() {
            raw.push_str(&stanza(&name, &d, family.as_deref(), i == 0));
        }
    }
    for (_, line) in options {
        raw.push_str(&format!("{line}\n"));
    }
    raw
}

/// Properties the stanza prints in their own way, or never.
const DONE: [&str; 21] = [
    "type",
    "priority",
    "method",
    "active",
    "exists",
    "comments",
    "autostart",
    "options",
    "address",
    "netmask",
    "gateway",
    "broadcast",
    "method6",
    "families",
    "options6",
    "comments6",
    "address6",
    "netmask6",
    "gateway6",
    "broadcast6",
    "uplink-id",
];

/// `__interface_to_string`: one family's stanza (the first also carries the options).
fn stanza(name: &str, d: &Iface, family: Option<&str>, first: bool) -> String {
    let suffix = family.map(|f| f.trim_start_matches("inet"));
    if let Some(s) = suffix
        && !truthy(d.get(&format!("method{s}")))
    {
        return String::new();
    }
    let mut raw = format!("iface {name}");
    if let (Some(f), Some(s)) = (family, suffix) {
        raw.push_str(&format!(" {f} {}", text(d, &format!("method{s}"))));
    }
    raw.push('\n');
    let suffixes: Vec<&str> = suffix.map_or(vec!["", "6"], |s| vec![s]);
    for s in &suffixes {
        raw.push_str(&addresses(d, s));
    }
    let mut done: BTreeSet<&str> = DONE.into();
    if first {
        raw.push_str(&type_block(d, &mut done));
        for (key, value) in d {
            if !done.contains(key.as_str()) && truthy(Some(value)) && !value.is_array() {
                raw.push_str(&format!("\t{key} {}\n", text(d, key)));
            }
        }
    }
    for s in &suffixes {
        for option in d
            .get(&format!("options{s}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            raw.push_str(&format!("\t{}\n", option.as_str().unwrap_or_default()));
        }
        for line in text(d, &format!("comments{s}")).lines() {
            raw.push_str(&format!("#{line}\n"));
        }
    }
    raw.push('\n');
    raw
}

/// `address` (with its netmask as prefix bits) and `gateway` of one family.
fn addresses(d: &Iface, suffix: &str) -> String {
    let mut raw = String::new();
    let mut address = text(d, &format!("address{suffix}"));
    if truthy(d.get(&format!("address{suffix}"))) {
        let netmask = text(d, &format!("netmask{suffix}"));
        if !regex(r"/\d+$").is_match(&address)
            && !netmask.is_empty()
            && let Some(bits) = mask_bits(&netmask)
        {
            address = format!("{address}/{bits}");
        }
        raw.push_str(&format!("\taddress {address}\n"));
    }
    if truthy(d.get(&format!("gateway{suffix}"))) {
        raw.push_str(&format!(
            "\tgateway {}\n",
            text(d, &format!("gateway{suffix}"))
        ));
    }
    raw
}

/// The options a bridge or bond writes under its own names.
fn type_block(d: &Iface, done: &mut BTreeSet<&str>) -> String {
    let mut raw = String::new();
    match text(d, "type").as_str() {
        "bridge" => {
            let ports = regex(r"[;,\s]+")
                .replace_all(&text(d, "bridge_ports"), " ")
                .into_owned();
            let ports = if ports.is_empty() {
                "none".into()
            } else {
                ports
            };
            raw.push_str(&format!("\tbridge-ports {ports}\n"));
            let stp = match text(d, "bridge_stp") {
                s if s.is_empty() => "off".to_owned(),
                s => s,
            };
            raw.push_str(&format!("\tbridge-stp {stp}\n"));
            let no_stp = stp == "off";
            match d.get("bridge_fd").filter(|v| !v.is_null()) {
                Some(_) => {
                    let fd = text(d, "bridge_fd");
                    let in_range = fd.parse::<i64>().is_ok_and(|f| (2..=30).contains(&f));
                    if no_stp || in_range {
                        raw.push_str(&format!("\tbridge-fd {fd}\n"));
                    }
                }
                None if no_stp => raw.push_str("\tbridge-fd 0\n"),
                None => {}
            }
            if d.get("bridge_vlan_aware").is_some_and(|v| !v.is_null()) {
                let vids = match text(d, "bridge_vids") {
                    v if truthy(Some(&json!(v))) => v,
                    _ => "2-4094".into(),
                };
                raw.push_str(&format!("\tbridge-vlan-aware yes\n\tbridge-vids {vids}\n"));
            }
            if truthy(d.get("mtu")) {
                raw.push_str(&format!("\tmtu {}\n", text(d, "mtu")));
            }
            done.extend([
                "bridge_ports",
                "bridge_stp",
                "bridge_fd",
                "bridge_vlan_aware",
                "bridge_vids",
                "mtu",
                "bridge-disable-mac-learning",
            ]);
        }
        "bond" => {
            let slaves = regex(r"[;,\s]+")
                .replace_all(&text(d, "slaves"), " ")
                .into_owned();
            let slaves = if slaves.is_empty() {
                "none".into()
            } else {
                slaves
            };
            let or = |k: &str, default: &str| match text(d, k) {
                v if v.is_empty() => default.to_owned(),
                v => v,
            };
            let mode = or("bond_mode", "balance-rr");
            raw.push_str(&format!(
                "\tbond-slaves {slaves}\n\tbond-miimon {}\n\tbond-mode {mode}\n",
                or("bond_miimon", "100")
            ));
            let policy = text(d, "bond_xmit_hash_policy");
            if !policy.is_empty() && (mode == "balance-xor" || mode == "802.3ad") {
                raw.push_str(&format!("\tbond-xmit-hash-policy {policy}\n"));
            }
            let primary = text(d, "bond-primary");
            if mode == "active-backup" && !primary.is_empty() {
                raw.push_str(&format!("\tbond-primary {primary}\n"));
            }
            if truthy(d.get("mtu")) {
                raw.push_str(&format!("\tmtu {}\n", text(d, "mtu")));
            }
            done.extend([
                "slaves",
                "bond_miimon",
                "bond_mode",
                "bond_xmit_hash_policy",
                "bond-primary",
                "mtu",
            ]);
        }
        _ => {}
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_file_reads_as_pve_lists_it_and_writes_back_with_the_header() {
        let network = Network::installed("10.0.0.13/24", "10.0.0.1");
        let config = network.read();
        let vmbr0 = &config.ifaces["vmbr0"];
        assert_eq!(
            Value::Object(vmbr0.clone()),
            json!({"type": "bridge", "method": "static", "method6": "manual", "families": ["inet"],
                   "autostart": 1, "active": 1, "priority": 4, "address": "10.0.0.13", "netmask": "24",
                   "cidr": "10.0.0.13/24", "gateway": "10.0.0.1", "bridge_ports": "eno1",
                   "bridge_stp": "off", "bridge_fd": "0"})
        );
        assert_eq!(text(&config.ifaces["eno2"], "type"), "eth");
        assert_eq!(config.ifaces["eno2"]["exists"], json!(1));
        let written = write(config.clone()).unwrap();
        assert!(written.starts_with(HEADER), "{written}");
        // NICs before bridges; the `source` line stays last.
        let body = &written[HEADER.len()..];
        assert_eq!(
            body,
            "auto lo\niface lo inet loopback\n\niface eno1 inet manual\n\niface eno2 inet manual\n\n\
             auto vmbr0\niface vmbr0 inet static\n\taddress 10.0.0.13/24\n\tgateway 10.0.0.1\n\
             \tbridge-ports eno1\n\tbridge-stp off\n\tbridge-fd 0\n\n\
             source /etc/network/interfaces.d/*\n"
        );
        // Read back and written again, it stays as it is.
        assert_eq!(write(parse(&written, &network.up)).unwrap(), written);
    }

    #[test]
    fn netmasks_read_as_prefix_bits() {
        assert_eq!(mask_bits("255.255.255.0"), Some(24));
        assert_eq!(mask_bits("24"), Some(24));
        assert_eq!(mask_bits("255.0.255.0"), None);
    }
}
