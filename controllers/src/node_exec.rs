//! Commands and files on a PVE node itself (not inside a guest): over SSH with the
//! cluster's key and pinned host keys, or here when Phoenix runs on the node (the cluster
//! has no `ssh`); in simulate mode on the simulator's node, never a real address. The
//! cloud-init snippets of VMs and the host's own setup (dnsmasq) go through here.

use crate::conditions::reason;
use crate::error::Error;
use crate::pve::{Connection, Redirect};
use phoenix_clients::exec::ssh::SshTarget;
use phoenix_clients::exec::{ExecError, ExecOutput, quote};
use phoenix_crds::ProxmoxCluster;

/// Writes `content` to `path` on `node` with `mode` (a cloud-init snippet 0600, dnsmasq's
/// records 0644): over SSH with the cluster's key, or directly when Phoenix runs on the
/// node itself; in simulate mode onto the simulator's node.
pub async fn write_file(
    kube: &kube::Client,
    pve: &Connection,
    redirect: Option<&Redirect>,
    node: &str,
    path: &str,
    content: &str,
    mode: u32,
) -> Result<(), Error> {
    if let Some(redirect) = redirect {
        let body =
            serde_json::json!({"path": path, "content": content, "mode": format!("{mode:04o}")});
        simulated(redirect, reqwest::Method::PUT, node, "files", body).await?;
        return Ok(());
    }
    let dir = std::path::Path::new(path)
        .parent()
        .map_or_else(|| "/".into(), |d| d.display().to_string());
    // Written beside and renamed into place: a cut-off write never passes for the file.
    // A dot name: directory watchers (dnsmasq's --hostsdir) skip it, and would otherwise
    // read the half-written file as one of their own.
    let partial = partial_of(path);
    if pve.cluster.spec.ssh.is_none() {
        use std::os::unix::fs::OpenOptionsExt;
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&partial)?;
            // A leftover partial keeps its old mode, and the umask filters a new one's:
            // the mode is set before anything is written.
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            std::io::Write::write_all(&mut file, content.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&partial, path)
        };
        return write().map_err(|e| refused(format!("{path}: {e}")));
    }
    let target = ssh_target(kube, &pve.cluster, node).await?;
    let line = format!(
        "mkdir -p {dir} && umask 077 && cat > {partial} && chmod {mode:04o} {partial} && mv {partial} {path}",
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

/// `/d/name` → `/d/.name.partial`.
fn partial_of(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.partial"),
        None => format!(".{path}.partial"),
    }
}

/// Runs `argv` on `node`: over SSH (each word quoted for the node's shell), here when
/// Phoenix runs on the node, or on the simulator's node in simulate mode. A non-zero exit
/// is not an error: the caller names the step that failed.
pub async fn run(
    kube: &kube::Client,
    pve: &Connection,
    redirect: Option<&Redirect>,
    node: &str,
    argv: &[String],
    timeout: std::time::Duration,
) -> Result<ExecOutput, Error> {
    if let Some(redirect) = redirect {
        let body = serde_json::json!({ "command": argv });
        let answer = simulated(redirect, reqwest::Method::POST, node, "exec", body).await?;
        return Ok(ExecOutput {
            exit_code: answer["exitcode"].as_i64().unwrap_or(-1) as i32,
            output: answer["output"].as_str().unwrap_or_default().to_owned(),
        });
    }
    if pve.cluster.spec.ssh.is_none() {
        let (program, args) = argv.split_at(argv.len().min(1));
        return Ok(phoenix_clients::exec::run_local(program, args, timeout).await?);
    }
    let target = ssh_target(kube, &pve.cluster, node).await?;
    let line = argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    Ok(target.run(&line, None, timeout).await?)
}

/// A call to the simulator's node `node` (`/admin/nodes/{node}/{what}`).
async fn simulated(
    redirect: &Redirect,
    method: reqwest::Method,
    node: &str,
    what: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let path = format!("nodes/{node}/{what}");
    let admin = redirect.admin().map_err(refused)?;
    admin
        .call(method, &path, &[], Some(body))
        .await
        .map_err(refused)
}

/// A refusal to act on the node (what failed, never a secret).
fn refused(e: String) -> Error {
    Error::Exec(ExecError::Refused(e))
}

const NODE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// SSH to `node`: its address from the cluster spec (or the API endpoint's host).
pub async fn ssh_target(
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
    let address =
        node_address(cluster, node).map_err(|m| Error::spec(reason::NODE_ADDRESS_UNKNOWN, m))?;
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

/// Where SSH reaches `node`: its address in `spec.nodes`, or the API endpoint's host when
/// that can only be this node (the cluster has one node, as far as the spec and the last
/// look say). Guessing otherwise would act on another node.
fn node_address(cluster: &ProxmoxCluster, node: &str) -> Result<String, String> {
    let spec = &cluster.spec;
    if let Some(address) = spec
        .nodes
        .iter()
        .find(|n| n.name == node)
        .and_then(|n| n.address.clone())
    {
        return Ok(address);
    }
    let others_listed = spec.nodes.iter().any(|n| n.name != node);
    let seen = cluster
        .status
        .as_ref()
        .and_then(|s| s.node_count)
        .unwrap_or(1);
    if others_listed || seen > 1 {
        return Err(format!(
            "node {node}: the cluster has several nodes; give its SSH address in spec.nodes[].address"
        ));
    }
    Ok(endpoint_host(&spec.endpoint))
}

/// `https://10.0.0.13:8006` → `10.0.0.13`.
pub fn endpoint_host(endpoint: &str) -> String {
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
    fn a_partial_file_is_a_dot_file_beside_its_target() {
        assert_eq!(
            super::partial_of("/etc/phoenix/dnsmasq/hosts/lxc.default.web"),
            "/etc/phoenix/dnsmasq/hosts/.lxc.default.web.partial"
        );
    }

    #[test]
    fn a_node_is_reached_at_its_own_address_or_the_endpoint_only_when_alone() {
        let cluster = |nodes: serde_json::Value, seen: u32| -> phoenix_crds::ProxmoxCluster {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "phoenix.thinkheads.ai/v1alpha1", "kind": "ProxmoxCluster",
                "metadata": {"name": "homelab"},
                "spec": {"endpoint": "https://10.0.0.13:8006", "nodes": nodes,
                         "credentialsSecretRef": {"name": "t", "namespace": "n"}},
                "status": {"nodeCount": seen}
            }))
            .unwrap()
        };
        let listed =
            serde_json::json!([{"name": "pve1", "address": "10.0.0.21"}, {"name": "pve2"}]);
        assert_eq!(
            super::node_address(&cluster(listed.clone(), 2), "pve1").unwrap(),
            "10.0.0.21"
        );
        assert!(
            super::node_address(&cluster(listed, 2), "pve2")
                .unwrap_err()
                .contains("spec.nodes[].address")
        );
        let alone = super::node_address(&cluster(serde_json::json!([]), 1), "phoenix");
        assert_eq!(alone.unwrap(), "10.0.0.13");
        assert!(super::node_address(&cluster(serde_json::json!([]), 3), "phoenix").is_err());
    }

    #[test]
    fn the_node_address_defaults_to_the_endpoint_host() {
        assert_eq!(super::endpoint_host("https://10.0.0.13:8006"), "10.0.0.13");
        assert_eq!(super::endpoint_host("https://pve.lan/"), "pve.lan");
        assert_eq!(super::endpoint_host("https://[fd00::13]:8006"), "fd00::13");
    }
}
