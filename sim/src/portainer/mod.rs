//! A Portainer CE server as the simulated platform runs it: it serves only while a task
//! of a `portainer/portainer-ce|ee` service runs on a swarm of the simulated VMs (until
//! then each connection is closed at once, as a refused one), on a loopback listener of
//! its own with the simulator's certificate. Wire format, codes and texts are Portainer's
//! (`shared/reference/portainer`): PascalCase objects, `{"message","details"}` errors, the
//! admin-init timeout (303 `redirect-reason: AdminInitTimeout`), JWT and API-key auth, the
//! auth rate limit, environments, swarm stacks (inline and git) and the Docker proxy.
//! `settings.version` picks the deploy behaviour: 2.23 synchronous (a failed deploy is the
//! call's 500), newer in the background (Status 3, then 1 or 4, 409 while deploying).

mod admin;
mod api;
mod http;
mod proxy;

pub mod stacks;
pub mod state;

pub use crate::portainer_runtime::{OpRecord, Runtime};
pub use admin::route as admin;
pub use http::Reply;
pub use state::{Portainer, observe};

use crate::server::{Reset, Server};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;

/// Listens on a loopback port of its own; connections are served only while Portainer runs.
pub async fn listen(
    server: Arc<Server>,
    acceptor: tokio_rustls::TlsAcceptor,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            if !runs(&server) {
                drop(tcp);
                continue;
            }
            let (acceptor, server) = (acceptor.clone(), server.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req| handle(server.clone(), req, peer));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, task))
}

fn runs(server: &Server) -> bool {
    let mut sim = server.sim();
    observe(&mut sim.cluster);
    sim.cluster.portainer.running()
}

type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;

async fn handle(
    server: Arc<Server>,
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Result<hyper::Response<Body>, Reset> {
    if !runs(&server) {
        return Err(Reset);
    }
    let request = match http::Request::read(req, peer.ip()).await {
        Ok(r) => r,
        Err(reply) => return Ok(reply.into_response()),
    };
    let delay = {
        let mut sim = server.sim();
        let (lo, hi) = sim.cluster.portainer.settings.latency_ms;
        let ms = if hi == 0 {
            0
        } else {
            rand::Rng::random_range(&mut sim.rng, lo..=hi.max(lo))
        };
        std::time::Duration::from_millis(ms)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let reply = api::route(&server, &request).await;
    server
        .portainer
        .log(&request.method, &request.path, reply.status);
    if reply.status < 400 && request.method != "GET" {
        server.sim().save();
    }
    Ok(reply.into_response())
}

#[cfg(test)]
mod tests;
