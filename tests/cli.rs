//! The `phoenix` command line as users meet it: `phoenix crds` prints every CRD, and
//! commands that cannot do their work say why on stderr and fail.

use std::process::Command;

fn phoenix(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_phoenix"))
        .args(args)
        .output()
        .expect("phoenix runs")
}

#[test]
fn crds_prints_one_document_per_kind() {
    let out = phoenix(&["crds"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, phoenix_crds::all_crds_yaml());
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 7);
}

#[test]
fn sim_pct_without_a_simulator_fails_as_pct_does() {
    let out = phoenix(&[
        "sim",
        "pct",
        "--credentials",
        "/nonexistent/sim.json",
        "exec",
        "101",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(255), "pct's own failures exit 255");
    assert!(out.stdout.is_empty(), "it must not pretend on stdout");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/sim.json"));
}

#[test]
fn plan_and_controller_without_a_cluster_fail_and_say_why() {
    for args in [
        &["plan", "-f", "examples/lxc-801.yaml"][..],
        &["controller"][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phoenix"))
            .args(args)
            .current_dir(std::env::var("CARGO_MANIFEST_DIR").unwrap())
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "phoenix {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("phoenix {}:", args[0])),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn bad_usage_is_refused_by_clap() {
    let out = phoenix(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
}

/// Simulate mode's stand-ins are used only with --simulate, and only on loopback: a
/// `--sim-*` flag alone would otherwise be ignored and the manifests' real addresses
/// reached.
#[test]
fn simulated_peers_need_simulate_and_loopback() {
    for command in ["up", "controller"] {
        let out = phoenix(&[command, "--sim-pve-credentials", "/nonexistent/sim.json"]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--simulate"), "{command}: {stderr}");
    }
    let out = phoenix(&[
        "controller",
        "--simulate",
        "--sim-pve-credentials",
        "x.json",
        "--sim-ssh",
        "10.0.0.1:22",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"));
}

#[test]
fn a_simulator_off_loopback_or_a_public_challenge_listener_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = |admin: &str| {
        let file = dir.path().join("sim.json");
        let json = serde_json::json!({
            "url": "https://127.0.0.1:1", "token_id": "t", "token_secret": "s", "user": "u",
            "password": "p", "fingerprint": "f", "admin_url": admin,
        });
        std::fs::write(&file, json.to_string()).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let loopback = credentials("https://127.0.0.1:1/admin");
    let out = phoenix(&[
        "controller",
        "--simulate",
        "--sim-pve-credentials",
        &loopback,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--acme-http01-listen must be on loopback"),
        "{stderr}"
    );
    let off = credentials("https://10.0.0.5:8006/admin");
    let out = phoenix(&[
        "controller",
        "--simulate",
        "--sim-pve-credentials",
        &off,
        "--acme-http01-listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
