//! Connections to Proxmox VE clusters, shared by every controller: one client per
//! ProxmoxCluster (rebuilt when its spec or Secret changes), the per-node task budget and
//! the per-template clone lock.

use crate::cluster_view::ClusterView;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::slots::Slots;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use phoenix_clients::proxmox::{self, ProxmoxClient, Trust};
use phoenix_crds::ProxmoxCluster;
use phoenix_crds::proxmox_cluster::ClusterTls;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where simulate mode sends every PVE call instead of the manifest's endpoint, and every
/// command meant for a guest instead of the nodes' SSH.
#[derive(Clone, Default)]
pub struct Redirect {
    pub endpoint: String,
    pub token_id: String,
    pub token_secret: String,
    pub fingerprint: String,
    /// The `pct` that reaches simulated containers (`phoenix sim pct --credentials …`).
    pub pct: Vec<String>,
    /// When set, SSH goes to this address (a local sshd whose `pct` is the simulator's)
    /// instead of the node's, with the host key still checked under the node's name.
    pub ssh: Option<String>,
    /// PVE calls authenticate with the ProxmoxCluster's Secret (as `phoenix setup` wrote
    /// it) rather than the simulator's root token, which then serves only its admin
    /// endpoint.
    pub token_from_secret: bool,
}

impl std::fmt::Debug for Redirect {
    // The token secret is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redirect")
            .field("endpoint", &self.endpoint)
            .field("token_id", &self.token_id)
            .field("token_secret", &"<redacted>")
            .field("fingerprint", &self.fingerprint)
            .field("pct", &self.pct)
            .field("ssh", &self.ssh)
            .field("token_from_secret", &self.token_from_secret)
            .finish()
    }
}

/// Bound on every PVE call.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

impl Redirect {
    /// The simulator's admin endpoint (`/admin`), which stands in for what is not PVE's
    /// API: the nodes' files, the guests' service addresses.
    pub fn admin(&self) -> Result<SimulatorAdmin, String> {
        let tls = phoenix_clients::proxmox::client_config(
            &phoenix_clients::proxmox::Trust::Fingerprint(self.fingerprint.clone()),
        )?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(SimulatorAdmin {
            http,
            base: format!("{}/admin", self.endpoint.trim_end_matches('/')),
            authorization: format!("PVEAPIToken={}={}", self.token_id, self.token_secret),
        })
    }
}

impl Redirect {
    /// The loopback listener the simulator's resolver names for `query` (a guest's
    /// `address` and `port`, or a service's `host` and `port`); `None` when it knows none.
    /// Whatever it answers, nothing but a loopback address is handed out.
    pub async fn resolve(
        &self,
        query: &[(&str, String)],
    ) -> Result<Option<std::net::SocketAddr>, String> {
        let answer = self
            .admin()?
            .call(reqwest::Method::GET, "resolve", query, None)
            .await?;
        let Some(address) = answer["address"].as_str() else {
            return Ok(None);
        };
        match address.parse::<std::net::SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Ok(Some(a)),
            _ => Err(format!(
                "the resolver gave {address}, not a loopback address"
            )),
        }
    }
}

/// A client of the simulator's admin endpoint.
pub struct SimulatorAdmin {
    http: reqwest::Client,
    base: String,
    authorization: String,
}

impl SimulatorAdmin {
    /// `method path` with a query or a JSON body; the answer's JSON.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .query(query)
            .header("Authorization", &self.authorization);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("simulator {path}: {e}"))?;
        let status = response.status();
        let answer: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("simulator {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("simulator {path}: {status} {answer}"));
        }
        Ok(answer)
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

