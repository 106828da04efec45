//! Certificate: a certificate from Step-CA (or any ACME server with a pinned root), kept in
//! a `kubernetes.io/tls` Secret and renewed ahead of expiry, with cert-manager's
//! conditions: `Issuing` while a new certificate is being obtained (reasons
//! `DoesNotExist`, `Renewing`, `IncorrectCertificate`, or `Failed` when it did not work),
//! `Ready` when the Secret holds a current certificate for the spec.

pub mod acme;
pub mod http01;
pub mod install;
pub mod trigger;
pub mod x509;

use crate::conditions::{self, Standing, reason};
use crate::context::Context;
use crate::error::Error;
use crate::{dependencies, status};
use acme::{AcmeError, AcmeServer};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use phoenix_crds::ProxmoxCluster;
use phoenix_crds::certificate::{Certificate, CertificateStatus, RotationPolicy, Solver};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const KIND: &str = "Certificate";
const MANAGER: &str = "phoenix-certificates";

/// Where simulate mode sends ACME instead of the cluster's Step-CA (a pebble on loopback).
#[derive(Clone, Debug)]
pub struct AcmeRedirect {
    pub directory_url: String,
    pub roots_url: String,
    pub server_ca_pem: String,
}

/// The Certificate controller's own context: the ACME challenge responder and simulate
/// mode's ACME server. It derefs to the [`Context`] every controller shares.
pub struct CertificateContext {
    pub shared: Arc<Context>,
    pub challenges: Arc<http01::Challenges>,
    pub redirect: Option<AcmeRedirect>,
}

impl std::ops::Deref for CertificateContext {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.shared
    }
}

/// One pass: converge, record the outcome, write the status once (when it changed).
pub async fn reconcile(
    cert: Arc<Certificate>,
    ctx: Arc<CertificateContext>,
) -> Result<Action, Error> {
    ctx.metrics.reconciled(KIND);
    let api: Api<Certificate> =
        Api::namespaced(ctx.kube.clone(), &cert.namespace().unwrap_or_default());
    let mut status = cert.status.clone().unwrap_or_default();
    let outcome = converge(&cert, &ctx, &mut status).await;
    let action = finish(&cert, &ctx, &mut status, outcome).await;
    status::write(&api, &*cert, cert.status.as_ref(), &status).await?;
    Ok(action)
}

/// Where a pass left the certificate.
enum Pass {
    /// The Secret holds a current certificate; look again at `renew_in`, or sooner while
    /// install targets are waited for (`installing` names them).
    Current {
        renew_in: Duration,
        installing: Option<String>,
    },
    Waiting {
        reason: &'static str,
        message: String,
    },
}

