//! What happens inside a running container once PVE's part is done: its features, the
//! `afterProvisioning` snapshot, and health checks. Ready waits for the features;
//! Healthy is reported beside it.

use super::{Guest, GuestContext, Progress, waker};
use crate::conditions;
use crate::error::Error;
use crate::provision::{self, Outcome, Target, snapshots};
use crate::pve::Connection;
use kube::runtime::events::EventType;
use std::time::Duration;

/// How often a feature waiting for an input (CA root, Secret, ConfigMap) looks again.
const INPUT_RETRY: Duration = Duration::from_secs(30);

pub async fn target<'a, G: Guest>(
    guest: &'a G,
    ctx: &GuestContext,
    pve: &'a Connection,
    node: &str,
) -> Result<Target<'a, G>, Error> {
    let vmid = guest.vmid();
    let shell =
        crate::guest_exec::shell(&ctx.kube, pve, ctx.pve.redirect(), G::TYPE, node, vmid).await?;
    Ok(Target {
        object: guest,
        common: guest.common(),
        cluster: &pve.cluster,
        shell,
        pve: pve.client.clone(),
        node: node.to_owned(),
        vmid,
        kind: G::TYPE,
        label: guest.label(),
    })
}

/// Whether anything is to be done inside the guest at all.
pub fn wanted<G: Guest>(guest: &G) -> bool {
    let common = guest.common();
    common.provisioning.is_some() || !common.health_checks.is_empty()
}

/// Features, then the post-setup snapshot, then due health checks; `ready` is what the
/// pass reports once the features are in place.
pub async fn provisioned<G: Guest>(
    guest: &G,
    ctx: &GuestContext,
    pve: &Connection,
    node: &str,
    status: &mut G::Status,
    ready: Progress,
) -> Result<Progress, Error> {
    if !wanted(guest) {
        return Ok(ready);
    }
    let target = target(guest, ctx, pve, node).await?;
    let generation = guest.meta().generation;
    let now = jiff::Timestamp::now();
    let (common, observation) = G::parts(status);
    let conditions = &mut common.conditions;
    let outcome = provision::provision(
        ctx,
        &ctx.feature_runs,
        &target,
        observation,
        waker(ctx, guest),
    )
    .await;
    let set = |conditions: &mut Vec<_>, ok: bool, reason: &str, message: &str| {
        conditions::set(
            conditions,
            conditions::PROVISIONED,
            ok,
            reason,
            message,
            generation,
            now,
        )
    };
    match outcome {
        Err(e) => {
            set(conditions, false, e.category(), &e.to_string());
            return Err(e);
        }
        Ok(Outcome::Running { feature }) => {
            let message = format!("applying feature {feature} in {}", guest.label());
            set(conditions, false, conditions::reason::APPLYING, &message);
            observation.step = Some(format!("feature {feature}"));
            return Ok(Progress::Working {
                reason: conditions::reason::PROVISIONING,
                message,
            });
        }
        Ok(Outcome::Waiting(missing)) => {
            let message = format!("feature {} waits for {}", missing.feature, missing.what);
            set(
                conditions,
                false,
                conditions::reason::WAITING_FOR_INPUT,
                &message,
            );
            return Ok(Progress::Waiting {
                reason: conditions::reason::WAITING_FOR_INPUT,
                message,
                retry: INPUT_RETRY,
            });
        }
        Ok(Outcome::Done) if guest.common().provisioning.is_some() => {
            let names: Vec<&str> = observation
                .features
                .iter()
                .map(|f| f.name.as_str())
                .collect();
            set(
                conditions,
                true,
                conditions::reason::FEATURES_APPLIED,
                &format!("applied: {}", names.join(", ")),
            );
        }
        Ok(Outcome::Done) => conditions::remove(conditions, conditions::PROVISIONED),
    }
    snapshots::after_provisioning(ctx, &target, observation).await?;
    health(guest, ctx, &target, status).await;
    Ok(ready)
}

/// Runs the checks that are due and reports them in Healthy, with an event when it flips.
async fn health<G: Guest>(
    guest: &G,
    ctx: &GuestContext,
    target: &Target<'_, G>,
    status: &mut G::Status,
) {
    let (common, observation) = G::parts(status);
    let conditions = &mut common.conditions;
    let checks = &guest.common().health_checks;
    if checks.is_empty() {
        conditions::remove(conditions, conditions::HEALTHY);
        ctx.health.forget(&guest.key());
        return;
    }
    let reach = provision::direct::Reach::new(ctx.pve.redirect());
    let direct = (&reach, observation.ips.as_slice());
    let verdict = ctx
        .health
        .run_due(&guest.key(), checks, &target.shell, direct)
        .await;
    let was = conditions
        .iter()
        .find(|c| c.type_ == conditions::HEALTHY)
        .map(|c| c.status == "True");
    conditions::set(
        conditions,
        conditions::HEALTHY,
        verdict.healthy,
        verdict.reason,
        &verdict.message,
        guest.meta().generation,
        jiff::Timestamp::now(),
    );
    if was != Some(verdict.healthy) {
        let (type_, reason) = if verdict.healthy {
            (EventType::Normal, conditions::reason::HEALTHY)
        } else {
            (EventType::Warning, conditions::reason::UNHEALTHY)
        };
        ctx.event(guest, type_, reason, verdict.message).await;
    }
}
