//! The nodes: `/nodes` and `/nodes/{node}/status`.

use super::{ApiResult, PveError};
use crate::cluster::Cluster;
use serde_json::{Value, json};

pub(super) fn list(cluster: &Cluster) -> Value {
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

pub(super) fn status(cluster: &Cluster, node: &str) -> ApiResult {
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
