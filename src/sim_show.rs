//! `phoenix sim show`: what a simulated node holds, as its admin endpoint reports it —
//! the ZFS pools and datasets, the NFS exports, the network (running and pending), the
//! node's firewall, its files — printed as JSON, so `make run`'s host can be looked at.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct SimShowArgs {
    /// The simulator's credentials file (DATA_DIR/sim.json of `phoenix up --simulate`).
    #[arg(long, env = "PHOENIX_SIM_CREDENTIALS")]
    pub credentials: PathBuf,
    /// The simulated node.
    #[arg(long, default_value = "phoenix")]
    pub node: String,
    pub what: Shown,
}

/// What of the node to show.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shown {
    /// Disks, pools, datasets.
    Zfs,
    /// What `exportfs` exports.
    Exports,
    /// Interfaces, running and pending.
    Network,
    /// The node's firewall options and rules.
    Firewall,
    /// Files on the node (dnsmasq's config and records, exports, AppArmor profiles, …).
    Files,
}

pub fn run(args: SimShowArgs) -> ExitCode {
    crate::runtime::in_runtime(show(args))
}

async fn show(args: SimShowArgs) -> ExitCode {
    let credentials = match crate::simulator::read_credentials(&args.credentials) {
        Ok((credentials, _)) => credentials,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let what = match args.what {
        Shown::Zfs => "zfs",
        Shown::Exports => "exports",
        Shown::Network => "network",
        Shown::Firewall => "firewall",
        Shown::Files => "files",
    };
    let route = format!("nodes/{}/{what}", args.node);
    match crate::sim_pct::admin(&credentials, reqwest::Method::GET, &route, None).await {
        Ok(answer) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
