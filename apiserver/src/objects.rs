//! Object metadata semantics shared by every kind: names, uid, timestamps, generation,
//! finalizers and deletion, status-subresource masking, label and annotation rules.

use crate::error::{ApiError, ApiResult};
use crate::resources::{Builtin, ResourceType};
use crate::validation::field_error::{FieldError, FieldErrorKind, string_list};
use regex::Regex;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;

static DNS_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .expect("static")
});
static DNS_LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static"));
static QUALIFIED_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$").expect("static"));

/// Now, as Kubernetes writes timestamps: RFC 3339 UTC, whole seconds.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Now with microseconds (MicroTime), for event times.
pub fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

pub fn meta(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

pub fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"].as_object_mut().expect("made an object")
}

pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    meta(object)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

pub fn name_of(object: &Value) -> &str {
    meta_str(object, "name").unwrap_or_default()
}

pub fn is_deleting(object: &Value) -> bool {
    meta_str(object, "deletionTimestamp").is_some()
}

pub fn finalizers(object: &Value) -> Vec<String> {
    string_list(meta(object).and_then(|m| m.get("finalizers")))
}

/// 422 naming every field error, or nothing when there is none.
pub fn refuse_invalid(rt: &ResourceType, object: &Value, errors: &[FieldError]) -> ApiResult<()> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        &rt.kind,
        &rt.group,
        name_of(object),
        errors,
    ))
}

/// Metadata rules checked on every write (422 on violation).
pub fn validate_metadata(rt: &ResourceType, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = name_of(object);
    let (ok, rule) = if rt.builtin == Some(Builtin::Namespace) {
        (
            name.len() <= 63 && DNS_LABEL.is_match(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        )
    } else {
        (
            name.len() <= 253 && DNS_SUBDOMAIN.is_match(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        )
    };
    if !ok {
        errors.push(FieldError::new(
            "metadata.name",
            FieldErrorKind::Invalid(json!(name)),
            rule,
        ));
    }
    for field in ["labels", "annotations"] {
        let Some(map) = meta(object).and_then(|m| m.get(field)) else {
            continue;
        };
        let Some(map) = map.as_object() else {
            errors.push(FieldError::new(
                format!("metadata.{field}"),
                FieldErrorKind::TypeInvalid(json!("object")),
                "must be a map of strings",
            ));
            continue;
        };
        for (key, value) in map {
            if !valid_qualified_key(key) {
                errors.push(FieldError::new(
                    format!("metadata.{field}"),
                    FieldErrorKind::Invalid(json!(key)),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
            let Some(text) = value.as_str() else {
                errors.push(FieldError::new(
                    format!("metadata.{field}[{key}]"),
                    FieldErrorKind::TypeInvalid(value.clone()),
                    "must be a string",
                ));
                continue;
            };
            if field == "labels"
                && !(text.is_empty() || (text.len() <= 63 && QUALIFIED_NAME.is_match(text)))
            {
                errors.push(FieldError::new(
                    "metadata.labels",
                    FieldErrorKind::Invalid(json!(text)),
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
    errors
}

fn valid_qualified_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.is_none_or(|p| p.len() <= 253 && DNS_SUBDOMAIN.is_match(p))
        && name.len() <= 63
        && QUALIFIED_NAME.is_match(name)
}

/// Fills in and checks what a create must have: apiVersion/kind, namespace, name (or a
/// generated one), uid, creationTimestamp, generation; drops what clients may not set.
pub fn prepare_create(
    rt: &ResourceType,
    object: &mut Value,
    url_namespace: Option<&str>,
) -> ApiResult<()> {
    check_type_meta(rt, object)?;
    let namespace = url_namespace.map(str::to_owned);
    let m = meta_mut(object);
    match (m.get("namespace").and_then(Value::as_str), &namespace) {
        (Some(given), Some(url)) if given != url && rt.namespaced => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => {}
    }
    if rt.namespaced {
        if let Some(ns) = &namespace {
            m.insert("namespace".into(), json!(ns));
        }
    } else {
        m.remove("namespace");
    }
    if m.get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        match m.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                let name = format!("{prefix}{}", random_suffix());
                m.insert("name".into(), json!(name));
            }
            _ => {
                let err = FieldError::new(
                    "metadata.name",
                    FieldErrorKind::Required,
                    "name or generateName is required",
                );
                return Err(ApiError::invalid(&rt.kind, &rt.group, "", &[err]));
            }
        }
    }
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "generation",
    ] {
        m.remove(field);
    }
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now()));
    if rt.has_generation() {
        m.insert("generation".into(), json!(1));
    }
    drop_empty(m);
    if rt.status_subresource && rt.builtin.is_none() {
        object.as_object_mut().expect("object").remove("status");
    }
    Ok(())
}

/// `apiVersion`/`kind` in the body must match the URL; absent ones are filled in.
pub fn check_type_meta(rt: &ResourceType, object: &mut Value) -> ApiResult<()> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    let want_version = rt.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != want_version => {
            // Other served versions of the same group share storage.
            let same_group =
                !rt.group.is_empty() && v.rsplit_once('/').is_some_and(|(g, _)| g == rt.group);
            if !same_group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({want_version})"
                )));
            }
        }
        None => {
            map.insert("apiVersion".into(), json!(want_version));
        }
        _ => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != rt.kind => Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            rt.kind
        ))),
        None => {
            map.insert("kind".into(), json!(rt.kind));
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Carries the system fields over from the stored object (`generation` too: see
/// [`advance_generation`]), masks status or main resource, and enforces finalizer rules.
pub fn prepare_update(
    rt: &ResourceType,
    new: &mut Value,
    old: &Value,
    status_write: bool,
) -> ApiResult<()> {
    check_type_meta(rt, new)?;
    let old_meta = meta(old).cloned().unwrap_or_default();
    if meta_str(new, "name").is_some_and(|n| n != name_of(old)) {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    if meta_str(new, "uid").is_some_and(|u| Some(u) != old_meta.get("uid").and_then(Value::as_str))
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                meta_str(new, "uid").unwrap_or_default(),
                old_meta
                    .get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ),
        ));
    }
    if status_write {
        // /status: everything but status (and managedFields) comes from the stored object.
        let status = new.get("status").cloned();
        let managed = meta(new).and_then(|m| m.get("managedFields")).cloned();
        *new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                new.as_object_mut().expect("object").remove("status");
            }
        }
        match managed {
            Some(mf) => meta_mut(new).insert("managedFields".into(), mf),
            None => meta_mut(new).remove("managedFields"),
        };
        return Ok(());
    }
    if rt.status_subresource {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().expect("object").remove("status");
            }
        }
    }
    let m = meta_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
    ] {
        match old_meta.get(field) {
            Some(v) => m.insert(field.into(), v.clone()),
            None => m.remove(field),
        };
    }
    drop_empty(m);
    if is_deleting(old) {
        let before = finalizers(old);
        if let Some(added) = finalizers(new).into_iter().find(|f| !before.contains(f)) {
            let err = FieldError::new(
                "metadata.finalizers",
                FieldErrorKind::Forbidden,
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers [{added:?}]"
                ),
            );
            return Err(ApiError::invalid(&rt.kind, &rt.group, name_of(old), &[err]));
        }
    }
    Ok(())
}

