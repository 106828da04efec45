//! One pass towards the spec, performed: gates (VMID claim, dependencies, cluster), the task
//! in flight, observation, then what [`decide`] says — refuse, wait, adopt, rebuild a
//! template, or run the plan's next steps — and once the guest runs, what happens inside
//! it. Choices are made in `decide.rs`; this file gathers facts and performs steps.

use super::decide::{self, AT_ONCE, CloneSource, Found, Intent, Next, Policies, SHORT};
use super::observe::{self, Live};
use super::plan::{Observed, Step};
use super::{Guest, GuestContext, Progress, peers, placement, render, waker};
use crate::cluster_view::Freshness;
use crate::conditions::{self, reason};
use crate::error::Error;
use crate::ownership::Ownership;
use crate::pve::Connection;
use crate::slots::{Slot, Slots};
use kube::ResourceExt;
use kube::runtime::events::EventType;
use phoenix_clients::proxmox::{ErrorKind, GuestType, Params, TaskOutcome, Upid};
use phoenix_crds::common::DriftPolicy;
use std::sync::Arc;
use std::time::Instant;

/// What one pass works with: the guest, the controller's context, its cluster's
/// connection, and the status it is computing (written once, by `finish`).
pub struct Pass<'a, G: Guest> {
    pub guest: &'a G,
    pub ctx: &'a GuestContext,
    pub pve: &'a Connection,
    pub status: &'a mut G::Status,
    /// How recent a look at the cluster this pass needs: any within the view's interval,
    /// or one taken after a task of ours ended.
    pub freshness: Freshness,
}

pub async fn converge<G: Guest>(
    guest: &G,
    ctx: &GuestContext,
    status: &mut G::Status,
) -> Result<Progress, Error> {
    peers::check_claim(guest, ctx)?;
    if let Some(waiting) = peers::dependency_gate(guest, ctx).await? {
        return Ok(waiting);
    }
    let common = guest.common();
    let pve = ctx
        .pve
        .get(common.cluster_ref.as_ref().map(|r| r.name.as_str()))
        .await?;
    let namespace = guest.namespace().unwrap_or_default();
    let mut powers = guest.host_powers();
    powers.extend(foreign_clone_source(guest, ctx, &namespace));
    crate::cluster_policy::admit(&pve.cluster, &namespace, &powers)?;
    let mut pass = Pass {
        guest,
        ctx,
        pve: &pve,
        status,
        freshness: Freshness::Within(ctx.view_interval),
    };
    if let Some(progress) = pass.task_in_flight().await? {
        return Ok(progress);
    }
    pass.run().await
}

