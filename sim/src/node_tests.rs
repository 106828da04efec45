//! A node's inside through the admin routes, without a network: the host setup's
//! commands run with `exec`, files written and read, scripted answers, the summary,
//! unknown nodes, refused paths, and the mirror of the node's files beside the state file.

use crate::cluster::{Cluster, Guest, GuestKind};
use crate::server::Server;
use crate::state::Sim;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

/// A state directory of its own, removed when dropped.
struct StateDir(PathBuf);

impl StateDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("phoenix-sim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sim(cluster: Cluster, state_file: Option<PathBuf>) -> Sim {
    let durations = [("default".to_string(), std::time::Duration::ZERO)].into();
    Sim::new(cluster, 1, durations, state_file)
}

fn server(state_file: Option<PathBuf>) -> Arc<Server> {
    let mut cluster = Cluster::new(1);
    let guest = Guest::new(100, "phoenix", GuestKind::Lxc, Default::default());
    cluster.guests.insert(100, guest);
    Arc::new(crate::test_server::server_with(cluster, state_file))
}

/// An admin call (the path without `/admin`): its status and JSON answer.
async fn admin(server: &Arc<Server>, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = serde_json::to_vec(&body).expect("JSON");
    let response = server.clone().admin_request(method, path, "", &body).await;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn put_file(server: &Arc<Server>, path: &str, content: &str) -> (u16, Value) {
    let body = json!({"path": path, "content": content});
    admin(server, "PUT", "/nodes/phoenix/files", body).await
}

async fn exec(server: &Arc<Server>, argv: &[&str]) -> (i64, String) {
    let (status, answer) = admin(
        server,
        "POST",
        "/nodes/phoenix/exec",
        json!({"command": argv}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let output = answer["output"].as_str().expect("output").to_owned();
    (answer["exitcode"].as_i64().expect("exitcode"), output)
}

const CONF: &str = "/etc/dnsmasq.d/phoenix.conf";
const HOSTS: &str = "/etc/phoenix/dnsmasq/hosts";
/// Phoenix's probe of the host's dnsmasq.
const PROBE: &str = "sha256sum /etc/dnsmasq.d/phoenix.conf /etc/phoenix/dnsmasq/hosts/* 2>/dev/null || true\nsystemctl is-active dnsmasq || true";

#[tokio::test]
async fn node_exec_runs_the_host_probe_and_setup_and_the_inside_shows_them() {
    let server = server(None);
    // Nothing there yet: no sums, dnsmasq inactive, and the probe still succeeds.
    assert_eq!(
        exec(&server, &["sh", "-c", PROBE]).await,
        (0, "inactive\n".into())
    );
    assert_eq!(put_file(&server, CONF, "abc").await.0, 200);
    assert_eq!(
        put_file(&server, &format!("{HOSTS}/lxcguest.default.web"), "abc")
            .await
            .0,
        200
    );
    for argv in [
        &["mkdir", "-p", HOSTS][..],
        &["systemctl", "enable", "dnsmasq"],
        &["systemctl", "restart", "dnsmasq"],
    ] {
        assert_eq!(exec(&server, argv).await.0, 0);
    }
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(
        exec(&server, &["sh", "-c", PROBE]).await,
        (
            0,
            format!("{abc}  {CONF}\n{abc}  {HOSTS}/lxcguest.default.web\nactive\n")
        )
    );
    let (status, inside) = admin(&server, "GET", "/nodes/phoenix/inside", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(
        inside["files"],
        json!({CONF: "0600", format!("{HOSTS}/lxcguest.default.web"): "0600"}),
        "paths and modes, no content"
    );
    assert_eq!(inside["services"], json!({"dnsmasq": "running"}));
    assert_eq!(inside["enabled"], json!(["dnsmasq"]));
    let last = &inside["log"].as_array().expect("log")[inside["log"].as_array().unwrap().len() - 1];
    assert_eq!(
        (last["command"].as_str(), last["exit"].as_i64()),
        (Some("systemctl is-active dnsmasq || true"), Some(0))
    );
    let (status, files) = admin(&server, "GET", "/nodes/phoenix/files", Value::Null).await;
    assert_eq!((status, &files[CONF]), (200, &json!("abc")));
}

#[tokio::test]
async fn node_answers_make_the_syntax_check_fail_and_the_removal_forgets_the_file() {
    let server = server(None);
    let partial = "/etc/dnsmasq.d/.phoenix.conf.partial";
    put_file(&server, partial, "port=53\n").await;
    let check = [
        "dnsmasq",
        "--test",
        "--conf-file=/etc/dnsmasq.d/.phoenix.conf.partial",
    ];
    assert_eq!(
        exec(&server, &check).await,
        (0, "dnsmasq: syntax check OK.\n".into())
    );
    let bad = "dnsmasq: bad option at line 1 of /etc/dnsmasq.d/.phoenix.conf.partial\n";
    let answers = json!([{"matches": "dnsmasq --test", "exit": 1, "output": bad, "times": 1}]);
    let (status, _) = admin(&server, "PUT", "/nodes/phoenix/answers", answers).await;
    assert_eq!(status, 200);
    assert_eq!(exec(&server, &check).await, (1, bad.into()));
    assert_eq!(exec(&server, &check).await.0, 0, "the answer ran out");
    assert_eq!(exec(&server, &["rm", "-f", partial]).await.0, 0);
    assert_eq!(
        exec(&server, &["rm", "-f", partial]).await.0,
        0,
        "gone already"
    );
    let (_, files) = admin(&server, "GET", "/nodes/phoenix/files", Value::Null).await;
    assert_eq!(files, json!({}));
}

#[tokio::test]
async fn unknown_nodes_are_404_and_paths_leaving_the_root_are_refused() {
    let server = server(None);
    for (method, action, body) in [
        ("POST", "exec", json!({"command": ["true"]})),
        ("PUT", "answers", json!([])),
        ("GET", "inside", Value::Null),
        ("GET", "files", Value::Null),
        ("PUT", "files", json!({"path": "/etc/x", "content": ""})),
    ] {
        let (status, answer) =
            admin(&server, method, &format!("/nodes/nowhere/{action}"), body).await;
        assert_eq!(status, 404, "{method} {action}: {answer}");
        assert_eq!(answer["message"], "no such node 'nowhere'\n");
    }
    for path in ["/etc/../../escape", "etc/relative", "/", ""] {
        let (status, answer) = put_file(&server, path, "x").await;
        assert_eq!(status, 400, "{path}: {answer}");
    }
    let (status, _) = admin(
        &server,
        "PUT",
        "/nodes/phoenix/files",
        json!({"path": "/x"}),
    )
    .await;
    assert_eq!(status, 400, "no content");
    // The guests' routes are the same code: a stopped guest runs nothing.
    let (status, answer) = admin(
        &server,
        "POST",
        "/guests/100/exec",
        json!({"command": ["true"]}),
    )
    .await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (500, Some("CT 100 not running\n"))
    );
    let (status, _) = admin(&server, "GET", "/guests/999/inside", Value::Null).await;
    assert_eq!(status, 404);
}

/// Every file below `dir`, relative to it.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn the_mirror_beside_the_state_file_follows_writes_renames_and_removals() {
    let dir = StateDir::new("node-mirror-routes");
    let server = server(Some(dir.0.join("sim-state.json")));
    let web = format!("{HOSTS}/lxcguest.default.web");
    put_file(&server, &web, "10.0.0.5 web.default\n").await;
    let mirrored = dir
        .0
        .join("nodes/phoenix/etc/phoenix/dnsmasq/hosts/lxcguest.default.web");
    assert_eq!(
        std::fs::read_to_string(&mirrored).unwrap(),
        "10.0.0.5 web.default\n"
    );
    let script = format!(
        "echo 10.0.0.6 db.default > {HOSTS}/.db.partial\nmv {HOSTS}/.db.partial {HOSTS}/db"
    );
    assert_eq!(exec(&server, &["sh", "-c", &script]).await.0, 0);
    assert_eq!(exec(&server, &["rm", "-f", &web]).await.0, 0);
    assert_eq!(
        tree(&dir.0.join("nodes")),
        ["phoenix/etc/phoenix/dnsmasq/hosts/db"],
        "renamed, removed, no partial file left"
    );
    assert!(
        dir.0
            .join("nodes/phoenix/etc/phoenix/dnsmasq/hosts")
            .is_dir(),
        "directories stay"
    );
    // A path the inside takes but the mirror refuses: nothing outside the node's directory.
    assert_eq!(
        exec(&server, &["sh", "-c", "echo x > /etc/../../escape"])
            .await
            .0,
        0
    );
    assert!(!dir.0.join("nodes/escape").exists() && !dir.0.join("escape").exists());
    let state = std::fs::read_to_string(dir.0.join("sim-state.json")).unwrap();
    assert!(state.contains("db.default") && !state.contains("node_files"));
}

#[test]
fn an_older_state_file_with_node_files_is_adopted_and_restored_into_the_mirror() {
    let dir = StateDir::new("node-mirror-adopt");
    let mut old = serde_json::to_value(Cluster::new(1)).unwrap();
    for node in old["nodes"].as_array_mut().unwrap() {
        node.as_object_mut().unwrap().remove("inside");
    }
    old["node_files"] = json!({"phoenix:/var/lib/vz/snippets/user-101.yaml": "#cloud-config\n"});
    let mut cluster: Cluster = serde_json::from_value(old).unwrap();
    cluster.adopt_node_files();
    let snippet = "/var/lib/vz/snippets/user-101.yaml";
    assert_eq!(
        cluster.node("phoenix").unwrap().inside.files[snippet],
        "#cloud-config\n"
    );
    // A stray file (a crash between the mirror and the state) goes at start.
    let stray = dir.0.join("nodes/phoenix/etc/stray");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, "old").unwrap();
    let sim = sim(cluster, Some(dir.0.join("sim-state.json")));
    sim.restore_mirror();
    assert_eq!(
        tree(&dir.0.join("nodes")),
        ["phoenix/var/lib/vz/snippets/user-101.yaml"]
    );
    sim.save();
    let saved = std::fs::read_to_string(dir.0.join("sim-state.json")).unwrap();
    assert!(!saved.contains("node_files") && saved.contains("user-101.yaml"));
}
