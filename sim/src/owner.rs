//! Whose inside an admin route acts on, a guest's or a node's, and what the routes
//! share between the two: lookup, readiness, lock names, and changes that keep a node's
//! mirror on disk up to date.

use crate::api::PveError;
use crate::state::Sim;
use serde_json::{Map, Value, json};

/// Whose inside an admin route acts on: a guest's, or a node's (the host itself).
#[derive(Clone, Debug)]
pub enum Owner {
    Guest(u32),
    Node(String),
}

impl Owner {
    /// `guests/{vmid}/ACTION` or `nodes/{node}/ACTION`: the owner and the action.
    pub fn route(path: &str) -> Option<(Self, &str)> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["guests", vmid, action] => Some((Self::Guest(vmid.parse().ok()?), action)),
            ["nodes", node, action] => Some((Self::Node((*node).to_owned()), action)),
            _ => None,
        }
    }

    pub fn missing(&self) -> PveError {
        let message = match self {
            Self::Guest(vmid) => {
                format!("Configuration file 'nodes/*/lxc/{vmid}.conf' does not exist")
            }
            Self::Node(node) => format!("no such node '{node}'"),
        };
        PveError {
            status: 404,
            message,
            errors: None,
        }
    }

    /// Why a run stops when its owner went away during it.
    pub fn gone(&self) -> PveError {
        PveError::server(match self {
            Self::Guest(vmid) => format!("CT {vmid} was removed"),
            Self::Node(node) => format!("node '{node}' was removed"),
        })
    }

    /// Lock files are the owner's own: the same path in two guests is two locks.
    pub fn flock_key(&self, file: &str) -> String {
        match self {
            Self::Guest(vmid) => format!("{vmid}:{file}"),
            Self::Node(node) => format!("node/{node}:{file}"),
        }
    }

    /// Whether commands can run in it: a guest must be running, a node is always up.
    pub fn ready(&self, sim: &Sim) -> Result<(), PveError> {
        match self {
            Self::Guest(vmid) => match sim.cluster.guests.get(vmid) {
                Some(g) if g.running => Ok(()),
                Some(_) => Err(PveError::server(format!("CT {vmid} not running"))),
                None => Err(self.missing()),
            },
            Self::Node(node) => sim
                .cluster
                .node(node)
                .map(|_| ())
                .ok_or_else(|| self.missing()),
        }
    }

    /// Applies `f` to its inside; a node's files are mirrored on disk after.
    pub fn change<R>(
        &self,
        sim: &mut Sim,
        f: impl FnOnce(&mut crate::inside::Inside) -> R,
    ) -> Result<R, PveError> {
        let done = match self {
            Self::Guest(vmid) => sim.cluster.guests.get_mut(vmid).map(|g| f(&mut g.inside)),
            Self::Node(node) => sim.on_node(node, |c| c.node_mut(node).map(|n| f(&mut n.inside))),
        };
        done.ok_or_else(|| self.missing())
    }
}

impl Owner {
    /// One step of a run in its inside; on a node, with the node's own commands (`zfs`,
    /// `zpool`, `exportfs`) acting on its pools and exports.
    pub fn step(
        &self,
        sim: &mut Sim,
        run: &mut crate::inside::Run,
        now_ms: u64,
    ) -> Result<crate::inside::Step, PveError> {
        let Self::Node(node) = self else {
            return self.change(sim, |inside| run.step(inside, now_ms));
        };
        let stepped = sim.on_node(node, |c| {
            let n = c.node_mut(node)?;
            let (inside, mut host) = n.shell();
            Some(run.step_on(inside, &mut host, now_ms))
        });
        stepped.ok_or_else(|| self.missing())
    }
}

/// `GET …/inside`: the files with their modes (`{path: "0644"}`, not their content), the
/// command log, the services' states and the enabled units.
pub fn inside_summary(inside: &mut crate::inside::Inside) -> Value {
    let files: Map<String, Value> = inside
        .files
        .keys()
        .map(|path| {
            let mode = inside.mode(path).unwrap_or(crate::inside::DEFAULT_MODE);
            (path.clone(), json!(format!("{mode:04o}")))
        })
        .collect();
    json!({"files": files, "log": inside.log, "services": inside.services, "enabled": inside.enabled})
}
