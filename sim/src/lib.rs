//! A simulated Proxmox VE cluster for `phoenix up --simulate`, `phoenix sim pve` and every
//! controller test: HTTPS on loopback with PVE's `/api2/json` envelope and authentication,
//! asynchronous tasks with UPIDs and locks, parameter validation driven by the official
//! schema (`schema/pve-api.json`, cut from `apidoc.json`), a small simulated guest per
//! VMID, fault injection and an operation log.
//!
//! Storage: the cluster's storage configuration as `storage.cfg` keeps it (`/storage`,
//! `/storage/{storage}`: `dir`, `zfspool` and `nfs` with their plugins' checks,
//! [`storage_cfg`]); each node's disks and ZFS pools (`/nodes/{node}/disks/list`,
//! `disks/zfs`, `disks/zfs/{name}`: [`zfs`]), which its shell's `zfs`, `zpool` and
//! `exportfs` act on too ([`node_shell`]).
//!
//! # Admin endpoint (`admin_url`, same API token as the API)
//!
//! | route | what |
//! | --- | --- |
//! | `GET /admin/oplog`, `DELETE /admin/oplog` | every API call (method, path, params with secrets redacted, status, `mutating`: changes PVE, i.e. not a read nor the guest agent); clear it |
//! | `GET /admin/faults`, `PUT /admin/faults` | the faults in force (JSON: `errorRate`, `latencyMs: [lo, hi]`, `resetRate`, `failTasks: {type: error}`, `locked: {vmid: reason}`, `loseTaskStatus`, `agentDown: [vmid]`) |
//! | `GET /admin/guests`, `GET /admin/guests/{vmid}` | simulated guests: config, power state, snapshots, files, command log, firewall |
//! | `GET /admin/tasks` | every task with its state and log |
//! | `GET /admin/access` | access control: `users` (userid, enable, expire, groups, comment, `hasPassword`), `groups`, `roles` (those made through the API, with their privileges; built-ins are derived), `acl` (path, type, ugid, roleid, propagate) and `tokens` (`tokenid` as `user@realm!name`, privsep, expire, comment; never secrets) |
//! | `GET /admin/firewall` | the datacenter firewall as kept (as PVE reads `cluster.fw` back): `options` (`enable`, `ebtables` as numbers, `policy_*`, `log_ratelimit`), `ipsets` (`{name: {comment, entries: [{cidr, nomatch, comment}]}}`, names in lower case, entries sorted), `rules` (top first, as listed without `pos`/`digest`), `groups` (security groups: `{name: {comment, rules: [...]}}`, names in lower case, rules as `rules`'), `aliases` (`{name: {name, cidr, comment}}`, keyed by name in lower case, `name` as last given, `cidr` without a `/32`/`/128`) |
//! | `GET /admin/nodes/{node}/network` | the node's network: `running` (the interfaces of `/etc/network/interfaces`) and `pending` (those of `interfaces.new`, `null` without pending changes), each as `GET /nodes/{node}/network` lists them |
//! | `GET /admin/nodes/{node}/firewall` | the node's host firewall as kept (as PVE reads `host.fw` back): `options` (flags and numbers as numbers, log levels in lower case; absent ones take their defaults), `rules` (top first, as listed without `pos`/`digest`) |
//! | `GET /admin/swarms` | the docker swarms the VMs formed: manager address, nodes (vmid, id, role, status) |
//! | `GET /admin/nodes/{node}/files`, `PUT /admin/nodes/{node}/files` | files on a node (`{path: content}`; `PUT {path, content}` writes one as Phoenix does over SSH: `0600`, renamed into place; the path absolute, without `..`); under a storage's `snippets/` they are snippet volumes |
//! | `POST /admin/nodes/{node}/exec`, `POST /admin/guests/{vmid}/exec` | runs `{"command": [argv]}` in the node (the host, over SSH) or the running guest with the small shell of [`inside`] (`flock FILE …` waits for that lock file): `{"exitcode", "output"}` |
//! | `PUT /admin/nodes/{node}/answers`, `PUT /admin/guests/{vmid}/answers` | scripted answers (`[{"matches", "exit"?, "output"?, "delayMs"?, "times"?}]`) |
//! | `GET /admin/nodes/{node}/zfs` | the node's disks, pools and datasets: `{"disks": [as disks/list], "pools": {name: {raidlevel, devices, health}}, "datasets": {name: {prop: value}}}` (a dataset's properties set locally or at create, and its mountpoint) |
//! | `GET /admin/nodes/{node}/exports` | what the node's last `exportfs -ra` exported: `[{path, clients: ["10.0.0.0/24(rw,no_root_squash)"]}]` (options as written) |
//! | `GET /admin/nodes/{node}/inside`, `GET /admin/guests/{vmid}/inside` | `{"files": {path: "0644"}, "log": [{command, exit, started_ms, finished_ms}], "services": {unit: "running"\|"stopped"}, "enabled": [unit]}` |
//! | `POST /admin/guests/{vmid}/push`, `POST /admin/nodes/{node}/push` | `{path, content, perms?}` as `pct push --perms` |
//! | `GET /admin/resolve?address=IP&port=N` | where that port of the guest with that address is served on loopback (`{"address", "vmid", "standIn"}`): a real daemon run on the guest's files ([`daemons`], `standIn: false`), else a stand-in answering `guest VMID port N` with the certificate installed in the guest for the name asked ([`guest_tls`]) |
//! | `GET /admin/resolve?host=NAME&port=443\|9443` | `{"address"}` of the simulated Portainer: the one service the platform serves under host names (behind its route) |
//! | `GET /admin/portainer`, `PUT /admin/portainer` | Portainer's settings and faults: `{"version": "2.45.0" (background deploys; "2.23.0" synchronous), "deployMs": 300, "adminInitTimeoutSecs": 300, "errorRate": 0.0, "latencyMs": [lo, hi], "failDeploy": [stack name], "missingImages": ["repo:tag"]}` (`missingImages` also rules `docker stack deploy` in the VMs) |
//! | `GET /admin/portainer/oplog`, `DELETE /admin/portainer/oplog` | every Portainer call (`method`, `path` without query, `status`, `mutating`: POST/PUT/DELETE but logging in); never bodies, keys, passwords or env values |
//! | `GET /admin/portainer/state` | `running`, `timedOut`, `swarmId`, `adminExists`, `users`, `apiKeys` (prefixes), `endpoints`, `stacks` (status, env names, file SHA-256, git URL/ref/commit, `deploymentStatus`), the services and tasks of its swarms, `banned` IPs |
//! | `POST /admin/portainer/restart` | restarts Portainer: the admin-init timeout counts anew, bans are lifted |
//! | `POST /admin/portainer/unban` | lifts the auth rate limit's bans |
//!
//! Unknown guests and nodes are 404. With a state file, every file of a node is also a
//! real file under `nodes/<node>/<path>` beside it ([`node_mirror`]).
//!
//! # Portainer (`portainer_url`)
//!
//! Served on a loopback listener of its own with the same certificate, only while a task
//! of a `portainer/portainer-ce:*|ee:*` service runs on a simulated swarm (before that,
//! connections are closed at once). See [`portainer`] for the API.

