//! `phoenix apiserver` and `phoenix up`: the embedded API server in the foreground until
//! SIGINT/SIGTERM, with the kubeconfig written and announced.

use crate::cli::{ServerArgs, SimPveArgs};
use std::process::ExitCode;

pub fn run(args: ServerArgs, up: bool) -> ExitCode {
    in_runtime(serve(args, up))
}

pub fn run_sim(args: SimPveArgs) -> ExitCode {
    in_runtime(simulate(args))
}

fn in_runtime(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => {
            eprintln!("phoenix: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn simulate(args: SimPveArgs) -> ExitCode {
    // `default=S` sets every operation; other entries then override single operations.
    let mut durations = phoenix_sim::state::Sim::realistic_durations();
    if args.task_durations.iter().any(|(op, _)| op == "default") {
        durations.clear();
    }
    durations.extend(args.task_durations);
    let options = phoenix_sim::Options {
        listen: args.listen,
        nodes: args.nodes,
        seed: args.seed,
        durations,
        state_file: args.state,
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
