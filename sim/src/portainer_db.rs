//! Portainer's database as the simulated world keeps it (in the cluster, so the state
//! file keeps it): settings, the admin, API keys, environments and stacks. What serves it
//! is `portainer/`; what follows the swarms to start and stop it is `Cluster`.

use crate::clock::now_ms;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A secret kept in the state: never printed by `Debug`.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Settings and faults (`GET/PUT /admin/portainer`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Settings {
    /// `2.23.0` deploys synchronously; `2.45.0` (newer) in the background.
    pub version: String,
    /// How long a background deploy takes.
    pub deploy_ms: u64,
    pub admin_init_timeout_secs: u64,
    /// Share of `/api` calls answered 500.
    pub error_rate: f64,
    pub latency_ms: (u64, u64),
    /// Stacks (by name) whose deploys fail.
    pub fail_deploy: Vec<String>,
    /// Images (`repo:tag`) the registry does not have: their tasks are rejected.
    pub missing_images: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            version: "2.45.0".into(),
            deploy_ms: 300,
            admin_init_timeout_secs: 300,
            error_rate: 0.0,
            latency_ms: (0, 0),
            fail_deploy: Vec::new(),
            missing_images: Vec::new(),
        }
    }
}

impl Settings {
    /// Whether deploys run in the background (releases after 2.39).
    pub fn background(&self) -> bool {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (2, 40)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Admin {
    pub username: String,
    pub salt: String,
    pub password_hash: Secret,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: u32,
    pub user_id: u32,
    pub description: String,
    pub prefix: String,
    pub digest: Secret,
    pub date_created: u64,
    pub last_used: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub id: u32,
    pub name: String,
    pub swarm_id: String,
}

/// An env entry (`{"name","value"}` on the wire); the value may be a secret.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Pair {
    pub name: String,
    pub value: Secret,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Git {
    pub url: String,
    pub reference_name: String,
    pub config_file_path: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub config_hash: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stack {
    pub id: u32,
    pub name: String,
    pub endpoint_id: u32,
    pub swarm_id: String,
    pub entry_point: String,
    pub env: Vec<Pair>,
    /// 1 active, 2 inactive, 3 deploying, 4 error.
    pub status: u8,
    pub creation_date: u64,
    pub update_date: u64,
    pub created_by: String,
    pub updated_by: String,
    pub file: String,
    pub git: Option<Git>,
    pub prune: bool,
    /// While deploying in the background: when the deploy ends.
    pub due_ms: Option<u128>,
    /// The deploy removes the stack first (its previous status was error).
    pub undeploy_first: bool,
    /// `DeploymentStatus`: `{Status, Message, Time}` entries.
    pub deployment_status: Vec<Value>,
}

/// Portainer's database and lifecycle.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Portainer {
    pub settings: Settings,
    pub instance_id: String,
    /// When it started running (the admin-init timeout counts from here).
    pub started_ms: Option<u128>,
    /// The swarm it runs on.
    pub swarm_id: Option<String>,
    pub admin: Option<Admin>,
    pub keys: Vec<ApiKey>,
    pub next_key_id: u32,
    pub endpoints: Vec<Endpoint>,
    pub stacks: BTreeMap<u32, Stack>,
    /// The last stack id handed out: ids come from a sequence, as in Portainer's
    /// database, and are never reused after a delete.
    pub last_stack_id: u32,
}

impl Portainer {
    pub fn running(&self) -> bool {
        self.started_ms.is_some()
    }

    /// No admin within the timeout: the instance disabled itself until a restart.
    pub fn timed_out(&self) -> bool {
        let limit = u128::from(self.settings.admin_init_timeout_secs) * 1000;
        self.admin.is_none() && self.started_ms.is_some_and(|s| now_ms() > s + limit)
    }

    /// (Re)starts the instance: the admin-init timeout counts again.
    pub fn restart(&mut self) {
        self.started_ms = Some(now_ms());
        if self.instance_id.is_empty() {
            self.instance_id = uuid::Uuid::new_v4().to_string();
        }
    }

    /// The `primary` environment, made once an admin exists, on the swarm it runs on.
    pub fn ensure_primary(&mut self) {
        let (Some(_), Some(swarm)) = (&self.admin, &self.swarm_id) else {
            return;
        };
        if self.endpoints.iter().any(|e| e.name == "primary") {
            return;
        }
        let id = self.endpoints.iter().map(|e| e.id).max().unwrap_or(0) + 1;
        self.endpoints.push(Endpoint {
            id,
            name: "primary".into(),
            swarm_id: swarm.clone(),
        });
    }

    pub fn endpoint(&self, id: u32) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.id == id)
    }
}