pub mod access;
#[cfg(test)]
mod access_tests;
pub mod api;
pub mod clock;
pub mod cluster;
pub mod compose;
pub mod daemons;
pub mod docker;
pub mod exports;
pub mod firewall;
#[cfg(test)]
mod firewall_groups_tests;
#[cfg(test)]
mod firewall_tests;
pub mod guest_tls;
pub mod inside;
pub mod listeners;
pub mod network;
#[cfg(test)]
mod network_tests;
#[cfg(test)]
mod node_firewall_tests;
pub mod node_mirror;
pub mod node_shell;
#[cfg(test)]
mod node_tests;
pub mod owner;
pub mod pebble;
pub mod portainer;
pub mod portainer_db;
pub mod portainer_runtime;
pub mod schema;
pub mod server;
pub mod stack;
pub mod state;
pub mod storage_cfg;
pub mod swarm;
#[cfg(test)]
mod test_server;
pub mod unified_diff;
pub mod zfs;
pub mod zfs_shell;
#[cfg(test)]
mod zfs_tests;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How to run the simulator.
#[derive(Clone, Debug)]
pub struct Options {
    pub listen: String,
    pub nodes: usize,
    pub seed: u64,
    /// Task durations by PVE task type (`vzcreate`, ...) and `default`.
    pub durations: BTreeMap<String, Duration>,
    pub state_file: Option<PathBuf>,
    /// The real programs run for the guests' Traefik and nginx ([`daemons`]).
    pub programs: daemons::Programs,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            nodes: 1,
            seed: 1,
            durations: state::Sim::realistic_durations(),
            state_file: None,
            programs: Default::default(),
        }
    }
}

