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
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

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
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = Backoff::default();
    let mut refusing = false;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = accept_with_backoff(&mut backoff, || listener.accept()) => accepted,
            _ = stopped.changed() => return,
        };
        // Over the cap the connection is closed at once: queueing it would hold its
        // descriptor and memory for a client that may never go away.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if !refusing {
                tracing::warn!(%peer, max = limits.max_connections, "too many connections; closing new ones until some end");
                refusing = true;
            }
            drop(tcp);
            continue;
        };
        refusing = false;
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

/// The waits between failed accepts: 10 ms, doubling to 1 s, reset by a success.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// How long to wait after one more failure.
    fn failed(&mut self) -> Duration {
        let wait = Self::FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    /// The failures of the burst a success ends.
    fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
}

/// The next accepted connection. Accept fails when the process is out of descriptors
/// (EMFILE, ENFILE) or memory; retrying at once would spin and flood the log, so failures
/// back off and a burst of them is logged once when it starts and once when it ends.
async fn accept_with_backoff<T, F, Fut>(backoff: &mut Backoff, mut accept: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    loop {
        match accept().await {
            Ok(conn) => {
                let failures = backoff.succeeded();
                if failures > 0 {
                    tracing::info!(failures, "accepting connections again");
                }
                return conn;
            }
            Err(e) => {
                let wait = backoff.failed();
                if backoff.failures == 1 {
                    tracing::warn!(error = %e, "accept failed; retrying with backoff until it succeeds");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// EMFILE (out of file descriptors) on every accept, as when the process is at its
    /// limit: the loop must wait between attempts, not spin.
    #[tokio::test]
    async fn failing_accepts_back_off_instead_of_spinning() {
        let attempts = AtomicUsize::new(0);
        let accept = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
            Err::<(), _>(std::io::Error::from_raw_os_error(24))
        };
        let mut backoff = Backoff::default();
        let ran = tokio::time::timeout(
            Duration::from_millis(400),
            accept_with_backoff(&mut backoff, accept),
        );
        assert!(ran.await.is_err(), "no connection was accepted");
        let attempts = attempts.load(Ordering::Relaxed);
        // 10 + 20 + 40 + 80 + 160 ms of backoff: six attempts, seven with slack.
        assert!(
            (3..=8).contains(&attempts),
            "{attempts} accept attempts in 400 ms"
        );
    }

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(b.succeeded(), 9);
        assert_eq!(b.failed(), Duration::from_millis(10));
    }
}
