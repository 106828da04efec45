//! The cluster's storage configuration as PVE keeps it in `storage.cfg`: each storage
//! type's plugin (the content types it takes, its fixed and optional options) and the
//! checks of `PVE::SectionConfig::check_config`, `decode_value` and
//! `PVE::API2::Storage::Config` (create, update, delete, `create_or_update`), with their
//! messages. The simulated types are `dir`, `zfspool` and `nfs`.

use crate::cluster::{Cluster, Storage};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// A storage type: the content it supports (and takes when none is given), its options
/// that are required and fixed once made, and the optional ones.
struct Plugin {
    kind: &'static str,
    content: &'static [&'static str],
    default_content: &'static [&'static str],
    fixed: &'static [&'static str],
    optional: &'static [&'static str],
}

const PLUGINS: &[Plugin] = &[
    Plugin {
        kind: "dir",
        content: &[
            "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "none", "import",
        ],
        default_content: &["images", "rootdir"],
        fixed: &["path"],
        optional: &[
            "content-dirs",
            "nodes",
            "shared",
            "disable",
            "maxfiles",
            "prune-backups",
            "max-protected-backups",
            "content",
            "format",
            "mkdir",
            "create-base-path",
            "create-subdirs",
            "is_mountpoint",
            "bwlimit",
            "preallocation",
        ],
    },
    Plugin {
        kind: "zfspool",
        content: &["images", "rootdir"],
        default_content: &["images", "rootdir"],
        fixed: &["pool"],
        optional: &[
            "blocksize",
            "sparse",
            "nodes",
            "disable",
            "content",
            "bwlimit",
            "mountpoint",
        ],
    },
    Plugin {
        kind: "nfs",
        content: &[
            "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
        ],
        default_content: &["images"],
        fixed: &["path", "server", "export"],
        optional: &[
            "content-dirs",
            "nodes",
            "disable",
            "maxfiles",
            "prune-backups",
            "max-protected-backups",
            "options",
            "content",
            "format",
            "mkdir",
            "create-base-path",
            "create-subdirs",
            "bwlimit",
            "preallocation",
        ],
    },
];

/// Options PVE stores as booleans (`1`/`0`) and lists as numbers.
const BOOLEANS: &[&str] = &[
    "disable",
    "shared",
    "sparse",
    "mkdir",
    "create-base-path",
    "create-subdirs",
];

fn plugin(kind: &str) -> Result<&'static Plugin, String> {
    PLUGINS
        .iter()
        .find(|p| p.kind == kind)
        .ok_or_else(|| format!("unknown section type '{kind}'"))
}

/// A parameter's text as PVE's section config stores it.
fn text(key: &str, value: &Value) -> String {
    let raw = match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => (*b as i32).to_string(),
        other => other.to_string(),
    };
    match BOOLEANS.contains(&key) {
        true => (matches!(raw.as_str(), "1" | "true" | "yes" | "on") as i32).to_string(),
        false => raw,
    }
}

/// `decode_value` of `content`: types the plugin does not support are dropped (PVE warns),
/// and nothing left is refused unless the plugin takes `none`.
fn decode_content(plugin: &Plugin, value: &str) -> Result<Vec<String>, String> {
    let mut content: Vec<String> = Vec::new();
    for c in crate::api::split_list(value) {
        if plugin.content.contains(&c.as_str()) && !content.contains(&c) {
            content.push(c);
        }
    }
    if content.iter().any(|c| c == "none") && content.len() > 1 {
        return Err("unable to combine 'none' with other content types".into());
    }
    if content.is_empty() && !plugin.content.contains(&"none") {
        return Err("storage does not support content type 'none'".into());
    }
    Ok(content)
}

/// What `check_config` makes of the parameters: the content (when given) and the other
/// options.
type Checked = (Option<Vec<String>>, BTreeMap<String, String>);

/// `SectionConfig::check_config` (with `NFSPlugin`'s default path on create).
fn check_config(
    plugin: &Plugin,
    id: &str,
    params: &Map<String, Value>,
    create: bool,
) -> Result<Checked, String> {
    let mut options = BTreeMap::new();
    let mut content = None;
    for (key, value) in params {
        if !create && plugin.fixed.contains(&key.as_str()) {
            return Err(format!("can't change value of fixed parameter '{key}'"));
        }
        if !plugin.fixed.contains(&key.as_str()) && !plugin.optional.contains(&key.as_str()) {
            return Err(format!("unexpected property '{key}'"));
        }
        match key.as_str() {
            "content" => content = Some(decode_content(plugin, &text(key, value))?),
            _ => {
                options.insert(key.clone(), text(key, value));
            }
        }
    }
    if create && plugin.kind == "nfs" && !options.contains_key("path") {
        options.insert("path".into(), format!("/mnt/pve/{id}"));
    }
    if create && let Some(missing) = plugin.fixed.iter().find(|k| !options.contains_key(**k)) {
        return Err(format!("missing value for required option '{missing}'"));
    }
    Ok((content, options))
}

