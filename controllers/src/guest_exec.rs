//! The way into a guest: the QEMU agent for VMs; for containers, `pct` on the node over
//! SSH (key and pinned host keys from the cluster's Secret), or a local `pct` when the
//! cluster has no `ssh` (Phoenix on the node itself). In simulate mode the simulator's
//! `pct` (or a loopback sshd standing in for the node) is used: never a real address.

use crate::error::Error;
use crate::pve::{Connection, Redirect};
use phoenix_clients::exec::ssh::SshTarget;
use phoenix_clients::exec::{GuestShell, NodeShell, Pct, agent::Agent};
use phoenix_clients::proxmox::GuestType;
use phoenix_crds::ProxmoxCluster;

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

/// SSH to `node`: its address from the cluster spec (or the API endpoint's host).
async fn ssh_target(
    kube: &kube::Client,
    cluster: &ProxmoxCluster,
    node: &str,
) -> Result<SshTarget, Error> {
    let Some(ssh) = &cluster.spec.ssh else {
        return Err(Error::spec(
            "SshNotConfigured",
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
