//! Swarm stacks as `docker stack` makes them: a deploy creates or updates the services
//! `STACK_service` of a compose file and schedules their tasks on the nodes that satisfy
//! their placement constraints; an image the simulated registry lacks leaves its tasks
//! rejected (the deploy itself succeeds, as Docker's does).

use crate::compose::{NodeFacts, ServiceSpec};
use crate::swarm::{NAMESPACE, Service, Swarm, SwarmNode, Task, random_id};
use rand::rngs::StdRng;
use serde_json::json;

/// `repo:tag` with Docker's implicit `latest`.
pub fn full_image(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || image.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// Deploys `specs` as stack `name`; returns Docker's output lines.
pub fn deploy(
    swarm: &mut Swarm,
    rng: &mut StdRng,
    name: &str,
    specs: &[ServiceSpec],
    prune: bool,
    missing_images: &[String],
) -> Vec<String> {
    let mut lines = Vec::new();
    if !swarm.has_stack(name) {
        lines.push(format!("Creating network {name}_default"));
    }
    if prune {
        let wanted: Vec<String> = specs.iter().map(|s| format!("{name}_{}", s.name)).collect();
        let stale: Vec<String> = swarm
            .stack_services(name)
            .iter()
            .map(|s| s.name.clone())
            .filter(|s| !wanted.contains(s))
            .collect();
        for service in stale {
            swarm.services.remove(&service);
            lines.push(format!("Removing service {service}"));
        }
    }
    for spec in specs {
        let full = format!("{name}_{}", spec.name);
        let wanted = Service {
            id: String::new(),
            name: full.clone(),
            image: spec.image.clone(),
            labels: [(NAMESPACE.to_owned(), name.to_owned())].into(),
            replicas: spec.replicas,
            constraints: spec.constraints.iter().map(|c| c.text.clone()).collect(),
            ports: spec.ports.clone(),
            env: spec.env.clone(),
            tasks: Vec::new(),
        };
        match swarm.services.get(&full) {
            Some(old) => {
                lines.push(format!("Updating service {full} (id: {})", old.id));
                let unchanged = Service {
                    id: old.id.clone(),
                    tasks: old.tasks.clone(),
                    ..wanted.clone()
                } == *old;
                if !unchanged {
                    let mut service = Service {
                        id: old.id.clone(),
                        ..wanted
                    };
                    service.tasks = schedule(&swarm.nodes, &service, rng, missing_images);
                    swarm.services.insert(full, service);
                }
            }
            None => {
                lines.push(format!("Creating service {full}"));
                let mut service = Service {
                    id: random_id(rng, 25),
                    ..wanted
                };
                service.tasks = schedule(&swarm.nodes, &service, rng, missing_images);
                swarm.services.insert(full, service);
            }
        }
    }
    lines
}

/// Removes stack `name`: Docker's output lines, or `None` when it has no services.
pub fn remove(swarm: &mut Swarm, name: &str) -> Option<Vec<String>> {
    let names: Vec<String> = swarm
        .stack_services(name)
        .iter()
        .map(|s| s.name.clone())
        .collect();
    if names.is_empty() {
        return None;
    }
    let mut lines = Vec::new();
    for service in names {
        swarm.services.remove(&service);
        lines.push(format!("Removing service {service}"));
    }
    lines.push(format!("Removing network {name}_default"));
    Some(lines)
}

/// Places the tasks of `service` on the ready nodes that satisfy its constraints.
fn schedule(
    nodes: &[SwarmNode],
    service: &Service,
    rng: &mut StdRng,
    missing: &[String],
) -> Vec<Task> {
    let constraints: Vec<_> = service
        .constraints
        .iter()
        .filter_map(|c| crate::compose::Constraint::parse(c).ok())
        .collect();
    let ready: Vec<&SwarmNode> = nodes.iter().filter(|n| n.status == "ready").collect();
    let fits: Vec<&SwarmNode> = ready
        .iter()
        .copied()
        .filter(|n| {
            let facts = NodeFacts {
                id: &n.id,
                hostname: &n.hostname,
                role: &n.role,
                labels: &n.labels,
            };
            constraints.iter().all(|c| c.matches(&facts))
        })
        .collect();
    let image = full_image(&service.image);
    let missing = missing.iter().any(|m| full_image(m) == image);
    let task = |slot: u32, node: Option<&SwarmNode>, rng: &mut StdRng| {
        let (state, err) = match node {
            None => (
                "pending",
                format!(
                    "no suitable node (scheduling constraints not satisfied on {} nodes)",
                    ready.len()
                ),
            ),
            Some(_) if missing => ("rejected", format!("No such image: {image}")),
            Some(_) => ("running", String::new()),
        };
        Task {
            id: random_id(rng, 25),
            slot,
            node_id: node.map(|n| n.id.clone()).unwrap_or_default(),
            state: state.into(),
            err,
        }
    };
    match service.replicas {
        None => fits.iter().map(|n| task(0, Some(n), rng)).collect(),
        Some(count) => (0..count)
            .map(|i| {
                let node = (!fits.is_empty()).then(|| fits[i as usize % fits.len()]);
                task(i + 1, node, rng)
            })
            .collect(),
    }
}

/// Places again the services with a task not running (after the nodes changed: a label,
/// a node joined or left), as the swarm's orchestrator does.
pub fn reschedule(swarm: &mut Swarm, rng: &mut StdRng, missing: &[String]) {
    let nodes = swarm.nodes.clone();
    for service in swarm.services.values_mut() {
        let on_down = service.tasks.iter().any(|t| {
            nodes
                .iter()
                .any(|n| n.id == t.node_id && n.status != "ready")
        });
        if on_down || service.tasks.iter().any(|t| t.state == "pending") {
            service.tasks = schedule(&nodes, service, rng, missing);
        }
    }
}

/// `docker stack services --format '{{json .}}' NAME`: one JSON object per line.
pub fn services_lines(swarm: &Swarm, name: &str) -> Vec<String> {
    swarm
        .stack_services(name)
        .iter()
        .map(|s| {
            json!({
                "ID": s.id.chars().take(12).collect::<String>(),
                "Image": s.image,
                "Mode": if s.replicas.is_some() { "replicated" } else { "global" },
                "Name": s.name,
                "Ports": s.ports.join(", "),
                "Replicas": s.replicas_text(),
            })
            .to_string()
        })
        .collect()
}

/// `docker stack ps --format '{{json .}}' --no-trunc NAME`: one JSON object per line.
pub fn ps_lines(swarm: &Swarm, name: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for s in swarm.stack_services(name) {
        for t in &s.tasks {
            let node = swarm.nodes.iter().find(|n| n.id == t.node_id);
            let suffix = if t.slot == 0 {
                t.node_id.clone()
            } else {
                t.slot.to_string()
            };
            let current = match t.state.as_str() {
                "running" => "Running 5 seconds ago",
                "rejected" => "Rejected 5 seconds ago",
                _ => "Pending 5 seconds ago",
            };
            let error = if t.err.is_empty() {
                String::new()
            } else {
                format!("\"{}\"", t.err)
            };
            lines.push(
                json!({
                    "ID": t.id,
                    "Name": format!("{}.{suffix}", s.name),
                    "Image": s.image,
                    "Node": node.map(|n| n.hostname.as_str()).unwrap_or(""),
                    "DesiredState": if t.state == "rejected" { "Shutdown" } else { "Running" },
                    "CurrentState": current,
                    "Error": error,
                    "Ports": "",
                })
                .to_string(),
            );
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    fn swarm() -> Swarm {
        let node = |id: &str, role: &str| SwarmNode {
            id: id.into(),
            vmid: 1,
            hostname: format!("host-{id}"),
            role: role.into(),
            status: "ready".into(),
            labels: BTreeMap::new(),
        };
        Swarm {
            nodes: vec![
                node("m", "manager"),
                node("w1", "worker"),
                node("w2", "worker"),
            ],
            ..Default::default()
        }
    }

    fn specs(file: &str) -> Vec<ServiceSpec> {
        crate::compose::parse(file, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn replicated_global_unschedulable_and_missing_images() {
        let mut s = swarm();
        let mut rng = StdRng::seed_from_u64(1);
        let file = "services:\n  web: {image: nginx, deploy: {replicas: 3, placement: {constraints: [node.role == worker]}}}\n  agent: {image: portainer/agent:2.23.0, deploy: {mode: global}}\n  gpu: {image: x, deploy: {placement: {constraints: [node.labels.gpu == true]}}}\n  gone: {image: 'ghcr.io/a/b:1'}\n";
        let out = deploy(
            &mut s,
            &mut rng,
            "app",
            &specs(file),
            false,
            &["ghcr.io/a/b:1".into()],
        );
        assert_eq!(out[0], "Creating network app_default");
        assert!(out.contains(&"Creating service app_web".to_string()));
        let web = &s.services["app_web"];
        assert!(
            web.tasks
                .iter()
                .all(|t| t.state == "running" && t.node_id.starts_with('w'))
        );
        assert_eq!(web.replicas_text(), "3/3");
        assert_eq!(s.services["app_agent"].tasks.len(), 3);
        let gpu = &s.services["app_gpu"].tasks[0];
        assert_eq!(
            (gpu.state.as_str(), gpu.err.as_str()),
            (
                "pending",
                "no suitable node (scheduling constraints not satisfied on 3 nodes)"
            )
        );
        assert_eq!(
            s.services["app_gone"].tasks[0].err,
            "No such image: ghcr.io/a/b:1"
        );
        s.nodes[1].labels.insert("gpu".into(), "true".into());
        reschedule(&mut s, &mut rng, &[]);
        assert_eq!(s.services["app_gpu"].tasks[0].node_id, "w1");
        let lines = ps_lines(&s, "app");
        assert!(
            lines.iter().any(|l| l.contains("\"Name\":\"app_web.1\"")),
            "{lines:?}"
        );
    }

    #[test]
    fn update_keeps_ids_prune_removes_and_rm_reports() {
        let mut s = swarm();
        let mut rng = StdRng::seed_from_u64(2);
        deploy(
            &mut s,
            &mut rng,
            "app",
            &specs("services:\n  a: {image: x}\n  b: {image: y}\n"),
            false,
            &[],
        );
        let id = s.services["app_a"].id.clone();
        let out = deploy(
            &mut s,
            &mut rng,
            "app",
            &specs("services:\n  a: {image: x2}\n"),
            true,
            &[],
        );
        assert_eq!(
            out,
            vec![
                "Removing service app_b".to_string(),
                format!("Updating service app_a (id: {id})")
            ]
        );
        assert_eq!(s.services["app_a"].image, "x2");
        assert_eq!(services_lines(&s, "app").len(), 1);
        assert_eq!(remove(&mut s, "app").unwrap()[0], "Removing service app_a");
        assert!(remove(&mut s, "app").is_none());
    }
}
