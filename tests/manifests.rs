//! The API as files: the checked-in CRDs match the Rust types and are structural, every
//! example is accepted by the API server's admission (strict field validation, schema, CEL)
//! and refers only to objects that exist, and every invalid fixture is refused with a
//! message naming the field.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use phoenix_apiserver::validation::{CrdValidator, FieldValidation};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Admission for every Phoenix kind, keyed by kind.
fn validators() -> BTreeMap<String, CrdValidator> {
    phoenix_crds::all_crds()
        .into_iter()
        .map(|(_, crd)| {
            let v =
                CrdValidator::from_crd(&crd, phoenix_crds::VERSION).expect("CRD schema compiles");
            (crd.spec.names.kind, v)
        })
        .collect()
}

#[test]
fn checked_in_crds_match_the_rust_types() {
    for dir in ["crds/yaml", "charts/phoenix/files/crds"] {
        for (file, crd) in phoenix_crds::all_crds() {
            let path = repo().join(dir).join(file);
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == phoenix_crds::crd_yaml(&crd),
                "{} is out of date with crds/src: run `make crds` and commit the result",
                path.display()
            );
        }
        assert_eq!(
            yaml_files(dir).len(),
            phoenix_crds::all_crds().len(),
            "{dir} holds a file no kind owns"
        );
    }
}

#[test]
fn crds_are_structural_kubernetes_crds() {
    for path in yaml_files("crds/yaml") {
        let docs = yaml_documents(&path);
        assert_eq!(docs.len(), 1, "{}: one CRD per file", path.display());
        let crd: CustomResourceDefinition = serde_json::from_value(docs[0].clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(crd.spec.group, phoenix_crds::GROUP);
        assert!(
            crd.spec
                .names
                .categories
                .as_ref()
                .unwrap()
                .contains(&"phoenix".to_string())
        );
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|s| !s.is_empty())
        );
        for version in &crd.spec.versions {
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
            let schema = &docs[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let mut holes = Vec::new();
            find_untyped(schema, "openAPIV3Schema", &mut holes);
            assert!(
                holes.is_empty(),
                "{}: untyped or open schema nodes: {holes:?}",
                path.display()
            );
        }
    }
}

/// Structural means every node has a type (int-or-string aside) and nothing keeps unknown
/// fields; maps must say what their values are.
fn find_untyped(schema: &Value, path: &str, holes: &mut Vec<String>) {
    let typed = schema.get("type").is_some() || schema.get("x-kubernetes-int-or-string").is_some();
    if !typed || schema.get("x-kubernetes-preserve-unknown-fields").is_some() {
        holes.push(path.to_owned());
    }
    for junctor in ["oneOf", "anyOf", "allOf", "not"] {
        if schema.get(junctor).is_some() {
            holes.push(format!("{path}.{junctor}"));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            find_untyped(prop, &format!("{path}.{name}"), holes);
        }
    }
    match schema.get("additionalProperties") {
        Some(Value::Object(_)) => find_untyped(
            &schema["additionalProperties"],
            &format!("{path}[*]"),
            holes,
        ),
        Some(other) => holes.push(format!("{path}.additionalProperties={other}")),
        None => {}
    }
    if let Some(items) = schema.get("items") {
        find_untyped(items, &format!("{path}[]"), holes);
    }
}

#[test]
fn every_example_is_admitted_unchanged_in_meaning() {
    let validators = validators();
    let mut phoenix_objects = 0;
    for path in yaml_files("examples") {
        let docs = yaml_documents(&path);
        assert_eq!(docs.len(), 1, "{}: one object per file", path.display());
        let mut object = docs[0].clone();
        let kind = object["kind"].as_str().unwrap().to_owned();
        let Some(validator) = validators.get(&kind) else {
            assert!(
                ["Namespace", "Secret", "ConfigMap"].contains(&kind.as_str()),
                "{}: unexpected kind {kind}",
                path.display()
            );
            continue;
        };
        assert_eq!(
            object["apiVersion"],
            format!("{}/{}", phoenix_crds::GROUP, phoenix_crds::VERSION)
        );
        let warnings = validator
            .admit(&mut object, None, FieldValidation::Strict)
            .unwrap_or_else(|r| {
                panic!(
                    "{}: {}",
                    path.display(),
                    r.message(&kind, phoenix_crds::GROUP, "v1alpha1", "x")
                )
            });
        assert!(warnings.is_empty());
        // Defaults may be added; nothing the example says may be dropped or changed.
        assert_subset(&docs[0], &object, &path.display().to_string());
        phoenix_objects += 1;
    }
    assert!(
        phoenix_objects >= 20,
        "the examples describe the whole platform"
    );
}