/// Bumps `generation` when the spec part changed. Called on the admitted object: a spec
/// that equals the stored one once defaulted is no change (a client-side apply resends
/// list items without their defaults), as kube-apiserver decides it.
pub fn advance_generation(rt: &ResourceType, new: &mut Value, old: &Value) {
    if rt.has_generation() && spec_changed(old, new) {
        let generation = meta(old)
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        meta_mut(new).insert("generation".into(), json!(generation));
    }
}

/// Anything outside metadata and status differs.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

/// Empty lists and maps in metadata are stored as absent, as Kubernetes round-trips them.
fn drop_empty(m: &mut Map<String, Value>) {
    m.retain(|_, v| match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Null => false,
        _ => true,
    });
}

/// Whether storing `new` over `old` would change nothing (no new revision, no event).
pub fn unchanged(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(old) == strip(new)
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtins;

    fn custom() -> ResourceType {
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_json::from_value(serde_json::to_value(phoenix_crds::all_crds().remove(1).1).unwrap()).unwrap();
        crate::resources::from_crd(&crd).remove(0)
    }

    #[test]
    fn create_fills_system_fields_and_drops_status() {
        let rt = custom();
        let mut obj = json!({"metadata": {"generateName": "web-", "uid": "mine", "finalizers": []}, "spec": {}, "status": {"x": 1}});
        prepare_create(&rt, &mut obj, Some("default")).unwrap();
        let m = meta(&obj).unwrap();
        assert!(m["name"].as_str().unwrap().starts_with("web-"));
        assert_ne!(m["uid"], "mine");
        assert_eq!(m["generation"], 1);
        assert_eq!(m["namespace"], "default");
        assert!(m.get("finalizers").is_none());
        assert!(obj.get("status").is_none());
        assert_eq!(obj["kind"], "LxcGuest");
    }

    #[test]
    fn generation_moves_with_spec_only_and_status_is_masked() {
        let rt = custom();
        let mut old = json!({"metadata": {"name": "a"}, "spec": {"cores": 1}});
        prepare_create(&rt, &mut old, Some("default")).unwrap();
        let mut relabel = old.clone();
        relabel["metadata"]["labels"] = json!({"a": "b"});
        relabel["status"] = json!({"state": "hacked"});
        prepare_update(&rt, &mut relabel, &old, false).unwrap();
        advance_generation(&rt, &mut relabel, &old);
        assert_eq!(relabel["metadata"]["generation"], 1);
        assert!(relabel.get("status").is_none());
        let mut respec = old.clone();
        respec["spec"]["cores"] = json!(2);
        prepare_update(&rt, &mut respec, &old, false).unwrap();
        assert_eq!(respec["metadata"]["generation"], 1, "not before admission");
        advance_generation(&rt, &mut respec, &old);
        assert_eq!(respec["metadata"]["generation"], 2);
        let mut status = old.clone();
        status["status"] = json!({"state": "running"});
        status["spec"]["cores"] = json!(9);
        prepare_update(&rt, &mut status, &old, true).unwrap();
        assert_eq!(
            (
                status["spec"]["cores"].clone(),
                status["status"]["state"].clone()
            ),
            (json!(1), json!("running"))
        );
    }

    #[test]
    fn no_new_finalizers_while_deleting() {
        let rt = custom();
        let old = json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"]}});
        let mut new = old.clone();
        new["metadata"]["finalizers"] = json!(["x", "y"]);
        let err = prepare_update(&rt, &mut new, &old, false).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.contains("no new finalizers can be added"));
    }

    #[test]
    fn names_and_labels_are_checked() {
        let ns = builtins().remove(0);
        assert!(validate_metadata(&ns, &json!({"metadata": {"name": "a.b"}})).len() == 1);
        let cm = builtins().remove(1);
        let errs = validate_metadata(
            &cm,
            &json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "v", "a/b/c": "x", "k": "bad value"}}}),
        );
        assert_eq!(errs.len(), 3);
        assert!(
            errs[0]
                .to_string()
                .starts_with("metadata.name: Invalid value: \"Bad_Name\"")
        );
    }
}
