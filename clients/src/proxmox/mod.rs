//! The Proxmox VE API client: token auth, trusted TLS, a timeout on every call, typed calls
//! for what guest controllers need, task tracking by UPID, classified errors.

pub mod access;
mod error;
pub mod node;
mod tls;
mod upid;

pub use error::{ErrorKind, ProxmoxError};
pub use tls::{Trust, client_config, normalise_fingerprint};
pub use upid::{TaskOutcome, TaskStatus, Upid};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// How to reach one PVE cluster.
#[derive(Clone)]
pub struct Config {
    /// `https://10.0.0.13:8006`
    pub endpoint: String,
    /// `USER@REALM!TOKENID`
    pub token_id: String,
    pub token_secret: String,
    pub trust: Trust,
    /// Bound on every call.
    pub timeout: Duration,
}

/// Containers or VMs: the same calls under `/lxc` or `/qemu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestType {
    Lxc,
    Qemu,
}

impl GuestType {
    pub fn segment(self) -> &'static str {
        match self {
            GuestType::Lxc => "lxc",
            GuestType::Qemu => "qemu",
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Version {
    pub version: String,
    #[serde(default)]
    pub release: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct NodeInfo {
    pub node: String,
    pub status: String,
    #[serde(default)]
    pub maxcpu: Option<u32>,
    #[serde(default)]
    pub maxmem: Option<u64>,
    #[serde(default)]
    pub mem: Option<u64>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct StorageInfo {
    pub storage: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub shared: Option<u8>,
}

/// `/status/current` of a guest.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct GuestStatus {
    pub status: String,
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default)]
    pub template: Option<u8>,
    #[serde(default)]
    pub name: Option<String>,
    /// Seconds since the guest started (0 while stopped).
    #[serde(default)]
    pub uptime: Option<u64>,
}

/// One entry of `/cluster/resources?type=vm`: where a guest is and how it is.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ClusterResource {
    pub vmid: Option<u32>,
    /// `lxc` or `qemu`.
    #[serde(rename = "type")]
    pub kind: String,
    pub node: Option<String>,
    pub status: Option<String>,
    pub template: Option<u8>,
    pub lock: Option<String>,
    /// Seconds since the guest started (0 while stopped).
    pub uptime: Option<i64>,
}

/// PVE's answer: `{"data": ...}`.
#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
}

/// A success answer that is not what was expected.
fn unexpected(path: &str, e: serde_json::Error) -> ProxmoxError {
    ProxmoxError {
        kind: ErrorKind::Refused,
        status: Some(200),
        message: format!("unexpected answer from {path}: {e}"),
        errors: BTreeMap::new(),
    }
}

/// The `data` of an answer's body; none (or `null`) is read as `null` would be, so a
/// caller expecting nothing gets it and one expecting something is told.
fn data_of<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice::<Envelope<T>>(body)?.data {
        Some(data) => Ok(data),
        None => serde_json::from_value(Value::Null),
    }
}

/// A parameter list in PVE's form encoding (booleans as 0/1 are the caller's to give).
pub type Params = Vec<(String, String)>;

/// Told of every call: method, whether it succeeded, and how long it took (for metrics).
pub type CallObserver = std::sync::Arc<dyn Fn(&reqwest::Method, bool, Duration) + Send + Sync>;

#[derive(Clone)]
pub struct ProxmoxClient {
    http: reqwest::Client,
    base: String,
    observer: Option<CallObserver>,
    /// A secret, never logged (no Debug derive on purpose).
    auth: Auth,
}

/// How requests authenticate: an API token, or a ticket from a password login (writes
/// then carry the CSRF token PVE pairs with it).
#[derive(Clone)]
enum Auth {
    /// Only for the login itself.
    None,
    /// `PVEAPIToken=USER@REALM!TOKENID=SECRET`
    Token(String),
    Ticket {
        cookie: String,
        csrf: String,
    },
}

impl std::fmt::Debug for ProxmoxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxmoxClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The pause before a failed read is tried again (doubled for the second retry).
const READ_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Connections to PVE kept open while idle.
const IDLE_CONNECTIONS: usize = 8;

