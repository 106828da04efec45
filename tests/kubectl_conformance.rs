//! The kubectl conformance script (tests/kubectl/conformance.sh) against a real
//! `phoenix apiserver`, with the installed kubectl 1.32 and with kubectl 1.29.

mod support;

use std::path::Path;

fn conformance(kubectl: &Path) {
    let server = support::ApiServer::start();
    let summary = support::conformance(kubectl, &server.kubeconfig, &[]);
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
