//! TraefikService: one route on the internal Traefik (LXC 102). A pass checks what would
//! make the route wrong for everyone (a host and path another route holds, a middleware
//! Traefik does not have, a backend URL it would mangle, a certificate for other names),
//! waits for what it needs (its dependencies, the backend's address, the Certificate,
//! Traefik's guest), writes the route's one document and certificate files into the
//! directory Traefik watches, and is Ready when a request for its host through Traefik
//! gets an answer from the backend.

pub mod decide;
pub mod gateway;
pub mod guest_files;
pub mod probe;
pub mod publish;
pub mod render;
pub mod schema;

use crate::conditions::{self, Standing, reason};
use crate::context::Context;
use crate::error::Error;
use crate::{finalizers, status};
use decide::Claim;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use phoenix_crds::certificate::Certificate;
use phoenix_crds::common::GuestKind;
use phoenix_crds::traefik_service::{RouteCheck, TraefikService, TraefikServiceStatus};
use phoenix_crds::{LxcGuest, VmGuest};
use render::{Route, TlsPair};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub const KIND: &str = "TraefikService";
pub const FINALIZER: &str = "phoenix.thinkheads.ai/route";
/// Traefik's `websecure` entry point on its guest.
const TRAEFIK_PORT: u16 = 443;
/// How soon to look again after writing, or while the route does not answer yet.
const SOON: Duration = Duration::from_secs(3);
/// How soon to look again while something else is waited for.
const LATER: Duration = Duration::from_secs(15);

/// The shared context, and where the gateway sends ACME's HTTP-01 challenges.
pub struct RouteContext {
    pub shared: Arc<Context>,
    pub acme_upstream: Option<SocketAddr>,
}

impl std::ops::Deref for RouteContext {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.shared
    }
}

/// Where a pass left the route.
enum Pass {
    Ready(String),
    Waiting {
        reason: &'static str,
        message: String,
        retry: Duration,
    },
}

fn waiting(reason: &'static str, message: String) -> Pass {
    Pass::Waiting {
        reason,
        message,
        retry: LATER,
    }
}

/// One pass: remove or converge, record the outcome, write the status once.
pub async fn reconcile(
    route: Arc<TraefikService>,
    ctx: Arc<RouteContext>,
) -> Result<Action, Error> {
    ctx.metrics.reconciled(KIND);
    let namespace = route.namespace().unwrap_or_default();
    let api: Api<TraefikService> = Api::namespaced(ctx.kube.clone(), &namespace);
    if route.metadata.deletion_timestamp.is_some() {
        return remove(&route, &ctx, &api).await;
    }
    finalizers::add(&api, &*route, FINALIZER).await?;
    let mut status = route.status.clone().unwrap_or_default();
    let outcome = converge(&route, &ctx, &mut status).await;
    let action = finish(&route, &ctx, &mut status, outcome).await;
    status::write(&api, &*route, route.status.as_ref(), &status).await?;
    Ok(action)
}

