//! The nodes: `/nodes`, `/nodes/{node}/status`, and the node settings PVE keeps: time zone
//! (`/time`) and resolver (`/dns`).

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

/// `GET /nodes/{node}/time`.
pub(super) fn time(cluster: &Cluster, node: &str) -> ApiResult {
    let n = cluster
        .node(node)
        .ok_or_else(|| PveError::server(format!("no such node '{node}'")))?;
    let now = crate::cluster::now_s();
    Ok(json!({"timezone": n.timezone, "time": now, "localtime": now}))
}

/// `PUT /nodes/{node}/time`: PVE refuses a zone it has no zoneinfo file for.
pub(super) fn set_time(cluster: &mut Cluster, node: &str, timezone: &str) -> ApiResult {
    let known = !timezone.contains("..")
        && std::path::Path::new("/usr/share/zoneinfo")
            .join(timezone)
            .is_file();
    if !known {
        return Err(PveError::server(format!("unknown time zone '{timezone}'")));
    }
    if let Some(n) = cluster.nodes.iter_mut().find(|n| n.name == node) {
        n.timezone = timezone.to_owned();
    }
    Ok(Value::Null)
}

/// `GET /nodes/{node}/dns`: the keys resolv.conf has.
pub(super) fn dns(cluster: &Cluster, node: &str) -> ApiResult {
    let n = cluster
        .node(node)
        .ok_or_else(|| PveError::server(format!("no such node '{node}'")))?;
    Ok(json!(n.resolver))
}

/// `PUT /nodes/{node}/dns`: resolv.conf rewritten from the call (absent servers dropped).
pub(super) fn set_dns(cluster: &mut Cluster, node: &str, call: &super::Call) -> ApiResult {
    let resolver = ["search", "dns1", "dns2", "dns3"]
        .into_iter()
        .filter_map(|k| Some((k.to_owned(), call.text(k)?)))
        .collect();
    if let Some(n) = cluster.nodes.iter_mut().find(|n| n.name == node) {
        n.resolver = resolver;
    }
    Ok(Value::Null)
}
