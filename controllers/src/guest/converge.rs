//! One pass towards the spec: gates (VMID claim, dependencies, cluster), the task in
//! flight, observation, ownership, preflight checks, then the plan's next steps, and once
//! the guest runs, what happens inside it.

use super::observe::{self, Live, Ownership};
use super::plan::Step;
use super::{Guest, Progress, peers, placement, render, waker};
use crate::context::Context;
use crate::error::Error;
use crate::pve::Connection;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use phoenix_clients::proxmox::{ErrorKind, GuestType, Params, ProxmoxError, TaskOutcome, Upid};
use phoenix_crds::common::{DriftPolicy, RestartPolicy};
use std::collections::BTreeMap;
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(2);

pub async fn converge<G: Guest>(
    guest: &G,
    ctx: &Context,
    status: &mut G::Status,
) -> Result<Progress, Error> {
    let common = guest.common();
    let (vmid, label) = (guest.vmid(), guest.label());
    let uid = guest.uid().unwrap_or_default();
    peers::check_claim(guest, ctx)?;
    if let Some(waiting) = peers::dependency_gate(guest, ctx).await? {
        return Ok(waiting);
    }
    let pve = ctx
        .pve
        .get(common.cluster_ref.as_ref().map(|r| r.name.as_str()))
        .await?;
    if let Some(progress) = task_in_flight(guest, ctx, &pve, status).await? {
        return Ok(progress);
    }
    let inputs = guest.inputs(&ctx.kube).await?;
    let peer_nodes = peers::anti_affinity_peers(guest, ctx);
    let current = G::view(status).1.node.clone();
    let node = placement::choose_node(common, &pve.cluster, current.as_deref(), &peer_nodes)?;
    placement::check_memory(common, &pve.cluster)?;
    let live = observe::find(&pve.client, G::TYPE, &node, vmid).await?;
    let observation = G::parts(status).1;
    observation.vmid = Some(vmid);
    observation.node = Some(live.as_ref().map_or(node.clone(), |l| l.node.clone()));
    let Some(live) = live else {
        observation.state = None;
        observation.ip = None;
        observation.ips.clear();
        let mut steps = guest.preflight(ctx, &pve, &node).await?;
        steps.extend(guest.plan(&uid, &inputs, None));
        guest.prepare(ctx, &pve, &node, &inputs, &steps).await?;
        return execute(guest, ctx, &pve, &node, status, steps, false).await;
    };
    observation.state = Some(state_of(&live));
    // Clones lock a template for their whole copy: that is not a lock to wait for.
    if let Some(lock) = live.lock().filter(|_| !live.is_template()) {
        return Ok(Progress::Waiting {
            reason: "Locked",
            message: format!("PVE holds the lock {lock:?} on {label}; waiting for it to clear"),
            retry: SHORT,
        });
    }
    let adopted = match live.ownership(&uid) {
        Ownership::Ours => false,
        Ownership::Other(owner) => {
            return Err(Error::conflict(
                "VmidOwnedByAnother",
                format!("{label} belongs to another Phoenix object (uid {owner})"),
            ));
        }
        Ownership::Unmarked if !common.adopt => {
            return Err(Error::conflict(
                "VmidInUse",
                format!(
                    "{label} exists on node {} and was not created by Phoenix; set spec.adopt: true to take it over",
                    live.node
                ),
            ));
        }
        Ownership::Unmarked => true,
    };
    if live.is_template() && !guest.wants_template() {
        return Err(Error::spec(
            "IsTemplate",
            format!("{label} is a template; set spec.template: true or use another vmid"),
        ));
    }
    let observed = super::plan::Observed {
        config: live.config.clone(),
        running: live.running,
    };
    let steps = guest.plan(&uid, &inputs, Some(&observed));
    if live.is_template() {
        // Only a rebuild (a changed source) is ever planned for a template.
        if steps.is_empty() || adopted {
            return ready(guest, ctx, &pve, &live, status).await;
        }
        return execute(guest, ctx, &pve, &live.node, status, steps, false).await;
    }
    if adopted {
        let desired = guest.desired_config(&uid, &inputs);
        return adopt(guest, ctx, &pve, &live, &steps, &desired).await;
    }
    let drift = guest.meta().generation == G::view(status).0.observed_generation;
    let report = drift && common.drift_policy == DriftPolicy::Report;
    let firewall = match &common.firewall {
        Some(fw) => firewall(guest, ctx, &pve, &live, fw, drift, report).await?,
        None => Vec::new(),
    };
    let steps = apply_policies(guest, ctx, status, steps, drift, live.running, &firewall).await;
    if guest.wants_template()
        && super::inside::wanted(guest)
        && let Some(progress) = provision_template(guest, ctx, &pve, &live, status, &steps).await?
    {
        return Ok(progress);
    }
    if !steps.is_empty() {
        guest
            .prepare(ctx, &pve, &live.node, &inputs, &steps)
            .await?;
        return execute(guest, ctx, &pve, &live.node, status, steps, drift).await;
    }
    let progress = ready(guest, ctx, &pve, &live, status).await?;
    if !matches!(progress, Progress::Ready { .. }) {
        return Ok(progress);
    }
    let progress =
        super::inside::provisioned(guest, ctx, &pve, &live.node, status, progress).await?;
    if !matches!(progress, Progress::Ready { .. }) {
        return Ok(progress);
    }
    guest.settle(ctx, &pve, &live, status, progress).await
}

