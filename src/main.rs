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
    limit_malloc_arenas();
    let cli = cli::Cli::parse();
    // `sim pct` stands in for pct: its stdout and stderr are the guest command's own.
    if !matches!(cli.command, cli::Command::Sim(cli::SimCommand::Pct(_))) {
        logging::init(cli.log_format);
    }
    cli.command.run()
}

/// glibc gives threads that allocate at once arenas of their own (up to eight per core) and
/// keeps what is freed in each: a long-running server's RSS then grows far past what it
/// holds. Two arenas keep it near that, at no measurable cost to its throughput here.
/// And what a burst freed (a large LIST, a fleet converging) is handed back to the system
/// once a minute rather than kept for a burst that may not come.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
            // SAFETY: malloc_trim only returns free memory to the system; it is thread-safe.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    });
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
