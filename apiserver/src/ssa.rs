//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! Granularity implemented (KUBE-API-SUBSET §6.5, stage 2): objects and maps are owned
//! field by field, lists are atomic (owned as a whole), `metadata.finalizers` is a set
//! whose items are owned one by one; of `metadata` only labels, annotations, finalizers
//! and ownerReferences are tracked. Applying conflicts with other managers that own a
//! field whose value would change (409 unless `force`), removes fields the manager applied
//! before but no longer applies (unless someone else owns them), and records the applied
//! set. Non-apply writes move the fields they change to the writer's `Update` entry.
//! Not yet: schema-aware list types (`x-kubernetes-list-type: map|set`), `ancient-changes`.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// One step of a field path: a field (`f:`) or a member of a set (`v:`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    Field(String),
    Member(String),
}

pub type FieldPath = Vec<Seg>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Which part of the object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The main resource; `status` excluded when it is a subresource.
    Main {
        status_is_subresource: bool,
    },
    Status,
}

impl Scope {
    fn subresource(self) -> Option<&'static str> {
        matches!(self, Scope::Status).then_some("status")
    }
}

const TRACKED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// The leaf fields of `object` that field management tracks in `scope`.
pub fn leaves(object: &Value, scope: Scope) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(map) = object.as_object() else {
        return set;
    };
    for (key, value) in map {
        let tracked = match (key.as_str(), scope) {
            ("apiVersion" | "kind", _) => false,
            (
                "status",
                Scope::Main {
                    status_is_subresource,
                },
            ) => !status_is_subresource,
            ("status", Scope::Status) => true,
            (_, Scope::Status) => false,
            ("metadata", _) => {
                for field in TRACKED_METADATA {
                    if let Some(v) = value.get(field) {
                        let path = vec![Seg::Field("metadata".into()), Seg::Field(field.into())];
                        collect(v, path, &mut set);
                    }
                }
                false
            }
            _ => true,
        };
        if tracked {
            collect(value, vec![Seg::Field(key.clone())], &mut set);
        }
    }
    set
}

fn is_set_list(path: &FieldPath) -> bool {
    path.len() == 2
        && path[0] == Seg::Field("metadata".into())
        && path[1] == Seg::Field("finalizers".into())
}

fn collect(value: &Value, path: FieldPath, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let mut child = path.clone();
                child.push(Seg::Field(k.clone()));
                collect(v, child, set);
            }
        }
        Value::Array(items) if is_set_list(&path) => {
            for item in items {
                let mut child = path.clone();
                child.push(Seg::Member(item.to_string()));
                set.insert(child);
            }
        }
        _ => {
            set.insert(path);
        }
    }
}

/// The value at a path (for a set member: the member itself if present).
fn value_at<'a>(object: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    let mut current = object;
    for seg in path {
        current = match seg {
            Seg::Field(f) => current.get(f)?,
            Seg::Member(m) => current.as_array()?.iter().find(|v| v.to_string() == *m)?,
        };
    }
    Some(current)
}

fn set_at(object: &mut Value, path: &FieldPath, value: &Value) {
    let mut current = object;
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match seg {
            Seg::Field(f) => {
                if !current.is_object() {
                    *current = Value::Object(Map::new());
                }
                let map = current.as_object_mut().expect("made an object");
                if last {
                    map.insert(f.clone(), value.clone());
                    return;
                }
                current = map
                    .entry(f.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
            }
            Seg::Member(_) => {
                if !current.is_array() {
                    *current = Value::Array(Vec::new());
                }
                let list = current.as_array_mut().expect("made an array");
                if !list.contains(value) {
                    list.push(value.clone());
                }
                return;
            }
        }
    }
}

