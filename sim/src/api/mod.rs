//! The simulated endpoints. Each handler checks what PVE checks synchronously (with PVE's
//! messages and its habit of answering semantic failures with 500), then either answers at
//! once or starts a task whose effect lands when it finishes.
//!
//! This module routes a validated call to its PVE path family; the families are its
//! children and use its request and error types. `cluster`, `pools`, `status`,
//! `templates` and `snapshots` use `guests` (a guest's summary, its lock, ...), which uses
//! none of them. `permissions` decides who may call what (before any handler runs, and
//! inside the handlers that check more); `access` serves `/access`. `firewall` (a
//! guest's), `node_firewall` (a node's), `cluster_firewall` (the datacenter's) and
//! `firewall_groups` (security groups) share `firewall_rules`; `firewall_aliases` serves
//! the datacenter's aliases; the last four use `cluster_firewall`'s helpers, which uses
//! none of them. `network` serves a node's network configuration.

mod access;
mod agent;
mod cluster;
mod cluster_firewall;
mod disks;
mod firewall;
mod firewall_aliases;
mod firewall_groups;
mod firewall_rules;
mod guests;
pub mod network;
mod node_firewall;
mod nodes;
mod permissions;
mod pools;
mod snapshots;
mod status;
mod storage;
mod storage_config;
mod tasks;
mod templates;

pub use permissions::split_list;

use crate::cluster::GuestKind;
use crate::schema;
use crate::state::Sim;
use serde_json::{Map, Value, json};

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
    permissions::check_call(sim, call)?;
    if call.template.starts_with("/access/") {
        return access::dispatch(sim, call);
    }
    if call.template.ends_with("/tasks/{upid}/status")
        || call.template.ends_with("/tasks/{upid}/log")
    {
        permissions::task(sim, call)?;
    }
    let answer = route(sim, call)?;
    // The lists PVE filters to what the caller may see.
    let filtered = [
        "/cluster/resources",
        "/pools",
        "/storage",
        "/nodes/{node}/lxc",
        "/nodes/{node}/qemu",
        "/nodes/{node}/storage",
    ];
    Ok(
        match call.method == "GET" && filtered.contains(&call.template) {
            true => permissions::visible(sim, call, answer),
            false => answer,
        },
    )
}

fn route(sim: &mut Sim, call: &Call) -> ApiResult {
    let t = call.template.trim_start_matches("/nodes/{node}");
    match (call.method, call.template, t) {
        ("GET", "/version", _) => {
            Ok(json!({"version": "9.1.1", "release": "9.1", "repoid": "42a6b3e1"}))
        }
        ("GET", "/nodes", _) => Ok(nodes::list(&sim.cluster)),
        ("GET", _, "/status") => nodes::status(&sim.cluster, &call.node()),
        ("GET", _, "/time") => nodes::time(&sim.cluster, &call.node()),
        ("PUT", _, "/time") => nodes::set_time(
            &mut sim.cluster,
            &call.node(),
            &call.text("timezone").unwrap_or_default(),
        ),
        ("GET", _, "/dns") => nodes::dns(&sim.cluster, &call.node()),
        ("PUT", _, "/dns") => nodes::set_dns(&mut sim.cluster, &call.node(), call),
        (_, _, rest) if rest.starts_with("/network") => network::call(sim, call),
        (_, _, rest) if rest.starts_with("/firewall/") => node_firewall::call(sim, call),
        ("GET", "/cluster/status", _) => Ok(cluster::status(&sim.cluster)),
        ("GET", "/cluster/resources", _) => Ok(cluster::resources(
            &sim.cluster,
            call.text("type").as_deref(),
        )),
        ("GET", "/cluster/nextid", _) => cluster::next_id(&sim.cluster, call),
        (_, t, _) if t.starts_with("/cluster/firewall/groups") => firewall_groups::call(sim, call),
        (_, t, _) if t.starts_with("/cluster/firewall/aliases") => {
            firewall_aliases::call(sim, call)
        }
        (_, t, _) if t.starts_with("/cluster/firewall/") => cluster_firewall::call(sim, call),
        ("GET", "/pools", _) => Ok(pools::list(&sim.cluster)),
        ("GET", "/storage", _) => Ok(storage_config::list(&sim.cluster, call)),
        ("POST", "/storage", _) => storage_config::create(&mut sim.cluster, call),
        ("GET", "/storage/{storage}", _) => storage_config::read(&sim.cluster, call),
        ("PUT", "/storage/{storage}", _) => storage_config::update(&mut sim.cluster, call),
        ("DELETE", "/storage/{storage}", _) => storage_config::delete(&mut sim.cluster, call),
        ("GET", _, "/disks/list") => Ok(disks::list(&sim.cluster, call)),
        ("GET", _, "/disks/zfs") => Ok(disks::pools(&sim.cluster, call)),
        ("POST", _, "/disks/zfs") => disks::create(sim, call),
        ("GET", _, "/disks/zfs/{name}") => disks::pool(&sim.cluster, call),
        ("POST", "/pools", _) => pools::create(&mut sim.cluster, call),
        ("GET", _, "/storage") => {
            let content = call.text("content");
            Ok(storage::list(
                &sim.cluster,
                &call.node(),
                content.as_deref(),
            ))
        }
        ("GET", _, "/storage/{storage}/content") => storage::content(&sim.cluster, call),
        ("POST", _, "/storage/{storage}/download-url") => {
            storage::download(sim, call, call.text("filename").unwrap_or_default())
        }
        ("GET", _, "/aplinfo") => Ok(storage::appliances()),
        ("POST", _, "/aplinfo") => storage::download_appliance(sim, call),
        ("GET", _, "/tasks") => Ok(tasks::list(&sim.cluster, &call.node())),
        ("GET", _, "/tasks/{upid}/status") => tasks::status(&sim.cluster, call),
        ("GET", _, "/tasks/{upid}/log") => tasks::log(&sim.cluster, call),
        ("GET", _, "/lxc") => Ok(guests::list(&sim.cluster, &call.node(), GuestKind::Lxc)),
        ("GET", _, "/qemu") => Ok(guests::list(&sim.cluster, &call.node(), GuestKind::Qemu)),
        ("POST", _, "/lxc") => guests::create(sim, call, GuestKind::Lxc),
        ("POST", _, "/qemu") => guests::create(sim, call, GuestKind::Qemu),
        (_, _, rest) if rest.starts_with("/lxc/{vmid}") => {
            guest_call(sim, call, GuestKind::Lxc, &rest["/lxc/{vmid}".len()..])
        }
        (_, _, rest) if rest.starts_with("/qemu/{vmid}") => {
            guest_call(sim, call, GuestKind::Qemu, &rest["/qemu/{vmid}".len()..])
        }
        _ => Err(PveError {
            status: 501,
            message: format!("Method '{} {}' not implemented", call.method, call.template),
            errors: None,
        }),
    }
}

