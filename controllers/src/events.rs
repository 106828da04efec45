//! Events about our objects, as `events.k8s.io/v1` Events; an event repeated within six
//! minutes becomes a series (count and last time) on the first one instead of a new object.
//!
//! kube's `Recorder` does the same, but remembers each event whole (ObjectMeta, two object
//! references, every string) in a table that never shrinks: about 6 MiB once a 1,000-guest
//! fleet has been created, kept for good on the hypervisor. This remembers a few dozen bytes
//! per event and gives the table back when it empties. It also keys on the note, so a repeat
//! with a different note is a new event rather than a count on an old message.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a published event can still grow into a series (kube's and client-go's window).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// What makes two events the same: the object, the type, the reason and the note.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    /// The object's uid, or its namespace/name when it has none yet.
    regarding: String,
    warning: bool,
    reason: String,
    note: u64,
}

/// The Event already published for a key.
#[derive(Clone, Debug, PartialEq)]
struct Published {
    namespace: String,
    name: String,
    count: i32,
    last: Instant,
}

/// What to do with an event.
#[derive(Debug, PartialEq)]
enum Publication {
    /// A new Event object.
    Create,
    /// One more in the series of an existing Event.
    Repeat {
        namespace: String,
        name: String,
        count: i32,
    },
}

/// The events published in the series window (pure bookkeeping, no I/O).
#[derive(Default)]
struct Recent {
    published: HashMap<Key, Published>,
}

impl Recent {
    /// Forgets what left the window, and gives the table's memory back once mostly empty.
    fn prune(&mut self, now: Instant) {
        self.published
            .retain(|_, p| now.saturating_duration_since(p.last) < SERIES_WINDOW);
        if self.published.len() < self.published.capacity() / 4 {
            self.published.shrink_to_fit();
        }
    }

    fn decide(&mut self, key: &Key, now: Instant) -> Publication {
        self.prune(now);
        match self.published.get(key) {
            Some(p) => Publication::Repeat {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                count: p.count + 1,
            },
            None => Publication::Create,
        }
    }

    /// Records what was published, once the API server accepted it.
    fn record(&mut self, key: Key, namespace: String, name: String, count: i32, now: Instant) {
        let published = Published {
            namespace,
            name,
            count,
            last: now,
        };
        self.published.insert(key, published);
    }

    fn forget(&mut self, key: &Key) {
        self.published.remove(key);
    }
}

/// Publishes events as one reporting controller.
pub struct Publisher {
    client: kube::Client,
    controller: String,
    instance: String,
    recent: Mutex<Recent>,
}

impl Publisher {
    pub fn new(client: kube::Client, controller: &str, instance: &str) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.to_owned(),
            recent: Mutex::default(),
        }
    }

    /// Publishes `reason`/`note` about the object `regarding`.
    pub async fn publish(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) -> Result<(), kube::Error> {
        let key = key(&regarding, type_, reason, &note);
        let now = Instant::now();
        let decision = self.lock().decide(&key, now);
        let (namespace, name, count) = match decision {
            Publication::Repeat {
                namespace,
                name,
                count,
            } => match self.repeat(&namespace, &name, count).await {
                Ok(()) => (namespace, name, count),
                // The first one was deleted (by hand or by the API server's TTL): start anew.
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    self.lock().forget(&key);
                    self.create(regarding, type_, reason, note).await?
                }
                Err(e) => return Err(e),
            },
            Publication::Create => self.create(regarding, type_, reason, note).await?,
        };
        self.lock().record(key, namespace, name, count, now);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn create(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) -> Result<(String, String, i32), kube::Error> {
        let event = self.event(regarding, type_, reason, note);
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let name = event.metadata.name.clone().unwrap_or_default();
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        Ok((namespace, name, 1))
    }

    async fn repeat(&self, namespace: &str, name: &str, count: i32) -> Result<(), kube::Error> {
        let series = serde_json::json!({
            "series": {"count": count, "lastObservedTime": MicroTime(jiff::Timestamp::now())}
        });
        Api::<Event>::namespaced(self.client.clone(), namespace)
            .patch(name, &PatchParams::default(), &Patch::Merge(&series))
            .await
            .map(drop)
    }

    fn event(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) -> Event {
        let now = jiff::Timestamp::now();
        // Cluster-scoped objects' events go to `default`, as kubectl describe looks for them.
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(reason.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note),
            regarding: Some(regarding),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(type_name(type_).to_owned()),
            ..Event::default()
        }
    }
}

