//! Portainer's swarm stacks: inline and git-backed creation, update, git redeploy,
//! start/stop and delete; deploys run synchronously (2.23: a failure is the call's 500) or
//! in the background (newer: Status 3, then 1 or 4 once `deployMs` passed, finished
//! lazily by the next request so tests are deterministic).

use super::http::{Caller, Reply, Request, no_endpoint};
use super::state::{Git, Pair, Secret, Stack, deployment_status, observe, stack_json};
use crate::cluster::{Cluster, now_ms, now_s};
use crate::server::Server;
use crate::state::Sim;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const ACTIVE: u8 = 1;
const INACTIVE: u8 = 2;
const DEPLOYING: u8 = 3;
const ERROR: u8 = 4;

fn busy() -> Reply {
    Reply::error(
        409,
        "Unable to update stack",
        "Stack deployment is already in progress",
    )
}

fn not_found() -> Reply {
    Reply::error(
        404,
        "Unable to find a stack with the specified identifier inside the database",
        "Object not found inside the database",
    )
}

/// Portainer's stack names: lower-case, only `[-_a-z0-9]`.
pub fn normalize(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect()
}

/// Runs `docker stack deploy` of `stack` on its swarm; the error is Docker's text.
pub fn apply(
    cluster: &mut Cluster,
    rng: &mut rand::rngs::StdRng,
    stack: &Stack,
) -> Result<(), String> {
    let settings = &cluster.portainer.settings;
    if settings.fail_deploy.contains(&stack.name) {
        return Err(format!(
            "failed to deploy a stack: Error response from daemon: rpc error: code = Unknown desc = simulated deploy failure of stack {}",
            stack.name
        ));
    }
    let env: BTreeMap<String, String> = stack
        .env
        .iter()
        .map(|p| (p.name.clone(), p.value.0.clone()))
        .collect();
    let specs = crate::compose::parse(&stack.file, &env)
        .map_err(|e| format!("failed to deploy a stack: {e}"))?;
    let missing = settings.missing_images.clone();
    let swarm = cluster.swarms.get_mut(&stack.swarm_id).ok_or_else(|| {
        "failed to deploy a stack: Error response from daemon: This node is not a swarm manager.".to_owned()
    })?;
    if stack.undeploy_first {
        crate::stack::remove(swarm, &stack.name);
    }
    crate::stack::deploy(swarm, rng, &stack.name, &specs, stack.prune, &missing);
    observe(cluster);
    Ok(())
}

/// Ends the background deploys whose time has come.
pub fn finish_due(sim: &mut Sim) {
    let now = now_ms();
    let due: Vec<u32> = sim
        .cluster
        .portainer
        .stacks
        .values()
        .filter(|s| s.status == DEPLOYING && s.due_ms.is_some_and(|d| d <= now))
        .map(|s| s.id)
        .collect();
    for id in due {
        let Some(stack) = sim.cluster.portainer.stacks.get(&id).cloned() else {
            continue;
        };
        let result = apply(&mut sim.cluster, &mut sim.rng, &stack);
        if let Some(s) = sim.cluster.portainer.stacks.get_mut(&id) {
            (s.due_ms, s.undeploy_first) = (None, false);
            match result {
                Ok(()) => {
                    s.status = ACTIVE;
                    s.deployment_status.push(deployment_status(ACTIVE, ""));
                }
                Err(e) => {
                    s.status = ERROR;
                    s.deployment_status.push(deployment_status(ERROR, &e));
                }
            }
        }
        sim.save();
    }
}

/// Deploys `stack` now (2.23) or schedules it (newer); the stack as stored.
fn deploy(sim: &mut Sim, mut stack: Stack, previous: Option<u8>) -> Result<Stack, Reply> {
    let settings = sim.cluster.portainer.settings.clone();
    if settings.background() {
        stack.undeploy_first = previous == Some(ERROR);
        stack.status = DEPLOYING;
        stack.due_ms = Some(now_ms() + u128::from(settings.deploy_ms));
        stack
            .deployment_status
            .push(deployment_status(DEPLOYING, ""));
    } else {
        apply(&mut sim.cluster, &mut sim.rng, &stack).map_err(|e| Reply::error(500, &e, &e))?;
        stack.status = ACTIVE;
    }
    store(sim, &stack);
    sim.save();
    Ok(stack)
}