impl ProxmoxClient {
    pub fn new(config: &Config) -> Result<Self, ProxmoxError> {
        let tls =
            tls::client_config(&config.trust).map_err(|e| ProxmoxError::transport(e, true))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A burst of passes opens many connections; each idle one keeps TLS and HTTP
            // buffers, so only a few stay, and not for long.
            .pool_max_idle_per_host(IDLE_CONNECTIONS)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ProxmoxError::transport(e.to_string(), false))?;
        Ok(Self {
            http,
            base: format!("{}/api2/json", config.endpoint.trim_end_matches('/')),
            observer: None,
            auth: Auth::Token(format!(
                "PVEAPIToken={}={}",
                config.token_id, config.token_secret
            )),
        })
    }

    pub fn with_observer(mut self, observer: CallObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// One call; `params` go in the query for GET/DELETE and as a form body otherwise.
    /// Reads PVE answered with a transient error (5xx, lock) are tried again twice after a
    /// short pause: they change nothing, and one lost read should not cost a whole
    /// reconcile its backoff. Transport errors are not: a timeout would only repeat.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Value, ProxmoxError> {
        self.typed(method, path, params).await
    }

    /// A call whose `data` is read straight into `T`: a large answer (every guest of a
    /// cluster) never becomes a tree of `Value`s first.
    async fn typed<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<T, ProxmoxError> {
        let body = self.read(method, path, params).await?;
        data_of(&body).map_err(|e| unexpected(path, e))
    }

    /// A call's whole answer, `data` and the attributes PVE puts beside it (`changes` of
    /// a node's network while changes are pending).
    pub async fn envelope(
        &self,
        method: reqwest::Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Value, ProxmoxError> {
        let body = self.read(method, path, params).await?;
        serde_json::from_slice(&body).map_err(|e| unexpected(path, e))
    }

    /// One call's body, reads retried as [`Self::call`] says.
    async fn read(
        &self,
        method: reqwest::Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<bytes::Bytes, ProxmoxError> {
        let mut attempt = 0;
        loop {
            let started = std::time::Instant::now();
            let result = self.send(method.clone(), path, params).await;
            if let Some(observe) = &self.observer {
                observe(&method, result.is_ok(), started.elapsed());
            }
            match result {
                Err(e)
                    if e.is_transient()
                        && e.status.is_some()
                        && method == reqwest::Method::GET
                        && attempt < 2 =>
                {
                    attempt += 1;
                    tokio::time::sleep(READ_RETRY_PAUSE * attempt).await;
                }
                result => return result,
            }
        }
    }

    /// One request; a success is its body, unread.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<bytes::Bytes, ProxmoxError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        request = match &self.auth {
            Auth::None => request,
            Auth::Token(header) => request.header("Authorization", header),
            Auth::Ticket { cookie, csrf } => request
                .header("Cookie", cookie)
                .header("CSRFPreventionToken", csrf),
        };
        request = if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            request.query(params)
        } else {
            request.form(params)
        };
        let transport = |e: reqwest::Error| {
            let text = error_chain(&e);
            ProxmoxError::transport(
                text.clone(),
                text.contains("certificate") || text.contains("fingerprint"),
            )
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let reason = status.canonical_reason().unwrap_or("").to_owned();
        let body = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(body);
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        // PVE ≥ 8.3 repeats the reason phrase in `message`; older ones only set the phrase,
        // which hyper does not expose beyond the canonical text.
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or(reason);
        let errors = body
            .get("errors")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Err(ProxmoxError::from_response(
            status.as_u16(),
            &message,
            errors,
        ))
    }

    pub async fn upid(
        &self,
        method: reqwest::Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Upid, ProxmoxError> {
        let data = self.call(method, path, params).await?;
        let raw = data.as_str().unwrap_or_default();
        Upid::parse(raw).ok_or_else(|| ProxmoxError {
            kind: ErrorKind::Refused,
            status: Some(200),
            message: format!("{path} did not answer with a task id: {data}"),
            errors: BTreeMap::new(),
        })
    }

    pub async fn version(&self) -> Result<Version, ProxmoxError> {
        self.typed(reqwest::Method::GET, "/version", &[]).await
    }

    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ProxmoxError> {
        self.typed(reqwest::Method::GET, "/nodes", &[]).await
    }

    pub async fn storages(&self, node: &str) -> Result<Vec<StorageInfo>, ProxmoxError> {
        self.typed(reqwest::Method::GET, &format!("/nodes/{node}/storage"), &[])
            .await
    }

    /// `/cluster/resources?type=vm`: every guest of the cluster, on every node.
    pub async fn guests(&self) -> Result<Vec<ClusterResource>, ProxmoxError> {
        self.typed(
            reqwest::Method::GET,
            "/cluster/resources",
            &[("type".into(), "vm".into())],
        )
        .await
    }

    /// A hint, not a reservation (as on PVE).
    pub async fn next_id(&self) -> Result<u32, ProxmoxError> {
        let data = self
            .call(reqwest::Method::GET, "/cluster/nextid", &[])
            .await?;
        data.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| data.as_u64().map(|n| n as u32))
            .ok_or_else(|| ProxmoxError {
                kind: ErrorKind::Refused,
                status: Some(200),
                message: format!("nextid answered {data}"),
                errors: BTreeMap::new(),
            })
    }

    fn guest_path(node: &str, kind: GuestType, vmid: u32) -> String {
        format!("/nodes/{node}/{}/{vmid}", kind.segment())
    }

    pub async fn create(
        &self,
        node: &str,
        kind: GuestType,
        params: &Params,
    ) -> Result<Upid, ProxmoxError> {
        self.upid(
            reqwest::Method::POST,
            &format!("/nodes/{node}/{}", kind.segment()),
            params,
        )
        .await
    }

    pub async fn clone_guest(
        &self,
        node: &str,
        kind: GuestType,
        source: u32,
        params: &Params,
    ) -> Result<Upid, ProxmoxError> {
        self.upid(
            reqwest::Method::POST,
            &format!("{}/clone", Self::guest_path(node, kind, source)),
            params,
        )
        .await
    }

    /// The config as PVE returns it (with `digest`), values as text.
    pub async fn config(
        &self,
        node: &str,
        kind: GuestType,
        vmid: u32,
    ) -> Result<BTreeMap<String, String>, ProxmoxError> {
        let data = self
            .call(
                reqwest::Method::GET,
                &format!("{}/config", Self::guest_path(node, kind, vmid)),
                &[],
            )
            .await?;
        Ok(data
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Synchronous config write (`PUT`), guarded by `digest` when given.
    pub async fn update_config(
        &self,
        node: &str,
        kind: GuestType,
        vmid: u32,
        params: &Params,
    ) -> Result<(), ProxmoxError> {
        self.call(
            reqwest::Method::PUT,
            &format!("{}/config", Self::guest_path(node, kind, vmid)),
            params,
        )
        .await
        .map(drop)
    }

    pub async fn status(
        &self,
        node: &str,
        kind: GuestType,
        vmid: u32,
    ) -> Result<GuestStatus, ProxmoxError> {
        self.typed(
            reqwest::Method::GET,
            &format!("{}/status/current", Self::guest_path(node, kind, vmid)),
            &[],
        )
        .await
    }

    /// `start`, `stop`, `shutdown`, `reboot`.
    pub async fn power(
        &self,
        node: &str,
        kind: GuestType,
        vmid: u32,
        action: &str,
    ) -> Result<Upid, ProxmoxError> {
        self.upid(
            reqwest::Method::POST,
            &format!("{}/status/{action}", Self::guest_path(node, kind, vmid)),
            &[],
        )
        .await
    }

    /// Destroy with purge; a running container is stopped first when `force`.
    pub async fn destroy(
        &self,
        node: &str,
        kind: GuestType,
        vmid: u32,
        force: bool,
    ) -> Result<Upid, ProxmoxError> {
        let mut params: Params = vec![("purge".into(), "1".into())];
        if force && kind == GuestType::Lxc {
            params.push(("force".into(), "1".into()));
        }
        self.upid(
            reqwest::Method::DELETE,
            &Self::guest_path(node, kind, vmid),
            &params,
        )
        .await
    }

    /// Where a task stands, read from the node the UPID names.
    pub async fn task(&self, upid: &Upid) -> Result<TaskStatus, ProxmoxError> {
        self.typed(
            reqwest::Method::GET,
            &format!("/nodes/{}/tasks/{}/status", upid.node, upid.raw),
            &[],
        )
        .await
    }

    /// Turns a stopped guest into a template. LXC answers at once and converts in the
    /// background (the config shows `template: 1` when done); QEMU returns a task.
    pub async fn template(
        &self,
        node: &str,
        kind: GuestType,
        vmid: u32,
    ) -> Result<Option<Upid>, ProxmoxError> {
        let data = self
            .call(
                reqwest::Method::POST,
                &format!("{}/template", Self::guest_path(node, kind, vmid)),
                &[],
            )
            .await?;
        Ok(data.as_str().and_then(Upid::parse))
    }

    /// Grows a disk to `size` (`16G`); a task.
    pub async fn resize(
        &self,
        node: &str,
        kind: GuestType,
        vmid: u32,
        disk: &str,
        size: &str,
    ) -> Result<Upid, ProxmoxError> {
        self.upid(
            reqwest::Method::PUT,
            &format!("{}/resize", Self::guest_path(node, kind, vmid)),
            &[("disk".into(), disk.into()), ("size".into(), size.into())],
        )
        .await
    }

    /// Names of a guest's snapshots, oldest first (without PVE's `current` entry).
    pub async fn snapshots(
        &self,
        node: &str,
        kind: GuestType,
        vmid: u32,
    ) -> Result<Vec<String>, ProxmoxError> {
        let data = self
            .call(
                reqwest::Method::GET,
                &format!("{}/snapshot", Self::guest_path(node, kind, vmid)),
                &[],
            )
            .await?;
        let mut list: Vec<(u64, String)> = data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                let name = v.get("name").and_then(Value::as_str)?;
                (name != "current").then(|| {
                    let time = v.get("snaptime").and_then(Value::as_u64).unwrap_or(0);
                    (time, name.to_owned())
                })
            })
            .collect();
        list.sort();
        Ok(list.into_iter().map(|(_, name)| name).collect())
    }

    /// Takes a snapshot; a task.
    pub async fn snapshot(
        &self,
        node: &str,
        kind: GuestType,
        vmid: u32,
        name: &str,
        description: &str,
    ) -> Result<Upid, ProxmoxError> {
        self.upid(
            reqwest::Method::POST,
            &format!("{}/snapshot", Self::guest_path(node, kind, vmid)),
            &[
                ("snapname".into(), name.into()),
                ("description".into(), description.into()),
            ],
        )
        .await
    }

    /// Rolls back to a snapshot (`start`: start the guest afterwards), or deletes one; tasks.
    pub async fn rollback(
        &self,
        node: &str,
        kind: GuestType,
        vmid: u32,
        name: &str,
    ) -> Result<Upid, ProxmoxError> {
        self.upid(
            reqwest::Method::POST,
            &format!(
                "{}/snapshot/{name}/rollback",
                Self::guest_path(node, kind, vmid)
            ),
            &[("start".into(), "1".into())],
        )
        .await
    }

    pub async fn delete_snapshot(
        &self,
        node: &str,
        kind: GuestType,
        vmid: u32,
        name: &str,
    ) -> Result<Upid, ProxmoxError> {
        self.upid(
            reqwest::Method::DELETE,
            &format!("{}/snapshot/{name}", Self::guest_path(node, kind, vmid)),
            &[],
        )
        .await
    }

    /// Volume ids of one content type on a node's storage (`vztmpl`, `import`, ...).
    pub async fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: &str,
    ) -> Result<Vec<String>, ProxmoxError> {
        let data = self
            .call(
                reqwest::Method::GET,
                &format!("/nodes/{node}/storage/{storage}/content"),
                &[("content".into(), content.into())],
            )
            .await?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("volid").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// A call under a guest's path (`firewall/options`, `firewall/rules/3`, ...), for the
    /// endpoints whose answer the caller reads as it is.
    pub async fn guest_request(
        &self,
        method: reqwest::Method,
        (node, kind, vmid): (&str, GuestType, u32),
        path: &str,
        params: &Params,
    ) -> Result<Value, ProxmoxError> {
        let path = format!("{}/{path}", Self::guest_path(node, kind, vmid));
        self.call(method, &path, params).await
    }

    /// A storage's cluster-wide configuration (`type`, `content`, and `path` for directory
    /// storages).
    pub async fn storage_config(&self, storage: &str) -> Result<Value, ProxmoxError> {
        self.call(reqwest::Method::GET, &format!("/storage/{storage}"), &[])
            .await
    }

    /// Has the node download `url` as an importable disk image (`content=import`); a
    /// checksum `algo:hex` is checked by PVE.
    pub async fn download_url(
        &self,
        node: &str,
        storage: &str,
        filename: &str,
        url: &str,
        checksum: Option<&str>,
    ) -> Result<Upid, ProxmoxError> {
        let mut params: Params = vec![
            ("content".into(), "import".into()),
            ("filename".into(), filename.into()),
            ("url".into(), url.into()),
        ];
        if let Some((algorithm, sum)) = checksum.and_then(|c| c.split_once(':')) {
            params.push(("checksum-algorithm".into(), algorithm.into()));
            params.push(("checksum".into(), sum.into()));
        }
        self.upid(
            reqwest::Method::POST,
            &format!("/nodes/{node}/storage/{storage}/download-url"),
            &params,
        )
        .await
    }

    /// A VM's interfaces as its guest agent reports them (`result` of
    /// `network-get-interfaces`); fails while the agent does not answer.
    pub async fn agent_interfaces(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<Vec<Value>, ProxmoxError> {
        let data = self
            .call(
                reqwest::Method::GET,
                &format!(
                    "{}/agent/network-get-interfaces",
                    Self::guest_path(node, GuestType::Qemu, vmid)
                ),
                &[],
            )
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Container interfaces (`null` while stopped).
    pub async fn lxc_interfaces(&self, node: &str, vmid: u32) -> Result<Vec<Value>, ProxmoxError> {
        let data = self
            .call(
                reqwest::Method::GET,
                &format!(
                    "{}/interfaces",
                    Self::guest_path(node, GuestType::Lxc, vmid)
                ),
                &[],
            )
            .await?;
        Ok(data.as_array().cloned().unwrap_or_default())
    }
}

/// reqwest's error with its causes, for messages that say what failed (TLS, refused, ...).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
