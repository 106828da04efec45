//! Phoenix's controllers: one module per kind, each a kube-runtime `Controller` with one
//! reconcile function, plus the machinery they share. Controllers only speak the Kubernetes
//! API and the clients in `phoenix-clients`, so the same code runs embedded under
//! `phoenix up` and inside k3s (`phoenix controller`).

pub mod ca_root;
pub mod certificate;
pub mod claims;
pub mod cluster_access;
pub mod cluster_policy;
pub mod cluster_view;
pub mod conditions;
pub mod context;
pub mod datacenter_firewall;
pub mod dependencies;
pub mod docker_client_ca;
pub mod docker_stack;
pub mod error;
pub mod events;
#[cfg(test)]
mod examples;
pub mod finalizers;
pub mod firewall;
pub mod guest;
pub mod guest_exec;
pub mod hashing;
pub mod host;
pub mod http;
pub mod lxc;
pub mod metrics;
pub mod node_exec;
pub mod ownership;
pub mod privileges;
pub mod provision;
pub mod proxmox_cluster;
pub mod pve;
pub mod readiness;
pub mod slots;
pub mod status;
pub mod step_ca_access;
pub mod tasks;
pub mod traefik_service;
pub mod vm;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use phoenix_crds::{LxcGuest, ProxmoxCluster, VmGuest};
use std::sync::Arc;
use std::time::Duration;

/// How the controllers run.
#[derive(Debug)]
pub struct Options {
    /// Simulate mode: every PVE call goes to the simulator.
    pub redirect: Option<pve::Redirect>,
    /// How often converged objects are looked at again.
    pub resync: Duration,
    /// How often a running PVE task is polled.
    pub task_poll: Duration,
    /// How often each cluster's guests are looked at as a whole (`/cluster/resources`): a
    /// guest stopped by hand is noticed within it.
    pub cluster_view_interval: Duration,
    /// The metrics the controllers count into (served by [`metrics::serve`]).
    pub metrics: Arc<metrics::Metrics>,
    /// This process, in events' `reportingInstance`.
    pub instance: String,
    /// Where the ACME HTTP-01 challenge responder listens (the CA must reach it).
    pub http01_listen: Option<String>,
    /// The responder as the Nginx gateway reaches it, for public routes' ACME challenges.
    pub http01_upstream: Option<std::net::SocketAddr>,
    /// Simulate mode: ACME goes to this server (pebble) instead of the Step-CA.
    pub acme_redirect: Option<certificate::AcmeRedirect>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            redirect: None,
            resync: Duration::from_secs(300),
            task_poll: Duration::from_millis(250),
            cluster_view_interval: Duration::from_secs(10),
            metrics: Arc::default(),
            instance: "phoenix".into(),
            http01_listen: None,
            http01_upstream: None,
            acme_redirect: None,
        }
    }
}

