//! DockerStack: one Docker Swarm stack, deployed through Portainer.

use crate::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One Swarm stack (e.g. qdrant), deployed through Portainer onto a swarm whose manager is
/// a VmGuest, or directly with `docker stack deploy` through the guest agent (how Portainer
/// itself is bootstrapped).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "phoenix.thinkheads.ai",
    version = "v1alpha1",
    kind = "DockerStack",
    namespaced,
    status = "DockerStackStatus",
    shortname = "stack",
    shortname = "stacks",
    category = "phoenix",
    doc = "One Docker Swarm stack, deployed through Portainer or the guest agent",
    printcolumn(
        name = "Manager",
        type_ = "string",
        json_path = ".spec.target.managerRef.name"
    ),
    printcolumn(name = "Via", type_ = "string", json_path = ".spec.target.via"),
    printcolumn(name = "Services", type_ = "string", json_path = ".status.services"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Revision",
        type_ = "string",
        json_path = ".status.deployedRevision",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.portainerBootstrap) || self.target.via == 'Agent'").message("portainerBootstrap is for the stack that deploys Portainer itself: target.via must be Agent"))]
pub struct DockerStackSpec {
    /// Stack name in Swarm; defaults to the object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"), length(max = 63))]
    pub stack_name: Option<String>,
    pub target: StackTarget,
    pub compose: ComposeSource,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Remove services no longer in the compose file.
    #[serde(default = "default_true")]
    pub prune: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyRef>,
    /// Delete removes the stack from the swarm; Retain leaves it running.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// A stack changed or removed by hand: redeployed (Correct) or only reported.
    #[serde(default)]
    pub drift_policy: DriftPolicy,
    /// This stack deploys Portainer: once it answers, Phoenix initialises its admin,
    /// creates an API key and writes it where the other stacks read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portainer_bootstrap: Option<PortainerBootstrap>,
}

/// How Phoenix takes over a Portainer this stack deployed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortainerBootstrap {
    /// Where Portainer answers once deployed, e.g. `https://portainer.internal.thinkheads.ai`.
    #[schemars(regex(pattern = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$"))]
    pub url: String,
    /// A Secret of yours with `username` and `password` for the admin. Left out, Phoenix
    /// generates a password into the Secret `<object>-portainer-admin`, which it owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_secret_ref: Option<LocalRef>,
    /// Where the API key goes: a Secret Phoenix creates and owns (one you made is never
    /// overwritten).
    pub api_key_secret_ref: SecretKeyRef,
}

/// Where the stack runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.via == 'Agent' || has(self.portainer)").message("portainer must be set when via is Portainer"))]
pub struct StackTarget {
    /// The VmGuest that is the swarm manager.
    pub manager_ref: LocalRef,
    #[serde(default)]
    pub via: DeployVia,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portainer: Option<PortainerTarget>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeployVia {
    /// Through Portainer's stack API.
    #[default]
    Portainer,
    /// `docker stack deploy` on the manager through the guest agent.
    Agent,
}

/// The Portainer instance and endpoint a stack is deployed through.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortainerTarget {
    /// e.g. `https://portainer.internal.thinkheads.ai`.
    #[schemars(regex(pattern = r"^https?://.+$"))]
    pub url: String,
    /// Secret key holding a Portainer API access token.
    pub api_key_secret_ref: SecretKeyRef,
    /// Portainer endpoint (environment) name; defaults to the first Swarm endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// The compose file: exactly one of inline, a ConfigMap key, or a git repository.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.inline), has(self.configMapRef), has(self.git)].filter(x, x).size() == 1").message("exactly one of inline, configMapRef or git must be set"))]
pub struct ComposeSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// Over HTTP(S): new commits are looked for with one request per resync.
    #[schemars(regex(pattern = r"^https?://.+$"))]
    pub repository: String,
    /// Branch, tag or commit.
    #[serde(default = "default_git_ref", rename = "ref")]
    pub reference: String,
    #[serde(default = "default_compose_path")]
    pub path: String,
    /// Secret with `username` and `password` (or token) for the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalRef>,
}

fn default_git_ref() -> String {
    "main".into()
}
fn default_compose_path() -> String {
    "docker-compose.yml".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DockerStackStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<i64>,
    /// Hash of the deployed compose file and env, or the git commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_revision: Option<String>,
    /// Running/desired replicas summed over services, e.g. `3/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<String>,
    /// Each service: replicas running and desired, and why tasks do not run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_status: Vec<StackServiceStatus>,
    /// The Portainer this stack bootstrapped: where, and the Secrets Phoenix keeps for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portainer: Option<PortainerStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackServiceStatus {
    pub name: String,
    pub running: u32,
    pub desired: u32,
    /// Docker's error of a task that does not run (`No such image: …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortainerStatus {
    pub version: String,
    /// The Secret holding the admin's username and password.
    pub admin_secret: String,
    /// The id of the API key Phoenix created (its raw value is only in the Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<i64>,
    /// The `primary` environment, once Portainer created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<i64>,
}
