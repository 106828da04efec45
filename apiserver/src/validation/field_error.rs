//! Field errors in kube-apiserver's words, so kubectl prints exactly what users know:
//! `spec.vmid: Invalid value: 42: spec.vmid in body should be greater than or equal to 100`.

use serde_json::Value;
use std::fmt;

/// One invalid field, as `k8s.io/apimachinery/pkg/util/validation/field.Error`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// `spec.network[0].ip`
    pub field: String,
    pub kind: FieldErrorKind,
    /// What was wrong, after the value; may be empty for `Required`.
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FieldErrorKind {
    Required,
    /// Bad value: the value is shown as in the API server's messages.
    Invalid(Value),
    /// Bad value not shown: a CEL rule that fails on an object or a list (kube-apiserver
    /// names no value there, only the rule's message).
    InvalidUnshown,
    /// Wrong JSON type: shows the name of the type given.
    TypeInvalid(Value),
    NotSupported {
        value: Value,
        supported: Vec<Value>,
    },
    TooLong {
        max: u64,
    },
    TooMany {
        actual: usize,
        max: u64,
    },
    Duplicate(Value),
    Forbidden,
}

impl FieldError {
    pub fn new(field: impl Into<String>, kind: FieldErrorKind, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind,
            detail: detail.into(),
        }
    }

    /// The `reason` of the matching `details.causes[]` entry of a 422 Status.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid(_) | FieldErrorKind::InvalidUnshown => "FieldValueInvalid",
            FieldErrorKind::TypeInvalid(_) => "FieldValueTypeInvalid",
            FieldErrorKind::NotSupported { .. } => "FieldValueNotSupported",
            FieldErrorKind::TooLong { .. } => "FieldValueTooLong",
            FieldErrorKind::TooMany { .. } => "FieldValueTooMany",
            FieldErrorKind::Duplicate(_) => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
        }
    }

    /// The cause message without the field: what follows `field: ` in the full text.
    pub fn body(&self) -> String {
        let with_detail = |head: String| {
            if self.detail.is_empty() {
                head
            } else {
                format!("{head}: {}", self.detail)
            }
        };
        match &self.kind {
            FieldErrorKind::Required => with_detail("Required value".into()),
            FieldErrorKind::Invalid(v) | FieldErrorKind::TypeInvalid(v) => {
                with_detail(format!("Invalid value: {}", show_value(v)))
            }
            FieldErrorKind::InvalidUnshown => with_detail("Invalid value".into()),
            FieldErrorKind::NotSupported { value, supported } => {
                let list: Vec<String> = supported.iter().map(show_value).collect();
                format!(
                    "Unsupported value: {}: supported values: {}",
                    show_value(value),
                    list.join(", ")
                )
            }
            FieldErrorKind::TooLong { max } => {
                format!("Too long: may not be more than {max} bytes")
            }
            FieldErrorKind::TooMany { actual, max } => {
                format!("Too many: {actual}: must have at most {max} items")
            }
            FieldErrorKind::Duplicate(v) => format!("Duplicate value: {}", show_value(v)),
            FieldErrorKind::Forbidden => with_detail("Forbidden".into()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A value as field errors print it: strings quoted, numbers and booleans bare, and
/// composite values by their type name (the API server never echoes whole objects).
pub fn show_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
    }
}

/// The strings of a JSON list (anything else in it, or no list at all, gives none).
pub fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The JSON type name the API server uses in `must be of type` messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
    }
}

/// Builds `spec.network[0].ip`-style paths while walking a value.
#[derive(Clone, Debug, Default)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn root() -> Self {
        Self::default()
    }

    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_read_like_kube_apiserver() {
        let e = FieldError::new(
            "spec.vmid",
            FieldErrorKind::Invalid(json!(42)),
            "spec.vmid in body should be greater than or equal to 100",
        );
        assert_eq!(
            e.to_string(),
            "spec.vmid: Invalid value: 42: spec.vmid in body should be greater than or equal to 100"
        );
        let e = FieldError::new(
            "spec.deletionPolicy",
            FieldErrorKind::NotSupported {
                value: json!("Keep"),
                supported: vec![json!("Delete"), json!("Retain")],
            },
            "",
        );
        assert_eq!(
            e.to_string(),
            r#"spec.deletionPolicy: Unsupported value: "Keep": supported values: "Delete", "Retain""#
        );
        assert_eq!(
            FieldError::new("spec.vmid", FieldErrorKind::Required, "").to_string(),
            "spec.vmid: Required value"
        );
    }

    #[test]
    fn paths_nest_like_field_paths() {
        let p = FieldPath::root()
            .child("spec")
            .child("network")
            .index(0)
            .child("ip");
        assert_eq!(p.as_str(), "spec.network[0].ip");
        assert_eq!(
            FieldPath::root().child("data").key("a.b").as_str(),
            "data[a.b]"
        );
    }
}
