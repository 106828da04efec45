//! Phoenix on a real Kubernetes: kube-apiserver and etcd built from their modules
//! (`tests/k8s/build.sh`), the CRDs and the examples as kube-apiserver judges them, and the
//! chart installed by Helm, its controllers converging the examples with the chart's own
//! RBAC while two replicas elect one leader.

#[path = "k8s/cluster.rs"]
mod cluster;
mod support;

use cluster::RealCluster;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn repo(path: &str) -> String {
    format!("{}/{path}", std::env::var("CARGO_MANIFEST_DIR").unwrap())
}

/// kubectl's stderr when `args` fail (panics if they succeed).
fn refused(cluster: &RealCluster, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .expect("kubectl runs");
    assert!(!out.status.success(), "kubectl {args:?} must be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_apiserver_accepts_every_crd_and_judges_the_examples_and_fixtures_as_we_do() {
    let cluster = RealCluster::start().await;
    cluster.kubectl(&["apply", "--server-side", "-f", &repo("crds/yaml")]);
    cluster.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    ]);
    // Structural schemas, CEL within its cost budget, printer columns whose JSONPaths
    // parse: kube-apiserver refuses a CRD otherwise, or marks it with a condition.
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client().await);
    let ours = phoenix_crds::all_crds();
    for (_, crd) in &ours {
        let name = crd.metadata.name.as_deref().unwrap();
        let stored = crds.get(name).await.unwrap();
        let conditions = stored.status.unwrap().conditions.unwrap_or_default();
        let status = |t: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| c.status.as_str())
        };
        assert_eq!(
            status("NamesAccepted"),
            Some("True"),
            "{name}: {conditions:?}"
        );
        assert_eq!(
            status("NonStructuralSchema"),
            None,
            "{name}: {conditions:?}"
        );
    }

    // Every example is valid as the real server sees it, then stored; every table shows
    // the kind's columns.
    cluster.kubectl(&[
        "apply",
        "-f",
        &repo("examples/namespace-phoenix-system.yaml"),
    ]);
    cluster.kubectl(&["apply", "--dry-run=server", "-f", &repo("examples")]);
    cluster.kubectl(&["apply", "-f", &repo("examples")]);
    for (_, crd) in &ours {
        let version = &crd.spec.versions[0];
        let table = cluster.kubectl(&["get", &crd.spec.names.plural, "-A", "-o", "wide"]);
        let header = table.lines().next().unwrap_or_default();
        for column in version.additional_printer_columns.iter().flatten() {
            let title = column.name.to_uppercase();
            assert!(
                header.contains(&title),
                "{title} in the {} table:\n{table}",
                crd.spec.names.kind
            );
        }
    }

    // Every invalid fixture is refused by kube-apiserver with the message our own server
    // gives (tests/manifests.rs holds ours to the same `# expect:` line).
    let mut differences = Vec::new();
    for path in std::fs::read_dir(repo("tests/fixtures/invalid")).unwrap() {
        let path = path.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no `# expect:` line", path.display()));
        let documents: Vec<&str> = text.split("\n---\n").collect();
        let update = if let [stored, update] = documents.as_slice() {
            apply_text(&cluster, stored);
            update
        } else {
            text.as_str()
        };
        let file = cluster.scratch().join("fixture.yaml");
        std::fs::write(&file, update).unwrap();
        let file = file.to_str().unwrap();
        let message = refused(
            &cluster,
            &["apply", "--dry-run=server", "--validate=strict", "-f", file],
        );
        if !message.contains(expected) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            differences.push(format!(
                "{name}:\n  ours:           {expected}\n  kube-apiserver: {message}"
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// `kubectl apply` of a manifest's text.
fn apply_text(cluster: &RealCluster, text: &str) {
    let file = cluster.scratch().join("stored.yaml");
    std::fs::write(&file, text).unwrap();
    cluster.kubectl(&["apply", "-f", file.to_str().unwrap()]);
}

/// A child process killed when the test ends, its output in a log file.
struct Process {
    child: support::KillOnDrop,
    log: PathBuf,
}

impl Process {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// One `phoenix controller` replica: the chart's ServiceAccount, in the release namespace,
/// every PVE call and ACME request sent to the simulators.
fn replica(
    name: &str,
    kubeconfig: &Path,
    sim: &Path,
    pebble: &phoenix_sim::pebble::Pebble,
    dir: &Path,
) -> Process {
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args([
            "controller",
            "--simulate",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(["--acme-http01-listen", "127.0.0.1:0"])
        .arg("--sim-pve-credentials")
        .arg(sim)
        .args(["--sim-acme-directory", &pebble.directory_url])
        .args(["--sim-acme-roots", &pebble.roots_url])
        .arg("--sim-acme-ca")
        .arg(&pebble.listener_ca)
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAMESPACE", "phoenix-system")
        .env("HOSTNAME", name)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("phoenix controller starts");
    Process {
        child: support::KillOnDrop(child),
        log,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_installed_by_helm_converges_the_examples_with_its_own_rbac_and_one_leader() {
    let cluster = RealCluster::start().await;
    let dir = cluster.scratch().to_owned();
    support::succeed(
        Command::new(support::helm())
            .args(["install", "phoenix", &repo("charts/phoenix")])
            .args(["--namespace", "phoenix-system", "--create-namespace"])
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig),
        "helm install",
    );
    let account = cluster.kubectl(&[
        "get",
        "serviceaccounts",
        "-n",
        "phoenix-system",
        "-l",
        "app.kubernetes.io/instance=phoenix",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let token = cluster.kubectl(&["create", "token", &account, "-n", "phoenix-system"]);
    let kubeconfig = cluster.kubeconfig_for("controller", token.trim());

    let sim = support::SimProcess::start(&dir, &["--task-duration", "default=0.2"]);
    let credentials = &sim.credentials;
    // Taking challenges as valid without connecting anywhere: the examples' names are the
    // platform's real addresses.
    let http01 = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pebble = phoenix_sim::pebble::Pebble::start(&dir.join("pebble"), http01, false)
        .expect("pebble (make test installs it)");
    let mut replicas = [
        replica("replica-a", &kubeconfig, credentials, &pebble, &dir),
        replica("replica-b", &kubeconfig, credentials, &pebble, &dir),
    ];

    // The examples applied and waited for as Flux does (tests/flux): every one Current.
    let examples = repo("examples");
    let step_ca = repo("examples/lxc-103.yaml");
    let (current, printed, took) = support::flux_takes_over_from_kubectl(
        &cluster.kubeconfig,
        &step_ca,
        "lxcguest/step-ca",
        || support::flux_apply(&dir, &cluster.kubeconfig, &[Path::new(&examples)], "4m"),
    );
    assert!(
        current,
        "every example Current:\n{printed}\nStalled:\n{}\nWarnings:\n{}",
        cluster.kubectl(&[
            "get",
            "lxcguests,vmguests,certificates,proxmoxclusters",
            "-A",
            "-o",
            support::STALLED
        ]),
        cluster.kubectl(&["get", "events", "-A", "--field-selector", "type=Warning"])
    );
    println!("kube-apiserver: the examples Current in {took:?}");

    let admin = cluster.client().await;
    let minutes = Duration::from_secs(240);
    support::all_guests_ready(&admin, 6, 3).await;
    let lxc: Api<phoenix_crds::LxcGuest> = Api::namespaced(admin.clone(), "default");
    let certificates: Api<phoenix_crds::Certificate> = Api::namespaced(admin.clone(), "default");
    let count = certificates
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .len();
    support::wait_for(&certificates, "every Certificate Ready", minutes, |all| {
        support::all_ready(all, count, |c| c.status.as_ref().map(|s| &s.common))
    })
    .await;

    // One replica leads (holds the Lease and runs the controllers); the other waits.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "phoenix-system");
    let lease = leases.get("phoenix-controller").await.unwrap();
    let holder = lease.spec.unwrap().holder_identity.unwrap_or_default();
    let leading: Vec<&str> = ["replica-a", "replica-b"]
        .into_iter()
        .zip(&replicas)
        .filter(|(_, r)| r.log().contains("leading: controllers start"))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        leading,
        [holder.as_str()],
        "exactly the Lease's holder leads"
    );
    // A guest its controller reports Stalled is Failed to Flux at once.
    let stalled = dir.join("stalled.yaml");
    std::fs::write(&stalled, support::stalled_guest_yaml("flux-stalled", 313)).unwrap();
    let took = support::flux_sees_failed(&dir, &cluster.kubeconfig, &stalled);
    println!("kube-apiserver: the stalled guest reported Failed in {took:?}");

    // The chart's RBAC was enough: nothing the controllers tried was forbidden; and it is
    // what they ran with: the ServiceAccount may not delete guests.
    for replica in &replicas {
        let log = replica.log();
        assert!(!log.contains("forbidden"), "{log}");
    }
    let may_delete = Command::new("kubectl")
        .args(["auth", "can-i", "delete", "lxcguests", "--as"])
        .arg(format!("system:serviceaccount:phoenix-system:{account}"))
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&may_delete.stdout).trim(), "no");

    // The leader dies without a word: once its Lease expires the other replica takes it,
    // and its controllers converge what changes next.
    let leader = usize::from(holder == "replica-b");
    let (_, other) = (
        replicas[leader].child.0.kill(),
        ["replica-a", "replica-b"][1 - leader],
    );
    support::wait_for(&leases, "the other replica leading", minutes, |all| {
        all.iter()
            .any(|l| l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(other))
    })
    .await;
    cluster.kubectl(&[
        "patch",
        "lxcguest",
        "step-ca",
        "--type=merge",
        "-p",
        r#"{"spec":{"memory":1536}}"#,
    ]);
    support::wait_for(
        &lxc,
        "step-ca converged by the new leader",
        minutes,
        |all| {
            all.iter().any(|g| {
                let status = g.status.as_ref().map(|s| &s.common);
                g.metadata.name.as_deref() == Some("step-ca")
                    && status.is_some_and(|c| {
                        c.observed_generation == g.metadata.generation
                            && support::is_ready(&c.conditions)
                    })
            })
        },
    )
    .await;
    assert!(
        replicas[1 - leader]
            .log()
            .contains("leading: controllers start")
    );
}

/// The kubectl conformance scenario our own server passes (tests/kubectl_conformance.rs),
/// against kube-apiserver: what it asserts of our server holds of the real one.
#[tokio::test(flavor = "multi_thread")]
async fn the_kubectl_conformance_scenario_holds_on_kube_apiserver_too() {
    let cluster = RealCluster::start().await;
    let summary = support::conformance(
        Path::new("/usr/bin/kubectl"),
        &cluster.kubeconfig,
        &[("NO_NAMESPACE_CONTROLLER", "1")],
    );
    println!("kube-apiserver: {summary}");
    println!("known differences of the embedded server (README, The embedded API server):");
    for difference in KNOWN_DIFFERENCES {
        println!("  - {difference}");
    }
}

/// What the embedded server does otherwise than kube-apiserver, on purpose or not yet;
/// the scenarios above avoid them.
const KNOWN_DIFFERENCES: &[&str] = &[
    "pages of a list after the first show current objects, not a snapshot at the first page's revision",
    "propagationPolicy Foreground and Orphan act as Background",
    "/openapi/v2 is served as JSON only (kubectl falls back to v3)",
    "authorization: authenticated means allowed (no RBAC)",
    "CEL rules of a CRD are not costed: a CRD over kube-apiserver's budget is accepted",
    "a deleted namespace is emptied and removed at once (kube-apiserver leaves it to kube-controller-manager)",
];
