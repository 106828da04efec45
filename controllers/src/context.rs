//! What every reconcile gets: the Kubernetes client, the event recorder, metrics, the PVE
//! connections and task tracker, the guests' cache, and the way to wake a guest's reconcile.

use crate::metrics::Metrics;
use crate::pve::Connections;
use crate::tasks::TaskTracker;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use phoenix_crds::{LxcGuest, VmGuest};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

pub struct Context {
    pub kube: kube::Client,
    pub recorder: Recorder,
    pub metrics: std::sync::Arc<Metrics>,
    pub pve: Connections,
    pub tasks: TaskTracker,
    /// How often a converged object is looked at again (drift detection).
    pub resync: Duration,
    pub lxc_guests: Store<LxcGuest>,
    pub wake_lxc: UnboundedSender<ObjectRef<LxcGuest>>,
    pub vm_guests: Store<VmGuest>,
    pub wake_vm: UnboundedSender<ObjectRef<VmGuest>>,
    /// Feature scripts running in guests.
    pub feature_runs: std::sync::Arc<crate::provision::runs::Runs>,
    /// Health-check schedule and results per guest.
    pub health: crate::provision::health::HealthState,
    /// The ACME challenge responder and simulate mode's ACME server.
    pub acme: crate::certificate::Acme,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<BTreeMap<String, u32>>,
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kube: kube::Client,
        recorder: Recorder,
        metrics: std::sync::Arc<Metrics>,
        pve: Connections,
        tasks: TaskTracker,
        resync: Duration,
        (lxc_guests, wake_lxc): (Store<LxcGuest>, UnboundedSender<ObjectRef<LxcGuest>>),
        (vm_guests, wake_vm): (Store<VmGuest>, UnboundedSender<ObjectRef<VmGuest>>),
    ) -> Self {
        Self {
            kube,
            recorder,
            metrics,
            pve,
            tasks,
            resync,
            lxc_guests,
            wake_lxc,
            vm_guests,
            wake_vm,
            feature_runs: Default::default(),
            health: Default::default(),
            acme: Default::default(),
            failures: Mutex::new(BTreeMap::new()),
        }
    }

    /// Publishes an event about `object`; a failure to publish is logged, not fatal.
    pub async fn event<K>(&self, object: &K, type_: EventType, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }

    /// The wait before retrying `key` after its n-th consecutive failure: 1 s doubling to
    /// 2 min, spread by the key so failing objects do not retry in lockstep.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_owned()).or_default();
        *n = n.saturating_add(1);
        let base = Duration::from_secs(1) * 2u32.saturating_pow((*n - 1).min(7));
        let spread = key
            .bytes()
            .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64))
            % 250;
        base.min(Duration::from_secs(120)) + Duration::from_millis(spread)
    }

    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}
