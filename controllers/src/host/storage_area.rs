//! The storage area performed, in the order things rest on each other: pools (PVE's API,
//! one `zfscreate` task at a time, followed across passes), datasets (one `zfs list`, then
//! `zfs create`/`zfs set` steps), NFS exports (Phoenix's exports file, `exportfs -ra`), and
//! the PVE storages on them. Each part waits for the one below it.

use super::exports::{self, EXPORTS_PATH};
use super::host_task::{self, TaskState};
use super::node_steps::{argv, step, write};
use super::storages::{self, StorageChange};
use super::zfs::{self, PoolPlan};
use super::{Area, HostPass};
use crate::conditions::reason;
use crate::error::Error;
use crate::hashing::sha256;
use kube::runtime::events::EventType;
use phoenix_crds::common::DriftPolicy;
use phoenix_crds::host_storage::{HostStorage, StorageStatus};
use reqwest::Method;

pub async fn reconcile(
    pass: &HostPass<'_>,
    spec: &HostStorage,
    converged_before: bool,
    status: &mut Option<StorageStatus>,
) -> Result<Area, Error> {
    let state = status.get_or_insert_with(Default::default);
    storages::validate(&spec.storages).map_err(|m| Error::spec(reason::INVALID_STORAGE, m))?;
    let report = converged_before && pass.drift_policy == DriftPolicy::Report;
    if let Some(waiting) = pools(pass, spec, report, state).await? {
        return Ok(waiting);
    }
    let observed = zfs::parse_list(
        &step(pass, "list datasets", zfs::list_command())
            .await?
            .output,
    );
    let plan = zfs::plan_datasets(&spec.datasets, &observed);
    let unknown: Vec<&String> = plan
        .waiting_for
        .iter()
        .filter(|p| !spec.zfs_pools.iter().any(|z| &z.name == *p))
        .collect();
    if let Some(pool) = unknown.first() {
        return Err(Error::spec(
            reason::POOL_NOT_FOUND,
            format!(
                "datasets name pool {pool}, which is neither on {} nor in spec.storage.zfsPools",
                pass.node
            ),
        ));
    }
    if !plan.waiting_for.is_empty() {
        return Ok(Area::working(
            reason::WAITING_FOR_POOL,
            format!(
                "datasets wait for pool {} on {}",
                plan.waiting_for.join(", "),
                pass.node
            ),
        ));
    }
    let mut drift = Vec::new();
    if !plan.changes.is_empty() {
        match report {
            true => drift.extend(plan.changes.iter().map(ToString::to_string)),
            false => datasets(pass, &plan.changes, converged_before).await?,
        }
    }
    state.datasets = spec.datasets.len() as u32;
    drift.extend(nfs(pass, spec, converged_before, state).await?);
    drift.extend(storages(pass, spec, report, state).await?);
    if !drift.is_empty() {
        return Ok(Area::drifted(format!(
            "storage of {} differs from the spec ({}); driftPolicy Report leaves it",
            pass.node,
            drift.join("; ")
        )));
    }
    Ok(Area::ready(
        reason::STORAGE_CONFIGURED,
        format!(
            "{} pools, {} datasets, {} exports and {} storages on {} as the spec says",
            state.pools.len(),
            state.datasets,
            state.exports,
            state.storages,
            pass.node
        ),
    ))
}

