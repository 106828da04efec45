//! The server process: binds, serves HTTPS with bearer-token authentication, writes the
//! kubeconfig, and runs the background controllers (garbage collection, namespace and CRD
//! cleanup, compaction).

use crate::http::handle;
use crate::request::Client;
use crate::state::{self, State};
use crate::store::Store;
use crate::tls;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use phoenix_listen::{Backoff, ConnectionCap, accept_with_backoff};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How to run the server.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `127.0.0.1:6443`; port 0 picks a free one.
    pub listen: String,
    /// What one client may hold of the server; `Limits::default()` in production.
    pub limits: Limits,
}

/// The bounds that keep a hostile or broken client from exhausting the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A connection that has not finished its TLS handshake by then is closed.
    pub tls_handshake_timeout: Duration,
    /// A connection that has not sent a whole request head by then is closed; this also
    /// closes keep-alive connections idle for that long.
    pub header_read_timeout: Duration,
    /// Connections open at once; above it, new ones are closed as soon as accepted.
    pub max_connections: usize,
    /// Watches open at once from one client (remote address); above it, 429.
    pub max_watches_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_watches_per_client: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: String,
        source: std::io::Error,
    },
}

/// A running server; dropping it does not stop it, `shutdown` does.
pub struct Running {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub state: Arc<State>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Opens the store, binds `config.listen`, writes `DATA_DIR/kubeconfig` and serves.
pub async fn start(config: Config) -> Result<Running, StartError> {
    // The store makes the data directory, private (0700): it holds every Secret.
    let store = Store::open(&config.data_dir)?;
    let creds = tls::load_or_create(&config.data_dir)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(&creds)?));
    let listener =
        TcpListener::bind(&config.listen)
            .await
            .map_err(|source| StartError::Listen {
                listen: config.listen.clone(),
                source,
            })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        listen: config.listen.clone(),
        source,
    })?;
    let kubeconfig = config.data_dir.join("kubeconfig");
    tls::write_private(
        &kubeconfig,
        &tls::kubeconfig(&format!("https://{addr}"), &creds),
    )?;
    let state = Arc::new(
        State::new(store, creds.token.clone(), addr.to_string())
            .with_watches_per_client(config.limits.max_watches_per_client),
    );
    state::follow_crds(&state);
    crate::bootstrap::ensure_system_namespaces(&state).await;
    let (stop, stopped) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(accept_loop(
            listener,
            acceptor,
            state.clone(),
            config.limits.clone(),
            stopped.clone(),
        )),
        tokio::spawn(crate::cleanup::run(state.clone(), stopped)),
    ];
    tracing::info!(%addr, kubeconfig = %kubeconfig.display(), "API server listening");
    Ok(Running {
        addr,
        kubeconfig,
        state,
        stop,
        tasks,
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    limits: Limits,
    mut stopped: watch::Receiver<bool>,
) {
    let mut cap = ConnectionCap::new(limits.max_connections);
    let mut backoff = Backoff::default();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = accept_with_backoff(&mut backoff, || listener.accept()) => accepted,
            _ = stopped.changed() => return,
        };
        let Some(permit) = cap.admit(peer) else {
            drop(tcp);
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        let limits = limits.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let state = state.clone();
                req.extensions_mut().insert(Client(peer.ip()));
                async move { Ok::<_, std::convert::Infallible>(handle(state, req).await) }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
                // Without a timer hyper's header timeout is silently off.
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
                _ = stopped.changed() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}
