//! What the `cargo fuzz` target (`apiserver/fuzz`) feeds arbitrary bytes to: every decoder
//! and validator a request body or query string reaches. None of them may panic. A unit
//! test runs the same entry point over a deterministic corpus, so CI exercises it too.

use crate::patch;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::ssa::{self, Scope};
use crate::validation::{CrdValidator, FieldValidation};
use serde_json::{Value, json};
use std::sync::OnceLock;

fn lxc_validator() -> &'static CrdValidator {
    static VALIDATOR: OnceLock<CrdValidator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let crd = phoenix_crds::all_crds()
            .into_iter()
            .find(|(f, _)| *f == "lxcguest.yaml")
            .expect("LxcGuest CRD")
            .1;
        CrdValidator::from_crd(&crd, phoenix_crds::VERSION).expect("the LxcGuest schema compiles")
    })
}

fn sample() -> Value {
    json!({"apiVersion": "phoenix.thinkheads.ai/v1alpha1", "kind": "LxcGuest",
           "metadata": {"name": "a", "finalizers": ["x"], "labels": {"app": "web"}},
           "spec": {"vmid": 801, "hostname": "a", "source": {"clone": {"vmid": 900}}, "rootfs": {"storage": "s", "size": "8G"}}})
}

pub fn decode_and_validate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = LabelSelector::parse(&text).map(|s| s.matches(&sample()));
    let _ = FieldSelector::parse(&text, &crate::events::SELECTABLE).map(|s| s.matches(&sample()));
    for kind in [
        "Secret",
        "ConfigMap",
        "Namespace",
        "SelfSubjectAccessReview",
    ] {
        let _ = crate::protobuf::decode(kind, data);
    }
    let parsed = serde_json::from_slice::<Value>(data)
        .ok()
        .or_else(|| serde_yaml_ng::from_slice::<Value>(data).ok());
    let Some(value) = parsed else { return };
    let mut object = value.clone();
    let _ = lxc_validator().admit(&mut object, Some(&sample()), FieldValidation::Strict);
    let _ = crate::events::to_events_v1(&crate::events::to_core(&value));
    let mut target = sample();
    let _ = patch::merge(&mut target, &value);
    let _ = patch::json(&mut target, &value);
    let _ = patch::strategic(&mut target, &value);
    let _ = ssa::apply(
        &sample(),
        &value,
        "fuzz",
        false,
        "v1",
        Scope::Main {
            status_is_subresource: true,
        },
        "now",
    );
    let mut tracked = value.clone();
    ssa::track_update(
        Some(&sample()),
        &mut tracked,
        "fuzz",
        "v1",
        Scope::Status,
        "now",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds from the examples and fixtures, then byte-level mutations of each, with a
    /// fixed xorshift so every run checks the same inputs.
    #[test]
    fn no_input_panics_the_decoders() {
        let root = &format!("{}/..", std::env::var("CARGO_MANIFEST_DIR").unwrap());
        let mut seeds: Vec<Vec<u8>> = ["examples", "tests/fixtures/invalid"]
            .iter()
            .flat_map(|d| std::fs::read_dir(format!("{root}/{d}")).unwrap())
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        seeds.push(br#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"move","from":"/a","path":"/b"}]"#.to_vec());
        seeds.push(b"a in (b,c),!d,e>3,f notin ()".to_vec());
        seeds.push(b"k8s\0\x0a\x02\x08\x01".to_vec());
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for seed in &seeds {
            decode_and_validate(seed);
            for _ in 0..40 {
                let mut input = seed.clone();
                for _ in 0..(1 + next() % 8) {
                    if input.is_empty() {
                        break;
                    }
                    let at = (next() as usize) % input.len();
                    match next() % 3 {
                        0 => input[at] = next() as u8,
                        1 => {
                            input.remove(at);
                        }
                        _ => input.truncate(at),
                    }
                }
                decode_and_validate(&input);
            }
        }
    }
}