/// The spec's pools: `Some` while one is being created (or must be), else all present.
/// `report`: the area was converged and drift is only reported.
async fn pools(
    pass: &HostPass<'_>,
    spec: &HostStorage,
    report: bool,
    state: &mut StorageStatus,
) -> Result<Option<Area>, Error> {
    let creating = state.task.clone();
    match host_task::check(pass, &mut state.task, "create pool").await? {
        TaskState::Running => {
            let note = format!(
                "creating a ZFS pool on {} (task {})",
                pass.node,
                creating.unwrap_or_default()
            );
            return Ok(Some(Area::working(reason::POOL_CREATING, note)));
        }
        TaskState::Succeeded => {
            let note = format!("ZFS pool created on {}", pass.node);
            pass.event(EventType::Normal, reason::POOL_CREATED, note)
                .await;
        }
        TaskState::Failed(e) => return Err(e),
        TaskState::None => {}
    }
    let client = &pass.pve.client;
    let path = format!("/nodes/{}/disks/zfs", pass.node);
    let listed = client
        .call(Method::GET, &path, &[])
        .await
        .map_err(|e| Error::host_step("list pools", e))?;
    let present: Vec<&str> = listed
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    state.pools.clear();
    let mut disks = None;
    for pool in &spec.zfs_pools {
        let layout = match present.contains(&pool.name.as_str()) {
            true => {
                let detail = client
                    .call(Method::GET, &format!("{path}/{}", pool.name), &[])
                    .await
                    .map_err(|e| Error::host_step("read pool", e))?;
                if disks.is_none() {
                    let listed = client
                        .call(
                            Method::GET,
                            &format!("/nodes/{}/disks/list", pass.node),
                            &[],
                        )
                        .await
                        .map_err(|e| Error::host_step("list disks", e))?;
                    disks = Some(listed.as_array().cloned().unwrap_or_default());
                }
                Some(zfs::layout(&detail, disks.as_deref().unwrap_or_default()))
            }
            false => None,
        };
        match zfs::plan_pool(pool, layout.as_ref(), disks.as_deref().unwrap_or_default()) {
            PoolPlan::Present => state.pools.push(pool.name.clone()),
            PoolPlan::Differs(message) => {
                return Err(Error::spec(reason::POOL_LAYOUT_DIFFERS, message));
            }
            PoolPlan::Create(pool) if report => {
                return Ok(Some(Area::drifted(format!(
                    "pool {} is gone from {}; driftPolicy Report leaves it",
                    pool.name, pass.node
                ))));
            }
            PoolPlan::Create(pool) => {
                let step_name = format!("create pool {}", pool.name);
                let upid = client
                    .upid(Method::POST, &path, &pool_params(pool))
                    .await
                    .map_err(|e| Error::host_step(&step_name, e))?;
                let note = format!(
                    "creating ZFS pool {} ({} of {}) on {}",
                    pool.name,
                    pool.raid_level.as_str(),
                    pool.devices.join(", "),
                    pass.node
                );
                host_task::started(pass, &mut state.task, upid);
                pass.event(EventType::Normal, reason::POOL_CREATING, note.clone())
                    .await;
                return Ok(Some(Area::working(reason::POOL_CREATING, note)));
            }
        }
    }
    Ok(None)
}

fn pool_params(pool: &phoenix_crds::host_storage::ZfsPool) -> Vec<(String, String)> {
    let mut params = vec![
        ("name".to_owned(), pool.name.clone()),
        ("raidlevel".into(), pool.raid_level.as_str().into()),
        ("devices".into(), pool.devices.join(",")),
        ("add_storage".into(), u8::from(pool.add_storage).to_string()),
    ];
    if let Some(ashift) = pool.ashift {
        params.push(("ashift".into(), ashift.to_string()));
    }
    if let Some(compression) = pool.compression {
        let text = serde_json::to_value(compression).unwrap_or_default();
        params.push(("compression".into(), text.as_str().unwrap_or("on").into()));
    }
    params
}

async fn datasets(
    pass: &HostPass<'_>,
    changes: &[zfs::DatasetChange],
    converged_before: bool,
) -> Result<(), Error> {
    for change in changes {
        step(pass, &change.to_string(), change.command()).await?;
    }
    let described: Vec<String> = changes.iter().map(ToString::to_string).collect();
    let why = match converged_before {
        true => reason::DRIFT_CORRECTED,
        false => reason::DATASETS_UPDATED,
    };
    let note = format!("datasets on {}: {}", pass.node, described.join("; "));
    pass.event(EventType::Normal, why, note).await;
    Ok(())
}