/// What a client needs, as written by `--credentials-out`.
#[derive(Clone, Serialize, serde::Deserialize)]
pub struct CredentialsFile {
    pub url: String,
    pub token_id: String,
    pub token_secret: String,
    pub user: String,
    pub password: String,
    pub fingerprint: String,
    pub admin_url: String,
    /// The simulated Portainer (`https://127.0.0.1:PORT`, same certificate); it answers
    /// only while a Portainer service runs on a simulated swarm.
    #[serde(default)]
    pub portainer_url: String,
}

impl std::fmt::Debug for CredentialsFile {
    // The token secret and the password are secrets: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsFile")
            .field("url", &self.url)
            .field("token_id", &self.token_id)
            .field("token_secret", &"<redacted>")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("fingerprint", &self.fingerprint)
            .field("admin_url", &self.admin_url)
            .field("portainer_url", &self.portainer_url)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("state file {0}: {1}")]
    State(PathBuf, String),
}

/// A running simulator.
pub struct Running {
    pub addr: SocketAddr,
    /// Portainer's loopback listener.
    pub portainer_addr: SocketAddr,
    pub credentials: CredentialsFile,
    pub server: Arc<server::Server>,
    task: tokio::task::JoinHandle<()>,
    portainer_task: tokio::task::JoinHandle<()>,
    daemons_task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn stop(self) {
        self.task.abort();
        self.portainer_task.abort();
        if let Some(task) = self.daemons_task {
            task.abort();
        }
        if let Some(daemons) = self.server.daemons.get() {
            daemons.stop_all();
        }
    }
}

/// The simulator's certificate: its server configuration, the SHA-256 fingerprint
/// clients pin, and the pair itself for the guests' stand-ins.
type Tls = (
    rustls::ServerConfig,
    String,
    Arc<rustls::sign::CertifiedKey>,
);

fn tls(addr: &SocketAddr) -> Result<Tls, StartError> {
    let err = |e: &dyn std::fmt::Display| StartError::Certificate(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(|e| err(&e))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !addr.ip().is_loopback() {
        names.push(addr.ip().to_string());
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| err(&e))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pve-sim");
    let cert = params.self_signed(&key).map_err(|e| err(&e))?;
    let fingerprint = ring::digest::digest(&ring::digest::SHA256, cert.der())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let der =
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| err(&e))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| err(&e))?;
    let pair = Arc::new(rustls::sign::CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    ));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .map_err(|e| err(&e))?;
    Ok((config, fingerprint, pair))
}