pub async fn route(server: &Server, req: &Request, caller: &Caller, path: &[&str]) -> Reply {
    match (req.method.as_str(), path) {
        ("GET", []) => list(server, req),
        ("POST", ["create", "swarm", "string"]) => create(server, req, caller, None),
        ("POST", ["create", "swarm", "repository"]) => {
            let source = match GitSource::from_request(req, None) {
                Ok(s) => s,
                Err(reply) => return reply,
            };
            match clone(&source).await {
                Ok(cloned) => create(server, req, caller, Some((source, cloned))),
                Err(e) => Reply::error(500, "Unable to clone git repository", &e),
            }
        }
        ("PUT", [id, "git", "redeploy"]) => redeploy(server, req, caller, id).await,
        (method, [id, rest @ ..]) => {
            let mut sim = server.sim();
            let Some(stack) = id
                .parse()
                .ok()
                .and_then(|id: u32| sim.cluster.portainer.stacks.get(&id).cloned())
            else {
                return match (method, rest) {
                    ("DELETE", []) if req.query.get("external").is_some_and(|e| e == "true") => {
                        external_delete(&mut sim, req, id)
                    }
                    ("DELETE", []) if !req.query.contains_key("endpointId") => bad_endpoint(),
                    _ => not_found(),
                };
            };
            match (method, rest) {
                ("GET", []) => Reply::ok(stack_json(&stack)),
                ("GET", ["file"]) => Reply::ok(json!({"StackFileContent": stack.file})),
                ("PUT", []) => update(&mut sim, req, caller, stack),
                ("POST", ["start"]) => start(&mut sim, stack),
                ("POST", ["stop"]) => stop(&mut sim, stack),
                ("DELETE", []) => delete(&mut sim, req, stack),
                _ => Reply::error(404, "Not found", "Not found"),
            }
        }
        _ => Reply::error(404, "Not found", "Not found"),
    }
}

fn bad_endpoint() -> Reply {
    Reply::error(
        400,
        "Invalid query parameter: endpointId",
        "Invalid query parameter: endpointId",
    )
}

/// `GET /api/stacks?filters={"EndpointID":1,"SwarmID":"…"}`.
fn list(server: &Server, req: &Request) -> Reply {
    let filters: Value = match req.query.get("filters") {
        Some(text) => match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                return Reply::error(
                    400,
                    "Invalid query parameter: filters",
                    "Invalid query parameter: filters",
                );
            }
        },
        None => Value::Null,
    };
    let sim = server.sim();
    let stacks: Vec<Value> = sim
        .cluster
        .portainer
        .stacks
        .values()
        .filter(|s| {
            filters["EndpointID"]
                .as_u64()
                .is_none_or(|e| e == u64::from(s.endpoint_id))
        })
        .filter(|s| filters["SwarmID"].as_str().is_none_or(|w| w == s.swarm_id))
        .map(stack_json)
        .collect();
    Reply::ok(json!(stacks))
}

fn env_of(req: &Request) -> Result<Vec<Pair>, Reply> {
    let Some(list) = req.field("env").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let invalid = || {
        Reply::error(
            400,
            "Invalid request payload",
            "Invalid env: want [{name, value}]",
        )
    };
    list.as_array()
        .ok_or_else(invalid)?
        .iter()
        .map(|p| match (p["name"].as_str(), p["value"].as_str()) {
            (Some(n), Some(v)) if !n.is_empty() => Ok(Pair {
                name: n.into(),
                value: Secret(v.into()),
            }),
            _ => Err(invalid()),
        })
        .collect()
}

