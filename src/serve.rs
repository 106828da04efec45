//! `phoenix apiserver` and `phoenix up`: the embedded API server in the foreground until
//! SIGINT/SIGTERM, with the kubeconfig written and announced.

use crate::controller::{ControllerArgs, serve_metrics, spawn_controllers};
use crate::runtime::{in_runtime, wait_for_signal};
use crate::simulator::{self, SimulatedPeers};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Where the SQLite store, certificates, token and kubeconfig live.
    #[arg(long, default_value = ".phoenix")]
    pub data_dir: PathBuf,
    /// Address to serve the Kubernetes API on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: String,
    /// Also serve a simulated Proxmox VE cluster (and Portainer) and point the examples at it.
    #[arg(long)]
    pub simulate: bool,
    /// Apply the manifests in this file or directory once the server is up (as `kubectl apply -f`).
    #[arg(long)]
    pub apply: Option<PathBuf>,
    /// With --simulate: number of simulated nodes (one is called `phoenix`, as in the examples).
    #[arg(long, default_value_t = 1, conflicts_with = "sim_pve_credentials")]
    pub sim_nodes: usize,
    /// With --simulate: how long tasks of a type take, OP=SECONDS; repeatable.
    #[arg(long = "task-duration", value_parser = phoenix_sim::parse_duration, conflicts_with = "sim_pve_credentials")]
    pub task_durations: Vec<(String, std::time::Duration)>,
    /// With --simulate: seed for injected faults.
    #[arg(long, default_value_t = 1, conflicts_with = "sim_pve_credentials")]
    pub seed: u64,
    #[command(flatten)]
    pub peers: SimulatedPeers,
    #[command(flatten)]
    pub programs: simulator::GuestPrograms,
    #[command(flatten)]
    pub controller: ControllerArgs,
}

pub fn run(args: ServerArgs, up: bool) -> ExitCode {
    in_runtime(serve(args, up))
}

