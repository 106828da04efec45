//! Shared by the end-to-end tests: a `phoenix apiserver` process on 127.0.0.1 with a
//! throwaway data directory, stopped when dropped.

#![allow(dead_code)]

pub mod dnsmasq;
pub mod git_http;
pub mod host;
pub mod https;
pub mod setup;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct ApiServer {
    child: KillOnDrop,
    pub data_dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// `http://127.0.0.1:PORT/metrics` of `phoenix up`; empty for the API server alone.
    pub metrics: String,
    _temp: Option<tempfile::TempDir>,
}

impl ApiServer {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_owned();
        let mut server = Self::start_in(&dir);
        server._temp = Some(temp);
        server
    }

    /// Starts a server on `dir` (which may hold an earlier server's store), returning once
    /// it has announced its kubeconfig, that is once it listens.
    pub fn start_in(dir: &Path) -> Self {
        Self::start_in_at(dir, "127.0.0.1:0")
    }

    /// As `start_in`, on a given address (a restart keeps its clients' kubeconfig valid).
    pub fn start_in_at(dir: &Path, listen: &str) -> Self {
        Self::launch(dir, &["apiserver", "--listen", listen])
    }

    /// `phoenix up --simulate` on `dir` with `extra` arguments: API server, controllers and
    /// the simulated PVE (its credentials in `dir/sim.json`).
    pub fn up_simulated(dir: &Path, extra: &[&str]) -> Self {
        Self::launch(dir, &Self::up_args(extra))
    }

    /// As `up_simulated`, logging everything down to debug into `log` (for tests that
    /// read the log, e.g. for leaked secrets).
    pub fn up_simulated_logged(dir: &Path, extra: &[&str], log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("log file");
        Self::launch_with(dir, &Self::up_args(extra), file.into(), "debug")
    }

    fn up_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "up",
            "--simulate",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        args
    }

    fn launch(dir: &Path, args: &[&str]) -> Self {
        let level = std::env::var("PHOENIX_TEST_LOG").unwrap_or_else(|_| "warn".into());
        Self::launch_with(dir, args, Stdio::inherit(), &level)
    }

    fn launch_with(dir: &Path, args: &[&str], stderr: Stdio, level: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_phoenix"))
            .args(args)
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("phoenix apiserver starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("server announces its kubeconfig");
        let mut metrics = String::new();
        if args.first() == Some(&"up") {
            stdout.read_line(&mut metrics).expect("metrics address");
        }
        let metrics = metrics
            .trim()
            .strip_prefix("# metrics: ")
            .unwrap_or("")
            .to_owned();
        let kubeconfig = line
            .trim()
            .strip_prefix("export KUBECONFIG=")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .into();
        Self {
            child: KillOnDrop(child),
            data_dir: dir.to_owned(),
            kubeconfig,
            metrics,
            _temp: None,
        }
    }

    /// The server's `https://127.0.0.1:PORT`, from its kubeconfig.
    pub fn url(&self) -> String {
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .unwrap()
            .to_owned()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// SIGKILL, no goodbye: what a crash looks like to the store.
    pub fn kill(mut self) -> Option<tempfile::TempDir> {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        self._temp.take()
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// An object from `examples/`, e.g. `example::<LxcGuest>("lxc-801.yaml")`.
pub fn example<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("examples")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The LxcGuest CRD, as the tests install it.
pub fn lxc_crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    phoenix_crds::all_crds()
        .into_iter()
        .find(|(file, _)| *file == "lxcguest.yaml")
        .expect("the LxcGuest CRD")
        .1
}

/// A kube-rs client for `server`, from the kubeconfig it wrote.
pub async fn client(server: &ApiServer) -> kube::Client {
    client_of(&server.kubeconfig).await
}

/// A kube-rs client from the kubeconfig at `path`.
pub async fn client_of(path: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).expect("kubeconfig parses");
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("client")
}

/// A kubectl binary: the installed one, or the 1.29 that shared/tools/get-helm.sh installs.
pub fn kubectl_129() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".local/bin/kubectl-1.29");
    assert!(
        path.exists(),
        "kubectl 1.29 missing: run `make test` (it installs it through shared/tools/get-helm.sh)"
    );
    path
}

