//! HTTPS on loopback with PVE's `/api2/json` prefix, envelope and authentication (API token,
//! or ticket cookie plus CSRF token on writes), fault injection, the operation log, and the
//! admin endpoint under `/admin`.

use crate::api::{self, Call, PveError};
use crate::owner::{Owner, inside_summary};
use crate::state::{Faults, Operation, Sim};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub struct Credentials {
    pub user: String,
    pub password: String,
    pub token_id: String,
    pub token_secret: String,
}

pub struct Server {
    pub sim: Mutex<Sim>,
    pub creds: Credentials,
    tickets: Mutex<HashSet<String>>,
    /// `flock` files inside guests ("VMID:PATH"), held by the run that took them.
    flocks: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Loopback stand-ins for guests' services (`GET /admin/resolve`).
    listeners: crate::listeners::Listeners,
    tls: std::sync::OnceLock<tokio_rustls::TlsAcceptor>,
    /// Portainer's in-memory state (sessions, rate limiter, operation log).
    pub portainer: crate::portainer_runtime::Runtime,
    /// Admin routes served by what runs beside the PVE API (Portainer's), installed at
    /// start so that this front does not depend on them.
    pub admin_routes: std::sync::OnceLock<AdminRoute>,
    /// Portainer's loopback listener (`GET /admin/resolve?host=`).
    pub portainer_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// The real daemons run for guests (Traefik, nginx), when the simulator has programs.
    pub daemons: std::sync::OnceLock<Arc<crate::daemons::GuestDaemons>>,
    /// Notified after each request: what the daemons follow.
    pub changed: tokio::sync::Notify,
    /// The simulator's own certificate, presented by a stand-in whose guest has none
    /// installed for the name asked.
    certificate: std::sync::OnceLock<Arc<rustls::sign::CertifiedKey>>,
}

/// The credentials a request carries (headers `Authorization`, `Cookie`,
/// `CSRFPreventionToken`).
pub struct Auth<'a> {
    pub authorization: &'a str,
    pub cookie: &'a str,
    pub csrf: &'a str,
}

pub type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// An extra `/admin` route family: the answer, or `None` when the path is not its own.
pub type AdminRoute =
    Box<dyn Fn(&Server, &str, &str, &[u8]) -> Option<hyper::Response<Body>> + Send + Sync>;

/// Why a request gets no answer at all (an injected connection reset).
#[derive(Debug)]
pub struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset (injected fault)")
    }
}

impl std::error::Error for Reset {}

impl Server {
    pub fn new(mut sim: Sim, creds: Credentials) -> Self {
        // root@pam and its token are this run's credentials, whatever the state file held.
        sim.cluster
            .access
            .install_root(&creds.password, &creds.token_id, &creds.token_secret);
        Self {
            sim: Mutex::new(sim),
            creds,
            tickets: Mutex::default(),
            flocks: Mutex::default(),
            listeners: Default::default(),
            tls: Default::default(),
            portainer: Default::default(),
            admin_routes: Default::default(),
            portainer_addr: Default::default(),
            daemons: Default::default(),
            changed: Default::default(),
            certificate: Default::default(),
        }
    }

    /// The simulator's TLS (`acceptor` serving `certificate`); the stand-ins of guests'
    /// HTTPS services present `certificate` when their guest has none of its own.
    pub fn set_tls(
        &self,
        acceptor: tokio_rustls::TlsAcceptor,
        certificate: Arc<rustls::sign::CertifiedKey>,
    ) {
        let _ = self.tls.set(acceptor);
        let _ = self.certificate.set(certificate);
    }

    pub fn tls(&self) -> Option<&tokio_rustls::TlsAcceptor> {
        self.tls.get()
    }

