//! One look at a whole cluster instead of one per guest: `GET /cluster/resources?type=vm`
//! gives every guest's node, type, power state, lock and uptime in a single call. PVE's
//! API daemon is a Perl process pool on the hypervisor Phoenix manages, so a pass reads
//! this shared snapshot (taken on an interval, and again after a task of its own ends) and
//! only the guest's config of its own.

use crate::error::Error;
use phoenix_clients::proxmox::{ClusterResource, ProxmoxClient};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What `/cluster/resources` says of one guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestSummary {
    pub node: String,
    /// `lxc` or `qemu`, as PVE's paths name the types.
    pub kind: String,
    pub running: bool,
    pub template: bool,
    pub lock: Option<String>,
    /// When it was started, in seconds since the epoch (to a second or two): the same
    /// value across looks means it has not restarted in between.
    pub booted: Option<i64>,
}

/// Every guest of a cluster at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// When the call that produced it was sent (so it is never thought newer than it is).
    pub taken: Instant,
    pub guests: BTreeMap<u32, GuestSummary>,
}

/// How recent a snapshot a reader needs.
#[derive(Clone, Copy, Debug)]
pub enum Freshness {
    /// Any snapshot no older than this.
    Within(Duration),
    /// One taken after this moment (a task of ours ended: what it changed must show).
    After(Instant),
}

/// A cluster's shared snapshot; one call at a time fetches it, and readers waiting on
/// that call take its answer rather than sending their own.
#[derive(Default)]
pub struct ClusterView {
    current: tokio::sync::Mutex<Option<Arc<Snapshot>>>,
    /// VMIDs seen changing between consecutive snapshots, whoever fetched them, until the
    /// watcher takes them to wake their objects.
    changes: std::sync::Mutex<BTreeSet<u32>>,
}

impl ClusterView {
    /// A snapshot as fresh as `freshness` asks, fetched only when the current one is not.
    pub async fn read(
        &self,
        client: &ProxmoxClient,
        freshness: Freshness,
    ) -> Result<Arc<Snapshot>, Error> {
        let mut current = self.current.lock().await;
        if let Some(snapshot) = current.as_ref().filter(|s| fresh_enough(s, freshness)) {
            return Ok(snapshot.clone());
        }
        let snapshot = Arc::new(fetch(client).await?);
        if let Some(before) = current.replace(snapshot.clone()) {
            let mut changes = self.changes.lock().unwrap_or_else(|e| e.into_inner());
            changes.extend(changed(&before, &snapshot));
        }
        Ok(snapshot)
    }

    /// The VMIDs seen changing since the last call.
    pub fn take_changes(&self) -> BTreeSet<u32> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn fresh_enough(snapshot: &Snapshot, freshness: Freshness) -> bool {
    match freshness {
        Freshness::Within(age) => snapshot.taken.elapsed() <= age,
        Freshness::After(moment) => snapshot.taken >= moment,
    }
}

async fn fetch(client: &ProxmoxClient) -> Result<Snapshot, Error> {
    let taken = Instant::now();
    let entries = client.guests().await?;
    Ok(Snapshot {
        taken,
        guests: parse(&entries, jiff::Timestamp::now().as_second()),
    })
}

/// The guests of a `/cluster/resources?type=vm` answer received at `now` (seconds).
pub fn parse(entries: &[ClusterResource], now: i64) -> BTreeMap<u32, GuestSummary> {
    entries
        .iter()
        .filter_map(|e| {
            let running = e.status.as_deref() == Some("running");
            let summary = GuestSummary {
                node: e.node.clone()?,
                kind: e.kind.clone(),
                running,
                template: e.template == Some(1),
                lock: e.lock.clone().filter(|l| !l.is_empty()),
                booted: running.then_some(now - e.uptime.unwrap_or(0)),
            };
            Some((e.vmid?, summary))
        })
        .collect()
}

/// How far two looks at one boot may disagree on its start: uptime is whole seconds, and
/// the clock moves between the answer and its reading.
const BOOT_JITTER_S: i64 = 3;

/// Whether two summaries of a guest describe the same boot.
pub fn same_boot(a: Option<i64>, b: Option<i64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= BOOT_JITTER_S,
        _ => false,
    }
}

