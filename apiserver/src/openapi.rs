//! OpenAPI v3 for kubectl: a root listing one document per served group-version, and
//! per-group-version documents whose PATCH operations declare `fieldValidation` (without it
//! kubectl refuses to apply) and whose schemas carry the CRD schemas (for `kubectl explain`).
//! Strategic merge patch is never advertised, so kubectl builds merge patches for custom
//! resources and its compiled-in strategic patches for built-ins.

use crate::resources::{Registry, ResourceType};
use serde_json::{Map, Value, json};
use std::hash::{Hash, Hasher};

fn doc_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`
pub fn root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".into())];
    for (g, versions) in registry.groups() {
        gvs.extend(versions.into_iter().map(|v| (g.clone(), v)));
    }
    for (g, v) in gvs {
        let Some(doc) = document(registry, &g, &v) else {
            continue;
        };
        let path = doc_path(&g, &v);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

fn hash(doc: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    doc.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// Reverse-domain schema name, as Kubernetes names CRD schemas.
fn schema_name(t: &ResourceType) -> String {
    if t.group.is_empty() {
        return format!("io.k8s.api.core.{}.{}", t.version, t.kind);
    }
    let reversed: Vec<&str> = t.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), t.version, t.kind)
}

/// `/openapi/v3/{api/v1 | apis/g/v}`
pub fn document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = registry.all();
    let served: Vec<_> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
        object_meta(),
    );
    for t in served {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let name = schema_name(t);
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}});
        let params = json!([
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}},
        ]);
        let body = json!({"content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
        }});
        let base = format!("/{}", doc_path(&t.group, &t.version));
        let item = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{base}/{}/{{name}}", t.plural)
        };
        paths.insert(item, json!({
            "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": ok},
            "put": {"x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": ok},
            "patch": {"x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk, "parameters": params,
                      "requestBody": body, "responses": ok},
        }));
        schemas.insert(name, kind_schema(t, &gvk));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn kind_schema(t: &ResourceType, gvk: &Value) -> Value {
    let mut schema = t
        .schema
        .as_ref()
        .and_then(|raw| serde_json::from_slice::<Value>(raw).ok())
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    let props = schema
        .as_object_mut()
        .expect("schemas are objects")
        .entry("properties")
        .or_insert_with(|| json!({}));
    props["apiVersion"] = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."});
    props["kind"] = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."});
    props["metadata"] = json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                               "description": "Standard object's metadata."});
    schema["x-kubernetes-group-version-kind"] = json!([gvk]);
    schema
}

fn object_meta() -> Value {
    let s = |d: &str| json!({"type": "string", "description": d});
    let map = |d: &str| json!({"type": "object", "additionalProperties": {"type": "string"}, "description": d});
    json!({
        "type": "object",
        "description": "ObjectMeta is metadata that all persisted resources must have.",
        "properties": {
            "name": s("Name must be unique within a namespace."),
            "generateName": s("Optional prefix used by the server to generate a unique name."),
            "namespace": s("Namespace defines the space within which each name must be unique."),
            "uid": s("UID is the unique in time and space value for this object."),
            "resourceVersion": s("An opaque value that represents the internal version of this object."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "When this object was created."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "When this resource will be deleted."},
            "labels": map("Map of string keys and values that can be used to organize and categorize objects."),
            "annotations": map("Unstructured key value map stored with a resource."),
            "finalizers": {"type": "array", "items": {"type": "string"}, "description": "Must be empty before the object is deleted from the registry."},
            "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "Objects depended by this object."},
            "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "Field ownership."},
        }
    })
}

/// `/openapi/v2` as JSON (Swagger 2.0) for clients that accept JSON: the same kinds and
/// schemas as v3. kubectl asks only for the gnostic protobuf encoding, which is not served
/// (404, which kubectl tolerates and answers by using v3).
pub fn v2(registry: &Registry) -> Value {
    let mut definitions = Map::new();
    let mut paths = Map::new();
    definitions.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
        object_meta(),
    );
    for t in registry.all().iter() {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let name = schema_name(t);
        let mut schema = kind_schema(t, &gvk);
        rewrite_refs(&mut schema);
        definitions.insert(name.clone(), schema);
        let base = format!("/{}", doc_path(&t.group, &t.version));
        let item = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{base}/{}/{{name}}", t.plural)
        };
        let ok = json!({"200": {"description": "OK", "schema": {"$ref": format!("#/definitions/{name}")}}});
        paths.insert(item, json!({
            "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "produces": ["application/json"], "responses": ok},
            "patch": {"x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
                      "consumes": ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"],
                      "produces": ["application/json"], "responses": ok},
        }));
    }
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths, "definitions": definitions})
}

/// v3 references (`#/components/schemas/X`) as v2 has them (`#/definitions/X`).
fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                *r = r.replace("#/components/schemas/", "#/definitions/");
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let crds: Vec<_> = phoenix_crds::all_crds()
            .into_iter()
            .map(|(_, c)| serde_json::from_value(serde_json::to_value(c).unwrap()).unwrap())
            .collect();
        Registry::new(&crds)
    }

    #[test]
    fn v3_documents_declare_field_validation_and_carry_the_crd_schema() {
        let registry = registry();
        let root = root(&registry);
        let url = root["paths"]["apis/phoenix.thinkheads.ai/v1alpha1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/phoenix.thinkheads.ai/v1alpha1?hash="));
        let doc = document(&registry, "phoenix.thinkheads.ai", "v1alpha1").unwrap();
        let patch = &doc["paths"]["/apis/phoenix.thinkheads.ai/v1alpha1/namespaces/{namespace}/lxcguests/{name}"]
            ["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "LxcGuest");
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(
            patch["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_none()
        );
        let schema = &doc["components"]["schemas"]["ai.thinkheads.phoenix.v1alpha1.LxcGuest"];
        assert_eq!(
            schema["x-kubernetes-group-version-kind"][0]["kind"],
            "LxcGuest"
        );
        assert!(schema["properties"]["spec"]["properties"]["vmid"].is_object());
    }

    #[test]
    fn v2_uses_definitions() {
        let doc = v2(&registry());
        let schema = &doc["definitions"]["ai.thinkheads.phoenix.v1alpha1.VmGuest"];
        assert_eq!(
            schema["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(doc["swagger"], "2.0");
    }
}