/// Phoenix's exports file and the exported set; what drifted (left as `driftPolicy`
/// says), if anything.
async fn nfs(
    pass: &HostPass<'_>,
    spec: &HostStorage,
    converged_before: bool,
    state: &mut StorageStatus,
) -> Result<Option<String>, Error> {
    state.exports = spec.nfs_exports.len() as u32;
    if spec.nfs_exports.is_empty() && state.applied_exports.is_none() {
        return Ok(None);
    }
    let probe = format!("sha256sum {EXPORTS_PATH} 2>/dev/null || true");
    let out = step(pass, "read exports", argv(&["sh", "-c", &probe])).await?;
    let on_node = out.output.split_whitespace().next().map(str::to_owned);
    if spec.nfs_exports.is_empty() {
        step(pass, "remove exports", argv(&["rm", "-f", EXPORTS_PATH])).await?;
        step(pass, "reload exports", argv(&["exportfs", "-ra"])).await?;
        state.applied_exports = None;
        return Ok(None);
    }
    let content = exports::render(&pass.name, &spec.nfs_exports);
    let wanted = sha256(&content);
    if on_node.as_deref() == Some(wanted.as_str()) {
        // In place; exported too, unless the reload after writing it failed.
        if state.applied_exports.as_deref() != Some(wanted.as_str()) {
            step(pass, "reload exports", argv(&["exportfs", "-ra"])).await?;
            state.applied_exports = Some(wanted);
        }
        return Ok(None);
    }
    let changed_outside = converged_before && state.applied_exports.as_deref() == Some(&wanted);
    if changed_outside && pass.drift_policy == DriftPolicy::Report {
        return Ok(Some(format!("{EXPORTS_PATH} was changed")));
    }
    // Until the reload has worked, what is on the node is not known to be exported.
    state.applied_exports = None;
    write(pass, "write exports", EXPORTS_PATH, &content, 0o644).await?;
    step(pass, "reload exports", argv(&["exportfs", "-ra"])).await?;
    state.applied_exports = Some(wanted);
    let why = match changed_outside {
        true => reason::DRIFT_CORRECTED,
        false => reason::EXPORTS_UPDATED,
    };
    let note = format!(
        "{} exports on {} written and reloaded",
        state.exports, pass.node
    );
    pass.event(EventType::Normal, why, note).await;
    Ok(None)
}

/// The spec's PVE storages; what drifted (left under `report`), if anything.
async fn storages(
    pass: &HostPass<'_>,
    spec: &HostStorage,
    report: bool,
    state: &mut StorageStatus,
) -> Result<Option<String>, Error> {
    state.storages = spec.storages.len() as u32;
    if spec.storages.is_empty() {
        return Ok(None);
    }
    let client = &pass.pve.client;
    let live = client
        .call(Method::GET, "/storage", &[])
        .await
        .map_err(|e| Error::host_step("list storages", e))?;
    let live = live.as_array().cloned().unwrap_or_default();
    let changes = storages::plan(&spec.storages, &live, &pass.node)
        .map_err(|m| Error::spec(reason::STORAGE_MISMATCH, m))?;
    let described: Vec<String> = changes.iter().map(ToString::to_string).collect();
    if report && !changes.is_empty() {
        return Ok(Some(described.join("; ")));
    }
    for change in &changes {
        let (method, path, params, name) = match change {
            StorageChange::Create { id, params } => (
                Method::POST,
                "/storage".to_owned(),
                params,
                format!("add storage {id}"),
            ),
            StorageChange::Update { id, params } => (
                Method::PUT,
                format!("/storage/{id}"),
                params,
                format!("update storage {id}"),
            ),
        };
        client
            .call(method, &path, params)
            .await
            .map_err(|e| Error::host_step(&name, e))?;
    }
    if !changes.is_empty() {
        pass.event(
            EventType::Normal,
            reason::STORAGES_UPDATED,
            described.join("; "),
        )
        .await;
    }
    Ok(None)
}