/// The client settings of `cluster`: its endpoint and the token from its Secret. In
/// simulate mode the simulator's address and certificate instead, and its own token unless
/// the redirect says the Secret's (as `phoenix setup` wrote it). Also returns
/// the Secret's resourceVersion (empty when it was not read).
pub async fn client_config(
    kube: &kube::Client,
    cluster: &ProxmoxCluster,
    redirect: Option<&Redirect>,
) -> Result<(proxmox::Config, String), Error> {
    let ([token_id, token_secret], version) = match redirect {
        Some(r) if !r.token_from_secret => {
            ([r.token_id.clone(), r.token_secret.clone()], String::new())
        }
        _ => {
            let reference = &cluster.spec.credentials_secret_ref;
            let keys = ["tokenId", "tokenSecret"];
            secret_texts(kube, &reference.namespace, &reference.name, keys).await?
        }
    };
    let (endpoint, trust) = match redirect {
        Some(r) => (
            r.endpoint.clone(),
            Trust::Fingerprint(r.fingerprint.clone()),
        ),
        None => {
            if cluster.spec.tls.insecure_skip_tls_verify {
                tracing::warn!(cluster = ?cluster.metadata.name, "insecureSkipTlsVerify: PVE's certificate is not checked");
            }
            (cluster.spec.endpoint.clone(), trust(&cluster.spec.tls))
        }
    };
    let config = proxmox::Config {
        endpoint,
        token_id,
        token_secret,
        trust,
        timeout: CALL_TIMEOUT,
    };
    Ok((config, version))
}

/// The text values of `keys` in Secret `namespace/name`, and its resourceVersion; a
/// missing Secret or key is a `Credentials` error naming it (never its content).
pub async fn secret_texts<const N: usize>(
    kube: &kube::Client,
    namespace: &str,
    name: &str,
    keys: [&str; N],
) -> Result<([String; N], String), Error> {
    let label = format!("{namespace}/{name}");
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    let secret = secrets
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::Credentials(label.clone(), "not found".into()))?;
    let mut texts: [String; N] = std::array::from_fn(|_| String::new());
    for (text, k) in texts.iter_mut().zip(keys) {
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .ok_or_else(|| Error::Credentials(label.clone(), format!("has no key {k:?}")))?;
        *text = String::from_utf8(data.0.clone())
            .map_err(|_| Error::Credentials(label.clone(), format!("key {k:?} is not text")))?;
    }
    Ok((texts, secret.metadata.resource_version.unwrap_or_default()))
}

/// The text under `key` of `secret` (`None`: no such key, or not UTF-8).
pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// One connected cluster.
pub struct Connection {
    pub cluster: Arc<ProxmoxCluster>,
    pub client: ProxmoxClient,
    /// Every guest's place and power state, from one call shared by all passes.
    pub view: Arc<ClusterView>,
    budget_per_node: u32,
    node_budgets: BTreeMap<String, u32>,
    slots: Mutex<BTreeMap<String, Arc<Slots>>>,
}

impl Connection {
    /// The slots bounding concurrent tasks on `node`.
    pub fn budget(&self, node: &str) -> Arc<Slots> {
        self.slots(&format!("node/{node}"), || {
            self.node_budgets
                .get(node)
                .copied()
                .unwrap_or(self.budget_per_node) as usize
        })
    }

    /// PVE locks an LXC template for the whole of a clone: one clone per template at once.
    pub fn template_lock(&self, vmid: u32) -> Arc<Slots> {
        self.slots(&format!("template/{vmid}"), || 1)
    }

    fn slots(&self, key: &str, size: impl FnOnce() -> usize) -> Arc<Slots> {
        let mut map = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_owned())
            .or_insert_with(|| Slots::new(size()))
            .clone()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.cluster
            .status
            .as_ref()
            .map(|s| s.nodes.iter().map(|n| n.name.clone()).collect())
            .unwrap_or_default()
    }
}

/// Every cluster's connection, by name; a cluster's connection is rebuilt when its
/// generation or its Secret changes.
pub struct Connections {
    kube: kube::Client,
    redirect: Option<Redirect>,
    metrics: Arc<Metrics>,
    cache: Mutex<BTreeMap<String, (String, Arc<Connection>)>>,
}

