//! DockerStack: one Swarm stack, deployed through Portainer (`via: Portainer`) or with
//! `docker stack deploy` on the manager through its guest agent (`via: Agent`, how
//! Portainer itself is brought up — and then taken over: `portainerBootstrap`). A pass
//! renders the compose file and env (refusing what Swarm would refuse), finds the stack,
//! lets `decide::next` choose (create, update, wait for a deploy, retry a failed one,
//! correct or report drift), and is Ready when every service runs all its replicas.

pub mod agent;
pub mod bootstrap;
pub mod compose;
pub mod decide;
pub mod git;
pub mod reach;
pub mod through_portainer;

use crate::conditions::{self, Standing, reason};
use crate::context::Context;
use crate::error::Error;
use crate::pve::secret_texts;
use crate::{finalizers, status};
use decide::{Next, Wanted};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use phoenix_clients::exec::GuestShell;
use phoenix_clients::portainer::{Auth, ServiceState};
use phoenix_crds::VmGuest;
use phoenix_crds::common::DeletionPolicy;
use phoenix_crds::docker_stack::{DeployVia, DockerStack, DockerStackStatus, StackServiceStatus};
use std::sync::Arc;
use std::time::Duration;

pub const KIND: &str = "DockerStack";
pub const FINALIZER: &str = "phoenix.thinkheads.ai/stack";
/// How soon to look again while a deploy or its tasks are under way.
pub(crate) const SOON: Duration = Duration::from_secs(3);
/// How soon to look again while something else is waited for.
const LATER: Duration = Duration::from_secs(15);

/// The compose file and env a pass deploys, and their revision.
pub struct Rendered {
    pub content: String,
    pub env: Vec<(String, String)>,
    pub revision: String,
    pub git: Option<GitSpec>,
}

/// A git stack's source, with its credentials read from their Secret.
pub struct GitSpec {
    pub url: String,
    pub reference: String,
    pub path: String,
    pub credentials: Option<(String, String)>,
}

/// Where a pass left the stack.
pub enum Pass {
    /// Every service runs all its replicas; `drift`: a change by hand only reported.
    Ready {
        message: String,
        drift: Option<String>,
    },
    Waiting {
        reason: &'static str,
        message: String,
        retry: Duration,
    },
}

impl Pass {
    fn deploying() -> Pass {
        Pass::Waiting {
            reason: reason::DEPLOYING,
            message: "the stack is being deployed".into(),
            retry: SOON,
        }
    }