/// The environment of `?endpointId=N`: its id and swarm.
fn endpoint_of(sim: &Sim, req: &Request) -> Result<(u32, String), Reply> {
    let id: u32 = req
        .query
        .get("endpointId")
        .and_then(|e| e.parse().ok())
        .ok_or_else(bad_endpoint)?;
    let e = sim.cluster.portainer.endpoint(id).ok_or_else(no_endpoint)?;
    Ok((id, e.swarm_id.clone()))
}

fn create(
    server: &Server,
    req: &Request,
    caller: &Caller,
    git: Option<(GitSource, Cloned)>,
) -> Reply {
    let mut sim = server.sim();
    let (endpoint_id, swarm_id) = match endpoint_of(&sim, req) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let name = normalize(&req.text("name"));
    let file = match &git {
        Some((_, cloned)) => cloned.content.clone(),
        None => req.text("stackFileContent"),
    };
    let missing = if name.is_empty() {
        Some("Invalid stack name")
    } else if req.text("swarmID").is_empty() {
        Some("Invalid Swarm ID")
    } else if file.is_empty() {
        Some("Invalid stack file content")
    } else {
        None
    };
    if let Some(details) = missing {
        return Reply::error(400, "Invalid request payload", details);
    }
    if req.text("swarmID") != swarm_id {
        return Reply::error(
            400,
            "Invalid request payload",
            "SwarmID does not match the environment's swarm",
        );
    }
    let env = match env_of(req) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let outside = sim
        .cluster
        .swarms
        .get(&swarm_id)
        .is_some_and(|s| s.has_stack(&name));
    let p = &sim.cluster.portainer;
    if outside || p.stacks.values().any(|s| s.name == name) {
        let text = format!("A stack with the normalized name '{name}' already exists");
        return Reply::error(409, &text, &text);
    }
    let id = p
        .last_stack_id
        .max(p.stacks.keys().max().copied().unwrap_or(0))
        + 1;
    let entry_point = git
        .as_ref()
        .map_or("docker-compose.yml".into(), |(s, _)| s.file.clone());
    let stack = Stack {
        id,
        name,
        endpoint_id,
        swarm_id,
        entry_point,
        env,
        creation_date: now_s(),
        created_by: caller.username.clone(),
        file,
        git: git.map(|(source, cloned)| source.config(cloned.commit)),
        ..Default::default()
    };
    match deploy(&mut sim, stack, None) {
        Ok(stack) => Reply::ok(stack_json(&stack)),
        Err(reply) => reply,
    }
}

fn update(sim: &mut Sim, req: &Request, caller: &Caller, mut stack: Stack) -> Reply {
    if stack.status == DEPLOYING {
        return busy();
    }
    if let Err(r) = endpoint_of(sim, req) {
        return r;
    }
    let file = req.text("stackFileContent");
    if file.is_empty() {
        return Reply::error(400, "Invalid request payload", "Invalid stack file content");
    }
    let env = match env_of(req) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let previous = stack.status;
    (stack.file, stack.env, stack.prune, stack.git) = (file, env, req.flag("prune"), None);
    (stack.update_date, stack.updated_by) = (now_s(), caller.username.clone());
    match deploy(sim, stack, Some(previous)) {
        Ok(stack) => Reply::ok(stack_json(&stack)),
        Err(reply) => reply,
    }
}

fn start(sim: &mut Sim, mut stack: Stack) -> Reply {
    if stack.status != INACTIVE {
        return Reply::error(400, "Stack is already active", "Stack is already active");
    }
    if sim
        .cluster
        .swarms
        .get(&stack.swarm_id)
        .is_some_and(|s| s.has_stack(&stack.name))
    {
        let text = format!(
            "A stack with the normalized name '{}' already exists",
            stack.name
        );
        return Reply::error(409, &text, &text);
    }
    if let Err(e) = apply(&mut sim.cluster, &mut sim.rng, &stack) {
        return Reply::error(500, &e, &e);
    }
    stack.status = ACTIVE;
    store(sim, &stack);
    Reply::ok(stack_json(&stack))
}