/// The simulated PVE of `phoenix up --simulate`, through its credentials file: the API
/// (for out-of-band changes, as someone in the PVE UI would make) and the admin endpoint.
pub struct SimAdmin {
    http: reqwest::Client,
    url: String,
    admin: String,
    authorization: String,
}

impl SimAdmin {
    pub fn of(server: &ApiServer) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let text = std::fs::read_to_string(server.data_dir.join("sim.json")).expect("sim.json");
        let c: serde_json::Value = serde_json::from_str(&text).unwrap();
        Self {
            // Loopback only, to a simulator whose certificate this test does not pin.
            http: reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap(),
            url: c["url"].as_str().unwrap().to_owned(),
            admin: c["admin_url"].as_str().unwrap().to_owned(),
            authorization: format!(
                "PVEAPIToken={}={}",
                c["token_id"].as_str().unwrap(),
                c["token_secret"].as_str().unwrap()
            ),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> serde_json::Value {
        let response = request
            .header("Authorization", &self.authorization)
            .send()
            .await
            .expect("simulator answers");
        response.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// `GET /admin/{path}`
    pub async fn get(&self, path: &str) -> serde_json::Value {
        self.send(self.http.get(format!("{}/{path}", self.admin)))
            .await
    }

    pub async fn put(&self, path: &str, body: serde_json::Value) {
        self.send(self.http.put(format!("{}/{path}", self.admin)).json(&body))
            .await;
    }

    /// Runs `argv` inside simulated guest `vmid`, as `pct exec` would.
    pub async fn exec(&self, vmid: u32, argv: &[&str]) -> serde_json::Value {
        let url = format!("{}/guests/{vmid}/exec", self.admin);
        self.send(
            self.http
                .post(url)
                .json(&serde_json::json!({ "command": argv })),
        )
        .await
    }

    /// Runs `argv` on simulated node `node`, as SSH to it would.
    pub async fn exec_node(&self, node: &str, argv: &[&str]) -> serde_json::Value {
        let url = format!("{}/nodes/{node}/exec", self.admin);
        self.send(
            self.http
                .post(url)
                .json(&serde_json::json!({ "command": argv })),
        )
        .await
    }

    pub async fn clear_oplog(&self) {
        self.send(self.http.delete(format!("{}/oplog", self.admin)))
            .await;
    }

    /// The calls the operation log marks as changing PVE's state.
    pub async fn mutating_calls(&self) -> Vec<serde_json::Value> {
        self.mutating_in("oplog").await
    }

    /// The calls operation log `log` (`oplog`, `portainer/oplog`) marks as changing state.
    pub async fn mutating_in(&self, log: &str) -> Vec<serde_json::Value> {
        let log = self.get(log).await;
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["mutating"] == true)
            .cloned()
            .collect()
    }

    /// A PVE API call, `data` of the answer.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> serde_json::Value {
        let url = format!("{}/api2/json{path}", self.url);
        let request = if method == reqwest::Method::GET {
            self.http.get(url).query(form)
        } else {
            self.http.request(method, url).form(form)
        };
        self.send(request).await["data"].clone()
    }

    /// The simulated guest `vmid`, as `/admin/guests/{vmid}` shows it (null when absent).
    pub async fn guest(&self, vmid: u32) -> serde_json::Value {
        self.get(&format!("guests/{vmid}")).await
    }
}

/// Waits, on the watch stream, until `done` holds for every object of `api`.
pub async fn wait_for<K>(
    api: &kube::Api<K>,
    what: &str,
    timeout: std::time::Duration,
    mut done: impl FnMut(&[std::sync::Arc<K>]) -> bool,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let (reader, writer) = reflector::store();
    let mut stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .boxed();
    let waited = tokio::time::timeout(timeout, async {
        while let Some(event) = stream.next().await {
            // Look once the initial list is complete, then at every change.
            let settled = matches!(
                event,
                Ok(watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_))
            );
            if settled && done(&reader.state()) {
                return;
            }
        }
    })
    .await;
    if waited.is_err() {
        panic!(
            "timed out waiting for {what}; last seen: {:#?}",
            reader.state()
        );
    }
}

