//! The simulated cluster: nodes, storages and volumes, guests with their configs, locks and
//! snapshots, and tasks that finish after their configured duration, applying their effect
//! then (a task is a UPID now and a state change later, as on PVE).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub maxmem_mib: u64,
    pub maxcpu: u32,
    /// The host itself, as SSH reaches it: files (snippets, dnsmasq's configuration),
    /// command log, services and scripted answers.
    #[serde(default)]
    pub inside: crate::inside::Inside,
    /// `/etc/timezone`, as `PUT /nodes/{node}/time` sets it.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// `/etc/resolv.conf`: `search`, `dns1`..`dns3` (absent keys left out).
    #[serde(default)]
    pub resolver: std::collections::BTreeMap<String, String>,
    /// `/etc/network/interfaces`, pending changes and the interfaces up (empty in state
    /// files older than it: [`Cluster::install_networks`] fills it in).
    #[serde(default)]
    pub network: crate::network::Network,
    /// The host firewall (`/etc/pve/nodes/<node>/host.fw`): options and rules.
    #[serde(default)]
    pub firewall: crate::firewall::NodeFirewall,
    /// Disks, ZFS pools and datasets (state files older than them get the installer's).
    #[serde(default)]
    pub zfs: crate::zfs::Zfs,
    /// What `exportfs` exported last.
    #[serde(default)]
    pub exports: Vec<crate::exports::Export>,
}

