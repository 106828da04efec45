//! The simulated endpoints. Each handler checks what PVE checks synchronously (with PVE's
//! messages and its habit of answering semantic failures with 500), then either answers at
//! once or starts a task whose effect lands when it finishes.

use crate::cluster::{
    APPLIANCES, Cluster, Effect, Guest, GuestKind, Snapshot, TaskState, Volume, now_s,
};
use crate::schema;
use crate::state::Sim;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// A PVE error: HTTP status, the message (reason phrase and `message`), and for parameter
/// failures the `errors` object.
#[derive(Debug, Clone, PartialEq)]
pub struct PveError {
    pub status: u16,
    pub message: String,
    pub errors: Option<Map<String, Value>>,
}

impl PveError {
    pub fn server(message: impl Into<String>) -> Self {
        Self {
            status: 500,
            message: message.into(),
            errors: None,
        }
    }

    pub fn params(errors: Map<String, Value>) -> Self {
        Self {
            status: 400,
            message: "Parameter verification failed.".into(),
            errors: Some(errors),
        }
    }

    pub fn param(name: &str, message: impl Into<String>) -> Self {
        let mut errors = Map::new();
        errors.insert(name.into(), Value::String(message.into()));
        Self::params(errors)
    }
}

pub type ApiResult = Result<Value, PveError>;

/// A validated request.
pub struct Call<'a> {
    pub method: &'a str,
    pub template: &'a str,
    pub params: Map<String, Value>,
    pub user: String,
}

impl Call<'_> {
    pub fn text(&self, name: &str) -> Option<String> {
        match self.params.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some((*b as i32).to_string()),
            other => Some(other.to_string()),
        }
    }

    pub fn flag(&self, name: &str) -> bool {
        self.text(name).is_some_and(|v| v == "1" || v == "true")
    }

    fn vmid(&self) -> u32 {
        self.text("vmid").and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    fn node(&self) -> String {
        self.text("node").unwrap_or_default()
    }
}

pub fn dispatch(sim: &mut Sim, call: &Call) -> ApiResult {
    sim.cluster.tick();
    if let Some(node) = call.params.get("node").and_then(Value::as_str)
        && sim.cluster.node(node).is_none()
    {
        return Err(PveError::server(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
        )));
    }
    let t = call.template.trim_start_matches("/nodes/{node}");
    match (call.method, call.template, t) {
        ("GET", "/version", _) => Ok(json!({"version": "9.1.1", "release": "9.1", "repoid": "42a6b3e1"})),
        ("GET", "/nodes", _) => Ok(nodes(&sim.cluster)),
        ("GET", _, "/status") => node_status(&sim.cluster, &call.node()),
        ("GET", "/cluster/status", _) => Ok(cluster_status(&sim.cluster)),
        ("GET", "/cluster/resources", _) => Ok(resources(&sim.cluster, call.text("type").as_deref())),
        ("GET", "/cluster/nextid", _) => next_id(&sim.cluster, call),
        ("GET", "/pools", _) => Ok(pools(&sim.cluster)),
        ("GET", "/storage/{storage}", _) => storage_config(&sim.cluster, &call.text("storage").unwrap_or_default()),
        ("POST", "/pools", _) => {
            let id = call.text("poolid").unwrap_or_default();
            if sim.cluster.pools.contains_key(&id) {
                return Err(PveError::server(format!("pool '{id}' already exists")));
            }
            sim.cluster.pools.insert(id, call.text("comment").unwrap_or_default());
            Ok(Value::Null)
        }
        ("GET", _, "/storage") => Ok(storages(&sim.cluster, call.text("content").as_deref())),
        ("GET", _, "/storage/{storage}/content") => storage_content(&sim.cluster, call),
        ("POST", _, "/storage/{storage}/download-url") => download(sim, call, call.text("filename").unwrap_or_default()),
        ("GET", _, "/aplinfo") => Ok(Value::Array(APPLIANCES.iter().map(|t| json!({"template": t, "package": t.split('_').next(), "type": "lxc", "section": "system", "os": t.split('-').next(), "headline": t})).collect())),
        ("POST", _, "/aplinfo") => {
            let template = call.text("template").unwrap_or_default();
            if !APPLIANCES.contains(&template.as_str()) {
                return Err(PveError::param("template", "no such template"));
            }
            download(sim, call, template)
        }
        ("GET", _, "/tasks") => Ok(tasks(&sim.cluster, &call.node())),
        ("GET", _, "/tasks/{upid}/status") => task_status(&sim.cluster, call),
        ("GET", _, "/tasks/{upid}/log") => task_log(&sim.cluster, call),
        ("GET", _, "/lxc") => Ok(guests(&sim.cluster, &call.node(), GuestKind::Lxc)),
        ("GET", _, "/qemu") => Ok(guests(&sim.cluster, &call.node(), GuestKind::Qemu)),
        ("POST", _, "/lxc") => create(sim, call, GuestKind::Lxc),
        ("POST", _, "/qemu") => create(sim, call, GuestKind::Qemu),
        (_, _, rest) if rest.starts_with("/lxc/{vmid}") => guest_call(sim, call, GuestKind::Lxc, &rest["/lxc/{vmid}".len()..]),
        (_, _, rest) if rest.starts_with("/qemu/{vmid}") => guest_call(sim, call, GuestKind::Qemu, &rest["/qemu/{vmid}".len()..]),
        _ => Err(PveError { status: 501, message: format!("Method '{} {}' not implemented", call.method, call.template), errors: None }),
    }
}

