//! The etcd-less store: every object in SQLite, one global revision as `resourceVersion`.
//!
//! Two tables written in one transaction per change: `objects` holds the current value of
//! each key, `log` every change by revision (what watches resume from), trimmed by
//! compaction. The current objects are also kept in memory, so reads and lists never touch
//! the disk, and each committed change is fanned out to watchers in-process.
//!
//! Durability: WAL with `synchronous=FULL`, so a change is fsynced before `put`/`delete`
//! return and the API answers; a SIGKILL or a power cut never loses an acknowledged write.

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// A stored object and the revision that last changed it. Objects are held as their JSON
/// text: a tenth of the memory of parsed values, and lists and watch events copy the bytes
/// instead of serialising again.
#[derive(Debug)]
pub struct Stored {
    pub key: String,
    pub rev: u64,
    /// The full object as JSON, `metadata.resourceVersion` already set to `rev`.
    pub raw: Bytes,
}

impl Stored {
    /// The object, parsed.
    pub fn value(&self) -> Value {
        parse(&self.raw)
    }
}

/// Stored JSON was written by `serde_json` (and checked when loaded), so it always parses.
fn parse(raw: &[u8]) -> Value {
    serde_json::from_slice(raw).expect("the store only holds valid JSON")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, as watchers see it.
#[derive(Debug)]
pub struct Change {
    pub rev: u64,
    pub key: String,
    pub kind: EventType,
    /// The new value; for a deletion the last value, with the deletion's revision.
    pub raw: Bytes,
    /// The value before the change (for selector transitions).
    pub prev: Option<Bytes>,
}

impl Change {
    pub fn object(&self) -> Value {
        parse(&self.raw)
    }

    pub fn prev_object(&self) -> Option<Value> {
        self.prev.as_deref().map(parse)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the object has been modified")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("too old resource version: {requested} ({compacted})")]
    Compacted { requested: u64, compacted: u64 },
    #[error("storage: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("storage: stored value is not JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// How many changes stay in memory for quick watch resumes; older ones come from SQLite.
const RING: usize = 4096;
/// Changes kept in the log at compaction (kine's `compact-min-retain`).
const RETAIN: u64 = 10_000;

struct Inner {
    conn: Connection,
    objects: BTreeMap<String, Arc<Stored>>,
    rev: u64,
    compacted: u64,
    recent: VecDeque<Arc<Change>>,
}

pub struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
}

/// A write to make: `expect` is the revision the writer read (None = unconditional;
/// `Some(0)` = the key must not exist yet, a create).
pub enum Write {
    Put { key: String, value: Value, expect: Option<u64> },
    Delete { key: String, expect: Option<u64> },
}

impl Store {
    /// Opens (or creates) the store in `dir/phoenix.db`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::from_connection(Connection::open(dir.join("phoenix.db"))?)
    }

    /// A store that lives only in memory (tests, benchmarks of the HTTP layer).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, rev INTEGER NOT NULL, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS log (rev INTEGER PRIMARY KEY, key TEXT NOT NULL, kind INTEGER NOT NULL,
                                             value BLOB NOT NULL, prev BLOB);
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )?;
        let mut objects = BTreeMap::new();
        {
            let mut stmt = conn.prepare("SELECT key, rev, value FROM objects")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?)))?;
            for row in rows {
                let (key, rev, bytes) = row?;
                serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)?;
                objects.insert(key.clone(), Arc::new(Stored { key, rev: rev as u64, raw: Bytes::from(bytes) }));
            }
        }
        let meta = |name: &str| -> Result<u64, rusqlite::Error> {
            Ok(conn
                .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get::<_, i64>(0))
                .optional()?
                .unwrap_or(0) as u64)
        };
        let rev = meta("revision")?;
        let compacted = meta("compacted")?;
        let (changes, _) = broadcast::channel(RING);
        Ok(Self {
            inner: Mutex::new(Inner { conn, objects, rev, compacted, recent: VecDeque::new() }),
            changes,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current store revision.
    pub fn revision(&self) -> u64 {
        self.lock().rev
    }

    pub fn get(&self, key: &str) -> Option<Arc<Stored>> {
        self.lock().objects.get(key).cloned()
    }

    /// Every object whose key starts with `prefix`, in key order, and the revision the
    /// snapshot was taken at.
    pub fn list(&self, prefix: &str) -> (u64, Vec<Arc<Stored>>) {
        let inner = self.lock();
        let items = inner
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (inner.rev, items)
    }

    /// Applies one write durably; returns the stored object (for a delete, the last value).
    pub fn write(&self, write: Write) -> Result<Arc<Stored>, StoreError> {
        let mut inner = self.lock();
        let (key, expect) = match &write {
            Write::Put { key, expect, .. } | Write::Delete { key, expect } => (key.clone(), *expect),
        };
        let current = inner.objects.get(&key).cloned();
        match (&current, expect, &write) {
            (None, _, Write::Delete { .. }) => return Err(StoreError::NotFound),
            (None, Some(0), Write::Put { .. }) => {}
            (None, Some(_), Write::Put { .. }) => return Err(StoreError::NotFound),
            (Some(_), Some(0), _) => return Err(StoreError::Exists),
            (Some(cur), Some(expected), _) if cur.rev != expected => return Err(StoreError::Conflict),
            _ => {}
        }
        let rev = inner.rev + 1;
        let (kind, mut value) = match write {
            Write::Put { value, .. } => (if current.is_some() { EventType::Modified } else { EventType::Added }, value),
            Write::Delete { .. } => (EventType::Deleted, current.as_ref().expect("checked above").value()),
        };
        set_resource_version(&mut value, rev);
        let bytes = Bytes::from(serde_json::to_vec(&value)?);
        let prev_bytes = current.as_ref().map(|c| c.raw.clone());
        let tx = inner.conn.transaction()?;
        match kind {
            EventType::Deleted => {
                tx.execute("DELETE FROM objects WHERE key = ?1", [&key])?;
            }
            _ => {
                tx.execute(
                    "INSERT INTO objects (key, rev, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT(key) DO UPDATE SET rev = excluded.rev, value = excluded.value",
                    params![key, rev as i64, bytes.as_ref()],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO log (rev, key, kind, value, prev) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![rev as i64, key, kind as i64, bytes.as_ref(), prev_bytes.as_deref()],
        )?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('revision', ?1)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [rev as i64],
        )?;
        tx.commit()?;
        inner.rev = rev;
        let stored = Arc::new(Stored { key: key.clone(), rev, raw: bytes.clone() });
        match kind {
            EventType::Deleted => {
                inner.objects.remove(&key);
            }
            _ => {
                inner.objects.insert(key.clone(), stored.clone());
            }
        }
        let change = Arc::new(Change { rev, key, kind, raw: bytes, prev: prev_bytes });
        if inner.recent.len() == RING {
            inner.recent.pop_front();
        }
        inner.recent.push_back(change.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
        Ok(stored)
    }

    /// Changes after `rev` (oldest first) and a receiver for every later one, with no gap
    /// and no overlap between the two. Fails when `rev` is below the compaction point.
    pub fn watch_from(&self, rev: u64) -> Result<(Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>), StoreError> {
        let inner = self.lock();
        if rev < inner.compacted {
            return Err(StoreError::Compacted { requested: rev, compacted: inner.compacted });
        }
        let receiver = self.changes.subscribe();
        let oldest_recent = inner.recent.front().map_or(inner.rev + 1, |c| c.rev);
        let mut backlog = Vec::new();
        if rev + 1 < oldest_recent {
            backlog = read_log(&inner.conn, rev, oldest_recent)?;
        }
        backlog.extend(inner.recent.iter().filter(|c| c.rev > rev).cloned());
        Ok((backlog, receiver))
    }

    /// Drops log entries older than the newest `RETAIN` changes; watches from before the
    /// new compaction point get 410 Gone.
    pub fn compact(&self) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let target = inner.rev.saturating_sub(RETAIN);
        if target <= inner.compacted {
            return Ok(inner.compacted);
        }
        let tx = inner.conn.transaction()?;
        tx.execute("DELETE FROM log WHERE rev <= ?1", [target as i64])?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('compacted', ?1)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [target as i64],
        )?;
        tx.commit()?;
        inner.compacted = target;
        Ok(target)
    }

    pub fn compacted(&self) -> u64 {
        self.lock().compacted
    }
}

fn read_log(conn: &Connection, after: u64, before: u64) -> Result<Vec<Arc<Change>>, StoreError> {
    let mut stmt = conn.prepare("SELECT rev, key, kind, value, prev FROM log WHERE rev > ?1 AND rev < ?2 ORDER BY rev")?;
    let rows = stmt.query_map(params![after as i64, before as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get::<_, Option<Vec<u8>>>(4)?,
        ))
    })?;
    let mut changes = Vec::new();
    for row in rows {
        let (rev, key, kind, value, prev) = row?;
        let kind = match kind {
            0 => EventType::Added,
            1 => EventType::Modified,
            _ => EventType::Deleted,
        };
        changes.push(Arc::new(Change { rev: rev as u64, key, kind, raw: Bytes::from(value), prev: prev.map(Bytes::from) }));
    }
    Ok(changes)
}

