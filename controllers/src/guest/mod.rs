//! The guest controller shared by containers (LxcGuest) and VMs (VmGuest): `reconcile`
//! observes PVE, plans the steps from what is there to the spec, runs the next step
//! (starting at most one PVE task per pass, its UPID kept in status), provisions the inside,
//! and writes the pass's status once; deletion releases or destroys the guest. What differs between the two
//! kinds (their PVE config, their plan, how addresses are found) is the [`Guest`] trait.

pub mod address_memo;
pub mod cluster_watch;
pub mod context;
pub mod converge;
pub mod decide;
pub mod input_watch;
pub mod inside;
pub mod observe;
pub mod peers;
pub mod placement;
pub mod plan;
mod removal;
pub mod render;
pub mod route_rules;

use crate::conditions::{self, Standing};
use crate::error::Error;
use crate::pve::Connection;
use crate::{finalizers, status};
pub use context::{GuestContext, Population};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use observe::Live;
use phoenix_clients::proxmox::{GuestType, Params};
use phoenix_crds::common::{CommonStatus, GuestObservation, PhoenixKind};
use phoenix_crds::guest::{CloneSource, GuestCommon};
use plan::{Observed, Step};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What a kind of guest brings to the shared controller.
pub trait Guest:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;
    const PHOENIX_KIND: PhoenixKind;
    const TYPE: GuestType;
    /// "CT" or "VM", as PVE names them in messages.
    const LABEL: &'static str;
    type Status: Clone
        + Default
        + PartialEq
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync;

    fn vmid(&self) -> u32;
    fn common(&self) -> &GuestCommon;
    fn wants_template(&self) -> bool;
    fn clone_source(&self) -> Option<&CloneSource>;
    fn status(&self) -> Option<&Self::Status>;
    fn parts(status: &mut Self::Status) -> (&mut CommonStatus, &mut GuestObservation);
    fn view(status: &Self::Status) -> (&CommonStatus, &GuestObservation);
    /// This kind's cache and wake channel.
    fn population(ctx: &GuestContext) -> &Population<Self>;

    /// What the config is rendered from besides the spec (keys read from Secrets).
    type Inputs: Send + Sync;
    fn inputs(
        &self,
        kube: &kube::Client,
    ) -> impl Future<Output = Result<Self::Inputs, Error>> + Send;
    /// The PVE config keys the spec manages, with their wanted values.
    fn desired_config(&self, owner_uid: &str, inputs: &Self::Inputs) -> BTreeMap<String, String>;
    /// The steps from `observed` (None: nothing exists) to the spec.
    fn plan(
        &self,
        owner_uid: &str,
        inputs: &Self::Inputs,
        observed: Option<&Observed>,
    ) -> Vec<Step>;
    /// The parameters of a clone call besides `newid` and `target`.
    fn clone_params(&self, owner_uid: &str) -> Params;

    /// Checks made before anything is created, and steps that must come first (an image
    /// to download). A failure is a condition with a reason, and no PVE write. (The clone
    /// source is checked by the shared controller.)
    fn preflight(
        &self,
        ctx: &GuestContext,
        pve: &Connection,
        node: &str,
    ) -> impl Future<Output = Result<Vec<Step>, Error>> + Send;

    /// Puts in place what `steps` refer to outside PVE's API (a VM's cloud-init snippet).
    fn prepare(
        &self,
        _ctx: &GuestContext,
        _pve: &Connection,
        _node: &str,
        _inputs: &Self::Inputs,
        _steps: &[Step],
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }

    /// The addresses of the running guest; `None` while they are not known yet (the
    /// progress says why).
    fn addresses(
        &self,
        ctx: &GuestContext,
        pve: &Connection,
        live: &Live,
        status: &mut Self::Status,
    ) -> impl Future<Output = Result<Result<Vec<String>, Progress>, Error>> + Send;

    /// The addresses were recalled from this boot instead of read again: what status says
    /// of their source must say so too, since the status this pass started from may be
    /// older than the pass that read them (the cache lags the last write).
    fn addresses_recalled(&self, _status: &mut Self::Status) {}

    /// What follows provisioning once the guest is Ready (a VM's swarm role).
    fn settle(
        &self,
        ctx: &GuestContext,
        pve: &Connection,
        live: &Live,
        status: &mut Self::Status,
        ready: Progress,
    ) -> impl Future<Output = Result<Progress, Error>> + Send;

    /// Before a guest is destroyed or released (a swarm worker leaves its swarm). `None`:
    /// go on.
    fn before_removal(
        &self,
        ctx: &GuestContext,
        pve: &Connection,
        live: &Live,
        status: &mut Self::Status,
    ) -> impl Future<Output = Result<Option<Progress>, Error>> + Send;

    /// The host-level powers the spec uses, each described ("hostPath mount /srv"): the
    /// ProxmoxCluster says which namespaces may (`cluster_policy`).
    fn host_powers(&self) -> Vec<String>;

    /// A step's task has started (a VM template counts its generations).
    fn task_started(&self, _step: &Step, _status: &mut Self::Status) {}

    fn label(&self) -> String {
        format!("{} {}", Self::LABEL, self.vmid())
    }

    fn key(&self) -> String {
        format!(
            "{}/{}",
            self.namespace().unwrap_or_default(),
            self.name_any()
        )
    }
}