/// Starts the simulator on `options.listen`.
pub async fn start(options: Options) -> Result<Running, StartError> {
    let listener = tokio::net::TcpListener::bind(&options.listen)
        .await
        .map_err(|e| StartError::Listen(options.listen.clone(), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Listen(options.listen.clone(), e))?;
    let (tls_config, fingerprint, certificate) = tls(&addr)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config));
    let mut cluster: cluster::Cluster = match &options.state_file {
        Some(path) if path.exists() => {
            let bytes =
                std::fs::read(path).map_err(|e| StartError::State(path.clone(), e.to_string()))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| StartError::State(path.clone(), e.to_string()))?
        }
        _ => cluster::Cluster::new(options.nodes.max(1)),
    };
    cluster.adopt_node_files();
    cluster.install_networks();
    // The simulator restarting is Portainer restarting: its admin-init timeout counts anew.
    cluster.portainer.started_ms = None;
    portainer::observe(&mut cluster);
    let sim = state::Sim::new(
        cluster,
        options.seed,
        options.durations.clone(),
        options.state_file.clone(),
    );
    sim.restore_mirror();
    let password = uuid::Uuid::new_v4().simple().to_string();
    let creds = server::Credentials {
        user: "root@pam".into(),
        password: password.clone(),
        token_id: "root@pam!phoenix".into(),
        token_secret: uuid::Uuid::new_v4().to_string(),
    };
    let credentials = CredentialsFile {
        url: format!("https://{addr}"),
        token_id: creds.token_id.clone(),
        token_secret: creds.token_secret.clone(),
        user: creds.user.clone(),
        password,
        fingerprint,
        admin_url: format!("https://{addr}/admin"),
        portainer_url: String::new(),
    };
    let server = Arc::new(server::Server::new(sim, creds));
    server.set_tls(acceptor.clone(), certificate);
    let daemons_task = follow_daemons(&server, &options);
    let (portainer_addr, portainer_task) = portainer::listen(server.clone(), acceptor.clone())
        .await
        .map_err(|e| StartError::Listen("127.0.0.1:0".into(), e))?;
    let _ = server.portainer_addr.set(portainer_addr);
    let _ = server
        .admin_routes
        .set(Box::new(|server, method, path, body| {
            portainer::admin(server, method, path, body).map(portainer::Reply::into_response)
        }));
    let credentials = CredentialsFile {
        portainer_url: format!("https://{portainer_addr}"),
        ..credentials
    };
    let accept_server = server.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, server) = (acceptor.clone(), accept_server.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req| server.clone().handle(req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Running {
        addr,
        portainer_addr,
        credentials,
        server,
        task,
        portainer_task,
        daemons_task,
    })
}

/// Runs the guests' daemons when `options` names programs ([`daemons`]): brought up to
/// date after every request the simulator answers. Their views and logs go beside the
/// state file (`daemons/`), or into a directory of this process's own under the system's
/// temporary directory.
fn follow_daemons(
    server: &Arc<server::Server>,
    options: &Options,
) -> Option<tokio::task::JoinHandle<()>> {
    let programs = &options.programs;
    if programs.traefik.is_none() && programs.nginx.is_none() {
        return None;
    }
    let dir = match options
        .state_file
        .as_deref()
        .and_then(std::path::Path::parent)
    {
        Some(dir) => dir.join("daemons"),
        None => std::env::temp_dir().join(format!("phoenix-sim-daemons-{}", std::process::id())),
    };
    let daemons = Arc::new(daemons::GuestDaemons::new(programs.clone(), dir));
    let _ = server.daemons.set(daemons);
    let server = server.clone();
    Some(tokio::spawn(async move {
        loop {
            server.changed.notified().await;
            server.sync_daemons().await;
        }
    }))
}

/// Parses `OP=SECONDS` (`vzcreate=0`, `default=0.5`).
pub fn parse_duration(text: &str) -> Result<(String, Duration), String> {
    let (op, seconds) = text
        .split_once('=')
        .ok_or_else(|| format!("expected OP=SECONDS, got {text:?}"))?;
    let seconds: f64 = seconds
        .parse()
        .map_err(|_| format!("{seconds:?} is not a number of seconds"))?;
    if !(0.0..=3600.0).contains(&seconds) {
        return Err(format!("{seconds} is outside 0..=3600 seconds"));
    }
    Ok((op.to_owned(), Duration::from_secs_f64(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_credentials_keeps_the_token_secret_and_password_out() {
        let credentials = CredentialsFile {
            url: "https://127.0.0.1:8006".into(),
            token_id: "root@pam!phoenix".into(),
            token_secret: "5ec2e7-70ce-4e75".into(),
            user: "root@pam".into(),
            password: "hunter2-pw".into(),
            fingerprint: "AB:CD".into(),
            admin_url: "https://127.0.0.1:8006/admin".into(),
            portainer_url: "https://127.0.0.1:9443".into(),
        };
        let printed = format!("{credentials:?} {credentials:#?}");
        for secret in ["5ec2e7-70ce-4e75", "hunter2-pw"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("root@pam!phoenix") && printed.contains("<redacted>"));
    }
}
