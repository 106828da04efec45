//! Status conditions as Kubernetes tools expect them: one per type, `lastTransitionTime`
//! kept while the status does not change, `observedGeneration` always current. Every kind
//! summarises a pass in `Ready`, `Reconciling` and `Stalled` through [`summarize`], the
//! conventions kstatus (Flux, `kubectl wait`) reads; the types and the reasons the
//! controllers share are named here, once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types.
pub const READY: &str = "Ready";
/// True while work towards the spec is under way (kstatus: InProgress).
pub const RECONCILING: &str = "Reconciling";
/// True when only a change of the spec (or of the cluster) can help (kstatus: Failed).
pub const STALLED: &str = "Stalled";
pub const DRIFTED: &str = "Drifted";
pub const RESTART_REQUIRED: &str = "RestartRequired";
pub const PROVISIONED: &str = "Provisioned";
pub const HEALTHY: &str = "Healthy";
pub const ISSUING: &str = "Issuing";
pub const INSTALLED: &str = "Installed";
/// ProxmoxHost areas.
pub const NODE_SETTINGS_READY: &str = "NodeSettingsReady";
pub const DNS_READY: &str = "DnsReady";
pub const STORAGE_READY: &str = "StorageReady";
pub const NETWORK_READY: &str = "NetworkReady";
pub const SYSTEM_READY: &str = "SystemReady";
/// ProxmoxCluster: the datacenter firewall; ProxmoxHost: the node's.
pub const FIREWALL_READY: &str = "FirewallReady";
/// ProxmoxCluster: PVE's users, groups and ACL entries of `spec.access`.
pub const ACCESS_READY: &str = "AccessReady";