async fn converge(
    cert: &Certificate,
    ctx: &CertificateContext,
    status: &mut CertificateStatus,
) -> Result<Pass, Error> {
    let namespace = cert.namespace().unwrap_or_default();
    if let Gate::Wait(message) = gate(cert, ctx, &namespace).await? {
        return Ok(Pass::Waiting {
            reason: reason::WAITING_FOR_DEPENDENCIES,
            message,
        });
    }
    if let Some(bad) = cert
        .spec
        .ip_addresses
        .iter()
        .find(|ip| ip.parse::<std::net::IpAddr>().is_err())
    {
        return Err(Error::spec(
            reason::INVALID_IP_ADDRESS,
            format!("spec.ipAddresses: {bad:?} is not an IP address"),
        ));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let existing = secrets.get_opt(&cert.spec.secret_name).await?;
    let current = existing
        .as_ref()
        .and_then(|s| text(s, "tls.crt"))
        .and_then(|pem| x509::parse(&pem));
    let now = jiff::Timestamp::now();
    let Some(why) = trigger::trigger(current.as_ref(), &cert.spec, now) else {
        let c = current.expect("a current certificate");
        record(status, &c, cert);
        ctx.metrics
            .certificate_expiry(&namespace, &cert.name_any(), c.not_after);
        conditions::remove(&mut status.common.conditions, conditions::ISSUING);
        status.failed_issuance_attempts = None;
        status.last_failure_time = None;
        let held = existing.as_ref().and_then(|s| {
            Some(Issued {
                chain_pem: text(s, "tls.crt")?,
                key_pem: text(s, "tls.key")?,
                root_pem: text(s, "ca.crt").unwrap_or_default(),
            })
        });
        let installing = match held {
            Some(held) => install::install(cert, ctx, &held, status).await?,
            None => None,
        };
        return Ok(Pass::Current {
            renew_in: until(trigger::renewal_time(&c, &cert.spec)),
            installing,
        });
    };
    conditions::set(
        &mut status.common.conditions,
        conditions::ISSUING,
        true,
        why.reason,
        &why.message,
        cert.metadata.generation,
        now,
    );
    ctx.event(
        cert,
        EventType::Normal,
        conditions::ISSUING,
        format!("{}: requesting a new certificate", why.message),
    )
    .await;
    let cluster = cluster(cert, ctx).await?;
    crate::cluster_policy::admit(&cluster, &namespace, &[])?;
    let server = server(cert, ctx, &cluster).await?;
    let issued = issue(cert, ctx, &server, existing.as_ref())
        .await
        .map_err(|e| Error::Acme {
            reason: e.category(),
            message: e.to_string(),
            permanent: e.is_permanent(),
        })?;
    let parsed = x509::parse(&issued.chain_pem).ok_or_else(|| Error::Acme {
        reason: reason::ACME_FAILED,
        message: "the CA returned an unreadable certificate".into(),
        permanent: false,
    })?;
    if !parsed.covers(&cert.spec.dns_names, &cert.spec.ip_addresses) {
        // Issuing again would only loop: the CA does not give what the spec asks.
        return Err(Error::Acme {
            reason: reason::CERTIFICATE_MISMATCH,
            message: "the CA issued a certificate without every name of the spec".into(),
            permanent: true,
        });
    }
    if cert.spec.issuer.acme.is_none() {
        publish(ctx, &cluster, &issued.root_pem).await?;
    }
    write_secret(cert, ctx, &issued, &issued.root_pem).await?;
    status.revision = Some(status.revision.unwrap_or(0) + 1);
    status.failed_issuance_attempts = None;
    status.last_failure_time = None;
    record(status, &parsed, cert);
    ctx.metrics
        .certificate_expiry(&namespace, &cert.name_any(), parsed.not_after);
    conditions::remove(&mut status.common.conditions, conditions::ISSUING);
    ctx.event(
        cert,
        EventType::Normal,
        "Issued",
        format!(
            "certificate {} issued, valid until {}",
            parsed.serial, parsed.not_after
        ),
    )
    .await;
    let installing = install::install(cert, ctx, &issued, status).await?;
    Ok(Pass::Current {
        renew_in: until(trigger::renewal_time(&parsed, &cert.spec)),
        installing,
    })
}

enum Gate {
    Open,
    Wait(String),
}

/// Everything `dependsOn` names must be Ready (e.g. the CA guest, 103).
async fn gate(cert: &Certificate, ctx: &Context, namespace: &str) -> Result<Gate, Error> {
    let mut waiting = Vec::new();
    for dep in &cert.spec.depends_on {
        let node = dependencies::node_of(dep, namespace);
        if !crate::readiness::is_ready(&ctx.kube, &node).await? {
            waiting.push(format!("{:?} {}/{}", node.0, node.1, node.2));
        }
    }
    Ok(if waiting.is_empty() {
        Gate::Open
    } else {
        Gate::Wait(format!("waiting for {} to be Ready", waiting.join(", ")))
    })
}

/// From now until `then` (zero when it has passed).
fn until(then: jiff::Timestamp) -> Duration {
    let seconds = then.as_second() - jiff::Timestamp::now().as_second();
    Duration::from_secs(seconds.max(0) as u64)
}

fn record(status: &mut CertificateStatus, c: &x509::Parsed, cert: &Certificate) {
    status.not_before = Some(c.not_before.to_string());
    status.not_after = Some(c.not_after.to_string());
    status.renewal_time = Some(trigger::renewal_time(c, &cert.spec).to_string());
    status.serial_number = Some(c.serial.clone());
}

/// The cluster a Certificate belongs to: its `issuer.clusterRef`, or the only one (with
/// several, the reference is required, as for guests).
async fn cluster(cert: &Certificate, ctx: &Context) -> Result<ProxmoxCluster, Error> {
    let clusters: Api<ProxmoxCluster> = Api::all(ctx.kube.clone());
    if let Some(r) = &cert.spec.issuer.cluster_ref {
        return clusters.get_opt(&r.name).await?.ok_or_else(|| {
            Error::spec(
                reason::NO_ISSUER,
                format!("ProxmoxCluster {} does not exist", r.name),
            )
        });
    }
    let mut all = clusters.list(&Default::default()).await?.items;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(Error::spec(
            reason::NO_ISSUER,
            "no ProxmoxCluster to take the Step-CA from",
        )),
        n => Err(Error::spec(
            reason::CLUSTER_REF_REQUIRED,
            format!("{n} ProxmoxClusters exist: set spec.issuer.clusterRef"),
        )),
    }
}

