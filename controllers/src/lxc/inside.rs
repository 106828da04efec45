//! What happens inside a running container once PVE's part is done: its features, the
//! `afterProvisioning` snapshot, and health checks. Ready waits for the features;
//! Healthy is reported beside it.

use super::{Progress, waker};
use crate::conditions;
use crate::context::Context;
use crate::error::Error;
use crate::provision::{self, Outcome, Target, snapshots};
use crate::pve::Connection;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use phoenix_clients::proxmox::GuestType;
use phoenix_crds::LxcGuest;
use phoenix_crds::lxc::LxcGuestStatus;
use std::time::Duration;

/// How often a feature waiting for an input (CA root, Secret, ConfigMap) looks again.
const INPUT_RETRY: Duration = Duration::from_secs(30);

pub async fn target<'a>(
    guest: &'a LxcGuest,
    ctx: &Context,
    pve: &'a Connection,
    node: &str,
) -> Result<Target<'a, LxcGuest>, Error> {
    let vmid = guest.spec.vmid;
    let shell = crate::guest_exec::shell(
        &ctx.kube,
        pve,
        ctx.pve.redirect(),
        GuestType::Lxc,
        node,
        vmid,
    )
    .await?;
    Ok(Target {
        object: guest,
        common: &guest.spec.common,
        cluster: &pve.cluster,
        shell,
        pve: pve.client.clone(),
        node: node.to_owned(),
        vmid,
        kind: GuestType::Lxc,
        label: format!("CT {vmid}"),
    })
}

/// Whether anything is to be done inside the guest at all.
pub fn wanted(guest: &LxcGuest) -> bool {
    let common = &guest.spec.common;
    common.provisioning.is_some() || !common.health_checks.is_empty()
}

/// Features, then the post-setup snapshot, then due health checks; `ready` is what the
/// pass reports once the features are in place.
pub async fn provisioned(
    guest: &LxcGuest,
    ctx: &Context,
    pve: &Connection,
    node: &str,
    status: &mut LxcGuestStatus,
    ready: Progress,
) -> Result<Progress, Error> {
    if !wanted(guest) {
        return Ok(ready);
    }
    let target = target(guest, ctx, pve, node).await?;
    let generation = guest.metadata.generation;
    let now = jiff::Timestamp::now();
    let conditions = &mut status.common.conditions;
    let outcome = provision::provision(ctx, &target, &mut status.guest, waker(ctx, guest)).await;
    let set = |conditions: &mut Vec<_>, ok: bool, reason: &str, message: &str| {
        conditions::set(
            conditions,
            "Provisioned",
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
            let message = format!("applying feature {feature} in CT {}", guest.spec.vmid);
            set(conditions, false, "Applying", &message);
            status.guest.step = Some(format!("feature {feature}"));
            return Ok(Progress::Working {
                reason: "Provisioning",
                message,
            });
        }
        Ok(Outcome::Waiting(missing)) => {
            let message = format!("feature {} waits for {}", missing.feature, missing.what);
            set(conditions, false, "WaitingForInput", &message);
            return Ok(Progress::Waiting {
                reason: "WaitingForInput",
                message,
                retry: INPUT_RETRY,
            });
        }
        Ok(Outcome::Done) if guest.spec.common.provisioning.is_some() => {
            let names: Vec<&str> = status
                .guest
                .features
                .iter()
                .map(|f| f.name.as_str())
                .collect();
            set(
                conditions,
                true,
                "FeaturesApplied",
                &format!("applied: {}", names.join(", ")),
            );
        }
        Ok(Outcome::Done) => conditions.retain(|c| c.type_ != "Provisioned"),
    }
    snapshots::after_provisioning(ctx, &target, &mut status.guest).await?;
    health(guest, ctx, &target, status).await;
    Ok(ready)
}

/// Runs the checks that are due and reports them in Healthy, with an event when it flips.
async fn health(
    guest: &LxcGuest,
    ctx: &Context,
    target: &Target<'_, LxcGuest>,
    status: &mut LxcGuestStatus,
) {
    let conditions = &mut status.common.conditions;
    let checks = &guest.spec.common.health_checks;
    if checks.is_empty() {
        conditions.retain(|c| c.type_ != "Healthy");
        ctx.health.forget(&key(guest));
        return;
    }
    let reach = provision::direct::Reach::new(ctx.pve.redirect());
    let direct = (&reach, status.guest.ip.as_deref());
    let Some(verdict) = ctx
        .health
        .run_due(&key(guest), checks, &target.shell, direct)
        .await
    else {
        return;
    };
    let was = conditions
        .iter()
        .find(|c| c.type_ == "Healthy")
        .map(|c| c.status == "True");
    conditions::set(
        conditions,
        "Healthy",
        verdict.healthy,
        verdict.reason,
        &verdict.message,
        guest.metadata.generation,
        jiff::Timestamp::now(),
    );
    if was != Some(verdict.healthy) {
        let (type_, reason) = if verdict.healthy {
            (EventType::Normal, "Healthy")
        } else {
            (EventType::Warning, "Unhealthy")
        };
        ctx.event(guest, type_, reason, verdict.message).await;
    }
}

/// The health-check key of a guest.
pub fn key(guest: &LxcGuest) -> String {
    format!(
        "{}/{}",
        guest.namespace().unwrap_or_default(),
        guest.name_any()
    )
}
