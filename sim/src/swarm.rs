//! The docker swarms the simulated VMs formed, as the cluster keeps them (and the admin
//! endpoint shows them); `docker` is what forms and changes them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Swarms by id.
pub type Swarms = BTreeMap<String, Swarm>;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Swarm {
    /// Where workers reach the manager (`--advertise-addr`).
    pub manager_address: String,
    pub worker_token: String,
    pub nodes: Vec<SwarmNode>,
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
}
