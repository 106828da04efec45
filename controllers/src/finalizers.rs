//! The finalizer that keeps an object until its guest is dealt with (deleted or released).
//! Not kube-runtime's `finalizer()` helper: that removes the finalizer as soon as one
//! cleanup pass returns, while destroying a guest takes several passes (stop, then destroy,
//! each a PVE task awaited across reconciles).

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

pub const GUEST: &str = "phoenix.thinkheads.ai/guest";

/// Adds `name` to the object's finalizers, guarded by its resourceVersion.
pub async fn add<K>(api: &Api<K>, object: &K, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if object.finalizers().iter().any(|f| f == name) {
        return Ok(());
    }
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(name.to_owned());
    set(api, object, finalizers).await
}

/// Removes `name`, guarded by its resourceVersion.
pub async fn remove<K>(api: &Api<K>, object: &K, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let finalizers = object
        .finalizers()
        .iter()
        .filter(|f| *f != name)
        .cloned()
        .collect();
    set(api, object, finalizers).await
}

/// Writes the finalizer list; a concurrent change makes it fail (409) rather than lose one.
async fn set<K>(api: &Api<K>, object: &K, finalizers: Vec<String>) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
}
