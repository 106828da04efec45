//! In-guest provisioning, shared by containers and VMs: the features of
//! `spec.provisioning` applied once per content hash (recorded in status and in a marker
//! file in the guest), snapshots around them, and health checks.
//!
//! A pass walks the features in catalog order. A feature whose hash status records is
//! done. Otherwise the guest's marker is read (a run may have completed while Phoenix was
//! down); failing that, the files are pushed and the script is started in the background
//! ([`runs`]), and the pass returns: the run wakes the guest when it ends.

pub mod catalog;
pub mod direct;
pub mod health;
pub mod runs;
pub mod snapshots;

use crate::ca_root;
use crate::context::Context;
use crate::error::Error;
use catalog::{Feature, Inputs, Missing};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use phoenix_clients::exec::{ExecOutput, GuestShell};
use phoenix_clients::proxmox::{GuestType, ProxmoxClient};
use phoenix_crds::common::{AppliedFeature, GuestObservation, Provisioning};
use phoenix_crds::guest::GuestCommon;
use phoenix_crds::{Certificate, ProxmoxCluster};
use runs::RunState;
use std::sync::Arc;
use std::time::Duration;

/// How long one feature script may run (package installs, model downloads).
const FEATURE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Short exec calls: markers, pushes.
pub const QUICK: Duration = Duration::from_secs(30);

/// Where provisioning stands after a pass.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every feature is applied.
    Done,
    /// A feature's script runs; its end wakes the guest.
    Running { feature: String },
    /// A feature cannot be rendered yet.
    Waiting(Missing),
}

/// One guest as provisioning sees it.
pub struct Target<'a, K> {
    pub object: &'a K,
    pub common: &'a GuestCommon,
    pub cluster: &'a ProxmoxCluster,
    pub shell: GuestShell,
    pub pve: ProxmoxClient,
    pub node: String,
    pub vmid: u32,
    pub kind: GuestType,
    /// "CT 801" / "VM 1001", for messages.
    pub label: String,
}

impl<K: Resource<DynamicType = ()> + ResourceExt> Target<'_, K> {
    fn key(&self, feature: &Feature, hash: &str) -> String {
        format!(
            "{}/{}/{}",
            self.object.uid().unwrap_or_default(),
            feature.name,
            hash
        )
    }
}

/// Applies the next pending feature (or takes the result of the one running).
pub async fn provision<K>(
    ctx: &Context,
    runs: &Arc<runs::Runs>,
    target: &Target<'_, K>,
    observation: &mut GuestObservation,
    wake: impl FnOnce() + Send + 'static,
) -> Result<Outcome, Error>
where
    K: Resource<DynamicType = ()> + ResourceExt,
{
    let Some(spec) = &target.common.provisioning else {
        observation.features.clear();
        return Ok(Outcome::Done);
    };
    let namespace = target.object.namespace().unwrap_or_default();
    let inputs = inputs(ctx, &namespace, spec, target.cluster).await?;
    let features = match catalog::features(spec, &inputs) {
        Ok(features) => features,
        Err(missing) => return Ok(Outcome::Waiting(missing)),
    };
    // Features no longer in the spec are no longer reported.
    observation
        .features
        .retain(|a| features.iter().any(|f| f.name == a.name));
    for feature in &features {
        let hash = feature.hash();
        if applied(observation, &feature.name) == Some(hash.as_str()) {
            continue;
        }
        let key = target.key(feature, &hash);
        match runs.poll(&key) {
            RunState::Running => {
                return Ok(Outcome::Running {
                    feature: feature.name.clone(),
                });
            }
            RunState::Finished(Ok(out)) if out.success() => {
                runs.succeeded(&key);
                record(ctx, target, observation, feature, &hash, "applied").await;
            }
            RunState::Finished(Ok(out)) => {
                let failed = failure(feature, &out);
                let error =
                    snapshots::rollback_after_failure(ctx, target, &feature.name, &hash, failed)
                        .await;
                let rolled_back = match &error {
                    Error::RolledBack { message } => Some(message.clone()),
                    _ => None,
                };
                runs.failed(&key, out, rolled_back);
                return Err(error);
            }
            RunState::Finished(Err(e)) => return Err(e.into()),
            RunState::Idle => {
                if let Some(hold) = runs.held(&key) {
                    return Err(match hold.rolled_back {
                        Some(message) => Error::RolledBack { message },
                        None => failure(feature, &hold.output),
                    });
                }
                if marker(&target.shell, feature).await?.as_deref() == Some(hash.as_str()) {
                    record(ctx, target, observation, feature, &hash, "found applied").await;
                    continue;
                }
                let changed = applied(observation, &feature.name).is_some();
                snapshots::before_change(ctx, target, observation, feature, &hash, changed).await?;
                start(ctx, runs, target, feature, &hash, wake).await?;
                return Ok(Outcome::Running {
                    feature: feature.name.clone(),
                });
            }
        }
    }
    Ok(Outcome::Done)
}

/// Whether status records every feature of the spec at its current hash (asked while
/// the guest cannot be reached, e.g. a stopped template).
pub async fn all_recorded(
    ctx: &Context,
    namespace: &str,
    common: &GuestCommon,
    cluster: &ProxmoxCluster,
    observation: &GuestObservation,
) -> Result<bool, Error> {
    let Some(spec) = &common.provisioning else {
        return Ok(true);
    };
    let inputs = inputs(ctx, namespace, spec, cluster).await?;
    Ok(catalog::features(spec, &inputs).is_ok_and(|features| {
        features
            .iter()
            .all(|f| applied(observation, &f.name) == Some(f.hash().as_str()))
    }))
}

fn applied<'a>(observation: &'a GuestObservation, name: &str) -> Option<&'a str> {
    observation
        .features
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.hash.as_str())
}