async fn converge(
    route: &TraefikService,
    ctx: &RouteContext,
    status: &mut TraefikServiceStatus,
) -> Result<Pass, Error> {
    let namespace = route.namespace().unwrap_or_default();
    let spec = &route.spec;
    if let Some(message) =
        crate::readiness::unready_dependencies(&ctx.kube, &spec.depends_on, &namespace).await?
    {
        return Ok(waiting(reason::WAITING_FOR_DEPENDENCIES, message));
    }
    refuse_conflicts(route, ctx).await?;
    if let Some(name) = decide::unknown_middleware(&spec.middlewares) {
        return Err(Error::spec(
            reason::UNKNOWN_MIDDLEWARE,
            format!(
                "spec.middlewares: Traefik has no middleware {name:?}; Phoenix's Traefik defines {}",
                render::KNOWN_MIDDLEWARES.join(", ")
            ),
        ));
    }
    let server = match backend(route, ctx, &namespace).await? {
        Ok(server) => server,
        Err(pass) => return Ok(pass),
    };
    status.backend = Some(server.clone());
    let pair = match certificate(route, ctx, &namespace, status).await? {
        Ok(pair) => pair,
        Err(pass) => return Ok(pass),
    };
    let traefik = &spec.traefik_ref.name;
    let traefik_hop = traefik_address(ctx, &namespace, traefik).await?;
    let object = format!("{namespace}/{}", route.name_any());
    let id = route_id(route);
    let route_files = Route {
        id: id.clone(),
        host: spec.host.clone(),
        path_prefix: spec.path_prefix.clone(),
        server: server.clone(),
        middlewares: spec.middlewares.clone(),
        tls: pair.is_some(),
        root: String::new(),
    };
    schema::check(&render::document(&route_files)).map_err(|refused| {
        Error::spec(
            reason::INVALID_ROUTE_DOCUMENT,
            format!("Traefik's schema refuses the route's document, nothing written: {refused}"),
        )
    })?;
    let mut wanted = publish::Wanted {
        traefik: render::files(&route_files, &object, pair.as_ref()),
        gateway: None,
    };
    let (hop, chain) = match spec.public {
        false => (
            traefik_hop,
            format!("traefik {} → {server}", traefik_hop.ip()),
        ),
        true => {
            let Some(pair) = &pair else {
                return Err(Error::spec(
                    reason::MISSING_CERTIFICATE,
                    "spec.public: the gateway terminates TLS with the route's certificate; set spec.tls.certificateRef",
                ));
            };
            let gateway = &spec.gateway_ref.name;
            let Some(ip) = guest_address(ctx, &namespace, GuestKind::LxcGuest, gateway).await?
            else {
                let message = format!("LxcGuest {namespace}/{gateway} reports no address yet");
                return Ok(waiting(reason::WAITING_FOR_GATEWAY, message));
            };
            let public = gateway::PublicRoute {
                id: &id,
                host: &spec.host,
                path_prefix: &spec.path_prefix,
                traefik: traefik_hop,
                acme_responder: ctx.acme_upstream,
                root: "",
                listen: gateway::Listen::PLATFORM,
            };
            wanted.gateway = Some(publish::GatewayFiles::new(&public, &object, pair));
            let hop = SocketAddr::new(ip, gateway::Listen::PLATFORM.https);
            let chain = format!("gateway {ip} → traefik {} → {server}", traefik_hop.ip());
            (hop, chain)
        }
    };
    let written = match publish::write(route, ctx, &wanted, status).await? {
        publish::Wrote::Nothing => false,
        publish::Wrote::Files => true,
        publish::Wrote::Blocked(reason, why) => return Ok(waiting(reason, why)),
    };
    status.url = Some(format!("https://{}{}", spec.host, spec.path_prefix));
    status.chain = Some(chain);
    let root = pair.as_ref().map(|p| p.root.as_str());
    let answer = probe::through(ctx.pve.redirect(), hop, &spec.host, &spec.path_prefix, root).await;
    record_check(status, &answer);
    Ok(match (answer.from_backend(), written) {
        (true, _) => Pass::Ready(answer.message),
        // Traefik reloads a changed directory within a couple of seconds.
        (false, true) => Pass::Waiting {
            reason: reason::ROUTE_NOT_ANSWERING,
            message: format!("route written; {}", answer.message),
            retry: SOON,
        },
        (false, false) => Pass::Waiting {
            reason: reason::ROUTE_NOT_ANSWERING,
            message: answer.message,
            retry: SOON,
        },
    })
}

/// The check's answer in status, dated when it first came back so: an unchanged answer
/// leaves the status as it was (no write, no watch event at every pass).
fn record_check(status: &mut TraefikServiceStatus, answer: &probe::Answer) {
    let same = status
        .last_check
        .as_ref()
        .is_some_and(|c| c.status == answer.status && c.message == answer.message);
    if !same {
        status.last_check = Some(RouteCheck {
            time: jiff::Timestamp::now().to_string(),
            status: answer.status,
            message: answer.message.clone(),
        });
    }
}

/// `<namespace>_<name>`: the route's files and Traefik names.
fn route_id(route: &TraefikService) -> String {
    format!(
        "{}_{}",
        route.namespace().unwrap_or_default(),
        route.name_any()
    )
}