fn pools(cluster: &Cluster) -> Value {
    Value::Array(
        cluster
            .pools
            .iter()
            .map(|(id, comment)| {
                let members: Vec<Value> = cluster
                    .guests
                    .values()
                    .filter(|g| g.pool.as_deref() == Some(id))
                    .map(|g| {
                        let mut m = guest_summary(g);
                        m["id"] = json!(format!(
                            "{}/{}",
                            m["type"].as_str().unwrap_or("qemu"),
                            g.vmid
                        ));
                        m["node"] = json!(g.node);
                        m
                    })
                    .collect();
                json!({"poolid": id, "comment": comment, "members": members})
            })
            .collect(),
    )
}

/// `pool` on create/clone must name an existing pool.
fn pool_of(cluster: &Cluster, call: &Call) -> Result<Option<String>, PveError> {
    match call.text("pool") {
        Some(pool) if !cluster.pools.contains_key(&pool) => Err(PveError {
            status: 403,
            message: format!("Permission check failed (pool '{pool}' does not exist)"),
            errors: None,
        }),
        other => Ok(other),
    }
}

fn nodes(cluster: &Cluster) -> Value {
    Value::Array(
        cluster
            .nodes
            .iter()
            .map(|n| json!({"node": n.name, "status": "online", "cpu": 0.02, "maxcpu": n.maxcpu, "mem": cluster.used_memory(&n.name).saturating_mul(1024 * 1024),
                           "maxmem": n.maxmem_mib * 1024 * 1024, "disk": 0, "maxdisk": 1u64 << 40, "uptime": 86400, "level": "",
                           "id": format!("node/{}", n.name), "type": "node", "ssl_fingerprint": ""}))
            .collect(),
    )
}

fn node_status(cluster: &Cluster, node: &str) -> ApiResult {
    let n = cluster
        .node(node)
        .ok_or_else(|| PveError::server(format!("no such node '{node}'")))?;
    let used = cluster.used_memory(node).saturating_mul(1024 * 1024);
    Ok(
        json!({"pveversion": "pve-manager/9.1.1/42a6b3e1", "kversion": "Linux 6.14.8-2-pve", "uptime": 86400,
              "cpuinfo": {"cpus": n.maxcpu, "sockets": 1, "model": "Simulated CPU"},
              "memory": {"total": n.maxmem_mib * 1024 * 1024, "used": used, "free": (n.maxmem_mib * 1024 * 1024).saturating_sub(used)},
              "cpu": 0.02, "loadavg": ["0.10", "0.08", "0.05"]}),
    )
}

fn cluster_status(cluster: &Cluster) -> Value {
    let mut items = vec![
        json!({"type": "cluster", "id": "cluster", "name": "phoenix", "quorate": 1, "nodes": cluster.nodes.len(), "version": 3}),
    ];
    for (i, n) in cluster.nodes.iter().enumerate() {
        items.push(json!({"type": "node", "id": format!("node/{}", n.name), "name": n.name, "nodeid": i + 1, "ip": format!("127.0.0.{}", i + 1), "online": 1, "local": (i == 0) as i32, "level": ""}));
    }
    Value::Array(items)
}

