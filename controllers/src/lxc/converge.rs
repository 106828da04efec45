//! One pass towards the spec: gates (VMID claim, dependencies, cluster), the task in
//! flight, observation, ownership, preflight checks, then the plan's next steps.

use super::observe::{self, Live, Ownership};
use super::plan::{self, Observed, Step};
use super::{Progress, placement, render, waker};
use crate::claims::{self, Claim};
use crate::context::Context;
use crate::dependencies::{self, Gate};
use crate::error::Error;
use crate::pve::Connection;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use phoenix_clients::proxmox::{GuestType, Params, ProxmoxError, TaskOutcome, Upid};
use phoenix_crds::LxcGuest;
use phoenix_crds::common::{DriftPolicy, PhoenixKind, RestartPolicy};
use phoenix_crds::lxc::LxcGuestStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(2);

pub async fn converge(
    guest: &LxcGuest,
    ctx: &Context,
    status: &mut LxcGuestStatus,
) -> Result<Progress, Error> {
    let spec = &guest.spec;
    let uid = guest.uid().unwrap_or_default();
    check_claim(guest, ctx)?;
    if let Some(waiting) = dependency_gate(guest, ctx).await? {
        return Ok(waiting);
    }
    let pve = ctx
        .pve
        .get(spec.common.cluster_ref.as_ref().map(|r| r.name.as_str()))
        .await?;
    if let Some(progress) = task_in_flight(guest, ctx, &pve, status).await? {
        return Ok(progress);
    }
    let peers = anti_affinity_peers(guest, ctx);
    let node = placement::choose_node(
        &spec.common,
        &pve.cluster,
        status.guest.node.as_deref(),
        &peers,
    )?;
    placement::check_memory(&spec.common, &pve.cluster)?;
    status.guest.vmid = Some(spec.vmid);
    let live = observe::find(&pve.client, &node, spec.vmid).await?;
    status.guest.node = Some(live.as_ref().map_or(node.clone(), |l| l.node.clone()));
    let Some(live) = live else {
        status.guest.state = None;
        status.guest.ip = None;
        status.guest.ips.clear();
        preflight(guest, ctx, &pve, &node).await?;
        let steps = plan::plan(spec, &uid, None);
        return execute(guest, ctx, &pve, &node, status, steps, false).await;
    };
    status.guest.state = Some(state_of(&live));
    // Clones lock a template for their whole copy: that is not a lock to wait for.
    if let Some(lock) = live.lock().filter(|_| !live.is_template()) {
        return Ok(Progress::Waiting {
            reason: "Locked",
            message: format!(
                "PVE holds the lock {lock:?} on CT {}; waiting for it to clear",
                spec.vmid
            ),
            retry: SHORT,
        });
    }
    let adopted = match live.ownership(&uid) {
        Ownership::Ours => false,
        Ownership::Other(owner) => {
            return Err(Error::conflict(
                "VmidOwnedByAnother",
                format!(
                    "CT {} belongs to another Phoenix object (uid {owner})",
                    spec.vmid
                ),
            ));
        }
        Ownership::Unmarked if !spec.common.adopt => {
            return Err(Error::conflict(
                "VmidInUse",
                format!(
                    "CT {} exists on node {} and was not created by Phoenix; set spec.adopt: true to take it over",
                    spec.vmid, live.node
                ),
            ));
        }
        Ownership::Unmarked => true,
    };
    if live.is_template() && spec.template {
        return ready(guest, &pve, &live, status).await;
    }
    if live.is_template() && !spec.template {
        return Err(Error::spec(
            "IsTemplate",
            format!(
                "CT {} is a template; set spec.template: true or use another vmid",
                spec.vmid
            ),
        ));
    }
    let observed = Observed {
        config: live.config.clone(),
        running: live.running,
    };
    let steps = plan::plan(spec, &uid, Some(&observed));
    if adopted {
        return adopt(guest, ctx, &pve, &live, &steps).await;
    }
    let drift = guest.metadata.generation == status.common.observed_generation;
    let steps = apply_policies(guest, ctx, status, steps, drift, live.running).await;
    if spec.template
        && super::inside::wanted(guest)
        && let Some(progress) = provision_template(guest, ctx, &pve, &live, status, &steps).await?
    {
        return Ok(progress);
    }
    if steps.is_empty() {
        let progress = ready(guest, &pve, &live, status).await?;
        if !matches!(progress, Progress::Ready { .. }) || live.is_template() {
            return Ok(progress);
        }
        return super::inside::provisioned(guest, ctx, &pve, &live.node, status, progress).await;
    }
    execute(guest, ctx, &pve, &live.node, status, steps, drift).await
}

