//! A VM's Docker Swarm role, through its guest agent: the manager initialises the swarm,
//! a worker joins it with the token read from the manager. Each step first reads the
//! node's own state (`docker info`), so a node already in the swarm is left alone and a
//! worker that has left is joined again; the node it was before is removed from the
//! manager's list. Deleting a worker (`deletionPolicy: Delete`) leaves the swarm first.

use crate::conditions::reason;
use crate::error::Error;
use crate::guest::GuestContext;
use crate::guest::Progress;
use crate::guest::observe::Live;
use crate::pve::Connection;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use phoenix_clients::exec::{ExecOutput, GuestShell};
use phoenix_clients::proxmox::GuestType;
use phoenix_crds::VmGuest;
use phoenix_crds::common::DeletionPolicy;
use phoenix_crds::vm::{SwarmRole, SwarmStatus, VmGuestStatus};
use std::time::Duration;

/// Swarm commands are quick; joining may take Docker a few seconds.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The port workers reach managers on.
const SWARM_PORT: u16 = 2377;

/// A node's own view of the swarm.
#[derive(Debug, PartialEq, Eq)]
pub struct LocalState {
    pub active: bool,
    /// Joining (a join cut off, or still under way): not to be joined again.
    pub pending: bool,
    pub node_id: Option<String>,
}

/// `docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}}'` as a state.
pub fn parse_state(output: &str) -> LocalState {
    let mut words = output.split_whitespace();
    let state = words.next();
    let active = state == Some("active");
    LocalState {
        active,
        pending: state == Some("pending"),
        node_id: words.next().filter(|_| active).map(str::to_owned),
    }
}

async fn run(shell: &GuestShell, words: &[&str]) -> Result<ExecOutput, Error> {
    crate::guest_exec::run(shell, words, TIMEOUT).await
}

fn failed(reason: &'static str, what: &str, out: &ExecOutput) -> Error {
    Error::swarm_command(reason, what, out)
}

async fn local_state(shell: &GuestShell) -> Result<LocalState, Error> {
    let out = run(
        shell,
        &[
            "docker",
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}}",
        ],
    )
    .await?;
    if !out.success() {
        return Err(failed("DockerUnavailable", "docker info", &out));
    }
    Ok(parse_state(&out.output))
}

async fn shell_of(
    ctx: &GuestContext,
    pve: &Connection,
    node: &str,
    vmid: u32,
) -> Result<GuestShell, Error> {
    crate::guest_exec::shell(
        &ctx.kube,
        pve,
        ctx.pve.redirect(),
        GuestType::Qemu,
        node,
        vmid,
    )
    .await
}

/// Puts the VM in its swarm role once it is Ready; `ready` is what the pass reports then.
pub async fn settle(
    vm: &VmGuest,
    ctx: &GuestContext,
    pve: &Connection,
    live: &Live,
    status: &mut VmGuestStatus,
    ready: Progress,
) -> Result<Progress, Error> {
    let Some(swarm) = &vm.spec.swarm else {
        status.swarm = None;
        return Ok(ready);
    };
    let shell = shell_of(ctx, pve, &live.node, vm.spec.vmid).await?;
    let state = local_state(&shell).await?;
    let role = match swarm.role {
        SwarmRole::Manager => "manager",
        SwarmRole::Worker => "worker",
    };
    if state.pending {
        return Ok(Progress::Waiting {
            reason: reason::SWARM_JOIN_PENDING,
            message: format!("VM {} is joining its swarm", vm.spec.vmid),
            retry: Duration::from_secs(5),
        });
    }
    let node_id = if state.active {
        state.node_id
    } else {
        let joined = match swarm.role {
            SwarmRole::Manager => init(vm, ctx, &shell, status).await?,
            SwarmRole::Worker => join(vm, ctx, &shell, status).await?,
        };
        match joined {
            Ok(()) => local_state(&shell).await?.node_id,
            Err(waiting) => return Ok(waiting),
        }
    };
    status.swarm = Some(SwarmStatus {
        role: Some(role.into()),
        state: Some("active".into()),
        node_id,
    });
    Ok(ready)
}

/// The address the manager is reached at: its `advertiseAddress`, else its first IP.
fn manager_address(vm: &VmGuest, status: &VmGuestStatus) -> Option<String> {
    vm.spec
        .swarm
        .as_ref()
        .and_then(|s| s.advertise_address.clone())
        .or_else(|| status.guest.ip.clone())
}

