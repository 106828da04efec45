//! `phoenix apiserver` and `phoenix up`: the embedded API server in the foreground until
//! SIGINT/SIGTERM, with the kubeconfig written and announced.

use crate::cli::{ControllerArgs, ServerArgs, SimPveArgs};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(args: ServerArgs, up: bool) -> ExitCode {
    in_runtime(serve(args, up))
}

pub fn run_sim(args: SimPveArgs) -> ExitCode {
    in_runtime(simulate(args))
}

pub fn in_runtime(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => {
            eprintln!("phoenix: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Realistic task durations, changed by `--task-duration OP=S`; `default=S` sets every
/// operation, other entries then override single operations.
fn task_durations(
    overrides: &[(String, std::time::Duration)],
) -> std::collections::BTreeMap<String, std::time::Duration> {
    let mut durations = phoenix_sim::state::Sim::realistic_durations();
    if overrides.iter().any(|(op, _)| op == "default") {
        durations.clear();
    }
    durations.extend(overrides.iter().cloned());
    durations
}

async fn simulate(args: SimPveArgs) -> ExitCode {
    let options = phoenix_sim::Options {
        listen: args.listen,
        nodes: args.nodes,
        seed: args.seed,
        durations: task_durations(&args.task_durations),
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
    let platform = if up {
        match start_platform(&args, &kubeconfig).await {
            Ok(platform) => Some(platform),
            Err(e) => {
                eprintln!("phoenix up: {e:#}");
                running.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
    } else {
        if let Some(path) = &args.apply {
            tracing::warn!(path = %path.display(), "--apply is for `phoenix up`; apply with kubectl");
        }
        None
    };
    println!("export KUBECONFIG={}", kubeconfig.display());
    if let Some(platform) = &platform {
        println!("# metrics: http://{}/metrics", platform.metrics);
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    if let Some(platform) = platform {
        platform.controllers.abort();
        if let Some(sim) = platform.sim {
            sim.stop();
        }
    }
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// What `phoenix up` runs beside the API server.
struct Platform {
    controllers: tokio::task::JoinHandle<()>,
    sim: Option<phoenix_sim::Running>,
    /// The ACME server of simulate mode, when `phoenix up` started it.
    _pebble: Option<phoenix_sim::pebble::Pebble>,
    metrics: std::net::SocketAddr,
}

/// CRDs, the simulator (with --simulate), the manifests of --apply, and the controllers.
async fn start_platform(args: &ServerArgs, kubeconfig: &Path) -> anyhow::Result<Platform> {
    let kube = crate::kube_client(Some(kubeconfig)).await?;
    crate::apply::install_crds(&kube).await?;
    let (sim, redirect) = if args.simulate {
        let sim = start_simulator(args).await?;
        let c = &sim.credentials;
        let redirect = phoenix_controllers::pve::Redirect {
            endpoint: c.url.clone(),
            token_id: c.token_id.clone(),
            token_secret: c.token_secret.clone(),
            fingerprint: c.fingerprint.clone(),
            // Containers are reached through this binary's `sim pct`, or through a real
            // sshd on loopback whose `pct` is that (`--sim-ssh`).
            pct: vec![
                std::env::current_exe()?.display().to_string(),
                "sim".into(),
                "pct".into(),
                "--credentials".into(),
                std::path::absolute(args.data_dir.join("sim.json"))?
                    .display()
                    .to_string(),
            ],
            ssh: args.sim_ssh.clone(),
        };
        (Some(sim), Some(redirect))
    } else {
        (None, None)
    };
    if let Some(path) = &args.apply {
        let objects = crate::apply::read_manifests(path)?;
        let applied = crate::apply::apply(&kube, objects).await?;
        tracing::info!(path = %path.display(), applied, "manifests applied");
    }
    let mut controller = args.controller.clone();
    let (acme, pebble) = if args.simulate {
        simulated_acme(args, &mut controller)?
    } else {
        (None, None)
    };
    let (counters, metrics) = serve_metrics(&controller).await?;
    let controllers = spawn_controllers(kube, &controller, counters, redirect, acme);
    tracing::info!(%metrics, "controllers running");
    Ok(Platform {
        controllers,
        sim,
        _pebble: pebble,
        metrics,
    })
}

/// Simulate mode's stand-in for Step-CA's ACME provisioner: the pebble named by
/// --sim-acme-*, or one started here (taking challenges as valid without connecting
/// anywhere); without pebble, Certificates say so instead of reaching the real CA.
fn simulated_acme(
    args: &ServerArgs,
    controller: &mut ControllerArgs,
) -> anyhow::Result<(
    Option<phoenix_controllers::certificate::AcmeRedirect>,
    Option<phoenix_sim::pebble::Pebble>,
)> {
    if let (Some(directory), Some(roots), Some(ca)) = (
        &args.sim_acme_directory,
        &args.sim_acme_roots,
        &args.sim_acme_ca,
    ) {
        let redirect = phoenix_controllers::certificate::AcmeRedirect {
            directory_url: directory.clone(),
            roots_url: roots.clone(),
            server_ca_pem: std::fs::read_to_string(ca)?,
        };
        return Ok((Some(redirect), None));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // The examples' certificates name the platform's real addresses: pebble must not
    // validate by connecting to them (the tests with a pebble of their own do validate).
    match phoenix_sim::pebble::Pebble::start(&args.data_dir.join("pebble"), port, false) {
        Ok(pebble) => {
            controller.acme_http01_listen = format!("127.0.0.1:{port}");
            tracing::info!(directory = %pebble.directory_url, "pebble stands in for Step-CA");
            let redirect = phoenix_controllers::certificate::AcmeRedirect {
                directory_url: pebble.directory_url.clone(),
                roots_url: pebble.roots_url.clone(),
                server_ca_pem: std::fs::read_to_string(&pebble.listener_ca)?,
            };
            Ok((Some(redirect), Some(pebble)))
        }
        Err(e) => {
            tracing::warn!("no ACME server in simulate mode, Certificates will wait: {e}");
            Ok((None, None))
        }
    }
}

/// The simulated cluster of --simulate: state kept in DATA_DIR/sim-state.json across
/// restarts, credentials written to DATA_DIR/sim.json.
async fn start_simulator(args: &ServerArgs) -> anyhow::Result<phoenix_sim::Running> {
    let options = phoenix_sim::Options {
        listen: "127.0.0.1:0".into(),
        nodes: args.sim_nodes,
        seed: args.seed,
        durations: task_durations(&args.task_durations),
        state_file: Some(args.data_dir.join("sim-state.json")),
    };
    let sim = phoenix_sim::start(options).await?;
    let json = serde_json::to_string_pretty(&sim.credentials)?;
    phoenix_apiserver::tls::write_private(&args.data_dir.join("sim.json"), &json)?;
    tracing::info!(url = %sim.credentials.url, "simulated Proxmox VE (credentials in sim.json)");
    Ok(sim)
}

/// Serves `/metrics` and `/healthz` on `args.metrics_listen`, for as long as the process
/// lives (a replica that does not lead is still healthy).
async fn serve_metrics(
    args: &ControllerArgs,
) -> anyhow::Result<(
    Arc<phoenix_controllers::metrics::Metrics>,
    std::net::SocketAddr,
)> {
    let listener = tokio::net::TcpListener::bind(&args.metrics_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.metrics_listen))?;
    let addr = listener.local_addr()?;
    let metrics = Arc::new(phoenix_controllers::metrics::Metrics::default());
    tokio::spawn(phoenix_controllers::metrics::serve(
        listener,
        metrics.clone(),
    ));
    Ok((metrics, addr))
}

fn spawn_controllers(
    kube: kube::Client,
    args: &ControllerArgs,
    metrics: Arc<phoenix_controllers::metrics::Metrics>,
    redirect: Option<phoenix_controllers::pve::Redirect>,
    acme_redirect: Option<phoenix_controllers::certificate::AcmeRedirect>,
) -> tokio::task::JoinHandle<()> {
    let options = phoenix_controllers::Options {
        redirect,
        acme_redirect,
        http01_listen: Some(args.acme_http01_listen.clone()),
        resync: std::time::Duration::from_secs(args.resync_seconds.max(1)),
        metrics,
        instance: std::env::var("HOSTNAME").unwrap_or_else(|_| "phoenix".into()),
        ..Default::default()
    };
    tokio::spawn(phoenix_controllers::run(kube, options))
}

pub fn run_controller(args: ControllerArgs) -> ExitCode {
    in_runtime(async move {
        let led = async {
            let kube = crate::kube_client(None).await?;
            let (metrics, addr) = serve_metrics(&args).await?;
            tracing::info!(%addr, "metrics and health served");
            lead(kube, &args, metrics).await
        };
        tokio::select! {
            result = led => {
                if let Err(e) = result {
                    eprintln!("phoenix controller: {e:#}");
                }
                ExitCode::FAILURE
            }
            _ = wait_for_signal() => ExitCode::SUCCESS,
        }
    })
}

/// Several replicas, one leader: the controllers run while this process holds the Lease
/// `phoenix-controller` in its namespace, and stop the moment it is lost.
async fn lead(
    kube: kube::Client,
    args: &ControllerArgs,
    metrics: Arc<phoenix_controllers::metrics::Metrics>,
) -> anyhow::Result<()> {
    let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".into());
    let identity = std::env::var("HOSTNAME").unwrap_or_else(|_| uuid_like_identity());
    let manager = kube_lease_manager::LeaseManagerBuilder::new(kube.clone(), "phoenix-controller")
        .with_namespace(&namespace)
        .with_identity(&identity)
        .build()
        .await?;
    let (mut leading, _lease_task) = manager.watch().await;
    loop {
        while !*leading.borrow_and_update() {
            leading.changed().await?;
        }
        tracing::info!(%identity, "leading: controllers start");
        let controllers = spawn_controllers(kube.clone(), args, metrics.clone(), None, None);
        while *leading.borrow_and_update() {
            leading.changed().await?;
        }
        controllers.abort();
        tracing::warn!(%identity, "lost the lease: controllers stopped");
    }
}

fn uuid_like_identity() -> String {
    format!("phoenix-{}", std::process::id())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
