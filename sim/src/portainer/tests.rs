//! The API's state machine driven without a network: admin init, JWT-only keys, the two
//! deploy behaviours, 409 while deploying, the admin-init timeout and the rate limit.

use super::api::route;
use super::http::{Reply, Request};
use crate::cluster::Cluster;
use crate::server::{Credentials, Server};
use crate::state::Sim;
use rand::SeedableRng;
use serde_json::{Value, json};

const PASSWORD: &str = "correct-horse-battery";
const FILE: &str =
    "services:\n  web:\n    image: nginx:${TAG:-1.27}\n    environment: {TOKEN: '${TOKEN}'}\n";

/// A simulator whose swarm runs Portainer, with `version`.
fn server(version: &str) -> Server {
    let mut cluster = Cluster::new(1);
    let node = crate::swarm::SwarmNode {
        id: "node1".into(),
        hostname: "mgr".into(),
        role: "manager".into(),
        status: "ready".into(),
        ..Default::default()
    };
    let mut swarm = crate::swarm::Swarm {
        nodes: vec![node],
        ..Default::default()
    };
    let specs = crate::compose::parse(
        "services:\n  portainer: {image: 'portainer/portainer-ce:2.23.0'}\n",
        &Default::default(),
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    crate::stack::deploy(&mut swarm, &mut rng, "portainer", &specs, false, &[]);
    cluster.swarms.insert("swarm1".into(), swarm);
    cluster.portainer.settings.version = version.into();
    cluster.portainer.settings.deploy_ms = 0;
    super::observe(&mut cluster);
    let creds = Credentials {
        user: "root@pam".into(),
        password: "x".into(),
        token_id: "t".into(),
        token_secret: "s".into(),
    };
    Server::new(Sim::new(cluster, 1, Default::default(), None), creds)
}

async fn call(
    server: &Server,
    method: &str,
    target: &str,
    body: Value,
    auth: &[(&str, &str)],
) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let header = |name: &str| {
        auth.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let request = Request {
        method: method.into(),
        path: path.into(),
        query: form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        bearer: header("jwt"),
        api_key: header("key"),
        body,
        ip: "127.0.0.1".parse().unwrap(),
    };
    route(server, &request).await
}

/// Admin init and login: the JWT.
async fn admin(server: &Server) -> String {
    let init = call(
        server,
        "POST",
        "/api/users/admin/init",
        json!({"Username": "admin", "Password": PASSWORD}),
        &[],
    )
    .await;
    assert_eq!(init.status, 200);
    let auth = call(
        server,
        "POST",
        "/api/auth",
        json!({"username": "admin", "password": PASSWORD}),
        &[],
    )
    .await;
    assert_eq!(auth.status, 200);
    auth.body.unwrap()["jwt"].as_str().unwrap().to_owned()
}

fn create_body(name: &str) -> Value {
    json!({"name": name, "swarmID": "swarm1", "stackFileContent": FILE, "env": [{"name": "TOKEN", "value": "s3cret"}]})
}

#[tokio::test]
async fn admin_init_validates_once_and_primary_appears_after_it() {
    let s = server("2.45.0");
    assert_eq!(
        call(&s, "GET", "/api/users/admin/check", Value::Null, &[])
            .await
            .status,
        404
    );
    assert_eq!(
        call(&s, "GET", "/api/system/status", Value::Null, &[])
            .await
            .body
            .unwrap()["Version"],
        "2.45.0"
    );
    let short = call(
        &s,
        "POST",
        "/api/users/admin/init",
        json!({"username": "admin", "password": "short"}),
        &[],
    )
    .await;
    assert_eq!(short.status, 400);
    let spaced = call(
        &s,
        "POST",
        "/api/users/admin/init",
        json!({"username": "ad min", "password": PASSWORD}),
        &[],
    )
    .await;
    assert_eq!(spaced.status, 400);
    assert!(s.sim().cluster.portainer.endpoints.is_empty());
    let jwt = admin(&s).await;
    let again = call(
        &s,
        "POST",
        "/api/users/admin/init",
        json!({"username": "admin", "password": PASSWORD}),
        &[],
    )
    .await;
    assert_eq!(again.status, 409);
    assert_eq!(
        call(&s, "GET", "/api/users/admin/check", Value::Null, &[])
            .await
            .status,
        204
    );
    let bad = call(
        &s,
        "POST",
        "/api/auth",
        json!({"username": "admin", "password": "wrong-password!"}),
        &[],
    )
    .await;
    assert_eq!(bad.status, 422);
    let list = call(
        &s,
        "GET",
        "/api/endpoints?name=primary",
        Value::Null,
        &[("jwt", &jwt)],
    )
    .await;
    assert_eq!(list.body.unwrap()[0]["Type"], 2);
    assert_eq!(list.headers, vec![("X-Total-Count", "1".to_string())]);
    assert_eq!(
        call(&s, "GET", "/api/endpoints", Value::Null, &[])
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn keys_are_made_with_a_jwt_only_for_oneself_and_answer_201_or_200_by_version() {
    for (version, code) in [("2.23.0", 201), ("2.45.0", 200)] {
        let s = server(version);
        let jwt = admin(&s).await;
        let body = json!({"password": PASSWORD, "description": "ci"});
        let made = call(
            &s,
            "POST",
            "/api/users/1/tokens",
            body.clone(),
            &[("jwt", &jwt)],
        )
        .await;
        assert_eq!(made.status, code);
        let made = made.body.unwrap();
        let raw = made["rawAPIKey"].as_str().unwrap();
        assert!(raw.starts_with("ptr_") && made["apiKey"]["prefix"] == raw[..7]);
        let by_key = call(
            &s,
            "POST",
            "/api/users/1/tokens",
            body.clone(),
            &[("key", raw)],
        )
        .await;
        assert_eq!(
            (by_key.status, by_key.body.unwrap()["message"].clone()),
            (401, json!("Auth not supported"))
        );
        assert_eq!(
            call(&s, "POST", "/api/users/2/tokens", body, &[("jwt", &jwt)])
                .await
                .status,
            403
        );
        let wrong = json!({"password": "not-the-password", "description": "ci"});
        assert_eq!(
            call(&s, "POST", "/api/users/1/tokens", wrong, &[("jwt", &jwt)])
                .await
                .status,
            403
        );
        assert_eq!(
            call(&s, "GET", "/api/users/me", Value::Null, &[("key", raw)])
                .await
                .status,
            200
        );
        let bad = call(
            &s,
            "GET",
            "/api/users/me",
            Value::Null,
            &[("key", "ptr_nope")],
        )
        .await;
        assert_eq!(
            (bad.status, bad.body.unwrap()["message"].clone()),
            (401, json!("Unauthorized"))
        );
        let debug = format!("{:?}", s.sim().cluster.portainer);
        assert!(!debug.contains(raw) && !debug.contains(PASSWORD), "{debug}");
    }
}

#[tokio::test]
async fn background_deploys_report_3_then_1_and_refuse_updates_meanwhile() {
    let s = server("2.45.0");
    s.sim().cluster.portainer.settings.deploy_ms = 60_000;
    let jwt = admin(&s).await;
    let auth = [("jwt", jwt.as_str())];
    let made = call(
        &s,
        "POST",
        "/api/stacks/create/swarm/string?endpointId=1",
        create_body("My App!"),
        &auth,
    )
    .await;
    let stack = made.body.unwrap();
    assert_eq!(
        (stack["Name"].clone(), stack["Status"].clone()),
        (json!("myapp"), json!(3))
    );
    let update = json!({"stackFileContent": FILE, "env": [], "prune": true});
    let busy = call(
        &s,
        "PUT",
        "/api/stacks/1?endpointId=1",
        update.clone(),
        &auth,
    )
    .await;
    assert_eq!(busy.status, 409);
    assert_eq!(
        busy.body.unwrap()["details"],
        "Stack deployment is already in progress"
    );
    assert_eq!(
        call(
            &s,
            "POST",
            "/api/stacks/1/stop?endpointId=1",
            Value::Null,
            &auth
        )
        .await
        .status,
        409
    );
    s.sim().cluster.portainer.stacks.get_mut(&1).unwrap().due_ms = Some(0);
    let done = call(&s, "GET", "/api/stacks/1", Value::Null, &auth)
        .await
        .body
        .unwrap();
    assert_eq!(
        (done["Status"].clone(), done["Env"][0]["value"].clone()),
        (json!(1), json!("s3cret"))
    );
    assert_eq!(
        s.sim().cluster.swarms["swarm1"].services["myapp_web"].image,
        "nginx:1.27"
    );
    let dup = call(
        &s,
        "POST",
        "/api/stacks/create/swarm/string?endpointId=1",
        create_body("myapp"),
        &auth,
    )
    .await;
    assert_eq!(dup.status, 409);
    let outside = call(
        &s,
        "POST",
        "/api/stacks/create/swarm/string?endpointId=1",
        create_body("portainer"),
        &auth,
    )
    .await;
    assert_eq!(
        outside.body.unwrap()["message"],
        "A stack with the normalized name 'portainer' already exists"
    );
}

#[tokio::test]
async fn failed_deploys_are_status_4_in_background_and_500_when_synchronous() {
    let s = server("2.45.0");
    s.sim().cluster.portainer.settings.fail_deploy = vec!["bad".into()];
    let jwt = admin(&s).await;
    let auth = [("jwt", jwt.as_str())];
    call(
        &s,
        "POST",
        "/api/stacks/create/swarm/string?endpointId=1",
        create_body("bad"),
        &auth,
    )
    .await;
    let failed = call(&s, "GET", "/api/stacks/1", Value::Null, &auth)
        .await
        .body
        .unwrap();
    assert_eq!(failed["Status"], 4);
    assert!(
        failed["DeploymentStatus"][1]["Message"]
            .as_str()
            .unwrap()
            .contains("failed to deploy a stack")
    );
    let s = server("2.23.0");
    let jwt = admin(&s).await;
    let auth = [("jwt", jwt.as_str())];
    let body =
        json!({"name": "web", "swarmID": "swarm1", "stackFileContent": "services:\n  web: {}\n"});
    let refused = call(
        &s,
        "POST",
        "/api/stacks/create/swarm/string?endpointId=1",
        body,
        &auth,
    )
    .await;
    assert_eq!(refused.status, 500);
    assert!(
        refused.body.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("image reference must be provided")
    );
    let made = call(
        &s,
        "POST",
        "/api/stacks/create/swarm/string?endpointId=1",
        create_body("web"),
        &auth,
    )
    .await;
    assert_eq!(made.body.unwrap()["Status"], 1);
    assert_eq!(
        call(&s, "DELETE", "/api/stacks/1", Value::Null, &auth)
            .await
            .status,
        400
    );
    assert_eq!(
        call(
            &s,
            "DELETE",
            "/api/stacks/1?endpointId=1",
            Value::Null,
            &auth
        )
        .await
        .status,
        204
    );
    assert!(!s.sim().cluster.swarms["swarm1"].has_stack("web"));
    // Ids come from a sequence: a deleted stack's id is not handed out again.
    let again = call(
        &s,
        "POST",
        "/api/stacks/create/swarm/string?endpointId=1",
        create_body("web"),
        &auth,
    )
    .await;
    assert_eq!(again.body.unwrap()["Id"], 2);
}

#[tokio::test]
async fn after_the_admin_init_timeout_every_call_is_303_until_a_restart() {
    let s = server("2.45.0");
    s.sim().cluster.portainer.started_ms = Some(0);
    let late = call(&s, "GET", "/api/system/status", Value::Null, &[]).await;
    assert_eq!(late.status, 303);
    assert_eq!(
        late.headers,
        vec![("redirect-reason", "AdminInitTimeout".to_string())]
    );
    assert_eq!(
        late.body.unwrap()["message"],
        "Administrator initialization timeout"
    );
    s.sim().cluster.portainer.restart();
    assert_eq!(
        call(&s, "GET", "/api/users/admin/check", Value::Null, &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn more_than_ten_auth_calls_a_second_ban_the_ip_for_an_hour() {
    let s = server("2.45.0");
    let body = json!({"username": "admin", "password": "whatever-it-is"});
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(
            call(&s, "POST", "/api/auth", body.clone(), &[])
                .await
                .status,
        );
    }
    assert_eq!(codes[..10], [422; 10]);
    assert_eq!(codes[10..], [403, 403]);
    s.portainer.unban();
    assert_eq!(call(&s, "POST", "/api/auth", body, &[]).await.status, 422);
}

/// A repository with `docker-compose.yml` holding `file`, on a branch `main`; its HEAD.
fn repository(dir: &std::path::Path, file: &str) -> String {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    if !dir.join(".git").exists() {
        std::fs::create_dir_all(dir).unwrap();
        git(&["init", "-q", "-b", "main"]);
    }
    std::fs::write(dir.join("docker-compose.yml"), file).unwrap();
    git(&["add", "."]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "-m",
        "c",
    ]);
    git(&["rev-parse", "HEAD"])
}

#[tokio::test]
async fn git_stacks_clone_with_the_real_git_record_the_commit_and_redeploy() {
    let dir = std::env::temp_dir().join(format!(
        "portainer-sim-repo-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let first = repository(&dir, "services:\n  web: {image: nginx:1.27}\n");
    let s = server("2.23.0");
    let jwt = admin(&s).await;
    let auth = [("jwt", jwt.as_str())];
    let url = format!("file://{}", dir.display());
    let body = json!({"name": "site", "swarmID": "swarm1", "repositoryURL": url, "repositoryReferenceName": "refs/heads/main",
        "composeFile": "docker-compose.yml", "repositoryAuthentication": true, "repositoryUsername": "u", "repositoryPassword": "git-pw-123"});
    let made = call(
        &s,
        "POST",
        "/api/stacks/create/swarm/repository?endpointId=1",
        body,
        &auth,
    )
    .await
    .body
    .unwrap();
    assert_eq!(made["GitConfig"]["ConfigHash"], first.as_str(), "{made}");
    assert_eq!(made["GitConfig"]["Authentication"]["Password"], "");
    let second = repository(&dir, "services:\n  web: {image: nginx:1.28}\n");
    let redeployed = call(
        &s,
        "PUT",
        "/api/stacks/1/git/redeploy?endpointId=1",
        json!({}),
        &auth,
    )
    .await
    .body
    .unwrap();
    assert_eq!(redeployed["GitConfig"]["ConfigHash"], second.as_str());
    assert_eq!(
        s.sim().cluster.swarms["swarm1"].services["site_web"].image,
        "nginx:1.28"
    );
    let detached = call(
        &s,
        "PUT",
        "/api/stacks/1?endpointId=1",
        json!({"stackFileContent": "services:\n  web: {image: x}\n"}),
        &auth,
    )
    .await;
    assert_eq!(detached.body.unwrap()["GitConfig"], Value::Null);
    let missing = json!({"name": "other", "swarmID": "swarm1", "repositoryURL": format!("{url}-nope"), "repositoryPassword": "git-pw-123", "repositoryAuthentication": true});
    let failed = call(
        &s,
        "POST",
        "/api/stacks/create/swarm/repository?endpointId=1",
        missing,
        &auth,
    )
    .await;
    assert_eq!(failed.status, 500);
    assert!(!failed.body.unwrap().to_string().contains("git-pw-123"));
    let escape = json!({"name": "x", "swarmID": "swarm1", "repositoryURL": url, "composeFile": "../etc/passwd"});
    assert_eq!(
        call(
            &s,
            "POST",
            "/api/stacks/create/swarm/repository?endpointId=1",
            escape,
            &auth
        )
        .await
        .status,
        400
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
