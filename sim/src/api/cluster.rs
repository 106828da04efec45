//! The cluster: `/cluster/status`, `/cluster/resources` (guests, nodes, storages) and
//! `/cluster/nextid`.

use super::{ApiResult, Call, PveError, guests, nodes};
use crate::cluster::Cluster;
use serde_json::{Value, json};

pub(super) fn status(cluster: &Cluster) -> Value {
    let mut items = vec![
        json!({"type": "cluster", "id": "cluster", "name": "phoenix", "quorate": 1, "nodes": cluster.nodes.len(), "version": 3}),
    ];
    for (i, n) in cluster.nodes.iter().enumerate() {
        items.push(json!({"type": "node", "id": format!("node/{}", n.name), "name": n.name, "nodeid": i + 1, "ip": format!("127.0.0.{}", i + 1), "online": 1, "local": (i == 0) as i32, "level": ""}));
    }
    Value::Array(items)
}

pub(super) fn resources(cluster: &Cluster, kind: Option<&str>) -> Value {
    let mut items = Vec::new();
    if kind.is_none_or(|k| k == "vm") {
        for g in cluster.guests.values() {
            let mut v = guests::summary(g);
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
        items.extend(nodes::list(cluster).as_array().cloned().unwrap_or_default());
    }
    if kind.is_none_or(|k| k == "storage") {
        for n in &cluster.nodes {
            for s in cluster.storages.iter().filter(|s| s.on_node(&n.name)) {
                items.push(json!({"id": format!("storage/{}/{}", n.name, s.id), "type": "storage", "node": n.name, "storage": s.id,
                                  "plugintype": s.kind, "content": s.content.join(","), "shared": s.shared as i32, "status": "available",
                                  "disk": 0, "maxdisk": 1u64 << 40}));
            }
        }
    }
    Value::Array(items)
}

pub(super) fn next_id(cluster: &Cluster, call: &Call) -> ApiResult {
    if let Some(vmid) = call.text("vmid") {
        let id: u32 = vmid.parse().unwrap_or(0);
        if cluster.guests.contains_key(&id) {
            return Err(PveError::param("vmid", format!("VM {id} already exists")));
        }
        return Ok(json!(vmid));
    }
    Ok(json!(cluster.next_id().to_string()))
}
