//! LxcGuest: one container. `reconcile` observes PVE, plans the steps from what is there
//! to the spec, runs the next step (starting at most one PVE task per pass, its UPID kept in
//! status), and writes status; deletion releases or destroys the guest.

mod converge;
mod inside;
pub mod observe;
pub mod placement;
pub mod plan;
mod removal;
pub mod render;

use crate::context::Context;
use crate::error::Error;
use crate::{conditions, finalizers};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use phoenix_crds::LxcGuest;
use phoenix_crds::lxc::LxcGuestStatus;
use std::sync::Arc;
use std::time::Duration;

pub const KIND: &str = "LxcGuest";

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
}

pub async fn reconcile(guest: Arc<LxcGuest>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled(KIND);
    let api: Api<LxcGuest> =
        Api::namespaced(ctx.kube.clone(), &guest.namespace().unwrap_or_default());
    if guest.meta().deletion_timestamp.is_some() {
        if !guest.finalizers().iter().any(|f| f == finalizers::GUEST) {
            return Ok(Action::await_change());
        }
        let mut status = guest.status.clone().unwrap_or_default();
        let outcome = removal::remove(&guest, &ctx, &mut status).await;
        return match outcome {
            Ok(None) => {
                ctx.health.forget(&inside::key(&guest));
                finalizers::remove(&api, &*guest, finalizers::GUEST).await?;
                Ok(Action::await_change())
            }
            Ok(Some(progress)) => finish(&api, &guest, &ctx, status, Ok(progress)).await,
            Err(e) => finish(&api, &guest, &ctx, status, Err(e)).await,
        };
    }
    if !guest.finalizers().iter().any(|f| f == finalizers::GUEST) {
        // The next pass (triggered by this change) does the work.
        finalizers::add(&api, &*guest, finalizers::GUEST).await?;
        return Ok(Action::await_change());
    }
    let mut status = guest.status.clone().unwrap_or_default();
    let outcome = converge::converge(&guest, &ctx, &mut status).await;
    finish(&api, &guest, &ctx, status, outcome).await
}

