//! The server's own controllers, driven by committed changes: namespace termination,
//! CRD instance cleanup, garbage collection by ownerReferences, event expiry and log
//! compaction.

use crate::handlers::{Deleted, delete_object};
use crate::objects;
use crate::resources::{Builtin, ResourceType};
use crate::state::State;
use crate::store::{EventType, Write};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Events older than this are deleted (kube-apiserver's default `--event-ttl`).
const EVENT_TTL_SECONDS: i64 = 3600;
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

pub async fn run(state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    let Ok((_, mut changes)) = state.store.watch_from(state.store.revision()) else {
        return;
    };
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING_EVERY);
    sweep(&state).await;
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => {
                    let relevant = change.kind == EventType::Deleted
                        || (change.key.starts_with("core/namespaces/") || change.key.starts_with("apiextensions.k8s.io/"))
                            && objects::is_deleting(&change.object());
                    if relevant {
                        sweep(&state).await;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => sweep(&state).await,
                Err(_) => return,
            },
            _ = housekeeping.tick() => {
                expire_events(&state).await;
                if let Err(e) = state.store.compact().await {
                    tracing::warn!(error = %e, "compaction failed");
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

/// Finishes terminating namespaces and deleted CRDs, and collects orphans.
pub async fn sweep(state: &State) {
    let types = state.registry.all();
    let (_, namespaces) = state.store.list("core/namespaces/");
    for ns in namespaces
        .iter()
        .filter(|n| objects::is_deleting(&n.value()))
    {
        let name = objects::name_of(&ns.value()).to_owned();
        let mut remaining = 0;
        for rt in types
            .iter()
            .filter(|t| t.namespaced && t.builtin != Some(Builtin::EventsV1))
        {
            remaining += delete_all(state, rt, &rt.prefix(Some(&name))).await;
        }
        if remaining == 0 {
            finish(state, &ns.value(), "kubernetes", "core/namespaces//").await;
        }
    }
    let (_, crds) = state
        .store
        .list("apiextensions.k8s.io/customresourcedefinitions/");
    for crd in crds.iter().filter(|c| objects::is_deleting(&c.value())) {
        let value = crd.value();
        let group = value
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = value
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let remaining = match types
            .iter()
            .find(|t| t.builtin.is_none() && t.group == group && t.plural == plural)
        {
            Some(rt) => delete_all(state, rt, &format!("{}/", rt.storage)).await,
            None => 0,
        };
        if remaining == 0 {
            finish(
                state,
                &value,
                "customresourcecleanup.apiextensions.k8s.io",
                "apiextensions.k8s.io/customresourcedefinitions//",
            )
            .await;
        }
    }
    collect_garbage(state, &types).await;
}

/// Deletes every object under `prefix`; returns how many still exist (finalizers pending).
async fn delete_all(state: &State, rt: &ResourceType, prefix: &str) -> usize {
    let (_, items) = state.store.list(prefix);
    let mut remaining = 0;
    for stored in &items {
        match delete_object(state, rt, stored, false).await {
            Ok(Deleted::Gone(_)) => {}
            _ => remaining += 1,
        }
    }
    remaining
}

/// Removes `finalizer` from an object being deleted, which then goes away.
async fn finish(state: &State, object: &Value, finalizer: &str, key_prefix: &str) {
    let name = objects::name_of(object);
    let key = format!("{key_prefix}{name}");
    let Some(stored) = state.store.get(&key) else {
        return;
    };
    let left: Vec<String> = objects::finalizers(&stored.value())
        .into_iter()
        .filter(|f| f != finalizer)
        .collect();
    let result = if left.is_empty() {
        state
            .store
            .write(Write::Delete {
                key,
                expect: Some(stored.rev),
            })
            .await
    } else {
        let mut value = stored.value();
        objects::meta_mut(&mut value).insert("finalizers".into(), serde_json::json!(left));
        state
            .store
            .write(Write::Put {
                key,
                value,
                expect: Some(stored.rev),
            })
            .await
    };
    if let Err(e) = result {
        tracing::debug!(name, error = %e, "finishing deletion will be retried");
    }
}

/// Background garbage collection: objects whose every owner is gone are deleted.
async fn collect_garbage(state: &State, types: &[Arc<ResourceType>]) {
    let (_, all) = state.store.list("");
    let parsed: Vec<(Arc<crate::store::Stored>, Value)> = all
        .into_iter()
        .map(|s| {
            let v = s.value();
            (s, v)
        })
        .collect();
    let uids: HashSet<&str> = parsed
        .iter()
        .filter_map(|(_, v)| objects::meta_str(v, "uid"))
        .collect();
    let orphans: Vec<_> = parsed
        .iter()
        .filter(|(_, v)| {
            let owners = v
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array);
            owners.is_some_and(|o| {
                !o.is_empty()
                    && o.iter().all(|r| {
                        r.get("uid")
                            .and_then(Value::as_str)
                            .is_none_or(|u| !uids.contains(u))
                    })
            })
        })
        .collect();
    for (stored, value) in orphans {
        let kind = value["kind"].as_str().unwrap_or("").to_owned();
        let group = match value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .rsplit_once('/')
        {
            Some((g, _)) => g.to_owned(),
            None => String::new(),
        };
        if let Some(rt) = types.iter().find(|t| t.group == group && t.kind == kind) {
            let _ = delete_object(state, rt, stored, false).await;
        }
    }
}

async fn expire_events(state: &State) {
    let Some(rt) = state.registry.find("", "v1", "events") else {
        return;
    };
    let now = jiff::Timestamp::now().as_second();
    let (_, events) = state.store.list("core/events/");
    for stored in events {
        let value = stored.value();
        let seen = ["lastTimestamp", "eventTime"]
            .iter()
            .filter_map(|f| value.get(*f).and_then(Value::as_str))
            .chain(objects::meta_str(&value, "creationTimestamp"))
            .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second())
            .max()
            .unwrap_or(now);
        if now - seen > EVENT_TTL_SECONDS {
            let _ = delete_object(state, &rt, &stored, false).await;
        }
    }
}