/// A template is provisioned before it is converted: configured, started, its features
/// applied, then stopped and converted (the plan's last steps). `None`: go on with them.
async fn provision_template(
    guest: &LxcGuest,
    ctx: &Context,
    pve: &Connection,
    live: &Live,
    status: &mut LxcGuestStatus,
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
        &guest.spec.common,
        &pve.cluster,
        &status.guest,
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

/// Another object asking for the same VMID: the older one holds it.
fn check_claim(guest: &LxcGuest, ctx: &Context) -> Result<(), Error> {
    let claims: Vec<Claim> = ctx
        .lxc_guests
        .state()
        .iter()
        .map(|g| Claim {
            vmid: g.spec.vmid,
            owner: format!(
                "LxcGuest {}/{}",
                g.namespace().unwrap_or_default(),
                g.name_any()
            ),
            created: g
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
            uid: g.uid().unwrap_or_default(),
        })
        .collect();
    match claims::holder(guest.spec.vmid, &claims) {
        Some(holder) if Some(&holder.uid) != guest.uid().as_ref() => Err(Error::conflict(
            "VmidClaimed",
            format!(
                "VMID {} is already claimed by {}",
                guest.spec.vmid, holder.owner
            ),
        )),
        _ => Ok(()),
    }
}

/// Waits for `dependsOn` to be Ready; a cycle is a permanent error. The graph comes from
/// the cache; readiness is read fresh, as the cache may lag the change that woke us.
async fn dependency_gate(guest: &LxcGuest, ctx: &Context) -> Result<Option<Progress>, Error> {
    if guest.spec.common.depends_on.is_empty() {
        return Ok(None);
    }
    let node_of = |g: &LxcGuest| {
        (
            PhoenixKind::LxcGuest,
            g.namespace().unwrap_or_default(),
            g.name_any(),
        )
    };
    let all = ctx.lxc_guests.state();
    let mut graph = BTreeMap::new();
    let mut ready = BTreeSet::new();
    for g in all.iter().map(|g| g.as_ref()).chain([guest]) {
        let namespace = g.namespace().unwrap_or_default();
        let deps = g
            .spec
            .common
            .depends_on
            .iter()
            .map(|d| dependencies::node_of(d, &namespace))
            .collect();
        graph.insert(node_of(g), deps);
    }
    let namespace = guest.namespace().unwrap_or_default();
    for dependency in &guest.spec.common.depends_on {
        let node = dependencies::node_of(dependency, &namespace);
        if crate::readiness::is_ready(&ctx.kube, &node).await? {
            ready.insert(node);
        }
    }
    match dependencies::gate(&node_of(guest), &graph, &ready) {
        Gate::Open => Ok(None),
        Gate::Waiting(names) => Ok(Some(Progress::Waiting {
            reason: "WaitingForDependencies",
            message: format!("waiting for {} to be Ready", names.join(", ")),
            // Dependencies wake their dependents; this is a safety net.
            retry: ctx.resync,
        })),
        Gate::Cycle(path) => Err(Error::spec(
            "DependencyCycle",
            format!("dependsOn forms a cycle: {}", path.join(" → ")),
        )),
    }
}

/// Where the guests of the same anti-affinity group run.
fn anti_affinity_peers(guest: &LxcGuest, ctx: &Context) -> Vec<String> {
    let group = guest
        .spec
        .common
        .placement
        .as_ref()
        .and_then(|p| p.anti_affinity_group.as_ref());
    let Some(group) = group else {
        return Vec::new();
    };
    ctx.lxc_guests
        .state()
        .iter()
        .filter(|g| g.uid() != guest.uid())
        .filter(|g| {
            g.spec
                .common
                .placement
                .as_ref()
                .and_then(|p| p.anti_affinity_group.as_ref())
                == Some(group)
        })
        .filter_map(|g| g.status.as_ref().and_then(|s| s.guest.node.clone()))
        .collect()
}

/// The task of a previous pass: still running (the tracker will wake us), failed (an
/// error, retried with backoff), or done (go on).
async fn task_in_flight(
    guest: &LxcGuest,
    ctx: &Context,
    pve: &Connection,
    status: &mut LxcGuestStatus,
) -> Result<Option<Progress>, Error> {
    let Some(raw) = status.guest.task_upid.clone() else {
        return Ok(None);
    };
    let Some(upid) = Upid::parse(&raw) else {
        status.guest.task_upid = None;
        return Ok(None);
    };
    let outcome = match pve.client.task(&upid).await {
        Ok(task) => task.outcome(),
        // Forgotten by the node: observation decides what happened.
        Err(e) if e.kind == phoenix_clients::proxmox::ErrorKind::NotFound => TaskOutcome::Succeeded,
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
            let step = status.guest.step.clone().unwrap_or_else(|| "task".into());
            Ok(Some(Progress::Working {
                reason: "TaskRunning",
                message: format!("{step}: waiting for PVE task {raw}"),
            }))
        }
        TaskOutcome::Succeeded => {
            status.guest.task_upid = None;
            Ok(None)
        }
        TaskOutcome::Failed(exitstatus) => {
            status.guest.task_upid = None;
            status.guest.step = None;
            Err(Error::TaskFailed {
                upid: raw,
                exitstatus,
            })
        }
    }
}

