//! A CRD's structural schema, compiled once, and the three passes the API server runs on
//! every custom-resource write, in kube-apiserver's order: prune unknown fields, apply
//! defaults, validate. Messages follow kube-openapi's, since kubectl shows them verbatim.

use super::field_error::{FieldError, FieldErrorKind, FieldPath, string_list, type_name};
use regex::Regex;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A schema that cannot be compiled (e.g. an invalid `pattern`).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

/// One node of an `openAPIV3Schema`, with its pattern compiled.
#[derive(Debug, Default)]
pub struct StructuralSchema {
    type_: Option<String>,
    nullable: bool,
    int_or_string: bool,
    preserve_unknown: bool,
    embedded_resource: bool,
    properties: BTreeMap<String, StructuralSchema>,
    required: Vec<String>,
    additional: Option<Box<StructuralSchema>>,
    additional_any: bool,
    items: Option<Box<StructuralSchema>>,
    enum_values: Vec<Value>,
    pattern: Option<(String, Regex)>,
    format: Option<String>,
    minimum: Option<(f64, bool)>,
    maximum: Option<(f64, bool)>,
    multiple_of: Option<f64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    list_type_set: bool,
    default: Option<Value>,
}

impl StructuralSchema {
    /// Compiles an `openAPIV3Schema` given as JSON.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        compile_node(schema, &FieldPath::root().child("openAPIV3Schema"))
    }

    /// Whether the node keeps fields it does not declare.
    fn keeps_unknown(&self) -> bool {
        self.preserve_unknown || self.additional_any
    }

    /// Removes fields the schema does not declare and returns their paths, as kube-apiserver
    /// prunes them (and names them under `fieldValidation=Strict|Warn`). `apiVersion`, `kind`
    /// and `metadata` of the root and of embedded resources are never pruned here.
    pub fn prune(&self, value: &mut Value) -> Vec<String> {
        let mut unknown = Vec::new();
        self.prune_at(value, &FieldPath::root(), true, &mut unknown);
        unknown
    }

    fn prune_at(
        &self,
        value: &mut Value,
        path: &FieldPath,
        is_root: bool,
        unknown: &mut Vec<String>,
    ) {
        match value {
            Value::Object(map) => {
                let keep_meta = is_root || self.embedded_resource;
                if let Some(additional) = &self.additional {
                    for (k, v) in map.iter_mut() {
                        additional.prune_at(v, &path.key(k), false, unknown);
                    }
                    return;
                }
                if !self.keeps_unknown() {
                    let is_meta =
                        |k: &str| keep_meta && matches!(k, "apiVersion" | "kind" | "metadata");
                    let undeclared =
                        |k: &&String| !(self.properties.contains_key(*k) || is_meta(k));
                    let drop: Vec<String> = map.keys().filter(undeclared).cloned().collect();
                    for k in drop {
                        unknown.push(path.child(&k).to_string());
                        map.remove(&k);
                    }
                }
                for (k, v) in map.iter_mut() {
                    if let Some(prop) = self.properties.get(k) {
                        prop.prune_at(v, &path.child(k), false, unknown);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(schema) = &self.items {
                    for (i, item) in items.iter_mut().enumerate() {
                        schema.prune_at(item, &path.index(i), false, unknown);
                    }
                }
            }
            _ => {}
        }
    }

    /// Fills in `default`s for absent fields (and for `null` where null is not allowed),
    /// inside objects that exist, as kube-apiserver does.
    pub fn apply_defaults(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (name, prop) in &self.properties {
                    let missing = match map.get(name) {
                        None => true,
                        Some(Value::Null) => !prop.nullable,
                        Some(_) => false,
                    };
                    if missing && let Some(default) = &prop.default {
                        map.insert(name.clone(), default.clone());
                    }
                    if let Some(child) = map.get_mut(name) {
                        prop.apply_defaults(child);
                    }
                }
                if let Some(additional) = &self.additional {
                    map.values_mut().for_each(|v| additional.apply_defaults(v));
                }
            }
            Value::Array(items) => {
                if let Some(schema) = &self.items {
                    items.iter_mut().for_each(|v| schema.apply_defaults(v));
                }
            }
            _ => {}
        }
    }

    /// Every schema violation in `value`, each with its field path.
    pub fn validate(&self, value: &Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.validate_at(value, &FieldPath::root(), &mut errors);
        errors
    }

    fn validate_at(&self, value: &Value, path: &FieldPath, errors: &mut Vec<FieldError>) {
        if value.is_null() {
            if !self.nullable && self.type_.is_some() {
                errors.push(self.type_error(value, path));
            }
            return;
        }
        if !self.type_matches(value) {
            errors.push(self.type_error(value, path));
            return;
        }
        if !self.enum_values.is_empty() && !self.enum_values.contains(value) {
            errors.push(FieldError::new(
                path.as_str(),
                FieldErrorKind::NotSupported {
                    value: value.clone(),
                    supported: self.enum_values.clone(),
                },
                "",
            ));
        }
        match value {
            Value::String(s) => self.validate_string(s, value, path, errors),
            Value::Number(n) => {
                self.validate_number(n.as_f64().unwrap_or_default(), value, path, errors)
            }
            Value::Array(items) => self.validate_array(items, value, path, errors),
            Value::Object(map) => self.validate_object(map, path, errors),
            _ => {}
        }
    }

    fn type_matches(&self, value: &Value) -> bool {
        if self.int_or_string {
            return value.is_string() || value.is_i64() || value.is_u64();
        }
        match self.type_.as_deref() {
            None => true,
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("boolean") => value.is_boolean(),
            Some("integer") => value.is_i64() || value.is_u64() || is_integral(value),
            Some("number") => value.is_number(),
            Some(_) => true,
        }
    }

    fn type_error(&self, value: &Value, path: &FieldPath) -> FieldError {
        let want = if self.int_or_string {
            "integer,string"
        } else {
            self.type_.as_deref().unwrap_or("object")
        };
        let given = type_name(value);
        FieldError::new(
            path.as_str(),
            FieldErrorKind::TypeInvalid(Value::String(given.into())),
            format!("{path} in body must be of type {want}: \"{given}\""),
        )
    }

    fn validate_string(
        &self,
        s: &str,
        value: &Value,
        path: &FieldPath,
        errors: &mut Vec<FieldError>,
    ) {
        let chars = s.chars().count() as u64;
        if let Some(max) = self.max_length
            && chars > max
        {
            errors.push(FieldError::new(
                path.as_str(),
                FieldErrorKind::TooLong { max },
                "",
            ));
        }
        if let Some(min) = self.min_length
            && chars < min
        {
            errors.push(invalid(
                value,
                path,
                format!("{path} in body should be at least {min} chars long"),
            ));
        }
        if let Some((source, regex)) = &self.pattern
            && !regex.is_match(s)
        {
            errors.push(invalid(
                value,
                path,
                format!("{path} in body should match '{source}'"),
            ));
        }
        if let Some(format) = &self.format
            && !format_matches(format, s)
        {
            errors.push(invalid(
                value,
                path,
                format!("{path} in body must be of type {format}: {s:?}"),
            ));
        }
    }

    fn validate_number(
        &self,
        n: f64,
        value: &Value,
        path: &FieldPath,
        errors: &mut Vec<FieldError>,
    ) {
        if let Some((min, exclusive)) = self.minimum
            && (n < min || (exclusive && n == min))
        {
            let op = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(invalid(
                value,
                path,
                format!("{path} in body should be {op} {}", show_bound(min)),
            ));
        }
        if let Some((max, exclusive)) = self.maximum
            && (n > max || (exclusive && n == max))
        {
            let op = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(invalid(
                value,
                path,
                format!("{path} in body should be {op} {}", show_bound(max)),
            ));
        }
        if let Some(m) = self.multiple_of
            && m != 0.0
            && (n / m).fract() != 0.0
        {
            errors.push(invalid(
                value,
                path,
                format!("{path} in body should be a multiple of {}", show_bound(m)),
            ));
        }
    }

    fn validate_array(
        &self,
        items: &[Value],
        value: &Value,
        path: &FieldPath,
        errors: &mut Vec<FieldError>,
    ) {
        if let Some(max) = self.max_items
            && items.len() as u64 > max
        {
            errors.push(FieldError::new(
                path.as_str(),
                FieldErrorKind::TooMany {
                    actual: items.len(),
                    max,
                },
                "",
            ));
        }
        if let Some(min) = self.min_items
            && (items.len() as u64) < min
        {
            errors.push(invalid(
                value,
                path,
                format!("{path} in body should have at least {min} items"),
            ));
        }
        if let Some(schema) = &self.items {
            for (i, item) in items.iter().enumerate() {
                schema.validate_at(item, &path.index(i), errors);
            }
        }
        if self.list_type_set {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errors.push(FieldError::new(
                        path.index(i).as_str(),
                        FieldErrorKind::Duplicate(item.clone()),
                        "",
                    ));
                }
            }
        }
    }

    fn validate_object(
        &self,
        map: &Map<String, Value>,
        path: &FieldPath,
        errors: &mut Vec<FieldError>,
    ) {
        for name in &self.required {
            if !map.contains_key(name) {
                errors.push(FieldError::new(
                    path.child(name).as_str(),
                    FieldErrorKind::Required,
                    "",
                ));
            }
        }
        let count = map.len() as u64;
        if let Some(max) = self.max_properties
            && count > max
        {
            errors.push(FieldError::new(
                path.as_str(),
                FieldErrorKind::TooMany {
                    actual: map.len(),
                    max,
                },
                "",
            ));
        }
        if let Some(min) = self.min_properties
            && count < min
        {
            let detail = format!("{path} in body should have at least {min} properties");
            errors.push(FieldError::new(
                path.as_str(),
                FieldErrorKind::Invalid(Value::from(count)),
                detail,
            ));
        }
        for (k, v) in map {
            if let Some(prop) = self.properties.get(k) {
                prop.validate_at(v, &path.child(k), errors);
            } else if let Some(additional) = &self.additional {
                additional.validate_at(v, &path.key(k), errors);
            }
        }
    }
}