    /// Ready when every service runs all it should, else the first that does not.
    fn from_services(states: Vec<ServiceState>, drift: Option<String>) -> Pass {
        let short = states
            .iter()
            .find(|s| s.running < s.desired || s.desired == 0);
        match (states.is_empty(), short) {
            (true, _) => Pass::Waiting {
                reason: reason::TASKS_NOT_RUNNING,
                message: "the stack has no services yet".into(),
                retry: SOON,
            },
            (false, Some(s)) => Pass::Waiting {
                reason: reason::TASKS_NOT_RUNNING,
                message: format!(
                    "{}: {}/{} running{}",
                    s.name,
                    s.running,
                    s.desired,
                    s.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
                retry: SOON,
            },
            (false, None) => Pass::Ready {
                message: format!("{} services running", states.len()),
                drift,
            },
        }
    }
}

/// The stack's name in Swarm: `spec.stackName`, or the object's name.
pub fn stack_name(stack: &DockerStack) -> String {
    stack
        .spec
        .stack_name
        .clone()
        .unwrap_or_else(|| stack.name_any())
}

/// One pass: delete or converge, record the outcome, write the status once.
pub async fn reconcile(stack: Arc<DockerStack>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled(KIND);
    let namespace = stack.namespace().unwrap_or_default();
    let api: Api<DockerStack> = Api::namespaced(ctx.kube.clone(), &namespace);
    if stack.metadata.deletion_timestamp.is_some() {
        return remove(&stack, &ctx, &api).await;
    }
    finalizers::add(&api, &*stack, FINALIZER).await?;
    let mut status = stack.status.clone().unwrap_or_default();
    let outcome = converge(&stack, &ctx, &mut status).await;
    let action = finish(&stack, &ctx, &mut status, outcome).await;
    status::write(&api, &*stack, stack.status.as_ref(), &status).await?;
    Ok(action)
}

async fn converge(
    stack: &DockerStack,
    ctx: &Context,
    status: &mut DockerStackStatus,
) -> Result<Pass, Error> {
    if let Some(waiting) = gate(stack, ctx).await? {
        return Ok(waiting);
    }
    let rendered = render(stack, ctx).await?;
    match (&stack.spec.target.via, &stack.spec.target.portainer) {
        (DeployVia::Agent, _) => via_agent(stack, ctx, &rendered, status).await,
        (DeployVia::Portainer, Some(target)) => {
            through_portainer::converge(stack, ctx, target, &rendered, status).await
        }
        (DeployVia::Portainer, None) => Err(Error::spec(
            reason::ENDPOINT_NOT_FOUND,
            "spec.target.portainer: required when via is Portainer",
        )),
    }
}

/// `dependsOn`: every object named must be Ready first.
async fn gate(stack: &DockerStack, ctx: &Context) -> Result<Option<Pass>, Error> {
    let namespace = stack.namespace().unwrap_or_default();
    let waiting =
        crate::readiness::unready_dependencies(&ctx.kube, &stack.spec.depends_on, &namespace)
            .await?;
    Ok(waiting.map(|message| Pass::Waiting {
        reason: reason::WAITING_FOR_DEPENDENCIES,
        message,
        retry: LATER,
    }))
}

/// The compose file (inline, a ConfigMap key, or the commit a git ref points at), the
/// env with Secret values read, and their revision; what Swarm would refuse is refused.
async fn render(stack: &DockerStack, ctx: &Context) -> Result<Rendered, Error> {
    let namespace = stack.namespace().unwrap_or_default();
    let env = env(stack, ctx, &namespace).await?;
    if stack.spec.target.via == DeployVia::Agent && !env.is_empty() {
        return Err(Error::spec(
            reason::ENV_NEEDS_PORTAINER,
            "spec.env: a stack deployed through the agent takes no env (its values would sit in a file on the manager); deploy it through Portainer, or write the values into the compose file",
        ));
    }
    let compose = &stack.spec.compose;
    if let Some(git) = &compose.git {
        let credentials = match &git.credentials_secret_ref {
            Some(r) => {
                let ([user, password], _) =
                    secret_texts(&ctx.kube, &namespace, &r.name, ["username", "password"]).await?;
                Some((user, password))
            }
            None => None,
        };
        let remote = git::Remote {
            url: &git.repository,
            reference: &git.reference,
            credentials: credentials.clone(),
            loopback_only: ctx.pve.redirect().is_some(),
        };
        let content = through_portainer::git_content(&git::head(&remote).await?);
        let revision = compose::revision(&content, &env);
        let spec = GitSpec {
            url: git.repository.clone(),
            reference: git.reference.clone(),
            path: git.path.clone(),
            credentials,
        };
        return Ok(Rendered {
            content,
            env,
            revision,
            git: Some(spec),
        });
    }
    let content = match (&compose.inline, &compose.config_map_ref) {
        (Some(inline), _) => inline.clone(),
        (None, Some(r)) => config_map_key(ctx, &namespace, &r.name, &r.key).await?,
        (None, None) => {
            return Err(Error::spec(
                reason::INVALID_COMPOSE,
                "spec.compose: nothing to deploy",
            ));
        }
    };
    compose::check(&content).map_err(|e| Error::spec(reason::INVALID_COMPOSE, e))?;
    let revision = compose::revision(&content, &env);
    Ok(Rendered {
        content,
        env,
        revision,
        git: None,
    })
}

async fn config_map_key(
    ctx: &Context,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String, Error> {
    let configs: Api<ConfigMap> = Api::namespaced(ctx.kube.clone(), namespace);
    configs
        .get_opt(name)
        .await?
        .and_then(|c| c.data)
        .and_then(|mut d| d.remove(key))
        .ok_or_else(|| Error::Input {
            reason: reason::WAITING_FOR_INPUT,
            message: format!("ConfigMap {namespace}/{name} has no key {key:?} (yet)"),
        })
}

/// The env: literal values and Secret keys of the stack's own namespace.
async fn env(
    stack: &DockerStack,
    ctx: &Context,
    namespace: &str,
) -> Result<Vec<(String, String)>, Error> {
    let mut env = Vec::new();
    for var in &stack.spec.env {
        let value = match (&var.value, &var.secret_key_ref) {
            (_, Some(r)) => secret_texts(&ctx.kube, namespace, &r.name, [r.key.as_str()])
                .await?
                .0[0]
                .clone(),
            (Some(v), None) => v.clone(),
            (None, None) => String::new(),
        };
        env.push((var.name.clone(), value));
    }
    Ok(env)
}

/// The manager's shell, when its VM is there, ours (its VmGuest's marker) and running.
async fn manager_shell(
    stack: &DockerStack,
    ctx: &Context,
) -> Result<Result<GuestShell, String>, Error> {
    let namespace = stack.namespace().unwrap_or_default();
    let name = &stack.spec.target.manager_ref.name;
    let vms: Api<VmGuest> = Api::namespaced(ctx.kube.clone(), &namespace);
    let Some(manager) = vms.get_opt(name).await? else {
        return Ok(Err(format!("VmGuest {namespace}/{name} does not exist")));
    };
    crate::guest_exec::vm_shell(ctx, &manager).await
}

/// `via: Agent`: `docker stack deploy` on the manager; then, for Portainer's own stack,
/// the bootstrap.
async fn via_agent(
    stack: &DockerStack,
    ctx: &Context,
    rendered: &Rendered,
    status: &mut DockerStackStatus,
) -> Result<Pass, Error> {
    let shell = match manager_shell(stack, ctx).await? {
        Ok(shell) => shell,
        Err(why) => {
            return Ok(Pass::Waiting {
                reason: reason::MANAGER_NOT_READY,
                message: why,
                retry: LATER,
            });
        }
    };
    let name = stack_name(stack);
    let found = agent::observe(&shell, &name).await?;
    let wanted = Wanted {
        revision: &rendered.revision,
        deployed: status.deployed_revision.as_deref(),
        drift: stack.spec.drift_policy,
    };
    let next = decide::next(found.as_ref().map(|(live, _)| live), &wanted);
    let drift = match next {
        Next::Create | Next::Retry(_) => Some(false),
        Next::Update { drift } => Some(drift),
        _ => None,
    };
    if let Some(drift) = drift {
        agent::deploy(&shell, &name, &rendered.content, &rendered.revision).await?;
        status.deployed_revision = Some(rendered.revision.clone());
        let why = if drift {
            reason::DRIFT_CORRECTED
        } else {
            reason::DEPLOYED
        };
        let note = format!(
            "stack {name} deployed on the manager with docker stack deploy (revision {})",
            rendered.revision
        );
        ctx.event(stack, EventType::Normal, why, note).await;
        return Ok(Pass::deploying());
    }
    let states = found.map(|(_, s)| s).unwrap_or_default();
    let drift = match next {
        Next::ReportDrift(message) => Some(message),
        _ => {
            status.deployed_revision = Some(rendered.revision.clone());
            None
        }
    };
    record_services(status, &states);
    let pass = Pass::from_services(states, drift);
    let Some(spec) = &stack.spec.portainer_bootstrap else {
        return Ok(pass);
    };
    if !matches!(pass, Pass::Ready { .. }) {
        return Ok(pass);
    }
    match bootstrap::run(stack, ctx, spec, status.portainer.as_ref()).await? {
        bootstrap::Bootstrap::Done(portainer) => {
            status.portainer = Some(portainer);
            Ok(pass)
        }
        bootstrap::Bootstrap::Waiting { reason, message } => Ok(Pass::Waiting {
            reason,
            message,
            retry: SOON,
        }),
    }
}

/// Services in status: each with running/desired and Docker's error, and the sum.
pub(super) fn record_services(status: &mut DockerStackStatus, states: &[ServiceState]) {
    status.service_status = states
        .iter()
        .map(|s| StackServiceStatus {
            name: s.name.clone(),
            running: s.running,
            desired: s.desired,
            message: s.error.clone(),
        })
        .collect();
    let (running, desired) = states
        .iter()
        .fold((0, 0), |(r, d), s| (r + s.running, d + s.desired));
    status.services = Some(format!("{running}/{desired}"));
}

/// Conditions, events and when to look again, from the pass's outcome.
async fn finish(
    stack: &DockerStack,
    ctx: &Context,
    status: &mut DockerStackStatus,
    outcome: Result<Pass, Error>,
) -> Action {
    let now = jiff::Timestamp::now();
    let generation = stack.metadata.generation;
    status.common.observed_generation = generation;
    let key = format!(
        "{KIND}/{}/{}",
        stack.namespace().unwrap_or_default(),
        stack.name_any()
    );
    let conditions = &mut status.common.conditions;
    match outcome {
        Ok(Pass::Ready { message, drift }) => {
            ctx.succeeded(&key);
            conditions::summarize(
                conditions,
                Standing::Ready,
                reason::STACK_RUNNING,
                &message,
                generation,
                now,
            );
            match drift {
                Some(d) => conditions::set(
                    conditions,
                    conditions::DRIFTED,
                    true,
                    reason::DRIFT_DETECTED,
                    &d,
                    generation,
                    now,
                ),
                None => conditions::remove(conditions, conditions::DRIFTED),
            }
            Action::requeue(ctx.resync)
        }
        Ok(Pass::Waiting {
            reason,
            message,
            retry,
        }) => {
            ctx.succeeded(&key);
            conditions::summarize(
                conditions,
                Standing::InProgress,
                reason,
                &message,
                generation,
                now,
            );
            Action::requeue(retry)
        }
        Err(e) => {
            ctx.failed(stack, (KIND, &key), conditions, generation, &e)
                .await
        }
    }
}

/// Deletion: the stack removed (`Delete`) or left running (`Retain`), then the finalizer.
async fn remove(
    stack: &DockerStack,
    ctx: &Context,
    api: &Api<DockerStack>,
) -> Result<Action, Error> {
    // A stack this object never deployed has nothing to remove: its deletion must not wait
    // for a Portainer (or a key) that may never come.
    let deployed = stack
        .status
        .as_ref()
        .is_some_and(|s| s.deployed_revision.is_some());
    if stack.spec.deletion_policy == DeletionPolicy::Delete && deployed {
        let name = stack_name(stack);
        match (&stack.spec.target.via, &stack.spec.target.portainer) {
            (DeployVia::Portainer, Some(target)) => {
                let namespace = stack.namespace().unwrap_or_default();
                let r = &target.api_key_secret_ref;
                let ([key], _) =
                    secret_texts(&ctx.kube, &namespace, &r.name, [r.key.as_str()]).await?;
                let client = reach::client(ctx, &target.url, Auth::ApiKey(key)).await?;
                for endpoint in client.endpoints(target.endpoint.as_deref()).await? {
                    for found in client
                        .stacks(endpoint.id)
                        .await?
                        .into_iter()
                        .filter(|s| s.name == name)
                    {
                        client.delete_stack(&found).await?;
                    }
                }
            }
            _ => {
                if let Ok(shell) = manager_shell(stack, ctx).await? {
                    agent::remove(&shell, &name).await?;
                }
            }
        }
        let note = format!("stack {name} removed from the swarm");
        ctx.event(stack, EventType::Normal, reason::STACK_REMOVED, note)
            .await;
    }
    finalizers::remove(api, stack, FINALIZER).await?;
    Ok(Action::await_change())
}

/// Errors are handled in `finish` (conditions, events, backoff); a failure to write the
/// status itself is retried shortly.
pub fn error_policy(_stack: Arc<DockerStack>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(KIND, error.category());
    Action::requeue(LATER)
}
