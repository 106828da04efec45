//! What the subcommands that start or use the simulated Proxmox VE share: its task
//! durations, where `phoenix up --simulate` keeps its credentials, and the redirect those
//! credentials give the controllers.

use phoenix_controllers::pve::Redirect;
use std::path::{Path, PathBuf};

/// Realistic task durations, changed by `--task-duration OP=S`; `default=S` sets every
/// operation, other entries then override single operations.
pub fn task_durations(
    overrides: &[(String, std::time::Duration)],
) -> std::collections::BTreeMap<String, std::time::Duration> {
    let mut durations = phoenix_sim::state::Sim::realistic_durations();
    if overrides.iter().any(|(op, _)| op == "default") {
        durations.clear();
    }
    durations.extend(overrides.iter().cloned());
    durations
}

/// The simulator's credentials file of `phoenix up --simulate`: DATA_DIR/sim.json, beside
/// the kubeconfig.
pub fn credentials_in(data_dir: &Path) -> PathBuf {
    data_dir.join("sim.json")
}

/// PVE calls sent to the simulator of `credentials` instead of the manifests' address.
pub fn redirect(credentials: &phoenix_sim::CredentialsFile) -> Redirect {
    Redirect {
        endpoint: credentials.url.clone(),
        token_id: credentials.token_id.clone(),
        token_secret: credentials.token_secret.clone(),
        fingerprint: credentials.fingerprint.clone(),
        ..Default::default()
    }
}
