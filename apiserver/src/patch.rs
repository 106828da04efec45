//! The non-apply patch types: JSON merge patch (RFC 7386), JSON patch (RFC 6902, with
//! Kubernetes' reading of `test` on a missing path), and the strategic merge patch subset
//! the served built-ins need.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Why a patch could not be applied: undecodable (400) or failing (422).
#[derive(Debug, PartialEq)]
pub enum PatchError {
    Decode(String),
    Apply(String),
}

pub fn merge(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Decode(
            "merge patch must be a JSON object".into(),
        ));
    }
    json_patch::merge(target, patch);
    Ok(())
}

/// RFC 6902, except that `test` with value `null` passes on a missing path, as in
/// Kubernetes' json-patch library (the kube-runtime finalizer helper relies on it).
pub fn json(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Some(ops) = patch.as_array() else {
        return Err(PatchError::Decode(
            "json patch must be a JSON array of operations".into(),
        ));
    };
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops {
        let is_null_test = op.get("op").and_then(Value::as_str) == Some("test")
            && op.get("value").is_some_and(Value::is_null);
        if is_null_test {
            let path = op.get("path").and_then(Value::as_str).unwrap_or("");
            match target.pointer(path) {
                None | Some(Value::Null) => continue,
                Some(found) => {
                    return Err(PatchError::Apply(format!(
                        "testing value {path} failed: expected null, found {found}"
                    )));
                }
            }
        }
        kept.push(op.clone());
    }
    let parsed: json_patch::Patch = serde_json::from_value(Value::Array(kept))
        .map_err(|e| PatchError::Decode(e.to_string()))?;
    json_patch::patch(target, &parsed).map_err(|e| PatchError::Apply(e.to_string()))
}

/// Strategic merge patch for Namespace, ConfigMap, Secret, Event and Lease: a merge patch
/// in which `metadata.finalizers` merges as a set and `ownerReferences` by `uid`, with the
/// `$patch`, `$deleteFromPrimitiveList/` directives honoured and `$setElementOrder/`,
/// `$retainKeys` ignored (they only order or prune what these kinds do not have).
pub fn strategic(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Some(patch) = patch.as_object() else {
        return Err(PatchError::Decode(
            "strategic merge patch must be a JSON object".into(),
        ));
    };
    strategic_object(target, patch, "");
    Ok(())
}

fn strategic_object(target: &mut Value, patch: &Map<String, Value>, path: &str) {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            *target = Value::Object(replaced);
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<&Value> = value
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            if let Some(list) = map.get_mut(field).and_then(Value::as_array_mut) {
                list.retain(|v| !remove.contains(&v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        let child_path = format!("{path}/{key}");
        match value {
            Value::Null => {
                map.remove(key);
            }
            Value::Object(inner) => {
                let slot = map.entry(key.clone()).or_insert(Value::Null);
                strategic_object(slot, inner, &child_path);
                if slot.is_null() {
                    map.remove(key);
                }
            }
            Value::Array(items) if child_path == "/metadata/finalizers" => {
                let list = map
                    .entry(key.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(list) = list.as_array_mut() {
                    for item in items {
                        if !list.contains(item) {
                            list.push(item.clone());
                        }
                    }
                }
            }
            Value::Array(items) if child_path == "/metadata/ownerReferences" => {
                let list = map
                    .entry(key.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(list) = list.as_array_mut() {
                    for item in items {
                        match list.iter_mut().find(|o| o.get("uid") == item.get("uid")) {
                            Some(existing) => json_patch::merge(existing, item),
                            None => list.push(item.clone()),
                        }
                    }
                }
            }
            other => {
                map.insert(key.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_test_on_a_missing_path_passes_like_kubernetes() {
        let mut obj = json!({"metadata": {"name": "a"}});
        let patch = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                           {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}]);
        json(&mut obj, &patch).unwrap();
        assert_eq!(obj["metadata"]["finalizers"], json!(["x"]));
        let err = json(
            &mut obj,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]),
        );
        assert!(matches!(err, Err(PatchError::Apply(_))));
        assert!(matches!(
            json(&mut obj, &json!({"op": "add"})),
            Err(PatchError::Decode(_))
        ));
    }

    #[test]
    fn merge_patch_deletes_with_null_and_replaces_lists() {
        let mut obj = json!({"spec": {"a": 1, "b": [1, 2]}, "metadata": {"labels": {"x": "1"}}});
        merge(
            &mut obj,
            &json!({"spec": {"a": null, "b": [3]}, "metadata": {"labels": {"y": "2"}}}),
        )
        .unwrap();
        assert_eq!(
            obj,
            json!({"spec": {"b": [3]}, "metadata": {"labels": {"x": "1", "y": "2"}}})
        );
    }

    #[test]
    fn strategic_merges_finalizers_as_a_set_and_honours_directives() {
        let mut obj =
            json!({"metadata": {"finalizers": ["a"], "labels": {"k": "v"}}, "data": {"x": "1"}});
        let patch = json!({
            "metadata": {"finalizers": ["b", "a"], "$setElementOrder/finalizers": ["b", "a"], "labels": {"k": null}},
            "data": {"y": "2"}
        });
        strategic(&mut obj, &patch).unwrap();
        assert_eq!(
            obj,
            json!({"metadata": {"finalizers": ["a", "b"], "labels": {}}, "data": {"x": "1", "y": "2"}})
        );
        strategic(
            &mut obj,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(obj["metadata"]["finalizers"], json!(["b"]));
        strategic(&mut obj, &json!({"data": {"$patch": "replace", "z": "3"}})).unwrap();
        assert_eq!(obj["data"], json!({"z": "3"}));
    }
}
