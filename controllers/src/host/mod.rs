//! ProxmoxHost: one PVE node's own setup, reconciled area by area — the node settings PVE
//! keeps (time zone, resolver: through its API) and dnsmasq serving the platform's names
//! (records derived from the guests and routes, files on the node over SSH). Each area
//! observes, decides in a pure function, acts in named steps and reports its own
//! condition (`NodeSettingsReady`, `DnsReady`); `Ready` is all of them. Status is written
//! once per pass.

pub mod dns_area;
pub mod dnsmasq;
pub mod records;
pub mod settings;
pub mod settings_area;
pub mod sources;

use crate::conditions::{self, Standing, reason};
use crate::context::Context;
use crate::error::Error;
use crate::guest::GuestContext;
use crate::pve::Connection;
use crate::status;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use phoenix_crds::common::DriftPolicy;
use phoenix_crds::{ProxmoxHost, ProxmoxHostStatus, TraefikService};
use std::sync::Arc;

pub const KIND: &str = "ProxmoxHost";

/// The host controller's context: the shared one, and the guest controllers' caches the
/// records are derived from.
pub struct HostContext {
    pub shared: Arc<Context>,
    pub guests: Arc<GuestContext>,
}

/// What one pass works with.
pub struct HostPass<'a> {
    pub host: &'a ProxmoxHost,
    pub ctx: &'a Context,
    pub pve: &'a Connection,
    /// The object's name.
    pub name: String,
    /// The PVE node.
    pub node: String,
    pub drift_policy: DriftPolicy,
}

impl HostPass<'_> {
    pub async fn event(&self, type_: EventType, reason: &str, note: String) {
        self.ctx.event(self.host, type_, reason, note).await;
    }
}

/// How an area stands after a pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Area {
    pub reason: &'static str,
    pub message: String,
    /// Drift reported and left in place (`driftPolicy: Report`).
    pub drifted: bool,
}

impl Area {
    pub fn ready(reason: &'static str, message: String) -> Self {
        Area {
            reason,
            message,
            drifted: false,
        }
    }

    pub fn drifted(message: String) -> Self {
        Area {
            reason: reason::DRIFT_DETECTED,
            message,
            drifted: true,
        }
    }
}

pub async fn reconcile(host: Arc<ProxmoxHost>, ctx: Arc<HostContext>) -> Result<Action, Error> {
    let shared = &ctx.shared;
    shared.metrics.reconciled(KIND);
    let key = format!("{KIND}/{}", host.name_any());
    let mut status = host.status.clone().unwrap_or_default();
    let outcome = pass(&host, &ctx, &mut status).await;
    let failed = outcome
        .as_ref()
        .err()
        .map(|e| (e.category(), e.is_permanent()));
    finish(&host, shared, status, outcome).await?;
    match failed {
        Some((category, permanent)) => {
            shared.metrics.failed(KIND, category);
            if permanent {
                return Ok(Action::await_change());
            }
            Ok(Action::requeue(shared.backoff(&key)))
        }
        None => {
            shared.succeeded(&key);
            Ok(Action::requeue(shared.resync))
        }
    }
}

/// Each area in turn; the first failure ends the pass (its step named in the error).
async fn pass(
    host: &ProxmoxHost,
    ctx: &HostContext,
    status: &mut ProxmoxHostStatus,
) -> Result<Vec<(&'static str, Area)>, Error> {
    let node = host.spec.node.clone().unwrap_or_else(|| host.name_any());
    status.node = Some(node.clone());
    let cluster = &host.spec.cluster_ref.name;
    let pve = ctx.shared.pve.get(Some(cluster)).await?;
    let pass = HostPass {
        host,
        ctx: &ctx.shared,
        pve: &pve,
        name: host.name_any(),
        node,
        drift_policy: host.spec.drift_policy,
    };
    let before = host.status.as_ref();
    let converged = |type_: &str| {
        before.is_some_and(|s| {
            s.common.observed_generation == host.metadata.generation
                && conditions::is_true(&s.common.conditions, type_)
        })
    };
    let settings =
        settings_area::reconcile(&pass, converged(conditions::NODE_SETTINGS_READY)).await?;
    let dns = match &host.spec.dnsmasq {
        None => {
            status.dns = None;
            Area::ready(reason::NOT_MANAGED, "no dnsmasq in the spec".into())
        }
        Some(spec) => {
            let records =
                records::derive(spec, &guests(ctx, cluster), &routes(ctx, cluster).await?);
            dns_area::reconcile(&pass, spec, &records, &mut status.dns).await?
        }
    };
    Ok(vec![
        (conditions::NODE_SETTINGS_READY, settings),
        (conditions::DNS_READY, dns),
    ])
}