fn set_resource_version(value: &mut Value, rev: u64) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(store: &Store, key: &str, n: i64, expect: Option<u64>) -> Result<Arc<Stored>, StoreError> {
        store.write(Write::Put { key: key.into(), value: json!({"metadata": {"name": key}, "n": n}), expect })
    }

    #[test]
    fn revisions_increase_and_guard_concurrent_writers() {
        let store = Store::in_memory().unwrap();
        let a = put(&store, "a", 1, None).unwrap();
        let b = put(&store, "b", 1, None).unwrap();
        assert_eq!((a.rev, b.rev), (1, 2));
        assert_eq!(a.value()["metadata"]["resourceVersion"], "1");
        assert!(matches!(put(&store, "a", 2, Some(7)), Err(StoreError::Conflict)));
        assert_eq!(put(&store, "a", 2, Some(1)).unwrap().rev, 3);
        let (rev, items) = store.list("");
        assert_eq!((rev, items.len()), (3, 2));
    }

    #[test]
    fn watch_replays_after_a_revision_then_follows_live() {
        let store = Store::in_memory().unwrap();
        put(&store, "a", 1, None).unwrap();
        put(&store, "a", 2, None).unwrap();
        let (backlog, mut live) = store.watch_from(1).unwrap();
        assert_eq!(backlog.iter().map(|c| c.rev).collect::<Vec<_>>(), vec![2]);
        store.write(Write::Delete { key: "a".into(), expect: None }).unwrap();
        let next = live.try_recv().unwrap();
        assert_eq!((next.rev, next.kind), (3, EventType::Deleted));
        assert_eq!(next.object()["n"], 2);
    }

    #[test]
    fn survives_reopen_and_resumes_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for i in 0..10 {
                put(&store, &format!("k{i}"), i, None).unwrap();
            }
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.revision(), 10);
        assert_eq!(store.get("k3").unwrap().value()["n"], 3);
        let (backlog, _) = store.watch_from(7).unwrap();
        assert_eq!(backlog.iter().map(|c| c.rev).collect::<Vec<_>>(), vec![8, 9, 10]);
        assert_eq!(put(&store, "k0", 5, None).unwrap().rev, 11);
    }
}
