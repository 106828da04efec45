//! How a subcommand runs: its work on a tokio runtime, the long-running ones until
//! SIGINT/SIGTERM.

use std::process::ExitCode;

pub fn in_runtime(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => {
            eprintln!("phoenix: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
