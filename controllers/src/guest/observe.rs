//! What PVE has for a VMID: where it is, its config, whether it runs, and whose it is.

use crate::cluster_view::{Freshness, GuestSummary};
use crate::conditions::reason;
use crate::error::Error;
use crate::ownership::{Ownership, ownership};
use crate::pve::Connection;
use phoenix_clients::proxmox::{ErrorKind, GuestType, ProxmoxClient};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

/// A guest as PVE reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    pub node: String,
    pub config: BTreeMap<String, String>,
    pub running: bool,
    /// When it was started (seconds since the epoch), while it runs.
    pub booted: Option<i64>,
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

/// Where guest `vmid` is and what it is, as the cluster view says (a snapshot as fresh as
/// `freshness` asks; one taken since this call began before it is called absent).
pub async fn locate(
    pve: &Connection,
    vmid: u32,
    freshness: Freshness,
) -> Result<Option<GuestSummary>, Error> {
    let began = Instant::now();
    let snapshot = pve.view.read(&pve.client, freshness).await?;
    if let Some(found) = snapshot.guests.get(&vmid) {
        return Ok(Some(found.clone()));
    }
    let snapshot = pve.view.read(&pve.client, Freshness::After(began)).await?;
    Ok(snapshot.guests.get(&vmid).cloned())
}

/// The guest `vmid` of type `kind`: placed and powered as the cluster view says (see
/// [`locate`]), its config read from its node — the one read a pass makes of its own. When
/// it is not where a snapshot older than this call put it, a newer one decides.
pub async fn find(
    pve: &Connection,
    kind: GuestType,
    vmid: u32,
    freshness: Freshness,
) -> Result<Option<Live>, Error> {
    let began = Freshness::After(Instant::now());
    let (mut freshness, mut looked_again) = (freshness, false);
    loop {
        let Some(summary) = locate(pve, vmid, freshness).await? else {
            return Ok(None);
        };
        if summary.kind != kind.segment() {
            return Err(other_type(kind, vmid));
        }
        match pve.client.config(&summary.node, kind, vmid).await {
            Ok(config) => {
                return Ok(Some(Live {
                    node: summary.node,
                    config,
                    running: summary.running,
                    booted: summary.booted,
                }));
            }
            Err(e) if e.kind == ErrorKind::NotFound && !looked_again => {
                (freshness, looked_again) = (began, true);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn other_type(kind: GuestType, vmid: u32) -> Error {
    let (is, not) = match kind {
        GuestType::Lxc => ("a VM", "a container"),
        GuestType::Qemu => ("a container", "a VM"),
    };
    Error::conflict(
        reason::VMID_IN_USE,
        format!("VMID {vmid} is {is}, not {not}"),
    )
}

/// VMs whose disks are linked clones of template `vmid` (they name its `base-` volumes).
pub async fn linked_clones(client: &ProxmoxClient, vmid: u32) -> Result<Vec<u32>, Error> {
    let base = format!("base-{vmid}-");
    let mut clones = Vec::new();
    for guest in client.guests().await? {
        let (Some(id), Some(node)) = (guest.vmid, guest.node) else {
            continue;
        };
        if guest.kind != "qemu" || id == vmid {
            continue;
        }
        let config = client.config(&node, GuestType::Qemu, id).await?;
        if config.values().any(|v| v.contains(&base)) {
            clones.push(id);
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