impl<G: Guest> Pass<'_, G> {
    async fn run(&mut self) -> Result<Progress, Error> {
        let (guest, ctx, pve) = (self.guest, self.ctx, self.pve);
        let common = guest.common();
        let uid = guest.uid().unwrap_or_default();
        let inputs = guest.inputs(&ctx.kube).await?;
        let peer_nodes = peers::anti_affinity_peers(guest, ctx);
        let current = G::view(self.status).1.node.clone();
        let node = placement::choose_node(common, &pve.cluster, current.as_deref(), &peer_nodes)?;
        placement::check_memory(common, &pve.cluster)?;
        let Some(live) = observe::find(pve, G::TYPE, guest.vmid(), self.freshness).await? else {
            self.observe(None, &node);
            return self.create(&node, &uid, &inputs).await;
        };
        let found = found(&live, &uid);
        let intent = Intent {
            adopt: common.adopt,
            template: guest.wants_template(),
        };
        let next = decide::next(&found, intent, &guest.label());
        // Only a guest that is ours (or one being adopted) is recorded in status: nothing
        // read from someone else's guest is shown, or trusted by install targets.
        match next {
            Next::Refuse(_) => self.forget(),
            _ => self.observe(Some(&live), &node),
        }
        let observed = Observed {
            config: live.config.clone(),
            running: live.running,
        };
        let steps = guest.plan(&uid, &inputs, Some(&observed));
        match next {
            Next::Refuse(error) => Err(error),
            Next::Wait(progress) => Ok(progress),
            Next::Adopt => {
                let desired = guest.desired_config(&uid, &inputs);
                self.adopt(&live, &steps, &desired).await
            }
            // Only a rebuild (a changed source) is ever planned for a template.
            Next::Template if steps.is_empty() || found.ownership != Ownership::Ours => {
                self.ready(&live, &found).await
            }
            Next::Template => self.execute(&live.node, steps, false).await,
            Next::Converge => self.converge_ours(&live, &found, &inputs, steps).await,
        }
    }

    /// Node, VMID, power state and addresses as observed (`None`: nothing exists yet).
    fn observe(&mut self, live: Option<&Live>, node: &str) {
        let observation = G::parts(self.status).1;
        observation.vmid = Some(self.guest.vmid());
        observation.node = Some(live.map_or(node, |l| l.node.as_str()).to_owned());
        observation.state = live.map(|l| {
            if l.is_template() {
                "template"
            } else if l.running {
                "running"
            } else {
                "stopped"
            }
            .to_owned()
        });
        if live.is_none() {
            observation.ip = None;
            observation.ips.clear();
        }
    }

    /// The guest holding the VMID is not this object's: nothing of it stays in status.
    fn forget(&mut self) {
        let observation = G::parts(self.status).1;
        observation.node = None;
        observation.state = None;
        observation.ip = None;
        observation.ips.clear();
    }

    /// Nothing exists: preflight (an image to download), then create or clone.
    async fn create(
        &mut self,
        node: &str,
        uid: &str,
        inputs: &G::Inputs,
    ) -> Result<Progress, Error> {
        if let Some(waiting) = self.clone_source_gate().await? {
            return Ok(waiting);
        }
        let (guest, ctx, pve) = (self.guest, self.ctx, self.pve);
        let mut steps = guest.preflight(ctx, pve, node).await?;
        steps.extend(guest.plan(uid, inputs, None));
        guest.prepare(ctx, pve, node, inputs, &steps).await?;
        self.execute(node, steps, false).await
    }

    /// A guest that is ours: firewall, policies, then the plan; once nothing is left to
    /// do, Ready, provisioned, settled.
    async fn converge_ours(
        &mut self,
        live: &Live,
        found: &Found,
        inputs: &G::Inputs,
        steps: Vec<Step>,
    ) -> Result<Progress, Error> {
        let (guest, ctx, pve) = (self.guest, self.ctx, self.pve);
        let common = guest.common();
        let generation = guest.meta().generation;
        let converged_before =
            generation.is_some() && generation == G::view(self.status).1.converged_generation;
        let policies = Policies {
            converged_before,
            drift: common.drift_policy,
            restart: common.restart_policy,
            running: live.running,
        };
        let report = converged_before && common.drift_policy == DriftPolicy::Report;
        let unreported = match &common.firewall {
            Some(fw) => {
                let fw = self.with_route_rules(fw).await?;
                self.firewall(live, &fw, converged_before, report).await?
            }
            None => Vec::new(),
        };
        let policed = decide::police(steps, policies, &unreported);
        self.record_policies(&policed).await;
        let steps = policed.steps;
        if guest.wants_template()
            && super::inside::wanted(guest)
            && decide::provisions_before_conversion(&steps)
            && let Some(progress) = self.provision_template(live).await?
        {
            return Ok(progress);
        }
        if !steps.is_empty() {
            guest.prepare(ctx, pve, &live.node, inputs, &steps).await?;
            return self.execute(&live.node, steps, converged_before).await;
        }
        let progress = self.ready(live, found).await?;
        if !progress.is_ready() {
            return Ok(progress);
        }
        let progress =
            super::inside::provisioned(guest, ctx, pve, &live.node, self.status, progress).await?;
        if !progress.is_ready() {
            return Ok(progress);
        }
        guest.settle(ctx, pve, live, self.status, progress).await
    }

    /// The `Drifted` and `RestartRequired` conditions the policies call for, and a Warning
    /// event when the drift reported is new.
    async fn record_policies(&mut self, policed: &decide::Policed) {
        let generation = self.guest.meta().generation;
        let now = jiff::Timestamp::now();
        let conditions = &mut G::parts(self.status).0.conditions;
        let Some(message) = &policed.drifted else {
            conditions::remove(conditions, conditions::DRIFTED);
            if let Some(message) = &policed.restart_required {
                conditions::set(
                    conditions,
                    conditions::RESTART_REQUIRED,
                    true,
                    reason::RESTART_REQUIRED,
                    message,
                    generation,
                    now,
                );
            } else if policed.restart_cleared {
                conditions::remove(conditions, conditions::RESTART_REQUIRED);
            }
            return;
        };
        // Known from the status the pass started with (this pass may have cleared it).
        let known = self.guest.status().is_some_and(|s| {
            conditions::find(&G::view(s).0.conditions, conditions::DRIFTED)
                .is_some_and(|c| &c.message == message)
        });
        conditions::set(
            conditions,
            conditions::DRIFTED,
            true,
            reason::DRIFT_DETECTED,
            message,
            generation,
            now,
        );
        if !known {
            let (guest, message) = (self.guest, message.clone());
            self.ctx
                .event(guest, EventType::Warning, reason::DRIFT_DETECTED, message)
                .await;
        }
    }

    /// A template is provisioned before it is converted: configured, started, its features
    /// applied, then stopped and converted (the plan's last steps). `None`: go on with them.
    async fn provision_template(&mut self, live: &Live) -> Result<Option<Progress>, Error> {
        let (guest, ctx, pve) = (self.guest, self.ctx, self.pve);
        let namespace = guest.namespace().unwrap_or_default();
        let observation = G::view(self.status).1;
        let done = crate::provision::all_recorded(
            ctx,
            &namespace,
            guest.common(),
            &pve.cluster,
            observation,
        )
        .await?;
        if done {
            return Ok(None);
        }
        if !live.running {
            return self
                .execute(&live.node, vec![Step::Start], false)
                .await
                .map(Some);
        }
        let progress = Progress::Ready {
            reason: reason::PROVISIONING,
            message: String::new(),
        };
        match super::inside::provisioned(guest, ctx, pve, &live.node, self.status, progress).await?
        {
            Progress::Ready { .. } => Ok(None),
            waiting => Ok(Some(waiting)),
        }
    }

    /// The task of a previous pass: still running (the tracker will wake us), failed (an
    /// error, retried with backoff), or done (go on).
    async fn task_in_flight(&mut self) -> Result<Option<Progress>, Error> {
        let (guest, ctx, pve) = (self.guest, self.ctx, self.pve);
        let observation = G::parts(self.status).1;
        let Some(raw) = observation.task_upid.clone() else {
            return Ok(None);
        };
        let Some(upid) = Upid::parse(&raw) else {
            observation.task_upid = None;
            return Ok(None);
        };
        let outcome = match pve.client.task(&upid).await {
            Ok(task) => task.outcome(),
            // Forgotten by the node: observation decides what happened.
            Err(e) if e.kind == ErrorKind::NotFound => TaskOutcome::Succeeded,
            Err(e) => return Err(e.into()),
        };
        match outcome {
            TaskOutcome::Running => {
                if !ctx.tasks.is_following(&raw) {
                    // Found after a restart: it counts against its node's budget again.
                    let slots = pve.budget(&upid.node).take_running().into_iter().collect();
                    ctx.tasks
                        .follow(pve.client.clone(), upid, slots, waker(ctx, guest));
                }
                let step = observation.step.clone().unwrap_or_else(|| "task".into());
                Ok(Some(Progress::Working {
                    reason: reason::TASK_RUNNING,
                    message: format!("{step}: waiting for PVE task {raw}"),
                }))
            }
            TaskOutcome::Succeeded => {
                observation.task_upid = None;
                // What the task changed must show in the look this pass takes.
                self.freshness = Freshness::After(Instant::now());
                Ok(None)
            }
            TaskOutcome::Failed(exitstatus) => {
                observation.task_upid = None;
                observation.step = None;
                Err(Error::TaskFailed {
                    upid: raw,
                    exitstatus,
                })
            }
        }
    }

    /// The clone source exists and is a template of the guest's own type; while another
    /// object is still building it, or nothing has it yet, a wait. Anything else is a
    /// condition and no PVE write (`decide::clone_source`).
    async fn clone_source_gate(&self) -> Result<Option<Progress>, Error> {
        let Some(clone) = self.guest.clone_source() else {
            return Ok(None);
        };
        let source = clone.vmid;
        let coming = peers::cached(self.ctx, |g| g.vmid == source)
            .iter()
            .any(|p| p.template && p.kind == G::PHOENIX_KIND);
        let seen = match observe::locate(self.pve, source, self.freshness).await? {
            None => CloneSource::Missing,
            Some(found) if found.kind != G::TYPE.segment() => CloneSource::OtherType,
            Some(found) => {
                let config = self.pve.client.config(&found.node, G::TYPE, source).await?;
                CloneSource::Found {
                    template: config.get("template").is_some_and(|t| t == "1"),
                }
            }
        };
        let kinds = match G::TYPE {
            GuestType::Lxc => ("container", "a VM"),
            GuestType::Qemu => ("VM", "a container"),
        };
        decide::clone_source(source, seen, coming, kinds)
    }

    /// The guest's firewall brought to the spec; under `driftPolicy: Report` (once
    /// converged) only compared: the differences, for the Drifted report.
    /// The spec's firewall plus the rules the routes to this guest derive (and, on
    /// Step-CA's guest, the ACME clients' rule), when the cluster's datacenter firewall
    /// keeps the IP sets they name.
    async fn with_route_rules(
        &self,
        fw: &phoenix_crds::common::Firewall,
    ) -> Result<phoenix_crds::common::Firewall, Error> {
        let mut fw = fw.clone();
        if self.pve.cluster.spec.firewall.is_none() {
            return Ok(fw);
        }
        let namespace = self.guest.namespace().unwrap_or_default();
        let routes: kube::Api<phoenix_crds::TraefikService> =
            kube::Api::namespaced(self.ctx.kube.clone(), &namespace);
        let routes = routes.list(&Default::default()).await?.items;
        let kind = super::route_rules::kind_of(G::TYPE);
        let name = self.guest.name_any();
        fw.rules
            .extend(super::route_rules::derived(kind, &name, &routes));
        if let Some(acme) = &self.pve.cluster.spec.acme {
            let own = G::view(self.status).1.ip.as_deref();
            fw.rules
                .extend(crate::step_ca_access::rule_for(&acme.directory_url, own));
        }
        Ok(fw)
    }

    async fn firewall(
        &self,
        live: &Live,
        fw: &phoenix_crds::common::Firewall,
        drift: bool,
        report: bool,
    ) -> Result<Vec<String>, Error> {
        let place = crate::firewall::Place::Guest(&live.node, G::TYPE, self.guest.vmid());
        let changed = crate::firewall::sync(&self.pve.client, place, fw, !report).await?;
        if report || changed.is_empty() {
            return Ok(changed);
        }
        let reason = if drift {
            reason::DRIFT_CORRECTED
        } else {
            reason::FIREWALL_CONFIGURED
        };
        let message = format!("firewall set: {}", changed.join(", "));
        self.ctx
            .event(self.guest, EventType::Normal, reason, message)
            .await;
        Ok(Vec::new())
    }

    /// Converged: Ready once running with known addresses (a template once converted).
    async fn ready(&mut self, live: &Live, found: &Found) -> Result<Progress, Error> {
        let label = self.guest.label();
        if let Some(progress) = decide::settled(found, &label) {
            return Ok(progress);
        }
        let uid = self.guest.uid().unwrap_or_default();
        let ips = match self.ctx.addresses.recall(&uid, live) {
            Some(ips) => {
                self.guest.addresses_recalled(self.status);
                ips
            }
            None => match self
                .guest
                .addresses(self.ctx, self.pve, live, self.status)
                .await?
            {
                Ok(ips) => {
                    self.ctx.addresses.remember(&uid, live, &ips);
                    ips
                }
                Err(waiting) => return Ok(waiting),
            },
        };
        let observation = G::parts(self.status).1;
        observation.ip = ips.first().cloned();
        observation.ips = ips;
        Ok(decide::running(
            &label,
            &live.node,
            observation.ip.as_deref(),
        ))
    }

    /// Takes over an unmarked guest that matches: writes the marker (and the live-applicable
    /// differences) without restarting it.
    async fn adopt(
        &mut self,
        live: &Live,
        steps: &[Step],
        desired: &std::collections::BTreeMap<String, String>,
    ) -> Result<Progress, Error> {
        let label = self.guest.label();
        let policy = self.guest.common().adoption_policy;
        let params = decide::adoption(steps, desired, policy, &label)?;
        self.pve
            .client
            .update_config(&live.node, G::TYPE, self.guest.vmid(), &params)
            .await?;
        let message = format!("adopted {label} on {} without restarting it", live.node);
        self.ctx
            .event(
                self.guest,
                EventType::Normal,
                reason::ADOPTED,
                message.clone(),
            )
            .await;
        Ok(Progress::Waiting {
            reason: reason::ADOPTED,
            message,
            retry: AT_ONCE,
        })
    }

    /// Runs the plan: synchronous steps in turn, up to the first that starts a PVE task.
    async fn execute(
        &mut self,
        node: &str,
        steps: Vec<Step>,
        drift: bool,
    ) -> Result<Progress, Error> {
        let (guest, ctx, pve) = (self.guest, self.ctx, self.pve);
        for step in steps {
            let mut slots = Vec::new();
            match &step {
                Step::Configure { .. } => {
                    let params = decide::configure_params(&step);
                    pve.client
                        .update_config(node, G::TYPE, guest.vmid(), &params)
                        .await?;
                    let (reason, message) = decide::configure_event(&step, drift);
                    ctx.event(guest, EventType::Normal, reason, message).await;
                    continue;
                }
                Step::Start => {
                    if let Some(waiting) = peers::startup_gate(guest, ctx).await? {
                        return Ok(waiting);
                    }
                }
                // PVE locks a container template for the whole copy: one clone at a time. A
                // stopped VM template only takes a shared lock: its clones run in parallel.
                Step::Clone { source, .. } if G::TYPE == GuestType::Lxc => {
                    let why = format!(
                        "queued: template {source} is being cloned (PVE locks it for the copy)"
                    );
                    match self.slot(pve.template_lock(*source), why) {
                        Ok(slot) => slots.push(slot),
                        Err(queued) => return Ok(queued),
                    }
                }
                Step::Destroy => {
                    let clones = observe::linked_clones(&pve.client, guest.vmid()).await?;
                    if !clones.is_empty() {
                        return Err(Error::conflict(
                            reason::TEMPLATE_IN_USE,
                            format!(
                                "{} is the base of linked clones {clones:?}: its source changed, but the old generation stays until they are gone",
                                guest.label()
                            ),
                        ));
                    }
                }
                _ => {}
            }
            let why = format!("queued: node {node} runs as many PVE tasks as its budget allows");
            match self.slot(pve.budget(node), why) {
                Ok(slot) => slots.push(slot),
                Err(queued) => return Ok(queued),
            }
            return self.start_task(node, &step, slots).await;
        }
        Ok(Progress::Waiting {
            reason: reason::CONFIGURED,
            message: format!("{} configured", guest.label()),
            retry: AT_ONCE,
        })
    }

    /// A slot of `slots`, or the `Queued` outcome (the slot's release wakes the guest).
    fn slot(&self, slots: Arc<Slots>, why: String) -> Result<Slot, Progress> {
        slots
            .take(&self.guest.key(), waker(self.ctx, self.guest))
            .ok_or(Progress::Queued { message: why })
    }

    /// Starts the PVE task of `step` with the slots it holds, hands it to the tracker and
    /// records its UPID.
    async fn start_task(
        &mut self,
        node: &str,
        step: &Step,
        slots: Vec<Slot>,
    ) -> Result<Progress, Error> {
        let (guest, ctx, pve) = (self.guest, self.ctx, self.pve);
        let upid = match self.call(node, step).await {
            Ok(Some(upid)) => upid,
            Ok(None) => {
                return Ok(Progress::Waiting {
                    reason: decide::step_reason(step),
                    message: format!("{step}: done at once"),
                    retry: AT_ONCE,
                });
            }
            Err(Error::Proxmox(e)) if e.kind == ErrorKind::AlreadyExists => {
                // A create that reached PVE before a crash: observation takes it from here.
                return Ok(Progress::Waiting {
                    reason: reason::OBSERVING,
                    message: format!("{} exists already; looking again", guest.label()),
                    retry: SHORT,
                });
            }
            Err(e) => return Err(e),
        };
        let message = format!("{step} (task {})", upid.raw);
        guest.task_started(step, self.status);
        let observation = G::parts(self.status).1;
        observation.step = Some(step.name().into());
        observation.task_upid = Some(upid.raw.clone());
        ctx.tasks
            .follow(pve.client.clone(), upid, slots, waker(ctx, guest));
        ctx.event(guest, EventType::Normal, step.name(), message.clone())
            .await;
        Ok(Progress::Working {
            reason: decide::step_reason(step),
            message,
        })
    }

    /// The PVE call that starts `step`'s task (`None`: done at once, no task).
    async fn call(&self, node: &str, step: &Step) -> Result<Option<Upid>, Error> {
        let (vmid, kind) = (self.guest.vmid(), G::TYPE);
        let client = &self.pve.client;
        let upid = match step {
            Step::Create { params } => {
                let mut params: Params = params.clone().into_iter().collect();
                params.push(("vmid".into(), vmid.to_string()));
                client.create(node, kind, &params).await?
            }
            Step::Clone { source, .. } => {
                let source_node = observe::locate(self.pve, *source, self.freshness)
                    .await?
                    .map_or_else(|| node.to_owned(), |found| found.node);
                let mut params = self
                    .guest
                    .clone_params(&self.guest.uid().unwrap_or_default());
                params.push(("newid".into(), vmid.to_string()));
                if source_node != node {
                    params.push(("target".into(), node.to_owned()));
                }
                client
                    .clone_guest(&source_node, kind, *source, &params)
                    .await?
            }
            Step::Resize { disk, size } => client.resize(node, kind, vmid, disk, size).await?,
            Step::Start => client.power(node, kind, vmid, "start").await?,
            Step::Restart => client.power(node, kind, vmid, "reboot").await?,
            Step::Stop => client.power(node, kind, vmid, "stop").await?,
            Step::Destroy => client.destroy(node, kind, vmid, false).await?,
            // Containers convert at once; VMs in a `qmtemplate` task.
            Step::Template => return Ok(client.template(node, kind, vmid).await?),
            Step::Download {
                storage,
                filename,
                url,
                checksum,
            } => {
                client
                    .download_url(node, storage, filename, url, checksum.as_deref())
                    .await?
            }
            // Configured in `execute`, never a task.
            Step::Configure { .. } => return Ok(None),
        };
        Ok(Some(upid))
    }
}

