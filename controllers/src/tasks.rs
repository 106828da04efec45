//! PVE tasks in flight. A reconcile starts a task, stores its UPID in status and returns;
//! the tracker follows the task with bounded polling, holds the budget slots while it
//! runs (their release wakes whoever queued for them), and wakes the owning object's reconcile the moment it stops, so no reconcile
//! ever blocks on a task and no slot of the node's budget idles.

use crate::metrics::Metrics;
use crate::slots::Slot;
use phoenix_clients::proxmox::{ErrorKind, ProxmoxClient, TaskOutcome, Upid};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct TaskTracker {
    metrics: Arc<Metrics>,
    poll: Duration,
    following: Arc<Mutex<BTreeSet<String>>>,
}

impl TaskTracker {
    pub fn new(metrics: Arc<Metrics>, poll: Duration) -> Self {
        Self {
            metrics,
            poll,
            following: Arc::default(),
        }
    }

    pub fn is_following(&self, upid: &str) -> bool {
        self.lock().contains(upid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.following.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows `upid` until it stops, then releases `slots` and calls `done`. A task
    /// already followed is left to its follower.
    pub fn follow(
        &self,
        client: ProxmoxClient,
        upid: Upid,
        slots: Vec<Slot>,
        done: impl FnOnce() + Send + 'static,
    ) {
        if !self.lock().insert(upid.raw.clone()) {
            return;
        }
        let (metrics, poll, following) = (self.metrics.clone(), self.poll, self.following.clone());
        metrics.task_started(&upid.node);
        tokio::spawn(async move {
            let mut errors = 0u32;
            loop {
                tokio::time::sleep(poll).await;
                match client.task(&upid).await {
                    Ok(status) if status.outcome() != TaskOutcome::Running => break,
                    Ok(_) => errors = 0,
                    // The node forgot the task (restart): the reconcile will re-observe.
                    Err(e) if e.kind == ErrorKind::NotFound => break,
                    Err(_) => {
                        errors += 1;
                        // Back off on errors, up to ~10 s between polls.
                        let pause = poll * 2u32.saturating_pow(errors.min(5));
                        tokio::time::sleep(pause.min(Duration::from_secs(10))).await;
                    }
                }
            }
            drop(slots);
            metrics.task_finished(&upid.node);
            following
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&upid.raw);
            done();
        });
    }
}