/// Reasons shared by several kinds or conditions (a failure's reason is its error
/// category, see `error.rs`; a step's is its own, see `guest::decide`).
pub mod reason {
    pub const WAITING_FOR_DEPENDENCIES: &str = "WaitingForDependencies";
    pub const WAITING_FOR_STARTUP_ORDER: &str = "WaitingForStartupOrder";
    pub const WAITING_FOR_INPUT: &str = "WaitingForInput";
    pub const WAITING_FOR_CLONE_SOURCE: &str = "WaitingForCloneSource";
    pub const WAITING_FOR_GUESTS: &str = "WaitingForGuests";
    /// Waiting for a slot of the node's task budget or a template's clone lock.
    pub const QUEUED: &str = "Queued";
    pub const LOCKED: &str = "Locked";
    pub const TASK_RUNNING: &str = "TaskRunning";
    pub const OBSERVING: &str = "Observing";
    pub const CONFIGURED: &str = "Configured";
    pub const ADOPTED: &str = "Adopted";
    pub const RUNNING: &str = "Running";
    pub const STOPPED: &str = "Stopped";
    pub const TEMPLATE: &str = "Template";
    pub const PROVISIONING: &str = "Provisioning";
    pub const APPLYING: &str = "Applying";
    pub const FEATURES_APPLIED: &str = "FeaturesApplied";
    pub const HEALTHY: &str = "Healthy";
    pub const UNHEALTHY: &str = "Unhealthy";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    pub const DRIFT_CORRECTED: &str = "DriftCorrected";
    pub const RESTART_REQUIRED: &str = "RestartRequired";
    pub const FIREWALL_CONFIGURED: &str = "FirewallConfigured";
    pub const CONNECTED: &str = "Connected";
    pub const CURRENT: &str = "Ready";
    pub const INSTALLED: &str = "Installed";
    pub const ISSUE_FAILED: &str = "Failed";
    pub const DOES_NOT_EXIST: &str = "DoesNotExist";
    pub const INCORRECT_CERTIFICATE: &str = "IncorrectCertificate";
    pub const RENEWING: &str = "Renewing";
    pub const CLUSTER_REF_REQUIRED: &str = "ClusterRefRequired";
    pub const ACME_DIRECTORY_NOT_ALLOWED: &str = "AcmeDirectoryNotAllowed";
    pub const DOCKER_CLIENT_CA: &str = "DockerClientCa";
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    pub const HOST_POWER_NOT_ALLOWED: &str = "HostPowerNotAllowed";
    pub const ACME_FAILED: &str = "AcmeFailed";
    pub const ADOPTION_MISMATCH: &str = "AdoptionMismatch";
    pub const AGENT_NOT_RESPONDING: &str = "AgentNotResponding";
    pub const CERTIFICATE_MISMATCH: &str = "CertificateMismatch";
    pub const CHECK_FAILED: &str = "CheckFailed";
    pub const CHECKS_PASSING: &str = "ChecksPassing";
    pub const CLONE_SOURCE_NOT_FOUND: &str = "CloneSourceNotFound";
    pub const CLONE_SOURCE_NOT_TEMPLATE: &str = "CloneSourceNotTemplate";
    pub const DELETING: &str = "Deleting";
    pub const DELETION_PROTECTED: &str = "DeletionProtected";
    pub const DEPENDENCY_CYCLE: &str = "DependencyCycle";
    pub const IMAGE_NOT_FOUND: &str = "ImageNotFound";
    pub const INSTALL_FAILED: &str = "InstallFailed";
    pub const INSTALL_MISMATCH: &str = "InstallMismatch";
    pub const INSUFFICIENT_MEMORY: &str = "InsufficientMemory";
    pub const INVALID_IP_ADDRESS: &str = "InvalidIpAddress";
    pub const IS_TEMPLATE: &str = "IsTemplate";
    pub const LEAVING_SWARM: &str = "LeavingSwarm";
    pub const NO_ACME_SERVER: &str = "NoAcmeServer";
    pub const NO_ISSUER: &str = "NoIssuer";
    pub const NO_NODE_AVAILABLE: &str = "NoNodeAvailable";
    pub const NODE_NOT_IN_CLUSTER: &str = "NodeNotInCluster";
    pub const NODE_ADDRESS_UNKNOWN: &str = "NodeAddressUnknown";
    pub const RELOAD_FAILED: &str = "ReloadFailed";
    pub const ROOT_NOT_PINNED: &str = "RootNotPinned";
    pub const SNIPPET_NOT_LISTED: &str = "SnippetNotListed";
    pub const SNIPPET_STORAGE_UNSUPPORTED: &str = "SnippetStorageUnsupported";
    pub const SSH_NOT_CONFIGURED: &str = "SshNotConfigured";
    pub const SWARM_JOIN_PENDING: &str = "SwarmJoinPending";
    pub const TEMPLATE_IN_USE: &str = "TemplateInUse";
    pub const TEMPLATE_NOT_FOUND: &str = "TemplateNotFound";
    pub const USER_DATA_NOT_FOUND: &str = "UserDataNotFound";
    pub const VMID_CLAIMED: &str = "VmidClaimed";
    pub const VMID_IN_USE: &str = "VmidInUse";
    pub const VMID_OWNED_BY_ANOTHER: &str = "VmidOwnedByAnother";
    pub const WAITING_FOR_ADDRESS: &str = "WaitingForAddress";
    pub const WAITING_FOR_AGENT: &str = "WaitingForAgent";
    pub const WAITING_FOR_SWARM_MANAGER: &str = "WaitingForSwarmManager";
    // DockerStack
    pub const ADMIN_INITIALISED: &str = "AdminInitialised";
    pub const ADMIN_PASSWORD_UNKNOWN: &str = "AdminPasswordUnknown";
    pub const API_KEY_CREATED: &str = "ApiKeyCreated";
    pub const DEPLOYED: &str = "Deployed";
    pub const DEPLOYING: &str = "Deploying";
    pub const DEPLOY_FAILED: &str = "DeployFailed";
    pub const ENDPOINT_NOT_FOUND: &str = "EndpointNotFound";
    pub const ENV_NEEDS_PORTAINER: &str = "EnvNeedsPortainer";
    pub const GIT_UNREACHABLE: &str = "GitUnreachable";
    pub const INVALID_COMPOSE: &str = "InvalidCompose";
    pub const INVALID_URL: &str = "InvalidUrl";
    pub const MANAGER_NOT_READY: &str = "ManagerNotReady";
    pub const PORTAINER_STARTING: &str = "PortainerStarting";
    pub const PORTAINER_UNREACHABLE: &str = "PortainerUnreachable";
    pub const SECRET_NOT_OURS: &str = "SecretNotOurs";
    pub const STACK_REMOVED: &str = "StackRemoved";
    pub const STACK_RUNNING: &str = "StackRunning";
    pub const TASKS_NOT_RUNNING: &str = "TasksNotRunning";
    pub const WAITING_FOR_CA_ROOT: &str = "WaitingForCaRoot";
    pub const WAITING_FOR_ENVIRONMENT: &str = "WaitingForEnvironment";
    // ProxmoxHost
    pub const HOST_READY: &str = "HostReady";
    pub const NOT_MANAGED: &str = "NotManaged";
    pub const SETTINGS_APPLIED: &str = "SettingsApplied";
    pub const DNS_SERVING: &str = "Serving";
    pub const RECORDS_UPDATED: &str = "RecordsUpdated";
    pub const DNSMASQ_RESTARTED: &str = "DnsmasqRestarted";
    pub const INVALID_DNSMASQ: &str = "InvalidDnsmasq";
    pub const WOULD_LOCK_OUT: &str = "WouldLockOut";
    pub const FEATURE_APPLIED: &str = "FeatureApplied";
    pub const FEATURE_APPLYING: &str = "FeatureApplying";
    pub const STORAGE_CONFIGURED: &str = "StorageConfigured";
    pub const POOL_CREATING: &str = "PoolCreating";
    pub const POOL_CREATED: &str = "PoolCreated";
    pub const POOL_LAYOUT_DIFFERS: &str = "PoolLayoutDiffers";
    pub const WAITING_FOR_POOL: &str = "WaitingForPool";
    pub const POOL_NOT_FOUND: &str = "PoolNotFound";
    pub const DATASETS_UPDATED: &str = "DatasetsUpdated";
    pub const EXPORTS_UPDATED: &str = "ExportsUpdated";
    pub const STORAGES_UPDATED: &str = "StoragesUpdated";
    pub const STORAGE_MISMATCH: &str = "StorageMismatch";
    pub const NETWORK_CONFIGURED: &str = "NetworkConfigured";
    pub const NETWORK_APPLYING: &str = "NetworkApplying";
    pub const NETWORK_APPLIED: &str = "NetworkApplied";
    pub const NETWORK_APPLY_FAILED: &str = "NetworkApplyFailed";
    pub const PENDING_NETWORK_CHANGES: &str = "PendingNetworkChanges";
    pub const INVALID_BRIDGE: &str = "InvalidBridge";
    pub const INVALID_STORAGE: &str = "InvalidStorage";
    // ProxmoxCluster access
    pub const ACCESS_CONFIGURED: &str = "AccessConfigured";
    pub const ACCESS_UPDATED: &str = "AccessUpdated";
    /// An entry names Phoenix's own user or role, or root@pam: nothing written.
    pub const ACCESS_REFUSED: &str = "AccessRefused";
    /// PVE refused the token: `phoenix setup --manage-access` was not run.
    pub const ACCESS_NOT_PERMITTED: &str = "AccessNotPermitted";
    pub const INVALID_ACCESS: &str = "InvalidAccess";
    pub const GROUP_NOT_FOUND: &str = "GroupNotFound";
    pub const USER_NOT_FOUND: &str = "UserNotFound";
    /// TraefikService.
    pub const HOST_CONFLICT: &str = "HostConflict";
    pub const UNKNOWN_MIDDLEWARE: &str = "UnknownMiddleware";
    pub const INVALID_BACKEND: &str = "InvalidBackend";
    /// The route's Traefik document fails SchemaStore's schema: never written.
    pub const INVALID_ROUTE_DOCUMENT: &str = "InvalidRouteDocument";
    pub const WAITING_FOR_CERTIFICATE: &str = "WaitingForCertificate";
    pub const WAITING_FOR_TRAEFIK: &str = "WaitingForTraefik";
    pub const WAITING_FOR_GATEWAY: &str = "WaitingForGateway";
    pub const GATEWAY_CONFIG_INVALID: &str = "GatewayConfigInvalid";
    pub const GATEWAY_RELOADED: &str = "GatewayReloaded";
    /// A public route without `spec.tls`: the gateway has no certificate to serve.
    pub const MISSING_CERTIFICATE: &str = "MissingCertificate";
    pub const ROUTE_WRITTEN: &str = "RouteWritten";
    pub const ROUTE_REMOVED: &str = "RouteRemoved";
    pub const ROUTE_ANSWERING: &str = "RouteAnswering";
    pub const ROUTE_NOT_ANSWERING: &str = "RouteNotAnswering";
}