    /// `GET /admin/resolve?address=IP&port=N`: the loopback listener standing in for that
    /// port of the guest with that address. `?host=NAME&port=443|9443`: the one service
    /// the simulated platform serves under host names, Portainer behind its route.
    async fn resolve(self: Arc<Self>, query: &str) -> Response<Body> {
        let params: std::collections::HashMap<String, String> =
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        if params.contains_key("host") {
            return match (
                params.get("port").map(String::as_str),
                self.portainer_addr.get(),
            ) {
                (Some("443" | "9443"), Some(addr)) => {
                    respond(200, "OK", &json!({"address": addr.to_string()}))
                }
                _ => error(&PveError {
                    status: 404,
                    message: "host names serve Portainer on ports 443 and 9443 only".into(),
                    errors: None,
                }),
            };
        }
        let port = params.get("port").and_then(|p| p.parse::<u16>().ok());
        let address = params.get("address").cloned().unwrap_or_default();
        let (Some(vmid), Some(port)) = (self.guest_at(&address), port) else {
            return error(&PveError {
                status: 404,
                message: format!("no guest has the address {address:?} (or no port given)"),
                errors: None,
            });
        };
        if let Some(daemons) = self.daemons.get() {
            self.sync_daemons().await;
            if let Some(addr) = daemons.address(vmid, port).await {
                let answer = json!({"address": addr.to_string(), "vmid": vmid, "standIn": false});
                return respond(200, "OK", &answer);
            }
        }
        match self.stand_in(vmid, port).await {
            Ok(addr) => respond(
                200,
                "OK",
                &json!({"address": addr.to_string(), "vmid": vmid, "standIn": true}),
            ),
            Err(e) => error(&PveError::server(e.to_string())),
        }
    }

    /// Brings the guests' daemons, when there are, up to date with the guests.
    pub async fn sync_daemons(self: &Arc<Self>) {
        let Some(daemons) = self.daemons.get() else {
            return;
        };
        let guests = crate::daemons::observe(&self.sim());
        let stand_in = |vmid, port| {
            let server = self.clone();
            async move { server.stand_in(vmid, port).await.ok() }
        };
        daemons.sync(guests, stand_in).await;
    }

    /// The guest with `address` (as its configuration gives it, without a prefix length).
    pub fn guest_at(&self, address: &str) -> Option<u32> {
        let sim = self.sim();
        sim.cluster
            .guests
            .values()
            .find(|g| g.addresses().iter().any(|(_, _, a, _)| *a == address))
            .map(|g| g.vmid)
    }

    /// The loopback listener standing in for `port` of guest `vmid`: it answers while the
    /// guest runs, over TLS with the certificate installed in the guest for the name a
    /// client asks for (the simulator's own without one).
    pub async fn stand_in(
        self: &Arc<Self>,
        vmid: u32,
        port: u16,
    ) -> std::io::Result<std::net::SocketAddr> {
        let server = self.clone();
        let running = move || {
            server
                .sim()
                .cluster
                .guests
                .get(&vmid)
                .is_some_and(|g| g.running)
        };
        let tls = self.certificate.get().and_then(|fallback| {
            let server = Arc::downgrade(self);
            let installed = move || {
                let server = server.upgrade()?;
                let sim = server.sim();
                Some(crate::guest_tls::pem_files(
                    &sim.cluster.guests.get(&vmid)?.inside.files,
                ))
            };
            let certificates = crate::guest_tls::GuestCertificates {
                installed: Box::new(installed),
                fallback: fallback.clone(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .ok()?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(certificates));
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
        });
        self.listeners.resolve(vmid, port, tls, running).await
    }

    pub fn sim(&self) -> std::sync::MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one request; the guests' daemons then look at what it changed.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, Reset> {
        let answer = self.clone().answer_request(req).await;
        self.changed.notify_one();
        answer
    }