/// What a fresh PVE install has.
fn default_timezone() -> String {
    "Etc/UTC".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Storage {
    pub id: String,
    pub kind: String,
    pub content: Vec<String>,
    pub shared: bool,
    /// The rest of its section in `storage.cfg` (`path`, `pool`, `server`, `export`,
    /// `nodes`, `disable`, ...), as PVE writes them (booleans `1`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Storage {
    /// Where a directory storage keeps its files on the node: its `path` (`local` is
    /// PVE's `/var/lib/vz`; network storages are mounted under `/mnt/pve`).
    pub fn path(&self) -> Option<String> {
        if let Some(path) = self.options.get("path") {
            return Some(path.clone());
        }
        match (self.kind.as_str(), self.id.as_str()) {
            ("dir", "local") => Some("/var/lib/vz".into()),
            ("dir" | "nfs" | "cifs", id) => Some(format!("/mnt/pve/{id}")),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Volume {
    pub volid: String,
    pub content: String,
    pub format: String,
    pub size: u64,
    pub node: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestKind {
    Lxc,
    Qemu,
}

impl GuestKind {
    /// How PVE names the kind in messages: `CT 801`, `VM 1001`.
    pub fn label(self) -> &'static str {
        match self {
            GuestKind::Lxc => "CT",
            GuestKind::Qemu => "VM",
        }
    }

    /// How PVE's task types for the kind begin: `vzstart`, `qmstart`.
    pub fn task_prefix(self) -> &'static str {
        match self {
            GuestKind::Lxc => "vz",
            GuestKind::Qemu => "qm",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub name: String,
    pub description: String,
    pub snaptime: u64,
    pub parent: Option<String>,
    pub config: BTreeMap<String, String>,
    /// The guest's files and services when it was taken (what a rollback brings back).
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub modes: BTreeMap<String, u32>,
    #[serde(default)]
    pub services: BTreeMap<String, String>,
}

/// A simulated guest: its config, power state, and the small simulated inside (files,
/// command log, services) that exec and the agent act on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Guest {
    pub vmid: u32,
    pub node: String,
    pub kind: GuestKind,
    pub config: BTreeMap<String, String>,
    pub running: bool,
    pub started_at: u64,
    pub snapshots: Vec<Snapshot>,
    /// Files, command log, services and scripted answers (exec, push, the agent).
    #[serde(flatten)]
    pub inside: crate::inside::Inside,
    /// Results of agent `exec` calls, by pid - 1.
    #[serde(default)]
    pub agent_results: Vec<(i32, String)>,
    /// When each agent `exec` command ends (ms; `exec-status` says running until then).
    #[serde(default)]
    pub agent_done_ms: Vec<u128>,
    pub firewall_options: BTreeMap<String, String>,
    pub firewall_rules: Vec<Value>,
    /// When it started, in milliseconds (the agent's boot delay is shorter than a second
    /// in tests).
    #[serde(default)]
    pub started_at_ms: u128,
    /// The pool the guest is a member of (PVE keeps this outside the guest config).
    #[serde(default)]
    pub pool: Option<String>,
}

impl Guest {
    /// A stopped guest with this config and nothing inside yet.
    pub fn new(vmid: u32, node: &str, kind: GuestKind, config: BTreeMap<String, String>) -> Self {
        Self {
            vmid,
            node: node.to_owned(),
            kind,
            config,
            running: false,
            started_at: 0,
            snapshots: Vec::new(),
            inside: Default::default(),
            agent_results: Vec::new(),
            agent_done_ms: Vec::new(),
            firewall_options: BTreeMap::new(),
            firewall_rules: Vec::new(),
            pool: None,
            started_at_ms: 0,
        }
    }

    pub fn lock(&self) -> Option<&str> {
        self.config.get("lock").map(String::as_str)
    }

    pub fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|t| t == "1")
    }

    pub fn memory(&self) -> u64 {
        self.config
            .get("memory")
            .and_then(|m| m.split(',').next()?.parse().ok())
            .unwrap_or(512)
    }

    pub fn name(&self) -> String {
        let key = if self.kind == GuestKind::Lxc {
            "hostname"
        } else {
            "name"
        };
        self.config
            .get(key)
            .cloned()
            .unwrap_or_else(|| format!("{}{}", self.kind.label(), self.vmid))
    }

    /// How PVE names the guest in messages: `CT 801`, `VM 1001`.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.label(), self.vmid)
    }

    /// Addresses of a running guest: its static `ip=` or a simulated DHCP lease.
    pub fn addresses(&self) -> Vec<(String, String, String, u8)> {
        self.config
            .iter()
            .filter(|(k, _)| k.starts_with("net"))
            .map(|(k, v)| {
                let fields: BTreeMap<&str, &str> =
                    v.split(',').filter_map(|p| p.split_once('=')).collect();
                let ipconfig = self
                    .config
                    .get(&k.replace("net", "ipconfig"))
                    .cloned()
                    .unwrap_or_default();
                let ipfields: BTreeMap<&str, &str> = ipconfig
                    .split(',')
                    .filter_map(|p| p.split_once('='))
                    .collect();
                let ip = fields
                    .get("ip")
                    .or(ipfields.get("ip"))
                    .copied()
                    .unwrap_or("dhcp");
                let (addr, prefix) = match ip.split_once('/') {
                    Some((a, p)) => (a.to_owned(), p.parse().unwrap_or(24)),
                    None => (format!("10.0.0.{}", 100 + self.vmid % 150), 24),
                };
                let name = fields
                    .get("name")
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| format!("eth{}", k.trim_start_matches("net")));
                let mac = fields
                    .get("hwaddr")
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| {
                        v.split(',')
                            .next()
                            .and_then(|m| m.split_once('='))
                            .map(|(_, mac)| mac.to_owned())
                            .unwrap_or_default()
                    });
                (name, mac, addr, prefix)
            })
            .collect()
    }

    /// SHA-1 of the config as PVE writes it, for optimistic concurrency.
    pub fn digest(&self) -> String {
        let text: String = self
            .config
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        sha1_hex(&text)
    }

    /// The config as the API returns it, with `digest`.
    pub fn config_json(&self) -> Value {
        let mut map: serde_json::Map<String, Value> = self
            .config
            .iter()
            .map(|(k, v)| {
                if k == "cipassword" {
                    // PVE never gives the cloud-init password back.
                    return (k.clone(), json!("**********"));
                }
                let value = match v.parse::<i64>() {
                    Ok(n) if is_numeric_key(k) => json!(n),
                    _ => json!(v),
                };
                (k.clone(), value)
            })
            .collect();
        map.insert("digest".into(), json!(self.digest()));
        Value::Object(map)
    }
}

