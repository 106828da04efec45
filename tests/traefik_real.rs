//! The real Traefik (built from its Go module, `tests/traefik/build.sh`) carries the routes
//! Phoenix renders: each example route's one document and certificate files, written into
//! the directory Traefik watches, serve its host over TLS with the route's certificate and
//! reach its backend (over TLS checked against the Step-CA root and the route's name for
//! `https` backends); the controller's end-to-end check tells the backend's answer from
//! Traefik's own; a removed file takes only its route away, without a restart.

#[path = "traefik/harness.rs"]
mod traefik;

#[path = "traefik/nginx.rs"]
mod nginx;

mod support;

use nginx::Nginx;
use phoenix_controllers::provision::catalog;
use phoenix_controllers::traefik_service::gateway::{self, GatewayPaths, Listen, PublicRoute};
use phoenix_controllers::traefik_service::probe;
use phoenix_controllers::traefik_service::render::{self, Route, TlsPair};
use phoenix_crds::common::Scheme;
use phoenix_crds::traefik_service::TraefikService;
use std::path::Path;
use traefik::{TestCa, Traefik};

/// One example route made concrete on loopback: its files and what it should answer.
struct Example {
    id: String,
    host: String,
    path: String,
    backend: String,
    chain: String,
    key: String,
}

/// Writes a route's files as the controller does into the guest (certificates first).
fn write(route: &Route, pair: &TlsPair) {
    let files = render::files(route, &route.id, Some(pair));
    for (path, content) in files.certificate.iter().flatten() {
        std::fs::write(path, content).unwrap();
    }
    let (path, content) = &files.config;
    let partial = format!("{path}.partial");
    std::fs::write(&partial, content).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

async fn example(file: &str, ca: &TestCa, root: &Path) -> Example {
    let defaults = root.join("etc/traefik/dynamic/00-phoenix-defaults.yml");
    std::fs::write(defaults, catalog::traefik_defaults(false)).unwrap();
    let spec = support::example::<TraefikService>(file).spec;
    let name = file.trim_start_matches("tsvc-").trim_end_matches(".yaml");
    let pair = match spec.backend.scheme {
        Scheme::Https => Some(ca.issue(&[&spec.host])),
        Scheme::Http => None,
    };
    let scheme = if pair.is_some() { "https" } else { "http" };
    let address = traefik::backend(name, pair).await;
    let (chain, key) = ca.issue(&[&spec.host]);
    let route = Route {
        id: format!("default_{name}"),
        host: spec.host.clone(),
        path_prefix: spec.path_prefix.clone(),
        server: format!("{scheme}://{address}"),
        // Every route names the middlewares the `traefik` feature defines: Traefik disables a
        // router naming one it does not have.
        middlewares: render::KNOWN_MIDDLEWARES
            .iter()
            .map(|m| m.to_string())
            .collect(),
        tls: true,
        root: root.display().to_string(),
    };
    let pair = TlsPair {
        chain: chain.clone(),
        key: key.clone(),
        root: ca.pem.clone(),
    };
    write(&route, &pair);
    Example {
        id: route.id,
        host: spec.host,
        path: spec.path_prefix,
        backend: name.to_owned(),
        chain,
        key,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn traefik_serves_every_example_route_with_its_certificate_from_its_backend() {
    let binary = support::https::traefik_binary();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ca = TestCa::new("Phoenix test Step-CA");
    traefik::layout(root);
    let mut examples = Vec::new();
    for file in [
        "tsvc-granite-embedding.yaml",
        "tsvc-portainer.yaml",
        "tsvc-qdrant.yaml",
    ] {
        examples.push(example(file, &ca, root).await);
    }
    let traefik = Traefik::start(&binary, root).await;
    let ids: Vec<&str> = examples.iter().map(|e| e.id.as_str()).collect();
    traefik.until_enabled(&ids).await;

    for e in &examples {
        let seen = support::https::get(traefik.websecure, &e.host, &e.path, &ca.pem)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", e.host));
        assert_eq!(
            (seen.status, seen.body.as_str()),
            (
                200,
                format!("backend {} host={}", e.backend, e.host).as_str()
            ),
            "{} through Traefik",
            e.host
        );
        assert_eq!(
            seen.certificate,
            support::https::der_of(&e.chain),
            "Traefik presents {}'s own certificate",
            e.host
        );
        let answer = probe::through(None, traefik.websecure, &e.host, &e.path, Some(&ca.pem)).await;
        assert!(answer.from_backend(), "{}: {}", e.host, answer.message);
    }

    // An https backend whose certificate another CA signed is refused by Traefik: the
    // route answers, but not from the backend.
    let rogue_ca = TestCa::new("someone else");
    let host = "rogue.internal.thinkheads.ai";
    let rogue = traefik::backend("rogue", Some(rogue_ca.issue(&[host]))).await;
    let (chain, key) = ca.issue(&[host]);
    let route = Route {
        id: "default_rogue".into(),
        host: host.into(),
        path_prefix: "/".into(),
        server: format!("https://{rogue}"),
        middlewares: vec![],
        tls: true,
        root: root.display().to_string(),
    };
    write(
        &route,
        &TlsPair {
            chain,
            key,
            root: ca.pem.clone(),
        },
    );
    traefik.until_enabled(&["default_rogue"]).await;
    let answer = probe::through(None, traefik.websecure, host, "/", Some(&ca.pem)).await;
    assert!(!answer.from_backend(), "{}", answer.message);
    assert!(
        matches!(answer.status, Some(500..=504)),
        "{}",
        answer.message
    );

    // A route's file removed: its certificate goes with its document (Traefik answers for
    // the host with its own default one, which no client of the route trusts), the others
    // still answer.
    let gone = &examples[2];
    std::fs::remove_file(render::Paths::of(&root.display().to_string(), &gone.id).config).unwrap();
    support::until("Traefik drops the removed route", || async {
        !probe::through(
            None,
            traefik.websecure,
            &gone.host,
            &gone.path,
            Some(&ca.pem),
        )
        .await
        .from_backend()
    })
    .await;
    let refused = support::https::get(traefik.websecure, &gone.host, &gone.path, &ca.pem).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("UnknownIssuer")),
        "{:?}",
        refused.map(|s| s.body)
    );
    for e in &examples[..2] {
        let answer = probe::through(None, traefik.websecure, &e.host, &e.path, Some(&ca.pem)).await;
        assert!(answer.from_backend(), "{}: {}", e.host, answer.message);
    }
}

/// Writes the gateway's files for `e` (its site, certificate, key and the root Traefik's
/// certificate is checked against), listening where `listen` says.
fn write_site(
    root: &Path,
    e: &Example,
    hop: std::net::SocketAddr,
    acme: std::net::SocketAddr,
    listen: Listen,
    trusted: &str,
) {
    let root_text = root.display().to_string();
    let public = PublicRoute {
        id: &e.id,
        host: &e.host,
        path_prefix: &e.path,
        traefik: hop,
        acme_responder: Some(acme),
        root: &root_text,
        listen,
    };
    let paths = GatewayPaths::of(&root_text, &e.id);
    std::fs::write(&paths.cert, &e.chain).unwrap();
    std::fs::write(&paths.key, &e.key).unwrap();
    std::fs::write(&paths.ca, trusted).unwrap();
    std::fs::write(&paths.site, gateway::site(&public, &e.id)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_then_traefik_carry_every_example_host_to_its_backend_with_the_right_certificate_at_each_hop()
 {
    let binary = support::https::traefik_binary();
    let dir = tempfile::tempdir().unwrap();
    let (traefik_root, gateway_root) = (dir.path().join("traefik"), dir.path().join("gateway"));
    traefik::layout(&traefik_root);
    nginx::layout(&gateway_root);
    let ca = TestCa::new("Phoenix test Step-CA");
    let mut examples = Vec::new();
    for file in [
        "tsvc-granite-embedding.yaml",
        "tsvc-portainer.yaml",
        "tsvc-qdrant.yaml",
    ] {
        examples.push(example(file, &ca, &traefik_root).await);
    }
    let traefik = Traefik::start(&binary, &traefik_root).await;
    let ids: Vec<&str> = examples.iter().map(|e| e.id.as_str()).collect();
    traefik.until_enabled(&ids).await;

    // The gateway: every example host made public, ACME challenges to a responder.
    let acme = traefik::backend("acme-responder", None).await;
    let (https, http) = nginx::free_ports();
    let listen = Listen {
        https: https.port(),
        http: http.port(),
        address: Some(https.ip()),
    };
    let upgrade = gateway_root.join(gateway::UPGRADE_MAP_FILE.trim_start_matches('/'));
    std::fs::write(upgrade, gateway::upgrade_map()).unwrap();
    for e in &examples {
        write_site(&gateway_root, e, traefik.websecure, acme, listen, &ca.pem);
    }
    let nginx = Nginx::start(&gateway_root, https, http);

    let client = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
    };
    for e in &examples {
        // Hop 1: nginx presents the route's certificate; hop 2: nginx checked Traefik's
        // against the root by the host's name (else 502, below); hop 3: the backend.
        let seen = support::https::get(nginx.https, &e.host, &e.path, &ca.pem)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}\n{}", e.host, nginx.errors()));
        assert_eq!(
            (seen.status, seen.body.as_str()),
            (
                200,
                format!("backend {} host={}", e.backend, e.host).as_str()
            ),
            "{} through nginx and Traefik: {}",
            e.host,
            nginx.errors()
        );
        assert_eq!(
            seen.certificate,
            support::https::der_of(&e.chain),
            "nginx presents {}'s certificate",
            e.host
        );
        let answer = probe::through(None, nginx.https, &e.host, &e.path, Some(&ca.pem)).await;
        assert!(answer.from_backend(), "{}", answer.message);

        // Port 80: HTTPS redirect, except ACME's challenges.
        let plain = client().resolve(&e.host, nginx.http).build().unwrap();
        let url = |path: &str| format!("http://{}:{}{path}", e.host, nginx.http.port());
        let redirect = plain.get(url("/x?y=1")).send().await.unwrap();
        assert_eq!(redirect.status(), 301);
        assert_eq!(
            redirect.headers()["location"],
            format!("https://{}/x?y=1", e.host).as_str()
        );
        let challenge = plain
            .get(url("/.well-known/acme-challenge/token"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            challenge.text().await.unwrap(),
            format!("backend acme-responder host={}", e.host)
        );
    }

    // A gateway that trusts another root refuses Traefik's certificate: 502, not the
    // backend's answer.
    let granite = &examples[0];
    let stranger = TestCa::new("someone else");
    write_site(
        &gateway_root,
        granite,
        traefik.websecure,
        acme,
        listen,
        &stranger.pem,
    );
    nginx.reload().unwrap();
    support::until("nginx refuses Traefik's certificate", || async {
        let answer = probe::through(None, nginx.https, &granite.host, "/", Some(&ca.pem)).await;
        answer.status == Some(502) && !answer.from_backend()
    })
    .await;

    // A site nginx -t refuses (its certificate missing) is caught before any reload, and
    // a reload of it would keep the old configuration serving.
    std::fs::remove_file(
        GatewayPaths::of(&gateway_root.display().to_string(), &examples[1].id).cert,
    )
    .unwrap();
    let refused = Nginx::test(&gateway_root).unwrap_err();
    assert!(refused.contains("cannot load certificate"), "{refused}");
    assert!(
        nginx.reload().is_err(),
        "nginx -s reload parses first and refuses"
    );
    let portainer = &examples[1];
    let answer = probe::through(
        None,
        nginx.https,
        &portainer.host,
        &portainer.path,
        Some(&ca.pem),
    )
    .await;
    assert!(
        answer.from_backend(),
        "the old configuration still serves: {}",
        answer.message
    );
}
