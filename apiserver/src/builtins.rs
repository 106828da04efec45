//! Admission rules of the built-in kinds: Secrets (stringData, base64), immutable
//! ConfigMaps and Secrets, Namespaces (phase, finalizer), CustomResourceDefinitions (names,
//! structural schema, the NamesAccepted/Established conditions), and access reviews.

use crate::error::{ApiError, ApiResult};
use crate::objects::{self, meta_mut, name_of};
use crate::resources::{Builtin, ResourceType};
use crate::validation::CrdValidator;
use crate::validation::field_error::{FieldError, FieldErrorKind};
use base64::Engine;
use serde_json::{Map, Value, json};

pub fn admit(rt: &ResourceType, object: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    match rt.builtin {
        Some(Builtin::Secret) => secret(rt, object, old),
        Some(Builtin::ConfigMap) => immutable(rt, object, old),
        Some(Builtin::Namespace) => {
            namespace(object, old);
            Ok(())
        }
        Some(Builtin::Crd) => crd(rt, object, old),
        _ => Ok(()),
    }
}

fn secret(rt: &ResourceType, object: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    let map = object.as_object_mut().expect("objects are JSON objects");
    for field in ["data", "stringData"] {
        if map
            .get(field)
            .is_some_and(|v| !v.is_object() && !v.is_null())
        {
            return Err(ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: {field} must be a map of strings"
            )));
        }
    }
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| json!({}));
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            data[k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    map.entry("type").or_insert_with(|| json!("Opaque"));
    if let Some(data) = map.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let ok = v
                .as_str()
                .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k}]"
                )));
            }
        }
    }
    if let Some(old) = old
        && old.get("type") != object.get("type")
    {
        let err = FieldError::new(
            "type",
            FieldErrorKind::Invalid(object["type"].clone()),
            "field is immutable",
        );
        return Err(ApiError::invalid(
            &rt.kind,
            &rt.group,
            name_of(object),
            &[err],
        ));
    }
    immutable(rt, object, old)
}

fn immutable(rt: &ResourceType, object: &Value, old: Option<&Value>) -> ApiResult<()> {
    let Some(old) = old else { return Ok(()) };
    if old.get("immutable") != Some(&json!(true)) {
        return Ok(());
    }
    let changed =
        old.get("data") != object.get("data") || old.get("binaryData") != object.get("binaryData");
    let unset = object.get("immutable") != Some(&json!(true));
    if changed || unset {
        let (field, detail) = if unset {
            ("immutable", "field is immutable when `immutable` is set")
        } else {
            ("data", "field is immutable when `immutable` is set")
        };
        let err = FieldError::new(field, FieldErrorKind::Forbidden, detail);
        return Err(ApiError::invalid(
            &rt.kind,
            &rt.group,
            name_of(object),
            &[err],
        ));
    }
    Ok(())
}

fn namespace(object: &mut Value, old: Option<&Value>) {
    let phase = match old {
        Some(o) if objects::is_deleting(o) => "Terminating",
        _ => "Active",
    };
    object["status"] = json!({"phase": phase});
    if object.pointer("/spec/finalizers").is_none() {
        object["spec"] = json!({"finalizers": ["kubernetes"]});
    }
}

/// Marks what deleting means for kinds that clean up first: a namespace terminates, a CRD
/// removes its objects (the cleanup task finishes both).
pub fn on_delete(rt: &ResourceType, object: &mut Value) {
    match rt.builtin {
        Some(Builtin::Namespace) => {
            object["status"] = json!({"phase": "Terminating"});
            add_finalizer(object, "kubernetes");
        }
        Some(Builtin::Crd) => add_finalizer(object, "customresourcecleanup.apiextensions.k8s.io"),
        _ => {}
    }
}

fn add_finalizer(object: &mut Value, finalizer: &str) {
    let m = meta_mut(object);
    let list = m.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(json!(finalizer));
    }
}