fn guest_summary(g: &Guest) -> Value {
    let type_ = if g.kind == GuestKind::Lxc {
        "lxc"
    } else {
        "qemu"
    };
    let mut v = json!({"vmid": g.vmid, "name": g.name(), "status": if g.running { "running" } else { "stopped" },
                       "maxmem": g.memory().saturating_mul(1024 * 1024), "mem": if g.running { g.memory().saturating_mul(512 * 1024) } else { 0 },
                       "cpus": g.config.get("cores").and_then(|c| c.parse::<u32>().ok()).unwrap_or(1),
                       "maxdisk": 8u64 << 30, "disk": 0, "uptime": if g.running { now_s() - g.started_at } else { 0 },
                       "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0, "cpu": 0, "type": type_});
    if g.kind == GuestKind::Lxc {
        let swap: u64 = g
            .config
            .get("swap")
            .and_then(|s| s.parse().ok())
            .unwrap_or(512);
        v["maxswap"] = json!(swap.saturating_mul(1024 * 1024));
        v["swap"] = json!(0);
    }
    if g.running {
        v["pid"] = json!(10_000 + g.vmid);
    }
    if g.is_template() {
        v["template"] = json!(1);
    }
    if let Some(lock) = g.lock() {
        v["lock"] = json!(lock);
    }
    if let Some(tags) = g.config.get("tags") {
        v["tags"] = json!(tags);
    }
    if let Some(pool) = &g.pool {
        v["pool"] = json!(pool);
    }
    v
}

fn resources(cluster: &Cluster, kind: Option<&str>) -> Value {
    let mut items = Vec::new();
    if kind.is_none_or(|k| k == "vm") {
        for g in cluster.guests.values() {
            let mut v = guest_summary(g);
            v["id"] = json!(format!(
                "{}/{}",
                v["type"].as_str().unwrap_or("qemu"),
                g.vmid
            ));
            v["node"] = json!(g.node);
            items.push(v);
        }
    }
    if kind.is_none_or(|k| k == "node") {
        items.extend(nodes(cluster).as_array().cloned().unwrap_or_default());
    }
    if kind.is_none_or(|k| k == "storage") {
        for n in &cluster.nodes {
            for s in &cluster.storages {
                items.push(json!({"id": format!("storage/{}/{}", n.name, s.id), "type": "storage", "node": n.name, "storage": s.id,
                                  "plugintype": s.kind, "content": s.content.join(","), "shared": s.shared as i32, "status": "available",
                                  "disk": 0, "maxdisk": 1u64 << 40}));
            }
        }
    }
    Value::Array(items)
}

fn next_id(cluster: &Cluster, call: &Call) -> ApiResult {
    if let Some(vmid) = call.text("vmid") {
        let id: u32 = vmid.parse().unwrap_or(0);
        if cluster.guests.contains_key(&id) {
            return Err(PveError::param("vmid", format!("VM {id} already exists")));
        }
        return Ok(json!(vmid));
    }
    Ok(json!(cluster.next_id().to_string()))
}

fn storages(cluster: &Cluster, content: Option<&str>) -> Value {
    Value::Array(
        cluster
            .storages
            .iter()
            .filter(|s| content.is_none_or(|c| s.content.iter().any(|x| x == c)))
            .map(|s| json!({"storage": s.id, "type": s.kind, "content": s.content.join(","), "active": 1, "enabled": 1,
                           "shared": s.shared as i32, "total": 1u64 << 40, "used": 1u64 << 30, "avail": (1u64 << 40) - (1 << 30), "used_fraction": 0.001}))
            .collect(),
    )
}

fn storage_content(cluster: &Cluster, call: &Call) -> ApiResult {
    let storage = call.text("storage").unwrap_or_default();
    if cluster.storage(&storage).is_none() {
        return Err(PveError::server(format!(
            "storage '{storage}' does not exist"
        )));
    }
    let content = call.text("content");
    let node = call.node();
    Ok(Value::Array(
        cluster
            .volumes
            .iter()
            .filter(|v| v.volid.starts_with(&format!("{storage}:")) && v.node == node && content.as_ref().is_none_or(|c| *c == v.content))
            .map(|v| json!({"volid": v.volid, "content": v.content, "format": v.format, "size": v.size, "ctime": 1_700_000_000}))
            .collect(),
    ))
}

/// A storage's cluster-wide configuration (`/storage/{storage}`): directory storages
/// have a `path`, under which PVE keeps `snippets/`, `template/iso/`, `import/` ...
fn storage_config(cluster: &Cluster, id: &str) -> ApiResult {
    let s = cluster
        .storage(id)
        .ok_or_else(|| PveError::server(format!("storage '{id}' does not exist")))?;
    let mut v = json!({"storage": s.id, "type": s.kind, "content": s.content.join(","),
                       "shared": s.shared as i32, "digest": "0".repeat(40)});
    if let Some(path) = s.path() {
        v["path"] = json!(path);
    }
    Ok(v)
}

fn download(sim: &mut Sim, call: &Call, filename: String) -> ApiResult {
    let storage = call.text("storage").unwrap_or_default();
    let s = sim
        .cluster
        .storage(&storage)
        .ok_or_else(|| PveError::server(format!("storage '{storage}' does not exist")))?;
    let content = call.text("content").unwrap_or_else(|| "vztmpl".into());
    if !s.content.contains(&content) {
        return Err(PveError::server(format!(
            "storage '{storage}' does not support templates"
        )));
    }
    let node = call.node();
    let volume = Volume {
        volid: format!("{storage}:{content}/{filename}"),
        content,
        format: "raw".into(),
        size: 500_000_000,
        node: node.clone(),
    };
    Ok(json!(sim.task(
        &node,
        "download",
        "",
        &call.user,
        Effect::AddVolume(volume)
    )))
}

fn tasks(cluster: &Cluster, node: &str) -> Value {
    Value::Array(
        cluster
            .tasks
            .values()
            .filter(|t| t.node == node)
            .map(|t| {
                let status = match &t.state {
                    TaskState::Running => "RUNNING".to_string(),
                    TaskState::Stopped { exitstatus } => exitstatus.clone(),
                };
                let mut v = json!({"upid": t.upid, "node": t.node, "type": t.kind, "id": t.id, "user": t.user, "starttime": t.starttime,
                                   "status": status, "pid": 4096, "pstart": 33_554_432});
                if matches!(t.state, TaskState::Stopped { .. }) {
                    v["endtime"] = json!((t.ends_at_ms / 1000) as u64);
                }
                v
            })
            .collect(),
    )
}

fn find_task<'a>(cluster: &'a Cluster, call: &Call) -> Result<&'a crate::cluster::Task, PveError> {
    let upid = call.text("upid").unwrap_or_default();
    if !upid.starts_with("UPID:") {
        return Err(PveError::param("upid", "unable to parse worker upid"));
    }
    cluster
        .tasks
        .get(&upid)
        .filter(|t| t.node == call.node())
        .ok_or_else(|| PveError::param("upid", "no such task"))
}

fn task_status(cluster: &Cluster, call: &Call) -> ApiResult {
    let t = find_task(cluster, call)?;
    let mut v = json!({"upid": t.upid, "node": t.node, "pid": 4096, "pstart": 33_554_432, "starttime": t.starttime,
                       "type": t.kind, "id": t.id, "user": t.user.split('!').next()});
    if let Some((_, token)) = t.user.split_once('!') {
        v["tokenid"] = json!(token);
    }
    match &t.state {
        TaskState::Running => v["status"] = json!("running"),
        TaskState::Stopped { exitstatus } => {
            v["status"] = json!("stopped");
            v["exitstatus"] = json!(exitstatus);
        }
    }
    Ok(v)
}

fn task_log(cluster: &Cluster, call: &Call) -> ApiResult {
    let t = find_task(cluster, call)?;
    Ok(Value::Array(
        t.log
            .iter()
            .enumerate()
            .map(|(i, l)| json!({"n": i + 1, "t": l}))
            .collect(),
    ))
}

fn guests(cluster: &Cluster, node: &str, kind: GuestKind) -> Value {
    Value::Array(
        cluster
            .guests
            .values()
            .filter(|g| g.node == node && g.kind == kind)
            .map(guest_summary)
            .collect(),
    )
}

/// Keys the API accepts on create but never stores or returns.
const WRITE_ONLY: [&str; 5] = ["password", "ssh-public-keys", "start", "storage", "pool"];