/// A call under `/{lxc,qemu}/{vmid}`, `rest` the path after it.
fn guest_call(sim: &mut Sim, call: &Call, kind: GuestKind, rest: &str) -> ApiResult {
    let guest = guests::lookup(sim, call, kind, rest)?;
    match (call.method, rest) {
        ("GET", "") => {
            Ok(json!([{"subdir": "config"}, {"subdir": "status"}, {"subdir": "snapshot"}]))
        }
        ("GET", "/config") => Ok(guest.config_json()),
        ("PUT", "/config") | ("POST", "/config") => guests::set_config(sim, call, &guest),
        ("GET", "/status/current") => Ok(status::current(&guest)),
        ("POST", "/status/start") => status::start(sim, call, &guest),
        ("POST", "/status/stop") => status::stop(sim, call, &guest, "stop"),
        ("POST", "/status/shutdown") => status::stop(sim, call, &guest, "shutdown"),
        ("POST", "/status/reboot") => status::reboot(sim, call, &guest),
        ("POST", "/clone") => templates::clone(sim, call, &guest),
        ("POST", "/template") => templates::template(sim, call, &guest),
        ("GET", "/snapshot") => Ok(snapshots::list(&guest)),
        ("POST", "/snapshot") => snapshots::create(sim, call, &guest),
        ("GET", "/snapshot/{snapname}") => {
            Ok(json!([{"subdir": "config"}, {"subdir": "rollback"}]))
        }
        ("DELETE", "/snapshot/{snapname}") => snapshots::delete(sim, call, &guest),
        ("POST", "/snapshot/{snapname}/rollback") => snapshots::rollback(sim, call, &guest),
        ("PUT", "/resize") => guests::resize(sim, call, &guest),
        ("GET", "/interfaces") => Ok(guests::interfaces(&guest)),
        ("DELETE", "") => guests::destroy(sim, call, &guest),
        ("GET", "/firewall/options") => Ok(json!(guest.firewall_options)),
        ("PUT", "/firewall/options") => firewall::set_options(sim, call, &guest),
        ("GET", "/firewall/rules") => Ok(firewall::rules(sim, &guest)),
        ("POST", "/firewall/rules") => firewall::add_rule(sim, call, &guest),
        ("GET", "/firewall/rules/{pos}") => firewall::rule(sim, call, &guest),
        ("PUT", "/firewall/rules/{pos}") => firewall::update_rule(sim, call, &guest),
        ("DELETE", "/firewall/rules/{pos}") => firewall::delete_rule(sim, call, &guest),
        (_, agent) if agent.starts_with("/agent/") => {
            agent::call(sim, call, &guest, &agent["/agent/".len()..])
        }
        _ => Err(PveError {
            status: 501,
            message: format!("Method '{} {}' not implemented", call.method, call.template),
            errors: None,
        }),
    }
}

/// What every request is checked against before a handler runs.
pub fn validate(template: &str, method: &str, params: &Map<String, Value>) -> Result<(), PveError> {
    schema::validate(template, method, params).map_err(PveError::params)
}

/// The guest a handler was routed to: [`guests::lookup`] found it before the handler ran.
pub(super) fn looked_up(sim: &mut Sim, vmid: u32) -> &mut crate::cluster::Guest {
    sim.cluster
        .guests
        .get_mut(&vmid)
        .expect("the router looked it up")
}
