//! Guests waiting for an input (the CA root, a custom script's ConfigMap, a certificate's
//! Secret) are woken when a ConfigMap or Secret changes, rather than looking again on a
//! timer: the watch says which namespace changed, the waiting condition says who waits.

use super::Guest;
use crate::conditions::{self, reason};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

/// The guests in `store` waiting for an input that a change to an object in `namespace`
/// could supply. A change in the CA root's namespace wakes waiters everywhere: the root is
/// published there for all of them.
pub fn waiters<G: Guest>(store: &Store<G>, namespace: Option<&str>) -> Vec<ObjectRef<G>> {
    let everywhere = namespace == Some(crate::ca_root::NAMESPACE);
    store
        .state()
        .iter()
        .filter(|g| everywhere || g.namespace().as_deref() == namespace)
        .filter(|g| waits_for_input(g.as_ref()))
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

fn waits_for_input<G: Guest>(guest: &G) -> bool {
    let Some((common, _)) = guest.status().map(G::view) else {
        return false;
    };
    [conditions::READY, conditions::PROVISIONED]
        .iter()
        .filter_map(|t| conditions::find(&common.conditions, t))
        .any(|c| c.reason == reason::WAITING_FOR_INPUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::{reflector, watcher};
    use phoenix_crds::LxcGuest;

    fn guest(namespace: &str, name: &str, provisioned_reason: Option<&str>) -> LxcGuest {
        let mut g: LxcGuest = serde_json::from_value(serde_json::json!({
            "apiVersion": "phoenix.thinkheads.ai/v1alpha1",
            "kind": "LxcGuest",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"vmid": 801, "node": "phoenix", "hostname": name,
                     "rootfs": {"storage": "local-zfs", "size": "4G"},
                     "source": {"ostemplate": "local:vztmpl/d.tar.zst"}},
        }))
        .unwrap();
        if let Some(r) = provisioned_reason {
            let mut status = phoenix_crds::lxc::LxcGuestStatus::default();
            let at = jiff::Timestamp::UNIX_EPOCH;
            conditions::set(
                &mut status.common.conditions,
                conditions::PROVISIONED,
                false,
                r,
                "m",
                None,
                at,
            );
            g.status = Some(status);
        }
        g
    }

    #[test]
    fn a_change_wakes_only_the_waiters_it_could_help() {
        let (store, mut writer) = reflector::store();
        for g in [
            guest("team", "waits", Some(reason::WAITING_FOR_INPUT)),
            guest("team", "applying", Some(reason::APPLYING)),
            guest("team", "new", None),
            guest("other", "waits-too", Some(reason::WAITING_FOR_INPUT)),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(g));
        }
        let names = |ns| -> Vec<String> {
            let mut n: Vec<String> = waiters(&store, ns).into_iter().map(|r| r.name).collect();
            n.sort();
            n
        };
        assert_eq!(names(Some("team")), ["waits"]);
        assert_eq!(names(Some("elsewhere")), Vec::<String>::new());
        assert_eq!(
            names(Some(crate::ca_root::NAMESPACE)),
            ["waits", "waits-too"],
            "the CA root is published for every namespace"
        );
    }
}
