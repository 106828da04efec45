//! TraefikService on the simulated platform, the simulator running the real Traefik on LXC
//! 102's files and Debian's nginx on LXC 101's: every example route writes its one
//! document and certificate into Traefik's guest (and the public one its site into the
//! gateway's) and becomes Ready when a request for its host comes back from its backend
//! through that chain, each hop presenting the certificate expected of it; a renewal
//! reaches both daemons without a route change; at rest nothing enters either guest;
//! what would make a route wrong is refused with its reason and writes nothing; a deleted
//! route takes its files with it.

mod support;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use phoenix_crds::{Certificate, TraefikService};
use support::SimAdmin;
use support::host::{self, MINUTES};

const TRAEFIK_VMID: u32 = 102;
const GATEWAY_VMID: u32 = 101;
const GRANITE_SITE: &str = "/etc/nginx/phoenix/default_granite-embedding.conf";

/// The files guest 102 holds under `dir`, by path.
async fn files_in(sim: &SimAdmin, dir: &str) -> serde_json::Map<String, serde_json::Value> {
    files_of(sim, TRAEFIK_VMID, dir).await
}

async fn files_of(
    sim: &SimAdmin,
    vmid: u32,
    dir: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let guest = sim.guest(vmid).await;
    guest["files"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(path, _)| path.starts_with(dir))
        .collect()
}

