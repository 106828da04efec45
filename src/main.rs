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
mod setup;
mod sim_pct;
mod sim_pve;
mod sim_show;
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
/// holds. One arena keeps it near that (each thread's own cache of small blocks spares it
/// the lock); at 1,000 guests it is 2 MiB less than two. And what a burst freed (a large
/// LIST, a fleet converging) is handed back to the system once a minute rather than kept
/// for a burst that may not come (every ten seconds measured no lower and slower).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        // Blocks from 128 KiB up (a LIST's response, a burst's buffers) mapped on their own
        // and unmapped when freed; glibc otherwise raises this bar after each such free and
        // carves later ones out of the heap, where they leave holes behind.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
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
