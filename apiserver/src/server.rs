//! The server process: binds, serves HTTPS with bearer-token authentication, writes the
//! kubeconfig, and runs the background controllers (garbage collection, namespace and CRD
//! cleanup, compaction).

use crate::http::handle;
use crate::state::{self, State};
use crate::store::Store;
use crate::tls;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How to run the server.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `127.0.0.1:6443`; port 0 picks a free one.
    pub listen: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
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
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
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
    let state = Arc::new(State::new(store, creds.token.clone(), addr.to_string()));
    state::follow_crds(&state);
    crate::bootstrap::ensure_system_namespaces(&state).await;
    let (stop, stopped) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(accept_loop(
            listener,
            acceptor,
            state.clone(),
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
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(state, req).await) }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
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
