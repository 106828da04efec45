//! ProxmoxCluster: connects with the token from its Secret, checks the credentials and the
//! TLS trust, and reports the version, nodes and storages in status, with a Ready
//! condition whose reason says what failed.

use crate::conditions;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use phoenix_clients::proxmox::{self, ProxmoxClient, Trust};
use phoenix_crds::ProxmoxCluster;
use phoenix_crds::proxmox_cluster::{ClusterTls, NodeStatus, ProxmoxClusterStatus, StorageStatus};
use std::time::Duration;

/// Where simulate mode sends every PVE call instead of the manifest's endpoint.
#[derive(Clone, Debug)]
pub struct Redirect {
    pub endpoint: String,
    pub token_id: String,
    pub token_secret: String,
    pub fingerprint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("credentials Secret {0}: {1}")]
    Credentials(String, String),
    #[error(transparent)]
    Proxmox(#[from] proxmox::ProxmoxError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// Stable category for conditions, events and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Credentials(..) => "CredentialsMissing",
            Error::Proxmox(e) => e.kind.category(),
            Error::Kube(_) => "KubernetesApi",
        }
    }
}

fn trust(tls: &ClusterTls) -> Trust {
    match (&tls.ca_bundle, &tls.fingerprint_sha256) {
        (Some(pem), _) => Trust::CaBundle(pem.clone()),
        (None, Some(fp)) => Trust::Fingerprint(fp.clone()),
        (None, None) if tls.insecure_skip_tls_verify => Trust::InsecureSkipVerify,
        // No pin and no bundle: the system roots would apply, which PVE's self-signed
        // certificate never chains to; an empty bundle makes that failure explicit.
        (None, None) => Trust::CaBundle(String::new()),
    }
}

async fn client_config(
    kube: &kube::Client,
    cluster: &ProxmoxCluster,
    redirect: Option<&Redirect>,
) -> Result<proxmox::Config, Error> {
    if let Some(r) = redirect {
        return Ok(proxmox::Config {
            endpoint: r.endpoint.clone(),
            token_id: r.token_id.clone(),
            token_secret: r.token_secret.clone(),
            trust: Trust::Fingerprint(r.fingerprint.clone()),
            timeout: Duration::from_secs(10),
        });
    }
    let reference = &cluster.spec.credentials_secret_ref;
    let name = format!("{}/{}", reference.namespace, reference.name);
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), &reference.namespace);
    let secret = secrets
        .get_opt(&reference.name)
        .await?
        .ok_or_else(|| Error::Credentials(name.clone(), "not found".into()))?;
    let key = |k: &str| -> Result<String, Error> {
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .ok_or_else(|| Error::Credentials(name.clone(), format!("has no key {k:?}")))?;
        String::from_utf8(data.0.clone())
            .map_err(|_| Error::Credentials(name.clone(), format!("key {k:?} is not text")))
    };
    Ok(proxmox::Config {
        endpoint: cluster.spec.endpoint.clone(),
        token_id: key("tokenId")?,
        token_secret: key("tokenSecret")?,
        trust: trust(&cluster.spec.tls),
        timeout: Duration::from_secs(10),
    })
}

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
        Ok(config) => observe(&config).await,
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
    let patch = serde_json::json!({"status": status});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    observed.map(|_| status)
}