/// The ACME server of `cert`: its cluster's Step-CA, or its own `issuer.acme` when the
/// cluster allows that directory; in simulate mode the directory is pebble's (a
/// Certificate's own pin is kept).
async fn server(
    cert: &Certificate,
    ctx: &CertificateContext,
    cluster: &ProxmoxCluster,
) -> Result<AcmeServer, Error> {
    let issuer = &cert.spec.issuer;
    let step_ca = cluster.spec.acme.clone().ok_or_else(|| {
        Error::spec(
            reason::NO_ISSUER,
            "the ProxmoxCluster has no acme settings (Step-CA)",
        )
    })?;
    let mut server = match &issuer.acme {
        Some(acme) if !step_ca.allowed_directories.contains(&acme.directory_url) => {
            return Err(Error::spec(
                reason::ACME_DIRECTORY_NOT_ALLOWED,
                format!(
                    "issuer.acme.directoryUrl {} is not among the ACME directories ProxmoxCluster {} allows",
                    acme.directory_url,
                    cluster.name_any()
                ),
            ));
        }
        Some(acme) => AcmeServer {
            directory_url: acme.directory_url.clone(),
            roots_url: acme::step_ca_roots_url(&acme.directory_url),
            server_ca_pem: None,
            root_fingerprint: acme.root_fingerprint.clone(),
            email: acme.email.clone(),
        },
        None => AcmeServer {
            roots_url: acme::step_ca_roots_url(&step_ca.directory_url),
            directory_url: step_ca.directory_url,
            server_ca_pem: None,
            // Simulate mode: pebble's root is new at every start, so the cluster's
            // pin (of the real Step-CA) cannot hold; see below.
            root_fingerprint: Some(step_ca.root_fingerprint),
            email: step_ca.email,
        },
    };
    if ctx.pve.redirect().is_some() && ctx.redirect.is_none() {
        // Simulate mode never reaches the manifests' real CA.
        return Err(Error::spec(
            reason::NO_ACME_SERVER,
            "simulate mode has no ACME server: install pebble (apt-get install pebble)",
        ));
    }
    if server.root_fingerprint.is_none() && ctx.redirect.is_none() {
        return Err(Error::spec(
            reason::ROOT_NOT_PINNED,
            "issuer.acme.rootFingerprint is required: the CA root is pinned as `step ca bootstrap` does",
        ));
    }
    if let Some(r) = &ctx.redirect {
        server.directory_url = r.directory_url.clone();
        server.roots_url = r.roots_url.clone();
        server.server_ca_pem = Some(r.server_ca_pem.clone());
        if issuer.acme.is_none() {
            server.root_fingerprint = None;
        }
    }
    Ok(server)
}

/// A certificate as issued (or as the Secret holds it).
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
    /// The CA root (the Secret's `ca.crt`).
    pub root_pem: String,
}

