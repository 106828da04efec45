//! The controllers' small HTTP listeners (metrics, the ACME challenge responder): each
//! request is answered from its path alone.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use phoenix_listen::{Backoff, ConnectionCap, accept_with_backoff};
use std::sync::Arc;
use std::time::Duration;

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
    let mut cap = ConnectionCap::new(limits.max_connections);
    let mut backoff = Backoff::default();
    loop {
        let (tcp, peer) = accept_with_backoff(&mut backoff, || listener.accept()).await;
        let Some(permit) = cap.admit(peer) else {
            drop(tcp);
            continue;
        };
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
