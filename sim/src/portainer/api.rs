//! Portainer's `/api` routes: public status and admin bootstrap, authentication (JWT and
//! API keys, with the auth rate limit), users' access tokens and environments; stacks and
//! the Docker proxy are in their own modules.

use super::http::{Caller, Reply, Request, hash, no_endpoint};
use super::state::{Admin, ApiKey, endpoint_json};
use crate::cluster::now_s;
use crate::server::Server;
use serde_json::{Value, json};

/// A request as the routes read it.
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
