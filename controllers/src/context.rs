//! What every controller shares: the Kubernetes client, the event publisher, metrics, the
//! PVE connections and task tracker, the resync period and the backoff per object. A
//! controller's own state (the guests' caches, the ACME responder) lives in its own
//! context beside its reconcile, which derefs to this one.

use crate::conditions;
use crate::error::Error;
use crate::events::Publisher;
use crate::metrics::Metrics;
use crate::pve::Connections;
use crate::tasks::TaskTracker;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Context {
    pub kube: kube::Client,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub pve: Connections,
    pub tasks: TaskTracker,
    /// How often a converged object is looked at again (drift detection).
    pub resync: Duration,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<BTreeMap<String, u32>>,
}

impl Context {
    pub fn new(
        kube: kube::Client,
        events: Publisher,
        metrics: Arc<Metrics>,
        pve: Connections,
        tasks: TaskTracker,
        resync: Duration,
    ) -> Self {
        Self {
            kube,
            events,
            metrics,
            pve,
            tasks,
            resync,
            failures: Mutex::new(BTreeMap::new()),
        }
    }

    /// Publishes an event about `object`; a failure to publish is logged, not fatal.
    pub async fn event<K>(&self, object: &K, type_: EventType, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let regarding = object.object_ref(&());
        if let Err(e) = self.events.publish(regarding, type_, reason, note).await {
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

    /// A failed pass of `object` (backoff key `key`): counted under `kind`, summarised in
    /// its conditions, a Warning event when the message is new, and when to try again: at
    /// the backoff, or not before five minutes when only a change of the spec can help.
    pub async fn failed<K>(
        &self,
        object: &K,
        (kind, key): (&str, &str),
        conditions: &mut Vec<Condition>,
        generation: Option<i64>,
        e: &Error,
    ) -> Action
    where
        K: Resource<DynamicType = ()>,
    {
        self.metrics.failed(kind, e.category());
        let message = e.to_string();
        let repeated = conditions::find(conditions, conditions::READY)
            .is_some_and(|c| c.reason == e.category() && c.message == message);
        conditions::summarize_failure(conditions, e, generation, jiff::Timestamp::now());
        if !repeated {
            self.event(object, EventType::Warning, e.category(), message.clone())
                .await;
        }
        tracing::warn!(kind, object = key, reason = e.category(), "{message}");
        let wait = self.backoff(key);
        Action::requeue(match e.is_permanent() {
            true => wait.max(Duration::from_secs(300)),
            false => wait,
        })
    }

    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}
