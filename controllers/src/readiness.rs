//! Whether a Phoenix object of any kind is Ready, read from the API server.

use crate::dependencies::Node;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use phoenix_crds::common::PhoenixKind;

pub fn resource(kind: PhoenixKind) -> ApiResource {
    let (name, plural) = match kind {
        PhoenixKind::LxcGuest => ("LxcGuest", "lxcguests"),
        PhoenixKind::VmGuest => ("VmGuest", "vmguests"),
        PhoenixKind::DockerStack => ("DockerStack", "dockerstacks"),
        PhoenixKind::TraefikService => ("TraefikService", "traefikservices"),
        PhoenixKind::Certificate => ("Certificate", "certificates"),
    };
    let gvk = GroupVersionKind::gvk("phoenix.thinkheads.ai", "v1alpha1", name);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// Ready=True in its status conditions; false when it does not exist.
pub async fn is_ready(
    kube: &kube::Client,
    (kind, namespace, name): &Node,
) -> Result<bool, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(kube.clone(), namespace, &resource(*kind));
    let Some(object) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let conditions = object.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(conditions
        .iter()
        .any(|c| c["type"] == crate::conditions::READY && c["status"] == "True"))
}

/// `dependsOn` as a gate: `Some("waiting for … to be Ready")` while any named object is not.
pub async fn unready_dependencies(
    kube: &kube::Client,
    depends_on: &[phoenix_crds::common::DependencyRef],
    namespace: &str,
) -> Result<Option<String>, kube::Error> {
    let mut waiting = Vec::new();
    for dep in depends_on {
        let node = crate::dependencies::node_of(dep, namespace);
        if !is_ready(kube, &node).await? {
            waiting.push(format!("{:?} {}/{}", node.0, node.1, node.2));
        }
    }
    Ok((!waiting.is_empty()).then(|| format!("waiting for {} to be Ready", waiting.join(", "))))
}
