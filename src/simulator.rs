//! What the subcommands that start or use the simulated Proxmox VE share: its task
//! durations, where `phoenix up --simulate` keeps its credentials, the simulated peers
//! `up` and `controller` can be pointed at, and the redirects they give the controllers.

use clap::Args;
use phoenix_controllers::certificate::AcmeRedirect;
use phoenix_controllers::pve::Redirect;
use std::path::{Path, PathBuf};

/// Where simulate mode finds the systems it stands in for, when they run apart from this
/// process (a second replica, a real Kubernetes in the tests): each on loopback only, and
/// only with --simulate (without it they would be ignored, and the manifests' real
/// addresses reached).
#[derive(Args, Debug, Clone, Default)]
pub struct SimulatedPeers {
    /// With --simulate: the simulated Proxmox VE running in its own process (`phoenix sim
    /// pve --credentials-out FILE`); `up` starts one in its own process without it.
    #[arg(long, requires = "simulate")]
    pub sim_pve_credentials: Option<PathBuf>,
    /// With --simulate: reach the nodes' SSH at this loopback HOST:PORT (an sshd whose
    /// `pct` is `phoenix sim pct`), host keys still checked under the nodes' names.
    #[arg(long, requires = "simulate", value_parser = loopback_address)]
    pub sim_ssh: Option<String>,
    /// With --simulate: the ACME directory standing in for Step-CA (a pebble on loopback;
    /// without it, `phoenix up` starts pebble itself when it is installed).
    #[arg(long, requires = "simulate", requires_all = ["sim_acme_roots", "sim_acme_ca"], value_parser = loopback_url)]
    pub sim_acme_directory: Option<String>,
    /// With --sim-acme-directory: where its root CA is served (pebble: /roots/0).
    #[arg(long, requires = "sim_acme_directory", value_parser = loopback_url)]
    pub sim_acme_roots: Option<String>,
    /// With --sim-acme-directory: the CA (PEM file) of its HTTPS listener.
    #[arg(long, requires = "sim_acme_directory")]
    pub sim_acme_ca: Option<PathBuf>,
    /// With --simulate: authenticate to the simulated PVE with the token of each
    /// ProxmoxCluster's Secret (as `phoenix setup` writes it) instead of the simulator's
    /// own root token, so the token's privileges are what is exercised.
    #[arg(long, requires = "simulate")]
    pub sim_token_from_secret: bool,
}

/// The real programs a simulated guest's services run as ([`phoenix_sim::daemons`]):
/// without them, loopback stand-ins answer for those guests' ports.
#[derive(Args, Clone, Debug, Default)]
pub struct GuestPrograms {
    /// The Traefik binary run for a simulated guest with the `traefik` feature (`make
    /// traefik` builds it), on that guest's files, on loopback.
    #[arg(long, value_name = "PATH")]
    pub sim_traefik: Option<PathBuf>,
    /// The nginx binary run for a simulated guest with the `nginxGateway` feature
    /// (Debian's: /usr/sbin/nginx), on that guest's files, on loopback.
    #[arg(long, value_name = "PATH")]
    pub sim_nginx: Option<PathBuf>,
}

impl GuestPrograms {
    pub fn programs(&self) -> phoenix_sim::daemons::Programs {
        phoenix_sim::daemons::Programs {
            traefik: self.sim_traefik.clone(),
            nginx: self.sim_nginx.clone(),
        }
    }
}

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

/// Every PVE call sent to the simulator of `credentials`, and every command meant for a
/// guest through this binary's `sim pct` (reading `pct_credentials`), or through a real
/// sshd on loopback whose `pct` is that (`--sim-ssh`).
pub fn simulated_redirect(
    peers: &SimulatedPeers,
    credentials: &phoenix_sim::CredentialsFile,
    pct_credentials: &Path,
) -> anyhow::Result<Redirect> {
    Ok(Redirect {
        pct: vec![
            std::env::current_exe()?.display().to_string(),
            "sim".into(),
            "pct".into(),
            "--credentials".into(),
            std::path::absolute(pct_credentials)?.display().to_string(),
        ],
        ssh: peers.sim_ssh.clone(),
        token_from_secret: peers.sim_token_from_secret,
        ..redirect(credentials)
    })
}

/// The ACME server named by --sim-acme-*, if any.
pub fn named_acme(peers: &SimulatedPeers) -> anyhow::Result<Option<AcmeRedirect>> {
    let (Some(directory), Some(roots), Some(ca)) = (
        &peers.sim_acme_directory,
        &peers.sim_acme_roots,
        &peers.sim_acme_ca,
    ) else {
        return Ok(None);
    };
    Ok(Some(AcmeRedirect {
        directory_url: directory.clone(),
        roots_url: roots.clone(),
        server_ca_pem: std::fs::read_to_string(ca)
            .map_err(|e| anyhow::anyhow!("--sim-acme-ca {}: {e}", ca.display()))?,
    }))
}

/// A simulator's credentials file (and its text), refused unless the simulator (its API,
/// its admin endpoint, where `sim pct` sends guest commands, and its Portainer) is on
/// loopback: simulate mode never reaches beyond this machine.
pub fn read_credentials(file: &Path) -> anyhow::Result<(phoenix_sim::CredentialsFile, String)> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let credentials: phoenix_sim::CredentialsFile = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a simulator's credentials: {e}", file.display()))?;
    let portainer = Some(&credentials.portainer_url).filter(|u| !u.is_empty());
    for url in [&credentials.url, &credentials.admin_url]
        .into_iter()
        .chain(portainer)
    {
        loopback_url(url).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    Ok((credentials, text))
}

/// A listen address for simulate mode: on loopback (an error otherwise).
pub fn require_loopback(flag: &str, address: &str) -> anyhow::Result<()> {
    loopback_address(address)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("with --simulate, {flag} must be on loopback: {e}"))
}

/// Simulate mode never reaches beyond this machine.
fn loopback_address(text: &str) -> Result<String, String> {
    let addr: std::net::SocketAddr = text
        .parse()
        .map_err(|_| format!("{text:?} is not HOST:PORT"))?;
    if addr.ip().is_loopback() {
        Ok(text.to_owned())
    } else {
        Err(format!("{text} is not a loopback address"))
    }
}

/// `https://127.0.0.1:PORT/...`: simulate mode's ACME server is on this machine.
fn loopback_url(text: &str) -> Result<String, String> {
    let authority = text
        .strip_prefix("https://")
        .ok_or_else(|| format!("{text} is not an https:// URL"))?
        .split('/')
        .next()
        .unwrap_or_default();
    loopback_address(authority).map(|_| text.to_owned())
}
