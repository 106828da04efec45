//! ProxmoxHost: one PVE node's own setup, reconciled area by area — the node settings PVE
//! keeps (time zone, resolver), storage (ZFS pools and PVE storages through the API,
//! datasets and NFS exports on the node), bridges (PVE's pending/apply cycle), the node's
//! firewall, the system (packages, locale, AppArmor, NVIDIA: features run on the node),
//! and dnsmasq serving the platform's names (records derived from the guests and routes).
//! Each area observes, decides in a pure function, acts in named steps and reports its
//! own condition (`NodeSettingsReady`, `StorageReady`, `NetworkReady`, `FirewallReady`,
//! `SystemReady`, `DnsReady`); `Ready` is all of them. Status is written once per pass.

pub mod area_holds;
pub mod dns_area;
pub mod dnsmasq;
pub mod exports;
pub mod firewall_area;
pub mod host_task;
pub mod network;
pub mod network_area;
pub mod node_steps;
pub mod records;
pub mod settings;
pub mod settings_area;
pub mod sources;
pub mod storage_area;
pub mod storages;
pub mod system;
pub mod system_area;
pub mod zfs;

use crate::conditions::{self, Standing, reason};
use crate::context::Context;
use crate::error::Error;
use crate::guest::GuestContext;
use crate::provision::runs::Runs;
use crate::pve::Connection;
use crate::status;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use phoenix_crds::common::DriftPolicy;
use phoenix_crds::{ProxmoxHost, ProxmoxHostStatus, TraefikService};
use std::sync::Arc;

pub const KIND: &str = "ProxmoxHost";

/// The host controller's context: the shared one, the guest controllers' caches the
/// records are derived from, the system features running on nodes, and the channel that
/// wakes a host when its PVE task or feature run ends.
pub struct HostContext {
    pub shared: Arc<Context>,
    pub guests: Arc<GuestContext>,
    pub runs: Arc<Runs>,
    pub holds: area_holds::AreaHolds,
    pub wake: tokio::sync::mpsc::UnboundedSender<ObjectRef<ProxmoxHost>>,
}

/// What one pass works with.
pub struct HostPass<'a> {
    pub host: &'a ProxmoxHost,
    pub ctx: &'a Context,
    pub pve: &'a Arc<Connection>,
    wake: &'a tokio::sync::mpsc::UnboundedSender<ObjectRef<ProxmoxHost>>,
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

    /// Wakes this host's reconcile (when its PVE task or feature run ends).
    pub fn waker(&self) -> impl FnOnce() + Send + 'static {
        let (sender, reference) = (self.wake.clone(), ObjectRef::from_obj(self.host));
        move || {
            let _ = sender.send(reference);
        }
    }
}

/// How an area stands after a pass that did not fail.
#[derive(Clone, Debug, PartialEq)]
pub struct Area {
    pub reason: &'static str,
    pub message: String,
    /// As the spec says (or drift reported): the area's condition is True.
    pub settled: bool,
    /// Drift reported and left in place (`driftPolicy: Report`).
    pub drifted: bool,
}

impl Area {
    pub fn ready(reason: &'static str, message: String) -> Self {
        Area {
            reason,
            message,
            settled: true,
            drifted: false,
        }
    }

    /// Work under way (a PVE task, a feature run) or waiting for another part.
    pub fn working(reason: &'static str, message: String) -> Self {
        Area {
            settled: false,
            ..Area::ready(reason, message)
        }
    }

    pub fn drifted(message: String) -> Self {
        Area {
            drifted: true,
            ..Area::ready(reason::DRIFT_DETECTED, message)
        }
    }
}

