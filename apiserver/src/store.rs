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
use tokio::sync::{broadcast, oneshot};

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

/// Stored JSON was written by `serde_json` and checked when loaded, and the API refuses
/// objects nested deeper than it can read back, so this parses; if it ever did not, the
/// object reads as null rather than taking the server down.
fn parse(raw: &[u8]) -> Value {
    serde_json::from_slice(raw).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a stored object does not parse");
        Value::Null
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added = 0,
    Modified = 1,
    Deleted = 2,
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
    #[error("storage: {0}")]
    Thread(String),
    #[error("storage: {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Owner-only access for the data directory and for the database files.
const PRIVATE_DIR: u32 = 0o700;
const PRIVATE_FILE: u32 = 0o600;

/// Creates `dir` with mode 0700 (its missing parents as the umask says), or tightens an
/// existing one that others could enter, with a warning.
pub fn private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |source| StoreError::Io {
        path: dir.to_owned(),
        source,
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    match std::fs::DirBuilder::new().mode(PRIVATE_DIR).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    // The umask may have taken bits off at creation, never added any; an existing
    // directory keeps whatever it had.
    let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode() & 0o7777;
    if mode != PRIVATE_DIR {
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %dir.display(),
                mode = format!("{mode:04o}"),
                "the data directory holds Secrets and was open to others: made 0700"
            );
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR)).map_err(io)?;
    }
    Ok(())
}

/// Creates the database file with mode 0600 before SQLite opens it (SQLite gives its
/// `-wal` and `-shm` files the database's mode), and tightens files an earlier version
/// left readable by others.
fn private_database(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io { path, source }
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE)
        .open(path)
        .map_err(io(path))?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        let mode = match std::fs::metadata(&file) {
            Ok(meta) => meta.permissions().mode() & 0o7777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&file)(e)),
        };
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %file.display(),
                mode = format!("{mode:04o}"),
                "the database holds Secrets and was readable by others: made 0600"
            );
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(PRIVATE_FILE))
                .map_err(io(&file))?;
        }
    }
    Ok(())
}

/// How many changes stay in memory for quick watch resumes, and how many bytes of objects
/// they may hold (a large fleet's objects are kilobytes each); older ones come from SQLite.
const RING: usize = 4096;
const RING_BYTES: usize = 1 << 20;
/// How many changes a watcher may fall behind before it is told to re-list. The channel
/// keeps that many changes alive, so it stays well under the ring.
const LIVE: usize = 512;
/// Changes kept in the log at compaction (kine's `compact-min-retain`).
const RETAIN: u64 = 10_000;
/// Most writes committed in one transaction.
const BATCH: usize = 512;

/// What readers see: only committed changes.
struct Memory {
    objects: BTreeMap<String, Arc<Stored>>,
    rev: u64,
    compacted: u64,
    recent: VecDeque<Arc<Change>>,
    /// Bytes of the objects in `recent`.
    recent_bytes: usize,
}

impl Memory {
    /// Keeps `change` among the recent ones, forgetting the oldest beyond the ring's bounds.
    fn remember(&mut self, change: Arc<Change>) {
        let size = |c: &Change| c.raw.len() + c.prev.as_ref().map_or(0, |p| p.len());
        self.recent_bytes += size(&change);
        self.recent.push_back(change);
        while self.recent.len() > RING || (self.recent_bytes > RING_BYTES && self.recent.len() > 1)
        {
            if let Some(old) = self.recent.pop_front() {
                self.recent_bytes -= size(&old);
            }
        }
    }
}

/// Called on the writer thread with each committed batch, before watchers and writers
/// hear of it (the API server rebuilds its registry when CRDs change).
pub type CommitHook = Box<dyn Fn(&[Arc<Change>]) + Send + Sync>;

struct Shared {
    hook: std::sync::OnceLock<CommitHook>,
    memory: Mutex<Memory>,
    changes: broadcast::Sender<Arc<Change>>,
    /// A second connection for reading old log entries while the writer commits.
    reader: Mutex<Connection>,
}

enum Job {
    Write(Write, Reply<Arc<Stored>>),
    Compact(Reply<u64>),
}

