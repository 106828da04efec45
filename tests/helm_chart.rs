//! The Helm chart, checked with a real Helm 3 (`make test` installs it through
//! shared/tools/get-helm.sh; set HELM to use another): it lints, renders objects that parse
//! as their Kubernetes types, carries the CRDs behind `crds.enabled` (kept on uninstall by
//! default), grants only what the controllers touch, and refuses values its schema forbids.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

fn chart() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("charts/phoenix")
}

fn run_helm(args: &[&str]) -> Output {
    Command::new(support::helm())
        .args(args)
        .output()
        .expect("helm runs")
}

fn render(sets: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "phoenix",
        chart.to_str().unwrap(),
        "--namespace",
        "phoenix-system",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = run_helm(&args);
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn chart_lints_clean() {
    let out = run_helm(&["lint", "--strict", chart().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rendered_objects_parse_as_their_types() {
    let objects = render(&[]);
    for object in &objects {
        let kind = object["kind"].as_str().unwrap();
        let parsed = match kind {
            "ServiceAccount" => serde_json::from_value::<ServiceAccount>(object.clone()).map(drop),
            "CustomResourceDefinition" => {
                serde_json::from_value::<CustomResourceDefinition>(object.clone()).map(drop)
            }
            "ClusterRole" => serde_json::from_value::<ClusterRole>(object.clone()).map(drop),
            "ClusterRoleBinding" => {
                serde_json::from_value::<ClusterRoleBinding>(object.clone()).map(drop)
            }
            "Role" => serde_json::from_value::<Role>(object.clone()).map(drop),
            "RoleBinding" => serde_json::from_value::<RoleBinding>(object.clone()).map(drop),
            "Service" => serde_json::from_value::<Service>(object.clone()).map(drop),
            "Deployment" => serde_json::from_value::<Deployment>(object.clone()).map(drop),
            other => panic!("unexpected kind {other} in the chart"),
        };
        parsed.unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
    let deployment: Deployment =
        serde_json::from_value(of_kind(&objects, "Deployment")[0].clone()).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(container.args.as_ref().unwrap()[0], "controller");
    let resources = container.resources.as_ref().unwrap();
    assert!(resources.requests.is_some() && resources.limits.is_some());
    assert_eq!(
        container.ports.as_ref().unwrap()[0].name.as_deref(),
        Some("metrics")
    );
}

#[test]
fn crds_follow_crds_enabled_and_keep() {
    let crds = render(&[]);
    let names: BTreeSet<String> = of_kind(&crds, "CustomResourceDefinition")
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = phoenix_crds::all_crds()
        .into_iter()
        .map(|(_, crd)| crd.metadata.name.unwrap())
        .collect();
    assert_eq!(names, expected);
    for crd in of_kind(&crds, "CustomResourceDefinition") {
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
    let not_kept = render(&["crds.keep=false"]);
    for crd in of_kind(&not_kept, "CustomResourceDefinition") {
        assert!(
            crd["metadata"]["annotations"]
                .get("helm.sh/resource-policy")
                .is_none()
        );
    }
    assert!(of_kind(&render(&["crds.enabled=false"]), "CustomResourceDefinition").is_empty());
}

#[test]
fn rbac_grants_only_what_controllers_touch() {
    let objects = render(&[]);
    let role: ClusterRole =
        serde_json::from_value(of_kind(&objects, "ClusterRole")[0].clone()).unwrap();
    let mut granted = BTreeSet::new();
    for rule in role.rules.unwrap() {
        assert!(
            !rule.verbs.contains(&"*".to_string()) && !rule.verbs.contains(&"delete".to_string())
        );
        for resource in rule.resources.unwrap() {
            granted.insert(resource);
        }
    }
    let mut expected: BTreeSet<String> =
        ["secrets", "configmaps", "events"].map(String::from).into();
    for (_, crd) in phoenix_crds::all_crds() {
        let plural = crd.spec.names.plural;
        expected.extend([
            format!("{plural}/status"),
            format!("{plural}/finalizers"),
            plural,
        ]);
    }
    assert_eq!(granted, expected);
    let lease_role: Role = serde_json::from_value(of_kind(&objects, "Role")[0].clone()).unwrap();
    assert_eq!(
        lease_role.rules.unwrap()[0].resources.as_ref().unwrap(),
        &vec!["leases".to_string()]
    );
}

#[test]
fn values_schema_refuses_bad_values() {
    let chart = chart();
    for (set, field) in [
        ("replicaCount=two", "replicaCount"),
        ("logFormat=xml", "logFormat"),
        ("nosuch=1", "nosuch"),
    ] {
        let out = run_helm(&["template", "phoenix", chart.to_str().unwrap(), "--set", set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--set {set} must be refused");
        assert!(
            stderr.contains(field),
            "--set {set}: error should name {field}: {stderr}"
        );
    }
}

/// The root filesystem is read-only; `/tmp` is an emptyDir so what needs a scratch file
/// (SSH host-key checks, the ACME client's trust material) can write one.
#[test]
fn tmp_is_writable_under_a_read_only_root() {
    let objects = render(&[]);
    let deployment: Deployment =
        serde_json::from_value(of_kind(&objects, "Deployment")[0].clone()).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem),
        Some(true)
    );
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/tmp")
        .expect("a volume is mounted at /tmp");
    assert_ne!(mount.read_only, Some(true), "/tmp is writable");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the /tmp mount names a volume of the pod");
    assert!(
        volume.empty_dir.is_some(),
        "/tmp is an emptyDir: {volume:?}"
    );
}
