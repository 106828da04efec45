//! Objects as a request sees them: the stored JSON sent as it is where it can be, or
//! re-rendered for the requested group and version (events.k8s.io Events, CRD versions).

use crate::events;
use crate::resources::{Builtin, ResourceType};
use crate::store::Stored;
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

pub mod table;

/// Whether the stored JSON is already what the requested view shows, so it can be sent
/// as it is. Stored objects are serialised with sorted keys, so `apiVersion` comes first.
pub fn shown_as_stored(rt: &ResourceType, raw: &[u8]) -> bool {
    match rt.builtin {
        Some(Builtin::EventsV1) => false,
        Some(_) => true,
        None => raw.starts_with(format!("{{\"apiVersion\":\"{}\"", rt.api_version()).as_bytes()),
    }
}

/// A stored object's JSON as the requested view shows it.
pub fn present_raw(rt: &ResourceType, stored: &Stored) -> Bytes {
    if shown_as_stored(rt, &stored.raw) {
        return stored.raw.clone();
    }
    Bytes::from(serde_json::to_vec(&present(rt, &stored.value())).unwrap_or_default())
}

/// An object as the requested view shows it.
pub fn present(rt: &ResourceType, stored: &Value) -> Value {
    match rt.builtin {
        Some(Builtin::EventsV1) => events::to_events_v1(stored),
        None => {
            let mut v = stored.clone();
            v["apiVersion"] = json!(rt.api_version());
            v
        }
        _ => stored.clone(),
    }
}

/// A list of stored objects as the requested view shows it. Assembled from the stored
/// JSON: a list of 10,000 objects is a copy, not a re-encoding.
pub fn list_raw(rt: &ResourceType, list_meta: &Value, page: &[&Arc<Stored>]) -> Bytes {
    let mut body = Vec::with_capacity(page.iter().map(|s| s.raw.len() + 1).sum::<usize>() + 256);
    body.extend_from_slice(
        format!(
            "{{\"apiVersion\":{},\"kind\":{},\"metadata\":{},\"items\":[",
            json!(rt.api_version()),
            json!(rt.list_kind()),
            list_meta
        )
        .as_bytes(),
    );
    for (i, stored) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&present_raw(rt, stored));
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}
