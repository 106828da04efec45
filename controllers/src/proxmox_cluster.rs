//! ProxmoxCluster: connects with the token from its Secret, checks the credentials and the
//! TLS trust, and reports the version, nodes and storages in status, with a Ready
//! condition whose reason says what failed. Its areas — the datacenter firewall and PVE's
//! users, groups and ACL entries — have conditions of their own that leave Ready alone.

use crate::cluster_access;
use crate::conditions::{self, Standing, reason};
use crate::context::Context;
use crate::datacenter_firewall;
use crate::error::Error;
use crate::pve::{Redirect, client_config};
use crate::status;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use phoenix_clients::proxmox::ProxmoxClient;
use phoenix_crds::proxmox_cluster::{NodeStatus, ProxmoxClusterStatus, StorageStatus};
use phoenix_crds::{LxcGuest, ProxmoxCluster, TraefikService};
use std::sync::Arc;
use std::time::Duration;

pub const KIND: &str = "ProxmoxCluster";

/// What the cluster looks like from PVE.
async fn observe(
    pve: &ProxmoxClient,
) -> Result<(String, Vec<NodeStatus>, Vec<StorageStatus>), Error> {
    let version = pve.version().await?;
    let nodes = pve.nodes().await?;
    let storages = match nodes.first() {
        Some(first) => pve.storages(&first.node).await?,
        None => Vec::new(),
    };
    let mib = |b: Option<u64>| b.map(|b| b / (1024 * 1024));
    let nodes = nodes
        .into_iter()
        .map(|n| NodeStatus {
            free_memory_mib: mib(n.maxmem)
                .zip(mib(n.mem))
                .map(|(max, used)| max.saturating_sub(used)),
            name: n.node,
            status: n.status,
            cpus: n.maxcpu,
            memory_mib: mib(n.maxmem),
        })
        .collect();
    let storages = storages
        .into_iter()
        .map(|s| StorageStatus {
            name: s.storage,
            type_: s.kind,
            content: s
                .content
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            nodes: Vec::new(),
        })
        .collect();
    Ok((version.version, nodes, storages))
}

/// One pass: observe, then write status (Ready with the reason of any failure; a
/// permanent one, such as a refused token, Stalled until the spec or Secret changes).
pub async fn reconcile(
    kube: &kube::Client,
    cluster: &ProxmoxCluster,
    redirect: Option<&Redirect>,
) -> Result<ProxmoxClusterStatus, Error> {
    let no_roles = datacenter_firewall::Roles {
        traefik: Vec::new(),
        gateway: Vec::new(),
        acme_clients: None,
    };
    reconcile_with(kube, cluster, redirect, &no_roles)
        .await
        .map(|(status, _)| status)
}

/// What an area did: the changes made, or why it failed (`None`: the spec has none, or
/// PVE could not be reached).
type AreaOutcome = Option<Result<Vec<String>, Error>>;

/// What the access area did (`None`: nothing to keep, or PVE could not be reached).
type AccessOutcome = Option<Result<cluster_access::Applied, Error>>;

/// What the cluster's areas did in a pass.
pub struct Areas {
    pub firewall: AreaOutcome,
    pub access: AccessOutcome,
}

/// [`reconcile`], with the role addresses the datacenter firewall's IP sets hold.
pub async fn reconcile_with(
    kube: &kube::Client,
    cluster: &ProxmoxCluster,
    redirect: Option<&Redirect>,
    roles: &datacenter_firewall::Roles,
) -> Result<(ProxmoxClusterStatus, Areas), Error> {
    let mut status = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let now = jiff::Timestamp::now();
    let connect = async {
        let (config, _) = client_config(kube, cluster, redirect).await?;
        // The user the token belongs to: the access area never changes its rights.
        let own_user = config
            .token_id
            .split('!')
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok::<_, Error>((ProxmoxClient::new(&config)?, config.endpoint, own_user))
    };
    let (connected, observed) = match connect.await {
        Ok(connected) => {
            let observed = observe(&connected.0).await;
            (Some(connected), observed)
        }
        Err(e) => (None, Err(e)),
    };
    let firewall = match (&connected, &observed, &cluster.spec.firewall) {
        (Some((client, endpoint, _)), Ok(_), Some(spec)) => {
            Some(datacenter_firewall::reconcile(client, endpoint, spec, roles).await)
        }
        _ => None,
    };
    let remembered = status.access.clone().unwrap_or_default();
    // Entries Phoenix added are revoked when the whole of spec.access goes.
    let keep_access = cluster.spec.access.is_some() || !remembered.acls.is_empty();
    let access = match (&connected, &observed) {
        (Some((client, _, own_user)), Ok(_)) if keep_access => {
            let spec = cluster.spec.access.clone().unwrap_or_default();
            let (kept, result) =
                cluster_access::reconcile(client, own_user, &spec, &remembered).await;
            status.access = Some(kept).filter(|s| !s.is_empty());
            Some(result)
        }
        _ => None,
    };
    if !keep_access {
        status.access = None;
    }
    let conditions = &mut status.common.conditions;
    set_access_condition(conditions, &access, cluster, generation, now);
    match &firewall {
        Some(Ok(_)) => conditions::set(
            conditions,
            conditions::FIREWALL_READY,
            true,
            reason::FIREWALL_CONFIGURED,
            "the datacenter firewall is as the spec says",
            generation,
            now,
        ),
        Some(Err(e)) => conditions::set(
            conditions,
            conditions::FIREWALL_READY,
            false,
            e.category(),
            &e.to_string(),
            generation,
            now,
        ),
        None => conditions
            .retain(|c| c.type_ != conditions::FIREWALL_READY || cluster.spec.firewall.is_some()),
    }
    match &observed {
        Ok((version, nodes, storages)) => {
            status.version = Some(version.clone());
            status.node_count = Some(nodes.len() as u32);
            status.nodes = nodes.clone();
            status.storages = storages.clone();
            let message = format!("connected to Proxmox VE {version}, {} node(s)", nodes.len());
            let standing = Standing::Ready;
            conditions::summarize(
                conditions,
                standing,
                reason::CONNECTED,
                &message,
                generation,
                now,
            );
        }
        Err(e) => conditions::summarize_failure(conditions, e, generation, now),
    }
    status.common.observed_generation = generation;
    let api: Api<ProxmoxCluster> = Api::all(kube.clone());
    status::write(&api, cluster, cluster.status.as_ref(), &status).await?;
    observed.map(|_| (status, Areas { firewall, access }))
}