async fn issue(
    cert: &Certificate,
    ctx: &CertificateContext,
    server: &AcmeServer,
    existing: Option<&Secret>,
) -> Result<Issued, AcmeError> {
    let root_pem = acme::fetch_root(server).await?;
    let namespace = cert.namespace().unwrap_or_default();
    let account_secret = acme::account_secret_name(&server.directory_url);
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let saved = secrets
        .get_opt(&account_secret)
        .await
        .map_err(|e| AcmeError::Unreachable(e.to_string()))?
        .and_then(|s| text(&s, "credentials.json"));
    let key = match (
        cert.spec.private_key.rotation_policy,
        existing.and_then(|s| text(s, "tls.key")),
    ) {
        (RotationPolicy::Never, Some(pem)) => {
            rcgen::KeyPair::from_pem(&pem).map_err(|e| AcmeError::Protocol(e.to_string()))?
        }
        _ => x509::new_key(&cert.spec.private_key).map_err(AcmeError::Protocol)?,
    };
    let common_name = cert.spec.common_name.as_deref();
    let identifiers = x509::identifiers(&cert.spec.dns_names, &cert.spec.ip_addresses, common_name);
    let mut saved = saved;
    // Once more with a new account when the CA has forgotten the saved one.
    loop {
        let (account, new_credentials) = acme::account(server, &root_pem, saved.as_deref()).await?;
        if let Some(credentials) = new_credentials {
            save_account(&secrets, &account_secret, server, credentials).await?;
        }
        match acme::issue(
            &account,
            solver(cert, ctx)?,
            &identifiers,
            common_name,
            &key,
        )
        .await
        {
            Err(AcmeError::AccountGone(why)) if saved.is_some() => {
                tracing::warn!(certificate = %cert.name_any(), "{why}; registering a new account");
                saved = None;
            }
            Err(e) => return Err(e),
            Ok(chain_pem) => {
                return Ok(Issued {
                    chain_pem,
                    key_pem: key.serialize_pem(),
                    root_pem,
                });
            }
        }
    }
}

/// The solver of `spec.issuer.solver`.
fn solver<'a>(
    cert: &Certificate,
    ctx: &'a CertificateContext,
) -> Result<&'a dyn acme::Solver, AcmeError> {
    match cert.spec.issuer.solver {
        Solver::Http01 => Ok(ctx.challenges.as_ref()),
        // Needs the dnsmasq host sync (TXT records on the platform's DNS), not built yet.
        Solver::Dns01 => Err(AcmeError::Unsupported(
            "the dns-01 solver needs the dnsmasq host sync, which is not built yet; use Http01"
                .into(),
        )),
    }
}

/// Keeps the account's credentials (its private key) in a Secret for the next issuance.
async fn save_account(
    secrets: &Api<Secret>,
    name: &str,
    server: &AcmeServer,
    credentials: String,
) -> Result<(), AcmeError> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("credentials.json".to_owned(), credentials),
            ("directory".to_owned(), server.directory_url.clone()),
        ])),
        ..Default::default()
    };
    secrets
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(|e| AcmeError::Unreachable(e.to_string()))?;
    Ok(())
}

/// Publishes the cluster's Step-CA root (the one pinned in the ProxmoxCluster, fetched
/// and checked against that pin) for the `trusted-ca` feature and Docker, under the
/// cluster's own key. Only certificates from the cluster's Step-CA publish: a root a
/// namespace's own issuer names never becomes the platform's.
async fn publish(ctx: &Context, cluster: &ProxmoxCluster, root_pem: &str) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.kube.clone(), crate::ca_root::NAMESPACE);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(crate::ca_root::CONFIGMAP.into()),
            namespace: Some(crate::ca_root::NAMESPACE.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            crate::ca_root::key(&cluster.name_any()),
            root_pem.to_owned(),
        )])),
        ..Default::default()
    };
    // Applied under a manager per cluster, so clusters' keys sit side by side.
    let manager = format!("{MANAGER}-{}", cluster.name_any());
    api.patch(
        crate::ca_root::CONFIGMAP,
        &PatchParams::apply(&manager).force(),
        &Patch::Apply(&cm),
    )
    .await?;
    Ok(())
}

async fn write_secret(
    cert: &Certificate,
    ctx: &Context,
    issued: &Issued,
    root: &str,
) -> Result<(), Error> {
    let namespace = cert.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let owner = cert.controller_owner_ref(&()).into_iter().collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(cert.spec.secret_name.clone()),
            namespace: Some(namespace),
            owner_references: Some(owner),
            annotations: Some(BTreeMap::from([(
                "phoenix.thinkheads.ai/certificate-name".to_owned(),
                cert.name_any(),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".to_owned(),
                ByteString(issued.chain_pem.clone().into_bytes()),
            ),
            (
                "tls.key".to_owned(),
                ByteString(issued.key_pem.clone().into_bytes()),
            ),
            ("ca.crt".to_owned(), ByteString(root.as_bytes().to_vec())),
        ])),
        ..Default::default()
    };
    secrets
        .patch(
            &cert.spec.secret_name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
    Ok(())
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let data = secret.data.as_ref()?.get(key)?;
    String::from_utf8(data.0.clone()).ok()
}