/// Records the outcome in conditions and status, tells the story in events, wakes the
/// guests that wait on this one when it changed, and says when to look again.
async fn finish(
    api: &Api<LxcGuest>,
    guest: &LxcGuest,
    ctx: &Context,
    mut status: LxcGuestStatus,
    outcome: Result<Progress, Error>,
) -> Result<Action, Error> {
    let generation = guest.metadata.generation;
    let now = jiff::Timestamp::now();
    let conditions = &mut status.common.conditions;
    let previous = guest.status.clone().unwrap_or_default();
    let (ready, reason, message, degraded) = match &outcome {
        Ok(Progress::Ready { reason, message }) => (true, *reason, message.clone(), false),
        Ok(Progress::Working { reason, message })
        | Ok(Progress::Waiting {
            reason, message, ..
        }) => (false, *reason, message.clone(), false),
        Err(e) => (false, e.category(), e.to_string(), e.is_permanent()),
    };
    conditions::set(
        conditions, "Ready", ready, reason, &message, generation, now,
    );
    let working = matches!(outcome, Ok(Progress::Working { .. }));
    conditions::set(
        conditions,
        "Progressing",
        working,
        reason,
        &message,
        generation,
        now,
    );
    if degraded {
        conditions::set(
            conditions, "Degraded", true, reason, &message, generation, now,
        );
    } else {
        conditions.retain(|c| c.type_ != "Degraded");
    }
    if !working {
        status.guest.step = None;
    }
    let before = previous
        .common
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()));
    let after = (
        if ready { "True" } else { "False" }.to_string(),
        reason.to_string(),
        message.clone(),
    );
    if before.as_ref() != Some(&after) {
        let type_ = if outcome.is_err() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        // Steps publish their own events; this tells what the pass ended in.
        if !working {
            ctx.event(guest, type_, reason, message.clone()).await;
        }
    }
    if let Ok(Progress::Ready { .. }) = &outcome {
        // The spec of this generation is fully in place (drift is measured against it).
        status.common.observed_generation = generation;
    }
    if status != previous {
        let patch = crate::status::merge_patch(&previous, &status);
        api.patch_status(
            &guest.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    if previous.guest.state != status.guest.state || before.map(|b| b.0) != Some(after.0) {
        wake_waiters(ctx, guest);
    }
    let key = format!(
        "{}/{}",
        guest.namespace().unwrap_or_default(),
        guest.name_any()
    );
    match outcome {
        Ok(progress) => {
            ctx.succeeded(&key);
            Ok(match progress {
                // Health checks may be due before the next resync.
                Progress::Ready { .. } => Action::requeue(
                    ctx.health
                        .due_in(&inside::key(guest))
                        .map_or(ctx.resync, |due| {
                            due.clamp(Duration::from_secs(1), ctx.resync)
                        }),
                ),
                // The tracker wakes the guest when its task stops; the resync is a safety net.
                Progress::Working { .. } => Action::requeue(ctx.resync),
                Progress::Waiting { retry, .. } => Action::requeue(retry),
            })
        }
        Err(e) => Err(e),
    }
}

/// Guests whose gate may have opened because `changed` changed: its dependents and the
/// guests that start after it.
fn wake_waiters(ctx: &Context, changed: &LxcGuest) {
    let namespace = changed.namespace().unwrap_or_default();
    let name = changed.name_any();
    let order = changed.spec.common.startup.as_ref().and_then(|s| s.order);
    for other in ctx.lxc_guests.state() {
        let depends = other.spec.common.depends_on.iter().any(|d| {
            d.kind == phoenix_crds::common::PhoenixKind::LxcGuest
                && d.name == name
                && d.namespace
                    .as_deref()
                    .unwrap_or(&other.namespace().unwrap_or_default())
                    == namespace
        });
        let later = match (
            order,
            other.spec.common.startup.as_ref().and_then(|s| s.order),
        ) {
            (Some(mine), Some(theirs)) => theirs > mine,
            _ => false,
        };
        if depends || later {
            let _ = ctx.wake_lxc.send(ObjectRef::from_obj(&*other));
        }
    }
}

/// Transient errors retry with backoff; permanent ones wait for a change (with a slow
/// look now and then, as the cluster may change under them).
pub fn error_policy(guest: Arc<LxcGuest>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(KIND, error.category());
    let key = format!(
        "{}/{}",
        guest.namespace().unwrap_or_default(),
        guest.name_any()
    );
    if error.is_permanent() {
        tracing::info!(guest = %key, reason = error.category(), "{error}");
        return Action::requeue(Duration::from_secs(300));
    }
    let wait = ctx.backoff(&key);
    tracing::warn!(guest = %key, reason = error.category(), retry_in = ?wait, "{error}");
    Action::requeue(wait)
}

/// Wakes `guest`'s reconcile (when its PVE task stops).
pub fn waker(ctx: &Context, guest: &LxcGuest) -> impl FnOnce() + Send + 'static {
    let (sender, reference) = (ctx.wake_lxc.clone(), ObjectRef::from_obj(guest));
    move || {
        let _ = sender.send(reference);
    }
}

/// What the controller would do for `guest` now (`phoenix plan`): the node, whether PVE's
/// guest is someone else's, and the steps. Reads only.
pub async fn preview(
    connections: &crate::pve::Connections,
    guest: &LxcGuest,
    uid: &str,
) -> Result<Preview, Error> {
    let common = &guest.spec.common;
    let pve = connections
        .get(common.cluster_ref.as_ref().map(|r| r.name.as_str()))
        .await?;
    let node = placement::choose_node(common, &pve.cluster, None, &[])?;
    placement::check_memory(common, &pve.cluster)?;
    let live = observe::find(&pve.client, &node, guest.spec.vmid).await?;
    let observed = live.as_ref().map(|l| plan::Observed {
        config: l.config.clone(),
        running: l.running,
    });
    Ok(Preview {
        node: live.as_ref().map_or(node, |l| l.node.clone()),
        foreign: live
            .as_ref()
            .is_some_and(|l| l.ownership(uid) != observe::Ownership::Ours),
        steps: plan::plan(&guest.spec, uid, observed.as_ref()),
    })
}

/// The answer of [`preview`].
#[derive(Debug)]
pub struct Preview {
    pub node: String,
    /// The VMID is held by a guest this object does not own: nothing would be done.
    pub foreign: bool,
    pub steps: Vec<plan::Step>,
}