/// How a pass left the guest.
#[derive(Debug)]
pub enum Progress {
    /// Converged: Ready=True with this reason.
    Ready {
        reason: &'static str,
        message: String,
    },
    /// A step is under way (a PVE task the tracker follows).
    Working {
        reason: &'static str,
        message: String,
    },
    /// Waiting for something else; look again after `retry`.
    Waiting {
        reason: &'static str,
        message: String,
        retry: Duration,
    },
    /// In line for a slot of a node's task budget or a template's clone lock; the slot's
    /// release wakes it.
    Queued { message: String },
}

impl Progress {
    pub fn reason(&self) -> &'static str {
        match self {
            Progress::Ready { reason, .. }
            | Progress::Working { reason, .. }
            | Progress::Waiting { reason, .. } => reason,
            Progress::Queued { .. } => conditions::reason::QUEUED,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Progress::Ready { message, .. }
            | Progress::Working { message, .. }
            | Progress::Waiting { message, .. }
            | Progress::Queued { message } => message,
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Progress::Ready { .. })
    }
}

pub async fn reconcile<G: Guest>(guest: Arc<G>, ctx: Arc<GuestContext>) -> Result<Action, Error> {
    ctx.metrics.reconciled(G::KIND);
    let api: Api<G> = Api::namespaced(ctx.kube.clone(), &guest.namespace().unwrap_or_default());
    if guest.meta().deletion_timestamp.is_some() {
        if !guest.finalizers().iter().any(|f| f == finalizers::GUEST) {
            return Ok(Action::await_change());
        }
        let mut status = guest.status().cloned().unwrap_or_default();
        let outcome = removal::remove(&*guest, &ctx, &mut status).await;
        return match outcome {
            Ok(None) => {
                ctx.health.forget(&guest.key());
                ctx.addresses.forget(&guest.uid().unwrap_or_default());
                finalizers::remove(&api, &*guest, finalizers::GUEST).await?;
                Ok(Action::await_change())
            }
            Ok(Some(progress)) => finish(&api, &*guest, &ctx, status, Ok(progress)).await,
            Err(e) => finish(&api, &*guest, &ctx, status, Err(e)).await,
        };
    }
    if !guest.finalizers().iter().any(|f| f == finalizers::GUEST) {
        // The next pass (triggered by this change) does the work.
        finalizers::add(&api, &*guest, finalizers::GUEST).await?;
        return Ok(Action::await_change());
    }
    let mut status = guest.status().cloned().unwrap_or_default();
    let outcome = converge::converge(&*guest, &ctx, &mut status).await;
    finish(&api, &*guest, &ctx, status, outcome).await
}

/// The standing of a pass's outcome, with its reason and message.
fn standing(outcome: &Result<Progress, Error>) -> (Standing, &'static str, String) {
    match outcome {
        Ok(progress) if progress.is_ready() => (
            Standing::Ready,
            progress.reason(),
            progress.message().into(),
        ),
        Ok(progress) => (
            Standing::InProgress,
            progress.reason(),
            progress.message().into(),
        ),
        Err(e) => (
            Standing::after_failure(e.is_permanent()),
            e.category(),
            e.to_string(),
        ),
    }
}

