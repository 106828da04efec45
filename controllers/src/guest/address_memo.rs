//! Addresses already read, kept while the guest runs the same boot with the same network
//! config: reading them again (the container's interfaces, the VM's agent) would cost a
//! PVE call per guest per pass, for an answer that cannot have changed.

use super::observe::Live;
use crate::cluster_view::same_boot;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct AddressMemo {
    known: Mutex<HashMap<String, Known>>,
}

struct Known {
    booted: Option<i64>,
    network: String,
    ips: Vec<String>,
}

impl AddressMemo {
    /// The addresses read for guest `uid` during this boot, unless its network changed.
    pub fn recall(&self, uid: &str, live: &Live) -> Option<Vec<String>> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(uid)
            .filter(|k| same_boot(k.booted, live.booted) && k.network == network(live))
            .map(|k| k.ips.clone())
    }

    pub fn remember(&self, uid: &str, live: &Live, ips: &[String]) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(
            uid.to_owned(),
            Known {
                booted: live.booted,
                network: network(live),
                ips: ips.to_vec(),
            },
        );
    }

    pub fn forget(&self, uid: &str) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.remove(uid);
    }
}

/// The config keys an address follows from: `netN` (LXC, VM NICs) and `ipconfigN`
/// (cloud-init).
fn network(live: &Live) -> String {
    live.config
        .iter()
        .filter(|(k, _)| k.starts_with("net") || k.starts_with("ipconfig"))
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(booted: Option<i64>, net0: &str) -> Live {
        Live {
            node: "phoenix".into(),
            config: [
                ("net0".to_owned(), net0.to_owned()),
                ("memory".into(), "512".into()),
            ]
            .into_iter()
            .collect(),
            running: booted.is_some(),
            booted,
        }
    }

    #[test]
    fn recalled_only_for_the_same_boot_and_network() {
        let memo = AddressMemo::default();
        let ips = vec!["10.0.0.10".to_owned()];
        let up = live(Some(1_000), "name=eth0,ip=10.0.0.10/24");
        assert_eq!(memo.recall("u", &up), None, "never read");
        memo.remember("u", &up, &ips);
        assert_eq!(
            memo.recall("u", &live(Some(1_001), "name=eth0,ip=10.0.0.10/24")),
            Some(ips)
        );
        assert_eq!(
            memo.recall("u", &live(Some(1_200), "name=eth0,ip=10.0.0.10/24")),
            None,
            "restarted"
        );
        assert_eq!(
            memo.recall("u", &live(Some(1_000), "name=eth0,ip=10.0.0.11/24")),
            None,
            "re-addressed"
        );
        assert_eq!(
            memo.recall("u", &live(None, "name=eth0,ip=10.0.0.10/24")),
            None,
            "stopped"
        );
        memo.forget("u");
        assert_eq!(memo.recall("u", &up), None);
    }
}
