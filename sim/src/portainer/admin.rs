//! Portainer's part of the simulator's `/admin` endpoint: settings and faults, the
//! operation log, a secret-free view of its state, restart and unban.

use super::http::Reply;
use super::state::{Settings, observe};
use crate::server::Server;
use serde_json::{Value, json};

/// Answers `/admin/portainer…`; `None` for other routes.
pub fn route(server: &Server, method: &str, path: &str, body: &[u8]) -> Option<Reply> {
    let rest = path.trim_matches('/').strip_prefix("portainer")?;
    let mut sim = server.sim();
    observe(&mut sim.cluster);
    super::stacks::finish_due(&mut sim);
    let p = &mut sim.cluster.portainer;
    Some(match (method, rest.trim_start_matches('/')) {
        ("GET", "") => Reply::ok(json!(p.settings)),
        ("PUT", "") => match serde_json::from_slice::<Settings>(body) {
            Ok(settings) => {
                p.settings = settings;
                let settings = json!(p.settings);
                sim.save();
                Reply::ok(settings)
            }
            Err(e) => Reply::error(400, "invalid settings", &e.to_string()),
        },
        ("GET", "oplog") => Reply::ok(json!(server.portainer.oplog())),
        ("DELETE", "oplog") => {
            server.portainer.clear_oplog();
            Reply::ok(Value::Null)
        }
        ("POST", "restart") => {
            p.restart();
            server.portainer.unban();
            Reply::ok(json!({"running": p.swarm_id.is_some()}))
        }
        ("POST", "unban") => {
            server.portainer.unban();
            Reply::ok(Value::Null)
        }
        ("GET", "state") => Reply::ok(state(&sim.cluster, server.portainer.banned())),
        _ => return None,
    })
}

/// What Portainer holds, without a secret: env names, not values; key prefixes only.
fn state(cluster: &crate::cluster::Cluster, banned: Vec<String>) -> Value {
    let p = &cluster.portainer;
    let digest = |text: &str| super::http::hash("", text);
    let stacks: Vec<Value> = p.stacks.values().map(|s| json!({
        "id": s.id, "name": s.name, "status": s.status, "endpointId": s.endpoint_id,
        "envNames": s.env.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
        "fileSha256": digest(&s.file), "git": s.git.as_ref().map(|g| json!({"url": g.url, "reference": g.reference_name, "configHash": g.config_hash})),
        "deploymentStatus": s.deployment_status,
    })).collect();
    let services: Vec<Value> = p
        .swarm_id
        .iter()
        .chain(p.endpoints.iter().map(|e| &e.swarm_id))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter_map(|id| cluster.swarms.get(id).map(|s| (id, s)))
        .flat_map(|(id, s)| {
            s.services
                .values()
                .map(move |svc| json!({"swarm": id, "service": svc}))
        })
        .collect();
    json!({
        "running": p.running(), "timedOut": p.timed_out(), "swarmId": p.swarm_id, "instanceId": p.instance_id,
        "adminExists": p.admin.is_some(),
        "users": p.admin.iter().map(|a| json!({"id": 1, "username": a.username, "role": 1})).collect::<Vec<_>>(),
        "apiKeys": p.keys.iter().map(|k| json!({"id": k.id, "userId": k.user_id, "prefix": k.prefix, "description": k.description})).collect::<Vec<_>>(),
        "endpoints": p.endpoints, "stacks": stacks, "services": services, "banned": banned,
    })
}
