//! DockerStack end to end on `phoenix up --simulate`: Portainer deployed on the swarm
//! through the manager's agent, taken over (admin, API key, `primary`), the application
//! stack deployed through Portainer's API onto the worker its constraint names; updates
//! in place, stillness at steady state, drift undone, deletion, bad input, and restarts
//! in the middle of it all. The simulated Portainer's own API and log are the witnesses.

mod support;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use phoenix_crds::DockerStack;
use serde_json::{Value, json};
use std::time::Duration;
use support::{ApiServer, SimAdmin};

const MINUTES: Duration = Duration::from_secs(300);

fn examples() -> &'static str {
    Box::leak(format!("{}/examples", env!("CARGO_MANIFEST_DIR")).into_boxed_str())
}

fn up(dir: &std::path::Path, log: &std::path::Path) -> ApiServer {
    let args = [
        "--apply",
        examples(),
        "--resync-seconds",
        "1",
        "--task-duration",
        "default=0.2",
    ];
    ApiServer::up_simulated_logged(dir, &args, log)
}

fn ready(s: &DockerStack) -> bool {
    support::is_ready(
        &s.status
            .as_ref()
            .map(|s| s.common.conditions.clone())
            .unwrap_or_default(),
    )
}

fn reason(s: &DockerStack) -> String {
    support::ready_reason(
        &s.status
            .as_ref()
            .map(|s| s.common.conditions.clone())
            .unwrap_or_default(),
    )
}

/// `phoenix up --simulate` with the examples, once both example stacks are Ready.
struct Platform {
    dir: tempfile::TempDir,
    log: std::path::PathBuf,
    server: ApiServer,
    client: kube::Client,
    api: Api<DockerStack>,
}

async fn examples_ready() -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("phoenix.log");
    let server = up(dir.path(), &log);
    let client = support::client(&server).await;
    let api: Api<DockerStack> = Api::namespaced(client.clone(), "default");
    both_ready(&api, "both example stacks Ready").await;
    Platform {
        dir,
        log,
        server,
        client,
        api,
    }
}

async fn both_ready(api: &Api<DockerStack>, what: &str) {
    support::wait_for(api, what, MINUTES, |all| {
        all.len() >= 2
            && ["portainer", "qdrant"].iter().all(|n| {
                all.iter()
                    .any(|s| s.metadata.name.as_deref() == Some(n) && ready(s))
            })
    })
    .await;
}

