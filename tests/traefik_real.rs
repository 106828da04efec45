//! The real Traefik (built from its Go module, `tests/traefik/build.sh`) carries the routes
//! Phoenix renders: each example route's one document and certificate files, written into
//! the directory Traefik watches, serve its host over TLS with the route's certificate and
//! reach its backend (over TLS checked against the Step-CA root and the route's name for
//! `https` backends); the controller's end-to-end check tells the backend's answer from
//! Traefik's own; a removed file takes only its route away, without a restart.

#[path = "traefik/harness.rs"]
mod traefik;

mod support;

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
        middlewares: spec.middlewares.clone(),
        tls: true,
        root: root.display().to_string(),
    };
    let root_pem = ca.pem.clone();
    write(
        &route,
        &TlsPair {
            chain: chain.clone(),
            key,
            root: root_pem,
        },
    );
    Example {
        id: route.id,
        host: spec.host,
        path: spec.path_prefix,
        backend: name.to_owned(),
        chain,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn traefik_serves_every_example_route_with_its_certificate_from_its_backend() {
    let binary = traefik::binary();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ca = TestCa::new("Phoenix test Step-CA");
    for sub in [render::DYNAMIC_DIR, render::CERTS_DIR] {
        std::fs::create_dir_all(root.join(sub.trim_start_matches('/'))).unwrap();
    }
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
        let seen = traefik::get(traefik.websecure, &e.host, &e.path, &ca.pem)
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
            traefik::der_of(&e.chain),
            "Traefik presents {}'s own certificate",
            e.host
        );
        let answer = probe::through(None, traefik.websecure, &e.host, &e.path, &ca.pem).await;
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
    let answer = probe::through(None, traefik.websecure, host, "/", &ca.pem).await;
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
        !probe::through(None, traefik.websecure, &gone.host, &gone.path, &ca.pem)
            .await
            .from_backend()
    })
    .await;
    let refused = traefik::get(traefik.websecure, &gone.host, &gone.path, &ca.pem).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("UnknownIssuer")),
        "{:?}",
        refused.map(|s| s.body)
    );
    for e in &examples[..2] {
        let answer = probe::through(None, traefik.websecure, &e.host, &e.path, &ca.pem).await;
        assert!(answer.from_backend(), "{}: {}", e.host, answer.message);
    }
}
