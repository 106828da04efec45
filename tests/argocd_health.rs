//! Argo CD's view of Phoenix's objects: the chart's health script
//! (`charts/phoenix/files/argocd/health.lua`), run by gopher-lua as Argo CD runs it
//! (`tests/argocd`, built from its Go module), on guests as their controller left them:
//! Healthy when Ready, Degraded when Stalled, Progressing while its controller has not yet
//! seen the spec. The chart's README carries the same script for `argocd-cm`.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::ApiServer;

fn repo() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
}

fn script() -> PathBuf {
    repo().join("charts/phoenix/files/argocd/health.lua")
}

/// The harness, built into `dir`.
fn harness(dir: &Path) -> PathBuf {
    support::go_harness("argocd", dir)
}

/// Argo CD's health of each object in `documents` (name → status, message).
fn health(harness: &Path, dir: &Path, documents: &[Value]) -> BTreeMap<String, (String, String)> {
    let file = dir.join("objects.json");
    std::fs::write(&file, serde_json::json!({"items": documents}).to_string()).unwrap();
    support::succeed(
        Command::new(harness).arg(script()).arg(&file),
        "the Argo CD health harness",
    )
    .lines()
    .map(|line| {
        let h: Value = serde_json::from_str(line).unwrap();
        let text = |k: &str| h[k].as_str().unwrap_or_default().to_owned();
        (text("name"), (text("status"), text("message")))
    })
    .collect()
}

fn guest(server: &ApiServer, name: &str) -> Value {
    serde_json::from_str(&support::kubectl(
        server,
        &["get", "lxcguest", name, "-o", "json"],
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn argo_cd_reads_ready_as_healthy_stalled_as_degraded_and_an_unseen_spec_as_progressing() {
    let dir = tempfile::tempdir().unwrap();
    let harness = harness(dir.path());
    let server = ApiServer::up_simulated(dir.path(), &["--task-duration", "default=0.2"]);
    support::homelab_cluster(&server).await;
    // No such OS template on the node: a spec only a change can fix.
    let stalled = support::guest_yaml("argo-stalled", 312, "").replace(
        "debian-12-standard_12.7-1_amd64.tar.zst",
        "no-such-template.tar.zst",
    );
    support::kubectl_apply(
        &server,
        &format!(
            "{}---\n{stalled}",
            support::guest_yaml("argo-ready", 311, "")
        ),
    );
    for (condition, name) in [("Ready", "argo-ready"), ("Stalled", "argo-stalled")] {
        support::kubectl(
            &server,
            &[
                "wait",
                "--timeout=60s",
                &format!("--for=condition={condition}"),
                &format!("lxcguest/{name}"),
            ],
        );
    }
    let ready = guest(&server, "argo-ready");
    // The moments before a controller's pass, cut from the same real document: a spec
    // written but not yet seen, and a new object with no status at all.
    let mut unseen = ready.clone();
    unseen["metadata"]["name"] = "argo-unseen".into();
    unseen["metadata"]["generation"] = 2.into();
    let mut fresh = ready.clone();
    fresh["metadata"]["name"] = "argo-fresh".into();
    fresh.as_object_mut().unwrap().remove("status");

    let seen = health(
        &harness,
        dir.path(),
        &[ready, guest(&server, "argo-stalled"), unseen, fresh],
    );
    let of = |name: &str| seen[&format!("default/{name}")].clone();
    assert_eq!(of("argo-ready").0, "Healthy", "{seen:?}");
    let (status, message) = of("argo-stalled");
    assert_eq!(status, "Degraded");
    assert!(message.starts_with("TemplateNotFound: "), "{message}");
    assert_eq!(
        of("argo-unseen"),
        (
            "Progressing".into(),
            "its controller has not seen generation 2 yet".into()
        )
    );
    assert_eq!(
        of("argo-fresh"),
        ("Progressing".into(), "waiting for its controller".into())
    );
}

#[test]
fn the_chart_readme_carries_the_script_argo_cd_runs() {
    let readme = std::fs::read_to_string(repo().join("charts/phoenix/README.md")).unwrap();
    let script = std::fs::read_to_string(script()).unwrap();
    let indented: String = script
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".into()
            } else {
                format!("        {l}\n")
            }
        })
        .collect();
    assert!(
        readme.contains(&indented),
        "charts/phoenix/README.md must carry health.lua verbatim, indented as argocd-cm nests it"
    );
}
