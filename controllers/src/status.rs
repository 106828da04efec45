//! Status writes as merge patches. A merge patch only removes what it sets to null, and
//! the status types skip empty fields when serialised, so a field cleared since the last
//! write (the finished task's UPID, the step) must be nulled explicitly.

use serde::Serialize;
use serde_json::{Map, Value};

/// The merge patch `{"status": ...}` that turns `previous` into `new`.
pub fn merge_patch<T: Serialize>(previous: &T, new: &T) -> Value {
    let old = serde_json::to_value(previous).unwrap_or(Value::Null);
    let mut new = serde_json::to_value(new).unwrap_or(Value::Null);
    if let (Some(old), Some(fields)) = (old.as_object(), new.as_object_mut()) {
        for key in old.keys() {
            fields.entry(key.clone()).or_insert(Value::Null);
        }
    }
    let mut patch = Map::new();
    patch.insert("status".into(), new);
    Value::Object(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_crds::lxc::LxcGuestStatus;

    #[test]
    fn cleared_fields_are_nulled() {
        let mut previous = LxcGuestStatus::default();
        previous.guest.task_upid = Some("UPID:x".into());
        previous.guest.step = Some("Create".into());
        let mut new = previous.clone();
        new.guest.task_upid = None;
        new.guest.state = Some("running".into());
        let patch = merge_patch(&previous, &new);
        assert_eq!(patch["status"]["taskUpid"], Value::Null);
        assert!(
            patch["status"]
                .as_object()
                .unwrap()
                .contains_key("taskUpid")
        );
        assert_eq!(patch["status"]["step"], "Create");
        assert_eq!(patch["status"]["state"], "running");
    }
}
