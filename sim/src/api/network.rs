//! A node's network, `/nodes/{node}/network`: listed from the pending file (or the running
//! one) with the pending `changes` beside `data`, interfaces created, changed and removed
//! in the pending file, changes reverted, or applied by a reload task — with the checks,
//! messages and habits of pve-manager's `API2/Network.pm`. The files are
//! [`crate::network`]'s.

use super::{ApiResult, Call, PveError};
use crate::cluster::Effect;
use crate::network::{Config, Iface, Network, port_list, text, truthy};
use crate::state::Sim;
use serde_json::{Value, json};

pub(super) fn call(sim: &mut Sim, call: &Call) -> ApiResult {
    let path = call.template.trim_start_matches("/nodes/{node}/network");
    match (call.method, path) {
        ("GET", "") => index(sim, call),
        ("POST", "") => edit(sim, call, create),
        ("PUT", "") => Ok(reload(sim, call)),
        ("DELETE", "") => {
            network(sim, call).pending = None;
            Ok(Value::Null)
        }
        ("GET", "/{iface}") => {
            let name = call.text("iface").unwrap_or_default();
            let config = network(sim, call).read();
            let iface = config.ifaces.get(&name).ok_or_else(no_such_iface)?;
            Ok(Value::Object(iface.clone()))
        }
        ("PUT", "/{iface}") => edit(sim, call, update),
        ("DELETE", "/{iface}") => edit(sim, call, |config, call| {
            let name = call.text("iface").unwrap_or_default();
            config.ifaces.remove(&name).ok_or_else(no_such_iface)?;
            Ok(())
        }),
        _ => Err(PveError {
            status: 501,
            message: format!("Method '{} {}' not implemented", call.method, call.template),
            errors: None,
        }),
    }
}

fn network<'a>(sim: &'a mut Sim, call: &Call) -> &'a mut Network {
    &mut sim
        .cluster
        .node_mut(&call.node())
        .expect("dispatch checked the node")
        .network
}

fn no_such_iface() -> PveError {
    PveError::param("iface", "interface does not exist")
}

/// The interfaces as `GET network` lists them (no `lo`; each with its name as `iface`),
/// kept to those of a `type` (`any_bridge`: Linux and OVS bridges).
pub fn listed(config: Config, filter: Option<&str>) -> Value {
    let mut ifaces = config.ifaces;
    ifaces.remove("lo");
    if let Some(filter) = filter.filter(|f| *f != "include_sdn") {
        ifaces.retain(|_, d| {
            let kind = text(d, "type");
            let bridge = kind == "bridge" || kind == "OVSBridge";
            kind == filter || bridge && matches!(filter, "any_bridge" | "any_local_bridge")
        });
    }
    Value::Array(
        ifaces
            .into_iter()
            .map(|(name, mut d)| {
                d.insert("iface".into(), json!(name));
                Value::Object(d)
            })
            .collect(),
    )
}

/// `GET network`: with pending changes, their diff beside `data` as `changes`.
fn index(sim: &mut Sim, call: &Call) -> ApiResult {
    let network = network(sim, call);
    let (config, changes) = (network.read(), network.changes());
    if let Some(changes) = changes {
        sim.set_result_attrib("changes", json!(changes));
    }
    Ok(listed(config, call.text("type").as_deref()))
}

/// Reads the file as it is (pending or running), lets `change` edit it, and writes it to
/// `interfaces.new`: the writer may still refuse it (a port nowhere to be found, ...).
fn edit(
    sim: &mut Sim,
    call: &Call,
    change: impl FnOnce(&mut Config, &Call) -> Result<(), PveError>,
) -> ApiResult {
    let network = network(sim, call);
    let mut config = network.read();
    change(&mut config, call)?;
    network.write(config).map_err(PveError::server)?;
    Ok(Value::Null)
}

/// The interface properties of the call as the handler holds them once the schema
/// checked them: booleans as 0 or 1, the rest as text.
fn properties(call: &Call) -> Iface {
    call.params
        .keys()
        .filter(|k| !matches!(k.as_str(), "node" | "iface" | "delete"))
        .map(|k| {
            let value = match k.as_str() {
                "autostart" | "bridge_vlan_aware" => json!(u8::from(call.flag(k))),
                _ => json!(call.text(k)),
            };
            (k.clone(), value)
        })
        .collect()
}

/// `POST network`: a new interface, static when it has an address.
fn create(config: &mut Config, call: &Call) -> Result<(), PveError> {
    let name = call.text("iface").unwrap_or_default();
    if config.ifaces.contains_key(&name) {
        return Err(PveError::param("iface", "interface already exists"));
    }
    let mut param = properties(call);
    check_gateways(config, &name, &param)?;
    check_ports(config, &name, &param)?;
    cidr_to_address(&mut param)?;
    set_families(&mut param, Vec::new());
    if text(&param, "type").starts_with("OVS") {
        return Err(PveError::server(
            "Open VSwitch is not installed (need package 'openvswitch-switch')",
        ));
    }
    // The file takes VLAN lists space separated.
    if truthy(param.get("bridge_vids")) {
        let vids = split_list(&text(&param, "bridge_vids")).join(" ");
        param.insert("bridge_vids".into(), json!(vids));
    }
    config.ifaces.insert(name, param);
    Ok(())
}

