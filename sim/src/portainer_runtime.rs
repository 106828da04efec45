//! What Portainer keeps in memory only: JWT sessions, the auth rate limiter and the
//! operation log (method, path, status: never bodies, keys, passwords or env values).

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A JWT's lifetime (`DefaultUserSessionTimeout`).
const SESSION: Duration = Duration::from_secs(8 * 3600);
const BAN: Duration = Duration::from_secs(3600);
/// More than this many limited calls within a second from one IP bans it.
const LIMIT: usize = 10;

#[derive(Clone, Debug, Serialize)]
pub struct OpRecord {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// POST, PUT or DELETE, except logging in.
    pub mutating: bool,
}

#[derive(Default)]
pub struct Runtime {
    sessions: Mutex<HashMap<String, (u32, Instant)>>,
    recent: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    bans: Mutex<HashMap<IpAddr, Instant>>,
    oplog: Mutex<Vec<OpRecord>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Runtime {
    pub fn log(&self, method: &str, path: &str, status: u16) {
        let mutating =
            matches!(method, "POST" | "PUT" | "DELETE") && !path.starts_with("/api/auth");
        locked(&self.oplog).push(OpRecord {
            method: method.into(),
            path: path.into(),
            status,
            mutating,
        });
    }

    pub fn oplog(&self) -> Vec<OpRecord> {
        locked(&self.oplog).clone()
    }

    pub fn clear_oplog(&self) {
        locked(&self.oplog).clear();
    }

    /// A new JWT for `user`.
    pub fn session(&self, user: u32) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = b64.encode(format!(
            r#"{{"id":{user},"jti":"{}"}}"#,
            uuid::Uuid::new_v4()
        ));
        let signature = b64.encode(uuid::Uuid::new_v4().as_bytes());
        let jwt = format!("{header}.{payload}.{signature}");
        locked(&self.sessions).insert(jwt.clone(), (user, Instant::now() + SESSION));
        jwt
    }

    pub fn user_of(&self, jwt: &str) -> Option<u32> {
        let sessions = locked(&self.sessions);
        sessions
            .get(jwt)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(u, _)| *u)
    }

    pub fn end_session(&self, jwt: &str) {
        locked(&self.sessions).remove(jwt);
    }

    /// Counts a rate-limited call; false when `ip` is (now) banned.
    pub fn allow(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut bans = locked(&self.bans);
        if bans.get(&ip).is_some_and(|until| now < *until) {
            return false;
        }
        let mut recent = locked(&self.recent);
        let calls = recent.entry(ip).or_default();
        calls.retain(|t| now.duration_since(*t) < Duration::from_secs(1));
        calls.push_back(now);
        if calls.len() > LIMIT {
            calls.clear();
            bans.insert(ip, now + BAN);
            return false;
        }
        true
    }

    pub fn unban(&self) {
        locked(&self.bans).clear();
        locked(&self.recent).clear();
    }

    pub fn banned(&self) -> Vec<String> {
        let now = Instant::now();
        locked(&self.bans)
            .iter()
            .filter(|(_, u)| now < **u)
            .map(|(ip, _)| ip.to_string())
            .collect()
    }
}
