//! The command line: one subcommand per run mode. A subcommand whose piece is not built
//! yet says so on stderr and exits 2, so scripts never mistake it for success.

use crate::logging::LogFormat;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "phoenix",
    version,
    about = "Runs a Proxmox VE platform declaratively, the Kubernetes way"
)]
pub struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The embedded platform: API server on SQLite plus every controller, in one process.
    Up(ServerArgs),
    /// The controllers alone, against the cluster in KUBECONFIG or in-cluster (k3s, Helm).
    Controller(ControllerArgs),
    /// The Kubernetes-compatible API server alone.
    Apiserver(ServerArgs),
    /// Simulators of the systems Phoenix manages.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Print the CustomResourceDefinitions (or write one file per kind with --out-dir).
    Crds {
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Print the steps the controllers would take for the objects in FILE; changes nothing.
    Plan(PlanArgs),
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Manifests (a file or a directory) whose LxcGuests to plan.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Plan against the simulator of `phoenix up --simulate` (its DATA_DIR/sim.json; found
    /// by itself beside KUBECONFIG).
    #[arg(long)]
    pub simulator: Option<PathBuf>,
}

/// How the controllers run, in `up` and `controller`.
#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Where `/metrics` and `/healthz` are served; port 0 picks a free port.
    #[arg(long, env = "PHOENIX_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_listen: String,
    /// Seconds between looks at a converged object (drift detection).
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u64,
    /// Where the ACME HTTP-01 challenge responder listens; Step-CA validates on port 80 of
    /// each name, so route that here (a Service port, a DNAT rule).
    #[arg(long, env = "PHOENIX_ACME_HTTP01_ADDR", default_value = "0.0.0.0:8089")]
    pub acme_http01_listen: String,
}

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
    #[arg(long, default_value_t = 1)]
    pub sim_nodes: usize,
    /// With --simulate: how long tasks of a type take, OP=SECONDS; repeatable.
    #[arg(long = "task-duration", value_parser = phoenix_sim::parse_duration)]
    pub task_durations: Vec<(String, std::time::Duration)>,
    /// With --simulate: seed for injected faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// With --simulate: reach the nodes' SSH at this loopback HOST:PORT (an sshd whose
    /// `pct` is `phoenix sim pct`), host keys still checked under the nodes' names.
    #[arg(long, value_parser = loopback_address)]
    pub sim_ssh: Option<String>,
    /// With --simulate: the ACME directory standing in for Step-CA (a pebble on loopback;
    /// without it, `phoenix up` starts pebble itself when it is installed).
    #[arg(long, requires_all = ["sim_acme_roots", "sim_acme_ca"], value_parser = loopback_url)]
    pub sim_acme_directory: Option<String>,
    /// With --sim-acme-directory: where its root CA is served (pebble: /roots/0).
    #[arg(long, value_parser = loopback_url)]
    pub sim_acme_roots: Option<String>,
    /// With --sim-acme-directory: the CA (PEM file) of its HTTPS listener.
    #[arg(long)]
    pub sim_acme_ca: Option<PathBuf>,
    #[command(flatten)]
    pub controller: ControllerArgs,
}

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// A simulated Proxmox VE cluster.
    Pve(SimPveArgs),
    /// The `pct` of a simulated node: `exec` and `push` forwarded to a simulated guest.
    Pct(crate::sim_pct::SimPctArgs),
}

#[derive(Args, Debug)]
pub struct SimPveArgs {
    /// Address to serve on; port 0 picks a free port (the credentials file tells which).
    #[arg(long, default_value = "127.0.0.1:8006")]
    pub listen: String,
    /// Number of nodes (one node is called `phoenix`, as in the examples; more are pve1..pveN).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Keep the simulated cluster in this file across restarts.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Seed for injected faults and latencies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long tasks of a type take: OP=SECONDS (`vzcreate=5`, `default=0`); repeatable.
    #[arg(long = "task-duration", value_parser = phoenix_sim::parse_duration)]
    pub task_durations: Vec<(String, std::time::Duration)>,
    /// Write the credentials (url, token, user/password, fingerprint, admin_url) here as JSON.
    #[arg(long)]
    pub credentials_out: PathBuf,
}

impl Command {
    pub fn run(self) -> ExitCode {
        match self {
            Command::Crds { out_dir } => print_crds(out_dir),
            Command::Up(args) => crate::serve::run(args, true),
            Command::Controller(args) => crate::serve::run_controller(args),
            Command::Apiserver(args) => crate::serve::run(args, false),
            Command::Sim(SimCommand::Pve(args)) => crate::serve::run_sim(args),
            Command::Sim(SimCommand::Pct(args)) => crate::sim_pct::run(args),
            Command::Plan(args) => crate::plan::run(args),
        }
    }
}

fn print_crds(out_dir: Option<PathBuf>) -> ExitCode {
    let Some(dir) = out_dir else {
        print!("{}", phoenix_crds::all_crds_yaml());
        return ExitCode::SUCCESS;
    };
    for (file, crd) in phoenix_crds::all_crds() {
        let path = dir.join(file);
        if let Err(err) = std::fs::write(&path, phoenix_crds::crd_yaml(&crd)) {
            eprintln!("phoenix crds: cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
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
