//! The programs the simulator runs for guests' services in the route tests, and an
//! HTTPS client that reports the certificate each hop presents.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Debian's nginx (`make deps` installs it).
pub const NGINX: &str = "/usr/sbin/nginx";

/// The binary `tests/traefik/build.sh` prints as `TRAEFIK=path` (building it the first time).
pub fn traefik_binary() -> PathBuf {
    let script =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("tests/traefik/build.sh");
    let out = super::succeed(
        Command::new("bash").arg(&script).stderr(Stdio::inherit()),
        "tests/traefik/build.sh",
    );
    out.lines()
        .find_map(|l| l.strip_prefix("TRAEFIK="))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("build.sh printed no TRAEFIK=: {out}"))
}

/// What an HTTPS request through a hop saw.
pub struct Seen {
    pub status: u16,
    pub body: String,
    /// The leaf certificate the hop presented (DER).
    pub certificate: Vec<u8>,
}

/// GET `https://<host><path>` at `address` with `host` as SNI and Host, trusting `ca_pem`.
pub async fn get(
    address: SocketAddr,
    host: &str,
    path: &str,
    ca_pem: &str,
) -> Result<Seen, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let certificate = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    // HTTP/1.0: a plain body to the end of the stream, never chunked.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(Seen {
        status,
        body,
        certificate,
    })
}

/// The DER of the first certificate of a PEM chain.
pub fn der_of(chain: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(chain.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}
