//! Stacks deployed through Portainer's stack API with the API key from the stack's Secret:
//! the environment (named, or the first Swarm one), the stack found by its name, the step
//! `decide::next` chooses, and the services Docker reports through Portainer's proxy.

use super::decide::{self, Live, LiveState, Next, Wanted};
use super::{Pass, Rendered, compose, reach};
use crate::conditions::reason;
use crate::context::Context;
use crate::error::Error;
use crate::pve::secret_texts;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use phoenix_clients::portainer::{
    self, Auth, Endpoint, GitStack, PortainerClient, ServiceState, Stack,
};
use phoenix_crds::docker_stack::{DockerStack, DockerStackStatus, PortainerTarget};

/// Portainer environment types a swarm stack can go to: Docker (1) and agent on Docker (2).
const DOCKER_TYPES: [i64; 2] = [1, 2];

pub async fn converge(
    stack: &DockerStack,
    ctx: &Context,
    target: &PortainerTarget,
    rendered: &Rendered,
    status: &mut DockerStackStatus,
) -> Result<Pass, Error> {
    let namespace = stack.namespace().unwrap_or_default();
    let r = &target.api_key_secret_ref;
    let ([key], _) = secret_texts(&ctx.kube, &namespace, &r.name, [r.key.as_str()]).await?;
    let client = reach::client(ctx, &target.url, Auth::ApiKey(key)).await?;
    let endpoint = endpoint(&client, target.endpoint.as_deref()).await?;
    status.endpoint_id = Some(endpoint.id);
    let name = super::stack_name(stack);
    let found = client
        .stacks(endpoint.id)
        .await?
        .into_iter()
        .find(|s| s.name == name);
    let live = match &found {
        Some(s) => Some(observe(&client, s, rendered).await?),
        None => None,
    };
    let wanted = Wanted {
        revision: &rendered.revision,
        deployed: status.deployed_revision.as_deref(),
        drift: stack.spec.drift_policy,
    };
    let next = decide::next(live.as_ref(), &wanted);
    let deploy = Deploy {
        stack,
        ctx,
        client: &client,
        rendered,
        endpoint: &endpoint,
    };
    match next {
        Next::Create => deploy.create(&name, status).await,
        Next::Update { drift } => deploy.update(found.as_ref(), drift, status).await,
        Next::Retry(message) => {
            deploy.update(found.as_ref(), false, status).await?;
            Err(Error::Swarm {
                reason: reason::DEPLOY_FAILED,
                message: format!("the deploy failed: {message}; deploying again"),
            })
        }
        Next::WaitDeploying => Ok(still_failing(status).unwrap_or_else(Pass::deploying)),
        Next::ReportDrift(message) => {
            services(&client, &endpoint, &name, Some(message), status).await
        }
        Next::Check => {
            status.stack_id = found.map(|s| s.id);
            status.deployed_revision = Some(rendered.revision.clone());
            services(&client, &endpoint, &name, None, status).await
        }
    }
}

/// While a failed deploy is tried again, the failure stays what the stack says (not a
/// plain "deploying" that would hide it between two attempts).
fn still_failing(status: &DockerStackStatus) -> Option<Pass> {
    let ready = crate::conditions::find(&status.common.conditions, crate::conditions::READY)?;
    (ready.reason == reason::DEPLOY_FAILED).then(|| Pass::Waiting {
        reason: reason::DEPLOY_FAILED,
        message: ready.message.clone(),
        retry: super::SOON,
    })
}

/// The environment named, or the first Docker one.
async fn endpoint(client: &PortainerClient, named: Option<&str>) -> Result<Endpoint, Error> {
    let endpoints = client.endpoints(named).await?;
    endpoints
        .into_iter()
        .find(|e| {
            named.is_some_and(|n| n == e.name)
                || (named.is_none() && DOCKER_TYPES.contains(&e.kind))
        })
        .ok_or_else(|| Error::Input {
            reason: reason::ENDPOINT_NOT_FOUND,
            message: match named {
                Some(n) => format!("Portainer has no environment named {n:?}"),
                None => "Portainer has no Docker environment yet".into(),
            },
        })
}

