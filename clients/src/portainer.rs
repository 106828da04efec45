//! Portainer CE's HTTP API, as far as Phoenix deploys Swarm stacks through it: the first
//! start (admin, API key, the `primary` environment), stacks, and the Docker proxy reads
//! that tell whether a stack's services run. Wire names are Portainer's (Go field names,
//! PascalCase); errors keep Portainer's `{"message","details"}`. Both deploy behaviours are
//! handled: 2.23's, where a failed deploy is the call's error, and the newer background
//! one, where the stack says `Status` 3 (deploying) or 4 (error) and a write while it
//! deploys is refused with 409.

use crate::proxmox::{Trust, client_config};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Stack `Status` values.
pub const ACTIVE: i64 = 1;
pub const INACTIVE: i64 = 2;
pub const DEPLOYING: i64 = 3;
pub const FAILED: i64 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No connection (Portainer not up yet, or not reachable).
    Unreachable,
    /// 401: the key or token is not (or no longer) valid.
    Unauthorized,
    /// 403: forbidden, or this address is banned by the rate limit.
    Forbidden,
    NotFound,
    /// 409 while a deploy runs (newer Portainer): wait for it.
    DeployInProgress,
    /// 409 otherwise (a name taken, an admin that exists).
    Conflict,
    /// 303 `AdminInitTimeout`: no admin within 5 minutes of start; only a restart helps.
    AdminInitTimeout,
    /// 400 / 422: Portainer refused what was sent.
    Invalid,
    /// 5xx: Portainer (or Docker behind it) failed.
    Server,
}

/// An answer that was not a success. Never holds a request body: secrets travel in them.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("Portainer {operation}: {message}")]
pub struct PortainerError {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub operation: String,
    pub message: String,
}

impl PortainerError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Unreachable | ErrorKind::DeployInProgress | ErrorKind::Server
        )
    }

    pub fn category(&self) -> &'static str {
        match self.kind {
            ErrorKind::Unreachable => "PortainerUnreachable",
            ErrorKind::Unauthorized => "PortainerUnauthorized",
            ErrorKind::Forbidden => "PortainerForbidden",
            ErrorKind::NotFound => "PortainerNotFound",
            ErrorKind::DeployInProgress => "DeployInProgress",
            ErrorKind::Conflict => "PortainerConflict",
            ErrorKind::AdminInitTimeout => "AdminInitTimeout",
            ErrorKind::Invalid => "PortainerRefused",
            ErrorKind::Server => "PortainerFailed",
        }
    }

    fn from_answer(
        operation: &str,
        status: u16,
        body: &str,
        redirect_reason: Option<&str>,
    ) -> Self {
        let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let text = |k: &str| parsed[k].as_str().unwrap_or_default().to_owned();
        let (message, details) = (text("message"), text("details"));
        let message = match (message.is_empty(), details.is_empty() || details == message) {
            (true, _) => format!("HTTP {status}"),
            (false, true) => message,
            (false, false) => format!("{message}: {details}"),
        };
        let kind = match status {
            303 if redirect_reason == Some("AdminInitTimeout") => ErrorKind::AdminInitTimeout,
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            409 if details.contains("already in progress") => ErrorKind::DeployInProgress,
            409 => ErrorKind::Conflict,
            400..=499 => ErrorKind::Invalid,
            _ => ErrorKind::Server,
        };
        Self {
            kind,
            status: Some(status),
            operation: operation.to_owned(),
            message,
        }
    }
}

/// How calls authenticate.
#[derive(Clone)]
pub enum Auth {
    None,
    ApiKey(String),
    Jwt(String),
}

impl std::fmt::Debug for Auth {
    // Keys and tokens are secrets: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::ApiKey(_) => "ApiKey(<redacted>)",
            Auth::Jwt(_) => "Jwt(<redacted>)",
        })
    }
}

