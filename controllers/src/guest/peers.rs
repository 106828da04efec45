//! Containers and VMs as one population: VMID claims, the `dependsOn` graph, anti-affinity
//! peers, startup order and waking the waiters all look across both kinds, as PVE does.

use super::{Guest, GuestContext, Progress};
use crate::claims::{self, Claim};
use crate::conditions::reason;
use crate::dependencies::{self, Gate};
use crate::error::Error;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use phoenix_crds::common::{DependencyRef, PhoenixKind};
use phoenix_crds::guest::GuestCommon;
use phoenix_crds::{LxcGuest, VmGuest};
use std::collections::{BTreeMap, BTreeSet};

/// The anti-affinity group a guest asks for.
fn guest_group(common: &GuestCommon) -> Option<&str> {
    common.placement.as_ref()?.anti_affinity_group.as_deref()
}

/// Where a guest stands in PVE's boot order, if anywhere.
fn startup_order(common: &GuestCommon) -> Option<u32> {
    common.startup.as_ref()?.order
}

/// One guest object as its peers see it.
#[derive(Clone, Debug)]
pub struct Peer {
    pub kind: PhoenixKind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub created: String,
    pub vmid: u32,
    pub template: bool,
    pub deleted: bool,
    /// Its controller has acted on it (a status, not a refusal for another's VMID claim).
    pub reconciled: bool,
    pub depends_on: Vec<DependencyRef>,
    pub order: Option<u32>,
    pub node: Option<String>,
    pub running: bool,
    /// Stalled: waits for a change of its spec, so nothing after it waits for it.
    pub stalled: bool,
}

impl Peer {
    fn of<G: Guest>(g: &G) -> Peer {
        let common = g.common();
        let status = g.status().map(G::view);
        Peer {
            kind: G::PHOENIX_KIND,
            namespace: g.namespace().unwrap_or_default(),
            name: g.name_any(),
            uid: g.uid().unwrap_or_default(),
            created: g
                .meta()
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
            vmid: g.vmid(),
            template: g.wants_template(),
            deleted: g.meta().deletion_timestamp.is_some(),
            reconciled: claims::acted_on(status.map(|(c, _)| c.conditions.as_slice())),
            depends_on: common.depends_on.clone(),
            order: startup_order(common),
            node: status.and_then(|(_, o)| o.node.clone()),
            running: status.and_then(|(_, o)| o.state.as_deref()) == Some("running"),
            stalled: status.is_some_and(|(c, _)| {
                crate::conditions::is_true(&c.conditions, crate::conditions::STALLED)
            }),
        }
    }

    fn graph_node(&self) -> dependencies::Node {
        (self.kind, self.namespace.clone(), self.name.clone())
    }
}

/// What a filter looks at of a cached guest before it is copied into a [`Peer`].
pub struct Glance<'a> {
    pub vmid: u32,
    pub namespace: Option<&'a str>,
    pub common: &'a GuestCommon,
    /// The VMID it is cloned from, if it is a clone.
    pub clone_of: Option<u32>,
}

impl<'a> Glance<'a> {
    fn of<G: Guest>(g: &'a G) -> Self {
        Glance {
            vmid: g.vmid(),
            namespace: g.meta().namespace.as_deref(),
            common: g.common(),
            clone_of: g.clone_source().map(|c| c.vmid),
        }
    }
}

/// The guest objects in the caches that `keep` keeps. Every pass asks this of the whole
/// fleet, so the filter runs on borrowed fields: copying each of 1,000 guests into a `Peer`
/// on every pass was the largest part of a pass's cost.
pub fn cached(ctx: &GuestContext, keep: impl Fn(&Glance) -> bool) -> Vec<Peer> {
    let lxc = ctx.lxc.store.state();
    let vm = ctx.vm.store.state();
    let lxc = lxc.iter().filter(|g| keep(&Glance::of(&***g)));
    let vm = vm.iter().filter(|g| keep(&Glance::of(&***g)));
    lxc.map(|g| Peer::of(&**g))
        .chain(vm.map(|g| Peer::of(&**g)))
        .collect()
}

/// Another object asking for the same VMID (of either kind): the older one holds it.
pub fn check_claim<G: Guest>(guest: &G, ctx: &GuestContext) -> Result<(), Error> {
    let claims: Vec<Claim> = cached(ctx, |g| g.vmid == guest.vmid())
        .into_iter()
        .map(|p| Claim {
            vmid: p.vmid,
            owner: format!("{:?} {}/{}", p.kind, p.namespace, p.name),
            created: p.created,
            reconciled: p.reconciled,
            uid: p.uid,
        })
        .collect();
    match claims::holder(guest.vmid(), &claims) {
        Some(holder) if Some(&holder.uid) != guest.uid().as_ref() => Err(Error::conflict(
            reason::VMID_CLAIMED,
            format!(
                "VMID {} is already claimed by {}",
                guest.vmid(),
                holder.owner
            ),
        )),
        _ => Ok(()),
    }
}

