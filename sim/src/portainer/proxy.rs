//! The Docker API through `/api/endpoints/{id}/docker/…`: swarm inspect, info, nodes,
//! services and tasks of the swarm the environment stands for, in Docker's shapes.

use super::http::{Reply, Request, no_endpoint};
use crate::server::Server;
use crate::swarm::{Service, Swarm};
use serde_json::{Value, json};

pub fn call(server: &Server, req: &Request, id: &str, path: &[&str]) -> Reply {
    let sim = server.sim();
    let Some(endpoint) = id
        .parse()
        .ok()
        .and_then(|id| sim.cluster.portainer.endpoint(id))
    else {
        return no_endpoint();
    };
    let Some(swarm) = sim.cluster.swarms.get(&endpoint.swarm_id) else {
        return Reply::error(
            502,
            "Unable to proxy the request via the Docker agent",
            "The agent is unreachable",
        );
    };
    let path = match path {
        [version, rest @ ..] if version.starts_with("v1.") => rest,
        other => other,
    };
    if req.method != "GET" {
        return docker_error(405, "this simulated Docker API answers reads only");
    }
    let filters = match req
        .query
        .get("filters")
        .map(|f| serde_json::from_str::<Value>(f))
    {
        None => Value::Null,
        Some(Ok(v)) => v,
        Some(Err(e)) => return docker_error(400, &format!("invalid filter: {e}")),
    };
    let swarm_id = &endpoint.swarm_id;
    match path {
        ["swarm"] => {
            Reply::ok(json!({"ID": swarm_id, "Version": {"Index": 1}, "Spec": {"Name": "default"}}))
        }
        ["info"] => Reply::ok(info(swarm, swarm_id)),
        ["nodes"] => Reply::ok(
            swarm
                .nodes
                .iter()
                .filter(|n| n.status == "ready")
                .map(|n| {
                    json!({
                        "ID": n.id, "Description": {"Hostname": n.hostname},
                        "Spec": {"Role": n.role, "Labels": n.labels, "Availability": "active"},
                        "Status": {"State": n.status},
                    })
                })
                .collect(),
        ),
        ["services"] => Reply::ok(
            swarm
                .services
                .values()
                .filter(|s| labels_match(&filters, s))
                .map(service_json)
                .collect(),
        ),
        ["tasks"] => Reply::ok(tasks(swarm, &filters)),
        _ => docker_error(404, "page not found"),
    }
}

fn docker_error(status: u16, message: &str) -> Reply {
    Reply {
        status,
        body: Some(json!({"message": message})),
        headers: Vec::new(),
    }
}

fn info(swarm: &Swarm, swarm_id: &str) -> Value {
    let manager = swarm.nodes.iter().find(|n| n.role == "manager");
    json!({
        "Name": manager.map(|n| n.hostname.as_str()).unwrap_or(""), "ServerVersion": "27.3.1",
        "Swarm": {
            "NodeID": manager.map(|n| n.id.as_str()).unwrap_or(""), "LocalNodeState": "active",
            "ControlAvailable": true, "Cluster": {"ID": swarm_id},
            "Nodes": swarm.nodes.iter().filter(|n| n.status == "ready").count(),
            "Managers": swarm.nodes.iter().filter(|n| n.role == "manager" && n.status == "ready").count(),
        },
    })
}

/// A Docker filter's values: `{"k": ["v"]}` or `{"k": {"v": true}}`.
fn filter_values(filters: &Value, key: &str) -> Vec<String> {
    match &filters[key] {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn labels_match(filters: &Value, s: &Service) -> bool {
    filter_values(filters, "label")
        .iter()
        .all(|l| match l.split_once('=') {
            Some((k, v)) => s.labels.get(k).is_some_and(|x| x == v),
            None => s.labels.contains_key(l),
        })
        && filter_values(filters, "name")
            .iter()
            .all(|n| s.name.starts_with(n.as_str()))
}

fn service_json(s: &Service) -> Value {
    let mode = match s.replicas {
        Some(r) => json!({"Replicated": {"Replicas": r}}),
        None => json!({"Global": {}}),
    };
    json!({
        "ID": s.id,
        "Spec": {
            "Name": s.name, "Labels": s.labels, "Mode": mode,
            "TaskTemplate": {"ContainerSpec": {"Image": s.image, "Labels": s.labels}, "Placement": {"Constraints": s.constraints}},
        },
    })
}

fn tasks(swarm: &Swarm, filters: &Value) -> Value {
    let wanted = filter_values(filters, "service");
    swarm
        .services
        .values()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| *w == s.id || *w == s.name))
        .filter(|s| labels_match(&json!({"label": filters["label"]}), s))
        .flat_map(|s| {
            s.tasks.iter().map(move |t| {
                let message = match t.state.as_str() {
                    "running" => "started",
                    "rejected" => "preparing",
                    _ => "pending task scheduling",
                };
                json!({
                    "ID": t.id, "ServiceID": s.id, "NodeID": t.node_id, "Slot": t.slot,
                    "Labels": {}, "DesiredState": if t.state == "rejected" { "shutdown" } else { "running" },
                    "Status": {"State": t.state, "Message": message, "Err": t.err},
                    "Spec": {"ContainerSpec": {"Image": s.image}},
                })
            })
        })
        .collect()
}