fn random_mac(vmid: u32, index: &str) -> String {
    let n: u32 = index
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    format!(
        "BC:24:11:{:02X}:{:02X}:{:02X}",
        (vmid >> 8) & 0xff,
        vmid & 0xff,
        n & 0xff
    )
}

fn config_from_params(
    call: &Call,
    kind: GuestKind,
    vmid: u32,
) -> Result<BTreeMap<String, String>, PveError> {
    let mut config = BTreeMap::new();
    for (k, _) in &call.params {
        if matches!(k.as_str(), "node" | "vmid")
            || WRITE_ONLY.contains(&k.as_str())
            || k == "ostemplate"
        {
            continue;
        }
        let value = call.text(k).unwrap_or_default();
        config.insert(k.clone(), volume_spec(k, &value, vmid)?);
    }
    for (k, v) in config.iter_mut().filter(|(k, _)| k.starts_with("net")) {
        if kind == GuestKind::Lxc && !v.contains("hwaddr=") {
            *v = format!("{v},hwaddr={}", random_mac(vmid, k));
        }
        if kind == GuestKind::Qemu && !v.contains(':') {
            let (model, rest) = v.split_once(',').unwrap_or((v.as_str(), ""));
            *v = format!("{model}={},{rest}", random_mac(vmid, k))
                .trim_end_matches(',')
                .to_owned();
        }
    }
    if kind == GuestKind::Lxc {
        config
            .entry("hostname".into())
            .or_insert_with(|| format!("CT{vmid}"));
        config
            .entry("unprivileged".into())
            .or_insert_with(|| "1".into());
    }
    config
        .entry("memory".into())
        .or_insert_with(|| "512".into());
    Ok(config)
}

/// `local-zfs:8` allocates: it is stored as `local-zfs:subvol-801-disk-0,size=8G`.
fn volume_spec(key: &str, value: &str, vmid: u32) -> Result<String, PveError> {
    let is_disk = key == "rootfs"
        || key.starts_with("mp")
        || ["scsi", "virtio", "sata", "ide", "efidisk"]
            .iter()
            .any(|p| key.starts_with(p));
    let Some((storage, rest)) = value.split_once(':').filter(|_| is_disk) else {
        return Ok(value.to_owned());
    };
    let (size, options) = rest.split_once(',').map_or((rest, ""), |(s, o)| (s, o));
    match size.parse::<f64>() {
        Ok(gib) => {
            let prefix = if key == "rootfs" || key.starts_with("mp") {
                "subvol"
            } else {
                "vm"
            };
            let size = if options.contains("import-from") {
                8.0
            } else {
                gib
            };
            let options = options
                .split(',')
                .filter(|o| !o.is_empty() && !o.starts_with("import-from"))
                .collect::<Vec<_>>()
                .join(",");
            let tail = if options.is_empty() {
                String::new()
            } else {
                format!(",{options}")
            };
            Ok(format!(
                "{storage}:{prefix}-{vmid}-disk-{},size={size}G{tail}",
                key.trim_start_matches(|c: char| !c.is_ascii_digit())
                    .parse::<u32>()
                    .unwrap_or(0)
            ))
        }
        Err(_) => Ok(value.to_owned()),
    }
}

fn check_storages(cluster: &Cluster, config: &BTreeMap<String, String>) -> Result<(), PveError> {
    for v in config.values() {
        let is_volume = v.contains(":subvol-") || v.contains(":vm-") || v.contains(":cloudinit");
        if let Some((storage, _)) = v.split_once(':').filter(|_| is_volume)
            && cluster.storage(storage).is_none()
        {
            return Err(PveError::server(format!(
                "storage '{storage}' does not exist"
            )));
        }
    }
    Ok(())
}

fn create(sim: &mut Sim, call: &Call, kind: GuestKind) -> ApiResult {
    let (vmid, node) = (call.vmid(), call.node());
    if let Some(existing) = sim.cluster.guests.get(&vmid) {
        return Err(PveError::server(format!(
            "{} {vmid} already exists on node '{}'",
            kind.label(),
            existing.node
        )));
    }
    let config = config_from_params(call, kind, vmid)?;
    check_storages(&sim.cluster, &config)?;
    if kind == GuestKind::Lxc {
        let template = call.text("ostemplate").unwrap_or_default();
        if !sim
            .cluster
            .volumes
            .iter()
            .any(|v| v.volid == template && v.node == node)
        {
            return Err(PveError::server(format!(
                "volume '{template}' does not exist"
            )));
        }
    }
    for (k, v) in config
        .iter()
        .filter(|(k, _)| k.starts_with("scsi") || k.starts_with("virtio") || k.starts_with("sata"))
    {
        if let Some(source) = call.text(k).and_then(|raw| {
            raw.split(',')
                .find_map(|o| o.strip_prefix("import-from=").map(str::to_owned))
        }) && !sim.cluster.volumes.iter().any(|vol| vol.volid == source)
        {
            return Err(PveError::server(format!(
                "{k}: volume '{source}' does not exist ({v})"
            )));
        }
    }
    let memory: u64 = config
        .get("memory")
        .and_then(|m| m.parse().ok())
        .unwrap_or(512);
    let node_max = sim.cluster.node(&node).map_or(0, |n| n.maxmem_mib);
    if memory > node_max {
        return Err(PveError::server(format!(
            "unable to create {} {vmid} - not enough memory on node '{node}' ({memory} MiB > {node_max} MiB)",
            kind.label()
        )));
    }
    let mut guest = Guest::new(vmid, &node, kind, config);
    guest.pool = pool_of(&sim.cluster, call)?;
    let mut placeholder = guest.clone();
    placeholder.config = BTreeMap::from([("lock".to_string(), "create".to_string())]);
    sim.cluster.guests.insert(vmid, placeholder);
    let task_type = if kind == GuestKind::Lxc {
        "vzcreate"
    } else {
        "qmcreate"
    };
    let mut effect = Effect::PutGuest(Box::new(guest));
    if call.flag("start") {
        effect = Effect::Many(vec![effect, Effect::SetRunning(vmid, true)]);
    }
    let upid = sim.task(&node, task_type, &vmid.to_string(), &call.user, effect);
    if let Some(t) = sim.cluster.tasks.get_mut(&upid) {
        t.remove_on_failure = Some(vmid);
    }
    Ok(json!(upid))
}

