//! `phoenix`: one binary for every run mode (see ARCHITECTURE.md).

mod apply;
mod cli;
mod controller;
mod crds;
mod kube_client;
mod logging;
mod plan;
mod runtime;
mod serve;
mod sim_pct;
mod sim_pve;
mod simulator;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // `sim pct` stands in for pct: its stdout and stderr are the guest command's own.
    if !matches!(cli.command, cli::Command::Sim(cli::SimCommand::Pct(_))) {
        logging::init(cli.log_format);
    }
    cli.command.run()
}
