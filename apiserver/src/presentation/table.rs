//! `meta.k8s.io/v1` Table responses: CRD printer columns (Kubernetes JSONPath subset) and
//! the built-in kinds' columns, with ages pre-formatted as kubectl expects.

use crate::resources::{Builtin, ResourceType};
use serde_json::{Value, json};

/// Column definitions for a resource type: Name first, then the type's own.
pub fn columns(rt: &ResourceType) -> Vec<Value> {
    let col = |name: &str, type_: &str, format: &str, priority: i32, description: &str| json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority});
    let mut cols = vec![col(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    )];
    match rt.builtin {
        None if !rt.columns.is_empty() => {
            for c in &rt.columns {
                cols.push(col(
                    &c.name,
                    &c.type_,
                    c.format.as_deref().unwrap_or(""),
                    c.priority.unwrap_or(0),
                    c.description.as_deref().unwrap_or(""),
                ));
            }
        }
        None => cols.push(col("Age", "date", "", 0, "CreationTimestamp")),
        Some(Builtin::Namespace) => {
            cols.push(col(
                "Status",
                "string",
                "",
                0,
                "The status of the namespace",
            ));
            cols.push(col("Age", "string", "", 0, "CreationTimestamp"));
        }
        Some(Builtin::ConfigMap) => {
            cols.push(col("Data", "string", "", 0, "Number of keys"));
            cols.push(col("Age", "string", "", 0, "CreationTimestamp"));
        }
        Some(Builtin::Secret) => {
            cols.push(col("Type", "string", "", 0, "The type of the secret"));
            cols.push(col("Data", "string", "", 0, "Number of keys"));
            cols.push(col("Age", "string", "", 0, "CreationTimestamp"));
        }
        Some(Builtin::Lease) => {
            cols.push(col("Holder", "string", "", 0, "The holder of the lease"));
            cols.push(col("Age", "string", "", 0, "CreationTimestamp"));
        }
        Some(Builtin::CoreEvent | Builtin::EventsV1) => {
            cols[0] = col(
                "Last Seen",
                "string",
                "",
                0,
                "Time since the event was last seen",
            );
            cols.push(col("Type", "string", "", 0, "Event type"));
            cols.push(col("Reason", "string", "", 0, "Why the event was emitted"));
            cols.push(col("Object", "string", "", 0, "The object it is about"));
            cols.push(col("Source", "string", "", 1, "Who emitted it"));
            cols.push(col(
                "Message",
                "string",
                "",
                0,
                "A human-readable description",
            ));
            cols.push(col("Count", "string", "", 1, "How often it was seen"));
            cols.push(col("Name", "string", "name", 1, "Name of the event"));
        }
        Some(Builtin::Crd | Builtin::AccessReview) => {
            cols.push(col("Created At", "date", "", 0, "CreationTimestamp"));
        }
    }
    cols
}

/// The cells of one row, in column order.
pub fn cells(rt: &ResourceType, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = object
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let age = || Value::String(age_of(object.pointer("/metadata/creationTimestamp"), now));
    let count = |o: &Value| {
        let n = ["data", "binaryData"]
            .iter()
            .filter_map(|f| o.get(f).and_then(Value::as_object))
            .map(|m| m.len())
            .sum::<usize>();
        Value::String(n.to_string())
    };
    let text = |p: &str| {
        object
            .pointer(p)
            .cloned()
            .unwrap_or(Value::String(String::new()))
    };
    match rt.builtin {
        None if !rt.columns.is_empty() => {
            let mut row = vec![name];
            for c in &rt.columns {
                row.push(cell(&c.type_, jsonpath_first(object, &c.json_path), now));
            }
            row
        }
        None => vec![name, age()],
        Some(Builtin::Namespace) => vec![name, text("/status/phase"), age()],
        Some(Builtin::ConfigMap) => vec![name, count(object), age()],
        Some(Builtin::Secret) => vec![name, text("/type"), count(object), age()],
        Some(Builtin::Lease) => vec![name, text("/spec/holderIdentity"), age()],
        Some(Builtin::CoreEvent | Builtin::EventsV1) => {
            let last = object
                .get("lastTimestamp")
                .filter(|v| !v.is_null())
                .or_else(|| object.pointer("/series/lastObservedTime"))
                .or_else(|| object.get("eventTime"));
            let involved = format!(
                "{}/{}",
                object
                    .pointer("/involvedObject/kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_lowercase(),
                object
                    .pointer("/involvedObject/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            );
            let source = object
                .pointer("/source/component")
                .or_else(|| object.get("reportingComponent"))
                .cloned()
                .unwrap_or(Value::String(String::new()));
            vec![
                Value::String(age_of(last, now)),
                text("/type"),
                text("/reason"),
                Value::String(involved),
                source,
                text("/message"),
                Value::String(
                    object
                        .get("count")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                        .to_string(),
                ),
                name,
            ]
        }
        Some(Builtin::Crd | Builtin::AccessReview) => {
            vec![name, text("/metadata/creationTimestamp")]
        }
    }
}

fn cell(type_: &str, value: Option<Value>, now: jiff::Timestamp) -> Value {
    let Some(value) = value else {
        return Value::Null;
    };
    match type_ {
        "integer" => value.as_f64().map_or(Value::Null, |f| json!(f as i64)),
        "number" => value.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => value.as_bool().map_or(Value::Null, Value::Bool),
        "date" => Value::String(age_of(Some(&value), now)),
        _ => match value {
            Value::String(s) => Value::String(s),
            other => Value::String(other.to_string()),
        },
    }
}

fn age_of(timestamp: Option<&Value>, now: jiff::Timestamp) -> String {
    let Some(text) = timestamp.and_then(Value::as_str) else {
        return "<unknown>".into();
    };
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(now.as_second() - t.as_second()),
        Err(_) => "<invalid>".into(),
    }
}

/// apimachinery's `HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    let y = d / 365;
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if y < 2 {
        format!("{d}d")
    } else if y < 8 {
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{y}y")
    }
}

/// First result of a printer-column JSONPath: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.type=="Ready")].status` (`==`, `!=`), `['key.with.dots']`.
pub fn jsonpath_first(object: &Value, path: &str) -> Option<Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut current = vec![object.clone()];
    let mut rest = path;
    while !rest.is_empty() {
        let (step, remaining) = next_step(rest)?;
        rest = remaining;
        current = current.iter().flat_map(|v| apply_step(v, &step)).collect();
        if current.is_empty() {
            return None;
        }
    }
    current.into_iter().next()
}