impl Connections {
    pub fn new(kube: kube::Client, redirect: Option<Redirect>, metrics: Arc<Metrics>) -> Self {
        Self {
            kube,
            redirect,
            metrics,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// The clusters connected so far (those a pass has asked for).
    pub fn connected(&self) -> Vec<Arc<Connection>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.values().map(|(_, c)| c.clone()).collect()
    }

    pub fn redirect(&self) -> Option<&Redirect> {
        self.redirect.as_ref()
    }

    /// The cluster named by `reference`, or the only one; it must be Ready.
    pub async fn get(&self, reference: Option<&str>) -> Result<Arc<Connection>, Error> {
        let clusters: Api<ProxmoxCluster> = Api::all(self.kube.clone());
        let cluster = match reference {
            Some(name) => clusters.get_opt(name).await?.ok_or_else(|| {
                Error::ClusterNotFound(format!("ProxmoxCluster {name} does not exist"))
            })?,
            None => {
                let mut all = clusters.list(&Default::default()).await?.items;
                match all.len() {
                    1 => all.remove(0),
                    0 => return Err(Error::ClusterNotFound("no ProxmoxCluster exists".into())),
                    n => {
                        return Err(Error::ClusterNotFound(format!(
                            "{n} ProxmoxClusters exist: set spec.clusterRef"
                        )));
                    }
                }
            }
        };
        let name = cluster.metadata.name.clone().unwrap_or_default();
        let ready = cluster.status.as_ref().is_some_and(|s| {
            crate::conditions::is_true(&s.common.conditions, crate::conditions::READY)
        });
        if !ready {
            return Err(Error::ClusterNotReady(name));
        }
        let (config, secret_version) =
            client_config(&self.kube, &cluster, self.redirect.as_ref()).await?;
        let key = format!(
            "{}/{}/{secret_version}",
            cluster.metadata.generation.unwrap_or(0),
            cluster
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default()
        );
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached_key, connection)) = cache.get(&name) {
            // Status updates (resourceVersion) only refresh the cluster view; the
            // slots, with those held and queued, stay.
            if cached_key.split('/').next() == key.split('/').next()
                && cached_key.ends_with(&format!("/{secret_version}"))
            {
                if cached_key == &key {
                    return Ok(connection.clone());
                }
                let refreshed = Arc::new(Connection {
                    cluster: Arc::new(cluster),
                    client: connection.client.clone(),
                    view: connection.view.clone(),
                    budget_per_node: connection.budget_per_node,
                    node_budgets: connection.node_budgets.clone(),
                    slots: Mutex::new(
                        connection
                            .slots
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .clone(),
                    ),
                });
                cache.insert(name, (key, refreshed.clone()));
                return Ok(refreshed);
            }
        }
        let metrics = self.metrics.clone();
        let client = ProxmoxClient::new(&config)?
            .with_observer(Arc::new(move |m, ok, took| metrics.pve_call(m, ok, took)));
        let connection = Arc::new(Connection {
            budget_per_node: cluster.spec.task_budget_per_node,
            node_budgets: cluster
                .spec
                .nodes
                .iter()
                .filter_map(|n| n.task_budget.map(|b| (n.name.clone(), b)))
                .collect(),
            cluster: Arc::new(cluster),
            client,
            view: Arc::default(),
            slots: Mutex::new(BTreeMap::new()),
        });
        cache.insert(name, (key, connection.clone()));
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_redirect_keeps_its_token_secret_out() {
        let redirect = Redirect {
            endpoint: "https://127.0.0.1:8006".into(),
            token_id: "root@pam!phoenix".into(),
            token_secret: "5ec2e7-70ce-4e75".into(),
            ..Redirect::default()
        };
        let printed = format!("{redirect:?} {redirect:#?}");
        assert!(!printed.contains("5ec2e7-70ce-4e75"), "{printed}");
        assert!(printed.contains("root@pam!phoenix") && printed.contains("<redacted>"));
    }
}