/// Cloning a template that no object of the guest's own namespace makes is a host-level
/// power (it copies whatever that template holds).
fn foreign_clone_source<G: Guest>(
    guest: &G,
    ctx: &GuestContext,
    namespace: &str,
) -> Option<String> {
    let source = guest.clone_source()?.vmid;
    let own = peers::cached(ctx, |g| g.vmid == source && g.namespace == Some(namespace))
        .iter()
        .any(|p| p.template);
    (!own)
        .then(|| format!("a clone of template {source}, which namespace {namespace} does not make"))
}

/// The facts `decide` needs of a live guest.
fn found(live: &Live, uid: &str) -> Found {
    Found {
        node: live.node.clone(),
        running: live.running,
        template: live.is_template(),
        lock: live.lock().map(str::to_owned),
        ownership: live.ownership(uid),
    }
}

/// The parameters of a clone: the name, the owner marker, full or linked (a storage only
/// for full clones: PVE refuses it for linked ones), and the pool.
pub fn clone_params<G: Guest>(guest: &G, name_key: &str, name: &str, owner_uid: &str) -> Params {
    let mut params: Params = vec![
        (name_key.into(), name.into()),
        (
            "description".into(),
            crate::ownership::owner_marker(owner_uid),
        ),
    ];
    if let Some(clone) = guest.clone_source() {
        params.push(("full".into(), render::flag(clone.full).into()));
        if let (true, Some(storage)) = (clone.full, clone.storage.clone()) {
            params.push(("storage".into(), storage));
        }
    }
    if let Some(pool) = &guest.common().pool {
        params.push(("pool".into(), pool.clone()));
    }
    params
}
