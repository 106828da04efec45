//! The simulated Portainer driven the way Portainer's documentation drives a real one,
//! with the real `curl`: status, admin init, login, an API key made with the JWT, the
//! `primary` environment, the swarm id through the Docker proxy, a swarm stack created,
//! polled until active, its services and tasks read, updated and deleted, for both deploy
//! behaviours (2.23 synchronous, 2.45 in the background). The swarm Portainer runs on is
//! formed by `docker` commands in a simulated VM, as the agent runs them.
//!
//! No third-party Python client: the one on PyPI (`portainer-py` 0.7.6) speaks Portainer
//! 1.17/1.18's API (`/api/stacks?type=…`), which 2.x no longer serves.

use phoenix_sim::cluster::{Guest, GuestKind};
use serde_json::{Value, json};
use std::process::Command;

const PORTAINER_STACK: &str = "services:\n  agent:\n    image: portainer/agent:2.23.0\n    deploy: {mode: global}\n  portainer:\n    image: portainer/portainer-ce:2.23.0\n    deploy:\n      placement:\n        constraints: [node.role == manager]\n";
const APP: &str = "services:\n  web:\n    image: nginx:${TAG:-1.27}\n    environment: {TOKEN: '${TOKEN}'}\n    deploy:\n      replicas: 2\n      placement:\n        constraints: [node.labels.app == yes]\n";
const PASSWORD: &str = "a-long-admin-password";

struct Curl {
    base: String,
}

impl Curl {
    /// `curl -k` with `args`: (status, JSON body or Null, exit code).
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[String],
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut command = Command::new("curl");
        command.args([
            "-sk",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            &format!("{}{path}", self.base),
        ]);
        for h in headers {
            command.args(["-H", h]);
        }
        if let Some(body) = body {
            command.args([
                "-H",
                "Content-Type: application/json",
                "-d",
                &body.to_string(),
            ]);
        }
        let out = command.output().expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            code.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    /// Whether the listener refuses (closes) the connection.
    fn refused(&self) -> bool {
        let out = Command::new("curl")
            .args(["-sk", &format!("{}/api/system/status", self.base)])
            .output()
            .unwrap();
        !out.status.success()
    }
}

/// Runs `argv` with the simulated VM's `docker`.
fn docker(running: &phoenix_sim::Running, vmid: u32, argv: &[&str]) -> (i32, String) {
    let mut sim = running.server.sim();
    let sim = &mut *sim;
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let (code, output, _) = phoenix_sim::docker::run(&mut sim.cluster, &mut sim.rng, vmid, &argv);
    (code, output)
}

/// Two VMs with docker, a swarm (1001 manager, 1002 worker labelled `app=yes`).
fn swarm(running: &phoenix_sim::Running) {
    {
        let mut sim = running.server.sim();
        for (vmid, name) in [(1001, "manager"), (1002, "worker")] {
            let config = [("name".to_string(), name.to_string())].into();
            let mut guest = Guest::new(vmid, "phoenix", GuestKind::Qemu, config);
            guest.running = true;
            guest
                .inside
                .services
                .insert("docker".into(), "running".into());
            guest
                .inside
                .write("/opt/portainer.yml", PORTAINER_STACK.into(), 0o644);
            sim.cluster.guests.insert(vmid, guest);
        }
    }
    assert_eq!(
        docker(
            running,
            1001,
            &["docker", "swarm", "init", "--advertise-addr", "10.0.0.11"]
        )
        .0,
        0
    );
    let (_, token) = docker(
        running,
        1001,
        &["docker", "swarm", "join-token", "-q", "worker"],
    );
    let join = [
        "docker",
        "swarm",
        "join",
        "--token",
        token.trim(),
        "10.0.0.11:2377",
    ];
    assert_eq!(docker(running, 1002, &join).0, 0);
    assert_eq!(
        docker(
            running,
            1001,
            &[
                "docker",
                "node",
                "update",
                "--label-add",
                "app=yes",
                "worker"
            ]
        )
        .0,
        0
    );
}