fn remove_at(object: &mut Value, path: &FieldPath) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for seg in parents {
        let Seg::Field(f) = seg else { return };
        match current.get_mut(f) {
            Some(next) => current = next,
            None => return,
        }
    }
    match last {
        Seg::Field(f) => {
            if let Some(map) = current.as_object_mut() {
                map.remove(f);
            }
        }
        Seg::Member(m) => {
            if let Some(list) = current.as_array_mut() {
                list.retain(|v| v.to_string().as_str() != m);
            }
        }
    }
}

/// `.spec.cpus`, `.metadata.finalizers[="x"]`
pub fn path_text(path: &FieldPath) -> String {
    path.iter()
        .map(|seg| match seg {
            Seg::Field(f) => format!(".{f}"),
            Seg::Member(m) => format!("[={m}]"),
        })
        .collect()
}

/// Two paths touch when one is the other or lies under it.
fn overlaps(a: &FieldPath, b: &FieldPath) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// One `managedFields` entry, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    fn same_slot(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// How a conflict names this manager.
    fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            text.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }
}

pub fn decode_entries(object: &Value) -> Vec<Entry> {
    let Some(list) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let text = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let mut fields = FieldSet::new();
            if let Some(f) = e.get("fieldsV1") {
                decode_fields(f, Vec::new(), &mut fields);
            }
            Entry {
                manager: text("manager"),
                operation: text("operation"),
                api_version: text("apiVersion"),
                time: text("time"),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                fields,
            }
        })
        .collect()
}

fn decode_fields(node: &Value, path: FieldPath, out: &mut FieldSet) {
    let Some(map) = node.as_object() else { return };
    let children: Vec<_> = map.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if children.is_empty() {
        if !path.is_empty() {
            out.insert(path);
        }
        return;
    }
    for (key, child) in children {
        let seg = if let Some(f) = key.strip_prefix("f:") {
            Seg::Field(f.to_owned())
        } else if let Some(v) = key.strip_prefix("v:") {
            Seg::Member(v.to_owned())
        } else {
            continue;
        };
        let mut p = path.clone();
        p.push(seg);
        decode_fields(child, p, out);
    }
}

pub fn encode_fields(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for (i, seg) in path.iter().enumerate() {
            let key = match seg {
                Seg::Field(f) => format!("f:{f}"),
                Seg::Member(m) => format!("v:{m}"),
            };
            let child = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
            let inner = child.as_object_mut().expect("field nodes are objects");
            // A node with children that is itself a member of its parent carries ".".
            if i + 1 < path.len() && !(i == 0 && path[0] == Seg::Field("metadata".into())) {
                inner.entry(".").or_insert_with(|| json!({}));
            }
            node = inner;
        }
    }
    Value::Object(root)
}

/// The entries as `managedFields`, in kube-apiserver's order: by operation (Apply before
/// Update), then time (whole seconds), manager, API version and subresource.
pub fn encode_entries(entries: &[Entry]) -> Value {
    let mut sorted: Vec<&Entry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    sorted.sort_by_cached_key(|e| {
        let seconds = e
            .time
            .parse::<jiff::Timestamp>()
            .map_or(0, |t| t.as_second());
        (
            e.operation.clone(),
            seconds,
            e.manager.clone(),
            e.api_version.clone(),
            e.subresource.clone().unwrap_or_default(),
        )
    });
    Value::Array(
        sorted
            .into_iter()
            .map(|e| {
                let mut v = json!({
                    "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                    "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": encode_fields(&e.fields),
                });
                if let Some(sub) = &e.subresource {
                    v["subresource"] = json!(sub);
                }
                v
            })
            .collect(),
    )
}

/// The outcome of an apply: the merged object (managedFields set), or the conflicts.
#[derive(Debug)]
pub enum ApplyOutcome {
    Applied(Value),
    Conflicts(Vec<(String, FieldPath)>),
}