    async fn answer_request(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Reset> {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let method = req.method().as_str().to_owned();
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (authorization, cookie, csrf, content_type) = (
            header("authorization"),
            header("cookie"),
            header("csrfpreventiontoken"),
            header("content-type"),
        );
        let body = match Limited::new(req.into_body(), 4 * 1024 * 1024)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Ok(error(&PveError {
                    status: 413,
                    message: "request too large".into(),
                    errors: None,
                }));
            }
        };
        if let Some(admin) = path.strip_prefix("/admin") {
            if !self.token_ok(&authorization) {
                return Ok(error(&PveError {
                    status: 401,
                    message: "No ticket".into(),
                    errors: None,
                }));
            }
            return Ok(self.admin_request(&method, admin, &query, &body).await);
        }
        let (delay, reset, fail) = {
            let mut sim = self.sim();
            let (error_rate, reset_rate) = (sim.faults.error_rate, sim.faults.reset_rate);
            (sim.latency(), sim.roll(reset_rate), sim.roll(error_rate))
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if reset {
            return Err(Reset);
        }
        let Some(api_path) = path.strip_prefix("/api2/json") else {
            return Ok(error(&PveError {
                status: 501,
                message: format!("no such file '{path}'"),
                errors: None,
            }));
        };
        let params = match parse_params(&method, &query, &body, &content_type) {
            Ok(p) => p,
            Err(e) => return Ok(error(&e)),
        };
        if fail {
            let status = if self.sim().rng_bool() { 500 } else { 503 };
            let message = if status == 500 {
                "got no worker upid - start worker failed"
            } else {
                "Service Unavailable"
            };
            return Ok(self.logged(
                &method,
                api_path,
                &params,
                Err(PveError {
                    status,
                    message: message.into(),
                    errors: None,
                }),
            ));
        }
        let auth = Auth {
            authorization: &authorization,
            cookie: &cookie,
            csrf: &csrf,
        };
        let result = self.answer(&method, api_path, params.clone(), &auth);
        // A request that never got past authentication is not an operation.
        if matches!(&result, Err(e) if e.status == 401) && api_path != "/access/ticket" {
            return Ok(error(&result.expect_err("matched")));
        }
        Ok(self.logged_envelope(&method, api_path, &params, result))
    }