impl Storage {
    /// Whether the storage is configured for `node` (no `nodes` is every node).
    pub fn on_node(&self, node: &str) -> bool {
        self.options
            .get("nodes")
            .is_none_or(|nodes| crate::api::split_list(nodes).iter().any(|n| n == node))
    }

    pub fn enabled(&self) -> bool {
        self.options.get("disable").is_none_or(|d| d != "1")
    }

    /// Its section of `storage.cfg`.
    fn section(&self) -> String {
        let mut text = format!(
            "{}: {}\n\tcontent {}\n",
            self.kind,
            self.id,
            self.content.join(",")
        );
        if self.shared && self.kind != "nfs" {
            text.push_str("\tshared 1\n");
        }
        for (k, v) in &self.options {
            text.push_str(&format!("\t{k} {v}\n"));
        }
        text
    }

    /// As `GET /storage` and `GET /storage/{storage}` answer (PVE's `api_storage_config`).
    pub fn config_json(&self, digest: &str) -> Value {
        let mut v = json!({"storage": self.id, "type": self.kind, "content": self.content.join(","),
                           "digest": digest});
        if self.shared {
            v["shared"] = json!(1);
        }
        for (k, value) in &self.options {
            v[k] = match BOOLEANS.contains(&k.as_str()) {
                true => json!(value.parse::<i64>().unwrap_or(0)),
                false => json!(value),
            };
        }
        v
    }
}

impl Cluster {
    /// The SHA-1 of `storage.cfg` as written from the storages (`digest`).
    pub fn storage_digest(&self) -> String {
        let text: String = self.storages.iter().map(|s| s.section() + "\n").collect();
        crate::cluster::sha1_hex(&text)
    }

    fn storage_config(&self, id: &str) -> Result<&Storage, String> {
        self.storage(id)
            .ok_or_else(|| format!("storage '{id}' does not exist"))
    }

    /// `POST /storage`: `params` without `storage` and `type`.
    pub fn create_storage(
        &mut self,
        id: &str,
        kind: &str,
        params: &Map<String, Value>,
    ) -> Result<(), String> {
        let plugin = plugin(kind)?;
        let mut params = params.clone();
        // PVE drops an empty node list rather than store one.
        if params.get("nodes").is_some_and(|n| n.as_str() == Some("")) {
            params.remove("nodes");
        }
        let (content, options) = check_config(plugin, id, &params, true)?;
        if self.storage(id).is_some() {
            return Err(format!(
                "create storage failed: storage ID '{id}' already defined"
            ));
        }
        let shared = kind == "nfs" || options.get("shared").is_some_and(|s| s == "1");
        self.storages.push(Storage {
            id: id.to_owned(),
            kind: kind.to_owned(),
            content: content.unwrap_or_else(|| {
                plugin
                    .default_content
                    .iter()
                    .map(|c| c.to_string())
                    .collect()
            }),
            shared,
            options: options.into_iter().filter(|(k, _)| k != "shared").collect(),
        });
        Ok(())
    }

    /// `PUT /storage/{storage}`: `params` without `storage`, `digest` and `delete`.
    pub fn update_storage(
        &mut self,
        id: &str,
        params: &Map<String, Value>,
        digest: Option<&str>,
        delete: &[String],
    ) -> Result<(), String> {
        let failed = |why: String| format!("update storage failed: {why}");
        if digest.is_some_and(|d| d != self.storage_digest()) {
            return Err(failed(
                "detected modified configuration - file changed by other user? Try again.".into(),
            ));
        }
        let kind = self.storage_config(id).map_err(failed)?.kind.clone();
        let plugin = plugin(&kind).map_err(failed)?;
        let (content, options) = check_config(plugin, id, params, false).map_err(failed)?;
        for key in delete {
            let why = match key.as_str() {
                k if plugin.fixed.contains(&k) => format!("unable to delete required option '{k}'"),
                k if !plugin.optional.contains(&k) => format!("no such option '{k}'"),
                k if params.contains_key(k) => {
                    format!("cannot set and delete property '{k}' at the same time!")
                }
                _ => continue,
            };
            return Err(failed(why));
        }
        let storage = self
            .storages
            .iter_mut()
            .find(|s| s.id == id)
            .expect("found above");
        for key in delete {
            match key.as_str() {
                "content" => {
                    storage.content = plugin
                        .default_content
                        .iter()
                        .map(|c| c.to_string())
                        .collect()
                }
                "shared" => storage.shared = false,
                k => {
                    storage.options.remove(k);
                }
            }
        }
        if let Some(content) = content {
            storage.content = content;
        }
        for (k, v) in options {
            match k.as_str() {
                "shared" => storage.shared = v == "1",
                _ => {
                    storage.options.insert(k, v);
                }
            }
        }
        Ok(())
    }