/// The VMIDs whose guest changed between two looks: appeared, vanished, moved, started,
/// stopped, restarted, locked, unlocked or converted. Uptime moving on is no change.
pub fn changed(before: &Snapshot, after: &Snapshot) -> Vec<u32> {
    let differs = |a: &GuestSummary, b: &GuestSummary| {
        a.node != b.node
            || a.kind != b.kind
            || a.running != b.running
            || a.template != b.template
            || a.lock != b.lock
            || (a.running && b.running && !same_boot(a.booted, b.booted))
    };
    let mut vmids: Vec<u32> = before
        .guests
        .iter()
        .filter(|(vmid, a)| after.guests.get(vmid).is_none_or(|b| differs(a, b)))
        .map(|(vmid, _)| *vmid)
        .chain(
            after
                .guests
                .keys()
                .filter(|vmid| !before.guests.contains_key(vmid))
                .copied(),
        )
        .collect();
    vmids.sort_unstable();
    vmids
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn snapshot(entries: Value, now: i64) -> Snapshot {
        let entries: Vec<ClusterResource> = serde_json::from_value(entries).unwrap();
        Snapshot {
            taken: Instant::now(),
            guests: parse(&entries, now),
        }
    }

    #[test]
    fn parse_reads_what_a_pass_needs() {
        let entries = json!([
            {"vmid": 101, "type": "lxc", "node": "phoenix", "status": "running", "uptime": 100},
            {"vmid": 900, "type": "lxc", "node": "pve2", "status": "stopped", "template": 1, "uptime": 0},
            {"vmid": 102, "type": "qemu", "node": "phoenix", "status": "stopped", "lock": "backup"},
            {"id": "node/phoenix", "type": "node", "node": "phoenix"},
        ]);
        let s = snapshot(entries, 1_000);
        assert_eq!(s.guests.len(), 3, "nodes are not guests");
        assert_eq!(s.guests[&101].booted, Some(900));
        assert!(s.guests[&101].running);
        assert!(s.guests[&900].template && s.guests[&900].booted.is_none());
        assert_eq!(s.guests[&102].lock.as_deref(), Some("backup"));
        assert_eq!(s.guests[&102].kind, "qemu");
    }

    #[test]
    fn changed_sees_power_place_lock_and_restarts_but_not_time() {
        let before = snapshot(
            json!([
                {"vmid": 1, "type": "lxc", "node": "a", "status": "running", "uptime": 50},
                {"vmid": 2, "type": "lxc", "node": "a", "status": "running", "uptime": 50},
                {"vmid": 3, "type": "lxc", "node": "a", "status": "running", "uptime": 50},
                {"vmid": 4, "type": "lxc", "node": "a", "status": "stopped"},
                {"vmid": 5, "type": "lxc", "node": "a", "status": "running", "uptime": 50},
                {"vmid": 6, "type": "lxc", "node": "a", "status": "stopped"},
                {"vmid": 7, "type": "lxc", "node": "a", "status": "stopped"},
            ]),
            1_000,
        );
        let after = snapshot(
            json!([
                // 10 s later: still running, same boot.
                {"vmid": 1, "type": "lxc", "node": "a", "status": "running", "uptime": 61},
                {"vmid": 2, "type": "lxc", "node": "a", "status": "stopped"},
                // Restarted: up for 2 s only.
                {"vmid": 3, "type": "lxc", "node": "a", "status": "running", "uptime": 2},
                {"vmid": 4, "type": "lxc", "node": "b", "status": "stopped"},
                // 5 vanished.
                {"vmid": 6, "type": "lxc", "node": "a", "status": "stopped", "lock": "migrate"},
                {"vmid": 7, "type": "lxc", "node": "a", "status": "stopped"},
                {"vmid": 8, "type": "lxc", "node": "a", "status": "stopped"},
            ]),
            1_010,
        );
        assert_eq!(changed(&before, &after), vec![2, 3, 4, 5, 6, 8]);
        assert_eq!(changed(&after, &after), Vec::<u32>::new());
    }

    #[test]
    fn freshness() {
        let now = Instant::now();
        let s = Snapshot {
            taken: now,
            guests: BTreeMap::new(),
        };
        assert!(fresh_enough(&s, Freshness::Within(Duration::from_secs(5))));
        assert!(fresh_enough(&s, Freshness::After(now)));
        assert!(!fresh_enough(
            &s,
            Freshness::After(now + Duration::from_millis(1))
        ));
    }
}