    /// One authenticated `/admin` request (`path` without `/admin`).
    pub async fn admin_request(
        self: Arc<Self>,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Response<Body> {
        if path == "/resolve" && method == "GET" {
            return self.resolve(query).await;
        }
        if let Some(response) = self
            .admin_routes
            .get()
            .and_then(|r| r(&self, method, path, body))
        {
            return response;
        }
        if let Some(response) = self.clone().inside(method, path, body).await {
            return response;
        }
        self.admin(method, path, body)
    }

    /// One API request after transport and faults: its `data`.
    pub fn api(
        &self,
        method: &str,
        api_path: &str,
        params: Map<String, Value>,
        auth: &Auth,
    ) -> Result<Value, PveError> {
        self.answer(method, api_path, params, auth)
            .map(|mut envelope| envelope.remove("data").unwrap_or(Value::Null))
    }

    /// One API request after transport and faults: log in, or authenticate and call; the
    /// envelope of a success (`data` and what the handler added beside it).
    pub fn answer(
        &self,
        method: &str,
        api_path: &str,
        params: Map<String, Value>,
        auth: &Auth,
    ) -> Result<Map<String, Value>, PveError> {
        if api_path == "/access/ticket" && method == "POST" {
            return self.ticket(&params).map(envelope);
        }
        let user = self.authenticate(method, auth.authorization, auth.cookie, auth.csrf)?;
        self.call(method, api_path, params, user)
    }

    /// Logs the call and saves the state after a successful write, then answers.
    pub(crate) fn logged(
        &self,
        method: &str,
        path: &str,
        params: &Map<String, Value>,
        result: Result<Value, PveError>,
    ) -> Response<Body> {
        self.logged_envelope(method, path, params, result.map(envelope))
    }

    /// As [`Server::logged`], with the whole envelope of a success.
    pub(crate) fn logged_envelope(
        &self,
        method: &str,
        path: &str,
        params: &Map<String, Value>,
        result: Result<Map<String, Value>, PveError>,
    ) -> Response<Body> {
        let status = result.as_ref().map_or_else(|e| e.status, |_| 200);
        let mut sim = self.sim();
        sim.oplog
            .push(Operation::new(method, path, redact(params), status));
        if method != "GET" && status == 200 {
            sim.save();
        }
        drop(sim);
        match result {
            Ok(envelope) => respond(200, "OK", &Value::Object(envelope)),
            Err(e) => error(&e),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        mut params: Map<String, Value>,
        user: String,
    ) -> Result<Map<String, Value>, PveError> {
        let (template, vars) = crate::schema::route(path).ok_or_else(|| PveError {
            status: 501,
            message: format!("Method '{method} {path}' not implemented"),
            errors: None,
        })?;
        if !crate::schema::methods(template).iter().any(|m| m == method) {
            return Err(PveError {
                status: 501,
                message: format!("Method '{method} {path}' not implemented"),
                errors: None,
            });
        }
        for (k, v) in vars {
            params.insert(k, Value::String(v));
        }
        api::validate(template, method, &params)?;
        if user.contains('!') && !crate::schema::allows_token(template, method) {
            return Err(PveError {
                status: 403,
                message: format!("URI '{path}' not available with API token, need proper ticket."),
                errors: None,
            });
        }
        let mut sim = self.sim();
        if template.ends_with("/tasks/{upid}/status") && sim.faults.lose_task_status {
            return Err(PveError::param("upid", "no such task"));
        }
        sim.result_attribs.clear();
        let data = api::dispatch(
            &mut sim,
            &Call {
                method,
                template,
                params,
                user,
            },
        )?;
        let mut envelope = envelope(data);
        // PVE's formatter: `changes` and `total` beside `data`, when they are set at all.
        for (name, value) in std::mem::take(&mut sim.result_attribs) {
            envelope.insert(name, value);
        }
        Ok(envelope)
    }

    fn token_ok(&self, authorization: &str) -> bool {
        let Some(rest) = authorization.strip_prefix("PVEAPIToken") else {
            return false;
        };
        let rest = rest.trim_start_matches(['=', ' ']);
        match rest.rsplit_once('=') {
            Some((id, secret)) => id == self.creds.token_id && secret == self.creds.token_secret,
            None => false,
        }
    }

    fn authenticate(
        &self,
        method: &str,
        authorization: &str,
        cookie: &str,
        csrf: &str,
    ) -> Result<String, PveError> {
        let unauthorized = |m: &str| PveError {
            status: 401,
            message: m.into(),
            errors: None,
        };
        let now = crate::cluster::now_s();
        if let Some(rest) = authorization.strip_prefix("PVEAPIToken") {
            // `USER@REALM!TOKENID=SECRET`, split at the last `=`; a disabled or expired user
            // or token, or a wrong secret, is refused alike.
            let rest = rest.trim_start_matches(['=', ' ']);
            let (id, secret) = rest.rsplit_once('=').unwrap_or((rest, ""));
            return self
                .sim()
                .cluster
                .access
                .verify_token(id, secret, now)
                .map_err(|_| unauthorized("Authentication failed!"));
        }
        let ticket = cookie
            .split(';')
            .find_map(|c| c.trim().strip_prefix("PVEAuthCookie="))
            .or_else(|| authorization.strip_prefix("PVEAuthCookie="))
            .map(|t| {
                t.replace("%3A", ":")
                    .replace("%3D", "=")
                    .replace("%2F", "/")
                    .replace("%2B", "+")
            });
        let Some(ticket) = ticket else {
            return Err(unauthorized("No ticket"));
        };
        if !self
            .tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&ticket)
        {
            return Err(unauthorized("Authentication failed!"));
        }
        let user = ticket.split(':').nth(1).unwrap_or_default().to_owned();
        if self.sim().cluster.access.user_enabled(&user, now).is_err() {
            return Err(unauthorized("Authentication failed!"));
        }
        if method != "GET" && csrf != csrf_token(&ticket) {
            return Err(unauthorized("Permission denied - invalid csrf token"));
        }
        Ok(user)
    }

    fn ticket(&self, params: &Map<String, Value>) -> Result<Value, PveError> {
        let text = |k: &str| {
            params
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let (username, password) = (text("username"), text("password"));
        // A ticket of the same user renews it (PVE's ticket refresh).
        let known_ticket = password.split(':').nth(1) == Some(username.as_str())
            && self
                .tickets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&password);
        let accepted = {
            let (sim, now) = (self.sim(), crate::cluster::now_s());
            let access = &sim.cluster.access;
            access.user_enabled(&username, now).is_ok()
                && (known_ticket || access.password_ok(&username, &password, now))
        };
        if !accepted {
            return Err(PveError {
                status: 401,
                message: "authentication failure".into(),
                errors: None,
            });
        }
        let ticket = format!(
            "PVE:{username}:{:08X}::{}",
            crate::cluster::now_s(),
            uuid::Uuid::new_v4().simple()
        );
        self.tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ticket.clone());
        Ok(
            json!({"username": username, "ticket": ticket, "CSRFPreventionToken": csrf_token(&ticket), "clustername": "phoenix",
                  "cap": {"vms": {"VM.Allocate": 1}}}),
        )
    }

