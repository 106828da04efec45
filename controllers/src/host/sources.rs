//! What the records are derived from: the guests of the host's cluster (from the guest
//! controllers' caches) and the routes (TraefikServices), each with the address it
//! answers at.

use super::records::{GuestName, RouteName};
use crate::guest::Guest;
use phoenix_crds::{LxcGuest, TraefikService, VmGuest};
use std::sync::Arc;

/// Whether a guest referring to `cluster_ref` (none: the only cluster) is on `cluster`
/// (`None`: any).
fn on_cluster(cluster_ref: Option<&str>, cluster: Option<&str>) -> bool {
    match (cluster_ref, cluster) {
        (_, None) | (None, _) => true,
        (Some(c), Some(wanted)) => c == wanted,
    }
}

/// The guests that run (a template never has an address of its own) on `cluster` (`None`:
/// on any).
pub fn guests(lxc: &[Arc<LxcGuest>], vm: &[Arc<VmGuest>], cluster: Option<&str>) -> Vec<GuestName> {
    let containers = lxc.iter().filter(|g| !g.wants_template()).filter_map(|g| {
        let cluster_ref = g.spec.common.cluster_ref.as_ref().map(|r| r.name.as_str());
        on_cluster(cluster_ref, cluster).then(|| GuestName {
            kind: "LxcGuest",
            namespace: g.metadata.namespace.clone().unwrap_or_default(),
            name: g.metadata.name.clone().unwrap_or_default(),
            hostname: g.spec.hostname.clone(),
            address: g.status.as_ref().and_then(|s| s.guest.ip.clone()),
        })
    });
    let vms = vm.iter().filter(|g| !g.wants_template()).filter_map(|g| {
        let cluster_ref = g.spec.common.cluster_ref.as_ref().map(|r| r.name.as_str());
        on_cluster(cluster_ref, cluster).then(|| GuestName {
            kind: "VmGuest",
            namespace: g.metadata.namespace.clone().unwrap_or_default(),
            name: g.metadata.name.clone().unwrap_or_default(),
            hostname: g.spec.name.clone(),
            address: g.status.as_ref().and_then(|s| s.guest.ip.clone()),
        })
    });
    let mut all: Vec<GuestName> = containers.chain(vms).collect();
    // Oldest first would need timestamps; a stable order is what keeps files from flapping.
    all.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
    all
}

/// Each route answers at Traefik's guest, or at the gateway's when it is public (both
/// LxcGuests in the route's namespace). Routes served on another cluster (their guest is
/// among `everywhere` but not among this cluster's `guests`) are not this host's; a route
/// whose guest does not exist yet waits.
pub fn routes(
    routes: &[TraefikService],
    guests: &[GuestName],
    everywhere: &[GuestName],
) -> Vec<RouteName> {
    let serving = |namespace: &str, name: &str, among: &[GuestName]| {
        among
            .iter()
            .find(|g| g.kind == "LxcGuest" && g.namespace == namespace && g.name == name)
            .cloned()
    };
    let mut all: Vec<RouteName> = routes
        .iter()
        .filter(|r| {
            let namespace = r.metadata.namespace.as_deref().unwrap_or_default();
            let via = via(r);
            serving(namespace, via, guests).is_some()
                || serving(namespace, via, everywhere).is_none()
        })
        .map(|r| {
            let namespace = r.metadata.namespace.clone().unwrap_or_default();
            let via = via(r);
            let address = serving(&namespace, via, guests).and_then(|g| g.address);
            RouteName {
                via: format!("LxcGuest {namespace}/{via}"),
                namespace,
                name: r.metadata.name.clone().unwrap_or_default(),
                host: r.spec.host.clone(),
                address,
            }
        })
        .collect();
    all.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    all
}

/// The guest a route answers at: the gateway when public, else Traefik.
fn via(route: &TraefikService) -> &str {
    if route.spec.public {
        &route.spec.gateway_ref.name
    } else {
        &route.spec.traefik_ref.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_answer_at_traefik_or_at_the_gateway_when_public() {
        let guest = |name: &str, address: &str| GuestName {
            kind: "LxcGuest",
            namespace: "default".into(),
            name: name.into(),
            hostname: name.into(),
            address: Some(address.into()),
        };
        let guests = [
            guest("traefik-internal", "10.0.0.12"),
            guest("nginx-phoenix", "10.0.0.153"),
        ];
        let route = |name: &str, public: bool| -> TraefikService {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "phoenix.thinkheads.ai/v1alpha1", "kind": "TraefikService",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"host": format!("{name}.internal.example"), "public": public,
                         "backend": {"url": "http://10.0.0.20:80"}}
            }))
            .unwrap()
        };
        let elsewhere = GuestName {
            name: "traefik-lab2".into(),
            ..guest("traefik-lab2", "10.1.0.12")
        };
        let mut far = route("far", false);
        far.spec.traefik_ref.name = "traefik-lab2".into();
        let everywhere = [guests.to_vec(), vec![elsewhere]].concat();
        let found = routes(
            &[route("inner", false), route("outer", true), far],
            &guests,
            &everywhere,
        );
        let addresses: Vec<_> = found
            .iter()
            .map(|r| (r.name.as_str(), r.address.as_deref()))
            .collect();
        assert_eq!(
            addresses,
            [("inner", Some("10.0.0.12")), ("outer", Some("10.0.0.153"))]
        );
    }

    #[test]
    fn guests_of_other_clusters_are_left_out() {
        assert!(on_cluster(None, Some("homelab")));
        assert!(on_cluster(Some("homelab"), Some("homelab")));
        assert!(!on_cluster(Some("lab2"), Some("homelab")));
        assert!(on_cluster(Some("lab2"), None));
    }
}
