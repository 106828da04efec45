//! ProxmoxCluster: connects with the token from its Secret, checks the credentials and the
//! TLS trust, and reports the version, nodes and storages in status, with a Ready
//! condition whose reason says what failed.

use crate::conditions;
use crate::context::Context;
use crate::error::Error;
use crate::pve::{Redirect, client_config};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use phoenix_clients::proxmox::{self, ProxmoxClient};
use phoenix_crds::ProxmoxCluster;
use phoenix_crds::proxmox_cluster::{NodeStatus, ProxmoxClusterStatus, StorageStatus};
use std::sync::Arc;
use std::time::Duration;

pub const KIND: &str = "ProxmoxCluster";

/// What the cluster looks like from PVE.
async fn observe(
    config: &proxmox::Config,
) -> Result<(String, Vec<NodeStatus>, Vec<StorageStatus>), Error> {
    let pve = ProxmoxClient::new(config)?;
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

/// One pass: observe, then write status (Ready with the reason of any failure).
pub async fn reconcile(
    kube: &kube::Client,
    cluster: &ProxmoxCluster,
    redirect: Option<&Redirect>,
) -> Result<ProxmoxClusterStatus, Error> {
    let mut status = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let now = jiff::Timestamp::now();
    let observed = match client_config(kube, cluster, redirect).await {
        Ok((config, _)) => observe(&config).await,
        Err(e) => Err(e),
    };
    match &observed {
        Ok((version, nodes, storages)) => {
            status.version = Some(version.clone());
            status.node_count = Some(nodes.len() as u32);
            status.nodes = nodes.clone();
            status.storages = storages.clone();
            let message = format!("connected to Proxmox VE {version}, {} node(s)", nodes.len());
            conditions::set(
                &mut status.common.conditions,
                "Ready",
                true,
                "Connected",
                &message,
                generation,
                now,
            );
        }
        Err(e) => conditions::set(
            &mut status.common.conditions,
            "Ready",
            false,
            e.category(),
            &e.to_string(),
            generation,
            now,
        ),
    }
    status.common.observed_generation = generation;
    let api: Api<ProxmoxCluster> = Api::all(kube.clone());
    let name = cluster.metadata.name.clone().unwrap_or_default();
    if cluster.status.as_ref() != Some(&status) {
        let previous = cluster.status.clone().unwrap_or_default();
        let patch = crate::status::merge_patch(&previous, &status);
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    observed.map(|_| status)
}

/// The controller's pass: check the connection, and when the cluster turns Ready wake the
/// guests that were waiting for it.
pub async fn reconcile_cluster(
    cluster: Arc<ProxmoxCluster>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    ctx.metrics.reconciled(KIND);
    let was_ready = cluster
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.common.conditions, "Ready"));
    let result = reconcile(&ctx.kube, &cluster, ctx.pve.redirect()).await;
    if let Err(e) = &result {
        let key = format!("ProxmoxCluster/{}", cluster.name_any());
        tracing::warn!(cluster = %cluster.name_any(), reason = e.category(), "{e}");
        ctx.metrics.failed(KIND, e.category());
        return Ok(Action::requeue(ctx.backoff(&key)));
    }
    if !was_ready {
        for guest in ctx.lxc_guests.state() {
            let _ = ctx.wake_lxc.send(ObjectRef::from_obj(&*guest));
        }
    }
    ctx.succeeded(&format!("ProxmoxCluster/{}", cluster.name_any()));
    Ok(Action::requeue(ctx.resync))
}

pub fn error_policy(_: Arc<ProxmoxCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(KIND, error.category());
    Action::requeue(Duration::from_secs(10))
}