fn assert_subset(given: &Value, admitted: &Value, at: &str) {
    match (given, admitted) {
        (Value::Object(g), Value::Object(a)) => {
            for (k, v) in g {
                let got = a.get(k).unwrap_or_else(|| panic!("{at}.{k} was pruned"));
                assert_subset(v, got, &format!("{at}.{k}"));
            }
        }
        (Value::Array(g), Value::Array(a)) => {
            assert_eq!(g.len(), a.len(), "{at} changed length on admission");
            for (i, (g, a)) in g.iter().zip(a).enumerate() {
                assert_subset(g, a, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(given, admitted, "{at} changed on admission"),
    }
}

#[test]
fn examples_describe_the_platform_and_every_reference_resolves() {
    let objects: Vec<Value> = yaml_files("examples")
        .iter()
        .flat_map(|p| yaml_documents(p))
        .collect();
    // Defined: every example object, and the Secret a Portainer bootstrap writes.
    let produced = objects.iter().filter_map(|o| {
        let name = o["spec"]["portainerBootstrap"]["apiKeySecretRef"]["name"].as_str()?;
        Some(("Secret".to_owned(), name.to_owned()))
    });
    let named: BTreeSet<(String, String)> = objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_owned(),
                o["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .chain(produced)
        .collect();
    let vmids: BTreeSet<u64> = objects
        .iter()
        .filter_map(|o| o["spec"]["vmid"].as_u64())
        .collect();
    assert_eq!(
        vmids,
        BTreeSet::from([101, 102, 103, 801, 900, 914, 1001, 1002, 9000])
    );
    let clone_sources: BTreeSet<u64> = objects
        .iter()
        .filter_map(|o| o["spec"]["source"]["clone"]["vmid"].as_u64())
        .collect();
    assert!(
        clone_sources.is_subset(&vmids),
        "clone sources {clone_sources:?} are examples too"
    );

    let mut references = Vec::new();
    for object in &objects {
        collect_references(&object["spec"], &mut references);
    }
    assert!(references.len() > 20);
    for (kind, name) in references {
        assert!(
            named.contains(&(kind.clone(), name.clone())),
            "{kind} {name} is referenced but not defined"
        );
    }
}

/// `{kind, name}` pairs (dependsOn, guestRef) and the typed refs whose kind is implied.
fn collect_references(value: &Value, out: &mut Vec<(String, String)>) {
    let implied = [
        ("certificateRef", "Certificate"),
        ("tlsCertificateRef", "Certificate"),
        ("managerRef", "VmGuest"),
        ("clusterRef", "ProxmoxCluster"),
        ("credentialsSecretRef", "Secret"),
        ("apiKeySecretRef", "Secret"),
        ("secretKeyRef", "Secret"),
        ("script", "ConfigMap"),
    ];
    match value {
        Value::Object(map) => {
            if let (Some(kind), Some(name)) = (
                map.get("kind").and_then(Value::as_str),
                map.get("name").and_then(Value::as_str),
            ) {
                out.push((kind.to_owned(), name.to_owned()));
            }
            for (key, child) in map {
                if let Some((_, kind)) = implied.iter().find(|(k, _)| k == key) {
                    out.push((kind.to_string(), child["name"].as_str().unwrap().to_owned()));
                }
                collect_references(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_references(i, out)),
        _ => {}
    }
}

#[test]
fn invalid_fixtures_are_refused_naming_the_field() {
    let validators = validators();
    let files = yaml_files("tests/fixtures/invalid");
    assert!(files.len() >= 7);
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no `# expect:` line", path.display()));
        let docs = yaml_documents(&path);
        let kind = docs[0]["kind"].as_str().unwrap();
        let validator = &validators[kind];
        // Two documents: the stored object, then the update that must be refused.
        let (old, mut new) = match docs.as_slice() {
            [one] => (None, one.clone()),
            [stored, update] => {
                let mut stored = stored.clone();
                validator
                    .admit(&mut stored, None, FieldValidation::Strict)
                    .expect("the stored object is valid");
                (Some(stored), update.clone())
            }
            _ => panic!("{}: one or two documents", path.display()),
        };
        let name = new["metadata"]["name"].as_str().unwrap().to_owned();
        let rejection = validator
            .admit(&mut new, old.as_ref(), FieldValidation::Strict)
            .expect_err(&format!("{} must be refused", path.display()));
        let message = rejection.message(kind, phoenix_crds::GROUP, phoenix_crds::VERSION, &name);
        assert!(
            message.contains(expected),
            "{}:\n  expected: {expected}\n  got:      {message}",
            path.display()
        );
    }
}