/// Applies `config` as `manager` onto `live` (an empty object for a create). Values are
/// compared as sent, before defaulting, as kube-apiserver compares them: a list sent
/// without its items' defaults differs from the stored one (checked against kube-apiserver
/// 1.37 in tests/real_kubernetes.rs).
pub fn apply(
    live: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    scope: Scope,
    now: &str,
) -> ApplyOutcome {
    let applied = leaves(config, scope);
    let mut entries = decode_entries(live);
    let sub = scope.subresource();
    let mut conflicts = Vec::new();
    for entry in entries
        .iter()
        .filter(|e| !e.same_slot(manager, "Apply", sub) && e.manager != manager)
    {
        for owned in &entry.fields {
            for path in applied.iter().filter(|p| overlaps(p, owned)) {
                let differs = value_at(config, path) != value_at(live, path)
                    || (owned.len() > path.len() && value_at(live, owned).is_some());
                if differs {
                    conflicts.push((entry.describe(), path.clone()));
                }
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();
    if !conflicts.is_empty() && !force {
        return ApplyOutcome::Conflicts(conflicts);
    }
    let mut result = live.clone();
    for path in &applied {
        if let Some(v) = value_at(config, path) {
            set_at(&mut result, path, v);
        }
    }
    let previous = entries
        .iter()
        .find(|e| e.same_slot(manager, "Apply", sub))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for entry in entries
        .iter_mut()
        .filter(|e| !e.same_slot(manager, "Apply", sub))
    {
        if force {
            entry.fields.retain(|owned| {
                !applied
                    .iter()
                    .any(|p| overlaps(p, owned) && value_at(config, p) != value_at(live, p))
            });
        }
    }
    for gone in previous.difference(&applied) {
        let owned_elsewhere = entries
            .iter()
            .filter(|e| !e.same_slot(manager, "Apply", sub))
            .any(|e| e.fields.iter().any(|o| overlaps(o, gone)));
        if !owned_elsewhere {
            remove_at(&mut result, gone);
        }
    }
    record(
        &mut entries,
        manager,
        "Apply",
        sub,
        api_version,
        now,
        applied,
        true,
    );
    set_entries(&mut result, &entries);
    ApplyOutcome::Applied(result)
}

/// Moves the fields a non-apply write changed to `manager`'s Update entry. Leaves
/// `managedFields` alone when the writer set them itself.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    scope: Scope,
    now: &str,
) {
    let old_entries = old
        .map(|o| o.pointer("/metadata/managedFields").cloned())
        .unwrap_or(None);
    let new_entries = new.pointer("/metadata/managedFields").cloned();
    if new_entries.is_some() && new_entries != old_entries {
        if new_entries
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            remove_at(
                new,
                &vec![
                    Seg::Field("metadata".into()),
                    Seg::Field("managedFields".into()),
                ],
            );
        }
        return;
    }
    let before = old.map(|o| leaves(o, scope)).unwrap_or_default();
    let after = leaves(new, scope);
    let empty = Value::Null;
    let old_value = old.unwrap_or(&empty);
    let changed: FieldSet = after
        .iter()
        .filter(|p| !before.contains(*p) || value_at(old_value, p) != value_at(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = before.difference(&after).cloned().collect();
    let mut entries = old.map(decode_entries).unwrap_or_default();
    for entry in entries.iter_mut() {
        entry.fields.retain(|f| {
            !removed.contains(f)
                && !(changed.contains(f)
                    && !(entry.manager == manager && entry.operation == "Update"))
        });
    }
    record(
        &mut entries,
        manager,
        "Update",
        scope.subresource(),
        api_version,
        now,
        changed,
        false,
    );
    set_entries(new, &entries);
}

#[allow(clippy::too_many_arguments)]
fn record(
    entries: &mut Vec<Entry>,
    manager: &str,
    operation: &str,
    sub: Option<&str>,
    api_version: &str,
    now: &str,
    fields: FieldSet,
    replace: bool,
) {
    match entries
        .iter_mut()
        .find(|e| e.same_slot(manager, operation, sub))
    {
        Some(entry) => {
            let merged: FieldSet = if replace {
                fields
            } else {
                entry.fields.union(&fields).cloned().collect()
            };
            if merged != entry.fields {
                entry.fields = merged;
                entry.time = now.to_owned();
                entry.api_version = api_version.to_owned();
            }
        }
        None if !fields.is_empty() => entries.push(Entry {
            manager: manager.to_owned(),
            operation: operation.to_owned(),
            api_version: api_version.to_owned(),
            time: now.to_owned(),
            subresource: sub.map(str::to_owned),
            fields,
        }),
        None => {}
    }
    entries.retain(|e| !e.fields.is_empty());
}

fn set_entries(object: &mut Value, entries: &[Entry]) {
    let encoded = encode_entries(entries);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if encoded.as_array().is_some_and(Vec::is_empty) {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), encoded);
        }
    }
}