/// Where a pass left an object, as kstatus reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Converged: `Ready=True`.
    Ready,
    /// Work under way, waiting, or a transient failure being retried: `Reconciling=True`.
    InProgress,
    /// A permanent failure that waits for a change: `Stalled=True`.
    Stalled,
}

impl Standing {
    /// After a failure: stalled when only a change can help, else in progress (retried).
    pub fn after_failure(permanent: bool) -> Standing {
        if permanent {
            Standing::Stalled
        } else {
            Standing::InProgress
        }
    }
}

/// Sets `Ready`, `Reconciling` and `Stalled` together from one pass's standing, with one
/// reason and message: `Reconciling` and `Stalled` are present only while True (as Flux
/// writes them), `Ready` always.
pub fn summarize(
    conditions: &mut Vec<Condition>,
    standing: Standing,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let ready = standing == Standing::Ready;
    set(conditions, READY, ready, reason, message, generation, now);
    for (type_, on) in [
        (RECONCILING, standing == Standing::InProgress),
        (STALLED, standing == Standing::Stalled),
    ] {
        if on {
            set(conditions, type_, true, reason, message, generation, now);
        } else {
            remove(conditions, type_);
        }
    }
}

/// [`summarize`] after a failed pass: `Stalled` when the error is permanent, else
/// `Reconciling`, with its category as the reason.
pub fn summarize_failure(
    conditions: &mut Vec<Condition>,
    error: &crate::error::Error,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let standing = Standing::after_failure(error.is_permanent());
    let message = error.to_string();
    summarize(
        conditions,
        standing,
        error.category(),
        &message,
        generation,
        now,
    );
}