/// Portainer as a client reaches it: the simulator's resolver names its listener, the key
/// is the one Phoenix wrote into the Secret.
struct Portainer {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Portainer {
    async fn of(server: &ApiServer, client: &kube::Client) -> Self {
        let sim = SimAdmin::of(server);
        let answer = sim
            .get("resolve?host=portainer.internal.thinkheads.ai&port=443")
            .await;
        let address = answer["address"]
            .as_str()
            .expect("the resolver names Portainer");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
        let secret = secrets.get("portainer-api-key").await.unwrap();
        let key = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
        Self {
            // Loopback only, to a simulator whose certificate this test does not pin.
            http: reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap(),
            base: format!("https://{address}/api"),
            key,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-API-Key", &self.key)
            .send()
            .await
            .expect("Portainer answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn stacks_named(&self, name: &str) -> Vec<Value> {
        let all = self.get("/stacks").await;
        all.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Name"] == name)
            .cloned()
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_stacks_run_through_portainer_update_in_place_and_come_back() {
    let Platform {
        dir: _dir,
        log,
        server,
        client,
        api,
    } = examples_ready().await;

    // Taken over: an admin Secret Phoenix owns, an API key Portainer takes.
    let portainer = Portainer::of(&server, &client).await;
    assert!(
        portainer.key.starts_with("ptr_"),
        "an API key in the Secret"
    );
    let status = api.get("portainer").await.unwrap().status.unwrap();
    let bootstrapped = status.portainer.expect("the bootstrap in status");
    assert_eq!(bootstrapped.admin_secret, "portainer-portainer-admin");
    let primary = bootstrapped.endpoint_id.expect("the primary environment");

    // qdrant runs on the worker (drphoenix), as its constraint says.
    let tasks = portainer
        .get(&format!("/endpoints/{primary}/docker/tasks"))
        .await;
    let nodes = portainer
        .get(&format!("/endpoints/{primary}/docker/nodes"))
        .await;
    let services = portainer
        .get(&format!("/endpoints/{primary}/docker/services"))
        .await;
    let qdrant = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Spec"]["Name"] == "qdrant_qdrant")
        .expect("the qdrant service");
    let hosts: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["ServiceID"] == qdrant["ID"] && t["Status"]["State"] == "running")
        .filter_map(|t| {
            nodes
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["ID"] == t["NodeID"])?["Description"]["Hostname"]
                .as_str()
        })
        .collect();
    assert_eq!(hosts, ["drphoenix"]);
    let listed = support::kubectl(&server, &["get", "stacks"]);
    assert!(
        listed.contains("qdrant") && listed.contains("1/1"),
        "{listed}"
    );

    // Steady state: nothing written to Portainer over three resync rounds.
    let sim = SimAdmin::of(&server);
    support::resync_rounds(&server, "DockerStack", 2, 1).await;
    let before = sim.mutating_in("portainer/oplog").await.len();
    support::resync_rounds(&server, "DockerStack", 2, 3).await;
    let writes = sim.mutating_in("portainer/oplog").await;
    assert_eq!(writes.len(), before, "writes at steady state: {writes:#?}");

    // An edit of the inline compose updates the same stack to a new revision.
    let qdrant_stack = portainer.stacks_named("qdrant").await;
    let id = qdrant_stack[0]["Id"].clone();
    let old = api
        .get("qdrant")
        .await
        .unwrap()
        .status
        .unwrap()
        .deployed_revision;
    let mut object = api.get("qdrant").await.unwrap();
    let inline = object.spec.compose.inline.take().unwrap();
    let edited = inline.replace(
        "QDRANT__SERVICE__API_KEY",
        "QDRANT__LOG_LEVEL: INFO\n      QDRANT__SERVICE__API_KEY",
    );
    assert_ne!(edited, inline);
    let patch = json!({"spec": {"compose": {"inline": edited}}});
    api.patch("qdrant", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    support::wait_for(&api, "qdrant updated", MINUTES, |all| {
        all.iter().any(|s| {
            s.metadata.name.as_deref() == Some("qdrant")
                && ready(s)
                && s.status.as_ref().is_some_and(|st| {
                    st.deployed_revision != old
                        && st.common.observed_generation == s.metadata.generation
                })
        })
    })
    .await;
    let updated = portainer.stacks_named("qdrant").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["Id"], id, "updated in place");
    let file = portainer.get(&format!("/stacks/{id}/file")).await;
    assert!(
        file["StackFileContent"]
            .as_str()
            .unwrap()
            .contains("QDRANT__LOG_LEVEL")
    );

    // Removed by hand in Portainer: deployed again.
    let endpoint = updated[0]["EndpointId"].clone();
    let (code, body) = portainer
        .call(
            reqwest::Method::DELETE,
            &format!("/stacks/{id}?endpointId={endpoint}"),
        )
        .await;
    assert_eq!(code, 204, "{body}");
    support::wait_for(
        &api,
        "qdrant back after its removal by hand",
        MINUTES,
        |all| {
            all.iter().any(|s| {
                s.metadata.name.as_deref() == Some("qdrant")
                    && ready(s)
                    && s.status
                        .as_ref()
                        .is_some_and(|st| st.stack_id.map(Value::from) != Some(id.clone()))
            })
        },
    )
    .await;
    assert_eq!(portainer.stacks_named("qdrant").await.len(), 1);
    let events = support::kubectl(
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=qdrant",
        ],
    );
    assert!(events.contains("Deployed"), "{events}");

    // Deleted under deletionPolicy Retain: the stack keeps running in Portainer.
    let retain = json!({"spec": {"deletionPolicy": "Retain"}});
    api.patch("qdrant", &PatchParams::default(), &Patch::Merge(&retain))
        .await
        .unwrap();
    api.delete("qdrant", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for(&api, "qdrant gone", MINUTES, |all| {
        all.iter()
            .all(|s| s.metadata.name.as_deref() != Some("qdrant"))
    })
    .await;
    assert_eq!(portainer.stacks_named("qdrant").await.len(), 1, "retained");

    // No secret in Phoenix's log, its events, or the simulator's log.
    let admin: Api<Secret> = Api::namespaced(client.clone(), "default");
    let admin = admin.get("portainer-portainer-admin").await.unwrap();
    let password = String::from_utf8(admin.data.unwrap()["password"].0.clone()).unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    let all_events = support::kubectl(&server, &["get", "events", "-A", "-o", "yaml"]);
    let oplog = sim.get("portainer/oplog").await.to_string();
    for secret in [password.as_str(), portainer.key.as_str()] {
        for (place, text) in [
            ("log", &logged),
            ("events", &all_events),
            ("simulator log", &oplog),
        ] {
            assert!(!text.contains(secret), "a secret in the {place}");
        }
    }
}

/// Stacks the controller must refuse: a condition naming the problem, no Portainer write.
#[tokio::test(flavor = "multi_thread")]
async fn bad_stacks_get_a_condition_and_portainer_is_not_touched() {
    // The data directory lives as long as the test (`_dir`).
    let Platform {
        dir: _dir,
        server,
        api,
        ..
    } = examples_ready().await;
    let sim = SimAdmin::of(&server);
    let writes = sim.mutating_in("portainer/oplog").await.len();
    let stack = |name: &str, compose: &str, extra: &str| {
        format!(
            "apiVersion: phoenix.thinkheads.ai/v1alpha1\nkind: DockerStack\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  target:\n    managerRef: {{name: portainer}}\n    portainer:\n      url: https://portainer.internal.thinkheads.ai\n      apiKeySecretRef: {{name: portainer-api-key, key: token}}\n{extra}  compose:\n    inline: |\n{}\n---\n",
            compose
                .lines()
                .map(|l| format!("      {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    let bad = [
        (
            "not-yaml",
            stack("not-yaml", "services: [", ""),
            "InvalidCompose",
            "not valid YAML",
        ),
        (
            "no-image",
            stack("no-image", "services:\n  web:\n    build: .", ""),
            "InvalidCompose",
            "services.web.image",
        ),
        (
            "unknown-key",
            stack("unknown-key", "servics:\n  web: {image: nginx}", ""),
            "InvalidCompose",
            "unknown top-level key",
        ),
        (
            "no-secret",
            stack(
                "no-secret",
                "services:\n  web: {image: nginx}",
                "  env:\n  - name: A\n    secretKeyRef: {name: absent, key: k}\n",
            ),
            "CredentialsMissing",
            "default/absent",
        ),
        (
            "no-endpoint",
            stack("no-endpoint", "services:\n  web: {image: nginx}", "").replace(
                "      apiKeySecretRef",
                "      endpoint: nowhere\n      apiKeySecretRef",
            ),
            "EndpointNotFound",
            "nowhere",
        ),
    ];
    let yaml: String = bad.iter().map(|(_, y, _, _)| y.as_str()).collect();
    support::kubectl_apply(&server, &yaml);
    support::wait_for(&api, "every bad stack with its reason", MINUTES, |all| {
        bad.iter().all(|(name, _, why, _)| {
            all.iter()
                .any(|s| s.metadata.name.as_deref() == Some(name) && reason(s) == *why)
        })
    })
    .await;
    for (name, _, _, words) in &bad {
        let s = api.get(name).await.unwrap();
        let conditions = s.status.unwrap().common.conditions;
        let message = &conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .message;
        assert!(message.contains(words), "{name}: {message}");
    }
    assert_eq!(
        sim.mutating_in("portainer/oplog").await.len(),
        writes,
        "bad stacks wrote to Portainer"
    );

    // What only Docker or Portainer can tell: an image no registry has (tasks rejected,
    // Docker's error in the condition) and a deploy Portainer fails (its message).
    let faults = json!({"missingImages": ["nginx:0-missing"], "failDeploy": ["deploy-fails"]});
    sim.put("portainer", faults).await;
    let yaml = stack(
        "pull-fails",
        "services:\n  web: {image: 'nginx:0-missing'}",
        "",
    ) + &stack("deploy-fails", "services:\n  web: {image: nginx}", "");
    support::kubectl_apply(&server, &yaml);
    support::wait_for(&api, "the failures in conditions", MINUTES, |all| {
        let said = |name: &str, why: &str, words: &str| {
            all.iter().any(|s| {
                s.metadata.name.as_deref() == Some(name)
                    && s.status.as_ref().is_some_and(|st| {
                        st.common.conditions.iter().any(|c| {
                            c.type_ == "Ready"
                                && c.status == "False"
                                && c.reason == why
                                && c.message.contains(words)
                        })
                    })
            })
        };
        said(
            "pull-fails",
            "TasksNotRunning",
            "No such image: nginx:0-missing",
        ) && said("deploy-fails", "DeployFailed", "deploy")
    })
    .await;

    // A stack never deployed (its key's Secret does not exist) is deleted at once: its
    // deletion does not wait for a key that may never come.
    let keyless = stack("keyless", "services:\n  web: {image: nginx}", "")
        .replace("name: portainer-api-key", "name: no-such-key");
    support::kubectl_apply(&server, &keyless);
    support::wait_for(&api, "keyless waiting for its key", MINUTES, |all| {
        all.iter().any(|s| {
            s.metadata.name.as_deref() == Some("keyless") && reason(s) == "CredentialsMissing"
        })
    })
    .await;
    api.delete("keyless", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for(&api, "keyless gone", MINUTES, |all| {
        all.iter()
            .all(|s| s.metadata.name.as_deref() != Some("keyless"))
    })
    .await;
}

/// SIGKILL while Portainer is being taken over and stacks deployed: one admin, one valid
/// key in the Secret, one stack per object.
#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_bootstrap_and_mid_deploy_nothing_is_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("phoenix.log");
    let mut server = up(dir.path(), &log);
    // Slow Portainer calls and deploys widen the windows; the moments are watched for.
    let slow = json!({"latencyMs": [200, 400], "deployMs": 3000});
    SimAdmin::of(&server).put("portainer", slow).await;
    // Mid-bootstrap: the admin's Secret is written, the API key not yet.
    let client = support::client(&server).await;
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    support::wait_for(&secrets, "the admin's Secret", MINUTES, |all| {
        all.iter()
            .any(|s| s.metadata.name.as_deref() == Some("portainer-portainer-admin"))
    })
    .await;
    server.kill();
    server = up(dir.path(), &log);
    // Mid-deploy: qdrant's stack created in Portainer, its deploy running.
    let client = support::client(&server).await;
    let api: Api<DockerStack> = Api::namespaced(client, "default");
    support::wait_for(&api, "qdrant deploying", MINUTES, |all| {
        all.iter()
            .any(|s| s.metadata.name.as_deref() == Some("qdrant") && reason(s) == "Deploying")
    })
    .await;
    server.kill();
    server = up(dir.path(), &log);
    let client = support::client(&server).await;
    let api: Api<DockerStack> = Api::namespaced(client.clone(), "default");
    both_ready(&api, "both stacks Ready after the restarts").await;
    let portainer = Portainer::of(&server, &client).await;
    let user = portainer.get("/users/me").await;
    let id = user["Id"].as_i64().unwrap();
    let sim = SimAdmin::of(&server);
    let state = sim.get("portainer/state").await;
    assert_eq!(
        state["users"].as_array().map(Vec::len),
        Some(1),
        "one admin: {state}"
    );
    let keys = state["apiKeys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 1, "one API key: {keys:?} (user {id})");
    assert_eq!(portainer.stacks_named("qdrant").await.len(), 1);
}

/// A git stack: cloned by Portainer (the real `git`) from a repository served on loopback
/// by `git http-backend` behind credentials; a new commit on the ref is deployed.
#[tokio::test(flavor = "multi_thread")]
async fn a_git_stack_follows_its_branch() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("phoenix.log");
    let server = up(dir.path(), &log);
    let repo = support::git_http::GitServer::start(dir.path(), "deploy", "s3cr3t-git-pw").await;
    let first = repo.commit(
        "docker-compose.yml",
        "services:\n  web:\n    image: nginx:1.27\n",
    );
    let client = support::client(&server).await;
    let api: Api<DockerStack> = Api::namespaced(client.clone(), "default");
    both_ready(&api, "both example stacks Ready").await;
    support::kubectl_apply(
        &server,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: git-creds, namespace: default}}\nstringData: {{username: deploy, password: s3cr3t-git-pw}}\n---\n\
             apiVersion: phoenix.thinkheads.ai/v1alpha1\nkind: DockerStack\nmetadata: {{name: web, namespace: default}}\nspec:\n  target:\n    managerRef: {{name: portainer}}\n    portainer:\n      url: https://portainer.internal.thinkheads.ai\n      apiKeySecretRef: {{name: portainer-api-key, key: token}}\n  compose:\n    git:\n      repository: {}\n      ref: main\n      credentialsSecretRef: {{name: git-creds}}\n",
            repo.url
        ),
    );
    let portainer = Portainer::of(&server, &client).await;
    support::wait_for(&api, "the git stack Ready", MINUTES, |all| {
        all.iter()
            .any(|s| s.metadata.name.as_deref() == Some("web") && ready(s))
    })
    .await;
    let stack = portainer.stacks_named("web").await;
    assert_eq!(stack[0]["GitConfig"]["ConfigHash"], first.as_str());
    let id = stack[0]["Id"].clone();

    let second = repo.commit(
        "docker-compose.yml",
        "services:\n  web:\n    image: nginx:1.27\n  cache:\n    image: redis:7\n",
    );
    let revision = api
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .deployed_revision;
    support::wait_for(&api, "the new commit deployed", MINUTES, |all| {
        all.iter().any(|s| {
            s.metadata.name.as_deref() == Some("web")
                && ready(s)
                && s.status
                    .as_ref()
                    .is_some_and(|st| st.deployed_revision != revision)
        })
    })
    .await;
    let stack = portainer.stacks_named("web").await;
    assert_eq!(stack.len(), 1);
    assert_eq!(stack[0]["Id"], id, "redeployed in place");
    assert_eq!(stack[0]["GitConfig"]["ConfigHash"], second.as_str());
    let web = api.get("web").await.unwrap().status.unwrap();
    assert_eq!(web.services.as_deref(), Some("2/2"));
    let logged = std::fs::read_to_string(&log).unwrap();
    let oplog = SimAdmin::of(&server)
        .get("portainer/oplog")
        .await
        .to_string();
    assert!(!logged.contains("s3cr3t-git-pw") && !oplog.contains("s3cr3t-git-pw"));

    // Deleted (deletionPolicy Delete by default): the stack leaves Portainer.
    api.delete("web", &DeleteParams::default()).await.unwrap();
    support::wait_for(&api, "web gone", MINUTES, |all| {
        all.iter()
            .all(|s| s.metadata.name.as_deref() != Some("web"))
    })
    .await;
    assert!(portainer.stacks_named("web").await.is_empty());
}