/// The first snippet volume of `cicustom` (`user=local:snippets/u.yaml,...`) that is not
/// on the guest's node.
fn missing_snippet(cluster: &Cluster, guest: &Guest) -> Option<String> {
    let cicustom = guest.config.get("cicustom")?;
    cicustom
        .split(',')
        .filter_map(|part| part.split_once('=').map(|(_, volid)| volid))
        .find(|volid| {
            // A shared storage's snippets are on every node.
            let shared = volid
                .split(':')
                .next()
                .and_then(|id| cluster.storage(id))
                .is_some_and(|s| s.shared);
            !cluster
                .volumes
                .iter()
                .any(|v| v.volid == *volid && (shared || v.node == guest.node))
        })
        .map(str::to_owned)
}

fn config_missing(kind: GuestKind, node: &str, vmid: u32) -> PveError {
    let dir = if kind == GuestKind::Lxc {
        "lxc"
    } else {
        "qemu-server"
    };
    PveError::server(format!(
        "Configuration file 'nodes/{node}/{dir}/{vmid}.conf' does not exist"
    ))
}

fn locked(g: &Guest) -> Result<(), PveError> {
    match g.lock() {
        Some(lock) => Err(PveError::server(format!(
            "{} is locked ({lock})",
            g.kind.label()
        ))),
        None => Ok(()),
    }
}

