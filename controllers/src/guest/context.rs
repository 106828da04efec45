//! The guest controllers' own context, shared by the LxcGuest and VmGuest controllers:
//! both kinds' caches and wake channels (VMID claims, `dependsOn`, startup order and
//! anti-affinity look across both), the feature runs and the health checks. It derefs to
//! the [`Context`] every controller shares.

use super::address_memo::AddressMemo;
use crate::context::Context;
use crate::provision::health::HealthState;
use crate::provision::runs::Runs;
use kube::runtime::reflector::{ObjectRef, Store};
use phoenix_crds::{LxcGuest, VmGuest};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

pub struct GuestContext {
    pub shared: Arc<Context>,
    pub lxc: Population<LxcGuest>,
    pub vm: Population<VmGuest>,
    /// Feature scripts running in guests.
    pub feature_runs: Arc<Runs>,
    /// Health-check schedule and results per guest.
    pub health: HealthState,
    /// How often each cluster is looked at as a whole; a pass's look may be this old.
    pub view_interval: Duration,
    /// Addresses read, kept while a guest's boot and network stay the same.
    pub addresses: AddressMemo,
}

/// One kind's objects as its controller caches them, and the way to wake one's reconcile.
pub struct Population<G: kube::Resource<DynamicType = ()> + 'static> {
    pub store: Store<G>,
    pub wake: UnboundedSender<ObjectRef<G>>,
}

impl<G> Population<G>
where
    G: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    /// Wakes every cached object of this kind (their cluster became Ready).
    pub fn wake_all(&self) {
        self.wake_where(|_| true);
    }

    /// Wakes the cached objects `which` picks.
    pub fn wake_where(&self, which: impl Fn(&G) -> bool) {
        for object in self.store.state() {
            if which(&object) {
                let _ = self.wake.send(ObjectRef::from_obj(&*object));
            }
        }
    }
}

impl GuestContext {
    pub fn new(
        shared: Arc<Context>,
        lxc: Population<LxcGuest>,
        vm: Population<VmGuest>,
        view_interval: Duration,
    ) -> Self {
        Self {
            shared,
            lxc,
            vm,
            feature_runs: Arc::default(),
            health: HealthState::default(),
            view_interval,
            addresses: AddressMemo::default(),
        }
    }
}

impl Deref for GuestContext {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.shared
    }
}