/// Checks made before creating anything: the template or clone source exists (and is a
/// template). Each failure is a condition with a reason, and no PVE write.
async fn preflight(
    guest: &LxcGuest,
    ctx: &Context,
    pve: &Connection,
    node: &str,
) -> Result<(), Error> {
    let source = &guest.spec.source;
    if let Some(ostemplate) = &source.ostemplate {
        let storage = ostemplate.split(':').next().unwrap_or_default();
        let volumes = match pve.client.storage_content(node, storage, "vztmpl").await {
            Ok(v) => v,
            Err(e) if e.kind == phoenix_clients::proxmox::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        if !volumes.contains(ostemplate) {
            return Err(Error::spec(
                "TemplateNotFound",
                format!("{ostemplate} is not on storage {storage} of node {node}"),
            ));
        }
    }
    if let Some(clone) = &source.clone {
        let coming = ctx
            .lxc_guests
            .state()
            .iter()
            .any(|g| g.spec.vmid == clone.vmid && g.spec.template);
        let Some((source_node, kind)) = observe::locate(&pve.client, clone.vmid).await? else {
            return if coming {
                Err(waiting_source(clone.vmid))
            } else {
                Err(Error::spec(
                    "CloneSourceNotFound",
                    format!("clone source {} does not exist", clone.vmid),
                ))
            };
        };
        if kind != "lxc" {
            return Err(Error::spec(
                "CloneSourceNotTemplate",
                format!(
                    "clone source {} is a VM, not a container template",
                    clone.vmid
                ),
            ));
        }
        let config = pve
            .client
            .config(&source_node, GuestType::Lxc, clone.vmid)
            .await?;
        if config.get("template").is_none_or(|t| t != "1") {
            return if coming {
                Err(waiting_source(clone.vmid))
            } else {
                Err(Error::spec(
                    "CloneSourceNotTemplate",
                    format!(
                        "clone source {} is not a template (convert it first)",
                        clone.vmid
                    ),
                ))
            };
        }
    }
    Ok(())
}

/// A clone source that an LxcGuest object will provide: transient, retried.
fn waiting_source(vmid: u32) -> Error {
    Error::Proxmox(ProxmoxError {
        kind: phoenix_clients::proxmox::ErrorKind::Transient,
        status: None,
        message: format!(
            "clone source {vmid} is not a template yet; its LxcGuest is still converging"
        ),
        errors: BTreeMap::new(),
    })
}

/// `driftPolicy: Report` keeps out-of-band changes (reported, not reverted);
/// `restartPolicy: Never` keeps the restart out of the plan (reported).
async fn apply_policies(
    guest: &LxcGuest,
    ctx: &Context,
    status: &mut LxcGuestStatus,
    mut steps: Vec<Step>,
    drift: bool,
    running: bool,
) -> Vec<Step> {
    let common = &guest.spec.common;
    let generation = guest.metadata.generation;
    let now = jiff::Timestamp::now();
    let conditions = &mut status.common.conditions;
    if drift && common.drift_policy == DriftPolicy::Report && !steps.is_empty() {
        let message = format!(
            "live state differs from the spec (not corrected, driftPolicy: Report): {}",
            steps
                .iter()
                .map(|s| s.to_string().replace('\n', " "))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let known = conditions
            .iter()
            .any(|c| c.type_ == "Drifted" && c.message == message);
        crate::conditions::set(
            conditions,
            "Drifted",
            true,
            "DriftDetected",
            &message,
            generation,
            now,
        );
        if !known {
            ctx.event(guest, EventType::Warning, "DriftDetected", message)
                .await;
        }
        return Vec::new();
    }
    conditions.retain(|c| c.type_ != "Drifted");
    if common.restart_policy == RestartPolicy::Never && steps.contains(&Step::Restart) {
        steps.retain(|s| *s != Step::Restart);
        let keys: Vec<&str> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Configure { changes } => Some(changes),
                _ => None,
            })
            .flatten()
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

/// Converged: Ready once running with a known address (a template once converted).
async fn ready(
    guest: &LxcGuest,
    pve: &Connection,
    live: &Live,
    status: &mut LxcGuestStatus,
) -> Result<Progress, Error> {
    if live.is_template() {
        return Ok(Progress::Ready {
            reason: "Template",
            message: format!("CT {} is a template on {}", guest.spec.vmid, live.node),
        });
    }
    if !live.running {
        // Only reached when the plan may not start it (drift reported).
        return Ok(Progress::Waiting {
            reason: "Stopped",
            message: format!("CT {} is stopped", guest.spec.vmid),
            retry: Duration::from_secs(60),
        });
    }
    let interfaces = pve
        .client
        .lxc_interfaces(&live.node, guest.spec.vmid)
        .await?;
    let ips = observe::first_address(&interfaces);
    let Some(ip) = ips.first().cloned() else {
        return Ok(Progress::Waiting {
            reason: "WaitingForAddress",
            message: format!("CT {} runs; waiting for its address", guest.spec.vmid),
            retry: SHORT,
        });
    };
    status.guest.ip = Some(ip.clone());
    status.guest.ips = ips;
    Ok(Progress::Ready {
        reason: "Running",
        message: format!("CT {} runs on {} at {ip}", guest.spec.vmid, live.node),
    })
}

/// Takes over an unmarked guest that matches: writes the marker (and the live-applicable
/// differences) without restarting it.
async fn adopt(
    guest: &LxcGuest,
    ctx: &Context,
    pve: &Connection,
    live: &Live,
    steps: &[Step],
) -> Result<Progress, Error> {
    let vmid = guest.spec.vmid;
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
                "CT {vmid} does not match the spec, not adopted: {}",
                mismatch.join("; ")
            ),
        ));
    }
    let uid = guest.uid().unwrap_or_default();
    let desired = render::config(&guest.spec, &uid);
    let params: Params = steps
        .iter()
        .filter_map(|s| match s {
            Step::Configure { changes } => Some(changes),
            _ => None,
        })
        .flatten()
        .filter_map(|c| c.to.clone().map(|v| (c.key.clone(), v)))
        .chain(["tags", "description"].map(|k| (k.to_string(), desired[k].clone())))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    pve.client
        .update_config(&live.node, GuestType::Lxc, vmid, &params)
        .await?;
    let message = format!("adopted CT {vmid} on {} without restarting it", live.node);
    ctx.event(guest, EventType::Normal, "Adopted", message.clone())
        .await;
    Ok(Progress::Waiting {
        reason: "Adopted",
        message,
        retry: Duration::from_millis(100),
    })
}