/// Runs every controller until the future is dropped.
pub async fn run(kube: kube::Client, options: Options) {
    let metrics = options.metrics.clone();
    let events = events::Publisher::new(kube.clone(), "phoenix", &options.instance);
    let shared = Arc::new(context::Context::new(
        kube.clone(),
        events,
        metrics.clone(),
        pve::Connections::new(kube.clone(), options.redirect.clone(), metrics.clone()),
        tasks::TaskTracker::new(metrics.clone(), options.task_poll),
        options.resync,
    ));
    let lxc = lean_controller(Api::<LxcGuest>::all(kube.clone()));
    let vm = lean_controller(Api::<VmGuest>::all(kube.clone()));
    let (wake_lxc, woken_lxc) = tokio::sync::mpsc::unbounded_channel();
    let (wake_vm, woken_vm) = tokio::sync::mpsc::unbounded_channel();
    let guests = Arc::new(guest::GuestContext::new(
        shared.clone(),
        guest::Population {
            store: lxc.store(),
            wake: wake_lxc,
        },
        guest::Population {
            store: vm.store(),
            wake: wake_vm,
        },
        options.cluster_view_interval,
    ));
    let cluster_watch = guest::cluster_watch::watch(guests.clone());
    let (host_wake, host_woken) = tokio::sync::mpsc::unbounded_channel();
    let hosts = run_hosts(
        &kube,
        Arc::new(host::HostContext {
            shared: shared.clone(),
            guests: guests.clone(),
            runs: Arc::default(),
            holds: Default::default(),
            wake: host_wake,
        }),
        host_woken,
    );
    let lxc = watch_routes(watch_inputs(lxc, &kube), &kube);
    let vm = watch_routes(watch_inputs(vm, &kube), &kube);
    let lxc = run_guests(lxc, woken_lxc, guests.clone());
    let vm = run_guests(vm, woken_vm, guests.clone());
    let containers = guests.lxc.store.clone();
    let cluster_ctx = Arc::new(proxmox_cluster::ClusterContext {
        shared: shared.clone(),
        containers,
        wake_guests: Box::new(move || {
            guests.lxc.wake_all();
            guests.vm.wake_all();
        }),
    });
    // Woken by containers and routes too: the datacenter firewall's role IP sets hold the
    // addresses of the guests routes go through.
    let clusters = lean_controller(Api::<ProxmoxCluster>::all(kube.clone()));
    let (a, b) = (clusters.store(), clusters.store());
    let config = kube::runtime::controller::Config::default().debounce(WAKE_DEBOUNCE);
    let clusters = clusters
        .with_config(config)
        .watches(
            Api::<LxcGuest>::all(kube.clone()),
            Default::default(),
            every(a),
        )
        .watches(
            Api::<phoenix_crds::TraefikService>::all(kube.clone()),
            Default::default(),
            every(b),
        )
        .run(
            proxmox_cluster::reconcile_cluster,
            proxmox_cluster::error_policy,
            cluster_ctx,
        )
        .for_each(|_| async {});
    let stacks = lean_controller(Api::<phoenix_crds::DockerStack>::all(kube.clone()))
        .run(
            docker_stack::reconcile,
            docker_stack::error_policy,
            shared.clone(),
        )
        .for_each(|_| async {});
    // Routes follow their Certificates (issued, renewed), each other (a route deleted or
    // moved frees its host for the one refused it) and the guests (a backend, Traefik or
    // the gateway re-addressed is a route rewritten at once, not at the resync).
    let routes = lean_controller(Api::<phoenix_crds::TraefikService>::all(kube.clone()));
    let (a, b, c, d) = (
        routes.store(),
        routes.store(),
        routes.store(),
        routes.store(),
    );
    let routes = routes
        .with_config(kube::runtime::controller::Config::default().debounce(WAKE_DEBOUNCE))
        .watches(
            Api::<phoenix_crds::Certificate>::all(kube.clone()),
            Default::default(),
            every(a),
        )
        .watches(
            Api::<phoenix_crds::TraefikService>::all(kube.clone()),
            Default::default(),
            every(b),
        )
        .watches(
            Api::<LxcGuest>::all(kube.clone()),
            Default::default(),
            every(c),
        )
        .watches(
            Api::<VmGuest>::all(kube.clone()),
            Default::default(),
            every(d),
        )
        .run(
            traefik_service::reconcile,
            traefik_service::error_policy,
            Arc::new(traefik_service::RouteContext {
                shared: shared.clone(),
                acme_upstream: options.http01_upstream,
            }),
        )
        .for_each(|_| async {});
    let certificate_ctx = Arc::new(certificate::CertificateContext {
        shared,
        challenges: Arc::default(),
        redirect: options.acme_redirect.clone(),
    });
    // Joined with the controllers rather than spawned: when they stop (the lease is lost)
    // the responder stops too and frees its port for the next leader (or this one again).
    let responder = responder(&options, certificate_ctx.challenges.clone());
    let certificates = lean_controller(Api::<phoenix_crds::Certificate>::all(kube.clone()))
        .run(
            certificate::reconcile,
            certificate::error_policy,
            certificate_ctx,
        )
        .for_each(|_| async {});
    futures::join!(
        lxc,
        vm,
        hosts,
        cluster_watch,
        clusters,
        certificates,
        stacks,
        routes,
        responder
    );
}

