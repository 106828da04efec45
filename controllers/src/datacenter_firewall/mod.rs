//! The datacenter firewall of a ProxmoxCluster (`spec.firewall`), performed: refuse to
//! enable it when that would lock Phoenix out, keep the IP sets (`management` and the
//! role sets) entry by entry, the aliases and security groups (with their rules), then the
//! rules and options (`crate::firewall::sync`, options last). Decisions are in `decide.rs`.

pub mod decide;

use crate::conditions::reason;
use crate::error::Error;
use crate::firewall::{self, Place};
use crate::step_ca_access;
use decide::{AliasChange, SetChange, Sets};
use kube::ResourceExt;
use phoenix_clients::proxmox::ProxmoxClient;
use phoenix_crds::common::Firewall;
use phoenix_crds::proxmox_cluster::DatacenterFirewall;
use phoenix_crds::proxmox_cluster::{FirewallAlias, SecurityGroup};
use phoenix_crds::{LxcGuest, ProxmoxCluster, TraefikService};
use reqwest::Method;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

/// The addresses of the role sets: Traefik's guests (every route goes through one), the
/// gateways of public routes, and the guests that depend on Step-CA (`step_ca_access`),
/// as the guests on this cluster report them.
pub struct Roles {
    pub traefik: Vec<String>,
    pub gateway: Vec<String>,
    /// Step-CA's clients (and, added when reconciling, Phoenix) when the cluster names a
    /// Step-CA (`None`: no set).
    pub acme_clients: Option<Vec<String>>,
}

impl Roles {
    pub fn of(
        routes: &[TraefikService],
        guests: &[Arc<LxcGuest>],
        cluster: &ProxmoxCluster,
    ) -> Self {
        // The set exists whenever the cluster names a Step-CA (empty until its guest and
        // clients have addresses): Step-CA's guest may name it in a rule at once.
        let acme_clients = cluster.spec.acme.as_ref().map(|acme| {
            step_ca_access::clients(guests, &cluster.name_any(), &acme.directory_url)
                .unwrap_or_default()
        });
        let cluster = cluster.name_any();
        let cluster = cluster.as_str();
        let address = |namespace: &str, name: &str| {
            guests
                .iter()
                .filter(|g| g.spec.common.is_on(cluster))
                .find(|g| {
                    g.metadata.namespace.as_deref() == Some(namespace)
                        && g.metadata.name.as_deref() == Some(name)
                })
                .and_then(|g| g.status.as_ref()?.guest.ip.clone())
        };
        let (mut traefik, mut gateway) = (Vec::new(), Vec::new());
        for route in routes {
            let namespace = route.metadata.namespace.as_deref().unwrap_or_default();
            traefik.extend(address(namespace, &route.spec.traefik_ref.name));
            if route.spec.public {
                gateway.extend(address(namespace, &route.spec.gateway_ref.name));
            }
        }
        Roles {
            traefik,
            gateway,
            acme_clients,
        }
    }
}

/// Brings the datacenter firewall to `spec`; what changed (empty: nothing).
pub async fn reconcile(
    client: &ProxmoxClient,
    endpoint: &str,
    spec: &DatacenterFirewall,
    roles: &Roles,
) -> Result<Vec<String>, Error> {
    // Phoenix's own ACME client is one of Step-CA's clients: on the platform's one LAN it
    // leaves from where it reaches PVE (in simulate mode, loopback).
    let acme_clients = roles.acme_clients.clone().map(|mut clients| {
        clients.extend(source_address(endpoint).map(|a| a.to_string()));
        clients
    });
    let wanted = decide::wanted_sets(
        &spec.management,
        &roles.traefik,
        &roles.gateway,
        acme_clients.as_deref(),
    );
    refuse_lock_out(spec, &wanted, endpoint)?;
    let mut changed = sync_sets(client, &wanted).await?;
    changed.extend(sync_aliases(client, &spec.aliases).await?);
    changed.extend(sync_groups(client, &spec.security_groups).await?);
    changed.extend(firewall::sync(client, Place::Datacenter, &spec.firewall, true).await?);
    Ok(changed)
}

/// The spec's aliases added or brought to their address and comment; what changed.
async fn sync_aliases(
    client: &ProxmoxClient,
    aliases: &[FirewallAlias],
) -> Result<Vec<String>, Error> {
    if aliases.is_empty() {
        return Ok(Vec::new());
    }
    let path = "/cluster/firewall/aliases";
    let live = client.call(Method::GET, path, &[]).await?;
    let live = live.as_array().cloned().unwrap_or_default();
    let mut changed = Vec::new();
    for change in decide::plan_aliases(aliases, &live) {
        let (method, url, alias, verb) = match change {
            AliasChange::Add(a) => (Method::POST, path.to_owned(), a, "added"),
            AliasChange::Update(a) => (Method::PUT, format!("{path}/{}", a.name), a, "updated"),
        };
        let mut params = vec![("cidr".to_owned(), alias.cidr.clone())];
        if method == Method::POST {
            params.push(("name".into(), alias.name.clone()));
        }
        params.push(("comment".into(), alias.comment.clone().unwrap_or_default()));
        client.call(method, &url, &params).await?;
        changed.push(format!("alias {} {verb}", alias.name));
    }
    Ok(changed)
}