/// Runs the plan: synchronous steps in turn, up to the first that starts a PVE task.
async fn execute(
    guest: &LxcGuest,
    ctx: &Context,
    pve: &Connection,
    node: &str,
    status: &mut LxcGuestStatus,
    steps: Vec<Step>,
    drift: bool,
) -> Result<Progress, Error> {
    let vmid = guest.spec.vmid;
    let client = &pve.client;
    for step in steps {
        let started = match &step {
            Step::Configure { changes } => {
                let params: Params = changes
                    .iter()
                    .filter_map(|c| c.to.clone().map(|v| (c.key.clone(), v)))
                    .collect();
                client
                    .update_config(node, GuestType::Lxc, vmid, &params)
                    .await?;
                let keys: Vec<String> = changes
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {} → {}",
                            c.key,
                            c.from.as_deref().unwrap_or("<unset>"),
                            c.to.as_deref().unwrap_or("<unset>")
                        )
                    })
                    .filter(|c| !c.starts_with("description"))
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
            Step::Template => {
                client.template(node, GuestType::Lxc, vmid).await?;
                return Ok(Progress::Waiting {
                    reason: "Converting",
                    message: format!("converting CT {vmid} into a template"),
                    retry: Duration::from_millis(500),
                });
            }
            Step::Start => {
                if let Some(waiting) = startup_gate(guest, ctx).await? {
                    return Ok(waiting);
                }
                start_task(guest, ctx, pve, node, status, &step, Vec::new()).await?
            }
            Step::Clone { source, .. } => {
                let why = format!(
                    "queued: template {source} is being cloned (PVE locks it for the copy)"
                );
                let lock = queue(guest, ctx, pve.template_lock(*source), &why).await?;
                start_task(guest, ctx, pve, node, status, &step, vec![lock]).await?
            }
            _ => start_task(guest, ctx, pve, node, status, &step, Vec::new()).await?,
        };
        return Ok(started);
    }
    Ok(Progress::Waiting {
        reason: "Configured",
        message: format!("CT {vmid} configured"),
        retry: Duration::from_millis(100),
    })
}

