//! Hostile and broken clients against the API server: connections that never finish their
//! TLS handshake or their request head are closed in time while the server keeps
//! answering and stays idle; connections over the cap are closed at once; one client's
//! watches and every request body are bounded.
//!
//! Each test runs the server on its own current-thread runtime, so the test thread's CPU
//! time is the server's.

use phoenix_apiserver::{Config, Limits, Running};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

struct Server {
    running: Running,
    token: String,
    tls: TlsConnector,
    _dir: tempfile::TempDir,
}

async fn server(limits: Limits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let running = phoenix_apiserver::start(Config {
        data_dir: dir.path().to_owned(),
        listen: "127.0.0.1:0".into(),
        limits,
    })
    .await
    .unwrap();
    let creds = phoenix_apiserver::tls::load_or_create(dir.path()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(creds.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Server {
        running,
        token: creds.token,
        tls: TlsConnector::from(Arc::new(config)),
        _dir: dir,
    }
}

impl Server {
    async fn tcp(&self) -> TcpStream {
        TcpStream::connect(self.running.addr).await.unwrap()
    }

    async fn tls(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = self.tcp().await;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        self.tls.connect(name, tcp).await
    }

    /// Sends one request and reads its response head: the status and the connection.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, String, TlsStream<TcpStream>)> {
        let mut tls = self.tls().await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.token,
            body.len()
        );
        tls.write_all(head.as_bytes()).await?;
        tls.write_all(body).await?;
        tls.flush().await?;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&seen).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, text, tls))
    }

    /// One request; its status and everything read until the body's end or a second.
    async fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let (status, mut text, mut tls) = self.send(method, path, body).await.unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(Ok(n @ 1..)) =
            tokio::time::timeout(Duration::from_millis(300), tls.read(&mut buf)).await
        {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        (status, text)
    }
}

/// How long until the server closes `conn` (read returns 0 or an error), or None when it
/// is still open after `within`.
async fn closed_within(mut conn: impl AsyncRead + Unpin, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// User plus system CPU time of the calling thread, from /proc (clock ticks of 10 ms).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // Fields 14 and 15 of stat(5); after the command name, state is field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// The first bytes of a TLS 1.2/1.3 ClientHello: a handshake record that announces 512
/// bytes, of which only the start arrives.
const HALF_CLIENT_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, // record: handshake, TLS 1.0 compat, 512 bytes
    0x01, 0x00, 0x01, 0xfc, // ClientHello, 508 bytes
    0x03, 0x03, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
];

#[tokio::test]
async fn stalled_handshakes_and_heads_are_closed_in_time_while_the_server_answers_idle() {
    let timeout = Duration::from_secs(3);
    let s = server(Limits {
        tls_handshake_timeout: timeout,
        header_read_timeout: timeout,
        ..Limits::default()
    })
    .await;
    let mut silent = Vec::new();
    for i in 0..200 {
        let mut tcp = s.tcp().await;
        if i % 4 == 0 {
            tcp.write_all(HALF_CLIENT_HELLO).await.unwrap();
        }
        silent.push(tcp);
    }
    // Handshakes that finish, then half a request head, or nothing at all.
    let mut heads = Vec::new();
    for i in 0..20 {
        let mut tls = s.tls().await.unwrap();
        if i % 2 == 0 {
            tls.write_all(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .await
                .unwrap();
            tls.flush().await.unwrap();
        }
        heads.push(tls);
    }
    let opened = Instant::now();

    // `kubectl get ns` answers meanwhile.
    let (status, body) = s.request("GET", "/api/v1/namespaces", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("NamespaceList"), "{body}");

    // Held open, they cost the server nothing.
    let cpu = thread_cpu();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = thread_cpu() - cpu;
    assert!(
        spent < Duration::from_millis(150),
        "{spent:?} of CPU in 2 s with 220 idle connections"
    );

    // All closed by the server, within the timeout and a margin.
    let margin = Duration::from_secs(3);
    let left = (timeout + margin).saturating_sub(opened.elapsed());
    let silent = futures::future::join_all(silent.into_iter().map(|c| closed_within(c, left)));
    let heads = futures::future::join_all(heads.into_iter().map(|c| closed_within(c, left)));
    let (silent, heads) = tokio::join!(silent, heads);
    let open = silent.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "{open} of 200 unfinished handshakes still open");
    let open = heads.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "{open} of 20 unfinished request heads still open");
    assert!(
        opened.elapsed() >= timeout - Duration::from_millis(500),
        "closed before the timeout: {:?}",
        opened.elapsed()
    );

    // And the server still answers.
    let (status, _) = s.request("GET", "/api/v1/namespaces", b"").await;
    assert_eq!(status, 200);
    s.running.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let s = server(Limits {
        max_connections: 8,
        ..Limits::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(s.tcp().await);
    }
    // The server takes a moment to accept the eight; once it has, a ninth is refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let extra = s.tcp().await;
        if closed_within(extra, Duration::from_millis(500))
            .await
            .is_some()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a connection over the cap of 8 stays open"
        );
    }
    // The held ones go away, and the server serves again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok((200, _, _)) = s.send("GET", "/api/v1/namespaces", b"").await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connection served after the cap freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn watches_past_the_bound_from_one_client_get_429() {
    let s = server(Limits {
        max_watches_per_client: 3,
        ..Limits::default()
    })
    .await;
    let mut watches = Vec::new();
    for _ in 0..3 {
        let (status, head, conn) = s
            .send("GET", "/api/v1/namespaces?watch=true", b"")
            .await
            .unwrap();
        assert_eq!(status, 200, "{head}");
        watches.push(conn);
    }
    let (status, body) = s.request("GET", "/api/v1/namespaces?watch=true", b"").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("\"reason\":\"TooManyRequests\""), "{body}");
    assert!(
        body.to_ascii_lowercase().contains("retry-after: 1"),
        "{body}"
    );
    // Other requests are not affected.
    let (status, _) = s.request("GET", "/api/v1/namespaces", b"").await;
    assert_eq!(status, 200);
    // A watch that ends frees its place.
    watches.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, conn) = s
            .send("GET", "/api/v1/namespaces?watch=true", b"")
            .await
            .unwrap();
        if status == 200 {
            watches.push(conn);
            break;
        }
        assert!(Instant::now() < deadline, "a closed watch keeps its place");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let s = server(Limits::default()).await;
    let name = "x".repeat(phoenix_apiserver::http::MAX_BODY + 1024);
    let body =
        format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{name}"}}}}"#);
    let (status, text) = s
        .request("POST", "/api/v1/namespaces", body.as_bytes())
        .await;
    assert_eq!(status, 413, "{}", &text[..text.len().min(400)]);
    assert!(text.contains("RequestEntityTooLarge"), "{text}");
    s.running.shutdown().await;
}
