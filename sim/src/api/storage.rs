//! Storages and their content: a node's `/storage`, its content,
//! `download-url`, and the appliance templates of `/aplinfo`.

use super::{ApiResult, Call, PveError};
use crate::cluster::{APPLIANCES, Cluster, Effect, Volume};
use crate::state::Sim;
use serde_json::{Value, json};

/// A node's storages: those configured for it, a disabled one neither enabled nor active.
pub(super) fn list(cluster: &Cluster, node: &str, content: Option<&str>) -> Value {
    Value::Array(
        cluster
            .storages
            .iter()
            .filter(|s| s.on_node(node))
            .filter(|s| content.is_none_or(|c| s.content.iter().any(|x| x == c)))
            .map(|s| json!({"storage": s.id, "type": s.kind, "content": s.content.join(","), "active": s.enabled() as i32, "enabled": s.enabled() as i32,
                           "shared": s.shared as i32, "total": 1u64 << 40, "used": 1u64 << 30, "avail": (1u64 << 40) - (1 << 30), "used_fraction": 0.001}))
            .collect(),
    )
}

pub(super) fn content(cluster: &Cluster, call: &Call) -> ApiResult {
    let storage = call.text("storage").unwrap_or_default();
    if cluster.storage(&storage).is_none() {
        return Err(PveError::server(format!(
            "storage '{storage}' does not exist"
        )));
    }
    let content = call.text("content");
    let node = call.node();
    Ok(Value::Array(
        cluster
            .volumes
            .iter()
            .filter(|v| v.volid.starts_with(&format!("{storage}:")) && v.node == node && content.as_ref().is_none_or(|c| *c == v.content))
            .map(|v| json!({"volid": v.volid, "content": v.content, "format": v.format, "size": v.size, "ctime": 1_700_000_000}))
            .collect(),
    ))
}

pub(super) fn download(sim: &mut Sim, call: &Call, filename: String) -> ApiResult {
    let storage = call.text("storage").unwrap_or_default();
    let s = sim
        .cluster
        .storage(&storage)
        .ok_or_else(|| PveError::server(format!("storage '{storage}' does not exist")))?;
    let content = call.text("content").unwrap_or_else(|| "vztmpl".into());
    if !s.content.contains(&content) {
        return Err(PveError::server(format!(
            "storage '{storage}' does not support templates"
        )));
    }
    let node = call.node();
    let volume = Volume {
        volid: format!("{storage}:{content}/{filename}"),
        content,
        format: "raw".into(),
        size: 500_000_000,
        node: node.clone(),
    };
    Ok(json!(sim.task(
        &node,
        "download",
        "",
        &call.user,
        Effect::AddVolume(volume)
    )))
}

pub(super) fn appliances() -> Value {
    Value::Array(APPLIANCES.iter().map(|t| json!({"template": t, "package": t.split('_').next(), "type": "lxc", "section": "system", "os": t.split('-').next(), "headline": t})).collect())
}

pub(super) fn download_appliance(sim: &mut Sim, call: &Call) -> ApiResult {
    let template = call.text("template").unwrap_or_default();
    if !APPLIANCES.contains(&template.as_str()) {
        return Err(PveError::param("template", "no such template"));
    }
    download(sim, call, template)
}