/// The store. Writes go to one writer thread, which commits whatever is waiting in one
/// transaction (group commit): the fsync cost is shared by concurrent writers, and no
/// async worker ever blocks on the disk.
pub struct Store {
    shared: Arc<Shared>,
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
}

/// What `watch_from` gives: the backlog, then the live feed.
pub type WatchStart = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write to make: `expect` is the revision the writer read (None = unconditional;
/// `Some(0)` = the key must not exist yet, a create).
pub enum Write {
    Put {
        key: String,
        value: Value,
        expect: Option<u64>,
    },
    Delete {
        key: String,
        expect: Option<u64>,
    },
}

impl Write {
    fn key(&self) -> &str {
        match self {
            Write::Put { key, .. } | Write::Delete { key, .. } => key,
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir/phoenix.db`. The directory and the database
    /// hold every Secret in plain text: the directory is made (or tightened to) 0700 and
    /// the database files 0600 before SQLite opens them.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        private_dir(dir)?;
        let path = dir.join("phoenix.db");
        private_database(&path)?;
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=5000;
             PRAGMA cache_size=-512;
             CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, rev INTEGER NOT NULL, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS log (rev INTEGER PRIMARY KEY, key TEXT NOT NULL, kind INTEGER NOT NULL,
                                             value BLOB NOT NULL, prev BLOB);
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )?;
        let mut objects = BTreeMap::new();
        {
            let mut stmt = conn.prepare("SELECT key, rev, value FROM objects")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?;
            for row in rows {
                let (key, rev, bytes) = row?;
                serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)?;
                objects.insert(
                    key.clone(),
                    Arc::new(Stored {
                        key,
                        rev: rev as u64,
                        raw: Bytes::from(bytes),
                    }),
                );
            }
        }
        let meta = |name: &str| -> Result<u64, rusqlite::Error> {
            Ok(conn
                .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
                .unwrap_or(0) as u64)
        };
        let (rev, compacted) = (meta("revision")?, meta("compacted")?);
        let reader = Connection::open(&path)?;
        // Every object is in memory already; SQLite's own page cache (2 MiB each by
        // default) only serves writes and old watch resumes.
        reader.execute_batch("PRAGMA busy_timeout=5000; PRAGMA cache_size=-512;")?;
        let (changes, _) = broadcast::channel(LIVE);
        let shared = Arc::new(Shared {
            hook: std::sync::OnceLock::new(),
            memory: Mutex::new(Memory {
                objects,
                rev,
                compacted,
                recent: VecDeque::new(),
                recent_bytes: 0,
            }),
            changes,
            reader: Mutex::new(reader),
        });
        let (jobs, receiver) = std::sync::mpsc::channel();
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("phoenix-store-writer".into())
            .spawn(move || writer(conn, writer_shared, receiver))
            .map_err(|e| StoreError::Thread(e.to_string()))?;
        Ok(Self {
            shared,
            jobs: Mutex::new(jobs),
        })
    }

    /// Installs the commit hook (once).
    pub fn on_commit(&self, hook: CommitHook) {
        let _ = self.shared.hook.set(hook);
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.shared
            .memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current store revision.
    pub fn revision(&self) -> u64 {
        self.memory().rev
    }

    pub fn compacted(&self) -> u64 {
        self.memory().compacted
    }

    pub fn get(&self, key: &str) -> Option<Arc<Stored>> {
        self.memory().objects.get(key).cloned()
    }

    /// Every object whose key starts with `prefix`, in key order, and the revision the
    /// snapshot was taken at.
    pub fn list(&self, prefix: &str) -> (u64, Vec<Arc<Stored>>) {
        let memory = self.memory();
        let items = memory
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (memory.rev, items)
    }

    fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> oneshot::Receiver<Result<T, StoreError>> {
        let (tx, rx) = oneshot::channel();
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job(tx));
        if let Err(std::sync::mpsc::SendError(job)) = sent {
            let reply = |e: StoreError| match job {
                Job::Write(_, r) => drop(r.send(Err(e))),
                Job::Compact(_) => {}
            };
            reply(StoreError::Thread("the store writer has stopped".into()));
        }
        rx
    }

    /// Applies one write durably; returns the stored object (for a delete, the last value).
    pub async fn write(&self, write: Write) -> Result<Arc<Stored>, StoreError> {
        self.submit(|reply| Job::Write(write, reply))
            .await
            .unwrap_or_else(|_| Err(StoreError::Thread("the store writer has stopped".into())))
    }

    /// Changes after `rev` (oldest first) and a receiver for every later one, with no gap
    /// and no overlap between the two. Fails when `rev` is below the compaction point.
    pub fn watch_from(&self, rev: u64) -> Result<WatchStart, StoreError> {
        let memory = self.memory();
        if rev < memory.compacted {
            return Err(StoreError::Compacted {
                requested: rev,
                compacted: memory.compacted,
            });
        }
        let receiver = self.shared.changes.subscribe();
        // A revision from the future is read as "now": nothing to replay.
        let rev = rev.min(memory.rev);
        let oldest_recent = memory.recent.front().map_or(memory.rev + 1, |c| c.rev);
        let mut backlog = Vec::new();
        if rev + 1 < oldest_recent {
            let reader = self.shared.reader.lock().unwrap_or_else(|p| p.into_inner());
            backlog = read_log(&reader, rev, oldest_recent)?;
        }
        backlog.extend(memory.recent.iter().filter(|c| c.rev > rev).cloned());
        Ok((backlog, receiver))
    }

    /// Drops log entries older than the newest `RETAIN` changes; watches from before the
    /// new compaction point get 410 Gone.
    pub async fn compact(&self) -> Result<u64, StoreError> {
        self.submit(Job::Compact)
            .await
            .unwrap_or_else(|_| Err(StoreError::Thread("the store writer has stopped".into())))
    }
}

/// The writer thread: takes every waiting job, commits the writes in one transaction,
/// then makes them visible and answers.
fn writer(mut conn: Connection, shared: Arc<Shared>, jobs: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut writes = Vec::new();
        for job in batch {
            match job {
                Job::Write(w, reply) => writes.push((w, reply)),
                Job::Compact(reply) => {
                    let _ = reply.send(compact(&mut conn, &shared));
                }
            }
        }
        if !writes.is_empty() {
            commit_batch(&mut conn, &shared, writes);
        }
    }
}

/// A write's answer channel and what staging it gave.
type Outcome = (Reply<Arc<Stored>>, Result<Staged, StoreError>);

/// A change checked and encoded, waiting for the commit.
struct Staged {
    change: Arc<Change>,
    stored: Arc<Stored>,
}

fn commit_batch(conn: &mut Connection, shared: &Shared, writes: Vec<(Write, Reply<Arc<Stored>>)>) {
    let mut overlay: std::collections::HashMap<String, Option<Arc<Stored>>> =
        std::collections::HashMap::new();
    let mut rev = shared.memory.lock().unwrap_or_else(|p| p.into_inner()).rev;
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (write, reply) in writes {
        let current = match overlay.get(write.key()) {
            Some(staged) => staged.clone(),
            None => shared
                .memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .objects
                .get(write.key())
                .cloned(),
        };
        let staged = stage(write, current, rev + 1);
        if let Ok(s) = &staged {
            rev = s.change.rev;
            let visible = (s.change.kind != EventType::Deleted).then(|| s.stored.clone());
            overlay.insert(s.change.key.clone(), visible);
        }
        outcomes.push((reply, staged));
    }
    let committed = persist(
        conn,
        outcomes.iter().filter_map(|(_, s)| s.as_ref().ok()),
        rev,
    );
    if let Err(e) = committed {
        let message = e.to_string();
        for (reply, staged) in outcomes {
            let _ = reply
                .send(staged.and(Err(StoreError::Thread(format!("commit failed: {message}")))));
        }
        return;
    }
    let mut committed = Vec::new();
    {
        let mut memory = shared.memory.lock().unwrap_or_else(|p| p.into_inner());
        for (_, staged) in &outcomes {
            let Ok(s) = staged else { continue };
            match s.change.kind {
                EventType::Deleted => memory.objects.remove(&s.change.key),
                _ => memory
                    .objects
                    .insert(s.change.key.clone(), s.stored.clone()),
            };
            memory.rev = s.change.rev;
            memory.remember(s.change.clone());
            committed.push(s.change.clone());
        }
    }
    if let Some(hook) = shared.hook.get() {
        hook(&committed);
    }
    for change in committed {
        // No receivers is fine: nobody is watching.
        let _ = shared.changes.send(change);
    }
    for (reply, staged) in outcomes {
        let _ = reply.send(staged.map(|s| s.stored));
    }
}

/// Checks a write against the current value and encodes it at revision `rev`.
fn stage(write: Write, current: Option<Arc<Stored>>, rev: u64) -> Result<Staged, StoreError> {
    let expect = match &write {
        Write::Put { expect, .. } | Write::Delete { expect, .. } => *expect,
    };
    match (&current, expect, &write) {
        (None, _, Write::Delete { .. }) => return Err(StoreError::NotFound),
        (None, Some(0), Write::Put { .. }) => {}
        (None, Some(_), Write::Put { .. }) => return Err(StoreError::NotFound),
        (Some(_), Some(0), _) => return Err(StoreError::Exists),
        (Some(cur), Some(expected), _) if cur.rev != expected => return Err(StoreError::Conflict),
        _ => {}
    }
    let key = write.key().to_owned();
    let (kind, mut value) = match write {
        Write::Put { value, .. } => (
            if current.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            value,
        ),
        Write::Delete { .. } => (
            EventType::Deleted,
            current.as_ref().expect("checked above").value(),
        ),
    };
    set_resource_version(&mut value, rev);
    // Exactly as long as the text: serialising leaves up to half the buffer spare, and
    // these bytes are kept for as long as the object (and its change) is.
    let raw = Bytes::from(serde_json::to_vec(&value)?.into_boxed_slice());
    let stored = Arc::new(Stored {
        key: key.clone(),
        rev,
        raw: raw.clone(),
    });
    let change = Arc::new(Change {
        rev,
        key,
        kind,
        raw,
        prev: current.map(|c| c.raw.clone()),
    });
    Ok(Staged { change, stored })
}

fn persist<'a>(
    conn: &mut Connection,
    staged: impl Iterator<Item = &'a Staged>,
    rev: u64,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO objects (key, rev, value) VALUES (?1, ?2, ?3)
             ON CONFLICT(key) DO UPDATE SET rev = excluded.rev, value = excluded.value",
        )?;
        let mut remove = tx.prepare_cached("DELETE FROM objects WHERE key = ?1")?;
        let mut log = tx.prepare_cached(
            "INSERT INTO log (rev, key, kind, value, prev) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for s in staged {
            let c = &s.change;
            match c.kind {
                EventType::Deleted => {
                    remove.execute([&c.key])?;
                }
                _ => {
                    upsert.execute(params![c.key, c.rev as i64, c.raw.as_ref()])?;
                }
            }
            log.execute(params![
                c.rev as i64,
                c.key,
                c.kind as i64,
                c.raw.as_ref(),
                c.prev.as_deref()
            ])?;
        }
    }
    tx.execute(
        "INSERT INTO meta (name, value) VALUES ('revision', ?1) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        [rev as i64],
    )?;
    tx.commit()?;
    Ok(())
}

fn compact(conn: &mut Connection, shared: &Shared) -> Result<u64, StoreError> {
    let (rev, compacted) = {
        let memory = shared.memory.lock().unwrap_or_else(|p| p.into_inner());
        (memory.rev, memory.compacted)
    };
    let target = rev.saturating_sub(RETAIN);
    if target <= compacted {
        return Ok(compacted);
    }
    // Raised first, so no watch starts from a revision whose log is about to go.
    shared
        .memory
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .compacted = target;
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM log WHERE rev <= ?1", [target as i64])?;
    tx.execute(
        "INSERT INTO meta (name, value) VALUES ('compacted', ?1) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        [target as i64],
    )?;
    tx.commit()?;
    shared
        .memory
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .compacted = target;
    Ok(target)
}

fn read_log(conn: &Connection, after: u64, before: u64) -> Result<Vec<Arc<Change>>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT rev, key, kind, value, prev FROM log WHERE rev > ?1 AND rev < ?2 ORDER BY rev",
    )?;
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
        changes.push(Arc::new(Change {
            rev: rev as u64,
            key,
            kind,
            raw: Bytes::from(value),
            prev: prev.map(Bytes::from),
        }));
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

    #[test]
    fn the_ring_of_recent_changes_is_bounded_by_bytes_as_well_as_count() {
        let mut memory = Memory {
            objects: BTreeMap::new(),
            rev: 0,
            compacted: 0,
            recent: VecDeque::new(),
            recent_bytes: 0,
        };
        let change = |rev: u64, size: usize| {
            Arc::new(Change {
                rev,
                key: "k".into(),
                kind: EventType::Modified,
                raw: Bytes::from(vec![b' '; size]),
                prev: Some(Bytes::from(vec![b' '; size])),
            })
        };
        for rev in 1..=100 {
            memory.remember(change(rev, 100 << 10));
        }
        assert!(memory.recent_bytes <= RING_BYTES, "{}", memory.recent_bytes);
        assert_eq!(memory.recent.len(), RING_BYTES / (200 << 10));
        assert_eq!(memory.recent.back().unwrap().rev, 100, "the newest stay");
        for rev in 101..=(101 + RING as u64) {
            memory.remember(change(rev, 10));
        }
        assert_eq!(memory.recent.len(), RING);
        // One change larger than the whole budget is still kept: it is the newest.
        memory.remember(change(9_999, RING_BYTES));
        assert_eq!(memory.recent.len(), 1);
    }

    async fn put(
        store: &Store,
        key: &str,
        n: i64,
        expect: Option<u64>,
    ) -> Result<Arc<Stored>, StoreError> {
        store
            .write(Write::Put {
                key: key.into(),
                value: json!({"metadata": {"name": key}, "n": n}),
                expect,
            })
            .await
    }

    #[tokio::test]
    async fn revisions_increase_and_guard_concurrent_writers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = put(&store, "a", 1, Some(0)).await.unwrap();
        let b = put(&store, "b", 1, None).await.unwrap();
        assert_eq!((a.rev, b.rev), (1, 2));
        assert_eq!(a.value()["metadata"]["resourceVersion"], "1");
        assert!(matches!(
            put(&store, "a", 2, Some(7)).await,
            Err(StoreError::Conflict)
        ));
        assert!(matches!(
            put(&store, "a", 2, Some(0)).await,
            Err(StoreError::Exists)
        ));
        assert_eq!(put(&store, "a", 2, Some(1)).await.unwrap().rev, 3);
        let (rev, items) = store.list("");
        assert_eq!((rev, items.len()), (3, 2));
    }

    #[tokio::test]
    async fn concurrent_writes_are_grouped_and_each_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        put(&store, "x", 0, None).await.unwrap();
        // 20 writers race to update x from revision 1: exactly one wins.
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { put(&store, "x", i, Some(1)).await.is_ok() })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            wins += t.await.unwrap() as usize;
        }
        assert_eq!(wins, 1);
        assert_eq!(store.revision(), 2);
    }

    #[tokio::test]
    async fn watch_replays_after_a_revision_then_follows_live() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put(&store, "a", 1, None).await.unwrap();
        put(&store, "a", 2, None).await.unwrap();
        let (backlog, mut live) = store.watch_from(1).unwrap();
        assert_eq!(backlog.iter().map(|c| c.rev).collect::<Vec<_>>(), vec![2]);
        store
            .write(Write::Delete {
                key: "a".into(),
                expect: None,
            })
            .await
            .unwrap();
        let next = live.try_recv().unwrap();
        assert_eq!((next.rev, next.kind), (3, EventType::Deleted));
        assert_eq!(next.object()["n"], 2);
    }

    #[tokio::test]
    async fn survives_reopen_resumes_from_the_log_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for i in 0..10 {
                put(&store, &format!("k{i}"), i, None).await.unwrap();
            }
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.revision(), 10);
        assert_eq!(store.get("k3").unwrap().value()["n"], 3);
        let (backlog, _) = store.watch_from(7).unwrap();
        assert_eq!(
            backlog.iter().map(|c| c.rev).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        assert_eq!(put(&store, "k0", 5, None).await.unwrap().rev, 11);
        assert_eq!(
            store.compact().await.unwrap(),
            0,
            "nothing beyond the retained window yet"
        );
    }
}