/// `HostConflict` when an older route serves the same host and path on the same Traefik.
async fn refuse_conflicts(route: &TraefikService, ctx: &Context) -> Result<(), Error> {
    let all: Api<TraefikService> = Api::all(ctx.kube.clone());
    let claims: Vec<Claim> = all
        .list(&Default::default())
        .await?
        .items
        .iter()
        .map(claim)
        .collect();
    match decide::holder(&claim(route), &claims) {
        None => Ok(()),
        Some(holder) => Err(Error::spec(
            reason::HOST_CONFLICT,
            format!(
                "{}{} on {} is served by TraefikService {}/{}, which claimed it first",
                route.spec.host,
                route.spec.path_prefix,
                holder.traefik,
                holder.namespace,
                holder.name
            ),
        )),
    }
}

fn claim(route: &TraefikService) -> Claim {
    let namespace = route.namespace().unwrap_or_default();
    Claim {
        traefik: format!("{namespace}/{}", route.spec.traefik_ref.name),
        namespace,
        name: route.name_any(),
        host: route.spec.host.clone(),
        path_prefix: route.spec.path_prefix.clone(),
        created: route.metadata.creation_timestamp.as_ref().map(|t| t.0),
    }
}

/// The backend's server URL, or a wait while its guest has no address yet.
async fn backend(
    route: &TraefikService,
    ctx: &Context,
    namespace: &str,
) -> Result<Result<String, Pass>, Error> {
    let backend = &route.spec.backend;
    if let Some(url) = &backend.url {
        let server = decide::url_server(url)
            .map_err(|e| Error::spec(reason::INVALID_BACKEND, format!("spec.backend.url: {e}")))?;
        return Ok(Ok(server));
    }
    let (Some(guest), Some(port)) = (&backend.guest_ref, backend.port) else {
        return Err(Error::spec(
            reason::INVALID_BACKEND,
            "spec.backend: a guestRef with a port, or a url",
        ));
    };
    let address = guest_address(ctx, namespace, guest.kind, &guest.name).await?;
    Ok(match address {
        Some(ip) => Ok(decide::guest_server(backend.scheme, ip, port)),
        None => Err(waiting(
            reason::WAITING_FOR_ADDRESS,
            format!(
                "{:?} {namespace}/{} reports no address yet",
                guest.kind, guest.name
            ),
        )),
    })
}

/// The primary address a guest reports (`status.guest.ip`).
async fn guest_address(
    ctx: &Context,
    namespace: &str,
    kind: GuestKind,
    name: &str,
) -> Result<Option<IpAddr>, Error> {
    let observed = match kind {
        GuestKind::LxcGuest => Api::<LxcGuest>::namespaced(ctx.kube.clone(), namespace)
            .get_opt(name)
            .await?
            .and_then(|g| g.status?.guest.ip),
        GuestKind::VmGuest => Api::<VmGuest>::namespaced(ctx.kube.clone(), namespace)
            .get_opt(name)
            .await?
            .and_then(|g| g.status?.guest.ip),
    };
    Ok(observed.and_then(|ip| ip.split('/').next()?.parse().ok()))
}

/// Traefik's entry point: its guest's address, port 443.
async fn traefik_address(ctx: &Context, namespace: &str, name: &str) -> Result<SocketAddr, Error> {
    match guest_address(ctx, namespace, GuestKind::LxcGuest, name).await? {
        Some(ip) => Ok(SocketAddr::new(ip, TRAEFIK_PORT)),
        None => Err(Error::Input {
            reason: reason::WAITING_FOR_TRAEFIK,
            message: format!("LxcGuest {namespace}/{name} reports no address"),
        }),
    }
}