/// The spec's security groups created and their rules kept; what changed.
async fn sync_groups(
    client: &ProxmoxClient,
    groups: &[SecurityGroup],
) -> Result<Vec<String>, Error> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let path = "/cluster/firewall/groups";
    let live = client.call(Method::GET, path, &[]).await?;
    let live = live.as_array().cloned().unwrap_or_default();
    let mut changed = Vec::new();
    for group in decide::missing_groups(groups, &live) {
        let mut params = vec![("group".to_owned(), group.name.clone())];
        params.extend(group.comment.clone().map(|c| ("comment".to_owned(), c)));
        client.call(Method::POST, path, &params).await?;
        changed.push(format!("security group {} added", group.name));
    }
    for group in groups {
        let rules = Firewall {
            rules: group.rules.clone(),
            ..Default::default()
        };
        let differed = firewall::sync(client, Place::Group(&group.name), &rules, true).await?;
        changed.extend(
            differed
                .into_iter()
                .map(|d| format!("security group {}: {d}", group.name)),
        );
    }
    Ok(changed)
}

fn refuse_lock_out(spec: &DatacenterFirewall, wanted: &Sets, endpoint: &str) -> Result<(), Error> {
    if !spec.firewall.enabled {
        return Ok(());
    }
    let management = wanted.get(decide::MANAGEMENT).cloned().unwrap_or_default();
    let from = source_address(endpoint);
    let locked_out = match from {
        Some(from) => decide::would_lock_out(true, &management, from),
        None => true,
    };
    if locked_out {
        let from = from.map_or_else(
            || "an address Phoenix cannot tell".into(),
            |a| a.to_string(),
        );
        return Err(Error::spec(
            reason::WOULD_LOCK_OUT,
            format!(
                "spec.firewall.enabled: Phoenix reaches PVE from {from}, which spec.firewall.management does not hold; enabling the datacenter firewall would lock it out"
            ),
        ));
    }
    Ok(())
}

/// The local address the route to PVE's endpoint leaves from (a UDP socket's `connect`
/// picks it without sending anything).
fn source_address(endpoint: &str) -> Option<IpAddr> {
    let url = reqwest::Url::parse(endpoint).ok()?;
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let target: IpAddr = host.parse().ok()?;
    let bind: IpAddr = if target.is_ipv4() {
        IpAddr::from([0, 0, 0, 0])
    } else {
        IpAddr::from([0u16; 8])
    };
    let socket = std::net::UdpSocket::bind((bind, 0)).ok()?;
    socket
        .connect((target, url.port_or_known_default()?))
        .ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// The wanted IP sets, entry by entry; what changed.
async fn sync_sets(client: &ProxmoxClient, wanted: &Sets) -> Result<Vec<String>, Error> {
    let observed = observe_sets(client, wanted).await?;
    let changes = decide::plan_sets(wanted, &observed);
    for change in &changes {
        match change {
            SetChange::Create(name) => {
                let params = [
                    ("name".to_owned(), name.clone()),
                    ("comment".to_owned(), "managed by Phoenix".to_owned()),
                ];
                client
                    .call(Method::POST, "/cluster/firewall/ipset", &params)
                    .await?;
            }
            SetChange::Add(name, cidr) => {
                let params = [("cidr".to_owned(), cidr.clone())];
                let path = format!("/cluster/firewall/ipset/{name}");
                client.call(Method::POST, &path, &params).await?;
            }
            SetChange::Remove(name, cidr) => {
                // The entry is part of the path: its `/` escaped.
                let path = format!(
                    "/cluster/firewall/ipset/{name}/{}",
                    cidr.replace('/', "%2F")
                );
                client.call(Method::DELETE, &path, &[]).await?;
            }
        }
    }
    Ok(changes.iter().map(describe).collect())
}

fn describe(change: &SetChange) -> String {
    match change {
        SetChange::Create(name) => format!("IP set {name} created"),
        SetChange::Add(name, cidr) => format!("{cidr} added to {name}"),
        SetChange::Remove(name, cidr) => format!("{cidr} removed from {name}"),
    }
}

/// The wanted sets as PVE holds them (normalised); sets it lacks are absent.
async fn observe_sets(client: &ProxmoxClient, wanted: &Sets) -> Result<Sets, Error> {
    let listed = client
        .call(Method::GET, "/cluster/firewall/ipset", &[])
        .await?;
    let names: BTreeSet<String> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    let mut sets = Sets::new();
    for name in wanted.keys().filter(|n| names.contains(*n)) {
        let entries = client
            .call(Method::GET, &format!("/cluster/firewall/ipset/{name}"), &[])
            .await?;
        let entries = entries
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| decide::normalise(e["cidr"].as_str()?))
            .collect();
        sets.insert(name.clone(), entries);
    }
    Ok(sets)
}