enum Step {
    Field(String),
    Index(usize),
    All,
    Filter {
        field: String,
        negate: bool,
        value: String,
    },
}

fn next_step(rest: &str) -> Option<(Step, &str)> {
    if let Some(r) = rest.strip_prefix('.') {
        if r.starts_with('[') {
            return next_step(r);
        }
        let end = r.find(['.', '[']).unwrap_or(r.len());
        return Some((Step::Field(r.get(..end)?.to_owned()), r.get(end..)?));
    }
    let body = rest.strip_prefix('[')?;
    let inner_end = body.find(']')?;
    let inner = body.get(..inner_end)?;
    let remaining = body.get(inner_end + 1..)?;
    if inner == "*" {
        return Some((Step::All, remaining));
    }
    if let Some(quoted) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Some((Step::Field(quoted.to_owned()), remaining));
    }
    if let Some(filter) = inner.strip_prefix("?(@.").and_then(|s| s.strip_suffix(')')) {
        let (field, negate, value) = if let Some((f, v)) = filter.split_once("!=") {
            (f, true, v)
        } else {
            let (f, v) = filter.split_once("==")?;
            (f, false, v)
        };
        let value = value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_owned();
        return Some((
            Step::Filter {
                field: field.trim().to_owned(),
                negate,
                value,
            },
            remaining,
        ));
    }
    Some((Step::Index(inner.parse().ok()?), remaining))
}

fn apply_step(value: &Value, step: &Step) -> Vec<Value> {
    match step {
        Step::Field(f) => value.get(f).cloned().into_iter().collect(),
        Step::Index(i) => value.get(*i).cloned().into_iter().collect(),
        Step::All => match value {
            Value::Array(a) => a.clone(),
            Value::Object(m) => m.values().cloned().collect(),
            _ => Vec::new(),
        },
        Step::Filter {
            field,
            negate,
            value: want,
        } => value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|item| {
                        let got = match item.get(field) {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => return false,
                        };
                        (got == *want) != *negate
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The Table of `objects`, each turned into its row as it comes (a LIST of a large fleet
/// never holds every object parsed at once, only the rows); `include` is the
/// `includeObject` parameter.
pub fn table(
    rt: &ResourceType,
    objects: impl IntoIterator<Item = Value>,
    list_meta: Value,
    include: &str,
    with_columns: bool,
) -> Value {
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|mut o| {
            let cells = cells(rt, &o, now);
            let object = match include {
                "None" => Value::Null,
                "Object" => o,
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get_mut("metadata").map_or(json!({}), Value::take)}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "rows": rows});
    if with_columns {
        t["columnDefinitions"] = Value::Array(columns(rt));
    } else {
        t["columnDefinitions"] = Value::Null;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_apimachinery() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn jsonpath_subset() {
        let o = json!({"status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]},
                       "metadata": {"labels": {"a.b/c": "x"}}, "spec": {"ips": ["1", "2"]}});
        assert_eq!(
            jsonpath_first(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(
            jsonpath_first(&o, ".status.conditions[?(@.type!=\"Ready\")].type"),
            Some(json!("Synced"))
        );
        assert_eq!(jsonpath_first(&o, ".spec.ips[1]"), Some(json!("2")));
        assert_eq!(jsonpath_first(&o, ".spec.ips[*]"), Some(json!("1")));
        assert_eq!(
            jsonpath_first(&o, ".metadata.labels['a.b/c']"),
            Some(json!("x"))
        );
        assert_eq!(jsonpath_first(&o, ".status.missing"), None);
    }
}
