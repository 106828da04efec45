//! Snapshots around provisioning, as the old system took them: a named one once the
//! guest is provisioned (`post-setup`), an automatic `pre-HASH` one before a feature that
//! was applied before is changed (the risky kind of change: software already in place is
//! altered), pruned to `retain`, and the rollback to it when that change fails and
//! `rollbackOnFailure` is set.

use super::Target;
use super::catalog::Feature;
use crate::context::Context;
use crate::error::Error;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use phoenix_clients::proxmox::{ProxmoxClient, TaskOutcome, Upid};
use phoenix_crds::common::GuestObservation;
use std::time::Duration;

/// Automatic snapshots are named `pre-` and the hash of the change they precede.
const AUTOMATIC: &str = "pre-";
/// Snapshot tasks are short; a pass waits for them rather than juggling their state.
const TASK_WAIT: Duration = Duration::from_secs(300);

pub fn automatic_name(hash: &str) -> String {
    format!("{AUTOMATIC}{hash}")
}

/// Whether the guest's `spec.snapshots` asks for `what`.
fn asks<K>(
    target: &Target<'_, K>,
    what: impl Fn(&phoenix_crds::common::Snapshots) -> bool,
) -> bool {
    target.common.snapshots.as_ref().is_some_and(what)
}

/// Takes the automatic snapshot before `feature` changes, when the spec asks for it.
pub async fn before_change<K>(
    ctx: &Context,
    target: &Target<'_, K>,
    observation: &mut GuestObservation,
    feature: &Feature,
    hash: &str,
    changed: bool,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + ResourceExt,
{
    if !changed || !asks(target, |s| s.before_risky_changes) {
        return Ok(());
    }
    let name = automatic_name(hash);
    let reason = format!("before changing feature {}", feature.name);
    take(ctx, target, observation, &name, &reason).await?;
    prune(target, observation).await
}

/// Takes the `afterProvisioning` snapshot once.
pub async fn after_provisioning<K>(
    ctx: &Context,
    target: &Target<'_, K>,
    observation: &mut GuestObservation,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + ResourceExt,
{
    let Some(name) = target
        .common
        .snapshots
        .as_ref()
        .and_then(|s| s.after_provisioning.clone())
    else {
        return Ok(());
    };
    take(
        ctx,
        target,
        observation,
        name.as_str(),
        "provisioning complete",
    )
    .await
}

/// After `feature` failed: rolls back to the snapshot taken before it, when asked to.
pub async fn rollback_after_failure<K>(
    ctx: &Context,
    target: &Target<'_, K>,
    feature: &str,
    hash: &str,
    failure: Error,
) -> Error
where
    K: Resource<DynamicType = ()> + ResourceExt,
{
    let name = automatic_name(hash);
    if !asks(target, |s| s.rollback_on_failure) {
        return failure;
    }
    let exists = match target
        .pve
        .snapshots(&target.node, target.kind, target.vmid)
        .await
    {
        Ok(list) => list.contains(&name),
        Err(e) => return e.into(),
    };
    if !exists {
        return failure;
    }
    let rolled = match target
        .pve
        .rollback(&target.node, target.kind, target.vmid, &name)
        .await
    {
        Ok(upid) => wait(&target.pve, &upid).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = rolled {
        return e;
    }
    let message = format!(
        "feature {feature} failed ({failure}); {} rolled back to snapshot {name}",
        target.label
    );
    ctx.event(
        target.object,
        EventType::Warning,
        "RolledBack",
        message.clone(),
    )
    .await;
    Error::RolledBack { message }
}

async fn take<K>(
    ctx: &Context,
    target: &Target<'_, K>,
    observation: &mut GuestObservation,
    name: &str,
    why: &str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + ResourceExt,
{
    if observation.snapshots.iter().any(|s| s == name) {
        return Ok(());
    }
    let existing = target
        .pve
        .snapshots(&target.node, target.kind, target.vmid)
        .await?;
    if !existing.iter().any(|s| s == name) {
        let description = format!("Phoenix: {why}");
        let upid = target
            .pve
            .snapshot(&target.node, target.kind, target.vmid, name, &description)
            .await?;
        wait(&target.pve, &upid).await?;
        ctx.event(
            target.object,
            EventType::Normal,
            "SnapshotTaken",
            format!("snapshot {name} of {} ({why})", target.label),
        )
        .await;
    }
    observation.snapshots.push(name.to_owned());
    Ok(())
}

/// Deletes the oldest automatic snapshots beyond `retain`.
async fn prune<K>(target: &Target<'_, K>, observation: &mut GuestObservation) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + ResourceExt,
{
    let retain = target.common.snapshots.as_ref().map_or(3, |s| s.retain) as usize;
    let existing = target
        .pve
        .snapshots(&target.node, target.kind, target.vmid)
        .await?;
    let automatic: Vec<&String> = existing
        .iter()
        .filter(|s| s.starts_with(AUTOMATIC))
        .collect();
    for name in &automatic[..automatic.len().saturating_sub(retain)] {
        let upid = target
            .pve
            .delete_snapshot(&target.node, target.kind, target.vmid, name)
            .await?;
        wait(&target.pve, &upid).await?;
        observation.snapshots.retain(|s| s != *name);
    }
    Ok(())
}

async fn wait(client: &ProxmoxClient, upid: &Upid) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + TASK_WAIT;
    loop {
        match client.task(upid).await?.outcome() {
            TaskOutcome::Succeeded => return Ok(()),
            TaskOutcome::Failed(exitstatus) => {
                return Err(Error::TaskFailed {
                    upid: upid.raw.clone(),
                    exitstatus,
                });
            }
            TaskOutcome::Running if tokio::time::Instant::now() > deadline => {
                return Err(Error::TaskFailed {
                    upid: upid.raw.clone(),
                    exitstatus: format!("still running after {TASK_WAIT:?}"),
                });
            }
            TaskOutcome::Running => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