async fn init(
    vm: &VmGuest,
    ctx: &GuestContext,
    shell: &GuestShell,
    status: &VmGuestStatus,
) -> Result<Result<(), Progress>, Error> {
    let Some(address) = manager_address(vm, status) else {
        return Ok(Err(Progress::Waiting {
            reason: reason::WAITING_FOR_ADDRESS,
            message: format!(
                "VM {} has no address to advertise to the swarm",
                vm.spec.vmid
            ),
            retry: Duration::from_secs(5),
        }));
    };
    let out = run(
        shell,
        &["docker", "swarm", "init", "--advertise-addr", &address],
    )
    .await?;
    if !out.success() {
        return Err(failed("SwarmInitFailed", "docker swarm init", &out));
    }
    ctx.event(
        vm,
        EventType::Normal,
        "SwarmInitialized",
        format!(
            "initialised a swarm on VM {}, advertising {address}",
            vm.spec.vmid
        ),
    )
    .await;
    Ok(Ok(()))
}

/// A shell into the manager, through its own cluster's connection, once PVE's VM (checked
/// now) carries the manager object's marker and runs.
async fn manager_shell(ctx: &GuestContext, manager: &VmGuest) -> Result<GuestShell, Error> {
    crate::guest_exec::vm_shell(ctx, manager)
        .await?
        .map_err(|why| Error::Swarm {
            reason: reason::WAITING_FOR_SWARM_MANAGER,
            message: format!("the swarm manager {}: {why}", manager.name_any()),
        })
}

/// The manager a worker joins, if it has its swarm up: the object, its status.
fn manager(vm: &VmGuest, ctx: &GuestContext) -> Result<(VmGuest, VmGuestStatus), Progress> {
    let name = vm
        .spec
        .swarm
        .as_ref()
        .and_then(|s| s.manager_ref.as_ref())
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let namespace = vm.namespace().unwrap_or_default();
    let found = ctx
        .vm
        .store
        .state()
        .into_iter()
        .find(|m| m.name_any() == name && m.namespace().unwrap_or_default() == namespace);
    let waiting = |message: String| Progress::Waiting {
        reason: reason::WAITING_FOR_SWARM_MANAGER,
        message,
        retry: Duration::from_secs(10),
    };
    let Some(manager) = found else {
        return Err(waiting(format!(
            "the swarm manager VmGuest {name} does not exist"
        )));
    };
    let status = manager.status.clone().unwrap_or_default();
    let active = status.swarm.as_ref().and_then(|s| s.state.as_deref()) == Some("active")
        && status.swarm.as_ref().and_then(|s| s.role.as_deref()) == Some("manager");
    if !active || status.guest.node.is_none() {
        return Err(waiting(format!(
            "waiting for {name} to initialise its swarm"
        )));
    }
    Ok(((*manager).clone(), status))
}

async fn join(
    vm: &VmGuest,
    ctx: &GuestContext,
    shell: &GuestShell,
    status: &VmGuestStatus,
) -> Result<Result<(), Progress>, Error> {
    let (manager, manager_status) = match self::manager(vm, ctx) {
        Ok(found) => found,
        Err(waiting) => return Ok(Err(waiting)),
    };
    let Some(address) = manager_address(&manager, &manager_status) else {
        return Ok(Err(Progress::Waiting {
            reason: reason::WAITING_FOR_SWARM_MANAGER,
            message: format!("{} has no address yet", manager.name_any()),
            retry: Duration::from_secs(10),
        }));
    };
    let manager_shell = manager_shell(ctx, &manager).await?;
    let out = run(
        &manager_shell,
        &["docker", "swarm", "join-token", "-q", "worker"],
    )
    .await?;
    if !out.success() {
        return Err(failed(
            "SwarmTokenUnavailable",
            "docker swarm join-token",
            &out,
        ));
    }
    let token = out.output.trim().to_owned();
    let target = format!("{address}:{SWARM_PORT}");
    let out = run(
        shell,
        &["docker", "swarm", "join", "--token", &token, &target],
    )
    .await?;
    if !out.success() {
        return Err(failed("SwarmJoinFailed", "docker swarm join", &out));
    }
    let mut message = format!(
        "VM {} joined the swarm of {} at {target}",
        vm.spec.vmid,
        manager.name_any()
    );
    // The node this worker was before it left stays listed on the manager (down, or not
    // yet seen down): it is gone for good.
    if let Some(old) = status.swarm.as_ref().and_then(|s| s.node_id.as_deref()) {
        let removed = run(&manager_shell, &["docker", "node", "rm", "--force", old]).await?;
        if removed.success() {
            message.push_str(&format!(
                "; its former node {old} was removed from the manager"
            ));
        }
    }
    ctx.event(vm, EventType::Normal, "SwarmJoined", message)
        .await;
    Ok(Ok(()))
}