fn crd(rt: &ResourceType, object: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    let mut errors = Vec::new();
    let spec = object.get("spec").cloned().unwrap_or(json!({}));
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let names = spec.get("names").cloned().unwrap_or(json!({}));
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name_of(object) != format!("{plural}.{group}") {
        errors.push(FieldError::new(
            "metadata.name",
            FieldErrorKind::Invalid(json!(name_of(object))),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.ends_with(".k8s.io") || group == "k8s.io" {
        errors.push(FieldError::new(
            "spec.group",
            FieldErrorKind::Invalid(json!(group)),
            "groups ending in .k8s.io are reserved for built-in kinds",
        ));
    }
    if !group.contains('.') {
        errors.push(FieldError::new(
            "spec.group",
            FieldErrorKind::Invalid(json!(group)),
            "should be a domain with at least one dot",
        ));
    }
    if kind.is_empty() {
        errors.push(FieldError::new(
            "spec.names.kind",
            FieldErrorKind::Required,
            "",
        ));
    }
    let scope = spec
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !matches!(scope, "Namespaced" | "Cluster") {
        errors.push(FieldError::new(
            "spec.scope",
            FieldErrorKind::NotSupported {
                value: json!(scope),
                supported: vec![json!("Cluster"), json!("Namespaced")],
            },
            "",
        ));
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions
        .iter()
        .filter(|v| v.get("storage") == Some(&json!(true)))
        .count()
        != 1
    {
        errors.push(FieldError::new(
            "spec.versions",
            FieldErrorKind::Invalid(json!(versions.len())),
            "must have exactly one version marked as storage version",
        ));
    }
    if spec
        .pointer("/conversion/strategy")
        .and_then(Value::as_str)
        .is_some_and(|s| s != "None")
    {
        errors.push(FieldError::new(
            "spec.conversion.strategy",
            FieldErrorKind::NotSupported {
                value: spec["conversion"]["strategy"].clone(),
                supported: vec![json!("None")],
            },
            "conversion webhooks are not supported by the embedded server",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        match v.pointer("/schema/openAPIV3Schema") {
            None => errors.push(FieldError::new(
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                FieldErrorKind::Required,
                "schemas are required",
            )),
            Some(schema) => {
                if let Err(e) = CrdValidator::from_schema(schema) {
                    errors.push(FieldError::new(
                        format!("spec.versions[{i}].schema.{}", e.path),
                        FieldErrorKind::Invalid(json!("")),
                        e.message,
                    ));
                }
            }
        }
    }
    objects::refuse_invalid(rt, object, &errors)?;
    let mut accepted = Map::new();
    accepted.insert("plural".into(), json!(plural));
    accepted.insert(
        "singular".into(),
        names
            .get("singular")
            .cloned()
            .unwrap_or_else(|| json!(kind.to_lowercase())),
    );
    accepted.insert("kind".into(), json!(kind));
    accepted.insert(
        "listKind".into(),
        names
            .get("listKind")
            .cloned()
            .unwrap_or_else(|| json!(format!("{kind}List"))),
    );
    for optional in ["shortNames", "categories"] {
        if let Some(v) = names.get(optional) {
            accepted.insert(optional.into(), v.clone());
        }
    }
    let since = old
        .and_then(|o| o.pointer("/status/conditions/0/lastTransitionTime"))
        .cloned()
        .unwrap_or_else(|| json!(objects::now()));
    let mut stored_versions: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = versions
        .iter()
        .find(|v| v.get("storage") == Some(&json!(true)))
        .and_then(|v| v.get("name"));
    if let Some(storage) = storage
        && !stored_versions.contains(storage)
    {
        stored_versions.push(storage.clone());
    }
    let mut conditions = vec![
        json!({"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since}),
        json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since}),
    ];
    if old.is_some_and(objects::is_deleting) {
        conditions.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress", "lastTransitionTime": since}));
    }
    object["status"] = json!({"conditions": conditions, "acceptedNames": accepted, "storedVersions": stored_versions});
    Ok(())
}

/// Every authenticated user may do everything (the embedded server has one admin).
pub fn review_access(mut review: Value) -> Value {
    if !review.is_object() {
        review = json!({});
    }
    review["status"] = json!({"allowed": true, "reason": "the embedded API server allows every authenticated request"});
    if review.get("apiVersion").is_none() {
        review["apiVersion"] = json!("authorization.k8s.io/v1");
        review["kind"] = json!("SelfSubjectAccessReview");
    }
    review
}