pub async fn reconcile(host: Arc<ProxmoxHost>, ctx: Arc<HostContext>) -> Result<Action, Error> {
    let shared = &ctx.shared;
    shared.metrics.reconciled(KIND);
    let key = format!("{KIND}/{}", host.name_any());
    let mut status = host.status.clone().unwrap_or_default();
    let outcome = pass(&host, &ctx, &mut status).await;
    let failures: Vec<&Error> = match &outcome {
        Err(e) => vec![e],
        Ok(areas) => areas.iter().filter_map(|(_, a)| a.as_ref().err()).collect(),
    };
    let failed = failures.first().map(|e| e.category());
    // Only a change helps when every failing area is stalled; the others still resync
    // (their drift is looked for), so a stalled area never stops the host.
    let stalled = failures.iter().all(|e| e.is_permanent());
    finish(&host, shared, status, outcome).await?;
    match failed {
        Some(category) => {
            shared.metrics.failed(KIND, category);
            if stalled {
                return Ok(Action::requeue(shared.resync));
            }
            // Back when the first failed area's pause ends (areas wait out their own).
            let prefix = hold_prefix(&host);
            let wait = ctx.holds.next_end(&prefix);
            Ok(Action::requeue(
                wait.unwrap_or_else(|| shared.backoff(&key)),
            ))
        }
        None => {
            shared.succeeded(&key);
            Ok(Action::requeue(shared.resync))
        }
    }
}