/// The SHA-1 of a configuration file in hex: PVE's `digest` of what it read.
pub fn sha1_hex(text: &str) -> String {
    use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
    digest(&SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Config keys PVE returns as numbers.
fn is_numeric_key(key: &str) -> bool {
    matches!(
        key,
        "cores"
            | "memory"
            | "swap"
            | "sockets"
            | "onboot"
            | "template"
            | "unprivileged"
            | "protection"
            | "cpuunits"
            | "balloon"
            | "vcpus"
    )
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum TaskState {
    Running,
    Stopped { exitstatus: String },
}

/// A state change a task makes when it finishes successfully.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Effect {
    None,
    /// Writes a guest (create, clone, config), clearing `lock`.
    PutGuest(Box<Guest>),
    RemoveGuest(u32),
    SetRunning(u32, bool),
    Unlock(u32),
    AddVolume(Volume),
    SetConfig(u32, BTreeMap<String, String>),
    Snapshot {
        vmid: u32,
        snapshot: Snapshot,
    },
    DeleteSnapshot {
        vmid: u32,
        name: String,
    },
    Rollback {
        vmid: u32,
        name: String,
    },
    /// `ifreload -a` on the node after `interfaces.new` became the running file.
    ApplyNetwork(String),
    /// A `zfscreate` task's work: the pool, and with `add_storage` its storage.
    CreatePool(Box<crate::zfs::NewPool>),
    Many(Vec<Effect>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub upid: String,
    pub node: String,
    pub kind: String,
    pub id: String,
    pub user: String,
    pub starttime: u64,
    pub ends_at_ms: u128,
    pub state: TaskState,
    pub log: Vec<String>,
    pub effect: Effect,
    /// Set when the task is made to fail: its error text.
    pub failure: Option<String>,
    /// Lock to release on failure (the guest's `lock` key).
    pub unlock_on_failure: Option<u32>,
    /// The guest to remove when a create fails (PVE removes the half-made config).
    pub remove_on_failure: Option<u32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub storages: Vec<Storage>,
    pub volumes: Vec<Volume>,
    pub guests: BTreeMap<u32, Guest>,
    pub pools: BTreeMap<String, String>,
    pub tasks: BTreeMap<String, Task>,
    pub task_counter: u64,
    /// Docker swarms formed by the VMs.
    #[serde(default)]
    pub swarms: crate::swarm::Swarms,
    /// Files on the nodes (`node:path` → content) as state files kept them before nodes
    /// had insides: read, moved into the insides by [`Cluster::adopt_node_files`], never
    /// written.
    #[serde(default, skip_serializing)]
    node_files: BTreeMap<String, String>,
    /// The Portainer server the swarms may run (its database and settings).
    #[serde(default)]
    pub portainer: crate::portainer_db::Portainer,
    /// Users, groups, roles, ACLs and API tokens.
    #[serde(default)]
    pub access: crate::access::Access,
    /// The datacenter firewall: options, IP sets, rules.
    #[serde(default)]
    pub firewall: crate::firewall::ClusterFirewall,
}

impl Cluster {
    /// Writes a file on `node` as Phoenix does over SSH (`umask 077`, written beside and
    /// renamed over it: the file is `0600` whatever it was); under a storage's `snippets/`
    /// it becomes a snippet volume of that storage, as PVE lists files it finds there.
    pub fn write_node_file(&mut self, node: &str, path: &str, content: String, mode: u32) {
        let Some(n) = self.node_mut(node) else { return };
        n.inside.push(path, content, Some(mode));
        let snippet = self.storages.iter().find_map(|s| {
            let dir = format!("{}/snippets/", s.path()?);
            let name = path.strip_prefix(&dir)?;
            (s.content.iter().any(|c| c == "snippets") && !name.contains('/'))
                .then(|| format!("{}:snippets/{name}", s.id))
        });
        if let Some(volid) = snippet
            && !self
                .volumes
                .iter()
                .any(|v| v.volid == volid && v.node == node)
        {
            self.volumes.push(Volume {
                volid,
                content: "snippets".into(),
                format: "snippet".into(),
                size: 0,
                node: node.to_owned(),
            });
        }
    }
}

pub use crate::clock::{now_ms, now_s};

/// Appliance templates the simulated `aplinfo` offers (and that are already downloaded).
pub const APPLIANCES: [&str; 2] = [
    "debian-12-standard_12.7-1_amd64.tar.zst",
    "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
];
/// The cloud image on `local` (import content).
pub const CLOUD_IMAGE: &str = "noble-server-cloudimg-amd64.qcow2";

impl Cluster {
    /// N nodes `pve1..pveN` (the examples' single node is `phoenix`, so with one node the
    /// node is called that), the storages of the platform and the appliance templates.
    pub fn new(nodes: usize) -> Self {
        let names: Vec<String> = if nodes == 1 {
            vec!["phoenix".into()]
        } else {
            (1..=nodes).map(|i| format!("pve{i}")).collect()
        };
        let storage = |id: &str, kind: &str, content: &[&str], options: &[(&str, &str)]| Storage {
            id: id.into(),
            kind: kind.into(),
            content: content.iter().map(|s| s.to_string()).collect(),
            shared: kind == "nfs",
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let mut cluster = Self {
            nodes: names
                .iter()
                .map(|n| Node {
                    name: n.clone(),
                    maxmem_mib: 128 * 1024,
                    maxcpu: 32,
                    inside: Default::default(),
                    timezone: default_timezone(),
                    resolver: [("search".to_owned(), "localdomain".to_owned())].into(),
                    network: Default::default(),
                    firewall: Default::default(),
                    zfs: Default::default(),
                    exports: Vec::new(),
                })
                .collect(),
            storages: vec![
                storage(
                    "local",
                    "dir",
                    &["vztmpl", "iso", "snippets", "import", "backup"],
                    &[("path", "/var/lib/vz")],
                ),
                storage(
                    "local-zfs",
                    "zfspool",
                    &["images", "rootdir"],
                    &[("pool", "rpool/data"), ("sparse", "1")],
                ),
                storage(
                    "fastData",
                    "zfspool",
                    &["images", "rootdir"],
                    &[("pool", "fastData")],
                ),
                storage(
                    "slowData",
                    "zfspool",
                    &["images", "rootdir", "backup"],
                    &[("pool", "slowData")],
                ),
                storage(
                    "nfs-shared",
                    "nfs",
                    &["images", "rootdir", "iso", "vztmpl", "backup"],
                    &[
                        ("path", "/mnt/pve/nfs-shared"),
                        ("server", "10.0.0.5"),
                        ("export", "/export/pve"),
                    ],
                ),
            ],
            ..Default::default()
        };
        cluster.install_networks();
        for node in &names {
            for template in APPLIANCES {
                cluster.volumes.push(Volume {
                    volid: format!("local:vztmpl/{template}"),
                    content: "vztmpl".into(),
                    format: "tzst".into(),
                    size: 130_000_000,
                    node: node.clone(),
                });
            }
            cluster.volumes.push(Volume {
                volid: format!("local:import/{CLOUD_IMAGE}"),
                content: "import".into(),
                format: "qcow2".into(),
                size: 600_000_000,
                node: node.clone(),
            });
        }
        cluster
    }

    /// The installer's network on every node that has none yet: `vmbr0` with the node's
    /// address, the examples' single node `phoenix` at 10.0.0.13, `pveN` at 10.0.0.2N.
    pub fn install_networks(&mut self) {
        for node in self
            .nodes
            .iter_mut()
            .filter(|n| n.network.running.is_empty())
        {
            let host = match node
                .name
                .strip_prefix("pve")
                .and_then(|i| i.parse::<u32>().ok())
            {
                Some(i) => 20 + i,
                None => 13,
            };
            node.network =
                crate::network::Network::installed(&format!("10.0.0.{host}/24"), "10.0.0.1");
        }
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// Moves the files an older state file kept apart into their nodes' insides.
    pub fn adopt_node_files(&mut self) {
        for (key, content) in std::mem::take(&mut self.node_files) {
            if let Some((node, path)) = key.split_once(':') {
                self.write_node_file(node, path, content, 0o600);
            }
        }
    }

    pub fn storage(&self, id: &str) -> Option<&Storage> {
        self.storages.iter().find(|s| s.id == id)
    }

    /// The lowest free VMID from 100, as `/cluster/nextid` reports it (not reserved).
    pub fn next_id(&self) -> u32 {
        (100..)
            .find(|id| !self.guests.contains_key(id))
            .unwrap_or(100)
    }

    /// Memory promised to guests on a node, in MiB.
    pub fn used_memory(&self, node: &str) -> u64 {
        self.guests
            .values()
            .filter(|g| g.node == node && !g.is_template())
            .map(Guest::memory)
            .fold(0, u64::saturating_add)
    }

    /// Starts a task; it finishes `duration` after it could start, given the node's budget
    /// of concurrent tasks.
    #[allow(clippy::too_many_arguments)]
    pub fn start_task(
        &mut self,
        node: &str,
        kind: &str,
        id: &str,
        user: &str,
        duration: Duration,
        budget: usize,
        effect: Effect,
    ) -> String {
        self.task_counter += 1;
        let now = now_ms();
        let mut running_ends: Vec<u128> = self
            .tasks
            .values()
            .filter(|t| t.node == node && t.state == TaskState::Running)
            .map(|t| t.ends_at_ms)
            .collect();
        running_ends.sort();
        let start = if running_ends.len() >= budget.max(1) {
            running_ends[running_ends.len() - budget.max(1)]
        } else {
            now
        };
        let starttime = now_s();
        let upid = format!(
            "UPID:{node}:{:08X}:{:08X}:{:08X}:{kind}:{id}:{user}:",
            0x1000 + self.task_counter,
            0x0200_0000 + self.task_counter,
            starttime
        );
        self.tasks.insert(
            upid.clone(),
            Task {
                upid: upid.clone(),
                node: node.into(),
                kind: kind.into(),
                id: id.into(),
                user: user.into(),
                starttime,
                ends_at_ms: start.max(now) + duration.as_millis(),
                state: TaskState::Running,
                log: vec![format!("starting {kind} {id}")],
                effect,
                failure: None,
                unlock_on_failure: None,
                remove_on_failure: None,
            },
        );
        upid
    }

    /// Finishes every task whose time has come, in order, applying effects.
    pub fn tick(&mut self) {
        let now = now_ms();
        let mut due: Vec<(u128, String)> = self
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Running && t.ends_at_ms <= now)
            .map(|t| (t.ends_at_ms, t.upid.clone()))
            .collect();
        due.sort();
        for (_, upid) in due {
            let Some(task) = self.tasks.get(&upid).cloned() else {
                continue;
            };
            let exitstatus = match &task.failure {
                Some(error) => {
                    if let Some(vmid) = task.remove_on_failure {
                        self.guests.remove(&vmid);
                    }
                    if let Some(vmid) = task.unlock_on_failure
                        && let Some(g) = self.guests.get_mut(&vmid)
                    {
                        g.config.remove("lock");
                    }
                    error.clone()
                }
                None => {
                    self.apply(task.effect.clone());
                    "OK".to_string()
                }
            };
            if let Some(t) = self.tasks.get_mut(&upid) {
                let last = if exitstatus == "OK" {
                    "TASK OK".to_string()
                } else {
                    format!("TASK ERROR: {exitstatus}")
                };
                t.log.push(last);
                t.state = TaskState::Stopped { exitstatus };
            }
        }
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::PutGuest(mut guest) => {
                guest.config.remove("lock");
                self.guests.insert(guest.vmid, *guest);
            }
            Effect::RemoveGuest(vmid) => {
                self.guests.remove(&vmid);
            }
            Effect::SetRunning(vmid, running) => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    g.running = running;
                    g.started_at = if running { now_s() } else { 0 };
                    g.started_at_ms = if running { now_ms() } else { 0 };
                    g.config.remove("lock");
                }
            }
            Effect::Unlock(vmid) => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    g.config.remove("lock");
                }
            }
            Effect::AddVolume(volume) => {
                if !self
                    .volumes
                    .iter()
                    .any(|v| v.volid == volume.volid && v.node == volume.node)
                {
                    self.volumes.push(volume);
                }
            }
            Effect::SetConfig(vmid, config) => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    g.config = config;
                }
            }
            Effect::Snapshot { vmid, snapshot } => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    g.config.remove("lock");
                    g.config.insert("parent".into(), snapshot.name.clone());
                    g.snapshots.push(snapshot);
                }
            }
            Effect::DeleteSnapshot { vmid, name } => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    g.config.remove("lock");
                    g.snapshots.retain(|s| s.name != name);
                    match g.snapshots.last().map(|s| s.name.clone()) {
                        Some(parent) => g.config.insert("parent".into(), parent),
                        None => g.config.remove("parent"),
                    };
                }
            }
            Effect::Rollback { vmid, name } => {
                if let Some(g) = self.guests.get_mut(&vmid)
                    && let Some(s) = g.snapshots.iter().find(|s| s.name == name)
                {
                    let mut config = s.config.clone();
                    config.insert("parent".into(), name);
                    g.config = config;
                    g.inside.files = s.files.clone();
                    g.inside.modes = s.modes.clone();
                    let files = &g.inside.files;
                    g.inside
                        .written_with
                        .retain(|path, _| files.contains_key(path));
                    g.inside.services = s.services.clone();
                    g.running = false;
                }
            }
            Effect::CreatePool(new) => self.create_pool(*new),
            Effect::ApplyNetwork(node) => {
                if let Some(n) = self.node_mut(&node) {
                    n.network.apply();
                }
            }
            Effect::Many(effects) => effects.into_iter().for_each(|e| self.apply(e)),
        }
    }
}