/// Conditions (Ready, Reconciling, Stalled, Issuing, Installed), events and when to look
/// again. A certificate still valid keeps serving (Ready stays True) while a renewal fails.
async fn finish(
    cert: &Certificate,
    ctx: &Context,
    status: &mut CertificateStatus,
    outcome: Result<Pass, Error>,
) -> Action {
    let now = jiff::Timestamp::now();
    let generation = cert.metadata.generation;
    status.common.observed_generation = generation;
    let conditions = &mut status.common.conditions;
    match outcome {
        Ok(Pass::Current {
            renew_in,
            installing,
        }) => {
            conditions::summarize(
                conditions,
                Standing::Ready,
                reason::CURRENT,
                "the certificate is current and matches the spec",
                generation,
                now,
            );
            let mut wait = renew_in.clamp(Duration::from_secs(1), Duration::from_secs(3600));
            match installing {
                Some(message) => {
                    conditions::set(
                        conditions,
                        conditions::INSTALLED,
                        false,
                        reason::WAITING_FOR_GUESTS,
                        &message,
                        generation,
                        now,
                    );
                    wait = wait.min(Duration::from_secs(30));
                }
                None if cert.spec.install.is_empty() => {
                    conditions::remove(conditions, conditions::INSTALLED)
                }
                None => conditions::set(
                    conditions,
                    conditions::INSTALLED,
                    true,
                    reason::INSTALLED,
                    "every install target holds the current certificate",
                    generation,
                    now,
                ),
            }
            Action::requeue(wait)
        }
        Ok(Pass::Waiting { reason, message }) => {
            let standing = Standing::InProgress;
            conditions::summarize(conditions, standing, reason, &message, generation, now);
            Action::requeue(Duration::from_secs(30))
        }
        Err(e) => failed(cert, ctx, status, e, now).await,
    }
}

/// A failed pass: `Issuing=False` with the error, Ready only when nothing valid is
/// served, an event when the failure is new, and a backoff kept in status (so it
/// survives restarts).
async fn failed(
    cert: &Certificate,
    ctx: &Context,
    status: &mut CertificateStatus,
    e: Error,
    now: jiff::Timestamp,
) -> Action {
    let generation = cert.metadata.generation;
    ctx.metrics.failed(KIND, e.category());
    let attempts = status.failed_issuance_attempts.unwrap_or(0) + 1;
    status.failed_issuance_attempts = Some(attempts);
    status.last_failure_time = Some(now.to_string());
    let conditions = &mut status.common.conditions;
    let message = e.to_string();
    let was_failed = conditions::find(conditions, conditions::ISSUING)
        .is_some_and(|c| c.reason == reason::ISSUE_FAILED && c.message == message);
    conditions::set(
        conditions,
        conditions::ISSUING,
        false,
        reason::ISSUE_FAILED,
        &message,
        generation,
        now,
    );
    if !conditions::is_true(conditions, conditions::READY) {
        conditions::summarize_failure(conditions, &e, generation, now);
    }
    if !was_failed {
        ctx.event(cert, EventType::Warning, e.category(), message.clone())
            .await;
    }
    // From seconds, doubling, capped at an hour (not cert-manager's 32 h).
    let wait =
        Duration::from_secs(2u64.saturating_pow(attempts.min(12))).min(Duration::from_secs(3600));
    tracing::warn!(certificate = %cert.name_any(), reason = e.category(), retry_in = ?wait, "{e}");
    Action::requeue(if e.is_permanent() {
        Duration::from_secs(300).max(wait)
    } else {
        wait
    })
}

/// Wakes nothing; errors are handled in `finish` (the backoff lives in status, so it
/// survives restarts).
pub fn error_policy(
    _cert: Arc<Certificate>,
    error: &Error,
    ctx: Arc<CertificateContext>,
) -> Action {
    ctx.metrics.failed(KIND, error.category());
    Action::requeue(Duration::from_secs(30))
}
