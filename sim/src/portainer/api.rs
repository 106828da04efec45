//! Portainer's `/api` routes: public status and admin bootstrap, authentication (JWT and
//! API keys, with the auth rate limit), users' access tokens and environments; stacks and
//! the Docker proxy are in their own modules.

use super::state::{Admin, ApiKey, endpoint_json};
use crate::cluster::now_s;
use crate::server::Server;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;

/// A request as the routes read it.
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub bearer: Option<String>,
    pub api_key: Option<String>,
    pub body: Value,
    pub ip: IpAddr,
}

/// An answer: status, JSON body (none for 204) and extra headers.
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub fn empty() -> Self {
        Self {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }

    /// Portainer's error shape; `details` gets its first letter capitalised, as Portainer's.
    pub fn error(status: u16, message: &str, details: &str) -> Self {
        let mut chars = details.chars();
        let details: String = chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
        Self {
            status,
            body: Some(json!({"message": message, "details": details})),
            headers: Vec::new(),
        }
    }

    pub fn into_response(self) -> hyper::Response<super::Body> {
        let mut builder = hyper::Response::builder()
            .status(self.status)
            .header("Content-Type", "application/json; charset=utf-8");
        for (name, value) in &self.headers {
            builder = builder.header(*name, value);
        }
        let bytes = self
            .body
            .map(|b| serde_json::to_vec(&b).unwrap_or_default())
            .unwrap_or_default();
        builder
            .body(Full::new(Bytes::from(bytes)).boxed())
            .expect("static response parts are valid")
    }
}