/// The image of Portainer's server.
fn is_portainer(image: &str) -> bool {
    ["portainer/portainer-ce:", "portainer/portainer-ee:"]
        .iter()
        .any(|p| image.starts_with(p))
}

/// The swarm where a Portainer service has a running task.
fn portainer_swarm(cluster: &Cluster) -> Option<String> {
    cluster.swarms.iter().find_map(|(id, swarm)| {
        swarm
            .services
            .values()
            .any(|s| is_portainer(&s.image) && s.tasks.iter().any(|t| t.state == "running"))
            .then(|| id.clone())
    })
}

impl Cluster {
    /// Follows the swarms: Portainer starts when a task of its image runs, stops when
    /// none does (the admin-init timeout counts from its start).
    pub fn observe_portainer(&mut self) {
        let on = portainer_swarm(self);
        let p = &mut self.portainer;
        match (&on, p.started_ms) {
            (Some(_), None) => p.restart(),
            (None, Some(_)) => p.started_ms = None,
            _ => {}
        }
        p.swarm_id = on;
        p.ensure_primary();
    }
}

impl Cluster {
    /// The effect of a `zfscreate` task: the pool on its node, then its storage (as PVE's
    /// worker does, after the checks it made before starting).
    pub fn create_pool(&mut self, new: crate::zfs::NewPool) {
        let Some(node) = self.node_mut(&new.node) else {
            return;
        };
        node.zfs.add_pool(&new.name, new.pool, &new.compression);
        if new.add_storage {
            // Checked when the task started; a storage made since is left as it is.
            let _ = self.create_or_update_zfspool(&new.name, &new.node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_beyond_the_node_budget_wait_for_a_slot() {
        let mut cluster = Cluster::new(1);
        let second = Duration::from_secs(1);
        let upids: Vec<String> = (0..5)
            .map(|i| {
                cluster.start_task(
                    "phoenix",
                    "vzstart",
                    &format!("{}", 100 + i),
                    "root@pam",
                    second,
                    4,
                    Effect::None,
                )
            })
            .collect();
        let ends: Vec<u128> = upids.iter().map(|u| cluster.tasks[u].ends_at_ms).collect();
        let first_end = ends[0];
        assert!(
            ends[..4].iter().all(|e| e.abs_diff(first_end) < 100),
            "four run at once"
        );
        assert!(
            ends[4] >= first_end + 900,
            "the fifth starts when a slot frees up"
        );
        assert!(
            upids[0].starts_with("UPID:phoenix:") && upids[0].ends_with(":vzstart:100:root@pam:")
        );
        assert_eq!(upids[0].split(':').count(), 9, "PVE's UPID has nine fields");
    }

    #[test]
    fn failed_creates_leave_no_guest_and_failed_tasks_release_locks() {
        let mut cluster = Cluster::new(1);
        let upid = cluster.start_task(
            "phoenix",
            "vzcreate",
            "900",
            "root@pam",
            Duration::ZERO,
            4,
            Effect::None,
        );
        cluster.guests.insert(
            900,
            Guest::new(
                900,
                "phoenix",
                GuestKind::Lxc,
                BTreeMap::from([("lock".into(), "create".into())]),
            ),
        );
        let task = cluster.tasks.get_mut(&upid).unwrap();
        task.failure = Some("unable to create CT 900 - disk full".into());
        task.remove_on_failure = Some(900);
        cluster.tick();
        assert!(cluster.guests.is_empty());
        assert_eq!(
            cluster.tasks[&upid].state,
            TaskState::Stopped {
                exitstatus: "unable to create CT 900 - disk full".into()
            }
        );
        assert_eq!(
            cluster.tasks[&upid].log.last().unwrap(),
            "TASK ERROR: unable to create CT 900 - disk full"
        );
    }
}