/// Sets (or replaces) the condition of `type_`; the transition time moves only when the
/// status flips.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let since = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let (t0, t1) = (at("2026-01-01T00:00:00Z"), at("2026-01-01T00:05:00Z"));
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            READY,
            false,
            "Creating",
            "cloning",
            Some(1),
            t0,
        );
        set(
            &mut conditions,
            READY,
            false,
            "Starting",
            "starting",
            Some(1),
            t1,
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time.0, t0, "still False");
        assert_eq!(conditions[0].reason, "Starting");
        set(
            &mut conditions,
            READY,
            true,
            "Running",
            "running",
            Some(2),
            t1,
        );
        assert_eq!(
            (
                conditions[0].last_transition_time.0,
                conditions[0].observed_generation
            ),
            (t1, Some(2))
        );
        assert!(is_true(&conditions, READY));
    }

    /// What kstatus concludes from the conditions: Failed on Stalled, InProgress on
    /// Reconciling, Current on Ready.
    fn kstatus(conditions: &[Condition]) -> &'static str {
        if is_true(conditions, STALLED) {
            "Failed"
        } else if is_true(conditions, RECONCILING) || !is_true(conditions, READY) {
            "InProgress"
        } else {
            "Current"
        }
    }

    #[test]
    fn each_standing_reads_as_kstatus_expects() {
        let now = at("2026-01-01T00:00:00Z");
        let table = [
            (Standing::InProgress, "InProgress", false, true, false),
            (Standing::Stalled, "Failed", false, false, true),
            (Standing::Ready, "Current", true, false, false),
            (Standing::InProgress, "InProgress", false, true, false),
        ];
        let mut conditions = Vec::new();
        for (standing, expected, ready, reconciling, stalled) in table {
            summarize(&mut conditions, standing, "Why", "what", Some(3), now);
            assert_eq!(kstatus(&conditions), expected, "{standing:?}");
            assert_eq!(is_true(&conditions, READY), ready);
            assert_eq!(find(&conditions, RECONCILING).is_some(), reconciling);
            assert_eq!(find(&conditions, STALLED).is_some(), stalled);
            assert!(conditions.iter().all(|c| c.observed_generation == Some(3)));
        }
    }
}
