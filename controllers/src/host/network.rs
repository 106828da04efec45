//! Bridge decisions, pure: what to stage in PVE's pending network config (create or
//! update a bridge, as PVE's API takes it) from what `GET /nodes/{node}/network` lists,
//! and whether a change would take away the address Phoenix reaches PVE at.

use phoenix_crds::host_network::Bridge;
use serde_json::Value;
use std::collections::BTreeSet;

pub type Params = Vec<(String, String)>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BridgeChange {
    Create { name: String, params: Params },
    Update { name: String, params: Params },
}

impl BridgeChange {
    pub fn name(&self) -> &str {
        match self {
            BridgeChange::Create { name, .. } | BridgeChange::Update { name, .. } => name,
        }
    }
}

impl std::fmt::Display for BridgeChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (verb, name, params) = match self {
            BridgeChange::Create { name, params } => ("create", name, params),
            BridgeChange::Update { name, params } => ("update", name, params),
        };
        let keys: Vec<&str> = params
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| *k != "type" && *k != "iface")
            .collect();
        write!(f, "{verb} bridge {name} ({})", keys.join(", "))
    }
}

/// A listed field as text (PVE lists flags as numbers).
fn field(iface: &Value, key: &str) -> String {
    match &iface[key] {
        Value::String(s) => s.trim().to_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn ports(text: &str) -> BTreeSet<&str> {
    text.split_whitespace().collect()
}

/// The fields of `bridge` as PVE's API names them; empty values are absent.
fn wanted(bridge: &Bridge) -> Vec<(&'static str, String)> {
    vec![
        ("bridge_ports", bridge.ports.join(" ")),
        ("cidr", bridge.cidr.clone().unwrap_or_default()),
        ("gateway", bridge.gateway.clone().unwrap_or_default()),
        (
            "bridge_vlan_aware",
            if bridge.vlan_aware { "1" } else { "" }.to_owned(),
        ),
        ("comments", bridge.comment.clone().unwrap_or_default()),
    ]
}

pub fn plan(spec: &[Bridge], listed: &[Value]) -> Vec<BridgeChange> {
    spec.iter().filter_map(|b| plan_bridge(b, listed)).collect()
}

fn plan_bridge(bridge: &Bridge, listed: &[Value]) -> Option<BridgeChange> {
    let found = listed
        .iter()
        .find(|i| i["iface"].as_str() == Some(&bridge.name));
    let base = |extra: &[(&str, &str)]| -> Params {
        let mut params = vec![
            ("iface".to_owned(), bridge.name.clone()),
            ("type".to_owned(), "bridge".to_owned()),
        ];
        params.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        params
    };
    let Some(found) = found else {
        let mut params = base(&[("autostart", "1")]);
        params.extend(
            wanted(bridge)
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_owned(), v)),
        );
        return Some(BridgeChange::Create {
            name: bridge.name.clone(),
            params,
        });
    };
    // PVE's update rewrites the interface from what it is sent (without `cidr` the
    // address is dropped to `manual`): every wanted field goes, the absent ones deleted.
    let differs = wanted(bridge).into_iter().any(|(key, value)| {
        let live = field(found, key);
        match key {
            "bridge_ports" => ports(&live) != ports(&value),
            "bridge_vlan_aware" => (live == "1") != (value == "1"),
            _ => live != value,
        }
    });
    if !differs {
        return None;
    }
    let mut params = base(&[("autostart", "1")]);
    let mut deleted = Vec::new();
    for (key, value) in wanted(bridge) {
        match value.is_empty() {
            true if !field(found, key).is_empty() => deleted.push(key),
            true => {}
            false => params.push((key.to_owned(), value)),
        }
    }
    if !deleted.is_empty() {
        params.push(("delete".into(), deleted.join(",")));
    }
    Some(BridgeChange::Update {
        name: bridge.name.clone(),
        params,
    })
}

