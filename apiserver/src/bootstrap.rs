//! What exists on a new server, as on any Kubernetes cluster: the system namespaces.

use crate::objects;
use crate::state::State;
use crate::store::Write;
use serde_json::json;

pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

pub async fn ensure_system_namespaces(state: &State) {
    for name in SYSTEM_NAMESPACES {
        let key = format!("core/namespaces//{name}");
        if state.store.get(&key).is_some() {
            continue;
        }
        let value = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": objects::now(),
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        if let Err(e) = state
            .store
            .write(Write::Put {
                key,
                value,
                expect: Some(0),
            })
            .await
        {
            tracing::error!(namespace = name, error = %e, "cannot create system namespace");
        }
    }
}