async fn start(version: &str) -> (phoenix_sim::Running, Curl, Curl) {
    let running = phoenix_sim::start(phoenix_sim::Options::default())
        .await
        .unwrap();
    let portainer = Curl {
        base: running.credentials.portainer_url.clone(),
    };
    let admin = Curl {
        base: running.credentials.admin_url.clone(),
    };
    let token = format!(
        "Authorization: PVEAPIToken={}={}",
        running.credentials.token_id, running.credentials.token_secret
    );
    let settings = json!({"version": version, "deployMs": 200});
    let (code, _) = admin.call(
        "PUT",
        "/portainer",
        std::slice::from_ref(&token),
        Some(&settings),
    );
    assert_eq!(code, 200);
    let (code, answer) = admin.call(
        "GET",
        "/resolve?host=portainer.example.org&port=443",
        &[token],
        None,
    );
    assert_eq!(
        (code, answer["address"].as_str()),
        (200, Some(running.portainer_addr.to_string().as_str()))
    );
    (running, portainer, admin)
}

/// The documented sequence from status to delete.
fn documented_sequence(api: &Curl, version: &str) {
    let (code, status) = api.call("GET", "/api/system/status", &[], None);
    assert_eq!((code, status["Version"].as_str()), (200, Some(version)));
    let (code, user) = api.call(
        "POST",
        "/api/users/admin/init",
        &[],
        Some(&json!({"Username": "admin", "Password": PASSWORD})),
    );
    assert_eq!(
        (code, user["Id"].as_u64(), user["Role"].as_u64()),
        (200, Some(1), Some(1))
    );
    let (code, auth) = api.call(
        "POST",
        "/api/auth",
        &[],
        Some(&json!({"username": "admin", "password": PASSWORD})),
    );
    assert_eq!(code, 200);
    let jwt = format!("Authorization: Bearer {}", auth["jwt"].as_str().unwrap());
    let (code, made) = api.call(
        "POST",
        "/api/users/1/tokens",
        std::slice::from_ref(&jwt),
        Some(&json!({"password": PASSWORD, "description": "phoenix"})),
    );
    assert_eq!(code, if version == "2.23.0" { 201 } else { 200 });
    let raw = made["rawAPIKey"].as_str().unwrap().to_owned();
    assert!(raw.starts_with("ptr_"));
    let key = vec![format!("X-API-Key: {raw}")];
    let (code, endpoints) = api.call("GET", "/api/endpoints?name=primary", &key, None);
    assert_eq!(
        (
            code,
            endpoints[0]["Name"].as_str(),
            endpoints[0]["Type"].as_u64()
        ),
        (200, Some("primary"), Some(2))
    );
    let endpoint = endpoints[0]["Id"].as_u64().unwrap();
    let (code, swarm) = api.call(
        "GET",
        &format!("/api/endpoints/{endpoint}/docker/swarm"),
        &key,
        None,
    );
    assert_eq!(code, 200);
    let swarm_id = swarm["ID"].as_str().unwrap().to_owned();
    let create = json!({"name": "App", "swarmID": swarm_id, "stackFileContent": APP, "env": [{"name": "TOKEN", "value": "t0ken-value"}]});
    let (code, stack) = api.call(
        "POST",
        &format!("/api/stacks/create/swarm/string?endpointId={endpoint}"),
        &key,
        Some(&create),
    );
    assert_eq!(
        (code, stack["Name"].as_str()),
        (200, Some("app")),
        "{stack}"
    );
    let id = stack["Id"].as_u64().unwrap();
    assert_eq!(
        stack["Status"].as_u64(),
        Some(if version == "2.23.0" { 1 } else { 3 })
    );
    let active = poll(api, &key, id, 1);
    assert_eq!(active["SwarmId"].as_str(), Some(swarm_id.as_str()));
    let filters = "filters=%7B%22label%22%3A%5B%22com.docker.stack.namespace%3Dapp%22%5D%7D";
    let (code, services) = api.call(
        "GET",
        &format!("/api/endpoints/{endpoint}/docker/services?{filters}"),
        &key,
        None,
    );
    assert_eq!(
        (code, services.as_array().map(Vec::len)),
        (200, Some(1)),
        "{services}"
    );
    assert_eq!(services[0]["Spec"]["Mode"]["Replicated"]["Replicas"], 2);
    let service_id = services[0]["ID"].as_str().unwrap();
    let (_, tasks) = api.call("GET", &format!("/api/endpoints/{endpoint}/docker/tasks?filters=%7B%22service%22%3A%5B%22{service_id}%22%5D%7D"), &key, None);
    let states: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["Status"]["State"].as_str())
        .collect();
    assert_eq!(states, ["running", "running"], "{tasks}");
    let update = json!({"stackFileContent": APP, "env": [{"name": "TOKEN", "value": "t0ken-value"}, {"name": "TAG", "value": "1.28"}], "prune": true});
    let (code, updated) = api.call(
        "PUT",
        &format!("/api/stacks/{id}?endpointId={endpoint}"),
        &key,
        Some(&update),
    );
    assert_eq!(code, 200, "{updated}");
    poll(api, &key, id, 1);
    let (_, services) = api.call(
        "GET",
        &format!("/api/endpoints/{endpoint}/docker/services?{filters}"),
        &key,
        None,
    );
    assert_eq!(
        services[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"],
        "nginx:1.28"
    );
    let (code, _) = api.call(
        "DELETE",
        &format!("/api/stacks/{id}?endpointId={endpoint}"),
        &key,
        None,
    );
    assert_eq!(code, 204);
    let (code, _) = api.call("GET", &format!("/api/stacks/{id}"), &key, None);
    assert_eq!(code, 404);
}

