//! A real Kubernetes control plane for tests: etcd and kube-apiserver, built from their Go
//! modules by `tests/k8s/build.sh` (cached outside the clone), started on loopback as
//! controller-runtime's envtest starts them — a CA and serving certificate of their own, a
//! service-account signing key, RBAC authorization, an admin bearer token — and stopped
//! when dropped. Nothing else of a cluster runs: no kubelet, scheduler or controller
//! manager, so a Deployment is stored and never becomes a pod; controllers run outside.

#![allow(dead_code)]

use super::support::KillOnDrop;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct RealCluster {
    // Dropped in this order: the API server before its store.
    apiserver: KillOnDrop,
    etcd: KillOnDrop,
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// The admin's kubeconfig (a `system:masters` token).
    pub kubeconfig: PathBuf,
    /// The PEM of the CA that signed the API server's certificate.
    pub ca_pem: String,
    dir: tempfile::TempDir,
}

/// The binaries `tests/k8s/build.sh` prints as `NAME=path` (building them the first time).
fn binaries() -> (PathBuf, PathBuf) {
    let script =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("tests/k8s/build.sh");
    let out = super::support::succeed(
        Command::new("bash").arg(&script).stderr(Stdio::inherit()),
        "tests/k8s/build.sh",
    );
    let path = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("build.sh printed no {key}: {out}"))
    };
    (path("KUBE_APISERVER="), path("ETCD="))
}

/// A port free on loopback now (the process given it binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Starts `program` with `args`, its output into `log`; killed when dropped (also when
/// the start of the next one fails).
fn spawn(program: &Path, args: &[String], log: &Path) -> KillOnDrop {
    let file = std::fs::File::create(log).expect("log file");
    let child = Command::new(program)
        .args(args)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
    KillOnDrop(child)
}

impl RealCluster {
    /// etcd and kube-apiserver on fresh loopback ports, returning once `/readyz` says ok.
    pub async fn start() -> Self {
        let (apiserver_bin, etcd_bin) = binaries();
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        // The embedded server's own credentials code makes the CA, the serving certificate
        // (localhost, 127.0.0.1) and a random admin token; its key also signs the
        // service-account tokens.
        let creds = phoenix_apiserver::tls::load_or_create(root).expect("certificates");
        let tokens = root.join("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{},admin,admin,\"system:masters\"\n", creds.token),
        )
        .unwrap();
        // kube-apiserver reads the verifying key as a public key only.
        let public = root.join("service-account.pub");
        let key_pair = rcgen::KeyPair::from_pem(&creds.key_pem).expect("the key parses");
        std::fs::write(&public, key_pair.public_key_pem()).unwrap();
        let (client, peer, secure) = (free_port(), free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let etcd = spawn(
            &etcd_bin,
            &[
                "--name=test".into(),
                format!("--data-dir={}", root.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=test={peer_url}"),
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
            ],
            &root.join("etcd.log"),
        );
        let url = format!("https://127.0.0.1:{secure}");
        let key = root.join("server.key");
        let apiserver = spawn(
            &apiserver_bin,
            &[
                format!("--etcd-servers={etcd_url}"),
                format!("--cert-dir={}", root.join("certs").display()),
                format!("--tls-cert-file={}", root.join("server.crt").display()),
                format!("--tls-private-key-file={}", key.display()),
                format!("--secure-port={secure}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                // Only names the range Services would take: nothing is ever sent there
                // (TEST-NET-1, away from the platform's 10.0.0.x).
                "--service-cluster-ip-range=192.0.2.0/24".into(),
                "--endpoint-reconciler-type=none".into(),
                "--authorization-mode=RBAC".into(),
                format!("--token-auth-file={}", tokens.display()),
                format!("--service-account-issuer={url}/"),
                format!("--service-account-key-file={}", public.display()),
                format!("--service-account-signing-key-file={}", key.display()),
                "--disable-admission-plugins=ServiceAccount".into(),
            ],
            &root.join("kube-apiserver.log"),
        );
        let kubeconfig = root.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            phoenix_apiserver::tls::kubeconfig(&url, &creds),
        )
        .unwrap();
        let mut cluster = Self {
            etcd,
            apiserver,
            url,
            kubeconfig,
            ca_pem: creds.ca_pem,
            dir,
        };
        cluster.until_ready().await;
        cluster
    }

    /// Polls `/readyz` (as envtest does) until it says ok; a process that exits, or a
    /// minute without readiness, fails the test with the logs.
    async fn until_ready(&mut self) {
        let client = self.client().await;
        let started = Instant::now();
        loop {
            let exited = [
                ("etcd", &mut self.etcd),
                ("kube-apiserver", &mut self.apiserver),
            ]
            .into_iter()
            .find_map(|(name, child)| Some((name, child.0.try_wait().ok()??)));
            if let Some((name, status)) = exited {
                panic!("{name} exited ({status}):\n{}", self.logs());
            }
            let request = http::Request::get("/readyz").body(Vec::new()).unwrap();
            if client.request_text(request).await.is_ok_and(|t| t == "ok") {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "kube-apiserver not ready within a minute:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last lines each process wrote.
    pub fn logs(&self) -> String {
        ["etcd.log", "kube-apiserver.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {name}\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A kube-rs client with the admin's token.
    pub async fn client(&self) -> kube::Client {
        super::support::client_of(&self.kubeconfig).await
    }

    /// `kubectl` as the admin: stdout (panics on failure).
    pub fn kubectl(&self, args: &[&str]) -> String {
        super::support::kubectl_at(&self.kubeconfig, args)
    }

    /// A kubeconfig for a bearer `token` (a ServiceAccount's), written beside the admin's.
    pub fn kubeconfig_for(&self, name: &str, token: &str) -> PathBuf {
        let creds = phoenix_apiserver::tls::Credentials {
            ca_pem: self.ca_pem.clone(),
            cert_pem: String::new(),
            key_pem: String::new(),
            token: token.to_owned(),
        };
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        phoenix_apiserver::tls::write_private(
            &path,
            &phoenix_apiserver::tls::kubeconfig(&self.url, &creds),
        )
        .unwrap();
        path
    }

    /// A directory that lives as long as the cluster, for the test's own files.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}