/// Waits for `dependsOn` to be Ready; a cycle is a permanent error. The graph comes from
/// the caches; readiness is read fresh, as a cache may lag the change that woke us.
pub async fn dependency_gate<G: Guest>(
    guest: &G,
    ctx: &GuestContext,
) -> Result<Option<Progress>, Error> {
    let depends_on = &guest.common().depends_on;
    if depends_on.is_empty() {
        return Ok(None);
    }
    let me = Peer::of(guest);
    // Guests without dependencies add no edge: the graph needs only the others.
    let mut graph = BTreeMap::new();
    for p in cached(ctx, |g| !g.common.depends_on.is_empty())
        .iter()
        .chain([&me])
    {
        let deps = p
            .depends_on
            .iter()
            .map(|d| dependencies::node_of(d, &p.namespace))
            .collect();
        graph.insert(p.graph_node(), deps);
    }
    let mut ready = BTreeSet::new();
    for dependency in depends_on {
        let node = dependencies::node_of(dependency, &me.namespace);
        if crate::readiness::is_ready(&ctx.kube, &node).await? {
            ready.insert(node);
        }
    }
    match dependencies::gate(&me.graph_node(), &graph, &ready) {
        Gate::Open => Ok(None),
        Gate::Waiting(names) => Ok(Some(Progress::Waiting {
            reason: crate::conditions::reason::WAITING_FOR_DEPENDENCIES,
            message: format!("waiting for {} to be Ready", names.join(", ")),
            // Dependencies wake their dependents; this is a safety net.
            retry: ctx.resync,
        })),
        Gate::Cycle(path) => Err(Error::spec(
            reason::DEPENDENCY_CYCLE,
            format!("dependsOn forms a cycle: {}", path.join(" → ")),
        )),
    }
}

/// Where the guests of the same anti-affinity group run.
pub fn anti_affinity_peers<G: Guest>(guest: &G, ctx: &GuestContext) -> Vec<String> {
    let Some(group) = guest_group(guest.common()) else {
        return Vec::new();
    };
    let uid = guest.uid().unwrap_or_default();
    cached(ctx, |g| guest_group(g.common) == Some(group))
        .into_iter()
        .filter(|p| p.uid != uid)
        .filter_map(|p| p.node)
        .collect()
}

/// Guests with a lower `startup.order` start first, as PVE boots them. Read fresh: the
/// caches may lag the change that woke us.
pub async fn startup_gate<G: Guest>(
    guest: &G,
    ctx: &GuestContext,
) -> Result<Option<Progress>, Error> {
    let Some(mine) = startup_order(guest.common()) else {
        return Ok(None);
    };
    let lxc = kube::Api::<LxcGuest>::all(ctx.kube.clone())
        .list(&Default::default())
        .await?;
    let vm = kube::Api::<VmGuest>::all(ctx.kube.clone())
        .list(&Default::default())
        .await?;
    let all = lxc
        .items
        .iter()
        .map(Peer::of)
        .chain(vm.items.iter().map(Peer::of));
    let earlier: Vec<String> = all
        .filter(|p| !p.template && !p.deleted)
        .filter(|p| p.order.is_some_and(|o| o < mine))
        .filter(|p| !p.running && !p.stalled)
        .map(|p| p.name)
        .collect();
    if earlier.is_empty() {
        return Ok(None);
    }
    Ok(Some(Progress::Waiting {
        reason: crate::conditions::reason::WAITING_FOR_STARTUP_ORDER,
        message: format!("starts after {} (lower startup order)", earlier.join(", ")),
        retry: ctx.resync,
    }))
}

/// Wakes the guests whose gate may have opened because `changed` changed: its dependents,
/// its clones and the guests that start after it, of either kind.
pub fn wake_waiters<G: Guest>(ctx: &GuestContext, kind: PhoenixKind, changed: &G) {
    let changed_node = (
        kind,
        changed.namespace().unwrap_or_default(),
        changed.name_any(),
    );
    let changed_order = startup_order(changed.common());
    let changed_vmid = changed.vmid();
    let waits = |g: &Glance| {
        let namespace = g.namespace.unwrap_or_default();
        let depends = g
            .common
            .depends_on
            .iter()
            .any(|d| dependencies::node_of(d, namespace) == changed_node);
        let order = startup_order(g.common);
        let later = matches!((changed_order, order), (Some(mine), Some(theirs)) if theirs > mine);
        depends || later || g.clone_of == Some(changed_vmid)
    };
    for other in ctx.lxc.store.state() {
        if waits(&Glance::of(&*other)) {
            let _ = ctx.lxc.wake.send(ObjectRef::from_obj(&*other));
        }
    }
    for other in ctx.vm.store.state() {
        if waits(&Glance::of(&*other)) {
            let _ = ctx.vm.wake.send(ObjectRef::from_obj(&*other));
        }
    }
}