fn guest_call(sim: &mut Sim, call: &Call, kind: GuestKind, rest: &str) -> ApiResult {
    let (vmid, node) = (call.vmid(), call.node());
    let guest = sim
        .cluster
        .guests
        .get(&vmid)
        .filter(|g| g.kind == kind && g.node == node)
        .cloned()
        .ok_or_else(|| config_missing(kind, &node, vmid))?;
    if let Some(holder) = sim.faults.locked.get(&vmid).cloned()
        && call.method != "GET"
    {
        return Err(PveError::server(format!(
            "{} is locked ({holder})",
            kind.label()
        )));
    }
    let label = format!("{} {vmid}", kind.label());
    let prefix = if kind == GuestKind::Lxc { "vz" } else { "qm" };
    // A task working on the guest holds its config flock; PVE waits briefly, then gives up.
    let shared_lock = kind == GuestKind::Qemu && rest == "/clone" && guest.is_template();
    let busy = sim.cluster.tasks.values().any(|t| {
        t.state == TaskState::Running && t.id == vmid.to_string() && !t.kind.ends_with("clone")
    });
    if call.method != "GET" && !rest.starts_with("/agent/") && !shared_lock && busy {
        let path = match kind {
            GuestKind::Lxc => format!("/run/lock/lxc/pve-config-{vmid}.lock"),
            GuestKind::Qemu => format!("/var/lock/qemu-server/lock-{vmid}.conf"),
        };
        return Err(PveError::server(format!(
            "can't lock file '{path}' - got timeout"
        )));
    }
    let id = vmid.to_string();
    match (call.method, rest) {
        ("GET", "") => {
            Ok(json!([{"subdir": "config"}, {"subdir": "status"}, {"subdir": "snapshot"}]))
        }
        ("GET", "/config") => Ok(guest.config_json()),
        ("PUT", "/config") | ("POST", "/config") => {
            locked(&guest)?;
            if let Some(digest) = call.text("digest")
                && digest != guest.digest()
            {
                return Err(PveError::server(
                    "detected modified configuration - file changed by other user? Try again.",
                ));
            }
            let mut config = guest.config.clone();
            for (k, _) in &call.params {
                if matches!(
                    k.as_str(),
                    "node"
                        | "vmid"
                        | "digest"
                        | "delete"
                        | "revert"
                        | "skiplock"
                        | "background_delay"
                ) {
                    continue;
                }
                let value = call.text(k).unwrap_or_default();
                config.insert(k.clone(), volume_spec(k, &value, vmid)?);
            }
            for key in call
                .text("delete")
                .unwrap_or_default()
                .split([',', ';', ' '])
                .filter(|k| !k.is_empty())
            {
                config.remove(key);
            }
            check_storages(&sim.cluster, &config)?;
            if call.method == "POST" {
                return Ok(json!(sim.task(
                    &node,
                    "qmconfig",
                    &id,
                    &call.user,
                    Effect::SetConfig(vmid, config)
                )));
            }
            if let Some(g) = sim.cluster.guests.get_mut(&vmid) {
                g.config = config;
            }
            Ok(Value::Null)
        }
        ("GET", "/status/current") => {
            let mut v = guest_summary(&guest);
            v["ha"] = json!({"managed": 0});
            if kind == GuestKind::Qemu {
                v["qmpstatus"] = json!(if guest.running { "running" } else { "stopped" });
                v["shares"] = json!(1000);
                if guest.running {
                    v["running-qemu"] = json!("10.0.2");
                    v["running-machine"] = json!("pc-i440fx-10.0+pve0");
                    v["freemem"] = json!(guest.memory().saturating_mul(512 * 1024));
                }
                if guest
                    .config
                    .get("agent")
                    .is_some_and(|a| a.starts_with('1') || a.contains("enabled=1"))
                {
                    v["agent"] = json!(1);
                }
            }
            Ok(v)
        }
        ("POST", "/status/start") => {
            if guest.running {
                return Err(PveError::server(format!("{label} already running")));
            }
            let upid = sim.task(
                &node,
                &format!("{prefix}start"),
                &id,
                &call.user,
                Effect::SetRunning(vmid, true),
            );
            if guest.is_template() {
                sim.fail(
                    &upid,
                    if kind == GuestKind::Lxc {
                        "you can't start a CT if it's a template"
                    } else {
                        "you can't start a vm if it's a template"
                    },
                );
            } else if let Some(lock) = guest.lock() {
                sim.fail(&upid, &format!("{} is locked ({lock})", kind.label()));
            } else if let Some(missing) = missing_snippet(&sim.cluster, &guest) {
                // Generating the cloud-init drive reads the snippets `cicustom` names.
                sim.fail(&upid, &format!("volume '{missing}' does not exist"));
            }
            Ok(json!(upid))
        }
        ("POST", "/status/stop") | ("POST", "/status/shutdown") => {
            if !guest.running {
                return Err(PveError::server(format!("{label} not running")));
            }
            let kind_name = if rest.ends_with("stop") {
                "stop"
            } else {
                "shutdown"
            };
            Ok(json!(sim.task(
                &node,
                &format!("{prefix}{kind_name}"),
                &id,
                &call.user,
                Effect::SetRunning(vmid, false)
            )))
        }
        ("POST", "/status/reboot") => {
            if !guest.running {
                return Err(PveError::server(format!("{label} not running")));
            }
            let upid = sim.task(
                &node,
                &format!("{prefix}reboot"),
                &id,
                &call.user,
                Effect::SetRunning(vmid, true),
            );
            // A reboot starts the VM afresh: its cloud-init drive is generated again.
            if let Some(missing) = missing_snippet(&sim.cluster, &guest) {
                sim.fail(&upid, &format!("volume '{missing}' does not exist"));
            }
            Ok(json!(upid))
        }
        ("POST", "/clone") => clone(sim, call, &guest),
        ("POST", "/template") => {
            locked(&guest)?;
            if !guest.snapshots.is_empty() {
                return Err(PveError::server(format!(
                    "unable to create template, because {} contains snapshots",
                    kind.label()
                )));
            }
            if guest.running {
                return Err(PveError::server(format!("{label} is running")));
            }
            let mut config = guest.config.clone();
            config.insert("template".into(), "1".into());
            // A template's disks become base volumes (`vm-9000-disk-0` → `base-9000-disk-0`).
            for value in config.values_mut() {
                *value = value
                    .replace(&format!(":vm-{vmid}-"), &format!(":base-{vmid}-"))
                    .replace(&format!(":subvol-{vmid}-"), &format!(":basevol-{vmid}-"));
            }
            if kind == GuestKind::Lxc {
                // PVE answers null and converts in the background.
                if let Some(g) = sim.cluster.guests.get_mut(&vmid) {
                    g.config = config;
                }
                return Ok(Value::Null);
            }
            Ok(json!(sim.task(
                &node,
                "qmtemplate",
                &id,
                &call.user,
                Effect::SetConfig(vmid, config)
            )))
        }
        ("GET", "/snapshot") => {
            let mut list: Vec<Value> = guest
                .snapshots
                .iter()
                .map(|s| {
                    let mut v = json!({"name": s.name, "description": s.description, "snaptime": s.snaptime});
                    if let Some(p) = &s.parent {
                        v["parent"] = json!(p);
                    }
                    v
                })
                .collect();
            let mut current = json!({"name": "current", "description": "You are here!", "digest": guest.digest(), "running": guest.running as i32});
            if let Some(p) = guest.snapshots.last() {
                current["parent"] = json!(p.name);
            }
            list.push(current);
            Ok(Value::Array(list))
        }
        ("POST", "/snapshot") => {
            locked(&guest)?;
            let name = call.text("snapname").unwrap_or_default();
            if guest.snapshots.iter().any(|s| s.name == name) {
                return Err(PveError::server(format!(
                    "snapshot name '{name}' already used"
                )));
            }
            let mut config = guest.config.clone();
            config.remove("parent");
            let snapshot = Snapshot {
                name,
                description: call.text("description").unwrap_or_default(),
                snaptime: now_s(),
                parent: guest.snapshots.last().map(|s| s.name.clone()),
                config,
                files: guest.inside.files.clone(),
                services: guest.inside.services.clone(),
            };
            sim.set_lock(vmid, "snapshot");
            Ok(json!(sim.locked_task(
                &node,
                &format!("{prefix}snapshot"),
                &id,
                &call.user,
                vmid,
                Effect::Snapshot { vmid, snapshot }
            )))
        }
        ("GET", "/snapshot/{snapname}") => {
            Ok(json!([{"subdir": "config"}, {"subdir": "rollback"}]))
        }
        ("DELETE", "/snapshot/{snapname}") | ("POST", "/snapshot/{snapname}/rollback") => {
            locked(&guest)?;
            let name = call.text("snapname").unwrap_or_default();
            if !guest.snapshots.iter().any(|s| s.name == name) {
                return Err(PveError::server(format!(
                    "snapshot '{name}' does not exist"
                )));
            }
            if call.method == "DELETE" {
                sim.set_lock(vmid, "snapshot-delete");
                return Ok(json!(sim.locked_task(
                    &node,
                    &format!("{prefix}delsnapshot"),
                    &id,
                    &call.user,
                    vmid,
                    Effect::DeleteSnapshot { vmid, name }
                )));
            }
            sim.set_lock(vmid, "rollback");
            let mut effect = Effect::Rollback { vmid, name };
            if call.flag("start") {
                effect = Effect::Many(vec![effect, Effect::SetRunning(vmid, true)]);
            }
            Ok(json!(sim.locked_task(
                &node,
                &format!("{prefix}rollback"),
                &id,
                &call.user,
                vmid,
                effect
            )))
        }
        ("PUT", "/resize") => {
            locked(&guest)?;
            let disk = call.text("disk").unwrap_or_default();
            let current = guest.config.get(&disk).cloned().ok_or_else(|| {
                PveError::server(format!("unable to parse config for disk '{disk}'"))
            })?;
            let size = call.text("size").unwrap_or_default();
            let old = current
                .split("size=")
                .nth(1)
                .and_then(|s| gib(s.split(',').next().unwrap_or(s)))
                .unwrap_or(0.0);
            let wanted = gib(size.trim_start_matches('+')).ok_or_else(|| {
                PveError::param("size", "invalid format - unable to parse disk size")
            })?;
            let new = if size.starts_with('+') {
                old + wanted
            } else {
                wanted
            };
            if new < old {
                return Err(PveError::server(format!(
                    "unable to shrink disk size ({old}G > {new}G)"
                )));
            }
            let mut config = guest.config.clone();
            let base = current
                .split(",size=")
                .next()
                .unwrap_or(&current)
                .to_owned();
            config.insert(disk, format!("{base},size={new}G"));
            Ok(json!(sim.task(
                &node,
                "resize",
                &id,
                &call.user,
                Effect::SetConfig(vmid, config)
            )))
        }
        ("GET", "/interfaces") => Ok(if guest.running {
            interfaces(&guest)
        } else {
            Value::Null
        }),
        ("DELETE", "") => {
            locked(&guest)?;
            if guest.config.get("protection").is_some_and(|p| p == "1") {
                return Err(PveError::server(format!(
                    "can't remove {label} - protection mode enabled"
                )));
            }
            if guest.running && !(kind == GuestKind::Lxc && call.flag("force")) {
                return Err(PveError::server(match kind {
                    GuestKind::Lxc => format!("unable to destroy CT {vmid} - container is running"),
                    GuestKind::Qemu => format!("VM {vmid} is running - destroy failed"),
                }));
            }
            // A template whose base volumes linked clones still use cannot go (ZFS says so
            // in the destroy task).
            let base = format!(":base-{vmid}-");
            let in_use = sim
                .cluster
                .guests
                .values()
                .filter(|g| g.vmid != vmid)
                .find_map(|g| g.config.values().find(|v| v.contains(&base)).cloned());
            sim.set_lock(vmid, "destroyed");
            let upid = sim.task(
                &node,
                &format!("{prefix}destroy"),
                &id,
                &call.user,
                Effect::RemoveGuest(vmid),
            );
            if let Some(t) = sim.cluster.tasks.get_mut(&upid) {
                t.unlock_on_failure = Some(vmid);
            }
            if let Some(volume) = in_use {
                let parent = volume
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .replace(':', "/");
                sim.fail(
                    &upid,
                    &format!(
                        "zfs error: cannot destroy '{parent}': filesystem has dependent clones"
                    ),
                );
            }
            Ok(json!(upid))
        }
        ("GET", "/firewall/options") => Ok(json!(guest.firewall_options)),
        ("PUT", "/firewall/options") => {
            let g = sim.cluster.guests.get_mut(&vmid).expect("looked up above");
            for (k, _) in &call.params {
                if !matches!(k.as_str(), "node" | "vmid" | "digest" | "delete") {
                    g.firewall_options
                        .insert(k.clone(), call.text(k).unwrap_or_default());
                }
            }
            Ok(Value::Null)
        }
        ("GET", "/firewall/rules") => Ok(Value::Array(
            guest
                .firewall_rules
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut r = r.clone();
                    r["pos"] = json!(i);
                    r
                })
                .collect(),
        )),
        ("POST", "/firewall/rules") => {
            let mut rule = Map::new();
            for (k, v) in &call.params {
                if !matches!(k.as_str(), "node" | "vmid" | "pos" | "digest") {
                    rule.insert(k.clone(), v.clone());
                }
            }
            // PVE's create_rule puts the new rule on top (`unshift`), whatever `pos` says,
            // and a rule created without `enable` is disabled.
            rule.entry("enable").or_insert(json!(0));
            let g = sim.cluster.guests.get_mut(&vmid).expect("looked up above");
            g.firewall_rules.insert(0, Value::Object(rule));
            Ok(Value::Null)
        }
        ("DELETE", "/firewall/rules/{pos}") => {
            let g = sim.cluster.guests.get_mut(&vmid).expect("looked up above");
            let pos = call.text("pos").and_then(|p| p.parse::<usize>().ok());
            match pos.filter(|p| *p < g.firewall_rules.len()) {
                Some(p) => {
                    g.firewall_rules.remove(p);
                    Ok(Value::Null)
                }
                None => Err(PveError::server(
                    "no rule at position {pos}"
                        .replace("{pos}", &call.text("pos").unwrap_or_default()),
                )),
            }
        }
        (_, agent) if agent.starts_with("/agent/") => {
            crate::agent::call(sim, call, &guest, &agent["/agent/".len()..])
        }
        _ => Err(PveError {
            status: 501,
            message: format!("Method '{} {}' not implemented", call.method, call.template),
            errors: None,
        }),
    }
}