/// The ProxmoxHost controller, also woken when a guest or a route changes (their names
/// and addresses are the host's DNS records), and by the objects sent to its wake channel
/// (a PVE task or a feature run of the host ended).
async fn run_hosts(
    kube: &kube::Client,
    ctx: Arc<host::HostContext>,
    woken: tokio::sync::mpsc::UnboundedReceiver<reflector::ObjectRef<phoenix_crds::ProxmoxHost>>,
) {
    // The records are read from the guest controllers' caches, fed by their own watches:
    // a short debounce lets a change reach them before the pass it triggered reads them.
    let config = kube::runtime::controller::Config::default()
        .concurrency(PASSES_AT_ONCE)
        .debounce(WAKE_DEBOUNCE);
    let controller =
        lean_controller(Api::<phoenix_crds::ProxmoxHost>::all(kube.clone())).with_config(config);
    let (a, b, c) = (controller.store(), controller.store(), controller.store());
    let config = watcher::Config::default();
    controller
        .watches(Api::<LxcGuest>::all(kube.clone()), config.clone(), every(a))
        .watches(Api::<VmGuest>::all(kube.clone()), config.clone(), every(b))
        .watches(
            Api::<phoenix_crds::TraefikService>::all(kube.clone()),
            config,
            every(c),
        )
        .reconcile_on(receiver_stream(woken))
        .run(host::reconcile, host::error_policy, ctx)
        .for_each(|_| async {})
        .await
}

/// A channel's receiving end as a stream.
fn receiver_stream<T>(
    receiver: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::unfold(receiver, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Waking on other objects' changes: a burst of them makes one pass.
const WAKE_DEBOUNCE: Duration = Duration::from_millis(500);

/// A mapper waking every object of `store`, whatever changed.
fn every<K, T>(store: reflector::Store<T>) -> impl Fn(K) -> Vec<reflector::ObjectRef<T>>
where
    T: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    move |_| {
        store
            .state()
            .iter()
            .map(|h| reflector::ObjectRef::from_obj(&**h))
            .collect()
    }
}

/// The ACME HTTP-01 challenge responder, serving until dropped.
async fn responder(options: &Options, challenges: Arc<certificate::http01::Challenges>) {
    let Some(listen) = &options.http01_listen else {
        return;
    };
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            tracing::info!(%listen, "ACME HTTP-01 challenge responder listening");
            challenges.serve(listener).await;
        }
        Err(e) => tracing::error!(%listen, "the ACME HTTP-01 responder cannot listen: {e}"),
    }
}

/// A controller whose cache keeps what reconciling reads: objects without their managed
/// fields and `kubectl apply`'s last-applied annotation (a second copy of the spec), which
/// would otherwise be most of the memory a large fleet costs.
fn lean_controller<K>(api: Api<K>) -> Controller<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let objects = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|object| {
            object.managed_fields_mut().clear();
            object.annotations_mut().remove(LAST_APPLIED);
        })
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(objects, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(PASSES_AT_ONCE))
}

/// Passes of one kind run at once. A pass is short (a task, once started, is followed
/// apart from it), and each one running holds connections and buffers: a fleet's burst of
/// passes would otherwise cost memory proportional to the fleet.
const PASSES_AT_ONCE: u16 = 32;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Wakes the guests a route derives firewall rules for when it changes.
fn watch_routes<G: guest::Guest>(controller: Controller<G>, kube: &kube::Client) -> Controller<G> {
    let kind = guest::route_rules::kind_of(G::TYPE);
    controller.watches(
        Api::<phoenix_crds::TraefikService>::all(kube.clone()),
        watcher::Config::default(),
        move |route| {
            let namespace = route.namespace().unwrap_or_default();
            guest::route_rules::named(&route)
                .into_iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, name)| reflector::ObjectRef::new(&name).within(&namespace))
                .collect::<Vec<_>>()
        },
    )
}

/// Wakes the guests waiting for an input when a ConfigMap or Secret changes.
fn watch_inputs<G: guest::Guest>(controller: Controller<G>, kube: &kube::Client) -> Controller<G> {
    let (configs, secrets) = (controller.store(), controller.store());
    controller
        .watches(
            Api::<ConfigMap>::all(kube.clone()),
            watcher::Config::default(),
            move |c| guest::input_watch::waiters(&configs, c.namespace().as_deref()),
        )
        .watches(
            Api::<Secret>::all(kube.clone()),
            watcher::Config::default(),
            move |s| guest::input_watch::waiters(&secrets, s.namespace().as_deref()),
        )
}

/// One kind of guest's controller, also woken by the objects sent to its wake channel
/// (when a PVE task stops, a slot is released, a feature run ends, a dependency becomes
/// Ready).
async fn run_guests<G: guest::Guest>(
    controller: Controller<G>,
    woken: tokio::sync::mpsc::UnboundedReceiver<kube::runtime::reflector::ObjectRef<G>>,
    ctx: Arc<guest::GuestContext>,
) {
    controller
        .reconcile_on(receiver_stream(woken))
        .run(guest::reconcile::<G>, guest::error_policy::<G>, ctx)
        .for_each(|_| async {})
        .await
}
