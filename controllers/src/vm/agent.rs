//! A VM's addresses come from its guest agent, which answers only some time after boot.
//! While it is silent the VM waits (`WaitingForAgent`); once `agent.timeoutSeconds` have
//! passed since the start it says so (`AgentNotResponding`, a Warning event) and looks
//! again at that pace (at most once a minute), never in a tight loop.

use crate::conditions::reason;
use crate::context::Context;
use crate::error::Error;
use crate::guest::Progress;
use crate::guest::observe::Live;
use crate::pve::Connection;
use kube::runtime::events::EventType;
use phoenix_clients::proxmox::{GuestType, ProxmoxError};
use phoenix_crds::VmGuest;
use phoenix_crds::vm::VmGuestStatus;
use serde_json::Value;
use std::time::Duration;

/// How often a booting VM's agent is asked again.
const BOOT_POLL: Duration = Duration::from_secs(3);

pub async fn addresses(
    vm: &VmGuest,
    ctx: &Context,
    pve: &Connection,
    live: &Live,
    status: &mut VmGuestStatus,
) -> Result<Result<Vec<String>, Progress>, Error> {
    let vmid = vm.spec.vmid;
    if !vm.spec.agent.enabled {
        status.agent = Some("disabled".into());
        return Ok(Ok(static_addresses(vm)));
    }
    let error = match pve.client.agent_interfaces(&live.node, vmid).await {
        Ok(interfaces) => {
            status.agent = Some(answered(vm).into());
            let ips = guest_addresses(&interfaces);
            if ips.is_empty() {
                return Ok(Err(Progress::Waiting {
                    reason: reason::WAITING_FOR_ADDRESS,
                    message: format!("the guest agent of VM {vmid} reports no address yet"),
                    retry: BOOT_POLL,
                }));
            }
            return Ok(Ok(ips));
        }
        Err(e) if not_up(&e) => e,
        Err(e) => return Err(e.into()),
    };
    let uptime = pve
        .client
        .status(&live.node, GuestType::Qemu, vmid)
        .await?
        .uptime;
    let timeout = u64::from(vm.spec.agent.timeout_seconds);
    // Without an uptime from PVE the wait cannot be measured: it counts as over.
    if uptime.is_some_and(|up| up < timeout) {
        status.agent = Some("starting".into());
        return Ok(Err(Progress::Waiting {
            reason: reason::WAITING_FOR_AGENT,
            // No running figures in the message: a status that changes every pass would
            // wake the VM again at once.
            message: format!(
                "VM {vmid} started; waiting for its guest agent (for at most {timeout} s)"
            ),
            retry: BOOT_POLL,
        }));
    }
    status.agent = Some("notResponding".into());
    let message = format!(
        "the guest agent of VM {vmid} has not answered within {timeout} s of the VM's start (agent.timeoutSeconds): is qemu-guest-agent installed and running? PVE says: {}",
        error.message
    );
    let reported = vm.status.as_ref().is_some_and(|s| {
        s.common
            .conditions
            .iter()
            .any(|c| c.type_ == crate::conditions::READY && c.reason == "AgentNotResponding")
    });
    if !reported {
        ctx.event(
            vm,
            EventType::Warning,
            "AgentNotResponding",
            message.clone(),
        )
        .await;
    }
    Ok(Err(Progress::Waiting {
        reason: reason::AGENT_NOT_RESPONDING,
        message,
        retry: Duration::from_secs(timeout.clamp(10, 60)),
    }))
}

/// The agent's state once the VM's addresses are known: they came from the agent, or
/// from the spec when it is disabled.
pub fn answered(vm: &VmGuest) -> &'static str {
    if vm.spec.agent.enabled {
        "running"
    } else {
        "disabled"
    }
}

/// PVE's answers while the agent is not (yet) there.
fn not_up(e: &ProxmoxError) -> bool {
    let m = e.message.to_lowercase();
    m.contains("guest agent is not running")
        || m.contains("guest-ping")
        || m.contains("got timeout")
        || m.contains("no qemu guest agent configured")
}

/// The guest's IPv4 addresses as its agent reports them, without loopback, link-local
/// and container bridges (docker0, br-…, veth…), which would otherwise pass for the VM's.
pub fn guest_addresses(interfaces: &[Value]) -> Vec<String> {
    let bridge = |name: &str| {
        name == "lo"
            || name.starts_with("docker")
            || name.starts_with("br-")
            || name.starts_with("veth")
    };
    interfaces
        .iter()
        .filter(|i| !bridge(i["name"].as_str().unwrap_or("")))
        .flat_map(|i| i["ip-addresses"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["ip-address-type"] == "ipv4")
        .filter_map(|a| a["ip-address"].as_str().map(str::to_owned))
        .filter(|ip| !ip.starts_with("169.254.") && !ip.starts_with("127."))
        .collect()
}

/// Without an agent, the static addresses the spec hands over by cloud-init.
fn static_addresses(vm: &VmGuest) -> Vec<String> {
    vm.spec
        .network
        .iter()
        .filter_map(|n| n.ip.as_deref())
        .filter(|ip| *ip != "dhcp")
        .map(|ip| ip.split('/').next().unwrap_or(ip).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_skip_loopback_bridges_link_local_and_ipv6() {
        let interfaces = [
            json!({"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4"}]}),
            json!({"name": "eth0", "ip-addresses": [
                {"ip-address": "fe80::1", "ip-address-type": "ipv6"},
                {"ip-address": "10.0.0.111", "ip-address-type": "ipv4"}]}),
            json!({"name": "docker0", "ip-addresses": [{"ip-address": "172.17.0.1", "ip-address-type": "ipv4"}]}),
            json!({"name": "docker_gwbridge", "ip-addresses": [{"ip-address": "172.18.0.1", "ip-address-type": "ipv4"}]}),
            json!({"name": "ens19", "ip-addresses": [{"ip-address": "169.254.3.3", "ip-address-type": "ipv4"}]}),
        ];
        assert_eq!(guest_addresses(&interfaces), vec!["10.0.0.111".to_string()]);
    }

    #[test]
    fn the_agent_is_not_up_by_pve_words() {
        let e = |m: &str| ProxmoxError::from_response(500, m, Default::default());
        assert!(not_up(&e("QEMU guest agent is not running")));
        assert!(not_up(&e(
            "VM 1002 qmp command 'guest-ping' failed - got timeout"
        )));
        assert!(!not_up(&e("VM 1002 not running")));
    }
}