/// Polls `GET /api/stacks/{id}` until its Status is `want`.
fn poll(api: &Curl, key: &[String], id: u64, want: u64) -> Value {
    for _ in 0..50 {
        let (code, stack) = api.call("GET", &format!("/api/stacks/{id}"), key, None);
        assert_eq!(code, 200);
        if stack["Status"].as_u64() == Some(want) {
            return stack;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("stack {id} never reached Status {want}");
}

async fn documented(version: &str) {
    let (running, api, admin) = start(version).await;
    assert!(api.refused(), "no Portainer before its service runs");
    swarm(&running);
    assert!(api.refused(), "still none: only the swarm");
    let (code, out) = docker(
        &running,
        1001,
        &[
            "docker",
            "stack",
            "deploy",
            "-c",
            "/opt/portainer.yml",
            "--with-registry-auth",
            "portainer",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Creating service portainer_portainer"),
        "{out}"
    );
    assert!(!api.refused(), "Portainer serves once its task runs");
    let version = version.to_owned();
    let api = tokio::task::spawn_blocking(move || {
        documented_sequence(&api, &version);
        api
    })
    .await
    .unwrap();
    let token = format!(
        "Authorization: PVEAPIToken={}={}",
        running.credentials.token_id, running.credentials.token_secret
    );
    let (_, oplog) = admin.call("GET", "/portainer/oplog", &[token], None);
    let text = oplog.to_string();
    for secret in [PASSWORD, "t0ken-value", "ptr_"] {
        assert!(!text.contains(secret), "{secret} in the oplog: {text}");
    }
    assert!(
        oplog
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["path"] == "/api/stacks/create/swarm/string" && o["mutating"] == true)
    );
    assert_eq!(
        docker(&running, 1001, &["docker", "stack", "rm", "portainer"]).0,
        0
    );
    assert!(api.refused(), "Portainer gone with its stack");
    running.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_curl_sequence_works_on_2_23_synchronous() {
    documented("2.23.0").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_curl_sequence_works_on_2_45_background() {
    documented("2.45.0").await;
}
