//! The controllers' small HTTP listeners (metrics, the ACME challenge responder): each
//! request is answered from its path alone.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

pub type Answer = Response<Full<Bytes>>;

/// A plain-text or other answer with `status`.
pub fn respond(status: u16, content_type: &str, body: String) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// Serves `answer` on `listener` within `limits` until the task is dropped: request heads
/// have a deadline (hyper's header timeout needs a timer, or it is silently off),
/// connections a cap (over it, new ones are closed at once), failed accepts a backoff.
pub async fn serve(
    listener: tokio::net::TcpListener,
    answer: Arc<dyn Fn(&str) -> Answer + Send + Sync>,
    limits: Limits,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = Backoff::default();
    let mut refusing = false;
    loop {
        let (tcp, peer) = accept_with_backoff(&mut backoff, || listener.accept()).await;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if !refusing {
                tracing::warn!(%peer, max = limits.max_connections, "too many connections; closing new ones until some end");
                refusing = true;
            }
            drop(tcp);
            continue;
        };
        refusing = false;
        let answer = answer.clone();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req: Request<Incoming>| {
                let response = answer(req.uri().path());
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

/// What clients may hold of a listener (the HTTP-01 responder faces the Internet).
#[derive(Clone, Debug)]
pub struct Limits {
    /// A connection that has not sent a whole request head by then is closed (also a
    /// keep-alive connection idle for that long).
    pub header_read_timeout: Duration,
    /// Connections open at once; above it, new ones are closed as soon as accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
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
/// (EMFILE, ENFILE); retrying at once would spin and flood the log, so failures back off
/// and a burst of them is logged once when it starts and once when it ends.
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

    #[tokio::test]
    async fn failing_accepts_back_off_instead_of_spinning() {
        let attempts = std::sync::atomic::AtomicUsize::new(0);
        let accept = || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::task::yield_now().await;
            Err::<(), _>(std::io::Error::from_raw_os_error(24))
        };
        let mut backoff = Backoff::default();
        let ran = tokio::time::timeout(
            Duration::from_millis(400),
            accept_with_backoff(&mut backoff, accept),
        );
        assert!(ran.await.is_err(), "no connection was accepted");
        let attempts = attempts.into_inner();
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
