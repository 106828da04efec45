//! The system area performed: each feature of `system::features` applied once per content
//! hash (recorded in status and in a marker on the node). A feature's script runs in the
//! background under its lock ([`Runs`]); the pass returns, and the run's end wakes the
//! host. A failed run names its feature and step and is retried after a growing pause.

use super::node_steps::{argv, step, write};
use super::system;
use super::{Area, HostPass};
use crate::conditions::reason;
use crate::error::Error;
use crate::node_exec;
use crate::provision::catalog::{self, Feature};
use crate::provision::runs::{RunState, Runs};
use kube::ResourceExt;
use kube::runtime::events::EventType;
use phoenix_clients::exec::{ExecError, ExecOutput};
use phoenix_crds::common::AppliedFeature;
use phoenix_crds::host_system::{HostSystem, SystemStatus};
use std::sync::Arc;
use std::time::Duration;

/// How long one feature script may run on the node (package installs, a driver build).
const FEATURE_TIMEOUT: Duration = Duration::from_secs(3600);

pub async fn reconcile(
    pass: &HostPass<'_>,
    spec: &HostSystem,
    runs: &Arc<Runs>,
    status: &mut Option<SystemStatus>,
) -> Result<Area, Error> {
    let features = system::features(spec);
    let recorded = &mut status.get_or_insert_with(Default::default).features;
    recorded.retain(|a| features.iter().any(|f| f.name == a.name));
    for feature in &features {
        let hash = feature.hash();
        if recorded
            .iter()
            .any(|a| a.name == feature.name && a.hash == hash)
        {
            continue;
        }
        let key = format!(
            "{}/{}/{hash}",
            pass.host.uid().unwrap_or_default(),
            feature.name
        );
        match runs.poll(&key) {
            RunState::Running => return Ok(applying(pass, feature)),
            RunState::Finished(Ok(out)) if out.success() => {
                runs.succeeded(&key);
                record(pass, recorded, feature, &hash, "applied").await;
                continue;
            }
            RunState::Finished(Ok(out)) => {
                let error = failure(feature, &out);
                runs.failed(&key, out, None);
                return Err(error);
            }
            RunState::Finished(Err(e)) => return Err(Error::host_step(&feature.name, e)),
            RunState::Idle => {
                if let Some(hold) = runs.held(&key) {
                    return Err(failure(feature, &hold.output));
                }
                if marker(pass, feature).await?.as_deref() != Some(hash.as_str()) {
                    start(pass, runs, feature, key).await?;
                    return Ok(applying(pass, feature));
                }
                // A run that ended while nobody watched (Phoenix restarted).
                record(pass, recorded, feature, &hash, "found applied").await;
            }
        }
    }
    let names: Vec<&str> = features.iter().map(|f| f.name.as_str()).collect();
    Ok(Area::ready(
        reason::FEATURES_APPLIED,
        format!(
            "{} on {}: [{}] applied",
            "system",
            pass.node,
            names.join(", ")
        ),
    ))
}

fn applying(pass: &HostPass<'_>, feature: &Feature) -> Area {
    Area::working(
        reason::APPLYING,
        format!("applying {} on {}", feature.name, pass.node),
    )
}

async fn record(
    pass: &HostPass<'_>,
    recorded: &mut Vec<AppliedFeature>,
    feature: &Feature,
    hash: &str,
    how: &str,
) {
    recorded.retain(|a| a.name != feature.name);
    recorded.push(AppliedFeature {
        name: feature.name.clone(),
        hash: hash.to_owned(),
        applied_at: Some(jiff::Timestamp::now().to_string()),
    });
    let note = format!("{} {how} on {} ({hash})", feature.name, pass.node);
    pass.event(EventType::Normal, reason::FEATURE_APPLIED, note)
        .await;
}

/// The hash the node's marker holds for `feature`, if any.
async fn marker(pass: &HostPass<'_>, feature: &Feature) -> Result<Option<String>, Error> {
    let probe = format!("cat {} 2>/dev/null || true", feature.marker());
    let out = step(pass, "read marker", argv(&["sh", "-c", &probe])).await?;
    let hash = out.output.trim();
    Ok((!hash.is_empty()).then(|| hash.to_owned()))
}

/// Puts the feature's files and script on the node and starts the script under its lock.
async fn start(
    pass: &HostPass<'_>,
    runs: &Arc<Runs>,
    feature: &Feature,
    key: String,
) -> Result<(), Error> {
    for file in &feature.files {
        let mode = u32::from_str_radix(file.mode, 8).unwrap_or(0o644);
        let name = format!("{} file {}", feature.name, file.path);
        write(pass, &name, &file.path, &file.content, mode).await?;
    }
    let name = format!("{} script", feature.name);
    write(
        pass,
        &name,
        &feature.script_path(),
        &feature.script(),
        0o700,
    )
    .await?;
    let command = argv(&["flock", &feature.lock_path(), "sh", &feature.script_path()]);
    let (kube, pve, node) = (pass.ctx.kube.clone(), pass.pve.clone(), pass.node.clone());
    let redirect = pass.ctx.pve.redirect().cloned();
    let work = async move {
        node_exec::run(
            &kube,
            &pve,
            redirect.as_ref(),
            &node,
            &command,
            FEATURE_TIMEOUT,
        )
        .await
        .map_err(|e| ExecError::Refused(e.to_string()))
    };
    runs.start(key, work, pass.waker());
    let note = format!("applying {} on {}", feature.name, pass.node);
    pass.event(EventType::Normal, reason::FEATURE_APPLYING, note)
        .await;
    Ok(())
}

/// A failed run: the feature and the step it stopped in.
fn failure(feature: &Feature, out: &ExecOutput) -> Error {
    let step = catalog::failing_step(&out.output).unwrap_or_else(|| "prepare".into());
    Error::host_step_exit(&format!("{} {step}", feature.name), out)
}