fn invalid(value: &Value, path: &FieldPath, detail: String) -> FieldError {
    FieldError::new(
        path.as_str(),
        FieldErrorKind::Invalid(value.clone()),
        detail,
    )
}

fn is_integral(value: &Value) -> bool {
    value.as_f64().is_some_and(|f| f.fract() == 0.0)
}

/// Bounds print as Go's `%v` prints a float64: `100`, not `100.0`.
fn show_bound(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// The string formats Kubernetes checks; others (and the integer ones) are accepted.
fn format_matches(format: &str, s: &str) -> bool {
    match format {
        "date-time" => chrono_like_rfc3339(s),
        "byte" => base64_like(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "uuid" => s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
        _ => true,
    }
}

fn chrono_like_rfc3339(s: &str) -> bool {
    static RFC3339: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
            .expect("static regex")
    });
    RFC3339.is_match(s)
}

fn base64_like(s: &str) -> bool {
    s.len().is_multiple_of(4)
        && s.trim_end_matches('=')
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

fn compile_node(schema: &Value, path: &FieldPath) -> Result<StructuralSchema, SchemaError> {
    let Some(obj) = schema.as_object() else {
        return Err(SchemaError {
            path: path.to_string(),
            message: "must be an object".into(),
        });
    };
    let bool_of = |key: &str| obj.get(key).and_then(Value::as_bool).unwrap_or(false);
    let u64_of = |key: &str| obj.get(key).and_then(Value::as_u64);
    let mut node = StructuralSchema {
        type_: obj.get("type").and_then(Value::as_str).map(str::to_owned),
        nullable: bool_of("nullable"),
        int_or_string: bool_of("x-kubernetes-int-or-string"),
        preserve_unknown: bool_of("x-kubernetes-preserve-unknown-fields"),
        embedded_resource: bool_of("x-kubernetes-embedded-resource"),
        required: string_list(obj.get("required")),
        enum_values: obj
            .get("enum")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        format: obj.get("format").and_then(Value::as_str).map(str::to_owned),
        minimum: obj
            .get("minimum")
            .and_then(Value::as_f64)
            .map(|m| (m, bool_of("exclusiveMinimum"))),
        maximum: obj
            .get("maximum")
            .and_then(Value::as_f64)
            .map(|m| (m, bool_of("exclusiveMaximum"))),
        multiple_of: obj.get("multipleOf").and_then(Value::as_f64),
        min_length: u64_of("minLength"),
        max_length: u64_of("maxLength"),
        min_items: u64_of("minItems"),
        max_items: u64_of("maxItems"),
        min_properties: u64_of("minProperties"),
        max_properties: u64_of("maxProperties"),
        list_type_set: obj.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set"),
        default: obj.get("default").cloned(),
        ..Default::default()
    };
    if let Some(pattern) = obj.get("pattern").and_then(Value::as_str) {
        let regex = Regex::new(pattern).map_err(|e| SchemaError {
            path: path.child("pattern").to_string(),
            message: format!("invalid regular expression: {e}"),
        })?;
        node.pattern = Some((pattern.to_owned(), regex));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let child = compile_node(prop, &path.child("properties").key(name))?;
            node.properties.insert(name.clone(), child);
        }
    }
    match obj.get("additionalProperties") {
        Some(Value::Bool(true)) => node.additional_any = true,
        Some(v @ Value::Object(_)) => {
            node.additional = Some(Box::new(compile_node(
                v,
                &path.child("additionalProperties"),
            )?));
        }
        _ => {}
    }
    if let Some(items) = obj.get("items") {
        node.items = Some(Box::new(compile_node(items, &path.child("items"))?));
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> StructuralSchema {
        StructuralSchema::compile(&json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["vmid"],
                    "properties": {
                        "vmid": {"type": "integer", "minimum": 100, "maximum": 999999999},
                        "hostname": {"type": "string", "pattern": "^[a-z0-9-]+$", "maxLength": 8},
                        "policy": {"type": "string", "enum": ["Delete", "Retain"], "default": "Delete"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "port": {"x-kubernetes-int-or-string": true},
                        "any": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "nics": {"type": "array", "maxItems": 1, "items": {
                            "type": "object",
                            "properties": {"ip": {"type": "string", "default": "dhcp"}}
                        }}
                    }
                }
            }
        }))
        .unwrap()
    }

    fn messages(value: Value) -> Vec<String> {
        schema()
            .validate(&value)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn reports_each_violation_with_its_path() {
        let got = messages(json!({"spec": {
            "vmid": 42, "hostname": "Bad_Host!", "policy": "Keep", "labels": {"a": 1},
            "nics": [{}, {}]
        }}));
        assert_eq!(
            got,
            vec![
                "spec.hostname: Too long: may not be more than 8 bytes",
                "spec.hostname: Invalid value: \"Bad_Host!\": spec.hostname in body should match '^[a-z0-9-]+$'",
                "spec.labels[a]: Invalid value: \"integer\": spec.labels[a] in body must be of type string: \"integer\"",
                "spec.nics: Too many: 2: must have at most 1 items",
                "spec.policy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Retain\"",
                "spec.vmid: Invalid value: 42: spec.vmid in body should be greater than or equal to 100",
            ]
        );
    }

    #[test]
    fn type_mismatch_and_required() {
        assert_eq!(
            messages(json!({"spec": {"vmid": "801"}})),
            vec![
                "spec.vmid: Invalid value: \"string\": spec.vmid in body must be of type integer: \"string\""
            ]
        );
        assert_eq!(
            messages(json!({"spec": {}})),
            vec!["spec.vmid: Required value"]
        );
    }

    #[test]
    fn int_or_string_and_preserved_fields_accept_what_they_declare() {
        assert!(
            messages(json!({"spec": {"vmid": 100, "port": "http", "any": {"x": [1]}}})).is_empty()
        );
        assert!(messages(json!({"spec": {"vmid": 100, "port": 8080}})).is_empty());
        assert_eq!(
            messages(json!({"spec": {"vmid": 100, "port": true}})).len(),
            1
        );
    }

    #[test]
    fn prune_removes_undeclared_fields_and_names_them() {
        let mut v = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"vmid": 100, "foo": 1, "any": {"kept": true}, "nics": [{"bar": 2}]}, "extra": 3});
        let unknown = schema().prune(&mut v);
        assert_eq!(unknown, vec!["extra", "spec.foo", "spec.nics[0].bar"]);
        assert_eq!(
            v,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"vmid": 100, "any": {"kept": true}, "nics": [{}]}})
        );
    }

    #[test]
    fn defaults_fill_absent_fields_of_existing_objects_only() {
        let mut v = json!({"spec": {"vmid": 100, "nics": [{}, {"ip": "10.0.0.5/24"}]}});
        schema().apply_defaults(&mut v);
        assert_eq!(v["spec"]["policy"], "Delete");
        assert_eq!(
            v["spec"]["nics"],
            json!([{"ip": "dhcp"}, {"ip": "10.0.0.5/24"}])
        );
        let mut empty = json!({});
        schema().apply_defaults(&mut empty);
        assert_eq!(empty, json!({}));
    }

    #[test]
    fn a_bad_pattern_is_a_schema_error() {
        let err =
            StructuralSchema::compile(&json!({"type": "string", "pattern": "("})).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("openAPIV3Schema.pattern: invalid regular expression")
        );
    }
}
