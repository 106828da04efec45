//! Admission of custom resources against their CRD's schema: prune (or reject, under
//! `fieldValidation=Strict`) undeclared fields, apply defaults, validate the structural
//! schema, then the CEL `x-kubernetes-validations` rules, including transition rules that
//! compare with the stored object. Pure functions of (schema, object, old object).

pub mod field_error;
pub mod structural;

use field_error::{FieldError, FieldErrorKind};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;
pub use structural::{SchemaError, StructuralSchema};

/// The `fieldValidation` query parameter: what to do with undeclared fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn (kube-apiserver's default).
    #[default]
    Warn,
    /// Refuse the write (kubectl's default).
    Strict,
}

/// Why a write was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// Undeclared fields under `fieldValidation=Strict` (400 BadRequest).
    UnknownFields(Vec<String>),
    /// Schema or CEL violations (422 Invalid).
    Invalid(Vec<FieldError>),
}

impl Rejection {
    /// The Status message kube-apiserver gives, e.g.
    /// `LxcGuest.phoenix.thinkheads.ai "x" is invalid: spec.vmid: Invalid value: ...`.
    pub fn message(&self, kind: &str, group: &str, version: &str, name: &str) -> String {
        match self {
            Rejection::UnknownFields(paths) => {
                let fields: Vec<String> = paths
                    .iter()
                    .map(|p| format!("unknown field {p:?}"))
                    .collect();
                format!(
                    "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                    fields.join(", ")
                )
            }
            Rejection::Invalid(errors) => {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let body = match list.as_slice() {
                    [one] => one.clone(),
                    many => format!("[{}]", many.join(", ")),
                };
                format!("{kind}.{group} {name:?} is invalid: {body}")
            }
        }
    }
}

/// One served version of one CRD, compiled for admission.
pub struct CrdValidator {
    structural: StructuralSchema,
    cel: Option<kube_cel::CompiledSchema>,
}

impl std::fmt::Debug for CrdValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrdValidator")
            .field("cel", &self.cel.is_some())
            .finish_non_exhaustive()
    }
}

impl CrdValidator {
    /// Compiles the `openAPIV3Schema` of `version` of `crd`.
    pub fn from_crd(crd: &CustomResourceDefinition, version: &str) -> Result<Self, SchemaError> {
        let schema = crd
            .spec
            .versions
            .iter()
            .find(|v| v.name == version)
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .ok_or_else(|| SchemaError {
                path: format!("spec.versions[{version}].schema.openAPIV3Schema"),
                message: "Required value".into(),
            })?;
        let schema = serde_json::to_value(schema).map_err(|e| SchemaError {
            path: "spec.versions.schema".into(),
            message: e.to_string(),
        })?;
        Self::from_schema(&schema)
    }

    pub fn from_schema(schema: &Value) -> Result<Self, SchemaError> {
        let structural = StructuralSchema::compile(schema)?;
        let has_rules = schema.to_string().contains("x-kubernetes-validations");
        let cel = has_rules.then(|| kube_cel::compile_schema(schema));
        Ok(Self { structural, cel })
    }

    /// Runs a create (`old` = None) or update through pruning, defaulting and validation.
    /// On success `object` is what would be stored; the strings are warnings for the
    /// `Warning` header.
    pub fn admit(
        &self,
        object: &mut Value,
        old: Option<&Value>,
        field_validation: FieldValidation,
    ) -> Result<Vec<String>, Rejection> {
        let unknown = self.structural.prune(object);
        let warnings = match field_validation {
            FieldValidation::Strict if !unknown.is_empty() => {
                return Err(Rejection::UnknownFields(unknown));
            }
            FieldValidation::Warn => unknown
                .iter()
                .map(|p| format!("unknown field {p:?}"))
                .collect(),
            _ => Vec::new(),
        };
        self.structural.apply_defaults(object);
        let errors = self.structural.validate(object);
        if !errors.is_empty() {
            return Err(Rejection::Invalid(errors));
        }
        self.check_rules(object, old)?;
        Ok(warnings)
    }