#[derive(Clone, Debug)]
pub struct PortainerClient {
    base: String,
    http: reqwest::Client,
    auth: Auth,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    pub id: i64,
    pub name: String,
    #[serde(rename = "Type")]
    pub kind: i64,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Stack {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub endpoint_id: i64,
    #[serde(default)]
    pub status: i64,
    #[serde(default)]
    pub env: Option<Vec<Pair>>,
    #[serde(default)]
    pub git_config: Option<GitConfig>,
    /// Newer releases: the history of deploys, the last one's message says why it failed.
    #[serde(default)]
    pub deployment_status: Option<Vec<Value>>,
}

impl Stack {
    /// Why the last background deploy failed, as Portainer recorded it.
    pub fn failure(&self) -> String {
        self.deployment_status
            .iter()
            .flatten()
            .rev()
            .find_map(|d| {
                ["Message", "message"]
                    .iter()
                    .find_map(|k| d[*k].as_str().filter(|m| !m.is_empty()))
            })
            .unwrap_or("the deploy failed")
            .to_owned()
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Pair {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct GitConfig {
    #[serde(rename = "URL", default)]
    pub url: String,
    #[serde(default)]
    pub reference_name: String,
    #[serde(default)]
    pub config_file_path: String,
    /// The deployed commit.
    #[serde(default)]
    pub config_hash: String,
}

/// A new API key: the raw key (shown once) and its id.
pub struct NewKey {
    pub raw: String,
    pub id: i64,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewKey {{ id: {}, raw: <redacted> }}", self.id)
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: i64,
    #[serde(default)]
    pub description: String,
}

/// A git source for a repository stack. Credentials are sent, never logged.
#[derive(Clone)]
pub struct GitStack<'a> {
    pub url: &'a str,
    pub reference: &'a str,
    pub compose_file: &'a str,
    pub credentials: Option<(String, String)>,
}

/// One service of a stack as Docker reports it, with its tasks summed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceState {
    pub name: String,
    pub desired: u32,
    pub running: u32,
    /// The error of a task that should run and does not.
    pub error: Option<String>,
}

impl PortainerClient {
    /// A client for Portainer at `base` (`https://host[:port]`), TLS checked by `trust`.
    pub fn new(base: &str, trust: &Trust, auth: Auth) -> Result<Self, String> {
        let tls = client_config(trust)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            auth,
        })
    }