/// `PUT network/{iface}`: `delete` first, then what is given replaces what was; the
/// method follows the address given (none given: `manual`, though an address kept stays
/// in the file), as PVE's handler does.
fn update(config: &mut Config, call: &Call) -> Result<(), PveError> {
    let name = call.text("iface").unwrap_or_default();
    let iface = config.ifaces.get_mut(&name).ok_or_else(no_such_iface)?;
    for key in split_list(&call.text("delete").unwrap_or_default()) {
        iface.remove(&key);
        if let Some(suffix) = key.strip_prefix("cidr") {
            iface.remove(&format!("netmask{suffix}"));
            iface.remove(&format!("address{suffix}"));
        }
    }
    let mut param = properties(call);
    cidr_to_address(&mut param)?;
    check_gateways(config, &name, &param)?;
    check_ports(config, &name, &param)?;
    set_families(&mut param, Vec::new());
    let iface = config.ifaces.get_mut(&name).ok_or_else(no_such_iface)?;
    iface.extend(param);
    Ok(())
}

/// `PVE::Tools::split_list`.
fn split_list(list: &str) -> Vec<String> {
    list.split(|c: char| c == ',' || c == ';' || c == '\0' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One default gateway per family in the file.
fn check_gateways(config: &Config, name: &str, param: &Iface) -> Result<(), PveError> {
    for (key, what) in [
        ("gateway", "Default gateway"),
        ("gateway6", "Default ipv6 gateway"),
    ] {
        if !truthy(param.get(key)) {
            continue;
        }
        if let Some((other, _)) = config
            .ifaces
            .iter()
            .find(|(other, d)| other.as_str() != name && truthy(d.get(key)))
        {
            return Err(PveError::param(
                key,
                format!("{what} already exists on interface '{other}'."),
            ));
        }
    }
    Ok(())
}

/// A port (bridge port, bond slave) belongs to one interface.
fn check_ports(config: &Config, name: &str, param: &Iface) -> Result<(), PveError> {
    let Some(key) = ["bridge_ports", "ovs_ports", "slaves", "ovs_bonds"]
        .into_iter()
        .find(|k| truthy(param.get(*k)))
    else {
        return Ok(());
    };
    let new = port_list(param);
    for (other, d) in config.ifaces.iter().filter(|(o, _)| o.as_str() != name) {
        if let Some(port) = port_list(d).into_iter().find(|p| new.contains(p)) {
            return Err(PveError::param(
                key,
                format!("{port} is already used on interface '{other}'."),
            ));
        }
    }
    Ok(())
}

/// `cidr` (`cidr6`) split into `address` and `netmask`; both ways at once is refused.
fn cidr_to_address(param: &mut Iface) -> Result<(), PveError> {
    for suffix in ["", "6"] {
        let cidr = format!("cidr{suffix}");
        if !truthy(param.get(&cidr)) {
            continue;
        }
        for part in ["address", "netmask"] {
            if truthy(param.get(&format!("{part}{suffix}"))) {
                return Err(PveError::param(
                    &format!("{part}{suffix}"),
                    format!("{part}{suffix} conflicts with cidr{suffix}"),
                ));
            }
        }
        let value = text(param, &cidr);
        let (address, bits) = value.rsplit_once('/').unwrap_or((&value, ""));
        param.insert(format!("address{suffix}"), json!(address));
        param.insert(format!("netmask{suffix}"), json!(bits));
        param.remove(&cidr);
    }
    Ok(())
}

/// `families` and the methods from the addresses given.
fn set_families(param: &mut Iface, mut families: Vec<&str>) {
    for (family, suffix) in [("inet", ""), ("inet6", "6")] {
        let static_ = truthy(param.get(&format!("address{suffix}")));
        if static_ {
            families.push(family);
        }
        let method = if static_ { "static" } else { "manual" };
        param.insert(format!("method{suffix}"), json!(method));
    }
    if families.is_empty() {
        families.push("inet");
    }
    param.insert("families".into(), json!(families));
}

/// `PUT network`: a `srvreload` task on `networking` that makes the pending file the
/// running one and reloads (also when nothing is pending, as PVE does).
fn reload(sim: &mut Sim, call: &Call) -> Value {
    let node = call.node();
    let effect = Effect::ApplyNetwork(node.clone());
    json!(sim.task(&node, "srvreload", "networking", &call.user, effect))
}
