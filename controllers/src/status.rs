//! Status written once per pass, whole, by server-side apply under the controller's own
//! field manager (`phoenix-<kind>`). Applying the whole status means a field the pass left
//! out is removed (its manager no longer applies it), so no diff has to null it; and the
//! write is skipped when the status computed equals the one read.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The field manager of `kind`'s controller: `phoenix-lxcguest`, `phoenix-certificate`...
pub fn manager(kind: &str) -> String {
    format!("phoenix-{}", kind.to_ascii_lowercase())
}

/// Applies `status` when it differs from `previous`; says whether it wrote.
pub async fn write<K, S>(
    api: &Api<K>,
    object: &K,
    previous: Option<&S>,
    status: &S,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if previous == Some(status) {
        return Ok(false);
    }
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "name": object.name_any() },
        "status": status,
    });
    // Forced: a status field written by an older version under another manager is taken
    // over rather than refused.
    let params = PatchParams::apply(&manager(&K::kind(&()))).force();
    api.patch_status(&object.name_any(), &params, &Patch::Apply(&body))
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn managers_are_named_for_their_kind() {
        assert_eq!(super::manager("LxcGuest"), "phoenix-lxcguest");
        assert_eq!(super::manager("ProxmoxCluster"), "phoenix-proxmoxcluster");
    }
}