/// Starts the PVE task of `step` within the node's budget, hands it to the tracker and
/// records its UPID.
async fn start_task(
    guest: &LxcGuest,
    ctx: &Context,
    pve: &Connection,
    node: &str,
    status: &mut LxcGuestStatus,
    step: &Step,
    mut permits: Vec<tokio::sync::OwnedSemaphorePermit>,
) -> Result<Progress, Error> {
    let why = format!("queued: node {node} runs as many PVE tasks as its budget allows");
    permits.push(queue(guest, ctx, pve.budget(node), &why).await?);
    let vmid = guest.spec.vmid;
    let client = &pve.client;
    let uid = guest.uid().unwrap_or_default();
    let upid = match step {
        Step::Create { params } => {
            let mut params: Params = params.clone().into_iter().collect();
            params.push(("vmid".into(), vmid.to_string()));
            client.create(node, GuestType::Lxc, &params).await
        }
        Step::Clone { source, full } => {
            let source_node = observe::locate(client, *source)
                .await?
                .map(|(n, _)| n)
                .unwrap_or_else(|| node.to_owned());
            let mut params: Params = vec![
                ("newid".into(), vmid.to_string()),
                ("hostname".into(), guest.spec.hostname.clone()),
                ("description".into(), render::owner_marker(&uid)),
                ("full".into(), if *full { "1" } else { "0" }.into()),
            ];
            if let (true, Some(storage)) = (
                *full,
                guest
                    .spec
                    .source
                    .clone
                    .as_ref()
                    .and_then(|c| c.storage.clone()),
            ) {
                params.push(("storage".into(), storage));
            }
            if let Some(pool) = &guest.spec.common.pool {
                params.push(("pool".into(), pool.clone()));
            }
            if source_node != node {
                params.push(("target".into(), node.to_owned()));
            }
            client
                .clone_guest(&source_node, GuestType::Lxc, *source, &params)
                .await
        }
        Step::Resize { disk, size } => client.resize(node, GuestType::Lxc, vmid, disk, size).await,
        Step::Start => client.power(node, GuestType::Lxc, vmid, "start").await,
        Step::Restart => client.power(node, GuestType::Lxc, vmid, "reboot").await,
        Step::Stop => client.power(node, GuestType::Lxc, vmid, "stop").await,
        Step::Configure { .. } | Step::Template => unreachable_step(step),
    };
    let upid = match upid {
        Ok(upid) => upid,
        Err(e) if e.kind == phoenix_clients::proxmox::ErrorKind::AlreadyExists => {
            // A create that reached PVE before a crash: observation takes it from here.
            return Ok(Progress::Waiting {
                reason: "Observing",
                message: format!("CT {vmid} exists already; looking again"),
                retry: SHORT,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let message = format!("{step} (task {})", upid.raw);
    status.guest.step = Some(step.name().into());
    status.guest.task_upid = Some(upid.raw.clone());
    ctx.tasks
        .follow(client.clone(), upid, permits, waker(ctx, guest));
    ctx.event(guest, EventType::Normal, step.name(), message.clone())
        .await;
    Ok(Progress::Working {
        reason: step_reason(step),
        message,
    })
}

fn unreachable_step(step: &Step) -> Result<Upid, ProxmoxError> {
    Err(ProxmoxError {
        kind: phoenix_clients::proxmox::ErrorKind::Refused,
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
    }
}

/// Guests with a lower `startup.order` start first, as PVE boots them. Read fresh: the
/// cache may lag the change that woke us.
async fn startup_gate(guest: &LxcGuest, ctx: &Context) -> Result<Option<Progress>, Error> {
    let Some(mine) = guest.spec.common.startup.as_ref().and_then(|s| s.order) else {
        return Ok(None);
    };
    let all = kube::Api::<LxcGuest>::all(ctx.kube.clone())
        .list(&Default::default())
        .await?;
    let earlier: Vec<String> = all
        .items
        .iter()
        .filter(|g| !g.spec.template && g.metadata.deletion_timestamp.is_none())
        .filter(|g| {
            g.spec
                .common
                .startup
                .as_ref()
                .and_then(|s| s.order)
                .is_some_and(|o| o < mine)
        })
        .filter(|g| {
            let status = g.status.as_ref();
            let running = status.and_then(|s| s.guest.state.as_deref()) == Some("running");
            let stuck = status
                .is_some_and(|s| crate::conditions::is_true(&s.common.conditions, "Degraded"));
            !running && !stuck
        })
        .map(|g| g.name_any())
        .collect();
    if earlier.is_empty() {
        return Ok(None);
    }
    Ok(Some(Progress::Waiting {
        reason: "WaitingForStartupOrder",
        message: format!("starts after {} (lower startup order)", earlier.join(", ")),
        retry: ctx.resync,
    }))
}

/// A permit of `semaphore`; when none is free, says so in the Ready condition first, so
/// `kubectl get` shows why the guest waits.
async fn queue(
    guest: &LxcGuest,
    ctx: &Context,
    semaphore: std::sync::Arc<tokio::sync::Semaphore>,
    why: &str,
) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
    if let Ok(permit) = semaphore.clone().try_acquire_owned() {
        return Ok(permit);
    }
    let mut status = guest.status.clone().unwrap_or_default();
    crate::conditions::set(
        &mut status.common.conditions,
        "Ready",
        false,
        "Queued",
        why,
        guest.metadata.generation,
        jiff::Timestamp::now(),
    );
    let api: kube::Api<LxcGuest> =
        kube::Api::namespaced(ctx.kube.clone(), &guest.namespace().unwrap_or_default());
    let patch = crate::status::merge_patch(&guest.status.clone().unwrap_or_default(), &status);
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