fn clone(sim: &mut Sim, call: &Call, source: &Guest) -> ApiResult {
    let (vmid, node, kind) = (source.vmid, call.node(), source.kind);
    let newid: u32 = call.text("newid").and_then(|v| v.parse().ok()).unwrap_or(0);
    let full = call.flag("full") || !source.is_template();
    if !full && (call.params.contains_key("storage") || call.params.contains_key("format")) {
        return Err(PveError::param(
            "storage",
            "parameter 'storage' not allowed for linked clones",
        ));
    }
    if kind == GuestKind::Lxc || source.lock() != Some("clone") {
        locked(source)?;
    }
    if let Some(existing) = sim.cluster.guests.get(&newid) {
        return Err(PveError::server(format!(
            "{} {newid} already exists on node '{}'",
            kind.label(),
            existing.node
        )));
    }
    let mut config = source.config.clone();
    for k in ["template", "parent", "lock"] {
        config.remove(k);
    }
    for (k, v) in config.iter_mut() {
        let base = format!(":base-{vmid}-");
        if !full && v.contains(&base) {
            // A linked clone's disk is a child of the template's base volume.
            let (volume, options) = v.split_once(',').unwrap_or((v.as_str(), ""));
            let own = volume.replace(&base, &format!(":vm-{newid}-"));
            let own = own
                .split_once(':')
                .map_or(own.clone(), |(_, name)| name.to_owned());
            *v = format!("{volume}/{own},{options}")
                .trim_end_matches(',')
                .to_owned();
            continue;
        }
        *v = v
            .replace(&format!("-{vmid}-"), &format!("-{newid}-"))
            .replace(&format!(":base-{newid}-"), &format!(":vm-{newid}-"))
            .replace(&format!(":basevol-{newid}-"), &format!(":subvol-{newid}-"));
        if k.starts_with("net") {
            let mac = random_mac(newid, k);
            *v = v
                .split(',')
                .map(|p| {
                    if p.starts_with("hwaddr=") {
                        format!("hwaddr={mac}")
                    } else if p.contains("=BC:24:11") || p.starts_with("virtio=") {
                        format!("{}={mac}", p.split('=').next().unwrap_or("virtio"))
                    } else {
                        p.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
        }
    }
    let name_key = if kind == GuestKind::Lxc {
        "hostname"
    } else {
        "name"
    };
    match call.text(name_key) {
        Some(name) => {
            config.insert(name_key.into(), name);
        }
        None if kind == GuestKind::Qemu => {
            config.insert("name".into(), format!("Copy-of-VM-{}", source.name()));
        }
        None => {}
    }
    if let Some(description) = call.text("description") {
        config.insert("description".into(), description);
    }
    // `target` places the clone on another node (PVE copies, then moves it).
    let target_node = match call.text("target") {
        Some(t) if sim.cluster.node(&t).is_none() => {
            return Err(PveError::server(format!("no such node '{t}'")));
        }
        Some(t) => t,
        None => node.clone(),
    };
    let mut target = Guest::new(newid, &target_node, kind, config);
    target.pool = pool_of(&sim.cluster, call)?;
    let mut placeholder = target.clone();
    let target_lock = if kind == GuestKind::Lxc {
        "create"
    } else {
        "clone"
    };
    placeholder.config = BTreeMap::from([("lock".to_string(), target_lock.to_string())]);
    sim.cluster.guests.insert(newid, placeholder);
    // LXC locks the source for the whole copy; QEMU clones of a template share a lock.
    if kind == GuestKind::Lxc {
        sim.set_lock(vmid, "disk");
    }
    let task_type = if kind == GuestKind::Lxc {
        "vzclone"
    } else {
        "qmclone"
    };
    let effect = Effect::Many(vec![
        Effect::PutGuest(Box::new(target)),
        if kind == GuestKind::Lxc {
            Effect::Unlock(vmid)
        } else {
            Effect::None
        },
    ]);
    let upid = sim.task(&node, task_type, &vmid.to_string(), &call.user, effect);
    if let Some(t) = sim.cluster.tasks.get_mut(&upid) {
        t.remove_on_failure = Some(newid);
        t.unlock_on_failure = (kind == GuestKind::Lxc).then_some(vmid);
    }
    Ok(json!(upid))
}

/// A PVE size (`8G`, `512M`, `1T`, `300K`, or bytes) in GiB.
fn gib(text: &str) -> Option<f64> {
    let (number, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        'K' => n / (1024.0 * 1024.0),
        'M' => n / 1024.0,
        'G' => n,
        'T' => n * 1024.0,
        _ => n / (1024.0 * 1024.0 * 1024.0),
    })
}

/// Addresses of a running guest: its static `ip=` or a simulated DHCP lease.
pub fn addresses(guest: &Guest) -> Vec<(String, String, String, u8)> {
    guest
        .config
        .iter()
        .filter(|(k, _)| k.starts_with("net"))
        .map(|(k, v)| {
            let fields: BTreeMap<&str, &str> =
                v.split(',').filter_map(|p| p.split_once('=')).collect();
            let ipconfig = guest
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
                None => (format!("10.0.0.{}", 100 + guest.vmid % 150), 24),
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

fn interfaces(guest: &Guest) -> Value {
    let mut list = vec![
        json!({"name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128",
                               "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8}]}),
    ];
    for (name, mac, addr, prefix) in addresses(guest) {
        let mac = mac.to_lowercase();
        let link_local = format!("fe80::{}/64", mac.replace(':', "").get(6..).unwrap_or("1"));
        list.push(json!({"name": name, "hwaddr": mac, "hardware-address": mac, "inet": format!("{addr}/{prefix}"), "inet6": link_local,
                         "ip-addresses": [{"ip-address": addr, "ip-address-type": "inet", "prefix": prefix}]}));
    }
    Value::Array(list)
}

/// What every request is checked against before a handler runs.
pub fn validate(template: &str, method: &str, params: &Map<String, Value>) -> Result<(), PveError> {
    schema::validate(template, method, params).map_err(PveError::params)
}
