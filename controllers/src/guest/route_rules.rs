//! Firewall rules a guest gets from the routes, beside the ones its spec states: a route
//! to the guest opens its port to Traefik (`+phoenix-traefik`, the datacenter IP set the
//! ProxmoxCluster keeps), and a public route opens 80 and 443 on the gateway guest. They
//! name an IP set rather than addresses, so a moved Traefik changes one IP-set entry and no
//! rule; their comment says they are derived. Only for guests whose spec has a firewall,
//! on a cluster whose datacenter firewall keeps the role sets.

use phoenix_clients::proxmox::GuestType;
use phoenix_crds::TraefikService;
use phoenix_crds::common::{Direction, FirewallAction, FirewallRule, GuestKind};
use std::collections::BTreeSet;

/// The derived rules of guest `kind` `name` (in the routes' namespace), in a stable order.
pub fn derived(kind: GuestKind, name: &str, routes: &[TraefikService]) -> Vec<FirewallRule> {
    let mut ports = BTreeSet::new();
    let mut gateway = false;
    for route in routes {
        let backend = &route.spec.backend;
        if let (Some(target), Some(port)) = (&backend.guest_ref, backend.port)
            && target.kind == kind
            && target.name == name
        {
            ports.insert(port);
        }
        gateway |=
            route.spec.public && kind == GuestKind::LxcGuest && route.spec.gateway_ref.name == name;
    }
    let mut rules: Vec<FirewallRule> = ports
        .into_iter()
        .map(|port| {
            rule(
                &port.to_string(),
                Some("+phoenix-traefik"),
                "routes through Traefik",
            )
        })
        .collect();
    if gateway {
        rules.push(rule("80,443", None, "public routes on the gateway"));
    }
    rules
}

/// The kind of guest a PVE guest type is.
pub fn kind_of(type_: GuestType) -> GuestKind {
    match type_ {
        GuestType::Lxc => GuestKind::LxcGuest,
        GuestType::Qemu => GuestKind::VmGuest,
    }
}

/// The guests whose derived rules `route` makes (in its namespace): its backend, and its
/// gateway when public — woken when it changes.
pub fn named(route: &TraefikService) -> Vec<(GuestKind, String)> {
    let mut guests: Vec<(GuestKind, String)> = route
        .spec
        .backend
        .guest_ref
        .iter()
        .map(|g| (g.kind, g.name.clone()))
        .collect();
    if route.spec.public {
        guests.push((GuestKind::LxcGuest, route.spec.gateway_ref.name.clone()));
    }
    guests
}

fn rule(dport: &str, source: Option<&str>, why: &str) -> FirewallRule {
    FirewallRule {
        direction: Direction::In,
        action: FirewallAction::Accept,
        proto: Some("tcp".into()),
        dport: Some(dport.into()),
        source: source.map(str::to_owned),
        dest: None,
        macro_: None,
        comment: Some(format!("phoenix derived: {why}")),
        enabled: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, kind: &str, guest: &str, port: u16, public: bool) -> TraefikService {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "phoenix.thinkheads.ai/v1alpha1", "kind": "TraefikService",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"host": format!("{name}.internal.example"), "public": public,
                     "backend": {"guestRef": {"kind": kind, "name": guest}, "port": port}}
        }))
        .unwrap()
    }

    #[test]
    fn backends_open_their_ports_to_traefik_and_gateways_open_80_and_443() {
        let routes = [
            route("a", "LxcGuest", "web", 8000, false),
            route("b", "LxcGuest", "web", 8000, true),
            route("c", "LxcGuest", "web", 9000, false),
            route("d", "VmGuest", "web", 7000, false),
        ];
        let ports = |rules: &[FirewallRule]| -> Vec<(String, Option<String>)> {
            rules
                .iter()
                .map(|r| (r.dport.clone().unwrap(), r.source.clone()))
                .collect()
        };
        let traefik = Some("+phoenix-traefik".to_owned());
        assert_eq!(
            ports(&derived(GuestKind::LxcGuest, "web", &routes)),
            [
                ("8000".into(), traefik.clone()),
                ("9000".into(), traefik.clone())
            ]
        );
        assert_eq!(
            ports(&derived(GuestKind::VmGuest, "web", &routes)),
            [("7000".into(), traefik)]
        );
        assert_eq!(
            ports(&derived(GuestKind::LxcGuest, "nginx-phoenix", &routes)),
            [("80,443".into(), None)]
        );
        assert!(derived(GuestKind::LxcGuest, "other", &routes).is_empty());
    }
}
