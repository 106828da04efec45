//! `phoenix`: one binary for every run mode (see ARCHITECTURE.md).

mod apply;
mod cli;
mod logging;
mod plan;
mod serve;
mod sim_pct;

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

/// A client for the cluster in `kubeconfig`, or the usual places (KUBECONFIG, in-cluster).
pub async fn kube_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}
