//! The simulator's mutable state behind one lock: the cluster, task timing, faults and the
//! operation log.

use crate::cluster::{Cluster, Effect};
use crate::node_mirror::NodeMirror;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Faults to inject, set at start or through the admin endpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Faults {
    /// Share of API requests answered with a 500 (`got no worker upid - start worker failed`)
    /// or a 503, from 0.0 to 1.0.
    pub error_rate: f64,
    /// Added latency per request, drawn uniformly between these bounds (milliseconds).
    pub latency_ms: (u64, u64),
    /// Share of connections reset without an answer.
    pub reset_rate: f64,
    /// Tasks of these types end with this error exit status.
    pub fail_tasks: BTreeMap<String, String>,
    /// Guests locked by "someone else": mutating calls fail with `is locked (<reason>)`.
    pub locked: BTreeMap<u32, String>,
    /// Task status reads answer `no such task` (as after a node restart).
    pub lose_task_status: bool,
    /// VMs whose guest agent never comes up (not installed, or crashed).
    pub agent_down: std::collections::BTreeSet<u32>,
}

/// One API call as the operation log records it.
#[derive(Clone, Debug, Serialize)]
pub struct Operation {
    pub method: String,
    pub path: String,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub status: u16,
    /// Whether the call changes PVE's state: anything but a read, except the guest
    /// agent's endpoints, which act inside the guest (commands, files), not on PVE.
    pub mutating: bool,
}

impl Operation {
    pub fn new(
        method: &str,
        path: &str,
        params: serde_json::Map<String, serde_json::Value>,
        status: u16,
    ) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            params,
            status,
            mutating: method != "GET" && !path.contains("/agent/"),
        }
    }
}

pub struct Sim {
    pub cluster: Cluster,
    pub faults: Faults,
    pub oplog: Vec<Operation>,
    pub rng: StdRng,
    /// Per task type, `default` for the rest.
    pub durations: BTreeMap<String, Duration>,
    pub budget_per_node: usize,
    pub state_file: Option<PathBuf>,
    /// The nodes' files as real files beside the state file (`nodes/<node>/<path>`).
    pub mirror: Option<NodeMirror>,
    /// What the call being answered adds to the envelope beside `data` (PVE's
    /// `set_result_attrib`: `changes`, `total`); emptied before each call.
    pub result_attribs: serde_json::Map<String, serde_json::Value>,
}

impl Sim {
    pub fn new(
        cluster: Cluster,
        seed: u64,
        durations: BTreeMap<String, Duration>,
        state_file: Option<PathBuf>,
    ) -> Self {
        Self {
            cluster,
            faults: Faults::default(),
            oplog: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            durations,
            budget_per_node: 4,
            mirror: state_file.as_deref().map(NodeMirror::beside),
            state_file,
            result_attribs: Default::default(),
        }
    }

    /// PVE's `set_result_attrib`: `value` goes into the answer's envelope as `name`.
    pub fn set_result_attrib(&mut self, name: &str, value: serde_json::Value) {
        self.result_attribs.insert(name.to_owned(), value);
    }

    /// Changes the cluster with `f`, then brings the mirror of `node`'s files up to date:
    /// whoever writes a node's files goes through here.
    pub fn on_node<R>(&mut self, node: &str, f: impl FnOnce(&mut Cluster) -> R) -> R {
        let files = |cluster: &Cluster| cluster.node(node).map(|n| n.inside.files.clone());
        let before = self.mirror.as_ref().and_then(|_| files(&self.cluster));
        let result = f(&mut self.cluster);
        if let (Some(mirror), Some(before)) = (&self.mirror, before)
            && let Some(n) = self.cluster.node(node)
        {
            mirror.follow(node, &before, &n.inside.files);
        }
        result
    }

    /// Makes the mirror hold exactly what the nodes hold (at start).
    pub fn restore_mirror(&self) {
        if let Some(mirror) = &self.mirror {
            for node in &self.cluster.nodes {
                mirror.restore(&node.name, &node.inside.files);
            }
        }
    }

    /// Realistic task durations for demos; tests pass `default=0`.
    pub fn realistic_durations() -> BTreeMap<String, Duration> {
        [
            ("default", 1.0),
            ("vzcreate", 8.0),
            ("qmcreate", 6.0),
            ("vzclone", 6.0),
            ("qmclone", 5.0),
            ("vzstart", 2.0),
            ("qmstart", 3.0),
            ("download", 5.0),
        ]
        .into_iter()
        .map(|(k, s)| (k.to_string(), Duration::from_secs_f64(s)))
        .collect()
    }

    /// How long after a VM starts its guest agent answers (the `agent` duration).
    pub fn agent_boot(&self) -> Duration {
        self.duration("agent")
    }

    fn duration(&self, kind: &str) -> Duration {
        self.durations
            .get(kind)
            .or_else(|| self.durations.get("default"))
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }

    /// Starts a task of `kind` about `id`; an injected failure for the type makes it fail.
    pub fn task(&mut self, node: &str, kind: &str, id: &str, user: &str, effect: Effect) -> String {
        let duration = self.duration(kind);
        let upid =
            self.cluster
                .start_task(node, kind, id, user, duration, self.budget_per_node, effect);
        if let Some(error) = self.faults.fail_tasks.get(kind).cloned() {
            self.fail(&upid, &error);
        }
        upid
    }

    /// As `task`, releasing the guest's lock if the task fails.
    pub fn locked_task(
        &mut self,
        node: &str,
        kind: &str,
        id: &str,
        user: &str,
        vmid: u32,
        effect: Effect,
    ) -> String {
        let upid = self.task(node, kind, id, user, effect);
        if let Some(t) = self.cluster.tasks.get_mut(&upid) {
            t.unlock_on_failure = Some(vmid);
        }
        upid
    }

    pub fn fail(&mut self, upid: &str, error: &str) {
        if let Some(t) = self.cluster.tasks.get_mut(upid) {
            t.failure = Some(error.replace('\n', " "));
        }
    }

    pub fn set_lock(&mut self, vmid: u32, lock: &str) {
        if let Some(g) = self.cluster.guests.get_mut(&vmid) {
            g.config.insert("lock".into(), lock.into());
        }
    }

    pub fn roll(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.rng.random::<f64>() < probability
    }

    pub fn latency(&mut self) -> Duration {
        let (lo, hi) = self.faults.latency_ms;
        if hi == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.rng.random_range(lo..=hi.max(lo)))
    }

    /// Writes the cluster to the state file, when there is one.
    pub fn save(&self) {
        let Some(path) = &self.state_file else { return };
        match serde_json::to_vec(&self.cluster) {
            Ok(bytes) => {
                let tmp = path.with_extension("tmp");
                // Guests' files (keys among them) are in it: readable by the owner only.
                let written = {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&tmp)
                        .and_then(|mut f| f.write_all(&bytes))
                };
                if written.and_then(|_| std::fs::rename(&tmp, path)).is_err() {
                    tracing::warn!(path = %path.display(), "cannot write the simulator state file");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode the simulator state"),
        }
    }
}
