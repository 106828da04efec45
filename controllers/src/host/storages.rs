//! PVE storages, pure: the parameters each spec storage should have in `storage.cfg`, and
//! what to create or update from what `GET /storage` lists. Options PVE fixes at creation
//! (type, pool, path, server, export) are never changed: a difference there is reported.

use phoenix_crds::host_storage::{PveStorage, StorageType};
use serde_json::Value;
use std::collections::BTreeSet;

pub type Params = Vec<(String, String)>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageChange {
    Create { id: String, params: Params },
    Update { id: String, params: Params },
}

impl std::fmt::Display for StorageChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (verb, id, params) = match self {
            StorageChange::Create { id, params } => ("added", id, params),
            StorageChange::Update { id, params } => ("updated", id, params),
        };
        let keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "storage {id} {verb} ({})", keys.join(", "))
    }
}

/// The storage's fixed option for its type, as `(key, value)`: what identifies its place.
fn place(s: &PveStorage) -> Result<Vec<(&'static str, &str)>, String> {
    Ok(match s.type_ {
        StorageType::Zfspool => vec![need(s, "pool", &s.pool)?],
        StorageType::Dir => vec![need(s, "path", &s.path)?],
        StorageType::Nfs => vec![need(s, "server", &s.server)?, need(s, "export", &s.export)?],
    })
}

fn need<'a>(
    s: &PveStorage,
    key: &'static str,
    value: &'a Option<String>,
) -> Result<(&'static str, &'a str), String> {
    value.as_deref().map(|v| (key, v)).ok_or_else(|| {
        format!(
            "storage {}: a {} storage needs `{key}`",
            s.id,
            s.type_.as_str()
        )
    })
}

fn content(s: &PveStorage) -> String {
    let set: BTreeSet<&str> = s.content.iter().map(|c| c.as_str()).collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

/// Checks what the schema cannot (the options each type needs), before anything is done.
pub fn validate(storages: &[PveStorage]) -> Result<(), String> {
    for s in storages {
        place(s)?;
    }
    Ok(())
}

/// What makes the live `storage.cfg` hold `spec` on `node`: the node-local types are
/// limited to the node; NFS is shared. `Err` names a fixed option that differs.
pub fn plan(spec: &[PveStorage], live: &[Value], node: &str) -> Result<Vec<StorageChange>, String> {
    let mut changes = Vec::new();
    for s in spec {
        let fixed = place(s)?;
        let found = live.iter().find(|l| l["storage"].as_str() == Some(&s.id));
        let Some(found) = found else {
            let mut params: Params = vec![
                ("storage".into(), s.id.clone()),
                ("type".into(), s.type_.as_str().into()),
                ("content".into(), content(s)),
            ];
            params.extend(
                fixed
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            if s.type_ != StorageType::Nfs {
                params.push(("nodes".into(), node.into()));
            }
            changes.push(StorageChange::Create {
                id: s.id.clone(),
                params,
            });
            continue;
        };
        let text = |key: &str| found[key].as_str().unwrap_or_default().to_owned();
        if text("type") != s.type_.as_str() {
            return Err(format!(
                "storage {} is of type {} in PVE, the spec says {}; a storage's type cannot change",
                s.id,
                text("type"),
                s.type_.as_str()
            ));
        }
        if let Some((key, value)) = fixed.iter().find(|(k, v)| text(k) != *v) {
            return Err(format!(
                "storage {} has {key} {} in PVE, the spec says {value}; PVE fixes {key} when a storage is added",
                s.id,
                text(key)
            ));
        }
        let mut params = Params::new();
        let live_content: BTreeSet<&str> = found["content"]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .filter(|c| !c.is_empty())
            .collect();
        let wanted = content(s);
        if live_content.into_iter().collect::<Vec<_>>().join(",") != wanted {
            params.push(("content".into(), wanted));
        }
        let nodes = text("nodes");
        let limited: Vec<&str> = nodes.split(',').filter(|n| !n.is_empty()).collect();
        if !limited.is_empty() && !limited.contains(&node) {
            params.push(("nodes".into(), format!("{nodes},{node}")));
        }
        if !params.is_empty() {
            changes.push(StorageChange::Update {
                id: s.id.clone(),
                params,
            });
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_crds::host_storage::StorageContent;
    use serde_json::json;

    fn zfs(id: &str, pool: &str, content: &[StorageContent]) -> PveStorage {
        PveStorage {
            id: id.into(),
            type_: StorageType::Zfspool,
            content: content.to_vec(),
            pool: Some(pool.into()),
            path: None,
            server: None,
            export: None,
        }
    }

    #[test]
    fn a_missing_storage_is_added_for_this_node_only() {
        let spec = [zfs(
            "vms",
            "fastData/VMs",
            &[StorageContent::Rootdir, StorageContent::Images],
        )];
        let changes = plan(&spec, &[], "phoenix").unwrap();
        let StorageChange::Create { params, .. } = &changes[0] else {
            panic!("created");
        };
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("content"), Some("images,rootdir"));
        assert_eq!(get("pool"), Some("fastData/VMs"));
        assert_eq!(get("nodes"), Some("phoenix"));
    }

    #[test]
    fn content_and_nodes_are_updated_fixed_options_are_refused() {
        let spec = [zfs(
            "vms",
            "fastData/VMs",
            &[StorageContent::Images, StorageContent::Rootdir],
        )];
        let same = json!([{"storage": "vms", "type": "zfspool", "pool": "fastData/VMs",
                           "content": "rootdir,images"}]);
        assert!(
            plan(&spec, same.as_array().unwrap(), "phoenix")
                .unwrap()
                .is_empty()
        );
        let narrower = json!([{"storage": "vms", "type": "zfspool", "pool": "fastData/VMs",
                               "content": "images", "nodes": "pve2"}]);
        let changes = plan(&spec, narrower.as_array().unwrap(), "phoenix").unwrap();
        assert_eq!(
            changes,
            vec![StorageChange::Update {
                id: "vms".into(),
                params: vec![
                    ("content".into(), "images,rootdir".into()),
                    ("nodes".into(), "pve2,phoenix".into())
                ]
            }]
        );
        let moved =
            json!([{"storage": "vms", "type": "zfspool", "pool": "slowData", "content": "images"}]);
        let error = plan(&spec, moved.as_array().unwrap(), "phoenix").unwrap_err();
        assert!(error.contains("pool slowData"), "{error}");
        let retyped = json!([{"storage": "vms", "type": "dir", "path": "/x", "content": "images"}]);
        assert!(plan(&spec, retyped.as_array().unwrap(), "phoenix").is_err());
    }

    #[test]
    fn each_type_needs_its_place() {
        let mut nfs = zfs("share", "x", &[StorageContent::Iso]);
        nfs.type_ = StorageType::Nfs;
        nfs.server = Some("10.0.0.13".into());
        let error = validate(&[nfs]).unwrap_err();
        assert!(error.contains("needs `export`"), "{error}");
    }
}