impl Request {
    /// Reads method, path, query, auth headers and the JSON body (400 when not JSON).
    pub async fn read(
        req: hyper::Request<hyper::body::Incoming>,
        ip: IpAddr,
    ) -> Result<Self, Reply> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let query: HashMap<String, String> =
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let api_key = header("x-api-key").or_else(|| {
            query
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-api-key"))
                .map(|(_, v)| v.clone())
        });
        let bearer =
            header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned));
        let (method, path) = (
            req.method().as_str().to_owned(),
            req.uri().path().to_owned(),
        );
        let bytes = Limited::new(req.into_body(), 4 * 1024 * 1024)
            .collect()
            .await
            .map_err(|_| Reply::error(413, "Request too large", "Request body too large"))?
            .to_bytes();
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| Reply::error(400, "Invalid request payload", &e.to_string()))?
        };
        Ok(Self {
            method,
            path,
            query,
            bearer,
            api_key,
            body,
            ip,
        })
    }

    /// A body field, its key matched case-insensitively (as Go's `encoding/json` does).
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.body
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn text(&self, name: &str) -> String {
        self.field(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    pub fn flag(&self, name: &str) -> bool {
        self.field(name).and_then(Value::as_bool).unwrap_or(false)
    }
}

/// Who calls: the user, and whether by API key (some routes want a JWT).
pub struct Caller {
    pub user: u32,
    pub username: String,
    pub by_key: bool,
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

fn limited(method: &str, path: &[&str]) -> bool {
    matches!(
        (method, path),
        (_, ["api", "auth"])
            | (_, ["api", "auth", "oauth", "validate"])
            | ("POST", ["api", "users", _, "tokens"])
            | ("PUT", ["api", "users", _, "passwd"])
    )
}

pub async fn route(server: &Server, req: &Request) -> Reply {
    let fail = {
        let mut sim = server.sim();
        super::stacks::finish_due(&mut sim);
        if sim.cluster.portainer.timed_out() {
            let mut reply = Reply::error(
                303,
                "Administrator initialization timeout",
                "Administrator initialization timeout",
            );
            reply
                .headers
                .push(("redirect-reason", "AdminInitTimeout".into()));
            return reply;
        }
        let rate = sim.cluster.portainer.settings.error_rate;
        sim.roll(rate)
    };
    if fail {
        return Reply::error(
            500,
            "Internal server error",
            "Simulated failure (errorRate)",
        );
    }
    let path = segments(&req.path);
    if limited(&req.method, &path) && !server.portainer.allow(req.ip) {
        return Reply::error(403, "Access denied", "Access denied");
    }
    if let Some(reply) = public(server, req, &path) {
        return reply;
    }
    let caller = match authenticate(server, req) {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    match (req.method.as_str(), path.as_slice()) {
        ("GET", ["api", "users", "me"]) => Reply::ok(user_json(caller.user, &caller.username)),
        (_, ["api", "users", id, "tokens", rest @ ..]) => tokens(server, req, &caller, id, rest),
        ("GET", ["api", "endpoints"]) => endpoints(server, req),
        ("GET", ["api", "endpoints", id]) => {
            let sim = server.sim();
            match id
                .parse()
                .ok()
                .and_then(|id| sim.cluster.portainer.endpoint(id))
            {
                Some(e) => Reply::ok(endpoint_json(e)),
                None => no_endpoint(),
            }
        }
        (_, ["api", "endpoints", id, "docker" | "agent", rest @ ..]) => {
            super::proxy::call(server, req, id, rest)
        }
        (_, ["api", "stacks", ..]) => super::stacks::route(server, req, &caller, &path[2..]).await,
        _ => Reply::error(404, "Not found", "Not found"),
    }
}

pub fn no_endpoint() -> Reply {
    Reply::error(
        404,
        "Unable to find an environment with the specified identifier inside the database",
        "Object not found inside the database",
    )
}

fn user_json(id: u32, username: &str) -> Value {
    json!({"Id": id, "Username": username, "Role": 1, "TokenIssueAt": now_s(), "ThemeSettings": {"color": ""}})
}

fn public(server: &Server, req: &Request, path: &[&str]) -> Option<Reply> {
    let mut sim = server.sim();
    let p = &mut sim.cluster.portainer;
    Some(match (req.method.as_str(), path) {
        ("GET", ["api", "system", "status"] | ["api", "status"]) => {
            Reply::ok(json!({"Version": p.settings.version, "InstanceID": p.instance_id}))
        }
        ("GET", ["api", "users", "admin", "check"]) => match p.admin {
            Some(_) => Reply::empty(),
            None => Reply::error(
                404,
                "No administrator account found inside the database",
                "Object not found inside the database",
            ),
        },
        ("POST", ["api", "users", "admin", "init"]) => {
            let (username, password) = (req.text("username"), req.text("password"));
            if username.is_empty() || username.chars().any(char::is_whitespace) {
                return Some(Reply::error(
                    400,
                    "Invalid request payload",
                    "Invalid username. Must not contain any whitespace",
                ));
            }
            if password.chars().count() < 12 {
                return Some(Reply::error(
                    400,
                    "Invalid request payload",
                    "Password does not meet the requirements",
                ));
            }
            if p.admin.is_some() {
                return Some(Reply::error(
                    409,
                    "Unable to create administrator user",
                    "An administrator user already exists",
                ));
            }
            let salt = uuid::Uuid::new_v4().simple().to_string();
            let password_hash = super::state::Secret(hash(&salt, &password));
            p.admin = Some(Admin {
                username: username.clone(),
                salt,
                password_hash,
            });
            p.ensure_primary();
            sim.save();
            Reply::ok(user_json(1, &username))
        }
        ("POST", ["api", "auth"]) => {
            let (username, password) = (req.text("username"), req.text("password"));
            if username.is_empty() || password.is_empty() {
                return Some(Reply::error(
                    400,
                    "Invalid request payload",
                    "Invalid username or password",
                ));
            }
            match &p.admin {
                Some(a)
                    if a.username == username && a.password_hash.0 == hash(&a.salt, &password) =>
                {
                    Reply::ok(json!({"jwt": server.portainer.session(1)}))
                }
                _ => Reply::error(422, "Invalid credentials", "Unauthorized"),
            }
        }
        ("POST", ["api", "auth", "logout"]) => {
            if let Some(jwt) = &req.bearer {
                server.portainer.end_session(jwt);
            }
            Reply::empty()
        }
        _ => return None,
    })
}

pub fn hash(salt: &str, secret: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{salt}{secret}").as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn authenticate(server: &Server, req: &Request) -> Result<Caller, Reply> {
    let mut sim = server.sim();
    let p = &mut sim.cluster.portainer;
    let username = p
        .admin
        .as_ref()
        .map(|a| a.username.clone())
        .unwrap_or_default();
    if let Some(key) = &req.api_key {
        let digest = hash("", key);
        return match p.keys.iter_mut().find(|k| k.digest.0 == digest) {
            Some(k) => {
                k.last_used = now_s();
                Ok(Caller {
                    user: k.user_id,
                    username,
                    by_key: true,
                })
            }
            None => Err(Reply::error(401, "Unauthorized", "Invalid API key")),
        };
    }
    match &req.bearer {
        Some(jwt) => match server.portainer.user_of(jwt) {
            Some(user) => Ok(Caller {
                user,
                username,
                by_key: false,
            }),
            None => Err(Reply::error(401, "Unauthorized", "Invalid JWT token")),
        },
        None => Err(Reply::error(401, "Unauthorized", "Unauthorized")),
    }
}

fn key_json(k: &ApiKey) -> Value {
    json!({"id": k.id, "userId": k.user_id, "description": k.description, "prefix": k.prefix,
           "dateCreated": k.date_created, "lastUsed": k.last_used})
}

/// `POST|GET /api/users/{id}/tokens`, `DELETE /api/users/{id}/tokens/{keyID}`.
fn tokens(server: &Server, req: &Request, caller: &Caller, id: &str, rest: &[&str]) -> Reply {
    let Ok(user) = id.parse::<u32>() else {
        return Reply::error(
            400,
            "Invalid user identifier route variable",
            "Invalid user identifier",
        );
    };
    if req.method == "POST" && caller.by_key {
        return Reply::error(401, "Auth not supported", "JWT Authentication required");
    }
    if user != caller.user {
        return Reply::error(
            403,
            "Permission denied to manage user access tokens",
            "Permission denied",
        );
    }
    let mut sim = server.sim();
    let background = sim.cluster.portainer.settings.background();
    let p = &mut sim.cluster.portainer;
    match (req.method.as_str(), rest) {
        ("GET", []) => Reply::ok(
            p.keys
                .iter()
                .filter(|k| k.user_id == user)
                .map(key_json)
                .collect(),
        ),
        ("DELETE", [key]) => match p
            .keys
            .iter()
            .position(|k| key.parse() == Ok(k.id) && k.user_id == user)
        {
            Some(i) => {
                p.keys.remove(i);
                Reply::empty()
            }
            None => Reply::error(
                404,
                "Unable to find an api-key with the specified identifier inside the database",
                "Object not found inside the database",
            ),
        },
        ("POST", []) => {
            let description = req.text("description");
            if description.is_empty() || description.len() > 128 {
                return Reply::error(
                    400,
                    "Invalid request payload",
                    "Invalid description: cannot be empty",
                );
            }
            let good = p
                .admin
                .as_ref()
                .is_some_and(|a| a.password_hash.0 == hash(&a.salt, &req.text("password")));
            if !good {
                return Reply::error(
                    403,
                    "Invalid username or password",
                    "Invalid username or password",
                );
            }
            let raw = format!("ptr_{}", random_key());
            p.next_key_id += 1;
            let key = ApiKey {
                id: p.next_key_id,
                user_id: user,
                description,
                prefix: raw.chars().take(7).collect(),
                digest: super::state::Secret(hash("", &raw)),
                date_created: now_s(),
                last_used: 0,
            };
            let body = json!({"rawAPIKey": raw, "apiKey": key_json(&key)});
            p.keys.push(key);
            sim.save();
            let mut reply = Reply::ok(body);
            reply.status = if background { 200 } else { 201 };
            reply
        }
        _ => Reply::error(405, "Method not allowed", "Method not allowed"),
    }
}

fn random_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `GET /api/endpoints` with the `name=` filter and `X-Total-Count`.
fn endpoints(server: &Server, req: &Request) -> Reply {
    let sim = server.sim();
    let list: Vec<Value> = sim
        .cluster
        .portainer
        .endpoints
        .iter()
        .filter(|e| req.query.get("name").is_none_or(|n| *n == e.name))
        .map(endpoint_json)
        .collect();
    let mut reply = Reply::ok(json!(list));
    reply
        .headers
        .push(("X-Total-Count", list.len().to_string()));
    reply
}
