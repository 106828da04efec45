//! The real Traefik, built from its Go module by `tests/traefik/build.sh` (cached outside
//! the clone), run on loopback with a static configuration as Phoenix's `traefik` feature
//! lays it out (file provider watching `/etc/traefik/dynamic`), under a directory standing
//! in for its guest's filesystem; plus the pieces a route test needs around it: a test CA,
//! loopback backends that say who they are, and an HTTPS client that reports the
//! certificate it was shown.

use phoenix_controllers::traefik_service::render::{CERTS_DIR, DYNAMIC_DIR};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A Traefik process: `websecure` and its API on loopback ports.
pub struct Traefik {
    child: Child,
    pub websecure: SocketAddr,
    pub api: SocketAddr,
    pub log: PathBuf,
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Traefik {
    /// Starts Traefik with its guest's filesystem at `root` (the dynamic directory
    /// created), returning once its API answers.
    pub async fn start(binary: &Path, root: &Path) -> Traefik {
        // reqwest is built without a provider of its own: the process installs ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        layout(root);
        // A port freed just before Traefik binds it can be taken in between: try again.
        for _ in 0..5 {
            if let Some(traefik) = Self::try_start(binary, root).await {
                return traefik;
            }
        }
        panic!("Traefik did not start on free ports after 5 tries");
    }

    async fn try_start(binary: &Path, root: &Path) -> Option<Traefik> {
        let (websecure, api) = (free_address(), free_address());
        let dynamic = root.join(DYNAMIC_DIR.trim_start_matches('/'));
        let log = root.join("traefik.log");
        let config = root.join("traefik.yml");
        let text = format!(
            "entryPoints:\n  websecure:\n    address: \"{websecure}\"\n  traefik:\n    address: \"{api}\"\n\
             providers:\n  file:\n    directory: \"{}\"\n    watch: true\n\
             api:\n  insecure: true\nping: {{}}\nlog:\n  level: INFO\n  filePath: \"{}\"\n\
             global:\n  checkNewVersion: false\n  sendAnonymousUsage: false\n",
            dynamic.display(),
            log.display()
        );
        std::fs::write(&config, text).unwrap();
        let child = Command::new(binary)
            .arg(format!("--configFile={}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("traefik starts");
        // Owned from here, so a panic while waiting still stops it (Drop).
        let mut traefik = Traefik {
            child,
            websecure,
            api,
            log,
        };
        let ping = format!("http://{api}/ping");
        for _ in 0..200 {
            if traefik.child.try_wait().unwrap().is_some() {
                return None;
            }
            if reqwest::get(&ping).await.is_ok_and(|r| r.status() == 200) {
                return Some(traefik);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        None
    }

    /// Traefik's routers as its API reports them (`name@file` → status).
    pub async fn routers(&self) -> serde_json::Value {
        reqwest::get(format!("http://{}/api/http/routers", self.api))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Until every router named is `enabled` in Traefik's API (it loads a changed
    /// directory within its throttle, about 2 s).
    pub async fn until_enabled(&self, names: &[&str]) {
        let loaded = || async {
            let routers = self.routers().await;
            names.iter().all(|n| {
                routers
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["name"] == format!("{n}@file") && r["status"] == "enabled")
            })
        };
        let what = format!("Traefik loads {names:?} (its log: {})", self.log.display());
        super::support::until(&what, loaded).await;
    }
}

/// Creates Traefik's directories under `root`.
pub fn layout(root: &Path) {
    for dir in [DYNAMIC_DIR, CERTS_DIR] {
        std::fs::create_dir_all(root.join(dir.trim_start_matches('/'))).unwrap();
    }
}

fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// A CA, as Step-CA is for the platform, and certificates it signs.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// A leaf for `names`: (chain PEM, key PEM).
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A backend on loopback answering every request with `backend <name> host=<Host>`, over
/// TLS with `pair` when given.
pub async fn backend(name: &str, pair: Option<(String, String)>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = pair.map(|(chain, key)| acceptor(&chain, &key));
    let name = name.to_owned();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (name, acceptor) = (name.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        if let Ok(tls) = a.accept(stream).await {
                            answer(tls, &name).await;
                        }
                    }
                    None => answer(stream, &name).await,
                }
            });
        }
    });
    address
}

fn acceptor(chain: &str, key: &str) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    name: &str,
) {
    let head = read_head(&mut stream).await;
    let host = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("host").then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    let body = format!("backend {name} host={host}");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}