    /// The admin routes into a guest's or a node's inside (`guests/{vmid}/…`,
    /// `nodes/{node}/…`): `POST …/exec` (`{"command": [argv]}` → `{"exitcode",
    /// "output"}`), `POST …/push` (`{"path", "content", "perms"?}`, as `pct push
    /// --perms`), `PUT …/answers` (a list of answers), `GET …/inside` (files with their
    /// modes, command log, services, enabled units); on nodes `GET …/files` (`{path:
    /// content}`) and `PUT …/files` (`{"path", "content"}`, written as over SSH).
    async fn inside(
        self: Arc<Self>,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Option<Response<Body>> {
        let (owner, action) = Owner::route(path)?;
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let result = match (method, action, &owner) {
            ("POST", "exec", _) => {
                let argv: Vec<String> = body["command"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                // The command goes on when the caller goes away, as a process in a guest
                // does when the SSH session that started it drops.
                let server = self.clone();
                tokio::spawn(async move { server.run_in(&owner, argv).await })
                    .await
                    .unwrap_or_else(|e| Err(PveError::server(e.to_string())))
                    .map(|(code, output)| json!({"exitcode": code, "output": output}))
            }
            ("POST", "push", _) => self.push(&owner, &body),
            ("PUT", "answers", _) => match serde_json::from_value(body) {
                Ok(answers) => self.with_inside(&owner, |inside| {
                    inside.answers = answers;
                    Value::Null
                }),
                Err(e) => Err(PveError {
                    status: 400,
                    message: format!("invalid answers: {e}"),
                    errors: None,
                }),
            },
            ("GET", "inside", _) => owner.change(&mut self.sim(), inside_summary),
            ("GET", "files", Owner::Node(_)) => {
                owner.change(&mut self.sim(), |inside| json!(inside.files))
            }
            ("PUT", "files", Owner::Node(node)) => self.write_node_file(node, &body),
            _ => return None,
        };
        Some(match result {
            Ok(v) => respond(200, "OK", &v),
            Err(e) => error(&e),
        })
    }

    /// Changes the inside of `owner` with `f` and saves the state.
    fn with_inside(
        &self,
        owner: &Owner,
        f: impl FnOnce(&mut crate::inside::Inside) -> Value,
    ) -> Result<Value, PveError> {
        let mut sim = self.sim();
        let result = owner.change(&mut sim, f);
        sim.save();
        result
    }

    fn push(&self, owner: &Owner, body: &Value) -> Result<Value, PveError> {
        let (Some(path), Some(content)) = (body["path"].as_str(), body["content"].as_str()) else {
            return Err(PveError {
                status: 400,
                message: "push needs path and content".into(),
                errors: None,
            });
        };
        // pct's `--perms`: octal by default, `0x` for hexadecimal; the file has its mode
        // before any content is written into it.
        let perms = match body["perms"].as_str() {
            Some(perms) => Some(
                crate::inside::parse_perms(perms).map_err(|message| PveError {
                    status: 400,
                    message,
                    errors: None,
                })?,
            ),
            None => None,
        };
        self.with_inside(owner, |inside| {
            inside.push(path, content.to_owned(), perms);
            Value::Null
        })
    }

    /// `PUT nodes/{node}/files`: a file written on a node as over SSH; its path must be
    /// absolute and stay below `/` (no `..`), as the mirror on disk requires.
    fn write_node_file(&self, node: &str, body: &Value) -> Result<Value, PveError> {
        let bad = |message: String| PveError {
            status: 400,
            message,
            errors: None,
        };
        let (Some(path), Some(content)) = (body["path"].as_str(), body["content"].as_str()) else {
            return Err(bad(
                "want {path, content, mode?} for a node of the cluster".into()
            ));
        };
        if !path.starts_with('/') || crate::node_mirror::relative(path).is_err() {
            return Err(bad(format!(
                "refused path {path:?}: absolute, without '..', naming a file"
            )));
        }
        // As `umask 077` then `chmod MODE` leave it; 0600 when no mode is given.
        let mode = match body["mode"].as_str() {
            None => 0o600,
            Some(text) => crate::inside::parse_perms(text).map_err(bad)?,
        };
        let mut sim = self.sim();
        if sim.cluster.node(node).is_none() {
            return Err(Owner::Node(node.to_owned()).missing());
        }
        sim.on_node(node, |c| {
            c.write_node_file(node, path, content.to_owned(), mode)
        });
        sim.save();
        Ok(Value::Null)
    }

    /// Runs `argv` inside a running guest, a step at a time, sleeping out delays without
    /// the lock; the state is saved at each pause, so a crash leaves the partial run in
    /// the log.
    pub async fn exec(&self, vmid: u32, argv: Vec<String>) -> Result<(i32, String), PveError> {
        self.run_in(&Owner::Guest(vmid), argv).await
    }

    /// Runs `argv` in the inside of `owner`, as [`Server::exec`]; `flock FILE …` waits
    /// for the runs that hold that lock file of the same owner.
    async fn run_in(&self, owner: &Owner, argv: Vec<String>) -> Result<(i32, String), PveError> {
        let (lock, argv) = match crate::inside::flock_target(&argv) {
            Some((file, rest)) => {
                let lock = self
                    .flocks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(owner.flock_key(file))
                    .or_default()
                    .clone();
                (Some(lock), rest.to_vec())
            }
            None => (None, argv),
        };
        let _held = match &lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let mut run = {
            let mut sim = self.sim();
            // Tasks that have ended (a pool made through the API) are there for the shell.
            sim.cluster.tick();
            owner.ready(&sim)?;
            match owner.change(&mut sim, |inside| crate::inside::Run::new(inside, &argv))? {
                Ok(run) => run,
                Err(message) => return Ok((127, message)),
            }
        };
        loop {
            let step = {
                let mut sim = self.sim();
                let now = crate::cluster::now_ms() as u64;
                let step = owner
                    .step(&mut sim, &mut run, now)
                    .map_err(|_| owner.gone())?;
                if !matches!(step, crate::inside::Step::Continue) {
                    sim.save();
                }
                step
            };
            match step {
                crate::inside::Step::Continue => {}
                crate::inside::Step::Wait(delay) => tokio::time::sleep(delay).await,
                crate::inside::Step::Exited(code) => return Ok((code, run.output)),
            }
        }
    }

    fn admin(&self, method: &str, path: &str, body: &[u8]) -> Response<Body> {
        let mut sim = self.sim();
        sim.cluster.tick();
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let ok = |v: Value| respond(200, "OK", &v);
        match (method, segments.as_slice()) {
            ("GET", ["oplog"]) => ok(json!(sim.oplog)),
            ("DELETE", ["oplog"]) => {
                sim.oplog.clear();
                ok(Value::Null)
            }
            ("GET", ["faults"]) => ok(json!(sim.faults)),
            ("PUT", ["faults"]) => match serde_json::from_slice::<Faults>(body) {
                Ok(faults) => {
                    sim.faults = faults;
                    ok(json!(sim.faults))
                }
                Err(e) => error(&PveError {
                    status: 400,
                    message: format!("invalid faults: {e}"),
                    errors: None,
                }),
            },
            ("GET", ["guests"]) => ok(json!(sim.cluster.guests)),
            ("GET", ["swarms"]) => ok(json!(sim.cluster.swarms)),
            ("GET", ["guests", vmid]) => match vmid
                .parse::<u32>()
                .ok()
                .and_then(|v| sim.cluster.guests.get(&v))
            {
                Some(g) => ok(json!(g)),
                None => error(&PveError {
                    status: 404,
                    message: format!("no guest {vmid}"),
                    errors: None,
                }),
            },
            ("GET", ["tasks"]) => ok(json!(sim.cluster.tasks.values().collect::<Vec<_>>())),
            ("GET", ["access"]) => ok(access_summary(&sim.cluster.access)),
            ("GET", ["firewall"]) => ok(json!(sim.cluster.firewall)),
            ("GET", ["nodes", node, "network"]) => match sim.cluster.node(node) {
                Some(n) => ok(node_network(&n.network)),
                None => error(&Owner::Node((*node).to_owned()).missing()),
            },
            ("GET", ["nodes", node, "firewall"]) => match sim.cluster.node(node) {
                Some(n) => ok(json!(n.firewall)),
                None => error(&Owner::Node((*node).to_owned()).missing()),
            },
            ("GET", ["nodes", node, "zfs"]) => match sim.cluster.node(node) {
                Some(n) => ok(n.zfs.summary()),
                None => error(&Owner::Node((*node).to_owned()).missing()),
            },
            ("GET", ["nodes", node, "exports"]) => match sim.cluster.node(node) {
                Some(n) => ok(crate::exports::summary(&n.exports)),
                None => error(&Owner::Node((*node).to_owned()).missing()),
            },
            _ => error(&PveError {
                status: 404,
                message: format!("no admin route {method} {path}"),
                errors: None,
            }),
        }
    }
}

impl Sim {
    fn rng_bool(&mut self) -> bool {
        self.roll(0.5)
    }
}

/// `GET /admin/access`: users, the roles made through the API with their privileges, the
/// ACL, and the tokens (ids and privilege separation; secrets are never kept in clear).
fn access_summary(access: &crate::access::Access) -> Value {
    let users: Vec<Value> = access
        .users
        .iter()
        .map(|(id, u)| {
            json!({"userid": id, "enable": u.enable, "expire": u.expire, "groups": u.groups,
                              "comment": u.comment, "email": u.email,
                              "hasPassword": u.password_sha256.is_some()})
        })
        .collect();
    let tokens: Vec<Value> = access
        .users
        .iter()
        .flat_map(|(id, u)| {
            u.tokens.iter().map(move |(name, t)| {
                json!({"tokenid": format!("{id}!{name}"), "privsep": t.privsep, "expire": t.expire,
                       "comment": t.comment})
            })
        })
        .collect();
    json!({"users": users, "groups": access.groups, "roles": access.roles, "acl": access.acl, "tokens": tokens})
}

/// `GET /admin/nodes/{node}/network`: the running and the pending interfaces, each as
/// `GET /nodes/{node}/network` lists them.
fn node_network(network: &crate::network::Network) -> Value {
    let pending = network.pending.as_ref().map(|_| network.read());
    json!({
        "running": api::network::listed(network.read_running(), None),
        "pending": pending.map(|config| api::network::listed(config, None)),
    })
}

/// `{"data": data}`: the envelope of every success.
fn envelope(data: Value) -> Map<String, Value> {
    let mut envelope = Map::new();
    envelope.insert("data".into(), data);
    envelope
}

/// The CSRF token PVE pairs with a ticket (here derived from it, so it needs no storage).
fn csrf_token(ticket: &str) -> String {
    use ring::digest::{SHA256, digest};
    let hash: String = digest(&SHA256, ticket.as_bytes()).as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let issued = ticket.split(':').nth(2).unwrap_or("00000000");
    format!("{issued}:{hash}")
}

/// Passwords and secrets never reach the operation log.
fn redact(params: &Map<String, Value>) -> Map<String, Value> {
    params
        .iter()
        .map(|(k, v)| {
            let secret = matches!(
                k.as_str(),
                "password"
                    | "confirmation-password"
                    | "cipassword"
                    | "content"
                    | "input-data"
                    | "ssh-public-keys"
                    | "sshkeys"
                    | "token"
                    | "secret"
            );
            let value = match v {
                _ if secret => json!("<redacted>"),
                // A guest command's argv may carry a swarm join token.
                Value::Array(words) => Value::Array(
                    words
                        .iter()
                        .map(|w| match w.as_str() {
                            Some(t) if t.starts_with("SWMTKN-") => json!("<redacted>"),
                            _ => w.clone(),
                        })
                        .collect(),
                ),
                other => other.clone(),
            };
            (k.clone(), value)
        })
        .collect()
}

/// Query string and body (form or JSON); a form key repeated becomes an array.
/// The body (form or JSON; a form key repeated becomes an array), then the query string
/// on top, as PVE merges them; DELETE takes the query only.
fn parse_params(
    method: &str,
    query: &str,
    body: &[u8],
    content_type: &str,
) -> Result<Map<String, Value>, PveError> {
    let mut params = Map::new();
    if method != "DELETE" && content_type.starts_with("application/json") && !body.is_empty() {
        let parsed: Value = serde_json::from_slice(body).map_err(|e| PveError {
            status: 400,
            message: format!("unable to parse JSON body - {e}"),
            errors: None,
        })?;
        if let Value::Object(map) = parsed {
            params.extend(map);
        }
    } else if method != "DELETE" {
        for (k, v) in form_urlencoded::parse(body) {
            let (k, v) = (k.into_owned(), Value::String(v.into_owned()));
            match params.get_mut(&k) {
                Some(Value::Array(a)) => a.push(v),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, v]);
                }
                None => {
                    params.insert(k, v);
                }
            }
        }
    }
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        params.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    Ok(params)
}

fn respond(status: u16, reason: &str, body: &Value) -> Response<Body> {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Server", "pve-api-daemon/3.0")
        .header("Content-Type", "application/json;charset=UTF-8")
        .header("Cache-Control", "max-age=0")
        .header("Pragma", "no-cache")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap_or_default())).boxed())
        .expect("static response parts are valid");
    // PVE carries the error text in the reason phrase (the first line of it).
    let phrase: String = reason
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii() && !c.is_control())
        .collect();
    if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(phrase.into_bytes()) {
        response.extensions_mut().insert(phrase);
    }
    response
}

fn error(e: &PveError) -> Response<Body> {
    let mut body = json!({"data": null, "message": format!("{}\n", e.message)});
    if let Some(errors) = &e.errors {
        body["errors"] = Value::Object(errors.clone());
    }
    respond(e.status, &e.message, &body)
}