/// Each area with its own outcome: one failing (its step named in the error) does not keep
/// the others from converging. `Err` only when no area could be looked at.
type Areas = Vec<(&'static str, Result<Area, Error>)>;

async fn pass(
    host: &ProxmoxHost,
    ctx: &HostContext,
    status: &mut ProxmoxHostStatus,
) -> Result<Areas, Error> {
    let node = host.spec.node.clone().unwrap_or_else(|| host.name_any());
    if status.node.as_ref().is_some_and(|before| *before != node) {
        // What status remembers (features applied, staged changes, files written) was
        // about another node.
        *status = ProxmoxHostStatus {
            common: std::mem::take(&mut status.common),
            ..Default::default()
        };
    }
    status.node = Some(node.clone());
    let cluster = &host.spec.cluster_ref.name;
    let pve = ctx.shared.pve.get(Some(cluster)).await?;
    let pass = HostPass {
        host,
        ctx: &ctx.shared,
        pve: &pve,
        wake: &ctx.wake,
        name: host.name_any(),
        node,
        drift_policy: host.spec.drift_policy,
    };
    let spec = &host.spec;
    let done = |type_| converged(host, type_);
    let holds = &ctx.holds;
    let key = |type_: &str| format!("{}{type_}", hold_prefix(host));
    let settings = holds
        .guarded(
            key(conditions::NODE_SETTINGS_READY),
            settings_area::reconcile(&pass, done(conditions::NODE_SETTINGS_READY)),
        )
        .await;
    let storage = match &spec.storage {
        None => {
            status.storage = None;
            not_managed("storage")
        }
        Some(s) => {
            let before = done(conditions::STORAGE_READY);
            let area = storage_area::reconcile(&pass, s, before, &mut status.storage);
            holds.guarded(key(conditions::STORAGE_READY), area).await
        }
    };
    let network = match &spec.network {
        None => {
            status.network = None;
            not_managed("bridges")
        }
        Some(n) => {
            let before = done(conditions::NETWORK_READY);
            let area = network_area::reconcile(&pass, n, before, &mut status.network);
            holds.guarded(key(conditions::NETWORK_READY), area).await
        }
    };
    let firewall = match &spec.firewall {
        None => not_managed("node firewall"),
        Some(f) => {
            let area = firewall_area::reconcile(&pass, f, done(conditions::FIREWALL_READY));
            holds.guarded(key(conditions::FIREWALL_READY), area).await
        }
    };
    let system = match &spec.system {
        None => {
            status.system = None;
            not_managed("system setup")
        }
        Some(s) => {
            let area = system_area::reconcile(&pass, s, &ctx.runs, &mut status.system);
            holds.guarded(key(conditions::SYSTEM_READY), area).await
        }
    };
    let dns = match &spec.dnsmasq {
        None => {
            status.dns = None;
            not_managed("dnsmasq")
        }
        Some(spec) => {
            let area = async {
                let routes = routes(ctx, cluster).await?;
                let records = records::derive(spec, &guests(ctx, Some(cluster)), &routes);
                dns_area::reconcile(&pass, spec, &records, &mut status.dns).await
            };
            holds.guarded(key(conditions::DNS_READY), area).await
        }
    };
    Ok(vec![
        (conditions::NODE_SETTINGS_READY, settings),
        (conditions::STORAGE_READY, storage),
        (conditions::NETWORK_READY, network),
        (conditions::FIREWALL_READY, firewall),
        (conditions::SYSTEM_READY, system),
        (conditions::DNS_READY, dns),
    ])
}

/// The key of this host's area holds for its present generation.
fn hold_prefix(host: &ProxmoxHost) -> String {
    let uid = host.metadata.uid.as_deref().unwrap_or_default();
    format!("{uid}/{}/", host.metadata.generation.unwrap_or_default())
}

/// An area the spec leaves out: nothing done.
fn not_managed(what: &str) -> Result<Area, Error> {
    Ok(Area::ready(
        reason::NOT_MANAGED,
        format!("no {what} in the spec"),
    ))
}

/// Whether area `type_` was in place for this generation when the pass began: a difference
/// found now is then drift, not a change of the spec still being applied.
fn converged(host: &ProxmoxHost, type_: &str) -> bool {
    let before = host.status.as_ref();
    before
        .and_then(|s| conditions::find(&s.common.conditions, type_))
        .is_some_and(|c| c.status == "True" && c.observed_generation == host.metadata.generation)
}

fn guests(ctx: &HostContext, cluster: Option<&str>) -> Vec<records::GuestName> {
    sources::guests(
        &ctx.guests.lxc.store.state(),
        &ctx.guests.vm.store.state(),
        cluster,
    )
}

async fn routes(ctx: &HostContext, cluster: &str) -> Result<Vec<records::RouteName>, Error> {
    let api: Api<TraefikService> = Api::all(ctx.shared.kube.clone());
    let listed = api.list(&ListParams::default()).await?.items;
    Ok(sources::routes(
        &listed,
        &guests(ctx, Some(cluster)),
        &guests(ctx, None),
    ))
}

/// The conditions of the pass's outcome (one per area, `Drifted`, and the kstatus
/// summary), written once; an event when what Ready says changes.
async fn finish(
    host: &ProxmoxHost,
    ctx: &Context,
    mut status: ProxmoxHostStatus,
    outcome: Result<Areas, Error>,
) -> Result<(), Error> {
    let (generation, now) = (host.metadata.generation, jiff::Timestamp::now());
    let conditions = &mut status.common.conditions;
    let before = ready_of(conditions);
    let node = status.node.clone().unwrap_or_default();
    match &outcome {
        Ok(areas) => {
            for (type_, area) in areas {
                let (on, reason, message) = match area {
                    Ok(a) => (a.settled, a.reason, a.message.clone()),
                    Err(e) => (false, e.category(), e.to_string()),
                };
                conditions::set(conditions, type_, on, reason, &message, generation, now);
            }
            let drift: Vec<&str> = areas
                .iter()
                .filter_map(|(_, a)| a.as_ref().ok().filter(|a| a.drifted))
                .map(|a| a.message.as_str())
                .collect();
            let (drifted, why, message) = match drift.is_empty() {
                true => (false, reason::HOST_READY, "as the spec says".to_owned()),
                false => (true, reason::DRIFT_DETECTED, drift.join("; ")),
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
            let working = areas
                .iter()
                .find_map(|(_, a)| a.as_ref().ok().filter(|a| !a.settled));
            match (areas.iter().find_map(|(_, a)| a.as_ref().err()), working) {
                (Some(e), _) => conditions::summarize_failure(conditions, e, generation, now),
                (None, Some(area)) => conditions::summarize(
                    conditions,
                    Standing::InProgress,
                    area.reason,
                    &area.message,
                    generation,
                    now,
                ),
                (None, None) => {
                    let message = format!("{node} is set up as the spec says");
                    conditions::summarize(
                        conditions,
                        Standing::Ready,
                        reason::HOST_READY,
                        &message,
                        generation,
                        now,
                    );
                }
            }
        }
        Err(e) => conditions::summarize_failure(conditions, e, generation, now),
    }
    status.common.observed_generation = generation;
    // Told once per change of what Ready says, not at every retry.
    let after = ready_of(&status.common.conditions);
    if after != before
        && let Some((state, reason, message)) = after
    {
        let type_ = if state == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(host, type_, &reason, message).await;
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
