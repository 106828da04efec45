//! The `dependsOn` gate: an object acts only when everything it names is Ready; a cycle
//! (a → b → a) is reported instead of waiting forever.

use phoenix_crds::common::{DependencyRef, PhoenixKind};
use std::collections::{BTreeMap, BTreeSet};

/// One Phoenix object, as the dependency graph sees it.
pub type Node = (PhoenixKind, String, String);

/// What the gate decides for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// These are not Ready (or do not exist yet); the message names them.
    Waiting(Vec<String>),
    /// The object depends on itself through these.
    Cycle(Vec<String>),
}

fn label((kind, ns, name): &Node) -> String {
    format!("{kind:?} {ns}/{name}")
}

pub fn node_of(dep: &DependencyRef, namespace: &str) -> Node {
    (
        dep.kind,
        dep.namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned()),
        dep.name.clone(),
    )
}

/// Decides the gate of `object`, given every object's dependencies and which are Ready.
pub fn gate(object: &Node, graph: &BTreeMap<Node, Vec<Node>>, ready: &BTreeSet<Node>) -> Gate {
    if let Some(cycle) = find_cycle(object, graph) {
        return Gate::Cycle(cycle.iter().map(label).collect());
    }
    let waiting: Vec<String> = graph
        .get(object)
        .into_iter()
        .flatten()
        .filter(|d| !ready.contains(*d))
        .map(label)
        .collect();
    if waiting.is_empty() {
        Gate::Open
    } else {
        Gate::Waiting(waiting)
    }
}

/// A path from `start` back to itself, if there is one.
fn find_cycle(start: &Node, graph: &BTreeMap<Node, Vec<Node>>) -> Option<Vec<Node>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lxc(name: &str) -> Node {
        (PhoenixKind::LxcGuest, "default".into(), name.into())
    }

    #[test]
    fn dependents_wait_for_readiness_and_cycles_are_named() {
        let mut graph = BTreeMap::new();
        graph.insert(lxc("nginx-phoenix"), vec![lxc("step-ca")]);
        graph.insert(lxc("step-ca"), vec![lxc("copy-base")]);
        let mut ready = BTreeSet::new();
        assert_eq!(
            gate(&lxc("nginx-phoenix"), &graph, &ready),
            Gate::Waiting(vec!["LxcGuest default/step-ca".into()])
        );
        ready.insert(lxc("step-ca"));
        assert_eq!(gate(&lxc("nginx-phoenix"), &graph, &ready), Gate::Open);
        graph.insert(lxc("copy-base"), vec![lxc("nginx-phoenix")]);
        let Gate::Cycle(path) = gate(&lxc("step-ca"), &graph, &ready) else {
            panic!("a cycle")
        };
        assert_eq!(path.first(), path.last());
        assert_eq!(path.len(), 4);
    }
}
