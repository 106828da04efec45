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

/// Automatic snapshots are named `pre-` and the hash of the change they precede; the name
/// alone does not make one Phoenix's (see [`prunable`]).
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
    for name in prunable(&existing, &observation.snapshots, retain) {
        let upid = target
            .pve
            .delete_snapshot(&target.node, target.kind, target.vmid, &name)
            .await?;
        wait(&target.pve, &upid).await?;
        observation.snapshots.retain(|s| *s != name);
    }
    Ok(())
}

/// The automatic snapshots to delete, oldest first (`existing` is in PVE's order), so that
/// `retain` of them are left. Only snapshots Phoenix took and recorded in status are
/// candidates: a hand-made `pre-upgrade-1` is the user's, whatever its name looks like.
fn prunable(existing: &[String], recorded: &[String], retain: usize) -> Vec<String> {
    let automatic: Vec<&String> = existing
        .iter()
        .filter(|s| s.starts_with(AUTOMATIC) && recorded.contains(s))
        .collect();
    automatic[..automatic.len().saturating_sub(retain)]
        .iter()
        .map(|s| s.to_string())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pruning_deletes_only_the_snapshots_phoenix_recorded_as_its_own() {
        // (in PVE, recorded in status, retain, deleted)
        type Case<'a> = (&'a [&'a str], &'a [&'a str], usize, &'a [&'a str]);
        let cases: &[Case] = &[
            // A hand-made snapshot that looks automatic survives, however many there are.
            (
                &["pre-upgrade-1", "pre-a", "pre-b", "pre-c"],
                &["pre-a", "pre-b", "pre-c"],
                2,
                &["pre-a"],
            ),
            (&["pre-upgrade-1", "pre-a"], &["pre-a"], 1, &[]),
            (&["pre-upgrade-1"], &[], 1, &[]),
            // The afterProvisioning snapshot is Phoenix's but not automatic: kept.
            (
                &["post-setup", "pre-a", "pre-b"],
                &["post-setup", "pre-a", "pre-b"],
                1,
                &["pre-a"],
            ),
            // Recorded but gone from PVE: nothing to delete.
            (&["pre-b"], &["pre-a", "pre-b"], 1, &[]),
        ];
        for (existing, recorded, retain, deleted) in cases {
            assert_eq!(
                prunable(&names(existing), &names(recorded), *retain),
                names(deleted),
                "existing {existing:?}, recorded {recorded:?}, retain {retain}"
            );
        }
    }
}