/// The route's certificate when it names one: Ready, issued for the route's host.
async fn certificate(
    route: &TraefikService,
    ctx: &Context,
    namespace: &str,
    status: &mut TraefikServiceStatus,
) -> Result<Result<Option<TlsPair>, Pass>, Error> {
    let Some(tls) = &route.spec.tls else {
        return Ok(Ok(None));
    };
    let name = &tls.certificate_ref.name;
    let certificates: Api<Certificate> = Api::namespaced(ctx.kube.clone(), namespace);
    let found = certificates.get_opt(name).await?;
    let ready = found.as_ref().is_some_and(|c| {
        let conditions = c
            .status
            .as_ref()
            .map(|s| &s.common.conditions[..])
            .unwrap_or(&[]);
        conditions::is_true(conditions, conditions::READY)
    });
    let secret = match (found, ready) {
        (Some(c), true) => {
            Api::<Secret>::namespaced(ctx.kube.clone(), namespace)
                .get_opt(&c.spec.secret_name)
                .await?
        }
        _ => None,
    };
    let text = |key: &str| {
        secret
            .as_ref()
            .and_then(|s| crate::pve::secret_text(s, key))
    };
    let (Some(chain), Some(key), Some(root)) = (text("tls.crt"), text("tls.key"), text("ca.crt"))
    else {
        let message =
            format!("Certificate {namespace}/{name} is not Ready (or its Secret not written)");
        return Ok(Err(waiting(reason::WAITING_FOR_CERTIFICATE, message)));
    };
    let parsed = crate::certificate::x509::parse(&chain).ok_or_else(|| {
        Error::spec(
            reason::CERTIFICATE_MISMATCH,
            format!("Certificate {namespace}/{name}: its Secret holds no readable certificate"),
        )
    })?;
    if !decide::covers(&parsed.dns_names, &route.spec.host) {
        return Err(Error::spec(
            reason::CERTIFICATE_MISMATCH,
            format!(
                "Certificate {namespace}/{name} is for {} and does not cover {}",
                parsed.dns_names.join(", "),
                route.spec.host
            ),
        ));
    }
    status.certificate_not_after = Some(parsed.not_after.to_string());
    Ok(Ok(Some(TlsPair { chain, key, root })))
}

/// Conditions, events and when to look again, from the pass's outcome.
async fn finish(
    route: &TraefikService,
    ctx: &Context,
    status: &mut TraefikServiceStatus,
    outcome: Result<Pass, Error>,
) -> Action {
    let now = jiff::Timestamp::now();
    let generation = route.metadata.generation;
    status.common.observed_generation = generation;
    let key = format!(
        "{KIND}/{}/{}",
        route.namespace().unwrap_or_default(),
        route.name_any()
    );
    let conditions = &mut status.common.conditions;
    let (standing, reason, message, retry) = match outcome {
        Ok(Pass::Ready(message)) => (
            Standing::Ready,
            reason::ROUTE_ANSWERING,
            message,
            ctx.resync,
        ),
        Ok(Pass::Waiting {
            reason,
            message,
            retry,
        }) => (Standing::InProgress, reason, message, retry),
        Err(e) => {
            return ctx
                .failed(route, (KIND, &key), conditions, generation, &e)
                .await;
        }
    };
    ctx.succeeded(&key);
    conditions::summarize(conditions, standing, reason, &message, generation, now);
    Action::requeue(retry)
}

/// Deletion: the route's files removed from Traefik's guest, then the finalizer. A guest
/// that cannot be entered (gone, stopped, not Phoenix's) keeps whatever it holds, said in
/// an event: the route's deletion never waits for a guest that may not come back.
async fn remove(
    route: &TraefikService,
    ctx: &Context,
    api: &Api<TraefikService>,
) -> Result<Action, Error> {
    let written = route
        .status
        .as_ref()
        .is_some_and(|s| s.config_hash.is_some());
    if written {
        for removal in publish::remove(route, ctx, &route_id(route)).await? {
            let kind = match removal.left {
                true => EventType::Warning,
                false => EventType::Normal,
            };
            ctx.event(route, kind, reason::ROUTE_REMOVED, removal.note)
                .await;
        }
    }
    finalizers::remove(api, route, FINALIZER).await?;
    Ok(Action::await_change())
}

/// Errors are handled in `finish` (conditions, events, backoff); a failure to write the
/// status itself is retried shortly.
pub fn error_policy(_route: Arc<TraefikService>, error: &Error, ctx: Arc<RouteContext>) -> Action {
    ctx.metrics.failed(KIND, error.category());
    Action::requeue(LATER)
}
