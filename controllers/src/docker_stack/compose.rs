//! The compose file a stack deploys: checked before anything is sent (what Swarm would
//! refuse, refused here with the path of the problem), and its revision — a hash of the
//! content and the env — which says whether what runs is what the spec asks for.

use serde_yaml_ng::Value;

/// Top-level keys of a compose file that `docker stack deploy` reads (`x-` extensions too).
const TOP_LEVEL: [&str; 7] = [
    "version", "name", "services", "networks", "volumes", "configs", "secrets",
];

/// Why `content` cannot be deployed, naming the place: not YAML, an unknown top-level
/// key, no services, a service without an image (Swarm does not build).
pub fn check(content: &str) -> Result<(), String> {
    let document: Value = serde_yaml_ng::from_str(content)
        .map_err(|e| format!("the compose file is not valid YAML: {e}"))?;
    let Some(top) = document.as_mapping() else {
        return Err("the compose file is not a mapping of top-level keys".into());
    };
    for key in top.keys() {
        let key = key.as_str().unwrap_or_default();
        if !TOP_LEVEL.contains(&key) && !key.starts_with("x-") {
            return Err(format!(
                "the compose file has an unknown top-level key {key:?} (known: {})",
                TOP_LEVEL.join(", ")
            ));
        }
    }
    let services = document
        .get("services")
        .and_then(Value::as_mapping)
        .filter(|s| !s.is_empty())
        .ok_or("the compose file defines no services")?;
    for (name, service) in services {
        let name = name.as_str().unwrap_or_default();
        let image = service
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if image.trim().is_empty() {
            return Err(format!(
                "services.{name}.image: required (a Swarm stack runs images; it does not build)"
            ));
        }
    }
    Ok(())
}

/// The revision of `content` deployed with `env`: the same for the same file and values
/// in any order, different when either changes. Values are hashed, never shown.
pub fn revision(content: &str, env: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = env.iter().collect();
    sorted.sort();
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(content.as_bytes());
    for (name, value) in sorted {
        for part in [name.as_bytes(), b"\0", value.as_bytes(), b"\0"] {
            context.update(part);
        }
    }
    let digest = context.finish();
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_swarm_refuses_is_refused_with_its_place() {
        let table = [
            ("services:\n  web:\n    image: nginx:1.27\n", Ok(())),
            (
                "version: '3.8'\nx-common: {a: 1}\nservices: {web: {image: nginx}}\nvolumes: {}\n",
                Ok(()),
            ),
            ("services: [", Err("not valid YAML")),
            ("- a\n- b\n", Err("not a mapping")),
            (
                "service:\n  web: {image: nginx}\n",
                Err("unknown top-level key \"service\""),
            ),
            ("version: '3'\n", Err("defines no services")),
            (
                "services:\n  web:\n    build: .\n",
                Err("services.web.image: required"),
            ),
            (
                "services:\n  web: {image: ''}\n",
                Err("services.web.image: required"),
            ),
        ];
        for (content, expected) in table {
            match (check(content), expected) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(want)) => assert!(got.contains(want), "{content:?}: {got}"),
                (got, want) => panic!("{content:?}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn the_revision_follows_content_and_env_not_their_order() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        let a = revision("services: {}", &env(&[("A", "1"), ("B", "2")]));
        assert_eq!(a, revision("services: {}", &env(&[("B", "2"), ("A", "1")])));
        assert_ne!(a, revision("services: {}", &env(&[("A", "1"), ("B", "3")])));
        assert_ne!(
            a,
            revision("services: {} ", &env(&[("A", "1"), ("B", "2")]))
        );
        // A value cannot move into the name beside it.
        assert_ne!(
            revision("", &env(&[("AB", "")])),
            revision("", &env(&[("A", "B")]))
        );
        assert!(a.starts_with("sha256:") && a.len() == 23);
    }
}
