//! Prometheus metrics of the controllers, served with `/healthz` on one small HTTP port.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    pub node: String,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    pve_calls: Family<CallLabels, Histogram>,
    tasks_in_flight: Family<NodeLabel, Gauge>,
    certificate_expiry: Family<CertificateLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    namespace: String,
    name: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("phoenix");
        let reconciles = Family::<KindLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let pve_calls = Family::<CallLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.002, 2.0, 14))) as fn() -> Histogram,
        );
        let tasks_in_flight = Family::<NodeLabel, Gauge>::default();
        let certificate_expiry = Family::<CertificateLabels, Gauge>::default();
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until a Certificate's current certificate expires (alert on it)",
            certificate_expiry.clone(),
        );
        registry.register(
            "reconciles",
            "Reconcile passes, by kind",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconcile passes, by kind and error category",
            errors.clone(),
        );
        registry.register(
            "pve_call_duration_seconds",
            "Proxmox VE API call latency, by HTTP method and outcome",
            pve_calls.clone(),
        );
        registry.register(
            "pve_tasks_in_flight",
            "Proxmox VE tasks Phoenix started that have not finished, by node",
            tasks_in_flight.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            pve_calls,
            tasks_in_flight,
            certificate_expiry,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, kind: &str) {
        self.reconciles
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// Seconds from now until `not_after`, for the Certificate `namespace/name`.
    pub fn certificate_expiry(&self, namespace: &str, name: &str, not_after: jiff::Timestamp) {
        let left = not_after.as_second() - jiff::Timestamp::now().as_second();
        self.certificate_expiry
            .get_or_create(&CertificateLabels {
                namespace: namespace.into(),
                name: name.into(),
            })
            .set(left);
    }

    pub fn failed(&self, kind: &str, category: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.into(),
                category: category.into(),
            })
            .inc();
    }

    pub fn pve_call(&self, method: &reqwest::Method, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.pve_calls
            .get_or_create(&CallLabels {
                method: method.to_string(),
                outcome: outcome.into(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn task_started(&self, node: &str) {
        self.tasks_in_flight
            .get_or_create(&NodeLabel { node: node.into() })
            .inc();
    }

    pub fn task_finished(&self, node: &str) {
        self.tasks_in_flight
            .get_or_create(&NodeLabel { node: node.into() })
            .dec();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    let answer = Arc::new(move |path: &str| answer(path, &metrics));
    crate::http::serve(listener, answer, crate::http::Limits::default()).await
}

fn answer(path: &str, metrics: &Metrics) -> crate::http::Answer {
    let (status, content_type, body) = match path {
        "/metrics" => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        "/healthz" | "/readyz" => (200, "text/plain", "ok\n".to_string()),
        _ => (404, "text/plain", "not found\n".to_string()),
    };
    crate::http::respond(status, content_type, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_their_labels() {
        let m = Metrics::default();
        m.reconciled("LxcGuest");
        m.failed("LxcGuest", "ProxmoxTransient");
        m.pve_call(&reqwest::Method::POST, true, Duration::from_millis(12));
        m.task_started("pve1");
        let text = m.render();
        assert!(text.contains("phoenix_reconciles_total{kind=\"LxcGuest\"} 1"));
        assert!(text.contains(
            "phoenix_reconcile_errors_total{kind=\"LxcGuest\",category=\"ProxmoxTransient\"} 1"
        ));
        assert!(
            text.contains(
                "phoenix_pve_call_duration_seconds_count{method=\"POST\",outcome=\"ok\"} 1"
            )
        );
        assert!(text.contains("phoenix_pve_tasks_in_flight{node=\"pve1\"} 1"));
    }
}