fn guests(ctx: &HostContext, cluster: &str) -> Vec<records::GuestName> {
    sources::guests(
        &ctx.guests.lxc.store.state(),
        &ctx.guests.vm.store.state(),
        cluster,
    )
}

async fn routes(ctx: &HostContext, cluster: &str) -> Result<Vec<records::RouteName>, Error> {
    let api: Api<TraefikService> = Api::all(ctx.shared.kube.clone());
    let listed = api.list(&ListParams::default()).await?.items;
    Ok(sources::routes(&listed, &guests(ctx, cluster)))
}

/// The conditions of the pass's outcome (one per area, `Drifted`, and the kstatus
/// summary), written once; an event when Ready changes.
async fn finish(
    host: &ProxmoxHost,
    ctx: &Context,
    mut status: ProxmoxHostStatus,
    outcome: Result<Vec<(&'static str, Area)>, Error>,
) -> Result<(), Error> {
    let (generation, now) = (host.metadata.generation, jiff::Timestamp::now());
    let conditions = &mut status.common.conditions;
    let before = ready_of(conditions);
    match &outcome {
        Ok(areas) => {
            for (type_, area) in areas {
                conditions::set(
                    conditions,
                    type_,
                    true,
                    area.reason,
                    &area.message,
                    generation,
                    now,
                );
            }
            let drift: Vec<&str> = areas
                .iter()
                .filter(|(_, a)| a.drifted)
                .map(|(_, a)| a.message.as_str())
                .collect();
            let (drifted, message) = match drift.is_empty() {
                true => (false, "as the spec says".to_owned()),
                false => (true, drift.join("; ")),
            };
            let why = if drifted {
                reason::DRIFT_DETECTED
            } else {
                reason::HOST_READY
            };
            conditions::set(
                conditions,
                conditions::DRIFTED,
                drifted,
                why,
                &message,
                generation,
                now,
            );
            let message = format!(
                "{} is set up as the spec says",
                status.node.as_deref().unwrap_or_default()
            );
            conditions::summarize(
                conditions,
                Standing::Ready,
                reason::HOST_READY,
                &message,
                generation,
                now,
            );
        }
        Err(e) => conditions::summarize_failure(conditions, e, generation, now),
    }
    status.common.observed_generation = generation;
    // Told once per change of what Ready says, not at every retry.
    if ready_of(&status.common.conditions) != before {
        let (type_, reason, note) = match &outcome {
            Ok(_) => (
                EventType::Normal,
                reason::HOST_READY,
                "host set up as the spec says".to_owned(),
            ),
            Err(e) => (EventType::Warning, e.category(), e.to_string()),
        };
        ctx.event(host, type_, reason, note).await;
    }
    let api: Api<ProxmoxHost> = Api::all(ctx.kube.clone());
    status::write(&api, host, host.status.as_ref(), &status).await?;
    Ok(())
}

fn ready_of(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<(String, String, String)> {
    conditions::find(conditions, conditions::READY)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn error_policy(host: Arc<ProxmoxHost>, error: &Error, ctx: Arc<HostContext>) -> Action {
    ctx.shared.metrics.failed(KIND, error.category());
    Action::requeue(ctx.shared.backoff(&format!("{KIND}/{}", host.name_any())))
}