/// A template is provisioned before it is converted: configured, started, its features
/// applied, then stopped and converted (the plan's last steps). `None`: go on with them.
async fn provision_template<G: Guest>(
    guest: &G,
    ctx: &Context,
    pve: &Connection,
    live: &Live,
    status: &mut G::Status,
    steps: &[Step],
) -> Result<Option<Progress>, Error> {
    let configuring = steps
        .iter()
        .any(|s| !matches!(s, Step::Stop | Step::Template));
    if configuring {
        return Ok(None);
    }
    let namespace = guest.namespace().unwrap_or_default();
    let done = crate::provision::all_recorded(
        ctx,
        &namespace,
        guest.common(),
        &pve.cluster,
        G::view(status).1,
    )
    .await?;
    if done {
        return Ok(None);
    }
    if !live.running {
        let start = vec![Step::Start];
        return execute(guest, ctx, pve, &live.node, status, start, false)
            .await
            .map(Some);
    }
    let progress = Progress::Ready {
        reason: "Provisioned",
        message: String::new(),
    };
    match super::inside::provisioned(guest, ctx, pve, &live.node, status, progress).await? {
        Progress::Ready { .. } => Ok(None),
        waiting => Ok(Some(waiting)),
    }
}

fn state_of(live: &Live) -> String {
    if live.is_template() {
        "template".into()
    } else if live.running {
        "running".into()
    } else {
        "stopped".into()
    }
}

