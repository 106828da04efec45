//! The part of the Compose file format a swarm stack deploy reads: services with their
//! image, environment, deploy mode, replicas, placement constraints and ports, after
//! `${VAR}` interpolation from the deploying process's environment (as Docker does).

use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// One service of a compose file.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    /// Environment variable names (values are dropped: they may be secrets).
    pub env: Vec<String>,
    /// `None` for global mode, else the replica count.
    pub replicas: Option<u32>,
    pub constraints: Vec<Constraint>,
    pub ports: Vec<String>,
}

/// A placement constraint: `node.<field> == value` or `!=`.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    pub text: String,
    pub field: Field,
    pub equal: bool,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    Role,
    Hostname,
    Id,
    Label(String),
}

/// What a constraint is matched against.
pub struct NodeFacts<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    pub role: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (left, value, equal) = match (text.split_once("!="), text.split_once("==")) {
            (Some((l, v)), _) => (l, v, false),
            (None, Some((l, v))) => (l, v, true),
            _ => {
                return Err(format!(
                    "invalid constraint: constraint expected one operator from ==, !=: {text}"
                ));
            }
        };
        let field = match left.trim() {
            "node.role" => Field::Role,
            "node.hostname" => Field::Hostname,
            "node.id" => Field::Id,
            other => match other.strip_prefix("node.labels.") {
                Some(key) if !key.is_empty() => Field::Label(key.to_owned()),
                _ => return Err(format!("invalid constraint: unsupported key {other}")),
            },
        };
        Ok(Self {
            text: text.to_owned(),
            field,
            equal,
            value: value.trim().to_owned(),
        })
    }

    pub fn matches(&self, node: &NodeFacts) -> bool {
        let actual = match &self.field {
            Field::Role => Some(node.role),
            Field::Hostname => Some(node.hostname),
            Field::Id => Some(node.id),
            Field::Label(key) => node.labels.get(key).map(String::as_str),
        };
        (actual == Some(self.value.as_str())) == self.equal
    }
}

/// Parses a compose file with `env` (`NAME=value` pairs) filling `${VAR}`, `$VAR` and
/// `${VAR:-default}`. Errors are Docker's texts.
pub fn parse(text: &str, env: &BTreeMap<String, String>) -> Result<Vec<ServiceSpec>, String> {
    let mut doc: Value = serde_yaml_ng::from_str(text).map_err(|e| format!("yaml: {e}"))?;
    interpolate_value(&mut doc, env)?;
    let root = match doc {
        Value::Mapping(m) => m,
        Value::Null => return Ok(Vec::new()),
        _ => return Err("Top-level object must be a mapping".into()),
    };
    let services = match root.get("services") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Mapping(m)) => m,
        Some(_) => return Err("services must be a mapping".into()),
    };
    services
        .iter()
        .map(|(name, body)| {
            let name = name.as_str().ok_or("service names must be strings")?;
            service(name, body)
        })
        .collect()
}

fn service(name: &str, body: &Value) -> Result<ServiceSpec, String> {
    let image = body
        .get("image")
        .and_then(scalar)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            format!("Service {name}: Error response from daemon: rpc error: code = InvalidArgument desc = ContainerSpec: image reference must be provided")
        })?;
    let deploy = body.get("deploy");
    let mode = deploy
        .and_then(|d| d.get("mode"))
        .and_then(scalar)
        .unwrap_or_else(|| "replicated".into());
    let replicas = match mode.as_str() {
        "global" => None,
        "replicated" => Some(match deploy.and_then(|d| d.get("replicas")) {
            None => 1,
            Some(v) => scalar(v)
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| format!("services.{name}.deploy.replicas must be a integer"))?,
        }),
        other => {
            return Err(format!(
                "services.{name}.deploy.mode: unknown mode {other:?}"
            ));
        }
    };
    let constraints = deploy
        .and_then(|d| d.get("placement"))
        .and_then(|p| p.get("constraints"))
        .map(|c| strings(c).iter().map(|t| Constraint::parse(t)).collect())
        .transpose()?
        .unwrap_or_default();
    Ok(ServiceSpec {
        name: name.to_owned(),
        image,
        env: env_names(body.get("environment")),
        replicas,
        constraints,
        ports: body.get("ports").map(ports).unwrap_or_default(),
    })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// `environment` as a map or as a `NAME=value` list.
fn env_names(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Mapping(m)) => m.keys().filter_map(scalar).collect(),
        Some(Value::Sequence(_)) => strings(v.unwrap_or(&Value::Null))
            .iter()
            .map(|e| e.split('=').next().unwrap_or_default().to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// Ports as Docker lists them: `*:PUBLISHED->TARGET/PROTO`.
fn ports(v: &Value) -> Vec<String> {
    let Some(items) = v.as_sequence() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|p| match p {
            Value::Mapping(_) => {
                let target = p.get("target").and_then(scalar)?;
                let published = p.get("published").and_then(scalar).unwrap_or_default();
                let proto = p.get("protocol").and_then(scalar).unwrap_or("tcp".into());
                Some(format!("*:{published}->{target}/{proto}"))
            }
            other => {
                let text = scalar(other)?;
                let (mapping, proto) = text.split_once('/').unwrap_or((&text, "tcp"));
                let (published, target) = mapping.rsplit_once(':').unwrap_or(("", mapping));
                let published = published.rsplit(':').next().unwrap_or_default();
                Some(format!("*:{published}->{target}/{proto}"))
            }
        })
        .collect()
}