    fn check_rules(&self, object: &Value, old: Option<&Value>) -> Result<(), Rejection> {
        let Some(cel) = &self.cel else { return Ok(()) };
        let Err(failures) = kube_cel::validate_compiled(cel, object, old) else {
            return Ok(());
        };
        let errors = failures
            .iter()
            .map(|f| {
                // As kube-apiserver: a scalar is shown, an object or a list is not.
                let kind = match lookup(object, &f.field_path) {
                    Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
                        FieldErrorKind::Invalid(v.clone())
                    }
                    _ => FieldErrorKind::InvalidUnshown,
                };
                FieldError::new(f.field_path.clone(), kind, f.message.clone())
            })
            .collect();
        Err(Rejection::Invalid(errors))
    }
}

/// The value at a field path such as `spec.network[0].ip`.
fn lookup<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(object, |value, segment| {
            let (name, indexes) = segment.split_once('[').unwrap_or((segment, ""));
            let mut current = if name.is_empty() {
                value
            } else {
                value.get(name)?
            };
            for index in indexes.split('[').filter(|s| !s.is_empty()) {
                let key = index.trim_end_matches(']');
                current = match key.parse::<usize>() {
                    Ok(i) if current.is_array() => current.get(i)?,
                    _ => current.get(key)?,
                };
            }
            Some(current)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator() -> CrdValidator {
        CrdValidator::from_schema(&json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {
                    "vmid": {"type": "integer", "x-kubernetes-validations": [
                        {"rule": "self == oldSelf", "message": "vmid is immutable"}]},
                    "a": {"type": "string"},
                    "b": {"type": "string"}
                },
                "x-kubernetes-validations": [
                    {"rule": "!(has(self.a) && has(self.b))", "message": "a and b are mutually exclusive"}]
            }}
        }))
        .unwrap()
    }

    #[test]
    fn transition_rules_compare_with_the_stored_object() {
        let old = json!({"spec": {"vmid": 801}});
        let mut same = old.clone();
        assert_eq!(
            validator().admit(&mut same, Some(&old), FieldValidation::Strict),
            Ok(vec![])
        );
        let mut changed = json!({"spec": {"vmid": 802}});
        let err = validator()
            .admit(&mut changed, Some(&old), FieldValidation::Strict)
            .unwrap_err();
        assert_eq!(
            err.message("LxcGuest", "phoenix.thinkheads.ai", "v1alpha1", "x"),
            "LxcGuest.phoenix.thinkheads.ai \"x\" is invalid: spec.vmid: Invalid value: 802: vmid is immutable"
        );
        let mut created = json!({"spec": {"vmid": 802}});
        assert!(
            validator()
                .admit(&mut created, None, FieldValidation::Strict)
                .is_ok()
        );
    }

    #[test]
    fn object_rules_name_the_object() {
        let mut both = json!({"spec": {"vmid": 1, "a": "x", "b": "y"}});
        let Err(Rejection::Invalid(errors)) =
            validator().admit(&mut both, None, FieldValidation::Strict)
        else {
            panic!("expected a rejection")
        };
        assert_eq!(
            errors[0].to_string(),
            "spec: Invalid value: a and b are mutually exclusive"
        );
    }

    #[test]
    fn unknown_fields_are_refused_warned_or_dropped() {
        let v = validator();
        let mut strict = json!({"spec": {"vmid": 1, "foo": 2}});
        let err = v
            .admit(&mut strict, None, FieldValidation::Strict)
            .unwrap_err();
        assert_eq!(
            err.message("LxcGuest", "phoenix.thinkheads.ai", "v1alpha1", "x"),
            "LxcGuest in version \"v1alpha1\" cannot be handled as a LxcGuest: strict decoding error: unknown field \"spec.foo\""
        );
        let mut warn = json!({"spec": {"vmid": 1, "foo": 2}});
        assert_eq!(
            v.admit(&mut warn, None, FieldValidation::Warn),
            Ok(vec!["unknown field \"spec.foo\"".into()])
        );
        assert_eq!(warn, json!({"spec": {"vmid": 1}}));
        let mut ignore = json!({"spec": {"vmid": 1, "foo": 2}});
        assert_eq!(
            v.admit(&mut ignore, None, FieldValidation::Ignore),
            Ok(vec![])
        );
    }

    #[test]
    fn lookup_follows_field_paths() {
        let v = json!({"spec": {"network": [{"ip": "dhcp"}], "labels": {"a": "b"}}});
        assert_eq!(lookup(&v, "spec.network[0].ip"), Some(&json!("dhcp")));
        assert_eq!(lookup(&v, "spec.labels[a]"), Some(&json!("b")));
        assert_eq!(lookup(&v, "spec.missing"), None);
    }
}