async fn gateway_site(sim: &SimAdmin) -> String {
    let guest = sim.guest(GATEWAY_VMID).await;
    guest["files"][GRANITE_SITE]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The commands run in the gateway guest, in order.
async fn gateway_commands(sim: &SimAdmin) -> Vec<String> {
    let guest = sim.guest(GATEWAY_VMID).await;
    guest["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The reloads a route's publishing made: after each, it drops the site it had kept
/// aside (another Certificate installed into the gateway reloads nginx too, so the
/// reload lines themselves are not the routes' alone).
fn reloads_of(commands: &[String]) -> usize {
    commands
        .iter()
        .filter(|c| c.starts_with("rm -f /etc/nginx/phoenix/") && c.ends_with(".phoenix-old"))
        .count()
}

/// Whether the route called `name` is among `rs` and `holds` for it.
fn route_where(
    rs: &[std::sync::Arc<TraefikService>],
    name: &str,
    holds: impl Fn(&TraefikService) -> bool,
) -> bool {
    rs.iter()
        .any(|r| r.metadata.name.as_deref() == Some(name) && holds(r))
}

fn ready(route: &TraefikService) -> bool {
    route
        .status
        .as_ref()
        .is_some_and(|s| support::is_ready(&s.common.conditions))
}

fn condition(route: &TraefikService, kind: &str) -> Option<(String, String, String)> {
    let conditions = &route.status.as_ref()?.common.conditions;
    let c = conditions.iter().find(|c| c.type_ == kind)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn route_yaml(name: &str, host: &str, extra: &str) -> String {
    format!(
        "apiVersion: phoenix.thinkheads.ai/v1alpha1\nkind: TraefikService\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  host: {host}\n  backend:\n    guestRef: {{kind: LxcGuest, name: granite-embedding}}\n    port: 8000\n{extra}"
    )
}

async fn until_examples_ready(routes: &Api<TraefikService>) {
    support::wait_for(routes, "the three example routes Ready", MINUTES, |rs| {
        rs.len() == 3 && rs.iter().all(|r| ready(r))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_route_is_written_into_traefik_and_answers_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = host::up_examples_with_daemons(dir.path());
    let client = support::client(&server).await;
    let routes: Api<TraefikService> = Api::namespaced(client.clone(), "default");
    until_examples_ready(&routes).await;

    // One document and three certificate files per route, in the directory Traefik watches.
    let sim = SimAdmin::of(&server);
    let dynamic = files_in(&sim, "/etc/traefik/dynamic/phoenix-").await;
    let certs = files_in(&sim, "/etc/traefik/certs/").await;
    assert_eq!(dynamic.len(), 3, "{:?}", dynamic.keys());
    assert_eq!(certs.len(), 9, "{:?}", certs.keys());
    let granite = routes.get("granite-embedding").await.unwrap();
    let status = granite.status.as_ref().unwrap();
    let document = dynamic["/etc/traefik/dynamic/phoenix-default_granite-embedding.yml"]
        .as_str()
        .unwrap();
    let document: serde_json::Value = serde_yaml_ng::from_str(document).unwrap();
    let router = &document["http"]["routers"]["default_granite-embedding"];
    assert_eq!(router["rule"], "Host(`embedding.internal.thinkheads.ai`)");
    let backend = status.backend.as_deref().unwrap();
    assert!(
        backend.starts_with("https://10.0.0.") && backend.ends_with(":8000"),
        "{backend}"
    );
    assert_eq!(
        document["http"]["services"]["default_granite-embedding"]["loadBalancer"]["servers"][0]["url"],
        backend
    );
    let guest = sim.guest(TRAEFIK_VMID).await;
    assert_eq!(
        guest["modes"]["/etc/traefik/certs/default_granite-embedding.key"], 0o600,
        "the key is readable by root only"
    );
    assert_eq!(
        status.url.as_deref(),
        Some("https://embedding.internal.thinkheads.ai/")
    );
    assert_eq!(status.last_check.as_ref().unwrap().status, Some(200));
    assert!(status.certificate_not_after.is_some());
    let listed = support::kubectl(&server, &["get", "tsvc"]);
    assert!(listed.contains("HOST") && listed.contains("BACKEND") && listed.contains("PUBLIC"));
    assert_eq!(listed.matches("True").count(), 3, "{listed}");

    // The public route's site on the gateway (LXC 101): tested, then nginx reloaded.
    assert!(
        status
            .chain
            .as_deref()
            .unwrap()
            .starts_with("gateway 10.0.0.153 → traefik 10.0.0.12 → https://"),
        "{:?}",
        status.chain
    );
    let site = gateway_site(&sim).await;
    assert!(site.contains("proxy_pass https://10.0.0.12:443;"), "{site}");
    assert!(
        site.contains("server_name embedding.internal.thinkheads.ai;"),
        "{site}"
    );
    let gateway_files = files_of(&sim, GATEWAY_VMID, "/etc/nginx/phoenix/").await;
    assert_eq!(
        gateway_files.len(),
        5,
        "site, map, certificate, key, root: {:?}",
        gateway_files.keys()
    );
    let commands = gateway_commands(&sim).await;
    let tested = commands
        .iter()
        .position(|c| c == "nginx -t")
        .expect("nginx -t ran");
    let reloaded = commands
        .iter()
        .position(|c| c == "systemctl reload nginx")
        .expect("nginx reloaded");
    assert!(tested < reloaded, "{commands:?}");

    // A site nginx -t refuses never goes live: the previous one is put back, nothing
    // reloads, the route says why; once nginx accepts it, it goes live.
    sim.put(
        &format!("guests/{GATEWAY_VMID}/answers"),
        serde_json::json!([{"matches": "nginx -t", "exit": 1, "times": 2,
            "output": "nginx: [emerg] invalid number of arguments in \"proxy_pass\"\n"}]),
    )
    .await;
    let reloads = reloads_of(&gateway_commands(&sim).await);
    support::kubectl(
        &server,
        &[
            "patch",
            "tsvc",
            "granite-embedding",
            "--type=merge",
            "-p",
            r#"{"spec":{"pathPrefix":"/v1"}}"#,
        ],
    );
    support::wait_for(&routes, "granite refused by nginx -t", MINUTES, |rs| {
        route_where(rs, "granite-embedding", |r| {
            condition(r, "Ready")
                .is_some_and(|(_, why, m)| why == "GatewayConfigInvalid" && m.contains("[emerg]"))
        })
    })
    .await;
    assert_eq!(gateway_site(&sim).await, site, "the previous site is back");
    // The running nginx still serves the previous site (`/`; the refused one has only `/v1`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let (_, root) = certificate_of(&secrets, "granite-embedding-tls").await;
    let (gateway, _, _) = hop(&sim, "10.0.0.153", 443).await;
    let seen = support::https::get(gateway, "embedding.internal.thinkheads.ai", "/", &root)
        .await
        .unwrap();
    assert_eq!(seen.status, 200, "the previous site answers: {}", seen.body);
    assert_eq!(
        reloads_of(&gateway_commands(&sim).await),
        reloads,
        "nothing reloaded"
    );
    support::wait_for(&routes, "granite Ready at /v1", MINUTES, |rs| {
        route_where(rs, "granite-embedding", |r| {
            ready(r)
                && r.status.as_ref().unwrap().url.as_deref()
                    == Some("https://embedding.internal.thinkheads.ai/v1")
        })
    })
    .await;
    assert!(gateway_site(&sim).await.contains("location \"/v1\" {"));
    assert_eq!(reloads_of(&gateway_commands(&sim).await), reloads + 1);

    // A backend re-addressed: its route follows (Traefik's document rewritten). An
    // internal route added, changed and deleted: Traefik never restarted (the real one
    // picks its file up), nginx never reloaded (its set did not change).
    let restarts = || async {
        let guest = sim.guest(TRAEFIK_VMID).await;
        guest["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                c["command"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("restart traefik")
            })
            .count()
    };
    let (restarts_before, reloads_before) =
        (restarts().await, reloads_of(&gateway_commands(&sim).await));
    let others_before = route_footprint(&sim).await.0;
    support::kubectl_apply(&server, &support::guest_yaml("route-probe", 951, ""));
    let probe_route = "apiVersion: phoenix.thinkheads.ai/v1alpha1\nkind: TraefikService\n\
        metadata:\n  name: probe\n  namespace: default\nspec:\n  host: probe.internal.thinkheads.ai\n\
        \x20 backend:\n    guestRef: {kind: LxcGuest, name: route-probe}\n    port: 8080\n";
    support::kubectl_apply(&server, probe_route);
    let served_at = |address: &'static str| {
        move |rs: &[std::sync::Arc<TraefikService>]| {
            route_where(rs, "probe", |r| {
                ready(r) && r.status.as_ref().unwrap().backend.as_deref() == Some(address)
            })
        }
    };
    support::wait_for(
        &routes,
        "the probe route Ready",
        MINUTES,
        served_at("http://10.0.0.201:8080"),
    )
    .await;
    let lxcs: Api<phoenix_crds::LxcGuest> = Api::namespaced(client.clone(), "default");
    let moved = serde_json::json!({"spec": {"network": [{"ip": "10.0.0.202/24"}]}});
    lxcs.patch(
        "route-probe",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&moved),
    )
    .await
    .unwrap();
    support::wait_for(
        &routes,
        "the probe route at the new address",
        MINUTES,
        served_at("http://10.0.0.202:8080"),
    )
    .await;
    let document = files_in(&sim, "/etc/traefik/dynamic/phoenix-default_probe.yml").await;
    let text = document.values().next().unwrap().as_str().unwrap();
    assert!(
        text.contains("http://10.0.0.202:8080") && !text.contains("10.0.0.201"),
        "{text}"
    );
    routes
        .delete("probe", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for(&routes, "the probe route gone", MINUTES, |rs| {
        rs.iter()
            .all(|r| r.metadata.name.as_deref() != Some("probe"))
    })
    .await;
    assert!(
        files_in(&sim, "/etc/traefik/dynamic/phoenix-default_probe.yml")
            .await
            .is_empty()
    );
    assert_eq!(restarts().await, restarts_before, "Traefik never restarted");
    let others_after = route_footprint(&sim).await.0;
    assert_eq!(
        changed_paths(&others_before, &others_after),
        Vec::<String>::new(),
        "the other routes' files in 102 and 101 untouched, the probe's gone"
    );
    assert_eq!(
        reloads_of(&gateway_commands(&sim).await),
        reloads_before,
        "nginx not reloaded for an internal route"
    );

    // Bad routes: each refused with its reason, nothing written for it, the others untouched.
    let before = files_in(&sim, "/etc/traefik/").await;
    support::kubectl_apply(
        &server,
        &route_yaml(
            "twin",
            "embedding.internal.thinkheads.ai",
            "  pathPrefix: /v1\n",
        ),
    );
    support::kubectl_apply(
        &server,
        &route_yaml(
            "no-such-middleware",
            "a.internal.thinkheads.ai",
            "  middlewares: [auth]\n",
        ),
    );
    support::kubectl_apply(
        &server,
        &route_yaml(
            "wrong-certificate",
            "b.internal.thinkheads.ai",
            "  tls:\n    certificateRef: {name: granite-embedding}\n",
        ),
    );
    let expect = [
        (
            "twin",
            "HostConflict",
            "served by TraefikService default/granite-embedding",
        ),
        ("no-such-middleware", "UnknownMiddleware", "\"auth\""),
        (
            "wrong-certificate",
            "CertificateMismatch",
            "does not cover b.internal.thinkheads.ai",
        ),
    ];
    support::wait_for(&routes, "the bad routes Stalled", MINUTES, |rs| {
        expect.iter().all(|(name, reason, _)| {
            route_where(rs, name, |r| {
                condition(r, "Stalled").is_some_and(|(s, why, _)| s == "True" && why == *reason)
            })
        })
    })
    .await;
    for (name, reason, says) in expect {
        let route = routes.get(name).await.unwrap();
        let (status, why, message) = condition(&route, "Ready").unwrap();
        assert_eq!((status.as_str(), why.as_str()), ("False", reason), "{name}");
        assert!(message.contains(says), "{name}: {message}");
    }
    let after = files_in(&sim, "/etc/traefik/").await;
    let changed: Vec<&String> = after
        .keys()
        .chain(before.keys())
        .filter(|k| after.get(*k) != before.get(*k))
        .collect();
    assert_eq!(after, before, "nothing written for them: {changed:?}");
    let granite = routes.get("granite-embedding").await.unwrap();
    assert!(support::is_ready(
        &granite.status.unwrap().common.conditions
    ));

    // The route holding a host deleted, the one refused it takes it over.
    routes
        .delete("granite-embedding", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for(&routes, "twin Ready once granite is gone", MINUTES, |rs| {
        route_where(rs, "twin", ready)
    })
    .await;
    assert!(
        gateway_site(&sim).await.is_empty(),
        "the public route's site left the gateway with it"
    );

    // A deleted route takes its files with it.
    routes
        .delete("qdrant", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for(&routes, "qdrant gone", MINUTES, |rs| {
        rs.iter()
            .all(|r| r.metadata.name.as_deref() != Some("qdrant"))
    })
    .await;
    let mut left = files_in(&sim, "/etc/traefik/certs/").await;
    left.extend(files_in(&sim, "/etc/traefik/dynamic/phoenix-").await);
    assert!(
        left.keys().all(|p| !p.contains("default_qdrant")),
        "{:?}",
        left.keys()
    );
    let mut paths: Vec<&str> = left.keys().map(String::as_str).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/etc/traefik/certs/default_portainer-ca.crt",
            "/etc/traefik/certs/default_portainer.crt",
            "/etc/traefik/certs/default_portainer.key",
            "/etc/traefik/dynamic/phoenix-default_portainer.yml",
            "/etc/traefik/dynamic/phoenix-default_twin.yml",
        ]
    );
}

/// Where the simulator serves `address:port`: (loopback address, whether a stand-in).
async fn hop(sim: &SimAdmin, address: &str, port: u16) -> (std::net::SocketAddr, bool, u64) {
    let answer = sim
        .get(&format!("resolve?address={address}&port={port}"))
        .await;
    (
        answer["address"].as_str().unwrap().parse().unwrap(),
        answer["standIn"].as_bool().unwrap(),
        answer["vmid"].as_u64().unwrap(),
    )
}

/// A Certificate's Secret: (chain, root).
async fn certificate_of(secrets: &Api<Secret>, name: &str) -> (String, String) {
    let data = secrets.get(name).await.unwrap().data.unwrap();
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    (text("tls.crt"), text("ca.crt"))
}

/// What routes put into Traefik's and the gateway's guests: the files under their
/// directories there, and the commands that touched those (or ran `nginx -t`). The
/// gateway's own certificate (`/etc/nginx/tls`, another Certificate's install, which
/// reloads nginx too) and the features' marker checks are not the routes'.
async fn route_footprint(sim: &SimAdmin) -> (Vec<serde_json::Value>, Vec<String>) {
    let mut files = Vec::new();
    let mut commands = Vec::new();
    for (vmid, dir) in [
        (TRAEFIK_VMID, "/etc/traefik/"),
        (GATEWAY_VMID, "/etc/nginx/phoenix/"),
    ] {
        files.push(serde_json::Value::Object(files_of(sim, vmid, dir).await));
        let guest = sim.guest(vmid).await;
        commands.extend(
            guest["log"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["command"].as_str().unwrap_or_default().to_owned())
                .filter(|c| c.contains(dir) || c == "nginx -t"),
        );
    }
    (files, commands)
}

/// The paths whose content differs between two footprints' files.
fn changed_paths(before: &[serde_json::Value], after: &[serde_json::Value]) -> Vec<String> {
    let mut changed = Vec::new();
    for (b, a) in before.iter().zip(after) {
        let (b, a) = (b.as_object().unwrap(), a.as_object().unwrap());
        changed.extend(
            a.keys()
                .chain(b.keys())
                .filter(|k| a.get(*k) != b.get(*k))
                .cloned(),
        );
    }
    changed.dedup();
    changed
}

/// `make run` as a test: the simulator runs the real Traefik on LXC 102's files and
/// Debian's nginx on LXC 101's. Each example host answers from its backend through every
/// hop, each hop presenting the certificate expected of it; a renewed Certificate reaches
/// Traefik and nginx without a change to any route; at rest nothing enters either guest.
#[tokio::test(flavor = "multi_thread")]
async fn the_examples_answer_through_the_real_nginx_and_traefik_and_a_renewal_reaches_both() {
    let dir = tempfile::tempdir().unwrap();
    let server = host::up_examples_with_daemons(dir.path());
    let client = support::client(&server).await;
    let routes: Api<TraefikService> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    until_examples_ready(&routes).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = SimAdmin::of(&server);
    let (gateway, stand_in, _) = hop(&sim, "10.0.0.153", 443).await;
    assert!(!stand_in, "the gateway's 443 is the real nginx");
    let (traefik, stand_in, _) = hop(&sim, "10.0.0.12", 443).await;
    assert!(!stand_in, "Traefik's 443 is the real Traefik");

    for route in routes.list(&Default::default()).await.unwrap() {
        let name = route.metadata.name.clone().unwrap();
        let spec = &route.spec;
        let status = route.status.as_ref().unwrap();
        let secret = spec.tls.as_ref().unwrap().certificate_ref.name.clone() + "-tls";
        let (chain, root) = certificate_of(&secrets, &secret).await;
        let backend = status.backend.as_deref().unwrap();
        let (address, port) = backend
            .rsplit_once("//")
            .unwrap()
            .1
            .split_once(':')
            .unwrap();
        let (served_at, stand_in, vmid) = hop(&sim, address, port.parse().unwrap()).await;
        assert!(stand_in, "{name}: the backend is the simulator's stand-in");
        let answer = format!("guest {vmid} port {port}\n");
        let mut hops = vec![("traefik", traefik)];
        if spec.public {
            hops.insert(0, ("nginx", gateway));
        }
        for (what, at) in hops {
            let seen = support::https::get(at, &spec.host, &spec.path_prefix, &root)
                .await
                .unwrap_or_else(|e| panic!("{name} through {what}: {e}"));
            assert_eq!(
                (seen.status, seen.body.as_str()),
                (200, answer.as_str()),
                "{name} through {what}"
            );
            assert_eq!(
                seen.certificate,
                support::https::der_of(&chain),
                "{name}: {what} presents the route's certificate"
            );
        }
        if backend.starts_with("https://") {
            // The backend presents what is installed in its guest, for the route's name
            // and under the route's root (else Traefik would have refused it).
            let seen = support::https::get(served_at, &spec.host, "/", &root).await;
            assert!(seen.is_ok(), "{name}'s backend: {:?}", seen.err());
        }
    }
    let granite = routes.get("granite-embedding").await.unwrap();
    let (chain, root) = certificate_of(&secrets, "granite-embedding-tls").await;
    let backend_at = hop(&sim, "10.0.0.141", 8000).await.0;
    let host = "embedding.internal.thinkheads.ai";
    let seen = support::https::get(backend_at, host, "/", &root)
        .await
        .unwrap();
    assert_eq!(
        seen.certificate,
        support::https::der_of(&chain),
        "vLLM's installed certificate"
    );

    // At rest: three resyncs of every route, nothing written into 101 or 102, nothing
    // reloaded.
    let before = route_footprint(&sim).await;
    support::resync_rounds(&server, "TraefikService", 3, 3).await;
    let after = route_footprint(&sim).await;
    assert_eq!(changed_paths(&before.0, &after.0), Vec::<String>::new());
    assert_eq!(
        after.1[before.1.len()..],
        [] as [String; 0],
        "0 writes into 101/102 at rest"
    );

    // A renewed Certificate reaches Traefik and nginx, no route changed.
    let certificates: Api<Certificate> = Api::namespaced(client.clone(), "default");
    let issued = certificates
        .get("granite-embedding")
        .await
        .unwrap()
        .status
        .unwrap();
    let seconds = |t: Option<String>| t.unwrap().parse::<jiff::Timestamp>().unwrap().as_second();
    let (not_before, not_after) = (
        seconds(issued.not_before.clone()),
        seconds(issued.not_after.clone()),
    );
    let age = jiff::Timestamp::now().as_second() - not_before;
    let renew_before = format!("{}s", not_after - not_before - age - 3);
    certificates
        .patch(
            "granite-embedding",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"renewBefore": renew_before}})),
        )
        .await
        .unwrap();
    support::wait_for(&certificates, "granite-embedding renewed", MINUTES, |cs| {
        cs.iter().any(|c| {
            c.metadata.name.as_deref() == Some("granite-embedding")
                && c.status
                    .as_ref()
                    .is_some_and(|s| s.serial_number != issued.serial_number)
        })
    })
    .await;
    let (renewed, root) = certificate_of(&secrets, "granite-embedding-tls").await;
    assert_ne!(renewed, chain);
    for (what, at) in [("nginx", gateway), ("traefik", traefik)] {
        let what = format!("{what} serving the renewed certificate");
        support::until(&what, || async {
            support::https::get(at, host, "/", &root)
                .await
                .is_ok_and(|seen| {
                    seen.status == 200 && seen.certificate == support::https::der_of(&renewed)
                })
        })
        .await;
    }
    let after = routes.get("granite-embedding").await.unwrap();
    assert_eq!(
        after.metadata.generation, granite.metadata.generation,
        "no route changed"
    );
}
