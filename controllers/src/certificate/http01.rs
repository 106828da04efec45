//! The HTTP-01 challenge responder: `GET /.well-known/acme-challenge/{token}` answers the
//! key authorization of a challenge the controller has set up, and 404 otherwise.

pub use crate::http::Limits;
use hyper::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Challenge tokens and their key authorizations, while their orders are open.
#[derive(Default)]
pub struct Challenges {
    tokens: Mutex<HashMap<String, String>>,
}

const PREFIX: &str = "/.well-known/acme-challenge/";

impl Challenges {
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.lock()
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer to one request.
    pub fn answer(&self, path: &str) -> (StatusCode, String) {
        let known = path
            .strip_prefix(PREFIX)
            .and_then(|token| self.lock().get(token).cloned());
        match known {
            Some(key_authorization) => (StatusCode::OK, key_authorization),
            None => (StatusCode::NOT_FOUND, "no such challenge\n".into()),
        }
    }

    /// Serves the responder on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) {
        self.serve_with(listener, Limits::default()).await
    }

    /// Serves the responder on `listener` within `limits` until the task is dropped: the
    /// responder faces the Internet, so request heads have a deadline, connections a cap,
    /// and failed accepts a backoff (`crate::http::serve`).
    pub async fn serve_with(self: Arc<Self>, listener: tokio::net::TcpListener, limits: Limits) {
        let answer = move |path: &str| {
            let (status, body) = self.answer(path);
            crate::http::respond(status.as_u16(), "text/plain", body)
        };
        crate::http::serve(listener, Arc::new(answer), limits).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn responder(limits: Limits) -> (Arc<Challenges>, std::net::SocketAddr) {
        let challenges = Arc::new(Challenges::default());
        challenges.insert("tok", "tok.thumb");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(challenges.clone().serve_with(listener, limits));
        (challenges, addr)
    }

    /// How long until the responder closes `conn`, or None if still open after `within`.
    async fn closed_within(mut conn: TcpStream, within: Duration) -> Option<Duration> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => continue,
            }
        }
    }

    /// The status line of `GET path`, on a connection of its own.
    async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
        let mut tcp = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        tcp.read_to_string(&mut response).await?;
        Ok(response)
    }

    #[tokio::test]
    async fn stalled_request_heads_are_closed_in_time_while_the_responder_answers() {
        let timeout = Duration::from_secs(1);
        let (_c, addr) = responder(Limits {
            header_read_timeout: timeout,
            ..Limits::default()
        })
        .await;
        let mut stalled = Vec::new();
        for i in 0..50 {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            if i % 2 == 0 {
                tcp.write_all(b"GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .unwrap();
            }
            stalled.push(tcp);
        }
        let opened = Instant::now();
        let response = get(addr, "/.well-known/acme-challenge/tok").await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("tok.thumb"), "{response}");
        let left = (timeout + Duration::from_secs(2)).saturating_sub(opened.elapsed());
        let closed =
            futures::future::join_all(stalled.into_iter().map(|c| closed_within(c, left))).await;
        let open = closed.iter().filter(|c| c.is_none()).count();
        assert_eq!(open, 0, "{open} of 50 stalled connections still open");
    }

    /// EMFILE on every accept: the loop waits between attempts instead of spinning.
    #[tokio::test]
    async fn connections_over_the_cap_are_closed_at_once() {
        let (_c, addr) = responder(Limits {
            max_connections: 4,
            ..Limits::default()
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let extra = TcpStream::connect(addr).await.unwrap();
            if closed_within(extra, Duration::from_millis(500))
                .await
                .is_some()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a connection over the cap of 4 stays open"
            );
        }
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match get(addr, "/.well-known/acme-challenge/tok").await {
                Ok(r) if r.starts_with("HTTP/1.1 200") => break,
                _ => assert!(Instant::now() < deadline, "not served after the cap freed"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[test]
    fn only_open_challenges_are_answered() {
        let c = Challenges::default();
        c.insert("tok", "tok.thumb");
        assert_eq!(
            c.answer("/.well-known/acme-challenge/tok"),
            (StatusCode::OK, "tok.thumb".into())
        );
        assert_eq!(
            c.answer("/.well-known/acme-challenge/other").0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(c.answer("/tok").0, StatusCode::NOT_FOUND);
        c.remove("tok");
        assert_eq!(
            c.answer("/.well-known/acme-challenge/tok").0,
            StatusCode::NOT_FOUND
        );
    }
}