/// Before a worker is destroyed: it leaves the swarm, and the manager forgets it. `Retain`
/// leaves the VM and its swarm membership as they are; a manager is not taken apart.
pub async fn leave(
    vm: &VmGuest,
    ctx: &GuestContext,
    pve: &Connection,
    live: &Live,
    status: &mut VmGuestStatus,
) -> Result<Option<Progress>, Error> {
    let worker = vm
        .spec
        .swarm
        .as_ref()
        .is_some_and(|s| s.role == SwarmRole::Worker);
    if !worker || vm.spec.common.deletion_policy == DeletionPolicy::Retain {
        return Ok(None);
    }
    let recorded = status.swarm.as_ref().and_then(|s| s.node_id.clone());
    // A stopped VM, or one whose agent or docker does not answer, cannot leave: the
    // manager then removes the node by force, so a lost worker never blocks deletion.
    let state = if live.running {
        let shell = shell_of(ctx, pve, &live.node, vm.spec.vmid).await?;
        match local_state(&shell).await {
            Ok(state) => Some((shell, state)),
            Err(e) => {
                tracing::warn!(vm = vm.spec.vmid, "cannot leave the swarm from inside: {e}");
                None
            }
        }
    } else {
        None
    };
    let left = match &state {
        Some((shell, state)) if state.active => {
            let out = run(shell, &["docker", "swarm", "leave"]).await?;
            if !out.success() {
                return Err(failed("SwarmLeaveFailed", "docker swarm leave", &out));
            }
            status.swarm = Some(SwarmStatus {
                role: Some("worker".into()),
                state: Some("left".into()),
                node_id: state.node_id.clone().or(recorded.clone()),
            });
            ctx.event(
                vm,
                EventType::Normal,
                "SwarmLeft",
                format!("VM {} left the swarm", vm.spec.vmid),
            )
            .await;
            true
        }
        // A join that never completed: given up on this side, forced out on the manager's.
        Some((shell, state)) if state.pending => {
            run(shell, &["docker", "swarm", "leave", "--force"]).await?;
            false
        }
        Some(_) => true,
        None => false,
    };
    let node_id = state
        .as_ref()
        .and_then(|(_, s)| s.node_id.clone())
        .or(recorded);
    let (Some(id), Ok((manager, _))) = (node_id, manager(vm, ctx)) else {
        return Ok(None);
    };
    let manager_shell = manager_shell(ctx, &manager).await?;
    let remove: &[&str] = if left {
        &["docker", "node", "rm", &id]
    } else {
        &["docker", "node", "rm", "--force", &id]
    };
    let out = run(&manager_shell, remove).await?;
    let gone = out.output.contains("not found");
    if !out.success() && !gone {
        if out.output.contains("is not down") {
            // The manager has not noticed the departure yet.
            return Ok(Some(Progress::Waiting {
                reason: reason::LEAVING_SWARM,
                message: format!("waiting for {} to see node {id} down", manager.name_any()),
                retry: Duration::from_secs(2),
            }));
        }
        return Err(failed("SwarmNodeRemoveFailed", "docker node rm", &out));
    }
    if !gone {
        ctx.event(
            vm,
            EventType::Normal,
            "SwarmNodeRemoved",
            format!("node {id} removed from the swarm of {}", manager.name_any()),
        )
        .await;
    }
    status.swarm = None;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_state_reads_dockers_words() {
        assert!(parse_state("pending \n").pending);
        assert_eq!(
            parse_state("active abc123\n"),
            LocalState {
                active: true,
                pending: false,
                node_id: Some("abc123".into())
            }
        );
        assert_eq!(
            parse_state("inactive \n"),
            LocalState {
                active: false,
                pending: false,
                node_id: None
            }
        );
    }
}
