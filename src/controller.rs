//! `phoenix controller`: the controllers alone, against the cluster in KUBECONFIG or
//! in-cluster, while this replica leads; and how `phoenix up` runs them beside its API
//! server.

use crate::runtime::{in_runtime, wait_for_signal};
use crate::simulator::{self, SimulatedPeers};
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;

/// How the controllers run, in `up` and `controller`.
#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Where `/metrics` and `/healthz` are served; port 0 picks a free port.
    #[arg(long, env = "PHOENIX_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_listen: String,
    /// Seconds between looks at a converged object (drift detection).
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u64,
    /// Seconds between looks at each cluster's guests as a whole (one `/cluster/resources`
    /// call): a guest stopped or changed by hand is noticed within it.
    #[arg(long, default_value_t = 10)]
    pub cluster_view_seconds: u64,
    /// Where the ACME HTTP-01 challenge responder listens; Step-CA validates on port 80 of
    /// each name, so route that here (a Service port, a DNAT rule).
    #[arg(long, env = "PHOENIX_ACME_HTTP01_ADDR", default_value = "0.0.0.0:8089")]
    pub acme_http01_listen: String,
    /// The responder as the Nginx gateway reaches it (`10.0.0.13:8089`): public routes'
    /// `/.well-known/acme-challenge/` goes there, so they can carry certificates from a
    /// public ACME CA. Without it the gateway redirects those requests to HTTPS too.
    #[arg(long, env = "PHOENIX_ACME_HTTP01_UPSTREAM")]
    pub acme_http01_upstream: Option<std::net::SocketAddr>,
}

/// `phoenix controller`: the controllers' arguments, and simulate mode's peers (the
/// controllers of a real Kubernetes pointed at a simulator, as the tests run them).
#[derive(Args, Debug)]
pub struct ControllerCommand {
    #[command(flatten)]
    pub controller: ControllerArgs,
    /// Send every PVE call and guest command to the simulated Proxmox VE of
    /// --sim-pve-credentials, and ACME to --sim-acme-directory, never to the manifests'
    /// addresses.
    #[arg(long, requires = "sim_pve_credentials")]
    pub simulate: bool,
    #[command(flatten)]
    pub peers: SimulatedPeers,
}

/// Where the controllers send their calls instead of the manifests' addresses.
#[derive(Clone, Default)]
struct Redirects {
    pve: Option<phoenix_controllers::pve::Redirect>,
    acme: Option<phoenix_controllers::certificate::AcmeRedirect>,
}

pub fn run(command: ControllerCommand) -> ExitCode {
    in_runtime(async move {
        let led = async {
            let redirects = redirects(&command)?;
            let kube = crate::kube_client::connect(None).await?;
            let args = &command.controller;
            let (metrics, addr) = serve_metrics(args).await?;
            tracing::info!(%addr, "metrics and health served");
            lead(kube, args, metrics, redirects).await
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

/// Serves `/metrics` and `/healthz` on `args.metrics_listen`, for as long as the process
/// lives (a replica that does not lead is still healthy).
pub async fn serve_metrics(
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

pub fn spawn_controllers(
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
        http01_upstream: args.acme_http01_upstream,
        resync: std::time::Duration::from_secs(args.resync_seconds.max(1)),
        cluster_view_interval: std::time::Duration::from_secs(args.cluster_view_seconds.max(1)),
        metrics,
        instance: std::env::var("HOSTNAME").unwrap_or_else(|_| "phoenix".into()),
        ..Default::default()
    };
    tokio::spawn(phoenix_controllers::run(kube, options))
}

/// With --simulate, the simulated peers; otherwise none.
fn redirects(command: &ControllerCommand) -> anyhow::Result<Redirects> {
    let peers = &command.peers;
    let Some(file) = peers
        .sim_pve_credentials
        .as_deref()
        .filter(|_| command.simulate)
    else {
        return Ok(Redirects::default());
    };
    // Challenges are answered on loopback only: nothing outside validates them.
    simulator::require_loopback(
        "--acme-http01-listen",
        &command.controller.acme_http01_listen,
    )?;
    let (credentials, _) = simulator::read_credentials(file)?;
    let pve = simulator::simulated_redirect(peers, &credentials, file)?;
    tracing::info!(url = %credentials.url, "simulate mode: Proxmox VE is the simulator");
    let acme = simulator::named_acme(peers)?;
    if acme.is_none() {
        tracing::warn!("simulate mode without --sim-acme-directory: Certificates will wait");
    }
    Ok(Redirects {
        pve: Some(pve),
        acme,
    })
}

/// Several replicas, one leader: the controllers run while this process holds the Lease
/// `phoenix-controller` in its namespace, and stop the moment it is lost.
async fn lead(
    kube: kube::Client,
    args: &ControllerArgs,
    metrics: Arc<phoenix_controllers::metrics::Metrics>,
    redirects: Redirects,
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
        let Redirects { pve, acme } = redirects.clone();
        let controllers = spawn_controllers(kube.clone(), args, metrics.clone(), pve, acme);
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
