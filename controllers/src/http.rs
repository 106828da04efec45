//! The controllers' small HTTP listeners (metrics, the ACME challenge responder): each
//! request is answered from its path alone.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use std::sync::Arc;

pub type Answer = Response<Full<Bytes>>;

/// A plain-text or other answer with `status`.
pub fn respond(status: u16, content_type: &str, body: String) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// Serves `answer` on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    answer: Arc<dyn Fn(&str) -> Answer + Send + Sync>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = answer(req.uri().path());
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
        });
    }
}
