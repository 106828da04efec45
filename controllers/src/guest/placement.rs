//! Which node a guest goes on, and whether any node can hold it: pure checks against the
//! ProxmoxCluster's status, made before anything is created.

use crate::conditions::reason;
use crate::error::Error;
use phoenix_crds::ProxmoxCluster;
use phoenix_crds::guest::GuestCommon;
use phoenix_crds::proxmox_cluster::NodeStatus;

/// Nodes Phoenix may use: the cluster's allow-list, or every node PVE reports.
fn usable_nodes(cluster: &ProxmoxCluster) -> Vec<&NodeStatus> {
    let reported = cluster.status.as_ref().map(|s| &s.nodes[..]).unwrap_or(&[]);
    reported
        .iter()
        .filter(|n| {
            cluster.spec.nodes.is_empty() || cluster.spec.nodes.iter().any(|a| a.name == n.name)
        })
        .collect()
}

/// The node for a guest: `spec.node`, else the node it already has, else the placement
/// candidate with the most free memory, avoiding nodes of its anti-affinity peers.
pub fn choose_node(
    common: &GuestCommon,
    cluster: &ProxmoxCluster,
    current: Option<&str>,
    peer_nodes: &[String],
) -> Result<String, Error> {
    let nodes = usable_nodes(cluster);
    let names = || {
        nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(node) = &common.node {
        if !nodes.iter().any(|n| &n.name == node) {
            return Err(Error::spec(
                reason::NODE_NOT_IN_CLUSTER,
                format!(
                    "node {node:?} is not a node of the cluster (nodes: {})",
                    names()
                ),
            ));
        }
        return Ok(node.clone());
    }
    if let Some(node) = current {
        return Ok(node.to_owned());
    }
    let allowed = common
        .placement
        .as_ref()
        .map(|p| &p.nodes[..])
        .unwrap_or(&[]);
    let mut candidates: Vec<&&NodeStatus> = nodes
        .iter()
        .filter(|n| n.status == "online")
        .filter(|n| allowed.is_empty() || allowed.contains(&n.name))
        .collect();
    if candidates.is_empty() {
        return Err(Error::spec(
            reason::NO_NODE_AVAILABLE,
            format!(
                "no online node among {allowed:?} (cluster nodes: {})",
                names()
            ),
        ));
    }
    // Fewest peers first, then most free memory, then name (for a stable choice).
    candidates.sort_by_key(|n| {
        let peers = peer_nodes.iter().filter(|p| **p == n.name).count();
        (
            peers,
            std::cmp::Reverse(n.free_memory_mib.unwrap_or(0)),
            n.name.clone(),
        )
    });
    Ok(candidates[0].name.clone())
}

/// A guest asking for more memory than any node has can never run.
pub fn check_memory(common: &GuestCommon, cluster: &ProxmoxCluster) -> Result<(), Error> {
    let largest = usable_nodes(cluster)
        .iter()
        .filter_map(|n| n.memory_mib)
        .max();
    match largest {
        Some(max) if u64::from(common.memory) > max => Err(Error::spec(
            reason::INSUFFICIENT_MEMORY,
            format!(
                "memory {} MiB is more than any node has (largest: {max} MiB)",
                common.memory
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_crds::proxmox_cluster::ProxmoxClusterStatus;

    fn cluster(nodes: &[(&str, u64, u64)]) -> ProxmoxCluster {
        let mut cluster: ProxmoxCluster = crate::examples::example("proxmoxcluster-homelab.yaml");
        cluster.spec.nodes.clear();
        cluster.status = Some(ProxmoxClusterStatus {
            nodes: nodes
                .iter()
                .map(|(name, memory, free)| NodeStatus {
                    name: name.to_string(),
                    status: "online".into(),
                    cpus: Some(32),
                    memory_mib: Some(*memory),
                    free_memory_mib: Some(*free),
                })
                .collect(),
            ..Default::default()
        });
        cluster
    }

    fn common(yaml: &str) -> GuestCommon {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn placement_prefers_free_memory_and_spreads_peers() {
        let c = cluster(&[
            ("pve1", 65536, 1000),
            ("pve2", 65536, 9000),
            ("pve3", 65536, 5000),
        ]);
        let any = common("memory: 1024");
        assert_eq!(choose_node(&any, &c, None, &[]).unwrap(), "pve2");
        assert_eq!(
            choose_node(&any, &c, Some("pve1"), &[]).unwrap(),
            "pve1",
            "a placed guest stays"
        );
        assert_eq!(
            choose_node(&any, &c, None, &["pve2".into()]).unwrap(),
            "pve3"
        );
        let limited = common("memory: 1024\nplacement: {nodes: [pve1]}");
        assert_eq!(choose_node(&limited, &c, None, &[]).unwrap(), "pve1");
    }

    #[test]
    fn impossible_specs_are_refused_with_a_reason() {
        let c = cluster(&[("phoenix", 131072, 100000)]);
        let wrong_node = common("node: pve9");
        let e = choose_node(&wrong_node, &c, None, &[]).unwrap_err();
        assert_eq!(e.category(), "NodeNotInCluster");
        assert!(e.to_string().contains("phoenix"), "{e}");
        let huge = common("memory: 262144");
        assert_eq!(
            check_memory(&huge, &c).unwrap_err().category(),
            "InsufficientMemory"
        );
        assert!(check_memory(&common("memory: 1024"), &c).is_ok());
    }
}