fn interpolate_value(v: &mut Value, env: &BTreeMap<String, String>) -> Result<(), String> {
    match v {
        Value::String(s) => *s = interpolate(s, env)?,
        Value::Sequence(items) => {
            for item in items {
                interpolate_value(item, env)?;
            }
        }
        Value::Mapping(m) => {
            for (_, item) in m.iter_mut() {
                interpolate_value(item, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Fills `${VAR}`, `$VAR`, `${VAR:-default}`, `${VAR-default}`; `$$` is a literal `$`.
/// An unset variable becomes the empty string, as Docker does (with a warning).
pub fn interpolate(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("Invalid template: {text:?}"))?;
            out.push_str(&braced_value(&braced[..end], env, text)?);
            rest = &braced[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                return Err(format!("Invalid template: {text:?}"));
            }
            out.push_str(env.get(&after[..len]).map_or("", String::as_str));
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn braced_value(inner: &str, env: &BTreeMap<String, String>, text: &str) -> Result<String, String> {
    let name_len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, op) = inner.split_at(name_len);
    if name.is_empty() {
        return Err(format!("Invalid template: {text:?}"));
    }
    let value = env.get(name);
    match op {
        "" => Ok(value.cloned().unwrap_or_default()),
        _ if op.starts_with(":-") => Ok(value
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| op[2..].to_owned())),
        _ if op.starts_with('-') => Ok(value.cloned().unwrap_or_else(|| op[1..].to_owned())),
        _ if op.starts_with(":?") || op.starts_with('?') => value
            .filter(|v| !v.is_empty() || !op.starts_with(':'))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "required variable {name} is missing a value: {}",
                    op.trim_start_matches([':', '?'])
                )
            }),
        _ => Err(format!("Invalid template: {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn interpolation_fills_braced_bare_and_default_forms() {
        let e = env(&[("A", "1"), ("EMPTY", "")]);
        assert_eq!(interpolate("x${A}y$A-$$A", &e).unwrap(), "x1y1-$A");
        assert_eq!(
            interpolate("${B:-dflt}/${EMPTY:-d}/${EMPTY-d}", &e).unwrap(),
            "dflt/d/"
        );
        assert_eq!(interpolate("${MISSING}", &e).unwrap(), "");
        assert!(interpolate("${A", &e).is_err());
        assert!(
            interpolate("${NEED:?set it}", &e)
                .unwrap_err()
                .contains("NEED")
        );
    }

    #[test]
    fn services_read_image_mode_replicas_constraints_env_and_ports() {
        let file = "version: '3.8'\nservices:\n  web:\n    image: nginx:${TAG:-1.27}\n    environment:\n      TOKEN: ${TOKEN}\n    ports: ['8080:80', {target: 443, published: 8443}]\n    deploy:\n      replicas: 2\n      placement:\n        constraints: [node.role == worker, node.labels.gpu != 'no']\n  agent:\n    image: portainer/agent\n    environment: [A=1, B]\n    deploy: {mode: global}\n";
        let services = parse(file, &env(&[("TOKEN", "s3cret")])).unwrap();
        let web = services.iter().find(|s| s.name == "web").unwrap();
        assert_eq!(web.image, "nginx:1.27");
        assert_eq!(web.replicas, Some(2));
        assert_eq!(web.env, vec!["TOKEN"]);
        assert_eq!(web.ports, vec!["*:8080->80/tcp", "*:8443->443/tcp"]);
        assert_eq!(web.constraints[0].field, Field::Role);
        assert_eq!(web.constraints[1].field, Field::Label("gpu".into()));
        assert!(!web.constraints[1].equal);
        let agent = services.iter().find(|s| s.name == "agent").unwrap();
        assert_eq!(
            (agent.replicas, agent.env.clone()),
            (None, vec!["A".into(), "B".into()])
        );
    }

    #[test]
    fn constraints_match_role_hostname_and_labels() {
        let labels = env(&[("zone", "a")]);
        let node = NodeFacts {
            id: "n1",
            hostname: "vm1",
            role: "worker",
            labels: &labels,
        };
        for (text, expected) in [
            ("node.role == worker", true),
            ("node.role==manager", false),
            ("node.hostname != vm1", false),
            ("node.labels.zone == a", true),
            ("node.labels.other == a", false),
            ("node.labels.other != a", true),
        ] {
            assert_eq!(
                Constraint::parse(text).unwrap().matches(&node),
                expected,
                "{text}"
            );
        }
        assert!(Constraint::parse("node.role ~ x").is_err());
        assert!(Constraint::parse("engine.x == y").is_err());
    }

    #[test]
    fn invalid_files_get_docker_s_errors() {
        assert!(
            parse("services: [", &env(&[]))
                .unwrap_err()
                .starts_with("yaml: ")
        );
        assert!(
            parse("services:\n  a: {}\n", &env(&[]))
                .unwrap_err()
                .contains("image reference must be provided")
        );
        assert!(parse("- 1\n", &env(&[])).unwrap_err().contains("mapping"));
        assert!(
            parse(
                "services:\n  a: {image: x, deploy: {replicas: many}}\n",
                &env(&[])
            )
            .is_err()
        );
    }
}