    /// `DELETE /storage/{storage}`.
    pub fn delete_storage(&mut self, id: &str) -> Result<(), String> {
        self.storage_config(id)
            .map_err(|why| format!("delete storage failed: {why}"))?;
        self.storages.retain(|s| s.id != id);
        Ok(())
    }

    /// The checks of PVE's `create_or_update` (its dry run) for the `zfspool` storage of
    /// a pool made on `node`: a storage of that ID must be restricted to other nodes and
    /// be of the same type and pool.
    pub fn check_zfspool(&self, sid: &str, node: &str) -> Result<(), String> {
        if let Some(existing) = self.storage(sid) {
            if !existing.options.contains_key("nodes") || existing.on_node(node) {
                return Err(format!("Storage ID '{sid}' already exists on node {node}"));
            }
            for (key, want, have) in [
                ("type", "zfspool", Some(existing.kind.as_str())),
                (
                    "pool",
                    sid,
                    existing.options.get("pool").map(String::as_str),
                ),
            ] {
                match have {
                    None => {
                        return Err(format!(
                            "Option '{key}' is not configured for storage '{sid}', expected it to be '{want}'"
                        ));
                    }
                    Some(have) if have != want => {
                        return Err(format!(
                            "Option '{key}' ({want}) does not match existing storage configuration '{have}'"
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// PVE's `create_or_update`: a new `zfspool` storage, or `node` added to the existing
    /// one [`Cluster::check_zfspool`] accepts.
    pub fn create_or_update_zfspool(&mut self, sid: &str, node: &str) -> Result<(), String> {
        self.check_zfspool(sid, node)?;
        match self.storages.iter_mut().find(|s| s.id == sid) {
            Some(existing) => {
                let nodes = existing.options.entry("nodes".into()).or_default();
                let mut list = crate::api::split_list(nodes);
                list.push(node.to_owned());
                list.sort();
                *nodes = list.join(",");
                Ok(())
            }
            None => {
                let params = json!({"pool": sid, "content": "rootdir,images", "nodes": node});
                self.create_storage(sid, "zfspool", params.as_object().expect("object"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn create_checks_options_per_type_and_drops_unsupported_content() {
        let mut cluster = Cluster::new(1);
        let dir = params(json!({"path": "/srv/iso", "content": "iso,images,bogus"}));
        cluster.create_storage("iso", "dir", &dir).unwrap();
        assert_eq!(cluster.storage("iso").unwrap().content, ["iso", "images"]);
        let nfs = params(json!({"server": "10.0.0.9", "export": "/x"}));
        cluster.create_storage("share", "nfs", &nfs).unwrap();
        let share = cluster.storage("share").unwrap();
        assert_eq!(
            (share.shared, share.options["path"].as_str()),
            (true, "/mnt/pve/share")
        );
        assert_eq!(share.content, ["images"]);
        let cases = [
            (
                "zfspool",
                json!({}),
                "missing value for required option 'pool'",
            ),
            (
                "zfspool",
                json!({"pool": "p", "path": "/p"}),
                "unexpected property 'path'",
            ),
            (
                "zfspool",
                json!({"pool": "p", "content": "iso"}),
                "storage does not support content type 'none'",
            ),
            (
                "dir",
                json!({"path": "/p"}),
                "create storage failed: storage ID 'iso' already defined",
            ),
        ];
        for (kind, p, message) in cases {
            assert_eq!(
                cluster.create_storage("iso", kind, &params(p)),
                Err(message.into())
            );
        }
    }

    #[test]
    fn update_refuses_fixed_options_stale_digests_and_bad_deletes() {
        let mut cluster = Cluster::new(1);
        let digest = cluster.storage_digest();
        let set = params(json!({"nodes": "phoenix", "disable": "1"}));
        cluster
            .update_storage("fastData", &set, Some(&digest), &[])
            .unwrap();
        assert!(!cluster.storage("fastData").unwrap().enabled());
        assert_ne!(cluster.storage_digest(), digest);
        let stale = cluster.update_storage("fastData", &Map::new(), Some(&digest), &[]);
        assert!(
            stale
                .unwrap_err()
                .contains("detected modified configuration")
        );
        let fixed = cluster.update_storage("fastData", &params(json!({"pool": "x"})), None, &[]);
        assert_eq!(
            fixed,
            Err("update storage failed: can't change value of fixed parameter 'pool'".into())
        );
        let required = cluster.update_storage("fastData", &Map::new(), None, &["pool".into()]);
        assert_eq!(
            required,
            Err("update storage failed: unable to delete required option 'pool'".into())
        );
        cluster
            .update_storage("fastData", &Map::new(), None, &["disable".into()])
            .unwrap();
        assert!(cluster.storage("fastData").unwrap().enabled());
        assert_eq!(
            cluster.delete_storage("nope"),
            Err("delete storage failed: storage 'nope' does not exist".into())
        );
    }
}
