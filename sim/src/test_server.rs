//! The simulated PVE the unit tests drive without a network: one node, no task durations,
//! root's password and token known.

use crate::cluster::Cluster;
use crate::server::{Credentials, Server};
use crate::state::Sim;
use std::path::PathBuf;

/// The `Authorization` header of root's token.
pub const ROOT_TOKEN: &str = "PVEAPIToken=root@pam!phoenix=root-secret";

/// A server over `cluster`, saving its state to `state_file` when given.
pub fn server_with(cluster: Cluster, state_file: Option<PathBuf>) -> Server {
    let durations = [("default".to_string(), std::time::Duration::ZERO)].into();
    let creds = Credentials {
        user: "root@pam".into(),
        password: "root-password".into(),
        token_id: "root@pam!phoenix".into(),
        token_secret: "root-secret".into(),
    };
    Server::new(Sim::new(cluster, 1, durations, state_file), creds)
}