/// Ready=True on a Phoenix object with our status types.
pub fn is_ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The reason of the Ready condition.
pub fn ready_reason(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> String {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

/// `kubectl` against `server`, stdout (panics on failure).
pub fn kubectl(server: &ApiServer, args: &[&str]) -> String {
    kubectl_at(&server.kubeconfig, args)
}

/// `kubectl` against the server of `kubeconfig`, stdout (panics on failure).
pub fn kubectl_at(kubeconfig: &Path, args: &[&str]) -> String {
    succeed(
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", kubeconfig),
        &format!("kubectl {args:?}"),
    )
}

/// Runs `command` to its end: its stdout, or a panic naming `what` with its stderr.
pub fn succeed(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl apply -f -` of `yaml`.
pub fn kubectl_apply(server: &ApiServer, yaml: &str) {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .env("KUBECONFIG", &server.kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "kubectl apply of:\n{yaml}");
}

/// A metric's value from `phoenix up`'s `/metrics` (0 when absent).
pub async fn metric(server: &ApiServer, series: &str) -> f64 {
    let text = reqwest::get(&server.metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Merges `patch` (JSON) into the ProxmoxCluster `homelab`, as `kubectl patch` does.
pub fn patch_homelab(server: &ApiServer, patch: &serde_json::Value) {
    kubectl(
        server,
        &[
            "patch",
            "proxmoxcluster",
            "homelab",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ],
    );
}

/// The examples' ProxmoxCluster `homelab` with its namespace and Secret, applied with
/// kubectl, and a wait until the controllers report it Ready.
pub async fn homelab_cluster(server: &ApiServer) {
    let examples =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("examples");
    for file in [
        "namespace-phoenix-system.yaml",
        "secret-pve-token.yaml",
        "proxmoxcluster-homelab.yaml",
    ] {
        kubectl(
            server,
            &["apply", "-f", examples.join(file).to_str().unwrap()],
        );
    }
    homelab_ready(server).await;
}

/// Until the ProxmoxCluster is Ready (30 seconds at most).
pub async fn homelab_ready(server: &ApiServer) {
    let clusters: kube::Api<phoenix_crds::ProxmoxCluster> = kube::Api::all(client(server).await);
    wait_for(
        &clusters,
        "the cluster Ready",
        std::time::Duration::from_secs(30),
        |cs| {
            !cs.is_empty()
                && cs.iter().all(|c| {
                    c.status
                        .as_ref()
                        .is_some_and(|s| is_ready(&s.common.conditions))
                })
        },
    )
    .await;
}

const GUEST: &str = r#"
apiVersion: phoenix.thinkheads.ai/v1alpha1
kind: LxcGuest
metadata: {name: NAME, namespace: default}
spec:
  vmid: VMID
  node: phoenix
  source: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
  hostname: NAME
  memory: 512
  rootfs: {storage: local-zfs, size: 4G}
  network: [{ip: 10.0.0.OCTET/24}]
"#;

/// A small container from the Debian appliance, `extra` appended to its spec (indented
/// two spaces); its address is 10.0.0.(vmid % 250).
#[allow(dead_code)]
pub fn guest_yaml(name: &str, vmid: u32, extra: &str) -> String {
    GUEST
        .replace("NAME", name)
        .replace("OCTET", &(vmid % 250).to_string())
        .replace("VMID", &vmid.to_string())
        + extra
}

/// `phoenix plan -f FILE` against `server` (its simulator is found beside the kubeconfig
/// of `phoenix up --simulate`): the printed plan.
#[allow(dead_code)]
pub fn plan(server: &ApiServer, file: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(["plan", "-f", file])
        .env("KUBECONFIG", &server.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A guest made by hand in PVE (no Phoenix marker), running.
#[allow(dead_code)]
pub async fn foreign_guest(sim: &SimAdmin, vmid: u32, hostname: &str) {
    let vmid_text = vmid.to_string();
    sim.api(
        reqwest::Method::POST,
        "/nodes/phoenix/lxc",
        &[
            ("vmid", &vmid_text),
            (
                "ostemplate",
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            ),
            ("hostname", hostname),
            ("rootfs", "local-zfs:4"),
            ("memory", "512"),
            ("net0", "name=eth0,bridge=vmbr0,ip=10.0.0.77/24"),
        ],
    )
    .await;
    wait_sim(sim, "the hand-made guest", |s| {
        let g = &s[&vmid_text];
        g.is_object() && g["config"]["lock"].is_null()
    })
    .await;
    sim.api(
        reqwest::Method::POST,
        &format!("/nodes/phoenix/lxc/{vmid}/status/start"),
        &[],
    )
    .await;
    wait_sim(sim, "the hand-made guest running", |s| {
        s[&vmid_text]["running"] == true
    })
    .await;
}

/// Until `kind`'s controller has made `rounds` more passes over `objects` objects (from its
/// reconcile counter): that many resyncs have happened.
#[allow(dead_code)]
pub async fn resync_rounds(server: &ApiServer, kind: &str, objects: usize, rounds: usize) {
    let series = format!("phoenix_reconciles_total{{kind=\"{kind}\"}}");
    let target = metric(server, &series).await + (objects * rounds) as f64;
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while metric(server, &series).await < target {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{kind}'s controller keeps resyncing"));
}

/// Until `check` (evaluated afresh each time, e.g. a look at the simulator) holds, for a
/// minute at most.
#[allow(dead_code)]
pub async fn until<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while !check().await {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Until the simulator's guests (by VMID) satisfy `done`.
#[allow(dead_code)]
pub async fn wait_sim(sim: &SimAdmin, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            if done(&sim.get("guests").await) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Runs tests/kubectl/conformance.sh with `kubectl` against the server of `kubeconfig`
/// (with `env` set, e.g. `NO_NAMESPACE_CONTROLLER`): its summary line ("N passed, 0
/// failed"), or a panic with everything it printed.
pub fn conformance(kubectl: &Path, kubeconfig: &Path, env: &[(&str, &str)]) -> String {
    let repo = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = Command::new("bash")
        .arg(Path::new(&repo).join("tests/kubectl/conformance.sh"))
        .arg(kubectl)
        .envs(env.iter().copied())
        .env("KUBECONFIG", kubeconfig)
        .env("REPO", repo)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "conformance failed with {}:\n{stdout}\n{stderr}",
        kubectl.display()
    );
    let summary = stdout.lines().last().unwrap_or_default().to_owned();
    assert!(summary.ends_with("passed, 0 failed"), "{summary}");
    summary
}

/// The Go test harness in `tests/NAME` (a program using a real tool's own Go code), built
/// into `dir`: Go's build cache keeps a second build to a link.
pub fn go_harness(name: &str, dir: &Path) -> PathBuf {
    let repo = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let binary = dir.join(name);
    // Where Go lives on these machines, if the caller's PATH lacks it (`make` adds it).
    let path = format!(
        "{}:/usr/local/go/bin",
        std::env::var("PATH").unwrap_or_default()
    );
    succeed(
        Command::new("go")
            .args(["build", "-o"])
            .arg(&binary)
            .arg(".")
            .env("PATH", path)
            .current_dir(repo.join("tests").join(name)),
        &format!("go build of tests/{name}"),
    );
    binary
}

/// What Flux's apply-and-wait (tests/flux, built into `dir`) made of `paths` on the
/// cluster of `kubeconfig`: whether every object became Current, what it printed, and how
/// long it took.
pub fn flux_apply(
    dir: &Path,
    kubeconfig: &Path,
    paths: &[&Path],
    timeout: &str,
) -> (bool, String, std::time::Duration) {
    let binary = go_harness("flux", dir);
    let started = std::time::Instant::now();
    let out = Command::new(binary)
        .args(["-timeout", timeout])
        .args(paths)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("the Flux harness runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed, started.elapsed())
}

/// A guest whose OS template the node does not have: its controller reports it Stalled
/// (only a spec change can fix it).
pub fn stalled_guest_yaml(name: &str, vmid: u32) -> String {
    guest_yaml(name, vmid, "").replace(
        "debian-12-standard_12.7-1_amd64.tar.zst",
        "no-such-template.tar.zst",
    )
}

/// Applies `stalled` (an object its controller reports Stalled) as Flux does, and then
/// again, as a Kustomization's next reconcile does: the second wait must fail at once on
/// kstatus's Failed, not at its timeout. The first may pass: kstatus counts an object
/// with no status at all as Current, and Flux's first look can come before the
/// controller's first status write. How long the second took.
pub fn flux_sees_failed(dir: &Path, kubeconfig: &Path, stalled: &Path) -> std::time::Duration {
    let (first, printed, _) = flux_apply(dir, kubeconfig, &[stalled], "4m");
    println!(
        "Flux's first wait: {}",
        if first {
            "Current (before any status)"
        } else {
            "Failed"
        }
    );
    if !first {
        assert!(
            printed.contains("failed early due to stalled resources"),
            "{printed}"
        );
    }
    let (current, printed, took) = flux_apply(dir, kubeconfig, &[stalled], "4m");
    assert!(!current, "{printed}");
    assert!(
        printed.contains("failed early due to stalled resources"),
        "{printed}"
    );
    took
}

/// `phoenix sim pve` in its own process, on loopback, with `extra` arguments; started once
/// its credentials file is written (it says so on stdout), stopped when dropped.
pub struct SimProcess {
    _child: KillOnDrop,
    /// The credentials file (url, token, fingerprint, admin url) the simulator wrote.
    pub credentials: PathBuf,
}

impl SimProcess {
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        let credentials = dir.join("sim.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_phoenix"))
            .args(["sim", "pve", "--listen", "127.0.0.1:0", "--credentials-out"])
            .arg(&credentials)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("phoenix sim pve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the simulator announces itself");
        assert!(
            line.contains("simulated Proxmox VE at https://127.0.0.1:"),
            "{line}"
        );
        Self {
            _child: KillOnDrop(child),
            credentials,
        }
    }
}

/// A child process killed (and reaped) when the test lets go of it.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kubectl get -o` of each object's `Stalled` reason and message (for failure reports).
pub const STALLED: &str = r#"jsonpath={range .items[*]}{.kind}/{.metadata.name}: {.status.conditions[?(@.type=="Stalled")].reason} {.status.conditions[?(@.type=="Stalled")].message}{"\n"}{end}"#;

/// Flux takes an object over from kubectl: `file` applied client-side first, then the
/// examples with Flux (`apply`, which runs the harness); afterwards kubectl's managers
/// and its last-applied annotation are gone from the object `kind/name` and
/// kustomize-controller manages it. What `apply` returned.
pub fn flux_takes_over_from_kubectl<T>(
    kubeconfig: &Path,
    file: &str,
    kind_name: &str,
    apply: impl FnOnce() -> T,
) -> T {
    kubectl_at(kubeconfig, &["apply", "-f", file]);
    let applied = apply();
    let managers = kubectl_at(
        kubeconfig,
        &[
            "get",
            kind_name,
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
    );
    assert!(managers.contains("kustomize-controller"), "{managers}");
    assert!(
        !managers.contains("kubectl"),
        "kubectl's managers removed: {managers}"
    );
    let annotations = kubectl_at(
        kubeconfig,
        &["get", kind_name, "-o", "jsonpath={.metadata.annotations}"],
    );
    assert!(
        !annotations.contains("last-applied-configuration"),
        "{annotations}"
    );
    applied
}

/// Whether there are `count` objects and every one is Ready (by the common part of its
/// status).
pub fn all_ready<K>(
    objects: &[std::sync::Arc<K>],
    count: usize,
    common: impl Fn(&K) -> Option<&phoenix_crds::common::CommonStatus>,
) -> bool {
    objects.len() == count
        && objects
            .iter()
            .all(|o| common(o).is_some_and(|c| is_ready(&c.conditions)))
}

/// Until `lxc` LxcGuests and `vm` VmGuests of namespace `default` are Ready (4 minutes at
/// most).
pub async fn all_guests_ready(client: &kube::Client, lxc: usize, vm: usize) {
    let minutes = std::time::Duration::from_secs(240);
    let lxcs: kube::Api<phoenix_crds::LxcGuest> = kube::Api::namespaced(client.clone(), "default");
    wait_for(&lxcs, &format!("{lxc} LxcGuests Ready"), minutes, |all| {
        all_ready(all, lxc, |g| g.status.as_ref().map(|s| &s.common))
    })
    .await;
    let vms: kube::Api<phoenix_crds::VmGuest> = kube::Api::namespaced(client.clone(), "default");
    wait_for(&vms, &format!("{vm} VmGuests Ready"), minutes, |all| {
        all_ready(all, vm, |g| g.status.as_ref().map(|s| &s.common))
    })
    .await;
}

/// Helm 3: `$HELM`, or the one `make test` installs (shared/tools/get-helm.sh).
pub fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("HELM") {
        return path.into();
    }
    let local = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".local/bin/helm");
    if local.exists() {
        return local;
    }
    panic!(
        "no helm: run `make test` (it installs Helm 3 via shared/tools/get-helm.sh) or set HELM"
    );
}
