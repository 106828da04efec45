//! Who may reach Step-CA's ACME port, derived from the objects: the guests that depend on
//! Step-CA's guest (the guest at the address of the cluster's ACME directory), and
//! Phoenix itself (its ACME client). They are kept in the datacenter IP set
//! `phoenix-acme-clients`; Step-CA's guest, when its spec has a firewall, gets one derived
//! rule opening the port to that set — a changed address is one IP-set entry, no rule.

use phoenix_crds::LxcGuest;
use phoenix_crds::common::{Direction, FirewallAction, FirewallRule, PhoenixKind};
use std::sync::Arc;

/// The datacenter IP set of the ACME clients.
pub const SET: &str = "phoenix-acme-clients";

/// Host and port of an ACME directory URL (`https://10.0.0.10:9000/acme/acme/directory`).
pub fn endpoint(directory_url: &str) -> Option<(String, u16)> {
    let url = reqwest::Url::parse(directory_url).ok()?;
    let host = url.host_str()?.trim_matches(['[', ']']).to_owned();
    Some((host, url.port_or_known_default()?))
}

/// The derived rule for the guest at `own_ip`, when it is the ACME directory's host.
pub fn rule_for(directory_url: &str, own_ip: Option<&str>) -> Option<FirewallRule> {
    let (host, port) = endpoint(directory_url)?;
    let own = own_ip?.split('/').next()?;
    (own == host).then(|| FirewallRule {
        direction: Direction::In,
        action: FirewallAction::Accept,
        proto: Some("tcp".into()),
        dport: Some(port.to_string()),
        source: Some(format!("+{SET}")),
        dest: None,
        macro_: None,
        comment: Some("phoenix derived: ACME clients of Step-CA".into()),
        enabled: true,
    })
}

/// The addresses of the containers of `cluster` that depend on Step-CA's guest; `None`
/// while no container of the cluster is at the directory's address.
pub fn clients(
    guests: &[Arc<LxcGuest>],
    cluster: &str,
    directory_url: &str,
) -> Option<Vec<String>> {
    let (host, _) = endpoint(directory_url)?;
    let on_cluster: Vec<&Arc<LxcGuest>> = guests
        .iter()
        .filter(|g| g.spec.common.is_on(cluster))
        .collect();
    let address = |g: &LxcGuest| {
        let ip = g.status.as_ref()?.guest.ip.clone()?;
        Some(ip.split('/').next()?.to_owned())
    };
    let step_ca = on_cluster
        .iter()
        .find(|g| address(g).as_deref() == Some(host.as_str()))?;
    let (ca_name, ca_namespace) = (
        step_ca.metadata.name.as_deref().unwrap_or_default(),
        step_ca.metadata.namespace.as_deref().unwrap_or_default(),
    );
    on_cluster
        .iter()
        .filter(|g| {
            let namespace = g.metadata.namespace.as_deref().unwrap_or_default();
            g.spec.common.depends_on.iter().any(|d| {
                d.kind == PhoenixKind::LxcGuest
                    && d.name == ca_name
                    && d.namespace.as_deref().unwrap_or(namespace) == ca_namespace
            })
        })
        .filter_map(|g| address(g))
        .collect::<Vec<_>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example gateway container, renamed, at `ip`, depending on `depends_on`.
    fn guest(name: &str, ip: &str, depends_on: &[&str]) -> Arc<LxcGuest> {
        let mut guest: LxcGuest = crate::examples::example("lxc-101.yaml");
        guest.metadata.name = Some(name.into());
        guest.metadata.namespace = Some("default".into());
        guest.spec.common.depends_on = depends_on
            .iter()
            .map(|d| {
                serde_json::from_value(serde_json::json!({"kind": "LxcGuest", "name": d})).unwrap()
            })
            .collect();
        let mut status = phoenix_crds::LxcGuestStatus::default();
        status.guest.ip = Some(ip.into());
        guest.status = Some(status);
        Arc::new(guest)
    }

    const DIRECTORY: &str = "https://10.0.0.10:9000/acme/acme/directory";

    #[test]
    fn the_dependents_of_step_cas_guest_are_its_clients() {
        let guests = [
            guest("step-ca", "10.0.0.10/24", &[]),
            guest("nginx", "10.0.0.11/24", &["step-ca"]),
            guest("traefik", "10.0.0.12", &["step-ca", "other"]),
            guest("qdrant", "10.0.0.20/24", &["other"]),
        ];
        assert_eq!(
            clients(&guests, "homelab", DIRECTORY).unwrap(),
            ["10.0.0.11", "10.0.0.12"]
        );
        assert_eq!(
            clients(&guests, "homelab", "https://10.0.0.99:9000/acme"),
            None
        );
    }

    #[test]
    fn only_step_cas_guest_gets_the_rule_for_the_directory_port() {
        let rule = rule_for(DIRECTORY, Some("10.0.0.10/24")).unwrap();
        assert_eq!(rule.dport.as_deref(), Some("9000"));
        assert_eq!(rule.source.as_deref(), Some("+phoenix-acme-clients"));
        assert!(rule_for(DIRECTORY, Some("10.0.0.11/24")).is_none());
        assert!(rule_for(DIRECTORY, None).is_none());
    }
}
