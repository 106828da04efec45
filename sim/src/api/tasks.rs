//! A node's tasks: `/tasks`, a task's status and its log.

use super::{ApiResult, Call, PveError};
use crate::cluster::{Cluster, Task, TaskState};
use serde_json::{Value, json};

pub(super) fn list(cluster: &Cluster, node: &str) -> Value {
    Value::Array(
        cluster
            .tasks
            .values()
            .filter(|t| t.node == node)
            .map(|t| {
                let status = match &t.state {
                    TaskState::Running => "RUNNING".to_string(),
                    TaskState::Stopped { exitstatus } => exitstatus.clone(),
                };
                let mut v = json!({"upid": t.upid, "node": t.node, "type": t.kind, "id": t.id, "user": t.user, "starttime": t.starttime,
                                   "status": status, "pid": 4096, "pstart": 33_554_432});
                if matches!(t.state, TaskState::Stopped { .. }) {
                    v["endtime"] = json!((t.ends_at_ms / 1000) as u64);
                }
                v
            })
            .collect(),
    )
}

fn find<'a>(cluster: &'a Cluster, call: &Call) -> Result<&'a Task, PveError> {
    let upid = call.text("upid").unwrap_or_default();
    if !upid.starts_with("UPID:") {
        return Err(PveError::param("upid", "unable to parse worker upid"));
    }
    cluster
        .tasks
        .get(&upid)
        .filter(|t| t.node == call.node())
        .ok_or_else(|| PveError::param("upid", "no such task"))
}

pub(super) fn status(cluster: &Cluster, call: &Call) -> ApiResult {
    let t = find(cluster, call)?;
    let mut v = json!({"upid": t.upid, "node": t.node, "pid": 4096, "pstart": 33_554_432, "starttime": t.starttime,
                       "type": t.kind, "id": t.id, "user": t.user.split('!').next()});
    if let Some((_, token)) = t.user.split_once('!') {
        v["tokenid"] = json!(token);
    }
    match &t.state {
        TaskState::Running => v["status"] = json!("running"),
        TaskState::Stopped { exitstatus } => {
            v["status"] = json!("stopped");
            v["exitstatus"] = json!(exitstatus);
        }
    }
    Ok(v)
}

pub(super) fn log(cluster: &Cluster, call: &Call) -> ApiResult {
    let t = find(cluster, call)?;
    Ok(Value::Array(
        t.log
            .iter()
            .enumerate()
            .map(|(i, l)| json!({"n": i + 1, "t": l}))
            .collect(),
    ))
}
