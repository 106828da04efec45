//! What can go wrong in a reconcile, with a stable category per variant: the label of the
//! error metric, the reason of the Ready condition and of the Warning event.

use phoenix_clients::portainer::ErrorKind as PortainerKind;
use phoenix_clients::proxmox::ProxmoxError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Proxmox(#[from] ProxmoxError),
    #[error("credentials Secret {0}: {1}")]
    Credentials(String, String),
    /// No ProxmoxCluster by that name, or none at all, or several and no `clusterRef`.
    #[error("{0}")]
    ClusterNotFound(String),
    #[error("ProxmoxCluster {0} is not Ready yet")]
    ClusterNotReady(String),
    /// The spec asks for something the cluster cannot give: the reason says what.
    #[error("{message}")]
    Spec {
        reason: &'static str,
        message: String,
    },
    /// The VMID is held by another object or by a guest Phoenix does not own.
    #[error("{message}")]
    Conflict {
        reason: &'static str,
        message: String,
    },
    /// Running something inside a guest failed (connection, host key, agent).
    #[error(transparent)]
    Exec(#[from] phoenix_clients::exec::ExecError),
    /// A feature's script exited non-zero: the step it was in and its last lines.
    #[error("feature {feature} failed in step {step} (exit {exit_code}): {tail}")]
    FeatureFailed {
        feature: String,
        step: String,
        exit_code: i32,
        tail: String,
    },
    /// A failed change was rolled back to the snapshot taken before it; it is not retried
    /// until the spec changes.
    #[error("{message}")]
    RolledBack { message: String },
    /// Issuing over ACME failed: the CA is unreachable, refused, or its root is not the
    /// pinned one (permanent: retrying cannot help).
    #[error("{message}")]
    Acme {
        reason: &'static str,
        message: String,
        permanent: bool,
    },
    /// Something the spec refers to (a ConfigMap key) is not there yet; retried.
    #[error("{message}")]
    Input {
        reason: &'static str,
        message: String,
    },
    /// A swarm step in a VM failed (docker refused, the manager is not there yet); retried.
    #[error("{message}")]
    Swarm {
        reason: &'static str,
        message: String,
    },
    /// Portainer answered with an error, or did not answer.
    #[error(transparent)]
    Portainer(#[from] phoenix_clients::portainer::PortainerError),
    /// A PVE task ended with an error exit status.
    #[error("PVE task {upid} failed: {exitstatus}")]
    TaskFailed { upid: String, exitstatus: String },
    /// A step of a host's setup failed (a command on the node, or a PVE call): which step,
    /// and why. Retried with backoff unless what failed cannot be helped by retrying.
    #[error("host step {step} failed: {source}")]
    HostStep { step: String, source: Box<Error> },
    /// A failure told again while what failed waits out its backoff.
    #[error("{message}")]
    Waiting {
        category: &'static str,
        permanent: bool,
        message: String,
    },
}

impl Error {
    /// Stable label for metrics, conditions and events.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesApi",
            Error::Proxmox(e) => e.kind.category(),
            Error::Credentials(..) => "CredentialsMissing",
            Error::ClusterNotFound(_) => "ClusterNotFound",
            Error::ClusterNotReady(_) => "ClusterNotReady",
            Error::Spec { reason, .. }
            | Error::Conflict { reason, .. }
            | Error::Acme { reason, .. }
            | Error::Swarm { reason, .. }
            | Error::Input { reason, .. } => reason,
            Error::TaskFailed { .. } => "TaskFailed",
            Error::Exec(e) => e.category(),
            Error::Portainer(e) => e.category(),
            Error::FeatureFailed { .. } => "FeatureFailed",
            Error::RolledBack { .. } => "ChangeRolledBack",
            // A spec the step cannot work with keeps its own reason.
            Error::Waiting { category, .. } => category,
            Error::HostStep { source, .. } => match **source {
                Error::Spec { reason, .. } | Error::Conflict { reason, .. } => reason,
                _ => "HostStepFailed",
            },
        }
    }

    /// Permanent errors wait for a change of the spec (or of the cluster) rather than
    /// being retried in a loop.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Spec { .. } | Error::Conflict { .. } | Error::RolledBack { .. } => true,
            Error::Exec(e) => !e.is_transient(),
            Error::Acme { permanent, .. } => *permanent,
            // Refused content or a timed-out first start: retrying the same cannot help.
            Error::Portainer(e) => matches!(
                e.kind,
                PortainerKind::Invalid | PortainerKind::AdminInitTimeout
            ),
            Error::Proxmox(e) => !e.is_transient() && e.status.is_some_and(|s| s == 400),
            Error::HostStep { source, .. } => source.is_permanent(),
            Error::Waiting { permanent, .. } => *permanent,
            _ => false,
        }
    }

    pub fn spec(reason: &'static str, message: impl Into<String>) -> Self {
        Error::Spec {
            reason,
            message: message.into(),
        }
    }

    /// A swarm command (`docker …` in a VM) that exited non-zero: what it was, its code
    /// and its last lines.
    pub fn swarm_command(
        reason: &'static str,
        what: &str,
        out: &phoenix_clients::exec::ExecOutput,
    ) -> Self {
        Error::Swarm {
            reason,
            message: format!(
                "{what} failed (exit {}): {}",
                out.exit_code,
                out.tail(5).trim()
            ),
        }
    }

    /// Host step `step` failed because of `source` (PVE's error, the node unreachable...).
    pub fn host_step(step: &str, source: impl Into<Error>) -> Self {
        Error::HostStep {
            step: step.to_owned(),
            source: Box::new(source.into()),
        }
    }

    /// Host step `step` ran a command on the node that exited non-zero.
    pub fn host_step_exit(step: &str, out: &phoenix_clients::exec::ExecOutput) -> Self {
        let detail = format!("exit {}: {}", out.exit_code, out.tail(5).trim());
        Error::host_step(step, phoenix_clients::exec::ExecError::Refused(detail))
    }

    pub fn conflict(reason: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            reason,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_clients::proxmox::ProxmoxError;
    use std::collections::BTreeMap;

    #[test]
    fn categories_are_stable_and_permanence_follows_pve() {
        let locked = ProxmoxError::from_response(500, "CT is locked (disk)", BTreeMap::new());
        let invalid = ProxmoxError::from_response(
            400,
            "Parameter verification failed.",
            BTreeMap::from([("memory".into(), "value must be at least 16".into())]),
        );
        assert_eq!(Error::from(locked.clone()).category(), "ProxmoxTransient");
        assert!(!Error::from(locked).is_permanent());
        assert!(Error::from(invalid).is_permanent());
        let spec = Error::spec("TemplateNotFound", "no template 900");
        assert_eq!(spec.category(), "TemplateNotFound");
        assert!(spec.is_permanent());
    }
}
