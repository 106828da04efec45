//! Resource pools: `/pools`.

use super::{ApiResult, Call, PveError, guests};
use crate::cluster::Cluster;
use serde_json::{Value, json};

pub(super) fn list(cluster: &Cluster) -> Value {
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
                        let mut m = guests::summary(g);
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

pub(super) fn create(cluster: &mut Cluster, call: &Call) -> ApiResult {
    let id = call.text("poolid").unwrap_or_default();
    if cluster.pools.contains_key(&id) {
        return Err(PveError::server(format!("pool '{id}' already exists")));
    }
    cluster
        .pools
        .insert(id, call.text("comment").unwrap_or_default());
    Ok(Value::Null)
}
