//! The node settings PVE keeps for a node — its time zone and its resolver — decided from
//! what PVE reports and the spec.

use phoenix_clients::proxmox::node::Resolver;
use phoenix_crds::ProxmoxHostSpec;

/// What PVE reports of the node.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub timezone: String,
    pub resolver: Resolver,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Timezone(String),
    Resolver {
        search: String,
        servers: Vec<String>,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Timezone(zone) => write!(f, "time zone {zone}"),
            Change::Resolver { search, servers } => {
                write!(f, "resolver search {search}, servers {}", servers.join(" "))
            }
        }
    }
}

/// The settings the spec names that differ; what it leaves out is left as it is.
pub fn plan(spec: &ProxmoxHostSpec, observed: &Observed) -> Vec<Change> {
    let mut changes = Vec::new();
    if let Some(zone) = spec.timezone.as_ref().filter(|z| **z != observed.timezone) {
        changes.push(Change::Timezone(zone.clone()));
    }
    if let Some(wanted) = &spec.resolver {
        let same = observed.resolver.search.as_deref() == Some(wanted.search.as_str())
            && observed.resolver.servers() == wanted.servers;
        if !same {
            changes.push(Change::Resolver {
                search: wanted.search.clone(),
                servers: wanted.servers.clone(),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_crds::common::LocalRef;
    use phoenix_crds::proxmox_host::NodeResolver;

    fn spec(timezone: Option<&str>, servers: Option<&[&str]>) -> ProxmoxHostSpec {
        ProxmoxHostSpec {
            cluster_ref: LocalRef {
                name: "homelab".into(),
            },
            node: None,
            drift_policy: Default::default(),
            timezone: timezone.map(str::to_owned),
            resolver: servers.map(|s| NodeResolver {
                search: "internal.example".into(),
                servers: s.iter().map(|x| (*x).to_owned()).collect(),
            }),
            storage: None,
            network: None,
            firewall: None,
            system: None,
            dnsmasq: None,
        }
    }

    fn observed(timezone: &str, search: &str, servers: &[&str]) -> Observed {
        let server = |i: usize| servers.get(i).map(|s| (*s).to_owned());
        Observed {
            timezone: timezone.into(),
            resolver: Resolver {
                search: Some(search.into()),
                dns1: server(0),
                dns2: server(1),
                dns3: server(2),
            },
        }
    }

    #[test]
    fn only_what_the_spec_names_and_differs_changes() {
        let ny = Some("America/New_York");
        let servers: Option<&[&str]> = Some(&["10.0.0.13", "1.1.1.1"]);
        let cases = [
            (
                "nothing named",
                spec(None, None),
                observed("Etc/UTC", "x", &[]),
                0,
            ),
            (
                "as wanted",
                spec(ny, servers),
                observed(
                    "America/New_York",
                    "internal.example",
                    &["10.0.0.13", "1.1.1.1"],
                ),
                0,
            ),
            (
                "zone differs",
                spec(ny, None),
                observed("Etc/UTC", "x", &[]),
                1,
            ),
            (
                "servers in another order",
                spec(None, servers),
                observed("Etc/UTC", "internal.example", &["1.1.1.1", "10.0.0.13"]),
                1,
            ),
            (
                "search differs",
                spec(ny, servers),
                observed("Etc/UTC", "lan", &["10.0.0.13", "1.1.1.1"]),
                2,
            ),
        ];
        for (name, spec, observed, count) in cases {
            assert_eq!(plan(&spec, &observed).len(), count, "{name}");
        }
    }
}