fn type_name(type_: EventType) -> &'static str {
    match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

fn key(regarding: &ObjectReference, type_: EventType, reason: &str, note: &str) -> Key {
    let regarding = regarding.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}/{}",
            regarding.kind.as_deref().unwrap_or_default(),
            regarding.namespace.as_deref().unwrap_or_default(),
            regarding.name.as_deref().unwrap_or_default()
        )
    });
    let mut hasher = DefaultHasher::new();
    note.hash(&mut hasher);
    Key {
        regarding,
        warning: matches!(type_, EventType::Warning),
        reason: reason.to_owned(),
        note: hasher.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(uid: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("LxcGuest".into()),
            namespace: Some("default".into()),
            name: Some("ct-801".into()),
            uid: Some(uid.into()),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn an_event_repeated_within_the_window_becomes_a_series_on_the_first() {
        let mut recent = Recent::default();
        let start = Instant::now();
        let k = key(&reference("u1"), EventType::Normal, "Started", "started");
        assert_eq!(recent.decide(&k, start), Publication::Create);
        recent.record(k.clone(), "default".into(), "ct-801.1".into(), 1, start);
        let later = start + Duration::from_secs(60);
        let repeat = Publication::Repeat {
            namespace: "default".into(),
            name: "ct-801.1".into(),
            count: 2,
        };
        assert_eq!(recent.decide(&k, later), repeat);
        recent.record(k.clone(), "default".into(), "ct-801.1".into(), 2, later);
        // The window runs from the last repeat.
        let within = later + SERIES_WINDOW - Duration::from_secs(1);
        assert!(matches!(
            recent.decide(&k, within),
            Publication::Repeat { count: 3, .. }
        ));
        assert_eq!(
            recent.decide(&k, later + SERIES_WINDOW),
            Publication::Create
        );
    }

    #[test]
    fn another_note_type_reason_or_object_is_another_event() {
        let base = key(&reference("u1"), EventType::Normal, "Started", "started");
        let others = [
            key(
                &reference("u1"),
                EventType::Normal,
                "Started",
                "started again",
            ),
            key(&reference("u1"), EventType::Warning, "Started", "started"),
            key(&reference("u1"), EventType::Normal, "Stopped", "started"),
            key(&reference("u2"), EventType::Normal, "Started", "started"),
        ];
        for other in others {
            assert_ne!(base, other);
        }
        let unsaved = ObjectReference {
            uid: None,
            ..reference("")
        };
        assert_eq!(
            key(&unsaved, EventType::Normal, "R", "n").regarding,
            "LxcGuest/default/ct-801"
        );
    }

    #[test]
    fn the_table_gives_its_memory_back_when_the_window_empties() {
        let mut recent = Recent::default();
        let start = Instant::now();
        for i in 0..3_000 {
            let k = key(&reference(&format!("u{i}")), EventType::Normal, "R", "n");
            recent.record(k, "default".into(), format!("e{i}"), 1, start);
        }
        assert!(recent.published.capacity() >= 3_000);
        let k = key(&reference("last"), EventType::Normal, "R", "n");
        recent.decide(&k, start + SERIES_WINDOW);
        assert!(recent.published.is_empty());
        assert!(
            recent.published.capacity() < 100,
            "{}",
            recent.published.capacity()
        );
    }
}
