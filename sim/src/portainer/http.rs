//! The HTTP vocabulary of the simulated Portainer: a request as its handlers read it,
//! a reply in Portainer's shape (`{"message","details"}` errors), who calls.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;

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

    pub fn into_response(self) -> hyper::Response<crate::server::Body> {
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

pub fn no_endpoint() -> Reply {
    Reply::error(
        404,
        "Unable to find an environment with the specified identifier inside the database",
        "Object not found inside the database",
    )
}

pub fn hash(salt: &str, secret: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{salt}{secret}").as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
