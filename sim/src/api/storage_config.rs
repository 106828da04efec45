//! The cluster's storage configuration: `GET|POST /storage`, `GET|PUT|DELETE
//! /storage/{storage}` (pve-storage's `API2/Storage/Config.pm`), on the model of
//! [`crate::storage_cfg`].

use super::{ApiResult, Call, PveError, split_list};
use crate::cluster::Cluster;
use serde_json::{Map, Value, json};

/// `GET /storage [type=]`: every storage's configuration (the caller's view is filtered
/// by the router).
pub(super) fn list(cluster: &Cluster, call: &Call) -> Value {
    let kind = call.text("type");
    let digest = cluster.storage_digest();
    Value::Array(
        cluster
            .storages
            .iter()
            .filter(|s| kind.as_ref().is_none_or(|k| *k == s.kind))
            .map(|s| s.config_json(&digest))
            .collect(),
    )
}

/// `GET /storage/{storage}`.
pub(super) fn read(cluster: &Cluster, call: &Call) -> ApiResult {
    let id = call.text("storage").unwrap_or_default();
    let s = cluster
        .storage(&id)
        .ok_or_else(|| PveError::server(format!("storage '{id}' does not exist")))?;
    Ok(s.config_json(&cluster.storage_digest()))
}

/// The call's parameters without those the handler takes out first.
fn options(call: &Call, taken: &[&str]) -> Map<String, Value> {
    call.params
        .iter()
        .filter(|(k, _)| !taken.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `POST /storage`.
pub(super) fn create(cluster: &mut Cluster, call: &Call) -> ApiResult {
    let id = call.text("storage").unwrap_or_default();
    let kind = call.text("type").unwrap_or_default();
    cluster
        .create_storage(&id, &kind, &options(call, &["storage", "type"]))
        .map_err(PveError::server)?;
    Ok(json!({"storage": id, "type": kind}))
}

/// `PUT /storage/{storage}`.
pub(super) fn update(cluster: &mut Cluster, call: &Call) -> ApiResult {
    let id = call.text("storage").unwrap_or_default();
    let delete = split_list(&call.text("delete").unwrap_or_default());
    let params = options(call, &["storage", "digest", "delete"]);
    cluster
        .update_storage(&id, &params, call.text("digest").as_deref(), &delete)
        .map_err(PveError::server)?;
    let kind = cluster.storage(&id).map(|s| s.kind.clone());
    Ok(json!({"storage": id, "type": kind}))
}

/// `DELETE /storage/{storage}`.
pub(super) fn delete(cluster: &mut Cluster, call: &Call) -> ApiResult {
    let id = call.text("storage").unwrap_or_default();
    cluster.delete_storage(&id).map_err(PveError::server)?;
    Ok(Value::Null)
}
