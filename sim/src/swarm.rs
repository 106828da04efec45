//! The docker swarms the simulated VMs formed, as the cluster keeps them (and the admin
//! endpoint shows them); `docker` is what forms and changes them, `stack` deploys
//! services on them.

use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The label that names the stack a service belongs to.
pub const NAMESPACE: &str = "com.docker.stack.namespace";

/// An id as Docker makes them: lower-case letters and digits.
pub fn random_id(rng: &mut StdRng, len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// Swarms by id.
pub type Swarms = BTreeMap<String, Swarm>;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Swarm {
    /// Where workers reach the manager (`--advertise-addr`).
    pub manager_address: String,
    pub worker_token: String,
    pub nodes: Vec<SwarmNode>,
    /// Services by name (`STACK_service`).
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SwarmNode {
    pub id: String,
    pub vmid: u32,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `ready`, or `down` once the node left.
    pub status: String,
    /// Node labels (`docker node update --label-add`), matched by placement constraints.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A swarm service, as a stack deploy made it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// `None` for global mode, else the replica count.
    pub replicas: Option<u32>,
    pub constraints: Vec<String>,
    /// Published ports as `docker service ls` shows them (`*:8000->80/tcp`).
    pub ports: Vec<String>,
    /// Names of the container's environment variables (their values are not kept: they
    /// may be secrets).
    pub env: Vec<String>,
    pub tasks: Vec<Task>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    /// Replica number (1-based); 0 for a global service's task.
    pub slot: u32,
    /// The node it was given, empty while pending.
    pub node_id: String,
    /// `running`, `pending` or `rejected`.
    pub state: String,
    pub err: String,
}

impl Swarm {
    /// The services of stack `name` (label `com.docker.stack.namespace`).
    pub fn stack_services(&self, name: &str) -> Vec<&Service> {
        self.services
            .values()
            .filter(|s| s.namespace() == Some(name))
            .collect()
    }

    pub fn has_stack(&self, name: &str) -> bool {
        !self.stack_services(name).is_empty()
    }
}

impl Service {
    pub fn namespace(&self) -> Option<&str> {
        self.labels.get(NAMESPACE).map(String::as_str)
    }

    /// Running tasks over desired ones, as `docker service ls` shows them (`1/1`).
    pub fn replicas_text(&self) -> String {
        let running = self.tasks.iter().filter(|t| t.state == "running").count();
        let desired = self.replicas.map_or(self.tasks.len(), |r| r as usize);
        format!("{running}/{desired}")
    }
}