fn stop(sim: &mut Sim, mut stack: Stack) -> Reply {
    match stack.status {
        DEPLOYING => return busy(),
        INACTIVE => {
            return Reply::error(
                400,
                "Stack is already inactive",
                "Stack is already inactive",
            );
        }
        _ => {}
    }
    if let Some(swarm) = sim.cluster.swarms.get_mut(&stack.swarm_id) {
        crate::stack::remove(swarm, &stack.name);
    }
    observe(&mut sim.cluster);
    stack.status = INACTIVE;
    store(sim, &stack);
    Reply::ok(stack_json(&stack))
}

fn delete(sim: &mut Sim, req: &Request, stack: Stack) -> Reply {
    if let Err(r) = endpoint_of(sim, req) {
        return r;
    }
    if let Some(swarm) = sim.cluster.swarms.get_mut(&stack.swarm_id) {
        crate::stack::remove(swarm, &stack.name);
    }
    sim.cluster.portainer.stacks.remove(&stack.id);
    observe(&mut sim.cluster);
    Reply::empty()
}

/// `DELETE /api/stacks/NAME?external=true&endpointId=N`: a swarm stack Portainer did not create.
fn external_delete(sim: &mut Sim, req: &Request, name: &str) -> Reply {
    let (_, swarm_id) = match endpoint_of(sim, req) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let removed = sim
        .cluster
        .swarms
        .get_mut(&swarm_id)
        .and_then(|s| crate::stack::remove(s, name));
    observe(&mut sim.cluster);
    match removed {
        Some(_) => Reply::empty(),
        None => not_found(),
    }
}

async fn redeploy(server: &Server, req: &Request, caller: &Caller, id: &str) -> Reply {
    let current = {
        let sim = server.sim();
        id.parse()
            .ok()
            .and_then(|id: u32| sim.cluster.portainer.stacks.get(&id).cloned())
    };
    let Some(stack) = current else {
        return not_found();
    };
    let Some(git) = stack.git.clone() else {
        return Reply::error(
            400,
            "Stack is not created from git",
            "Stack is not created from git",
        );
    };
    if stack.status == DEPLOYING {
        return busy();
    }
    let source = match GitSource::from_request(req, Some(&git)) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let cloned = match clone(&source).await {
        Ok(c) => c,
        Err(e) => return Reply::error(500, "Unable to clone git repository", &e),
    };
    let mut sim = server.sim();
    if let Err(r) = endpoint_of(&sim, req) {
        return r;
    }
    let Some(mut stack) = sim.cluster.portainer.stacks.get(&stack.id).cloned() else {
        return not_found();
    };
    if stack.status == DEPLOYING {
        return busy();
    }
    if req.field("env").is_some() {
        match env_of(req) {
            Ok(env) => stack.env = env,
            Err(r) => return r,
        }
    }
    let previous = stack.status;
    stack.file = cloned.content.clone();
    stack.prune = req.flag("prune");
    stack.git = Some(source.config(cloned.commit));
    (stack.update_date, stack.updated_by) = (now_s(), caller.username.clone());
    match deploy(&mut sim, stack, Some(previous)) {
        Ok(stack) => Reply::ok(stack_json(&stack)),
        Err(reply) => reply,
    }
}

/// Where a git stack's file comes from; the password never leaves it but to `git`'s env.
pub struct GitSource {
    url: String,
    reference: String,
    file: String,
    auth: Option<(String, Secret)>,
}

pub struct Cloned {
    content: String,
    commit: String,
}

