//! The way into a guest: the QEMU agent for VMs; for containers, `pct` on the node over
//! SSH (key and pinned host keys from the cluster's Secret), or a local `pct` when the
//! cluster has no `ssh` (Phoenix on the node itself). In simulate mode the simulator's
//! `pct` (or a loopback sshd standing in for the node) is used: never a real address.

use crate::context::Context;
use crate::error::Error;
use crate::ownership::{Ownership, ownership};
use crate::pve::{Connection, Redirect};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DynamicObject};
use phoenix_clients::exec::{GuestShell, NodeShell, Pct, agent::Agent};
use phoenix_clients::proxmox::{ErrorKind, GuestType};
use phoenix_crds::VmGuest;
use phoenix_crds::common::{GuestKind, GuestObservation, PhoenixKind};

/// A shell into the guest the object `owner_uid` owns, checked now rather than trusted
/// from any status: PVE's config must carry that object's marker, and the guest must run.
/// `Err(why)` inside: nothing may be done in it (not there, stopped, or not ours — then
/// nothing is pushed into it and nothing runs in it, whatever an object's spec says).
#[allow(clippy::too_many_arguments)]
pub async fn owned_shell(
    kube: &kube::Client,
    pve: &Connection,
    redirect: Option<&Redirect>,
    kind: GuestType,
    node: &str,
    vmid: u32,
    owner_uid: &str,
) -> Result<Result<GuestShell, String>, Error> {
    let label = match kind {
        GuestType::Lxc => format!("CT {vmid}"),
        GuestType::Qemu => format!("VM {vmid}"),
    };
    let config = match pve.client.config(node, kind, vmid).await {
        Ok(config) => config,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(Err(format!("{label} is not there"))),
        Err(e) => return Err(e.into()),
    };
    if ownership(&config, owner_uid) != Ownership::Ours {
        return Ok(Err(format!(
            "{label} does not carry its object's marker: nothing is done inside it"
        )));
    }
    if pve.client.status(node, kind, vmid).await?.status != "running" {
        return Ok(Err(format!("{label} is not running")));
    }
    shell(kube, pve, redirect, kind, node, vmid).await.map(Ok)
}

/// A shell into the VM of VmGuest `vm` (through its agent), checked as [`owned_shell`]
/// checks: `Err(why)` inside when it has no VM yet, or one without its marker, or stopped.
pub async fn vm_shell(
    ctx: &crate::context::Context,
    vm: &VmGuest,
) -> Result<Result<GuestShell, String>, Error> {
    let observed = vm.status.as_ref().map(|s| &s.guest);
    let (Some(node), Some(uid)) = (
        observed.and_then(|g| g.node.clone()),
        vm.metadata.uid.clone(),
    ) else {
        return Ok(Err(format!(
            "VmGuest {} has no VM yet",
            vm.metadata.name.as_deref().unwrap_or_default()
        )));
    };
    let cluster = vm.spec.common.cluster_ref.as_ref().map(|r| r.name.as_str());
    let pve = ctx.pve.get(cluster).await?;
    let (kind, vmid) = (GuestType::Qemu, vm.spec.vmid);
    owned_shell(&ctx.kube, &pve, ctx.pve.redirect(), kind, &node, vmid, &uid).await
}

/// Runs `words` in `shell`; its exit code and output (a non-zero exit is not an error).
pub async fn run(
    shell: &GuestShell,
    words: &[&str],
    timeout: std::time::Duration,
) -> Result<phoenix_clients::exec::ExecOutput, Error> {
    let argv: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    Ok(shell.exec(&argv, timeout).await?)
}

pub async fn shell(
    kube: &kube::Client,
    pve: &Connection,
    redirect: Option<&Redirect>,
    kind: GuestType,
    node: &str,
    vmid: u32,
) -> Result<GuestShell, Error> {
    if kind == GuestType::Qemu {
        return Ok(GuestShell::Agent(Agent {
            client: pve.client.clone(),
            node: node.to_owned(),
            vmid,
        }));
    }
    let cluster = &pve.cluster;
    let shell = match (&cluster.spec.ssh, redirect) {
        (
            Some(_),
            Some(Redirect {
                ssh: Some(address), ..
            }),
        ) => {
            let target = crate::node_exec::ssh_target(kube, cluster, node).await?;
            let (host, port) = address.rsplit_once(':').unwrap_or((address, "22"));
            NodeShell::Ssh(target.connecting_to(host, port.parse().unwrap_or(22)))
        }
        (_, Some(redirect)) => NodeShell::Local(redirect.pct.clone()),
        (Some(_), None) => NodeShell::Ssh(crate::node_exec::ssh_target(kube, cluster, node).await?),
        (None, None) => NodeShell::Local(vec!["pct".into()]),
    };
    Ok(GuestShell::Pct(Pct { shell, vmid }))
}

/// The way into an LxcGuest's or VmGuest's guest once the object is Ready and PVE's guest, checked now,
/// carries that object's marker; `Err(why)` while not (a status is never trusted for
/// where to act: it could name a guest that is not the object's).
pub async fn object_shell(
    ctx: &Context,
    namespace: &str,
    kind: GuestKind,
    name: &str,
) -> Result<Result<GuestShell, String>, Error> {
    let (phoenix_kind, kind) = match kind {
        GuestKind::LxcGuest => (PhoenixKind::LxcGuest, GuestType::Lxc),
        GuestKind::VmGuest => (PhoenixKind::VmGuest, GuestType::Qemu),
    };
    // Both kinds keep the same observation in status and name their cluster alike.
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.kube.clone(),
        namespace,
        &crate::readiness::resource(phoenix_kind),
    );
    let Some(guest) = api.get_opt(name).await? else {
        return Ok(Err("no such object".into()));
    };
    let conditions: Vec<Condition> =
        serde_json::from_value(guest.data["status"]["conditions"].clone()).unwrap_or_default();
    if !crate::conditions::is_true(&conditions, crate::conditions::READY) {
        return Ok(Err("not Ready".into()));
    }
    let observation: GuestObservation =
        serde_json::from_value(guest.data["status"].clone()).unwrap_or_default();
    let (Some(node), Some(vmid)) = (observation.node.as_deref(), observation.vmid) else {
        return Ok(Err("not placed yet".into()));
    };
    let cluster = guest.data["spec"]["clusterRef"]["name"].as_str();
    let uid = guest.metadata.uid.clone().unwrap_or_default();
    let pve = ctx.pve.get(cluster).await?;
    let redirect = ctx.pve.redirect();
    owned_shell(&ctx.kube, &pve, redirect, kind, node, vmid, &uid).await
}