/// What PVE would refuse and the schema cannot say: a bridge named twice, a gateway
/// without an address, two default gateways.
pub fn validate(spec: &[Bridge]) -> Result<(), String> {
    let mut names = BTreeSet::new();
    for bridge in spec {
        if !names.insert(bridge.name.as_str()) {
            return Err(format!("bridge {} is named twice", bridge.name));
        }
        if bridge.gateway.is_some() && bridge.cidr.is_none() {
            return Err(format!(
                "bridge {}: a gateway needs an address (cidr)",
                bridge.name
            ));
        }
    }
    let gateways: Vec<&str> = spec
        .iter()
        .filter(|b| b.gateway.is_some())
        .map(|b| b.name.as_str())
        .collect();
    if gateways.len() > 1 {
        return Err(format!(
            "only one default gateway per node: {} both name one",
            gateways.join(" and ")
        ));
    }
    Ok(())
}

/// Why applying `changes` would cut Phoenix off from PVE, if it would. The interface that
/// carries the address Phoenix reaches PVE at (when the endpoint is a name: the one with
/// the default gateway) must keep its address, gateway and ports, and no other bridge may
/// take its ports (or the interface itself).
pub fn lock_out(
    spec: &[Bridge],
    changes: &[BridgeChange],
    listed: &[Value],
    endpoint_host: &str,
) -> Option<String> {
    let literal = endpoint_host.parse::<std::net::IpAddr>().is_ok();
    let carrier = listed.iter().find(|i| match literal {
        true => {
            let cidr = field(i, "cidr");
            cidr.split('/').next() == Some(endpoint_host) || field(i, "address") == endpoint_host
        }
        false => !field(i, "gateway").is_empty(),
    })?;
    let name = carrier["iface"].as_str()?;
    let live_ports = field(carrier, "bridge_ports");
    let mut taken: BTreeSet<&str> = ports(&live_ports);
    taken.insert(name);
    let refuse = |what: &str| {
        Some(format!(
            "{name} carries {endpoint_host}, the address Phoenix reaches PVE at: {what} could cut Phoenix off; make that change by hand (or point the cluster's endpoint at another address first)"
        ))
    };
    for change in changes {
        let bridge = spec.iter().find(|b| b.name == change.name())?;
        if change.name() != name {
            if bridge.ports.iter().any(|p| taken.contains(p.as_str())) {
                return refuse(&format!("bridge {} taking its ports", bridge.name));
            }
            continue;
        }
        let live_cidr = field(carrier, "cidr");
        let keeps_address = match literal {
            true => bridge
                .cidr
                .as_deref()
                .is_some_and(|c| c.split('/').next() == Some(endpoint_host)),
            false => bridge.cidr.as_deref() == Some(live_cidr.as_str()),
        };
        let keeps_gateway =
            bridge.gateway.as_deref().unwrap_or_default() == field(carrier, "gateway");
        let keeps_ports = ports(&live_ports) == bridge.ports.iter().map(String::as_str).collect();
        if !(keeps_address && keeps_gateway && keeps_ports) {
            return refuse("changing its address, gateway or ports");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bridge(name: &str, cidr: Option<&str>, ports: &[&str]) -> Bridge {
        Bridge {
            name: name.into(),
            ports: ports.iter().map(|p| (*p).to_owned()).collect(),
            cidr: cidr.map(str::to_owned),
            gateway: None,
            vlan_aware: false,
            comment: None,
        }
    }

    fn listed() -> Vec<Value> {
        vec![
            json!({"iface": "eno1", "type": "eth"}),
            json!({"iface": "vmbr0", "type": "bridge", "cidr": "10.0.0.13/24", "gateway": "10.0.0.1",
                   "bridge_ports": "eno1", "autostart": 1, "comments": "LAN\n"}),
        ]
    }

    #[test]
    fn a_missing_bridge_is_created_with_only_what_it_has() {
        let spec = [bridge("vmbr1", None, &[])];
        assert_eq!(
            plan(&spec, &listed()),
            vec![BridgeChange::Create {
                name: "vmbr1".into(),
                params: vec![
                    ("iface".into(), "vmbr1".into()),
                    ("type".into(), "bridge".into()),
                    ("autostart".into(), "1".into()),
                ]
            }]
        );
    }

    #[test]
    fn a_bridge_as_listed_needs_nothing_and_a_difference_only_its_fields() {
        let mut same = bridge("vmbr0", Some("10.0.0.13/24"), &["eno1"]);
        same.gateway = Some("10.0.0.1".into());
        same.comment = Some("LAN".into());
        assert!(plan(std::slice::from_ref(&same), &listed()).is_empty());
        let mut changed = same.clone();
        changed.vlan_aware = true;
        changed.comment = None;
        let spec = [changed];
        let changes = plan(&spec, &listed());
        // The whole interface is sent: PVE's update drops what it is not given.
        assert_eq!(
            changes,
            vec![BridgeChange::Update {
                name: "vmbr0".into(),
                params: vec![
                    ("iface".into(), "vmbr0".into()),
                    ("type".into(), "bridge".into()),
                    ("autostart".into(), "1".into()),
                    ("bridge_ports".into(), "eno1".into()),
                    ("cidr".into(), "10.0.0.13/24".into()),
                    ("gateway".into(), "10.0.0.1".into()),
                    ("bridge_vlan_aware".into(), "1".into()),
                    ("delete".into(), "comments".into()),
                ]
            }]
        );
        assert_eq!(
            changes[0].to_string(),
            "update bridge vmbr0 (autostart, bridge_ports, cidr, gateway, bridge_vlan_aware, delete)"
        );
        assert_eq!(lock_out(&spec, &changes, &listed(), "10.0.0.13"), None);
    }

    #[test]
    fn moving_the_address_phoenix_reaches_pve_at_is_refused() {
        let mut moved = bridge("vmbr0", Some("10.0.0.14/24"), &["eno1"]);
        moved.gateway = Some("10.0.0.1".into());
        moved.comment = Some("LAN".into());
        let spec = [moved];
        let changes = plan(&spec, &listed());
        let why = lock_out(&spec, &changes, &listed(), "10.0.0.13").expect("refused");
        assert!(why.contains("vmbr0 carries 10.0.0.13"), "{why}");
        let mut unported = bridge("vmbr0", Some("10.0.0.13/24"), &["eno2"]);
        unported.gateway = Some("10.0.0.1".into());
        unported.comment = Some("LAN".into());
        let spec = [unported];
        let changes = plan(&spec, &listed());
        assert!(lock_out(&spec, &changes, &listed(), "10.0.0.13").is_some());
        // Another node's address: nothing of this node carries it.
        assert_eq!(lock_out(&spec, &changes, &listed(), "10.0.0.21"), None);
        // Its gateway dropped, its port taken by another bridge, or (endpoint by name)
        // the bridge with the default gateway changed: each refused.
        let mut gatewayless = bridge("vmbr0", Some("10.0.0.13/24"), &["eno1"]);
        gatewayless.comment = Some("LAN".into());
        let spec = [gatewayless];
        let changes = plan(&spec, &listed());
        assert!(lock_out(&spec, &changes, &listed(), "10.0.0.13").is_some());
        let spec = [bridge("vmbr1", None, &["eno1"])];
        let changes = plan(&spec, &listed());
        assert!(lock_out(&spec, &changes, &listed(), "10.0.0.13").is_some());
        let mut renumbered = bridge("vmbr0", Some("10.0.0.14/24"), &["eno1"]);
        renumbered.gateway = Some("10.0.0.1".into());
        renumbered.comment = Some("LAN".into());
        let spec = [renumbered];
        let changes = plan(&spec, &listed());
        assert!(lock_out(&spec, &changes, &listed(), "pve.lan").is_some());
        let spec = [bridge("vmbr1", None, &["eno2"])];
        let changes = plan(&spec, &listed());
        assert_eq!(lock_out(&spec, &changes, &listed(), "10.0.0.13"), None);
    }

    #[test]
    fn what_pve_would_refuse_is_said_before_anything_is_staged() {
        let mut a = bridge("vmbr0", None, &[]);
        a.gateway = Some("10.0.0.1".into());
        assert!(validate(&[a]).unwrap_err().contains("needs an address"));
        let mut b = bridge("vmbr0", Some("10.0.0.13/24"), &[]);
        b.gateway = Some("10.0.0.1".into());
        let mut c = bridge("vmbr1", Some("10.0.1.13/24"), &[]);
        c.gateway = Some("10.0.1.1".into());
        assert!(
            validate(&[b.clone(), c])
                .unwrap_err()
                .contains("one default gateway")
        );
        assert!(
            validate(&[b.clone(), b])
                .unwrap_err()
                .contains("named twice")
        );
    }
}
