//! The command line: one subcommand per run mode, each with its arguments in its own
//! module. A subcommand whose piece is not built yet says so on stderr and exits 2, so
//! scripts never mistake it for success.

use crate::controller::ControllerCommand;
use crate::crds::CrdsArgs;
use crate::logging::LogFormat;
use crate::plan::PlanArgs;
use crate::serve::ServerArgs;
use crate::setup::SetupArgs;
use crate::sim_pct::SimPctArgs;
use crate::sim_pve::SimPveArgs;
use crate::sim_show::SimShowArgs;
use clap::{Parser, Subcommand};
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
    Controller(ControllerCommand),
    /// The Kubernetes-compatible API server alone.
    Apiserver(ServerArgs),
    /// Simulators of the systems Phoenix manages.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Print the CustomResourceDefinitions (or write one file per kind with --out-dir).
    Crds(CrdsArgs),
    /// Print the steps the controllers would take for the objects in FILE; changes nothing.
    Plan(PlanArgs),
    /// Once, as a PVE administrator: create the role, user and API token Phoenix acts as,
    /// and write the token into the ProxmoxCluster's Secret.
    Setup(SetupArgs),
}

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// A simulated Proxmox VE cluster.
    Pve(SimPveArgs),
    /// The `pct` of a simulated node: `exec` and `push` forwarded to a simulated guest.
    Pct(SimPctArgs),
    /// What a simulated node holds: `zfs`, `exports`, `network`, `firewall`, `files`.
    Show(SimShowArgs),
}

impl Command {
    pub fn run(self) -> ExitCode {
        match self {
            Command::Crds(args) => crate::crds::run(args),
            Command::Up(args) => crate::serve::run(args, true),
            Command::Controller(args) => crate::controller::run(args),
            Command::Apiserver(args) => crate::serve::run(args, false),
            Command::Sim(SimCommand::Pve(args)) => crate::sim_pve::run(args),
            Command::Sim(SimCommand::Pct(args)) => crate::sim_pct::run(args),
            Command::Sim(SimCommand::Show(args)) => crate::sim_show::run(args),
            Command::Plan(args) => crate::plan::run(args),
            Command::Setup(args) => crate::setup::run(args),
        }
    }
}
