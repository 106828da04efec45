//! The kubectl conformance script (tests/kubectl/conformance.sh) against a real
//! `phoenix apiserver`, with the installed kubectl 1.32 and with kubectl 1.29.

mod support;

use std::path::Path;
use std::process::Command;

fn conformance(kubectl: &Path) {
    let server = support::ApiServer::start();
    let repo = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = Command::new("bash")
        .arg(Path::new(&repo).join("tests/kubectl/conformance.sh"))
        .arg(kubectl)
        .env("KUBECONFIG", &server.kubeconfig)
        .env("REPO", repo)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "conformance failed with {}:\n{stdout}\n{stderr}",
        kubectl.display()
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.ends_with("passed, 0 failed"), "{summary}");
    println!("{} {summary}", kubectl.display());
}

#[test]
fn kubectl_1_32_conforms() {
    conformance(Path::new("/usr/bin/kubectl"));
}

#[test]
fn kubectl_1_29_conforms() {
    conformance(&support::kubectl_129());
}