/// What Portainer runs for this stack: its state and the revision of its file (or
/// commit) with its env.
async fn observe(
    client: &PortainerClient,
    found: &Stack,
    rendered: &Rendered,
) -> Result<Live, Error> {
    let env: Vec<(String, String)> = found
        .env
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    let deployed = match (&rendered.git, &found.git_config) {
        (Some(_), Some(git)) => git_content(&git.config_hash),
        _ => client.stack_file(found.id).await?,
    };
    let state = match found.status {
        portainer::DEPLOYING => LiveState::Deploying,
        portainer::FAILED => LiveState::Failed(found.failure()),
        portainer::INACTIVE => LiveState::Inactive,
        _ => LiveState::Active,
    };
    Ok(Live {
        revision: compose::revision(&deployed, &env),
        state,
    })
}

/// What a git stack's revision is computed from: its commit.
pub fn git_content(commit: &str) -> String {
    format!("git:{commit}")
}

struct Deploy<'a> {
    stack: &'a DockerStack,
    ctx: &'a Context,
    client: &'a PortainerClient,
    rendered: &'a Rendered,
    endpoint: &'a Endpoint,
}

impl Deploy<'_> {
    async fn create(&self, name: &str, status: &mut DockerStackStatus) -> Result<Pass, Error> {
        let swarm = self.client.swarm_id(self.endpoint.id).await?;
        let (id, env) = (self.endpoint.id, &self.rendered.env);
        let created = match &self.rendered.git {
            Some(git) => {
                self.client
                    .create_git_stack(id, &swarm, name, &git.stack(), env)
                    .await?
            }
            None => {
                let content = &self.rendered.content;
                self.client
                    .create_stack(id, &swarm, name, content, env)
                    .await?
            }
        };
        self.deployed(created, "deployed", reason::DEPLOYED, status)
            .await
    }

    async fn update(
        &self,
        found: Option<&Stack>,
        drift: bool,
        status: &mut DockerStackStatus,
    ) -> Result<Pass, Error> {
        let Some(found) = found else {
            return Ok(Pass::deploying());
        };
        let (env, prune) = (&self.rendered.env, self.stack.spec.prune);
        let updated = match &self.rendered.git {
            Some(git) => {
                self.client
                    .redeploy_git(found, &git.stack(), env, prune)
                    .await?
            }
            None => {
                self.client
                    .update_stack(found, &self.rendered.content, env, prune)
                    .await?
            }
        };
        let (what, why) = if drift {
            ("changed by hand; deployed again", reason::DRIFT_CORRECTED)
        } else {
            ("updated", reason::DEPLOYED)
        };
        self.deployed(updated, what, why, status).await
    }

    async fn deployed(
        &self,
        stack: Stack,
        what: &str,
        why: &'static str,
        status: &mut DockerStackStatus,
    ) -> Result<Pass, Error> {
        status.stack_id = Some(stack.id);
        status.deployed_revision = Some(self.rendered.revision.clone());
        let note = format!(
            "stack {} {what} through Portainer (id {}, revision {})",
            stack.name, stack.id, self.rendered.revision
        );
        self.ctx
            .event(self.stack, EventType::Normal, why, note)
            .await;
        Ok(Pass::deploying())
    }
}

/// Ready when every service runs all its replicas; otherwise waiting, with Docker's error.
async fn services(
    client: &PortainerClient,
    endpoint: &Endpoint,
    name: &str,
    drift: Option<String>,
    status: &mut DockerStackStatus,
) -> Result<Pass, Error> {
    let states: Vec<ServiceState> = client.services(endpoint.id, name).await?;
    super::record_services(status, &states);
    Ok(Pass::from_services(states, drift))
}

impl super::GitSpec {
    fn stack(&self) -> GitStack<'_> {
        GitStack {
            url: &self.url,
            reference: &self.reference,
            compose_file: &self.path,
            credentials: self.credentials.clone(),
        }
    }
}
