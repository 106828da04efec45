//! The way into a guest: the QEMU agent for VMs; for containers, `pct` on the node over
//! SSH (key and pinned host keys from the cluster's Secret), or a local `pct` when the
//! cluster has no `ssh` (Phoenix on the node itself). In simulate mode the simulator's
//! `pct` (or a loopback sshd standing in for the node) is used: never a real address.

use crate::conditions::reason;
use crate::error::Error;
use crate::ownership::{Ownership, ownership};
use crate::pve::{Connection, Redirect};
use phoenix_clients::exec::ssh::SshTarget;
use phoenix_clients::exec::{ExecError, GuestShell, NodeShell, Pct, agent::Agent, quote};
use phoenix_clients::proxmox::{ErrorKind, GuestType};
use phoenix_crds::{ProxmoxCluster, VmGuest};

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
            let target = ssh_target(kube, cluster, node).await?;
            let (host, port) = address.rsplit_once(':').unwrap_or((address, "22"));
            NodeShell::Ssh(target.connecting_to(host, port.parse().unwrap_or(22)))
        }
        (_, Some(redirect)) => NodeShell::Local(redirect.pct.clone()),
        (Some(_), None) => NodeShell::Ssh(ssh_target(kube, cluster, node).await?),
        (None, None) => NodeShell::Local(vec!["pct".into()]),
    };
    Ok(GuestShell::Pct(Pct { shell, vmid }))
}

/// Writes `content` to `path` on `node` (a cloud-init snippet): over SSH with the cluster's
/// key, or directly when Phoenix runs on the node itself; in simulate mode onto the
/// simulator's node.
pub async fn write_node_file(
    kube: &kube::Client,
    pve: &Connection,
    redirect: Option<&Redirect>,
    node: &str,
    path: &str,
    content: &str,
) -> Result<(), Error> {
    let refused = |e: String| Error::Exec(ExecError::Refused(e));
    if let Some(redirect) = redirect {
        let body = serde_json::json!({"path": path, "content": content});
        redirect
            .admin()
            .map_err(refused)?
            .call(
                reqwest::Method::PUT,
                &format!("nodes/{node}/files"),
                &[],
                Some(body),
            )
            .await
            .map_err(refused)?;
        return Ok(());
    }
    let dir = std::path::Path::new(path)
        .parent()
        .map_or_else(|| "/".into(), |d| d.display().to_string());
    // Written beside and renamed into place: a cut-off write never passes for the file.
    let partial = format!("{path}.partial");
    if pve.cluster.spec.ssh.is_none() {
        use std::os::unix::fs::OpenOptionsExt;
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)?;
            std::io::Write::write_all(&mut file, content.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&partial, path)
        };
        return write().map_err(|e| refused(format!("{path}: {e}")));
    }
    let target = ssh_target(kube, &pve.cluster, node).await?;
    let line = format!(
        "mkdir -p {dir} && umask 077 && cat > {partial} && mv {partial} {path}",
        dir = quote(&dir),
        partial = quote(&partial),
        path = quote(path)
    );
    let out = target
        .run(&line, Some(content.as_bytes()), NODE_WRITE_TIMEOUT)
        .await?;
    if !out.success() {
        return Err(refused(format!(
            "writing {path} on {node} failed ({}): {}",
            out.exit_code,
            out.tail(3)
        )));
    }
    Ok(())
}

const NODE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// SSH to `node`: its address from the cluster spec (or the API endpoint's host).
async fn ssh_target(
    kube: &kube::Client,
    cluster: &ProxmoxCluster,
    node: &str,
) -> Result<SshTarget, Error> {
    let Some(ssh) = &cluster.spec.ssh else {
        return Err(Error::spec(
            reason::SSH_NOT_CONFIGURED,
            "the cluster has no ssh settings",
        ));
    };
    let address = cluster
        .spec
        .nodes
        .iter()
        .find(|n| n.name == node)
        .and_then(|n| n.address.clone())
        .unwrap_or_else(|| endpoint_host(&cluster.spec.endpoint));
    let reference = &ssh.secret_ref;
    let ([private_key, known_hosts], _) = crate::pve::secret_texts(
        kube,
        &reference.namespace,
        &reference.name,
        ["id_ed25519", "known_hosts"],
    )
    .await?;
    Ok(SshTarget::new(
        &address,
        ssh.port,
        &ssh.user,
        &private_key,
        &known_hosts,
    )?)
}

/// `https://10.0.0.13:8006` → `10.0.0.13`.
fn endpoint_host(endpoint: &str) -> String {
    let rest = endpoint.split("://").nth(1).unwrap_or(endpoint);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6).to_owned(),
        None => authority.split(':').next().unwrap_or(authority).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_node_address_defaults_to_the_endpoint_host() {
        assert_eq!(super::endpoint_host("https://10.0.0.13:8006"), "10.0.0.13");
        assert_eq!(super::endpoint_host("https://pve.lan/"), "pve.lan");
        assert_eq!(super::endpoint_host("https://[fd00::13]:8006"), "fd00::13");
    }
}