/// The task of a previous pass: still running (the tracker will wake us), failed (an
/// error, retried with backoff), or done (go on).
async fn task_in_flight<G: Guest>(
    guest: &G,
    ctx: &Context,
    pve: &Connection,
    status: &mut G::Status,
) -> Result<Option<Progress>, Error> {
    let observation = G::parts(status).1;
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
                let permits = pve
                    .budget(&upid.node)
                    .try_acquire_owned()
                    .into_iter()
                    .collect();
                ctx.tasks
                    .follow(pve.client.clone(), upid, permits, waker(ctx, guest));
            }
            let step = observation.step.clone().unwrap_or_else(|| "task".into());
            Ok(Some(Progress::Working {
                reason: "TaskRunning",
                message: format!("{step}: waiting for PVE task {raw}"),
            }))
        }
        TaskOutcome::Succeeded => {
            observation.task_upid = None;
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

/// The clone source exists and is a template of the guest's own type — or another object
/// is still building it (a transient wait). Anything else is a condition and no PVE write.
pub async fn check_clone_source<G: Guest>(
    guest: &G,
    ctx: &Context,
    pve: &Connection,
) -> Result<(), Error> {
    let Some(clone) = guest.clone_source() else {
        return Ok(());
    };
    let source = clone.vmid;
    let coming = peers::cached(ctx)
        .iter()
        .any(|p| p.vmid == source && p.template && p.kind == G::PHOENIX_KIND);
    let Some((source_node, kind)) = observe::locate(&pve.client, source).await? else {
        return if coming {
            Err(waiting_source(source))
        } else {
            Err(Error::spec(
                "CloneSourceNotFound",
                format!("clone source {source} does not exist"),
            ))
        };
    };
    if kind != G::TYPE.segment() {
        let (wanted, found) = match G::TYPE {
            GuestType::Lxc => ("container", "a VM"),
            GuestType::Qemu => ("VM", "a container"),
        };
        return Err(Error::spec(
            "CloneSourceNotTemplate",
            format!("clone source {source} is {found}, not a {wanted} template"),
        ));
    }
    let config = pve.client.config(&source_node, G::TYPE, source).await?;
    if config.get("template").is_none_or(|t| t != "1") {
        return if coming {
            Err(waiting_source(source))
        } else {
            Err(Error::spec(
                "CloneSourceNotTemplate",
                format!("clone source {source} is not a template (convert it first)"),
            ))
        };
    }
    Ok(())
}

/// A clone source that a Phoenix object will provide: transient, retried.
fn waiting_source(vmid: u32) -> Error {
    Error::Proxmox(ProxmoxError {
        kind: ErrorKind::Transient,
        status: None,
        message: format!(
            "clone source {vmid} is not a template yet; its object is still converging"
        ),
        errors: BTreeMap::new(),
    })
}

/// The parameters of a clone: the name, the owner marker, full or linked (a storage only
/// for full clones: PVE refuses it for linked ones), and the pool.
pub fn clone_params<G: Guest>(guest: &G, name_key: &str, name: &str, owner_uid: &str) -> Params {
    let mut params: Params = vec![
        (name_key.into(), name.into()),
        ("description".into(), render::owner_marker(owner_uid)),
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

/// `driftPolicy: Report` keeps out-of-band changes (reported, not reverted);
/// `restartPolicy: Never` keeps the restart out of the plan (reported).
async fn apply_policies<G: Guest>(
    guest: &G,
    ctx: &Context,
    status: &mut G::Status,
    mut steps: Vec<Step>,
    drift: bool,
    running: bool,
    unreported: &[String],
) -> Vec<Step> {
    let common = guest.common();
    let generation = guest.meta().generation;
    let now = jiff::Timestamp::now();
    if drift && common.drift_policy == DriftPolicy::Report {
        let differences: Vec<String> = steps
            .iter()
            .map(|s| s.to_string().replace('\n', " "))
            .chain(unreported.iter().cloned())
            .collect();
        if !differences.is_empty() {
            report_drift(guest, ctx, status, &differences).await;
            return Vec::new();
        }
    }
    let conditions = &mut G::parts(status).0.conditions;
    conditions.retain(|c| c.type_ != "Drifted");
    if common.restart_policy == RestartPolicy::Never && steps.contains(&Step::Restart) {
        steps.retain(|s| *s != Step::Restart);
        let keys: Vec<&str> = super::plan::changes(&steps)
            .filter(|c| c.needs_restart)
            .map(|c| c.key.as_str())
            .collect();
        let message = format!(
            "{} take effect at the next restart (restartPolicy: Never)",
            keys.join(", ")
        );
        crate::conditions::set(
            conditions,
            "RestartRequired",
            true,
            "RestartRequired",
            &message,
            generation,
            now,
        );
    } else if !running {
        // Stopped (and so started afresh later): pending changes are applied then.
        conditions.retain(|c| c.type_ != "RestartRequired");
    }
    steps
}

/// Reports live state that differs from the spec without correcting it (`driftPolicy:
/// Report`): the `Drifted` condition, and a Warning event when the difference is new.
async fn report_drift<G: Guest>(
    guest: &G,
    ctx: &Context,
    status: &mut G::Status,
    differences: &[String],
) {
    let message = format!(
        "live state differs from the spec (not corrected, driftPolicy: Report): {}",
        differences.join("; ")
    );
    // Known from the status the pass started with (this pass may have cleared it).
    let known = guest.status().is_some_and(|s| {
        G::view(s)
            .0
            .conditions
            .iter()
            .any(|c| c.type_ == "Drifted" && c.message == message)
    });
    crate::conditions::set(
        &mut G::parts(status).0.conditions,
        "Drifted",
        true,
        "DriftDetected",
        &message,
        guest.meta().generation,
        jiff::Timestamp::now(),
    );
    if !known {
        ctx.event(guest, EventType::Warning, "DriftDetected", message)
            .await;
    }
}

/// The guest's firewall brought to the spec; under `driftPolicy: Report` (once converged)
/// only compared: the differences, for the Drifted report.
async fn firewall<G: Guest>(
    guest: &G,
    ctx: &Context,
    pve: &Connection,
    live: &Live,
    fw: &phoenix_crds::common::Firewall,
    drift: bool,
    report: bool,
) -> Result<Vec<String>, Error> {
    let target = (live.node.as_str(), G::TYPE, guest.vmid());
    let changed = super::firewall::sync(&pve.client, target, fw, !report).await?;
    if report || changed.is_empty() {
        return Ok(changed);
    }
    let reason = if drift {
        "DriftCorrected"
    } else {
        "FirewallConfigured"
    };
    let message = format!("firewall set: {}", changed.join(", "));
    ctx.event(guest, EventType::Normal, reason, message).await;
    Ok(Vec::new())
}

/// Converged: Ready once running with known addresses (a template once converted).
async fn ready<G: Guest>(
    guest: &G,
    ctx: &Context,
    pve: &Connection,
    live: &Live,
    status: &mut G::Status,
) -> Result<Progress, Error> {
    let label = guest.label();
    if live.is_template() {
        return Ok(Progress::Ready {
            reason: "Template",
            message: format!("{label} is a template on {}", live.node),
        });
    }
    if !live.running {
        // Only reached when the plan may not start it (drift reported).
        return Ok(Progress::Waiting {
            reason: "Stopped",
            message: format!("{label} is stopped"),
            retry: Duration::from_secs(60),
        });
    }
    let ips = match guest.addresses(ctx, pve, live, status).await? {
        Ok(ips) => ips,
        Err(waiting) => return Ok(waiting),
    };
    let observation = G::parts(status).1;
    observation.ip = ips.first().cloned();
    observation.ips = ips;
    let at = observation
        .ip
        .as_ref()
        .map_or_else(|| " (address unknown)".to_owned(), |ip| format!(" at {ip}"));
    Ok(Progress::Ready {
        reason: "Running",
        message: format!("{label} runs on {}{at}", live.node),
    })
}

/// Takes over an unmarked guest that matches: writes the marker (and the live-applicable
/// differences) without restarting it.
async fn adopt<G: Guest>(
    guest: &G,
    ctx: &Context,
    pve: &Connection,
    live: &Live,
    steps: &[Step],
    desired: &BTreeMap<String, String>,
) -> Result<Progress, Error> {
    let label = guest.label();
    let mismatch: Vec<String> = steps
        .iter()
        .flat_map(|s| match s {
            Step::Configure { changes } => changes
                .iter()
                .filter(|c| c.needs_restart)
                .map(|c| {
                    format!(
                        "{} is {:?}, spec wants {:?}",
                        c.key,
                        c.from.as_deref().unwrap_or(""),
                        c.to.as_deref().unwrap_or("")
                    )
                })
                .collect(),
            Step::Restart | Step::Start | Step::Stop | Step::Template => Vec::new(),
            other => vec![other.to_string()],
        })
        .collect();
    if !mismatch.is_empty() {
        return Err(Error::conflict(
            "AdoptionMismatch",
            format!(
                "{label} does not match the spec, not adopted: {}",
                mismatch.join("; ")
            ),
        ));
    }
    let params: Params = super::plan::changes(steps)
        .filter_map(|c| c.to.clone().map(|v| (c.key.clone(), v)))
        .chain(["tags", "description"].map(|k| (k.to_string(), desired[k].clone())))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .chain(deletions(steps))
        .collect();
    pve.client
        .update_config(&live.node, G::TYPE, guest.vmid(), &params)
        .await?;
    let message = format!("adopted {label} on {} without restarting it", live.node);
    ctx.event(guest, EventType::Normal, "Adopted", message.clone())
        .await;
    Ok(Progress::Waiting {
        reason: "Adopted",
        message,
        retry: Duration::from_millis(100),
    })
}

/// Runs the plan: synchronous steps in turn, up to the first that starts a PVE task.
async fn execute<G: Guest>(
    guest: &G,
    ctx: &Context,
    pve: &Connection,
    node: &str,
    status: &mut G::Status,
    steps: Vec<Step>,
    drift: bool,
) -> Result<Progress, Error> {
    let (vmid, label) = (guest.vmid(), guest.label());
    let client = &pve.client;
    for step in steps {
        let started = match &step {
            Step::Configure { changes } => {
                let params: Params = changes
                    .iter()
                    .filter_map(|c| c.to.clone().map(|v| (c.key.clone(), v)))
                    .chain(deletions(std::slice::from_ref(&step)))
                    .collect();
                client.update_config(node, G::TYPE, vmid, &params).await?;
                let keys: Vec<String> = changes
                    .iter()
                    .filter(|c| c.key != "description")
                    .filter(|c| !super::plan::SECRET_KEYS.contains(&c.key.as_str()))
                    .map(|c| {
                        format!(
                            "{} {} → {}",
                            c.key,
                            c.from.as_deref().unwrap_or("<unset>"),
                            c.to.as_deref().unwrap_or("<unset>")
                        )
                    })
                    .collect();
                let (reason, what) = if drift {
                    ("DriftCorrected", "corrected out-of-band changes")
                } else {
                    ("Configured", "configured")
                };
                ctx.event(
                    guest,
                    EventType::Normal,
                    reason,
                    format!("{what}: {}", keys.join(", ")),
                )
                .await;
                continue;
            }
            Step::Start => {
                if let Some(waiting) = peers::startup_gate(guest, ctx).await? {
                    return Ok(waiting);
                }
                start_task(guest, ctx, pve, node, status, &step, Vec::new()).await?
            }
            // PVE locks a container template for the whole copy: one clone at a time. A
            // stopped VM template only takes a shared lock: its clones run in parallel.
            Step::Clone { source, .. } if G::TYPE == GuestType::Lxc => {
                let why = format!(
                    "queued: template {source} is being cloned (PVE locks it for the copy)"
                );
                let lock = queue(guest, ctx, pve.template_lock(*source), &why).await?;
                start_task(guest, ctx, pve, node, status, &step, vec![lock]).await?
            }
            Step::Destroy => {
                let clones = observe::linked_clones(client, vmid).await?;
                if !clones.is_empty() {
                    return Err(Error::conflict(
                        "TemplateInUse",
                        format!(
                            "{label} is the base of linked clones {clones:?}: its source changed, but the old generation stays until they are gone"
                        ),
                    ));
                }
                start_task(guest, ctx, pve, node, status, &step, Vec::new()).await?
            }
            _ => start_task(guest, ctx, pve, node, status, &step, Vec::new()).await?,
        };
        return Ok(started);
    }
    Ok(Progress::Waiting {
        reason: "Configured",
        message: format!("{label} configured"),
        retry: Duration::from_millis(100),
    })
}

/// The `delete` parameter for the keys `steps` remove (none: nothing).
fn deletions(steps: &[Step]) -> Option<(String, String)> {
    let keys: Vec<&str> = super::plan::changes(steps)
        .filter(|c| c.to.is_none())
        .map(|c| c.key.as_str())
        .collect();
    (!keys.is_empty()).then(|| ("delete".to_owned(), keys.join(",")))
}

/// Starts the PVE task of `step` within the node's budget, hands it to the tracker and
/// records its UPID.
async fn start_task<G: Guest>(
    guest: &G,
    ctx: &Context,
    pve: &Connection,
    node: &str,
    status: &mut G::Status,
    step: &Step,
    mut permits: Vec<tokio::sync::OwnedSemaphorePermit>,
) -> Result<Progress, Error> {
    let why = format!("queued: node {node} runs as many PVE tasks as its budget allows");
    permits.push(queue(guest, ctx, pve.budget(node), &why).await?);
    let (vmid, kind) = (guest.vmid(), G::TYPE);
    let client = &pve.client;
    let uid = guest.uid().unwrap_or_default();
    let upid = match step {
        Step::Create { params } => {
            let mut params: Params = params.clone().into_iter().collect();
            params.push(("vmid".into(), vmid.to_string()));
            client.create(node, kind, &params).await.map(Some)
        }
        Step::Clone { source, .. } => {
            let source_node = observe::locate(client, *source)
                .await?
                .map(|(n, _)| n)
                .unwrap_or_else(|| node.to_owned());
            let mut params = guest.clone_params(&uid);
            params.push(("newid".into(), vmid.to_string()));
            if source_node != node {
                params.push(("target".into(), node.to_owned()));
            }
            client
                .clone_guest(&source_node, kind, *source, &params)
                .await
                .map(Some)
        }
        Step::Resize { disk, size } => client.resize(node, kind, vmid, disk, size).await.map(Some),
        Step::Start => client.power(node, kind, vmid, "start").await.map(Some),
        Step::Restart => client.power(node, kind, vmid, "reboot").await.map(Some),
        Step::Stop => client.power(node, kind, vmid, "stop").await.map(Some),
        Step::Destroy => client.destroy(node, kind, vmid, false).await.map(Some),
        // Containers convert at once; VMs in a `qmtemplate` task.
        Step::Template => client.template(node, kind, vmid).await,
        Step::Download {
            storage,
            filename,
            url,
            checksum,
        } => client
            .download_url(node, storage, filename, url, checksum.as_deref())
            .await
            .map(Some),
        Step::Configure { .. } => unreachable_step(step),
    };
    let upid = match upid {
        Ok(Some(upid)) => upid,
        Ok(None) => {
            return Ok(Progress::Waiting {
                reason: step_reason(step),
                message: format!("{step}: done at once"),
                retry: Duration::from_millis(100),
            });
        }
        Err(e) if e.kind == ErrorKind::AlreadyExists => {
            // A create that reached PVE before a crash: observation takes it from here.
            return Ok(Progress::Waiting {
                reason: "Observing",
                message: format!("{} exists already; looking again", guest.label()),
                retry: SHORT,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let message = format!("{step} (task {})", upid.raw);
    guest.task_started(step, status);
    let observation = G::parts(status).1;
    observation.step = Some(step.name().into());
    observation.task_upid = Some(upid.raw.clone());
    ctx.tasks
        .follow(client.clone(), upid, permits, waker(ctx, guest));
    ctx.event(guest, EventType::Normal, step.name(), message.clone())
        .await;
    Ok(Progress::Working {
        reason: step_reason(step),
        message,
    })
}

fn unreachable_step(step: &Step) -> Result<Option<Upid>, ProxmoxError> {
    Err(ProxmoxError {
        kind: ErrorKind::Refused,
        status: None,
        message: format!("{} is not a task", step.name()),
        errors: BTreeMap::new(),
    })
}

fn step_reason(step: &Step) -> &'static str {
    match step {
        Step::Create { .. } => "Creating",
        Step::Clone { .. } => "Cloning",
        Step::Resize { .. } => "Resizing",
        Step::Start => "Starting",
        Step::Restart => "Restarting",
        Step::Stop => "Stopping",
        Step::Configure { .. } => "Configuring",
        Step::Template => "Converting",
        Step::Download { .. } => "Downloading",
        Step::Destroy => "Rebuilding",
    }
}

/// A permit of `semaphore`; when none is free, says so in the Ready condition first, so
/// `kubectl get` shows why the guest waits.
async fn queue<G: Guest>(
    guest: &G,
    ctx: &Context,
    semaphore: std::sync::Arc<tokio::sync::Semaphore>,
    why: &str,
) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
    if let Ok(permit) = semaphore.clone().try_acquire_owned() {
        return Ok(permit);
    }
    let previous = guest.status().cloned().unwrap_or_default();
    let mut status = previous.clone();
    crate::conditions::set(
        &mut G::parts(&mut status).0.conditions,
        "Ready",
        false,
        "Queued",
        why,
        guest.meta().generation,
        jiff::Timestamp::now(),
    );
    let api: kube::Api<G> =
        kube::Api::namespaced(ctx.kube.clone(), &guest.namespace().unwrap_or_default());
    let patch = crate::status::merge_patch(&previous, &status);
    api.patch_status(
        &guest.name_any(),
        &Default::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    semaphore
        .acquire_owned()
        .await
        .map_err(|_| Error::ClusterNotReady("the cluster connection was replaced".into()))
}