async fn record<K>(
    ctx: &Context,
    target: &Target<'_, K>,
    observation: &mut GuestObservation,
    feature: &Feature,
    hash: &str,
    how: &str,
) where
    K: Resource<DynamicType = ()> + ResourceExt,
{
    observation.features.retain(|a| a.name != feature.name);
    observation.features.push(AppliedFeature {
        name: feature.name.clone(),
        hash: hash.to_owned(),
        applied_at: Some(jiff::Timestamp::now().to_string()),
    });
    ctx.event(
        target.object,
        EventType::Normal,
        crate::conditions::reason::FEATURE_APPLIED,
        format!(
            "feature {} {how} in {} ({hash})",
            feature.name, target.label
        ),
    )
    .await;
}

/// The hash the guest's marker holds for `feature`, if any.
async fn marker(shell: &GuestShell, feature: &Feature) -> Result<Option<String>, Error> {
    let out = shell
        .exec(&["cat".to_owned(), feature.marker()], QUICK)
        .await?;
    Ok(out.success().then(|| out.output.trim().to_owned()))
}

/// Pushes the feature's files and script and starts the script under its lock.
async fn start<K>(
    ctx: &Context,
    runs: &Arc<runs::Runs>,
    target: &Target<'_, K>,
    feature: &Feature,
    hash: &str,
    wake: impl FnOnce() + Send + 'static,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + ResourceExt,
{
    let shell = &target.shell;
    for file in &feature.files {
        shell
            .push(&file.path, file.content.as_bytes(), file.mode, QUICK)
            .await?;
    }
    shell
        .push(
            &feature.script_path(),
            feature.script().as_bytes(),
            "0700",
            QUICK,
        )
        .await?;
    ctx.event(
        target.object,
        EventType::Normal,
        crate::conditions::reason::FEATURE_APPLYING,
        format!(
            "applying feature {} in {} ({hash})",
            feature.name, target.label
        ),
    )
    .await;
    let argv = vec![
        "flock".to_owned(),
        feature.lock_path(),
        "sh".into(),
        feature.script_path(),
    ];
    let shell = shell.clone();
    runs.start(
        target.key(feature, hash),
        async move { shell.exec(&argv, FEATURE_TIMEOUT).await },
        wake,
    );
    Ok(())
}

fn failure(feature: &Feature, out: &ExecOutput) -> Error {
    Error::FeatureFailed {
        feature: feature.name.clone(),
        step: catalog::failing_step(&out.output).unwrap_or_else(|| "prepare".into()),
        exit_code: out.exit_code,
        tail: out.tail(5),
    }
}

/// Reads what the features need from the API: the CA root, Step-CA's address, custom
/// scripts and TLS key pairs.
async fn inputs(
    ctx: &Context,
    namespace: &str,
    spec: &Provisioning,
    cluster: &ProxmoxCluster,
) -> Result<Inputs, Error> {
    let mut inputs = Inputs::default();
    let docker_tls = spec
        .docker
        .as_ref()
        .is_some_and(|d| d.tls_certificate_ref.is_some());
    if docker_tls {
        inputs.docker_client_ca = Some(crate::docker_client_ca::certificate(&ctx.kube).await?);
    }
    if spec.trusted_ca.is_some() {
        let reference = spec
            .trusted_ca
            .as_ref()
            .and_then(|t| t.config_map_ref.as_ref());
        let own_key = ca_root::key(&cluster.metadata.name.clone().unwrap_or_default());
        let (ns, name, key) = match reference {
            Some(r) => (namespace, r.name.as_str(), r.key.as_str()),
            None => (ca_root::NAMESPACE, ca_root::CONFIGMAP, own_key.as_str()),
        };
        inputs.ca_root = config_map_key(ctx, ns, name, key).await?;
    }
    if let Some(acme) = &cluster.spec.acme {
        // `step ca bootstrap` wants the CA's base URL, not the ACME directory.
        let base = acme
            .directory_url
            .split("/acme/")
            .next()
            .unwrap_or(&acme.directory_url)
            .to_owned();
        inputs.step_ca = Some((base, acme.root_fingerprint.clone()));
    }
    for custom in &spec.custom {
        if let Some(script) =
            config_map_key(ctx, namespace, &custom.script.name, &custom.script.key).await?
        {
            inputs
                .custom_scripts
                .insert(format!("custom-{}", custom.name), script);
        }
    }
    let certificates = [
        spec.docker
            .as_ref()
            .and_then(|d| d.tls_certificate_ref.as_ref()),
        spec.vllm
            .as_ref()
            .and_then(|v| v.tls_certificate_ref.as_ref()),
        spec.traefik
            .as_ref()
            .and_then(|t| t.certificate_ref.as_ref()),
    ];
    for reference in certificates.into_iter().flatten() {
        if let Some(pair) = tls_pair(ctx, namespace, &reference.name).await? {
            inputs.tls.insert(reference.name.clone(), pair);
        }
    }
    Ok(inputs)
}

async fn config_map_key(
    ctx: &Context,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>, Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.kube.clone(), namespace);
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|cm| cm.data?.get(key).cloned()))
}

/// The certificate chain and key the Certificate `name` has issued, once it has.
async fn tls_pair(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<(String, String)>, Error> {
    let certificates: Api<Certificate> = Api::namespaced(ctx.kube.clone(), namespace);
    let Some(certificate) = certificates.get_opt(name).await? else {
        return Ok(None);
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), namespace);
    let Some(secret) = secrets.get_opt(&certificate.spec.secret_name).await? else {
        return Ok(None);
    };
    let text = |key: &str| crate::pve::secret_text(&secret, key);
    Ok(text("tls.crt").zip(text("tls.key")))
}
