//! What PVE has for a VMID: where it is, its config, whether it runs, and whose it is.

use crate::conditions::reason;
use crate::error::Error;
use crate::ownership::{Ownership, ownership};
use phoenix_clients::proxmox::{ErrorKind, GuestType, ProxmoxClient};
use serde_json::Value;
use std::collections::BTreeMap;

/// A guest as PVE reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    pub node: String,
    pub config: BTreeMap<String, String>,
    pub running: bool,
}

impl Live {
    pub fn lock(&self) -> Option<&str> {
        self.config.get("lock").map(String::as_str)
    }

    pub fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|t| t == "1")
    }

    pub fn ownership(&self, uid: &str) -> Ownership {
        ownership(&self.config, uid)
    }
}

/// Where a guest is: `/cluster/resources` entry of `vmid`, with its type.
pub async fn locate(client: &ProxmoxClient, vmid: u32) -> Result<Option<(String, String)>, Error> {
    let guests = client.guests().await?;
    Ok(guests
        .iter()
        .find(|g| g.get("vmid").and_then(Value::as_u64) == Some(vmid as u64))
        .map(|g| {
            let text = |k: &str| g.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            (text("node"), text("type"))
        }))
}

/// The guest `vmid` of type `kind`, looked for on `node` first, then anywhere in the
/// cluster. A guest of the other type holding the VMID is a conflict.
pub async fn find(
    client: &ProxmoxClient,
    kind: GuestType,
    node: &str,
    vmid: u32,
) -> Result<Option<Live>, Error> {
    let config = match client.config(node, kind, vmid).await {
        Ok(config) => Some((node.to_owned(), config)),
        Err(e) if e.kind == ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let (node, config) = match config {
        Some(found) => found,
        None => match locate(client, vmid).await? {
            None => return Ok(None),
            Some((_, other)) if other != kind.segment() => {
                let (is, not) = match kind {
                    GuestType::Lxc => ("a VM", "a container"),
                    GuestType::Qemu => ("a container", "a VM"),
                };
                return Err(Error::conflict(
                    reason::VMID_IN_USE,
                    format!("VMID {vmid} is {is}, not {not}"),
                ));
            }
            Some((other, _)) => {
                let config = client.config(&other, kind, vmid).await?;
                (other, config)
            }
        },
    };
    let running = client.status(&node, kind, vmid).await?.status == "running";
    Ok(Some(Live {
        node,
        config,
        running,
    }))
}

/// VMs whose disks are linked clones of template `vmid` (they name its `base-` volumes).
pub async fn linked_clones(client: &ProxmoxClient, vmid: u32) -> Result<Vec<u32>, Error> {
    let base = format!("base-{vmid}-");
    let mut clones = Vec::new();
    for guest in client.guests().await? {
        let text = |k: &str| {
            guest
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let Some(id) = guest.get("vmid").and_then(Value::as_u64) else {
            continue;
        };
        if text("type") != "qemu" || id == u64::from(vmid) {
            continue;
        }
        let config = client
            .config(&text("node"), GuestType::Qemu, id as u32)
            .await?;
        if config.values().any(|v| v.contains(&base)) {
            clones.push(id as u32);
        }
    }
    Ok(clones)
}

/// The container's first address that is not loopback, from PVE's interface list.
pub fn first_address(interfaces: &[Value]) -> Vec<String> {
    interfaces
        .iter()
        .filter(|i| i.get("name").and_then(Value::as_str) != Some("lo"))
        .filter_map(|i| i.get("inet").and_then(Value::as_str))
        .map(|inet| inet.split('/').next().unwrap_or(inet).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_skip_loopback_and_prefixes() {
        let interfaces = [
            json!({"name": "lo", "inet": "127.0.0.1/8"}),
            json!({"name": "eth0", "inet": "10.0.0.10/24", "hwaddr": "BC:24:11:00:00:01"}),
        ];
        assert_eq!(first_address(&interfaces), vec!["10.0.0.10".to_string()]);
    }
}
