//! The simulator's resolver for checks made from outside a guest: a guest address and
//! port (`10.0.0.141:8000`) map to a loopback listener the simulator owns, so a
//! controller in simulate mode never sends a packet to the real platform's addresses.
//! The listener answers as the guest's service would: HTTP 200 with `guest VMID port
//! PORT` (plain, or over TLS with the certificate the caller's acceptor picks) while the
//! guest runs; while it is stopped the connection is closed at once, as a refused
//! connection would be.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

/// Loopback listeners by (vmid, port).
#[derive(Default)]
pub struct Listeners {
    open: Mutex<HashMap<(u32, u16), SocketAddr>>,
}

impl Listeners {
    /// The loopback address standing in for port `port` of guest `vmid`: it answers
    /// while `running` says the guest runs, with `tls` to a client that speaks TLS.
    pub async fn resolve(
        &self,
        vmid: u32,
        port: u16,
        tls: Option<TlsAcceptor>,
        running: impl Fn() -> bool + Send + Sync + 'static,
    ) -> std::io::Result<SocketAddr> {
        if let Some(addr) = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(vmid, port))
        {
            return Ok(*addr);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((vmid, port), addr);
        let running = Arc::new(running);
        let body: Arc<str> = format!("guest {vmid} port {port}\n").into();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (running, tls, body) = (running.clone(), tls.clone(), body.clone());
                tokio::spawn(async move { answer(running(), tls.as_ref(), stream, &body).await });
            }
        });
        Ok(addr)
    }
}

async fn answer(
    running: bool,
    tls: Option<&TlsAcceptor>,
    stream: tokio::net::TcpStream,
    body: &str,
) {
    if !running {
        return;
    }
    // A TLS client speaks first with a handshake record (0x16).
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await.is_err() {
        return;
    }
    match (first[0], tls) {
        (0x16, Some(acceptor)) => {
            if let Ok(tls) = acceptor.accept(stream).await {
                respond(tls, body).await;
            }
        }
        _ => respond(stream, body).await,
    }
}

async fn respond(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    body: &str,
) {
    let mut request = vec![0u8; 4096];
    let _ = stream.read(&mut request).await;
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