impl GitSource {
    /// From a create (`known` none) or redeploy request (falling back to the stored config).
    fn from_request(req: &Request, known: Option<&Git>) -> Result<Self, Reply> {
        let or_known = |field: &str, stored: Option<String>| {
            Some(req.text(field))
                .filter(|t| !t.is_empty())
                .or(stored)
                .unwrap_or_default()
        };
        let url = or_known("repositoryURL", known.map(|g| g.url.clone()));
        let url_ok = ["https://", "http://", "file://", "ssh://"]
            .iter()
            .any(|s| url.starts_with(s));
        if !url_ok {
            return Err(Reply::error(
                400,
                "Invalid request payload",
                "Invalid repository URL. Must correspond to a valid URL format",
            ));
        }
        let reference = or_known(
            "repositoryReferenceName",
            known.map(|g| g.reference_name.clone()),
        );
        let file = or_known("composeFile", known.map(|g| g.config_file_path.clone()));
        let file = if file.is_empty() {
            "docker-compose.yml".into()
        } else {
            file
        };
        // The file is read from the clone: a path out of it is refused.
        if file.starts_with('/') || file.split('/').any(|part| part == "..") {
            return Err(Reply::error(
                400,
                "Invalid request payload",
                "Invalid compose file path",
            ));
        }
        let auth = if req.flag("repositoryAuthentication") {
            let password = req.text("repositoryPassword");
            if password.is_empty() {
                return Err(Reply::error(
                    400,
                    "Invalid request payload",
                    "Invalid repository credentials. Password must be specified when authentication is enabled",
                ));
            }
            Some((req.text("repositoryUsername"), Secret(password)))
        } else {
            known.and_then(|g| Some((g.username.clone()?, g.password.clone()?)))
        };
        Ok(Self {
            url,
            reference,
            file,
            auth,
        })
    }

    fn config(&self, commit: String) -> Git {
        Git {
            url: self.url.clone(),
            reference_name: self.reference.clone(),
            config_file_path: self.file.clone(),
            username: self.auth.as_ref().map(|(u, _)| u.clone()),
            password: self.auth.as_ref().map(|(_, p)| p.clone()),
            config_hash: commit,
        }
    }
}

/// `git clone --depth 1 --branch REF` (the real git, outside any lock), the compose file
/// and the commit; credentials go to git through its environment only, and are cut out
/// of its messages.
async fn clone(source: &GitSource) -> Result<Cloned, String> {
    use base64::Engine;
    let dir =
        std::env::temp_dir().join(format!("phoenix-sim-git-{}", uuid::Uuid::new_v4().simple()));
    let branch = source
        .reference
        .strip_prefix("refs/heads/")
        .unwrap_or(&source.reference);
    let mut command = tokio::process::Command::new("git");
    command.arg("clone").arg("--depth").arg("1");
    if !branch.is_empty() {
        command.arg("--branch").arg(branch);
    }
    command
        .arg("--")
        .arg(&source.url)
        .arg(&dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true);
    let mut secrets = Vec::new();
    if let Some((user, password)) = &source.auth {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.0));
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {basic}"),
            );
        secrets = vec![basic, password.0.clone()];
    }
    let scrub = |text: &str| {
        secrets
            .iter()
            .filter(|s| !s.is_empty())
            .fold(text.trim().to_owned(), |t, s| {
                t.replace(s.as_str(), "<redacted>")
            })
    };
    let result = async {
        let out = command
            .output()
            .await
            .map_err(|e| format!("cannot run git: {e}"))?;
        if !out.status.success() {
            return Err(scrub(&String::from_utf8_lossy(&out.stderr)));
        }
        let head = tokio::process::Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["rev-parse", "HEAD"])
            .output()
            .await;
        let commit = head
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let content = tokio::fs::read_to_string(dir.join(&source.file))
            .await
            .map_err(|_| {
                format!(
                    "Invalid stack file path: {} not found in the repository",
                    source.file
                )
            })?;
        Ok(Cloned { content, commit })
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

/// Keeps `stack`; its id is spent for good (ids are never handed out twice).
fn store(sim: &mut Sim, stack: &Stack) {
    let p = &mut sim.cluster.portainer;
    p.last_stack_id = p.last_stack_id.max(stack.id);
    p.stacks.insert(stack.id, stack.clone());
}