/// kube-apiserver's conflict message.
pub fn conflict_message(conflicts: &[(String, FieldPath)]) -> String {
    let n = conflicts.len();
    let plural = if n == 1 { "conflict" } else { "conflicts" };
    let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
    managers.dedup();
    if n == 1 {
        let (manager, path) = &conflicts[0];
        return format!(
            "Apply failed with 1 conflict: conflict with {manager}: {}",
            path_text(path)
        );
    }
    let mut text = format!("Apply failed with {n} {plural}:");
    for manager in managers {
        text.push_str(&format!(" conflicts with {manager}:"));
        for (_, path) in conflicts.iter().filter(|(m, _)| m == manager) {
            text.push_str(&format!("\n- {}", path_text(path)));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Scope = Scope::Main {
        status_is_subresource: true,
    };

    /// `apply` with the arguments every test shares.
    fn apply_as(live: &Value, config: Value, manager: &str, force: bool) -> ApplyOutcome {
        apply(live, &config, manager, force, "g/v1", MAIN, "T")
    }

    #[test]
    fn entries_are_listed_in_kube_apiservers_order() {
        let entry = |manager: &str, operation: &str, time: &str| Entry {
            manager: manager.into(),
            operation: operation.into(),
            api_version: "g/v1".into(),
            time: time.into(),
            subresource: None,
            fields: FieldSet::from([vec![Seg::Field("spec".into())]]),
        };
        let entries = [
            entry("late", "Apply", "2026-01-01T00:00:09Z"),
            entry(
                "kubectl-client-side-apply",
                "Update",
                "2026-01-01T00:00:01Z",
            ),
            entry("second", "Apply", "2026-01-01T00:00:05Z"),
            entry("kubectl", "Apply", "2026-01-01T00:00:05Z"),
        ];
        let order: Vec<String> = encode_entries(&entries)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            order,
            ["kubectl", "second", "late", "kubectl-client-side-apply"]
        );
    }

    fn applied(outcome: ApplyOutcome) -> Value {
        match outcome {
            ApplyOutcome::Applied(v) => v,
            ApplyOutcome::Conflicts(c) => panic!("unexpected conflicts {c:?}"),
        }
    }

    #[test]
    fn apply_records_ownership_in_fields_v1() {
        let live = json!({"metadata": {"name": "a"}});
        let config = json!({"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "a", "labels": {"app": "web"}},
                            "spec": {"cpus": 2, "image": "debian"}, "status": {"x": 1}});
        let out = applied(apply_as(&live, config.clone(), "kubectl", false));
        assert_eq!(out["spec"], json!({"cpus": 2, "image": "debian"}));
        assert!(out.get("status").is_none(), "status is a subresource");
        assert_eq!(
            out["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {".": {}, "f:cpus": {}, "f:image": {}}})
        );
        assert_eq!(decode_entries(&out)[0].fields, leaves(&config, MAIN));
    }

    #[test]
    fn another_manager_conflicts_unless_forced() {
        let first = applied(apply_as(
            &json!({"metadata": {}}),
            json!({"spec": {"cpus": 2}}),
            "ctl",
            false,
        ));
        let outcome = apply_as(&first, json!({"spec": {"cpus": 4}}), "kubectl", false);
        let ApplyOutcome::Conflicts(c) = outcome else {
            panic!("expected a conflict")
        };
        assert_eq!(
            conflict_message(&c),
            "Apply failed with 1 conflict: conflict with \"ctl\": .spec.cpus"
        );
        // The same value is shared, not a conflict.
        applied(apply_as(
            &first,
            json!({"spec": {"cpus": 2}}),
            "kubectl",
            false,
        ));
        let forced = applied(apply_as(
            &first,
            json!({"spec": {"cpus": 4}}),
            "kubectl",
            true,
        ));
        assert_eq!(forced["spec"]["cpus"], 4);
        let owners: Vec<String> = decode_entries(&forced)
            .into_iter()
            .map(|e| e.manager)
            .collect();
        assert_eq!(owners, vec!["kubectl"]);
    }

    #[test]
    fn fields_no_longer_applied_are_removed() {
        let first = applied(apply_as(
            &json!({"metadata": {}}),
            json!({"spec": {"a": 1, "b": 2}}),
            "m",
            false,
        ));
        let second = applied(apply_as(&first, json!({"spec": {"a": 1}}), "m", false));
        assert_eq!(second["spec"], json!({"a": 1}));
    }

    #[test]
    fn a_list_equal_only_once_defaulted_conflicts_as_in_kube_apiserver() {
        // A client-side apply stored the list with its item's default filled in.
        let mut live = json!({"metadata": {}, "spec": {"checks": [{"port": 80, "every": "30s"}]}});
        track_update(
            Some(&json!({"metadata": {}})),
            &mut live,
            "kubectl-client-side-apply",
            "g/v1",
            MAIN,
            "T1",
        );
        let outcome = apply_as(
            &live,
            json!({"spec": {"checks": [{"port": 80}]}}),
            "kubectl",
            false,
        );
        let ApplyOutcome::Conflicts(conflicts) = outcome else {
            panic!("compared as sent, the list differs");
        };
        assert_eq!(path_text(&conflicts[0].1), ".spec.checks");
    }

    #[test]
    fn updates_take_ownership_of_what_they_change() {
        let applied_obj = applied(apply_as(
            &json!({"metadata": {}}),
            json!({"spec": {"a": 1, "b": 2}}),
            "m",
            false,
        ));
        let mut updated = applied_obj.clone();
        updated["spec"]["a"] = json!(5);
        track_update(
            Some(&applied_obj),
            &mut updated,
            "kubectl-edit",
            "g/v1",
            MAIN,
            "T2",
        );
        let entries = decode_entries(&updated);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].manager, "kubectl-edit");
        assert_eq!(
            path_text(entries[1].fields.iter().next().unwrap()),
            ".spec.a"
        );
        assert!(!entries[0].fields.iter().any(|p| path_text(p) == ".spec.a"));
        // The applier now conflicts on the field the editor took.
        let outcome = apply_as(&updated, json!({"spec": {"a": 1, "b": 2}}), "m", false);
        let ApplyOutcome::Conflicts(c) = outcome else {
            panic!("expected a conflict")
        };
        assert_eq!(
            conflict_message(&c),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using g/v1: .spec.a"
        );
    }

    #[test]
    fn finalizers_are_a_set() {
        let obj = json!({"metadata": {"finalizers": ["a", "b"]}});
        let set = leaves(&obj, MAIN);
        assert_eq!(set.len(), 2);
        assert_eq!(
            path_text(set.iter().next().unwrap()),
            ".metadata.finalizers[=\"a\"]"
        );
        let encoded = encode_fields(&set);
        assert_eq!(
            encoded,
            json!({"f:metadata": {"f:finalizers": {".": {}, "v:\"a\"": {}, "v:\"b\"": {}}}})
        );
    }
}