fn set_access_condition(
    conditions: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    access: &AccessOutcome,
    cluster: &ProxmoxCluster,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let (ready, reason, message) = match access {
        Some(Ok(applied)) => (true, reason::ACCESS_CONFIGURED, applied.message.clone()),
        Some(Err(e)) => (false, e.category(), e.to_string()),
        None => {
            let wanted = cluster.spec.access.is_some();
            conditions.retain(|c| c.type_ != conditions::ACCESS_READY || wanted);
            return;
        }
    };
    let kind = conditions::ACCESS_READY;
    conditions::set(conditions, kind, ready, reason, &message, generation, now);
}

/// The ProxmoxCluster controller's own context: the shared one, and how to wake the
/// guests of every kind when a cluster turns Ready.
pub struct ClusterContext {
    pub shared: Arc<Context>,
    pub wake_guests: Box<dyn Fn() + Send + Sync>,
    /// The containers' cache: the datacenter firewall's role sets hold their addresses.
    pub containers: kube::runtime::reflector::Store<LxcGuest>,
}

/// The controller's pass: check the connection, and when the cluster turns Ready wake the
/// guests that were waiting for it.
pub async fn reconcile_cluster(
    cluster: Arc<ProxmoxCluster>,
    ctx: Arc<ClusterContext>,
) -> Result<Action, Error> {
    let shared = &ctx.shared;
    shared.metrics.reconciled(KIND);
    let was_ready = cluster
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.common.conditions, conditions::READY));
    let key = format!("ProxmoxCluster/{}", cluster.name_any());
    let roles = match &cluster.spec.firewall {
        Some(_) => {
            let routes: Api<TraefikService> = Api::all(shared.kube.clone());
            let routes = routes.list(&Default::default()).await?.items;
            datacenter_firewall::Roles::of(&routes, &ctx.containers.state(), &cluster)
        }
        None => datacenter_firewall::Roles::of(&[], &[], &cluster),
    };
    let redirect = shared.pve.redirect();
    let areas = match reconcile_with(&shared.kube, &cluster, redirect, &roles).await {
        Ok((_, areas)) => areas,
        Err(e) => {
            tracing::warn!(cluster = %cluster.name_any(), reason = e.category(), "{e}");
            shared.metrics.failed(KIND, e.category());
            return Ok(Action::requeue(shared.backoff(&key)));
        }
    };
    let access = areas.access.map(|r| r.map(|applied| applied.changed));
    let told = [
        (
            areas.firewall,
            conditions::FIREWALL_READY,
            reason::FIREWALL_CONFIGURED,
            "datacenter firewall",
        ),
        (
            access,
            conditions::ACCESS_READY,
            reason::ACCESS_UPDATED,
            "access",
        ),
    ];
    for (outcome, condition, updated, area) in told {
        tell(shared, &cluster, outcome, condition, updated, area).await;
    }
    if !was_ready {
        (ctx.wake_guests)();
    }
    shared.succeeded(&key);
    Ok(Action::requeue(shared.resync))
}

/// An area's changes as a Normal event; its failure as a Warning, once while it stands.
async fn tell(
    shared: &Context,
    cluster: &ProxmoxCluster,
    outcome: AreaOutcome,
    condition: &str,
    updated: &'static str,
    area: &str,
) {
    match outcome {
        Some(Ok(changed)) if !changed.is_empty() => {
            let note = format!("{area}: {}", changed.join(", "));
            shared
                .event(cluster, EventType::Normal, updated, note)
                .await;
        }
        Some(Err(e)) => {
            let before = cluster.status.as_ref().and_then(|s| {
                conditions::find(&s.common.conditions, condition).map(|c| c.message.clone())
            });
            // Told once, not at every resync while it stands.
            if before.as_deref() != Some(e.to_string().as_str()) {
                shared
                    .event(cluster, EventType::Warning, e.category(), e.to_string())
                    .await;
            }
            shared.metrics.failed(KIND, e.category());
        }
        _ => {}
    }
}

pub fn error_policy(_: Arc<ProxmoxCluster>, error: &Error, ctx: Arc<ClusterContext>) -> Action {
    ctx.shared.metrics.failed(KIND, error.category());
    Action::requeue(Duration::from_secs(10))
}
