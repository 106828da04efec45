//! `phoenix apiserver` and `phoenix up`: the embedded API server in the foreground until
//! SIGINT/SIGTERM, with the kubeconfig written and announced.

use crate::cli::ServerArgs;
use std::process::ExitCode;

pub fn run(args: ServerArgs, up: bool) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("phoenix: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(args, up))
}

async fn serve(args: ServerArgs, up: bool) -> ExitCode {
    let config = phoenix_apiserver::Config {
        data_dir: args.data_dir.clone(),
        listen: args.listen.clone(),
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
    println!("export KUBECONFIG={}", kubeconfig.display());
    if up {
        tracing::warn!(
            "the controllers are not built yet (issue 5): objects are stored and served, not reconciled"
        );
    }
    if let Some(path) = &args.apply {
        tracing::warn!(path = %path.display(), "--apply needs the controllers' client (issue 5); apply with kubectl meanwhile");
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