/// Records the outcome in the conditions and writes the pass's status (once, when it
/// changed), tells the story in events, wakes the guests that wait on this one when it
/// changed, and says when to look again.
async fn finish<G: Guest>(
    api: &Api<G>,
    guest: &G,
    ctx: &GuestContext,
    mut status: G::Status,
    outcome: Result<Progress, Error>,
) -> Result<Action, Error> {
    let generation = guest.meta().generation;
    let (standing, reason, message) = standing(&outcome);
    let previous = guest.status();
    let (common, observation) = G::parts(&mut status);
    let before = previous
        .and_then(|p| conditions::find(&G::view(p).0.conditions, conditions::READY))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()));
    conditions::summarize(
        &mut common.conditions,
        standing,
        reason,
        &message,
        generation,
        jiff::Timestamp::now(),
    );
    common.observed_generation = generation;
    let working = matches!(outcome, Ok(Progress::Working { .. }));
    if !working {
        observation.step = None;
    }
    if standing == Standing::Ready {
        // The spec of this generation is fully in place (drift is measured against it).
        observation.converged_generation = generation;
    }
    let after = (
        if standing == Standing::Ready {
            "True"
        } else {
            "False"
        }
        .to_string(),
        reason.to_string(),
        message.clone(),
    );
    // Steps publish their own events; this tells what the pass ended in.
    if before.as_ref() != Some(&after) && !working {
        let type_ = if outcome.is_err() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.event(guest, type_, reason, message).await;
    }
    let state_changed =
        previous.map(|p| G::view(p).1.state.clone()) != Some(G::view(&status).1.state.clone());
    status::write(api, guest, previous, &status).await?;
    if state_changed || before.map(|b| b.0) != Some(after.0) {
        peers::wake_waiters(ctx, G::PHOENIX_KIND, guest);
    }
    let key = guest.key();
    let progress = outcome?;
    ctx.succeeded(&key);
    Ok(match progress {
        // Health checks may be due before the next resync.
        Progress::Ready { .. } => {
            Action::requeue(ctx.health.due_in(&key).map_or(ctx.resync, |due| {
                due.clamp(Duration::from_secs(1), ctx.resync)
            }))
        }
        // The tracker (or the released slot) wakes the guest; the resync is a safety net.
        Progress::Working { .. } | Progress::Queued { .. } => Action::requeue(ctx.resync),
        Progress::Waiting { retry, .. } => Action::requeue(retry),
    })
}

/// Transient errors retry with backoff; permanent ones wait for a change (with a slow
/// look now and then, as the cluster may change under them).
pub fn error_policy<G: Guest>(guest: Arc<G>, error: &Error, ctx: Arc<GuestContext>) -> Action {
    ctx.metrics.failed(G::KIND, error.category());
    let key = guest.key();
    if error.is_permanent() {
        tracing::info!(guest = %key, kind = G::KIND, reason = error.category(), "{error}");
        return Action::requeue(Duration::from_secs(300));
    }
    let wait = ctx.backoff(&key);
    tracing::warn!(guest = %key, kind = G::KIND, reason = error.category(), retry_in = ?wait, "{error}");
    Action::requeue(wait)
}

/// Wakes `guest`'s reconcile (when its PVE task or feature run stops, or a slot it queued
/// for is released).
pub fn waker<G: Guest>(ctx: &GuestContext, guest: &G) -> impl FnOnce() + Send + 'static {
    let (sender, reference) = (G::population(ctx).wake.clone(), ObjectRef::from_obj(guest));
    move || {
        let _ = sender.send(reference);
    }
}

/// What the controller would do for `guest` now (`phoenix plan`): the node, whether PVE's
/// guest is someone else's, and the steps. Reads only.
pub async fn preview<G: Guest>(
    kube: &kube::Client,
    connections: &crate::pve::Connections,
    guest: &G,
    uid: &str,
) -> Result<Preview, Error> {
    let inputs = guest.inputs(kube).await?;
    let common = guest.common();
    let pve = connections
        .get(common.cluster_ref.as_ref().map(|r| r.name.as_str()))
        .await?;
    let node = placement::choose_node(common, &pve.cluster, None, &[])?;
    placement::check_memory(common, &pve.cluster)?;
    let now = crate::cluster_view::Freshness::After(std::time::Instant::now());
    let live = observe::find(&pve, G::TYPE, guest.vmid(), now).await?;
    let observed = live.as_ref().map(|l| Observed {
        config: l.config.clone(),
        running: l.running,
    });
    Ok(Preview {
        node: live.as_ref().map_or(node, |l| l.node.clone()),
        foreign: live
            .as_ref()
            .is_some_and(|l| l.ownership(uid) != crate::ownership::Ownership::Ours),
        steps: guest.plan(uid, &inputs, observed.as_ref()),
    })
}

/// The answer of [`preview`].
#[derive(Debug)]
pub struct Preview {
    pub node: String,
    /// The VMID is held by a guest this object does not own: nothing would be done.
    pub foreign: bool,
    pub steps: Vec<Step>,
}
