//! `--apply PATH`: the manifests in a file or directory, applied as `kubectl apply
//! --server-side` would (namespaces and CRDs first, so one directory can hold them all).

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use std::path::Path;

const FIELD_MANAGER: &str = "phoenix-apply";

/// Every YAML document under `path` (`*.yaml`/`*.yml`, sorted by name).
pub fn read_manifests(path: &Path) -> anyhow::Result<Vec<DynamicObject>> {
    let files = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_json::to_value(
                <serde_yaml_ng::Value as serde::Deserialize>::deserialize(document)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
            )?;
            if value.is_null() {
                continue;
            }
            let object: DynamicObject = serde_json::from_value(value)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            objects.push(object);
        }
    }
    Ok(objects)
}

fn rank(object: &DynamicObject) -> u8 {
    match object.types.as_ref().map(|t| t.kind.as_str()) {
        Some("Namespace") => 0,
        Some("CustomResourceDefinition") => 1,
        Some("Secret" | "ConfigMap") => 2,
        _ => 3,
    }
}

/// Applies `objects` server-side; returns how many were applied.
pub async fn apply(
    client: &kube::Client,
    mut objects: Vec<DynamicObject>,
) -> anyhow::Result<usize> {
    objects.sort_by_key(rank);
    let discovery = Discovery::new(client.clone()).run().await?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for object in &objects {
        let types = object
            .types
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("a manifest without apiVersion/kind"))?;
        let name = object
            .metadata
            .name
            .clone()
            .ok_or_else(|| anyhow::anyhow!("a {} without a name", types.kind))?;
        let gvk = kube::api::GroupVersionKind::try_from(types)?;
        let (resource, capabilities) = discovery
            .resolve_gvk(&gvk)
            .ok_or_else(|| anyhow::anyhow!("the server does not serve {}", types.kind))?;
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                object.metadata.namespace.as_deref().unwrap_or("default"),
                &resource,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(&name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| anyhow::anyhow!("{} {name}: {e}", types.kind))?;
    }
    Ok(objects.len())
}

/// Installs (or updates) Phoenix's CRDs.
pub async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (_, crd) in phoenix_crds::all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd)).await?;
    }
    Ok(())
}
