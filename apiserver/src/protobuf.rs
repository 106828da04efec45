//! Protobuf request bodies, which kubectl's typed commands send and never retry as JSON
//! (`kubectl create configmap|secret|namespace`, `kubectl auth can-i`). The body is the
//! magic `k8s\0` and a `runtime.Unknown` wrapping the object; the handful of kinds are
//! decoded with the kube-rs project's `k8s-pb` types and turned into JSON.

use crate::error::{ApiError, ApiResult};
use base64::Engine;
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use prost::Message;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

pub fn decode(kind: &str, body: &[u8]) -> ApiResult<Value> {
    let bad = |what: &dyn std::fmt::Display| {
        ApiError::bad_request(format!(
            "the body of the request is not a valid protobuf {kind}: {what}"
        ))
    };
    let payload = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad(&"missing the k8s protobuf envelope"))?;
    let unknown =
        k8s_pb::apimachinery::pkg::runtime::Unknown::decode(payload).map_err(|e| bad(&e))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let sent_kind = type_meta.kind.unwrap_or_default();
    if sent_kind != kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({sent_kind}) does not match the expected kind ({kind})"
        )));
    }
    let mut object = match kind {
        "ConfigMap" => {
            let cm =
                k8s_pb::api::core::v1::ConfigMap::decode(raw.as_slice()).map_err(|e| bad(&e))?;
            let mut o =
                json!({"metadata": metadata(cm.metadata.unwrap_or_default()), "data": cm.data});
            if !cm.binary_data.is_empty() {
                o["binaryData"] = bytes_map(&cm.binary_data);
            }
            if let Some(i) = cm.immutable {
                o["immutable"] = json!(i);
            }
            o
        }
        "Secret" => {
            let s = k8s_pb::api::core::v1::Secret::decode(raw.as_slice()).map_err(|e| bad(&e))?;
            let mut o = json!({"metadata": metadata(s.metadata.unwrap_or_default()), "data": bytes_map(&s.data)});
            if !s.string_data.is_empty() {
                o["stringData"] = json!(s.string_data);
            }
            if let Some(t) = s.r#type {
                o["type"] = json!(t);
            }
            if let Some(i) = s.immutable {
                o["immutable"] = json!(i);
            }
            o
        }
        "Namespace" => {
            let ns =
                k8s_pb::api::core::v1::Namespace::decode(raw.as_slice()).map_err(|e| bad(&e))?;
            let mut o = json!({"metadata": metadata(ns.metadata.unwrap_or_default())});
            if let Some(spec) = ns.spec.filter(|s| !s.finalizers.is_empty()) {
                o["spec"] = json!({"finalizers": spec.finalizers});
            }
            o
        }
        "SelfSubjectAccessReview" => {
            let r = k8s_pb::api::authorization::v1::SelfSubjectAccessReview::decode(raw.as_slice())
                .map_err(|e| bad(&e))?;
            let spec = r.spec.unwrap_or_default();
            let mut s = Map::new();
            if let Some(a) = spec.resource_attributes {
                s.insert("resourceAttributes".into(), json!({
                    "namespace": a.namespace, "verb": a.verb, "group": a.group, "version": a.version,
                    "resource": a.resource, "subresource": a.subresource, "name": a.name,
                }));
            }
            if let Some(a) = spec.non_resource_attributes {
                s.insert(
                    "nonResourceAttributes".into(),
                    json!({"path": a.path, "verb": a.verb}),
                );
            }
            json!({"metadata": {}, "spec": s})
        }
        other => {
            return Err(ApiError::unsupported_media_type(
                "application/vnd.kubernetes.protobuf",
                &["application/json", "application/yaml"],
            )
            .with_details(json!({"kind": other})));
        }
    };
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

fn bytes_map(map: &std::collections::BTreeMap<String, Vec<u8>>) -> Value {
    let encoded: Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    Value::Object(encoded)
}

fn metadata(m: ObjectMeta) -> Value {
    let mut out = Map::new();
    for (key, value) in [
        ("name", m.name),
        ("generateName", m.generate_name),
        ("namespace", m.namespace),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out.insert(key.into(), json!(v));
        }
    }
    if !m.labels.is_empty() {
        out.insert("labels".into(), json!(m.labels));
    }
    if !m.annotations.is_empty() {
        out.insert("annotations".into(), json!(m.annotations));
    }
    if !m.finalizers.is_empty() {
        out.insert("finalizers".into(), json!(m.finalizers));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(kind: &str, api_version: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    #[test]
    fn a_kubectl_create_secret_body_decodes_to_json() {
        let secret = k8s_pb::api::core::v1::Secret {
            metadata: Some(ObjectMeta {
                name: Some("pve-token".into()),
                ..Default::default()
            }),
            data: [("tokenSecret".to_string(), b"s3cret".to_vec())].into(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let v = decode("Secret", &envelope("Secret", "v1", secret.encode_to_vec())).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pve-token"},
                              "data": {"tokenSecret": "czNjcmV0"}, "type": "Opaque"})
        );
        assert_eq!(decode("Secret", b"{}").unwrap_err().code, 400);
        assert_eq!(
            decode("ConfigMap", &envelope("Secret", "v1", vec![]))
                .unwrap_err()
                .code,
            400
        );
    }
}
