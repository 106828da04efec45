//! Deletion of a guest object: `Delete` stops and destroys the guest (purge), one PVE
//! task per pass; `Retain` leaves it running and removes Phoenix's marker. A guest that is
//! not Phoenix's is never touched; PVE's `protection` flag is honoured and reported.

use super::observe;
use super::{Guest, GuestContext, Progress, waker};
use crate::cluster_view::Freshness;
use crate::conditions::reason;
use crate::error::Error;
use crate::ownership::Ownership;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use phoenix_clients::proxmox::{ErrorKind, Params, TaskOutcome, Upid};
use phoenix_crds::common::DeletionPolicy;
use std::time::Duration;

/// `Ok(None)` when the guest is dealt with and the finalizer may go.
pub async fn remove<G: Guest>(
    guest: &G,
    ctx: &GuestContext,
    status: &mut G::Status,
) -> Result<Option<Progress>, Error> {
    let (vmid, label) = (guest.vmid(), guest.label());
    let common = guest.common();
    let pve = match ctx
        .pve
        .get(common.cluster_ref.as_ref().map(|r| r.name.as_str()))
        .await
    {
        Ok(pve) => pve,
        // The cluster object is gone: nothing Phoenix can reach is left to release.
        Err(Error::ClusterNotFound(_)) if G::view(status).1.node.is_none() => return Ok(None),
        Err(e) => return Err(e),
    };
    let observation = G::parts(status).1;
    if let Some(raw) = observation.task_upid.clone()
        && let Some(upid) = Upid::parse(&raw)
    {
        match pve.client.task(&upid).await.map(|t| t.outcome()) {
            Ok(TaskOutcome::Running) => {
                if !ctx.tasks.is_following(&raw) {
                    ctx.tasks
                        .follow(pve.client.clone(), upid, Vec::new(), waker(ctx, guest));
                }
                return Ok(Some(Progress::Working {
                    reason: reason::DELETING,
                    message: format!("waiting for PVE task {raw}"),
                }));
            }
            Ok(TaskOutcome::Failed(exitstatus)) => {
                observation.task_upid = None;
                return Err(Error::TaskFailed {
                    upid: raw,
                    exitstatus,
                });
            }
            Ok(TaskOutcome::Succeeded) => observation.task_upid = None,
            Err(e) if e.kind == ErrorKind::NotFound => observation.task_upid = None,
            Err(e) => return Err(e.into()),
        }
    }
    // Destroying is decided on a look taken now, not on the shared snapshot.
    let now = Freshness::After(std::time::Instant::now());
    let Some(live) = observe::find(&pve, G::TYPE, vmid, now).await? else {
        return Ok(None);
    };
    if live.ownership(&guest.uid().unwrap_or_default()) != Ownership::Ours {
        ctx.event(
            guest,
            EventType::Normal,
            "NotOwned",
            format!("{label} is not Phoenix's; left as it is"),
        )
        .await;
        return Ok(None);
    }
    if let Some(lock) = live.lock() {
        return Ok(Some(Progress::Waiting {
            reason: reason::LOCKED,
            message: format!("PVE holds the lock {lock:?} on {label}; waiting before deleting"),
            retry: Duration::from_secs(2),
        }));
    }
    let delete = common.deletion_policy == DeletionPolicy::Delete;
    // Refused before anything else is done to it (a swarm worker would leave its swarm).
    if delete && live.config.get("protection").is_some_and(|p| p == "1") {
        return Err(Error::spec(
            reason::DELETION_PROTECTED,
            format!(
                "{label} has PVE's protection flag set: clear it ({} set {vmid} --protection 0) or set deletionPolicy: Retain",
                if G::TYPE == phoenix_clients::proxmox::GuestType::Lxc {
                    "pct"
                } else {
                    "qm"
                }
            ),
        ));
    }
    if let Some(progress) = guest.before_removal(ctx, &pve, &live, status).await? {
        return Ok(Some(progress));
    }
    match common.deletion_policy {
        DeletionPolicy::Retain => {
            release(guest, ctx, &pve.client, &live).await?;
            Ok(None)
        }
        DeletionPolicy::Delete => {
            let (action, upid) = if live.running {
                (
                    "Stopping",
                    pve.client.power(&live.node, G::TYPE, vmid, "stop").await,
                )
            } else {
                (
                    "Destroying",
                    pve.client.destroy(&live.node, G::TYPE, vmid, false).await,
                )
            };
            let upid = match upid {
                Ok(upid) => upid,
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let message = format!("{action} {label} (task {})", upid.raw);
            let observation = G::parts(status).1;
            observation.task_upid = Some(upid.raw.clone());
            observation.step = Some(action.into());
            ctx.tasks
                .follow(pve.client.clone(), upid, Vec::new(), waker(ctx, guest));
            ctx.event(guest, EventType::Normal, action, message.clone())
                .await;
            Ok(Some(Progress::Working {
                reason: reason::DELETING,
                message,
            }))
        }
    }
}

/// Removes the marker (tag and description) so the guest is nobody's.
async fn release<G: Guest>(
    guest: &G,
    ctx: &GuestContext,
    client: &phoenix_clients::proxmox::ProxmoxClient,
    live: &observe::Live,
) -> Result<(), Error> {
    let tags: Vec<String> = live
        .config
        .get("tags")
        .map(|t| {
            t.split([';', ',', ' '])
                .filter(|t| !t.is_empty() && *t != crate::ownership::OWNER_TAG)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut params: Params = vec![("delete".into(), "description".into())];
    if tags.is_empty() {
        params[0].1.push_str(",tags");
    } else {
        params.push(("tags".into(), tags.join(";")));
    }
    client
        .update_config(&live.node, G::TYPE, guest.vmid(), &params)
        .await?;
    ctx.event(
        guest,
        EventType::Normal,
        "Retained",
        format!(
            "{} left running on {} without Phoenix's marker (deletionPolicy: Retain)",
            guest.label(),
            live.node
        ),
    )
    .await;
    Ok(())
}
