//! Watch streams: newline-delimited JSON events over a chunked response, resumable from
//! any retained revision, with bookmarks, `sendInitialEvents`, selector transitions, Table
//! rows for kubectl, and `410 Expired` as an in-stream ERROR event.

use crate::error::{ApiError, ApiResult};
use crate::presentation::{present, shown_as_stored, table};
use crate::request::{Filter, Req, Target};
use crate::resources::ResourceType;
use crate::response::Body;
use crate::state::{State, storage_type};
use crate::store::{Change, EventType, StoreError};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Idle watchers get a bookmark this often (when they asked for bookmarks).
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// Watches without `timeoutSeconds` end after this long; clients re-watch.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Watch {
    rt: Arc<ResourceType>,
    prefix: String,
    filter: Filter,
    table: bool,
    include: String,
    bookmarks: bool,
    sent_columns: bool,
}

impl Watch {
    /// The event line for a change, or None when the watcher does not see it.
    fn line(&mut self, change: &Change) -> Option<Bytes> {
        if !change.key.starts_with(&self.prefix) {
            return None;
        }
        let unfiltered = match self.filter.only_name() {
            Some(name) => change.key.rsplit('/').next() == Some(name),
            None => self.filter.is_empty(),
        };
        if self.filter.only_name().is_some() && !unfiltered {
            return None;
        }
        if unfiltered {
            // The common cases (controllers, kubectl -w, single-object waits): no parsing.
            if !self.table && shown_as_stored(&self.rt, &change.raw) {
                return Some(raw_event(change.kind.as_str(), &change.raw));
            }
            return Some(self.event(change.kind.as_str(), &change.object()));
        }
        let object = change.object();
        let now_matches = self.filter.matches(&object);
        let was_matching = change
            .prev_object()
            .is_some_and(|p| self.filter.matches(&p));
        let kind = match (change.kind, was_matching, now_matches) {
            (EventType::Deleted, true, _) => "DELETED",
            (EventType::Deleted, false, _) => return None,
            (_, false, true) => "ADDED",
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, true, false) => "DELETED",
            (_, _, false) => return None,
            (EventType::Added, true, true) => "ADDED",
        };
        Some(self.event(kind, &object))
    }

    fn event(&mut self, kind: &str, object: &Value) -> Bytes {
        let shown = present(&self.rt, object);
        let object = if self.table {
            let rv = json!({"resourceVersion": shown.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
            let t = table::table(&self.rt, [shown], rv, &self.include, !self.sent_columns);
            self.sent_columns = true;
            t
        } else {
            shown
        };
        line(&json!({"type": kind, "object": object}))
    }

    fn bookmark(&self, rev: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            &json!({"type": "BOOKMARK", "object": {"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": metadata}}),
        )
    }
}

/// `{"type":KIND,"object":RAW}` and a newline, around JSON that is already encoded.
fn raw_event(kind: &str, raw: &[u8]) -> Bytes {
    let mut bytes = Vec::with_capacity(raw.len() + 40);
    bytes.extend_from_slice(b"{\"type\":\"");
    bytes.extend_from_slice(kind.as_bytes());
    bytes.extend_from_slice(b"\",\"object\":");
    bytes.extend_from_slice(raw);
    bytes.extend_from_slice(b"}\n");
    Bytes::from(bytes)
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn expired(message: String) -> Bytes {
    line(&json!({"type": "ERROR", "object": ApiError::gone(message).to_status()}))
}

pub fn serve(state: Arc<State>, t: Target, req: &Req) -> ApiResult<Response<Body>> {
    // Held until the watch ends, by its timeout or by the client going away.
    let slot = state.watches.take(req.client)?;
    let storage = storage_type(&state, &t.rt);
    let send_initial = req.param("sendInitialEvents") == Some("true");
    if req.param("resourceVersionMatch").is_some() && !send_initial {
        return Err(ApiError::list_options(
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    let from = match req.param("resourceVersion") {
        None | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };
    let timeout = req
        .param("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s.min(DEFAULT_TIMEOUT.as_secs())))
        .unwrap_or(DEFAULT_TIMEOUT);
    let mut watch = Watch {
        rt: t.rt.clone(),
        prefix: storage.prefix(t.namespace.as_deref()),
        filter: Filter::from_request(&t.rt, req)?,
        table: req.wants_table(),
        include: req.param("includeObject").unwrap_or("Metadata").to_owned(),
        bookmarks: req.param("allowWatchBookmarks") == Some("true"),
        sent_columns: false,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    // Everything that must be sent before live events, computed while subscribing so
    // nothing falls between the snapshot and the stream.
    let mut first = Vec::new();
    let live = match from.filter(|_| !send_initial) {
        Some(rev) => match state.store.watch_from(rev) {
            Ok((backlog, live)) => {
                first.extend(backlog.iter().filter_map(|c| watch.line(c)));
                Some((live, backlog.last().map_or(rev, |c| c.rev)))
            }
            Err(e @ StoreError::Compacted { .. }) => {
                first.push(expired(e.to_string()));
                None
            }
            Err(e) => return Err(e.into()),
        },
        None => {
            let (rev, items) = state.store.list(&watch.prefix);
            let (backlog, live) = state.store.watch_from(rev)?;
            for stored in &items {
                if watch.filter.is_empty()
                    && !watch.table
                    && shown_as_stored(&watch.rt, &stored.raw)
                {
                    first.push(raw_event("ADDED", &stored.raw));
                    continue;
                }
                let value = stored.value();
                if watch.filter.matches(&value) {
                    first.push(watch.event("ADDED", &value));
                }
            }
            if send_initial {
                first.push(watch.bookmark(rev, true));
            }
            first.extend(backlog.iter().filter_map(|c| watch.line(c)));
            Some((live, backlog.last().map_or(rev, |c| c.rev)))
        }
    };
    tokio::spawn(async move {
        let _slot = slot;
        for bytes in first {
            if tx.send(bytes).await.is_err() {
                return;
            }
        }
        if let Some((live, last)) = live {
            stream(&mut watch, live, last, timeout, &tx).await;
        }
    });
    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, std::convert::Infallible>(Frame::data(bytes)), rx))
    }));
    Ok(Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .header("Transfer-Encoding", "chunked")
        .body(BodyExt::boxed(body))
        .expect("static response parts are valid"))
}

async fn stream(
    watch: &mut Watch,
    mut live: broadcast::Receiver<Arc<Change>>,
    mut last: u64,
    timeout: Duration,
    tx: &mpsc::Sender<Bytes>,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
    loop {
        let out = tokio::select! {
            change = live.recv() => match change {
                Ok(change) if change.rev > last => {
                    last = change.rev;
                    watch.line(&change)
                }
                Ok(_) => None,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // This watcher fell too far behind to be served in order: make it re-list.
                    let _ = tx.send(expired(format!("too old resource version: {last} (watcher fell behind)"))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick(), if watch.bookmarks => Some(watch.bookmark(last, false)),
            _ = tokio::time::sleep_until(deadline) => {
                if watch.bookmarks {
                    let _ = tx.send(watch.bookmark(last, false)).await;
                }
                return;
            }
            _ = tx.closed() => return,
        };
        if let Some(bytes) = out
            && tx.send(bytes).await.is_err()
        {
            return;
        }
    }
}
