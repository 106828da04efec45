//! The simulated PVE the unit tests drive without a network: one node, no task durations,
//! root's password and token known; calls made by root's token as the HTTPS front makes
//! them, and the admin endpoint.

use crate::api::PveError;
use crate::cluster::Cluster;
use crate::server::{Auth, Credentials, Server};
use crate::state::Sim;
use http_body_util::BodyExt;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// The `Authorization` header of root's token.
pub const ROOT_TOKEN: &str = "PVEAPIToken=root@pam!phoenix=root-secret";

/// A server over `cluster`, saving its state to `state_file` when given.
pub fn server_with(cluster: Cluster, state_file: Option<PathBuf>) -> Server {
    let durations = [("default".to_string(), std::time::Duration::ZERO)].into();
    let creds = Credentials {
        user: "root@pam".into(),
        password: "root-password".into(),
        token_id: "root@pam!phoenix".into(),
        token_secret: "root-secret".into(),
    };
    Server::new(Sim::new(cluster, 1, durations, state_file), creds)
}

/// A call by root's token as the HTTPS front makes it: answered (a success with its whole
/// envelope), logged, the state saved after a write.
pub fn answer(
    server: &Server,
    method: &str,
    path: &str,
    body: Value,
) -> Result<Map<String, Value>, PveError> {
    let auth = Auth {
        authorization: ROOT_TOKEN,
        cookie: "",
        csrf: "",
    };
    let params: Map<String, Value> = body.as_object().cloned().unwrap_or_default();
    let result = server.answer(method, path, params.clone(), &auth);
    server.logged_envelope(method, path, &params, result.clone());
    result
}

/// As [`answer`], the `data` of a success.
pub fn api(server: &Server, method: &str, path: &str, body: Value) -> Result<Value, PveError> {
    answer(server, method, path, body).map(|mut e| e.remove("data").unwrap_or(Value::Null))
}

/// The `data` of a call that must succeed.
pub fn ok(server: &Server, method: &str, path: &str, body: Value) -> Value {
    api(server, method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e:?}"))
}

/// A 400's `errors` entry for `param`.
pub fn param_error(result: Result<Value, PveError>, param: &str) -> String {
    let e = result.expect_err("refused");
    assert_eq!(
        (e.status, e.message.as_str()),
        (400, "Parameter verification failed.")
    );
    e.errors.expect("errors")[param]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `GET /admin{path}`'s answer.
pub async fn admin(server: &Arc<Server>, path: &str) -> Value {
    let response = server.clone().admin_request("GET", path, "", b"").await;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}
