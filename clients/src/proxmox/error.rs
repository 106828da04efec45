//! PVE errors, classified: what is worth retrying (locks, timeouts, unreachable nodes,
//! failed workers) and what is not (bad parameters, refusals), with PVE's own message.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Locks, `got timeout`, 503, unreachable nodes, connection errors: retry with backoff.
    Transient,
    /// The guest (or task, storage...) does not exist.
    NotFound,
    /// A guest with that VMID exists already.
    AlreadyExists,
    /// 400 parameter verification: the `errors` map says which parameter.
    Invalid,
    /// 401/403: credentials or permissions.
    Unauthorized,
    /// TLS: the certificate is not the one trusted.
    Tls,
    /// Any other refusal PVE gives (wrong state, protection, ...).
    Refused,
}

impl ErrorKind {
    /// Stable label for metrics, conditions and events.
    pub fn category(self) -> &'static str {
        match self {
            ErrorKind::Transient => "ProxmoxTransient",
            ErrorKind::NotFound => "ProxmoxNotFound",
            ErrorKind::AlreadyExists => "ProxmoxAlreadyExists",
            ErrorKind::Invalid => "ProxmoxInvalid",
            ErrorKind::Unauthorized => "ProxmoxUnauthorized",
            ErrorKind::Tls => "ProxmoxTls",
            ErrorKind::Refused => "ProxmoxRefused",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxmoxError {
    pub kind: ErrorKind,
    /// HTTP status, when PVE answered.
    pub status: Option<u16>,
    pub message: String,
    /// Parameter errors of a 400.
    pub errors: BTreeMap<String, String>,
}

impl ProxmoxError {
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// From a PVE answer: status, message (body `message` or reason phrase) and `errors`.
    pub fn from_response(status: u16, message: &str, errors: BTreeMap<String, String>) -> Self {
        let message = message.trim().to_owned();
        Self {
            kind: classify(status, &message, &errors),
            status: Some(status),
            message,
            errors,
        }
    }

    pub fn transport(message: String, tls: bool) -> Self {
        let kind = if tls {
            ErrorKind::Tls
        } else {
            ErrorKind::Transient
        };
        Self {
            kind,
            status: None,
            message,
            errors: BTreeMap::new(),
        }
    }
}

impl fmt::Display for ProxmoxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "PVE {status}: {}", self.message)?,
            None => write!(f, "PVE unreachable: {}", self.message)?,
        }
        for (param, error) in &self.errors {
            write!(f, "; {param}: {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProxmoxError {}

/// PVE answers nearly every semantic failure with 500, so the text decides.
pub fn classify(status: u16, message: &str, errors: &BTreeMap<String, String>) -> ErrorKind {
    let text = message.to_lowercase();
    let any_error = |needle: &str| errors.values().any(|e| e.contains(needle));
    match status {
        401 | 403 => ErrorKind::Unauthorized,
        400 if any_error("already exists") => ErrorKind::AlreadyExists,
        400 if text.contains("no such task")
            || errors.values().any(|e| e.contains("no such task")) =>
        {
            ErrorKind::NotFound
        }
        400 => ErrorKind::Invalid,
        _ if text.contains("is locked")
            || text.contains("got timeout")
            || text.contains("got no worker upid") =>
        {
            ErrorKind::Transient
        }
        502..=504 | 595 | 596 | 429 => ErrorKind::Transient,
        _ if text.contains("does not exist") || text.contains("no such") => ErrorKind::NotFound,
        _ if text.contains("already exists") => ErrorKind::AlreadyExists,
        _ => ErrorKind::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pve_messages_classify() {
        let none = BTreeMap::new();
        assert_eq!(
            classify(500, "CT is locked (disk)", &none),
            ErrorKind::Transient
        );
        assert_eq!(
            classify(
                500,
                "can't lock file '/run/lock/lxc/pve-config-801.lock' - got timeout",
                &none
            ),
            ErrorKind::Transient
        );
        assert_eq!(
            classify(500, "got no worker upid - start worker failed", &none),
            ErrorKind::Transient
        );
        assert_eq!(
            classify(503, "Service Unavailable", &none),
            ErrorKind::Transient
        );
        assert_eq!(
            classify(
                500,
                "Configuration file 'nodes/pve/lxc/801.conf' does not exist",
                &none
            ),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify(500, "CT 801 already exists on node 'pve'", &none),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            classify(500, "can't remove CT 801 - protection mode enabled", &none),
            ErrorKind::Refused
        );
        assert_eq!(
            classify(401, "authentication failure", &none),
            ErrorKind::Unauthorized
        );
        let exists = BTreeMap::from([("vmid".to_string(), "VM 801 already exists".to_string())]);
        assert_eq!(
            classify(400, "Parameter verification failed.", &exists),
            ErrorKind::AlreadyExists
        );
        let bad = BTreeMap::from([(
            "memory".to_string(),
            "type check ('integer') failed - got 'x'".to_string(),
        )]);
        let e = ProxmoxError::from_response(400, "Parameter verification failed.\n", bad);
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert_eq!(
            e.to_string(),
            "PVE 400: Parameter verification failed.; memory: type check ('integer') failed - got 'x'"
        );
    }
}
