//! Cloud-init user data from a ConfigMap, handed to PVE as a snippet (`cicustom:
//! user=STORAGE:snippets/NAME`). The file name carries the content's hash: a changed
//! user data is a changed `cicustom`, so PVE gives the VM a new instance-id and cloud-init
//! runs it again at the next boot (an edited file under the same name would be ignored).
//! PVE's API cannot upload snippets: the file is written on the node (over SSH, or
//! directly when Phoenix runs there), then PVE must list it.

use crate::conditions::reason;
use crate::context::Context;
use crate::error::Error;
use crate::guest::plan::Step;
use crate::pve::Connection;
use phoenix_crds::VmGuestSpec;
use serde_json::Value;

/// The snippet volume for `user_data`: (storage, file name).
pub fn volume(spec: &VmGuestSpec, user_data: &str) -> Option<(String, String)> {
    let ci = spec.cloud_init.as_ref()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, user_data.as_bytes());
    let hash: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some((
        ci.snippet_storage.clone(),
        format!("phoenix-{}-user-{hash}.yaml", spec.vmid),
    ))
}

/// Whether `steps` set `cicustom` (a create, or a configure that changes it).
pub fn wanted_by(steps: &[Step]) -> bool {
    steps.iter().any(|s| match s {
        Step::Create { params } => params.contains_key("cicustom"),
        Step::Configure { changes } => changes.iter().any(|c| c.key == "cicustom"),
        _ => false,
    })
}

/// Puts the user data on the snippet storage of `node`, unless PVE lists it already.
pub async fn ensure(
    spec: &VmGuestSpec,
    ctx: &Context,
    pve: &Connection,
    node: &str,
    user_data: &str,
) -> Result<(), Error> {
    let Some((storage, name)) = volume(spec, user_data) else {
        return Ok(());
    };
    let volid = format!("{storage}:snippets/{name}");
    let listed = |volumes: &[String]| volumes.contains(&volid);
    if listed(
        &pve.client
            .storage_content(node, &storage, "snippets")
            .await?,
    ) {
        return Ok(());
    }
    let config = pve.client.storage_config(&storage).await?;
    let path = directory(&storage, &config)?;
    let file = format!("{path}/snippets/{name}");
    // User data may hold keys and passwords: root-only.
    let (kube, redirect) = (&ctx.kube, ctx.pve.redirect());
    crate::node_exec::write_file(kube, pve, redirect, node, &file, user_data, 0o600).await?;
    if !listed(
        &pve.client
            .storage_content(node, &storage, "snippets")
            .await?,
    ) {
        return Err(Error::spec(
            reason::SNIPPET_NOT_LISTED,
            format!("wrote {file} on {node}, but PVE does not list {volid}"),
        ));
    }
    Ok(())
}

/// The directory of a storage that can hold snippets.
fn directory(storage: &str, config: &Value) -> Result<String, Error> {
    let content = config["content"].as_str().unwrap_or("");
    if !content.split(',').any(|c| c == "snippets") {
        return Err(Error::spec(
            reason::SNIPPET_STORAGE_UNSUPPORTED,
            format!(
                "storage {storage} does not hold snippets (content: {content}); add it (pvesm set {storage} --content {content},snippets) or set cloudInit.snippetStorage"
            ),
        ));
    }
    config["path"]
        .as_str()
        .map(|p| p.trim_end_matches('/').to_owned())
        .ok_or_else(|| {
            Error::spec(
                reason::SNIPPET_STORAGE_UNSUPPORTED,
                format!("storage {storage} is not a directory storage; snippets need one"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_name_follows_the_content() {
        let spec = crate::vm::example("vm-1001.yaml");
        let (storage, a) = volume(&spec, "#cloud-config\n").unwrap();
        let (_, b) = volume(&spec, "#cloud-config\npackages: [jq]\n").unwrap();
        assert_eq!(storage, "local");
        assert!(a.starts_with("phoenix-1001-user-") && a.ends_with(".yaml"));
        assert_ne!(a, b);
    }

    #[test]
    fn only_directory_storages_with_snippets_content_will_do() {
        let ok = json!({"content": "iso,snippets", "path": "/var/lib/vz/"});
        assert_eq!(directory("local", &ok).unwrap(), "/var/lib/vz");
        let no = json!({"content": "images,rootdir"});
        assert_eq!(
            directory("fastData", &no).unwrap_err().category(),
            "SnippetStorageUnsupported"
        );
    }
}
