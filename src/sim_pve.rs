//! `phoenix sim pve`: a simulated Proxmox VE cluster in the foreground until
//! SIGINT/SIGTERM, its credentials written where `--credentials-out` says.

use crate::runtime::{in_runtime, wait_for_signal};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Write the credentials (url, token, user/password, fingerprint, admin_url,
    /// portainer_url) here as JSON.
    #[arg(long)]
    pub credentials_out: PathBuf,
    #[command(flatten)]
    pub programs: crate::simulator::GuestPrograms,
}

pub fn run(args: SimPveArgs) -> ExitCode {
    in_runtime(simulate(args))
}

async fn simulate(args: SimPveArgs) -> ExitCode {
    let options = phoenix_sim::Options {
        listen: args.listen,
        nodes: args.nodes,
        seed: args.seed,
        durations: crate::simulator::task_durations(&args.task_durations),
        state_file: args.state,
        programs: args.programs.programs(),
    };
    let running = match phoenix_sim::start(options).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("phoenix sim pve: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = serde_json::to_string_pretty(&running.credentials).expect("credentials serialise");
    if let Err(e) = phoenix_apiserver::tls::write_private(&args.credentials_out, &json) {
        eprintln!(
            "phoenix sim pve: cannot write {}: {e}",
            args.credentials_out.display()
        );
        return ExitCode::FAILURE;
    }
    println!(
        "simulated Proxmox VE at {} (certificate SHA-256 {})",
        running.credentials.url, running.credentials.fingerprint
    );
    wait_for_signal().await;
    running.stop();
    ExitCode::SUCCESS
}
