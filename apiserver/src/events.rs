//! core/v1 and events.k8s.io/v1 Events are two views of one store (kept in core/v1
//! shape): kube-runtime's Recorder writes the new API, kubectl reads the old one.

use serde_json::{Map, Value, json};

/// Field renames between the two views: (events.k8s.io/v1, core/v1).
const RENAMES: [(&str, &str); 6] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
];

fn rename(object: &Value, from_new: bool, api_version: &str) -> Value {
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let renamed = RENAMES.iter().find_map(|(new, old)| match from_new {
            true if key == new => Some(*old),
            false if key == old => Some(*new),
            _ => None,
        });
        let key = match (key.as_str(), from_new) {
            ("deprecatedCount", true) => "count",
            ("count", false) => "deprecatedCount",
            _ => renamed.unwrap_or(key),
        };
        out.insert(key.to_owned(), value.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    Value::Object(out)
}

/// An events.k8s.io/v1 Event (request body) as stored.
pub fn to_core(event: &Value) -> Value {
    if !event.is_object() {
        return event.clone();
    }
    let mut core = rename(event, true, "v1");
    // kubectl's describe and get show these; the new API leaves them to series/eventTime.
    if core.get("count").is_none() {
        let count = event.pointer("/series/count").cloned().unwrap_or(json!(1));
        core["count"] = count;
    }
    if core.get("lastTimestamp").is_none_or(Value::is_null) {
        let last = event
            .pointer("/series/lastObservedTime")
            .or_else(|| event.get("eventTime"))
            .cloned();
        if let Some(t) = last.and_then(|t| {
            t.as_str().map(|s| {
                s.split('.')
                    .next()
                    .unwrap_or(s)
                    .trim_end_matches('Z')
                    .to_owned()
                    + "Z"
            })
        }) {
            core["lastTimestamp"] = json!(t);
            if core.get("firstTimestamp").is_none_or(Value::is_null) {
                core["firstTimestamp"] = json!(t);
            }
        }
    }
    if core.get("source").is_none()
        && let Some(component) = event.get("reportingController")
    {
        core["source"] = json!({"component": component});
    }
    core
}

/// A stored Event as events.k8s.io/v1 shows it.
pub fn to_events_v1(core: &Value) -> Value {
    if !core.is_object() {
        return core.clone();
    }
    let mut v1 = rename(core, false, "events.k8s.io/v1");
    if let Some(map) = v1.as_object_mut() {
        map.remove("deprecatedCount");
        map.remove("deprecatedFirstTimestamp");
        map.remove("deprecatedLastTimestamp");
        map.remove("deprecatedSource");
        if let Some(count) = core.get("count").and_then(Value::as_i64).filter(|c| *c > 1) {
            map.insert("deprecatedCount".into(), json!(count));
        }
    }
    v1
}

/// Field-selector paths the Event views accept.
pub const SELECTABLE: [&str; 12] = [
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "type",
    "source",
    "reportingComponent",
    "regarding.name",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_events_read_as_core_events_and_back() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web1.1"},
            "eventTime": "2026-01-02T03:04:05.123456Z", "reason": "Created", "note": "made it", "type": "Normal",
            "action": "Create", "regarding": {"kind": "LxcGuest", "name": "web1"}, "reportingController": "phoenix",
            "reportingInstance": "phoenix-1", "series": {"count": 3, "lastObservedTime": "2026-01-02T03:05:00.000001Z"}});
        let core = to_core(&new);
        assert_eq!(core["message"], "made it");
        assert_eq!(core["involvedObject"]["name"], "web1");
        assert_eq!(core["source"]["component"], "phoenix");
        assert_eq!(core["count"], 3);
        assert_eq!(core["lastTimestamp"], "2026-01-02T03:05:00Z");
        let back = to_events_v1(&core);
        assert_eq!(back["note"], "made it");
        assert_eq!(back["regarding"]["name"], "web1");
        assert_eq!(back["apiVersion"], "events.k8s.io/v1");
    }
}