async fn serve(args: ServerArgs, up: bool) -> ExitCode {
    // Made private before the server starts, so it is never open to others, not even
    // empty (the server tightens it too, and warns when it finds it looser).
    if let Err(e) = phoenix_apiserver::store::private_dir(&args.data_dir) {
        eprintln!("phoenix: {e}");
        return ExitCode::FAILURE;
    }
    let config = phoenix_apiserver::Config {
        data_dir: args.data_dir.clone(),
        listen: args.listen.clone(),
        limits: Default::default(),
    };
    let running = match phoenix_apiserver::start(config).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("phoenix: {e}");
            return ExitCode::FAILURE;
        }
    };
    let kubeconfig =
        std::fs::canonicalize(&running.kubeconfig).unwrap_or(running.kubeconfig.clone());
    let platform = if up {
        match start_platform(&args, &kubeconfig).await {
            Ok(platform) => Some(platform),
            Err(e) => {
                eprintln!("phoenix up: {e:#}");
                running.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
    } else {
        if let Some(path) = &args.apply {
            tracing::warn!(path = %path.display(), "--apply is for `phoenix up`; apply with kubectl");
        }
        None
    };
    println!("export KUBECONFIG={}", kubeconfig.display());
    if let Some(platform) = &platform {
        println!("# metrics: http://{}/metrics", platform.metrics);
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    if let Some(platform) = platform {
        platform.controllers.abort();
        if let Some(sim) = platform.sim {
            sim.stop();
        }
    }
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// What `phoenix up` runs beside the API server.
struct Platform {
    controllers: tokio::task::JoinHandle<()>,
    sim: Option<phoenix_sim::Running>,
    /// The ACME server of simulate mode, when `phoenix up` started it.
    _pebble: Option<phoenix_sim::pebble::Pebble>,
    metrics: std::net::SocketAddr,
}

/// CRDs, the simulator (with --simulate), the manifests of --apply, and the controllers.
async fn start_platform(args: &ServerArgs, kubeconfig: &Path) -> anyhow::Result<Platform> {
    let kube = crate::kube_client::connect(Some(kubeconfig)).await?;
    crate::apply::install_crds(&kube).await?;
    let (sim, redirect) = if args.simulate {
        let (sim, credentials) = match &args.peers.sim_pve_credentials {
            Some(file) => (None, external_simulator(file, &args.data_dir)?),
            None => {
                let sim = start_simulator(args).await?;
                let credentials = sim.credentials.clone();
                (Some(sim), credentials)
            }
        };
        let pct_credentials = simulator::credentials_in(&args.data_dir);
        let redirect = simulator::simulated_redirect(&args.peers, &credentials, &pct_credentials)?;
        (sim, Some(redirect))
    } else {
        (None, None)
    };
    if let Some(path) = &args.apply {
        let objects = crate::apply::read_manifests(path)?;
        let applied = crate::apply::apply(&kube, objects).await?;
        tracing::info!(path = %path.display(), applied, "manifests applied");
    }
    let mut controller = args.controller.clone();
    let (acme, pebble) = if args.simulate {
        simulated_acme(args, &mut controller)?
    } else {
        (None, None)
    };
    let (counters, metrics) = serve_metrics(&controller).await?;
    let controllers = spawn_controllers(kube, &controller, counters, redirect, acme);
    tracing::info!(%metrics, "controllers running");
    Ok(Platform {
        controllers,
        sim,
        _pebble: pebble,
        metrics,
    })
}

/// Simulate mode's stand-in for Step-CA's ACME provisioner: the pebble named by
/// --sim-acme-*, or one started here (taking challenges as valid without connecting
/// anywhere); without pebble, Certificates say so instead of reaching the real CA.
fn simulated_acme(
    args: &ServerArgs,
    controller: &mut ControllerArgs,
) -> anyhow::Result<(
    Option<phoenix_controllers::certificate::AcmeRedirect>,
    Option<phoenix_sim::pebble::Pebble>,
)> {
    if let Some(redirect) = simulator::named_acme(&args.peers)? {
        return Ok((Some(redirect), None));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // The examples' certificates name the platform's real addresses: pebble must not
    // validate by connecting to them (the tests with a pebble of their own do validate).
    match phoenix_sim::pebble::Pebble::start(&args.data_dir.join("pebble"), port, false) {
        Ok(pebble) => {
            controller.acme_http01_listen = format!("127.0.0.1:{port}");
            tracing::info!(directory = %pebble.directory_url, "pebble stands in for Step-CA");
            let redirect = phoenix_controllers::certificate::AcmeRedirect {
                directory_url: pebble.directory_url.clone(),
                roots_url: pebble.roots_url.clone(),
                server_ca_pem: std::fs::read_to_string(&pebble.listener_ca)?,
            };
            Ok((Some(redirect), Some(pebble)))
        }
        Err(e) => {
            tracing::warn!("no ACME server in simulate mode, Certificates will wait: {e}");
            Ok((None, None))
        }
    }
}

/// The simulated cluster of --simulate: state kept in DATA_DIR/sim-state.json across
/// restarts, credentials written to DATA_DIR/sim.json.
async fn start_simulator(args: &ServerArgs) -> anyhow::Result<phoenix_sim::Running> {
    let options = phoenix_sim::Options {
        listen: "127.0.0.1:0".into(),
        nodes: args.sim_nodes,
        seed: args.seed,
        durations: simulator::task_durations(&args.task_durations),
        state_file: Some(args.data_dir.join("sim-state.json")),
        programs: args.programs.programs(),
    };
    let sim = phoenix_sim::start(options).await?;
    let json = serde_json::to_string_pretty(&sim.credentials)?;
    phoenix_apiserver::tls::write_private(&simulator::credentials_in(&args.data_dir), &json)?;
    tracing::info!(url = %sim.credentials.url, "simulated Proxmox VE (credentials in sim.json)");
    Ok(sim)
}

/// The simulator of --sim-pve-credentials: on loopback, its credentials copied to
/// DATA_DIR/sim.json where simulate mode's `pct` and the tests look for them.
fn external_simulator(
    file: &Path,
    data_dir: &Path,
) -> anyhow::Result<phoenix_sim::CredentialsFile> {
    let (credentials, text) = simulator::read_credentials(file)?;
    phoenix_apiserver::tls::write_private(&simulator::credentials_in(data_dir), &text)?;
    tracing::info!(url = %credentials.url, "simulated Proxmox VE in its own process");
    Ok(credentials)
}