    /// The same Portainer, authenticated otherwise.
    pub fn with_auth(&self, auth: Auth) -> Self {
        Self {
            auth,
            ..self.clone()
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, String), PortainerError> {
        let operation = format!("{method} {path}");
        let mut request = self
            .http
            .request(method, format!("{}/api{path}", self.base))
            .query(query);
        request = match &self.auth {
            Auth::None => request,
            Auth::ApiKey(key) => request.header("X-API-Key", key),
            Auth::Jwt(jwt) => request.bearer_auth(jwt),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| PortainerError {
            kind: ErrorKind::Unreachable,
            status: None,
            operation: operation.clone(),
            message: without_url(e),
        })?;
        let status = response.status().as_u16();
        let reason = response
            .headers()
            .get("redirect-reason")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.map_err(|e| PortainerError {
            kind: ErrorKind::Unreachable,
            status: Some(status),
            operation: operation.clone(),
            message: without_url(e),
        })?;
        if (200..300).contains(&status) {
            Ok((status, text))
        } else {
            Err(PortainerError::from_answer(
                &operation,
                status,
                &text,
                reason.as_deref(),
            ))
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<T, PortainerError> {
        let operation = format!("{method} {path}");
        let (status, text) = self.call(method, path, query, body).await?;
        serde_json::from_str(&text).map_err(|e| PortainerError {
            kind: ErrorKind::Server,
            status: Some(status),
            operation,
            message: format!("unexpected answer: {e}"),
        })
    }

    /// `GET /api/system/status`: the version, public.
    pub async fn version(&self) -> Result<String, PortainerError> {
        let status: Value = self.json(Method::GET, "/system/status", &[], None).await?;
        Ok(status["Version"].as_str().unwrap_or_default().to_owned())
    }

    /// Whether an administrator exists (204) or not (404).
    pub async fn admin_exists(&self) -> Result<bool, PortainerError> {
        match self
            .call(Method::GET, "/users/admin/check", &[], None)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn init_admin(&self, username: &str, password: &str) -> Result<(), PortainerError> {
        let body = json!({"Username": username, "Password": password});
        self.call(Method::POST, "/users/admin/init", &[], Some(&body))
            .await
            .map(drop)
    }

    /// Logs in: a JWT and the user's id.
    pub async fn login(&self, username: &str, password: &str) -> Result<String, PortainerError> {
        let body = json!({"username": username, "password": password});
        let answer: Value = self.json(Method::POST, "/auth", &[], Some(&body)).await?;
        Ok(answer["jwt"].as_str().unwrap_or_default().to_owned())
    }

    /// The authenticated user's id.
    pub async fn me(&self) -> Result<i64, PortainerError> {
        let me: Value = self.json(Method::GET, "/users/me", &[], None).await?;
        Ok(me["Id"].as_i64().unwrap_or_default())
    }

    /// Creates an API key for `user` (JWT only; 201 in 2.23, 200 newer).
    pub async fn create_key(
        &self,
        user: i64,
        password: &str,
        description: &str,
    ) -> Result<NewKey, PortainerError> {
        let body = json!({"password": password, "description": description});
        let answer: Value = self
            .json(
                Method::POST,
                &format!("/users/{user}/tokens"),
                &[],
                Some(&body),
            )
            .await?;
        Ok(NewKey {
            raw: answer["rawAPIKey"].as_str().unwrap_or_default().to_owned(),
            id: answer["apiKey"]["id"].as_i64().unwrap_or_default(),
        })
    }

    pub async fn keys(&self, user: i64) -> Result<Vec<KeyInfo>, PortainerError> {
        self.json(Method::GET, &format!("/users/{user}/tokens"), &[], None)
            .await
    }

    pub async fn delete_key(&self, user: i64, id: i64) -> Result<(), PortainerError> {
        let path = format!("/users/{user}/tokens/{id}");
        self.call(Method::DELETE, &path, &[], None).await.map(drop)
    }

    /// Environments, those named `name` when given.
    pub async fn endpoints(&self, name: Option<&str>) -> Result<Vec<Endpoint>, PortainerError> {
        let query: Vec<(&str, String)> = name.map(|n| ("name", n.to_owned())).into_iter().collect();
        self.json(Method::GET, "/endpoints", &query, None).await
    }

    /// The swarm id behind environment `endpoint` (Docker's swarm inspect).
    pub async fn swarm_id(&self, endpoint: i64) -> Result<String, PortainerError> {
        let swarm: Value = self
            .json(
                Method::GET,
                &format!("/endpoints/{endpoint}/docker/swarm"),
                &[],
                None,
            )
            .await?;
        Ok(swarm["ID"].as_str().unwrap_or_default().to_owned())
    }

    pub async fn stacks(&self, endpoint: i64) -> Result<Vec<Stack>, PortainerError> {
        let filters = json!({"EndpointID": endpoint}).to_string();
        self.json(Method::GET, "/stacks", &[("filters", filters)], None)
            .await
    }

    pub async fn stack_file(&self, id: i64) -> Result<String, PortainerError> {
        let file: Value = self
            .json(Method::GET, &format!("/stacks/{id}/file"), &[], None)
            .await?;
        Ok(file["StackFileContent"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    pub async fn create_stack(
        &self,
        endpoint: i64,
        swarm_id: &str,
        name: &str,
        content: &str,
        env: &[(String, String)],
    ) -> Result<Stack, PortainerError> {
        let body = json!({"name": name, "swarmID": swarm_id, "stackFileContent": content,
            "env": pairs(env)});
        self.json(
            Method::POST,
            "/stacks/create/swarm/string",
            &[("endpointId", endpoint.to_string())],
            Some(&body),
        )
        .await
    }

    pub async fn create_git_stack(
        &self,
        endpoint: i64,
        swarm_id: &str,
        name: &str,
        git: &GitStack<'_>,
        env: &[(String, String)],
    ) -> Result<Stack, PortainerError> {
        let mut body = json!({"name": name, "swarmID": swarm_id, "env": pairs(env),
            "repositoryURL": git.url, "repositoryReferenceName": reference_name(git.reference),
            "composeFile": git.compose_file});
        authenticate(&mut body, git);
        self.json(
            Method::POST,
            "/stacks/create/swarm/repository",
            &[("endpointId", endpoint.to_string())],
            Some(&body),
        )
        .await
    }

    /// Redeploys a file stack with new content and env (`prune`: services no longer in
    /// the file are removed).
    pub async fn update_stack(
        &self,
        stack: &Stack,
        content: &str,
        env: &[(String, String)],
        prune: bool,
    ) -> Result<Stack, PortainerError> {
        let body = json!({"stackFileContent": content, "env": pairs(env), "prune": prune,
            "pullImage": false});
        self.json(
            Method::PUT,
            &format!("/stacks/{}", stack.id),
            &[("endpointId", stack.endpoint_id.to_string())],
            Some(&body),
        )
        .await
    }

    pub async fn redeploy_git(
        &self,
        stack: &Stack,
        git: &GitStack<'_>,
        env: &[(String, String)],
        prune: bool,
    ) -> Result<Stack, PortainerError> {
        let mut body = json!({"repositoryReferenceName": reference_name(git.reference),
            "env": pairs(env), "prune": prune, "pullImage": false});
        authenticate(&mut body, git);
        self.json(
            Method::PUT,
            &format!("/stacks/{}/git/redeploy", stack.id),
            &[("endpointId", stack.endpoint_id.to_string())],
            Some(&body),
        )
        .await
    }

    pub async fn delete_stack(&self, stack: &Stack) -> Result<(), PortainerError> {
        let path = format!("/stacks/{}", stack.id);
        let query = [("endpointId", stack.endpoint_id.to_string())];
        match self.call(Method::DELETE, &path, &query, None).await {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other.map(drop),
        }
    }

    /// The services of stack `name` on `endpoint`, each with its tasks summed up.
    pub async fn services(
        &self,
        endpoint: i64,
        name: &str,
    ) -> Result<Vec<ServiceState>, PortainerError> {
        let label = json!({"label": [format!("com.docker.stack.namespace={name}")]}).to_string();
        let query = [("filters", label)];
        let base = format!("/endpoints/{endpoint}/docker");
        let services: Vec<Value> = self
            .json(Method::GET, &format!("{base}/services"), &query, None)
            .await?;
        let tasks: Vec<Value> = self
            .json(Method::GET, &format!("{base}/tasks"), &query, None)
            .await?;
        let nodes: Vec<Value> = self
            .json(Method::GET, &format!("{base}/nodes"), &[], None)
            .await?;
        Ok(summarize(&services, &tasks, nodes.len()))
    }
}

/// Services with their tasks: desired replicas (a global service wants one per node),
/// running tasks, and the error of a task that should run and does not.
pub fn summarize(services: &[Value], tasks: &[Value], nodes: usize) -> Vec<ServiceState> {
    let mut states: Vec<ServiceState> = services
        .iter()
        .map(|s| {
            let mode = &s["Spec"]["Mode"];
            let desired = match mode["Replicated"]["Replicas"].as_u64() {
                Some(n) => n as u32,
                None if mode.get("Global").is_some() => nodes as u32,
                None => 1,
            };
            let id = s["ID"].as_str().unwrap_or_default();
            let mine = || tasks.iter().filter(move |t| t["ServiceID"] == id);
            let running = mine()
                .filter(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
                .count() as u32;
            // Docker shuts a rejected task down and tries a new one: the error is on a task
            // that is not running, whatever it is meant to be now.
            let error = mine()
                .filter(|t| t["Status"]["State"] != "running")
                .filter_map(|t| t["Status"]["Err"].as_str().filter(|e| !e.is_empty()))
                .next()
                .map(str::to_owned);
            ServiceState {
                name: s["Spec"]["Name"].as_str().unwrap_or_default().to_owned(),
                desired,
                running,
                error,
            }
        })
        .collect();
    states.sort_by(|a, b| a.name.cmp(&b.name));
    states
}

fn pairs(env: &[(String, String)]) -> Value {
    env.iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect()
}

/// A branch name as Portainer wants it (`refs/heads/main`); tags and full refs kept.
fn reference_name(reference: &str) -> String {
    if reference.starts_with("refs/") {
        reference.to_owned()
    } else {
        format!("refs/heads/{reference}")
    }
}

fn authenticate(body: &mut Value, git: &GitStack<'_>) {
    if let Some((user, password)) = &git.credentials {
        body["repositoryAuthentication"] = json!(true);
        body["repositoryUsername"] = json!(user);
        body["repositoryPassword"] = json!(password);
    }
}

/// reqwest's error text without the URL (it may carry an `x-api-key` query).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_portainer_s_words_and_kind() {
        let busy = PortainerError::from_answer(
            "PUT /stacks/3",
            409,
            r#"{"message":"Unable to update stack","details":"Stack deployment is already in progress"}"#,
            None,
        );
        assert_eq!(busy.kind, ErrorKind::DeployInProgress);
        assert!(busy.is_transient());
        assert_eq!(
            busy.to_string(),
            "Portainer PUT /stacks/3: Unable to update stack: Stack deployment is already in progress"
        );
        let taken = PortainerError::from_answer(
            "POST /stacks/create/swarm/string",
            409,
            r#"{"message":"A stack with the normalized name 'web' already exists","details":"A stack with the normalized name 'web' already exists"}"#,
            None,
        );
        assert_eq!(taken.kind, ErrorKind::Conflict);
        assert!(taken.to_string().ends_with("'web' already exists"));
        let timeout = PortainerError::from_answer(
            "GET /users/admin/check",
            303,
            "",
            Some("AdminInitTimeout"),
        );
        assert_eq!(timeout.kind, ErrorKind::AdminInitTimeout);
        assert!(!timeout.is_transient());
        assert_eq!(
            PortainerError::from_answer("x", 502, "<html>", None).message,
            "HTTP 502"
        );
    }

    #[test]
    fn tasks_sum_up_per_service_with_docker_s_error() {
        let services = serde_json::from_value::<Vec<Value>>(json!([
            {"ID": "s1", "Spec": {"Name": "qdrant_qdrant", "Mode": {"Replicated": {"Replicas": 2}}}},
            {"ID": "s2", "Spec": {"Name": "portainer_agent", "Mode": {"Global": {}}}}
        ]))
        .unwrap();
        let tasks = serde_json::from_value::<Vec<Value>>(json!([
            {"ServiceID": "s1", "DesiredState": "running", "Status": {"State": "running"}},
            {"ServiceID": "s1", "DesiredState": "shutdown", "Status": {"State": "rejected", "Err": "No such image: qdrant/qdrant:v0"}},
            {"ServiceID": "s1", "DesiredState": "shutdown", "Status": {"State": "shutdown", "Message": "shutdown"}},
            {"ServiceID": "s1", "DesiredState": "shutdown", "Status": {"State": "running"}},
            {"ServiceID": "s2", "DesiredState": "running", "Status": {"State": "running"}},
            {"ServiceID": "s2", "DesiredState": "running", "Status": {"State": "running"}}
        ]))
        .unwrap();
        let states = summarize(&services, &tasks, 2);
        assert_eq!(
            states,
            vec![
                ServiceState {
                    name: "portainer_agent".into(),
                    desired: 2,
                    running: 2,
                    error: None
                },
                ServiceState {
                    name: "qdrant_qdrant".into(),
                    desired: 2,
                    running: 1,
                    error: Some("No such image: qdrant/qdrant:v0".into())
                },
            ]
        );
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let key = NewKey {
            raw: "ptr_s3cr3t".into(),
            id: 4,
        };
        assert!(!format!("{key:?}").contains("s3cr3t"));
        assert!(!format!("{:?}", Auth::ApiKey("ptr_s3cr3t".into())).contains("s3cr3t"));
        assert_eq!(reference_name("main"), "refs/heads/main");
        assert_eq!(reference_name("refs/tags/v1"), "refs/tags/v1");
    }
}
