//! The plan: from what PVE has (or nothing) to what the spec wants, as an ordered list of
//! steps, each saying whether it disrupts the guest. A value, so `phoenix plan` can print
//! it and tests can check it without any I/O.

use super::render;
use phoenix_crds::LxcGuestSpec;
use std::collections::BTreeMap;

/// Keys PVE applies to a running container only at its next start (they go pending).
const RESTART_KEYS: [&str; 5] = [
    "features",
    "hostname",
    "nameserver",
    "searchdomain",
    "unprivileged",
];

fn needs_restart(key: &str) -> bool {
    RESTART_KEYS.contains(&key) || key.starts_with("mp") || key.starts_with("dev")
}

/// One config key to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    pub from: Option<String>,
    /// None: delete the key.
    pub to: Option<String>,
    pub needs_restart: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create from the OS template with these parameters.
    Create {
        params: BTreeMap<String, String>,
    },
    /// Clone the template, then configure.
    Clone {
        source: u32,
        full: bool,
    },
    Configure {
        changes: Vec<Change>,
    },
    /// Grow the root disk (PVE never shrinks).
    Resize {
        size: String,
    },
    Start,
    /// Restart to apply changes that only take effect at start.
    Restart,
    /// Stop (before converting to a template).
    Stop,
    /// Convert into a template (`spec.template`).
    Template,
}

impl Step {
    /// The step's name in status and events.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Create { .. } => "Create",
            Step::Clone { .. } => "Clone",
            Step::Configure { .. } => "Configure",
            Step::Resize { .. } => "Resize",
            Step::Start => "Start",
            Step::Restart => "Restart",
            Step::Stop => "Stop",
            Step::Template => "Template",
        }
    }

    /// Whether the guest is disrupted (stopped or restarted) by this step.
    pub fn disrupts(&self) -> bool {
        matches!(self, Step::Restart | Step::Stop)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Create { params } => write!(
                f,
                "create from {}",
                params.get("ostemplate").map_or("?", String::as_str)
            ),
            Step::Clone { source, full } => write!(
                f,
                "{} clone of {source}",
                if *full { "full" } else { "linked" }
            ),
            Step::Configure { changes } => {
                write!(f, "configure")?;
                for c in changes {
                    let to = c.to.as_deref().unwrap_or("<delete>");
                    let restart = if c.needs_restart {
                        " (needs restart)"
                    } else {
                        ""
                    };
                    write!(
                        f,
                        "\n    {}: {} -> {to}{restart}",
                        c.key,
                        c.from.as_deref().unwrap_or("<unset>")
                    )?;
                }
                Ok(())
            }
            Step::Resize { size } => write!(f, "grow rootfs to {size}"),
            Step::Start => write!(f, "start"),
            Step::Restart => write!(f, "restart (to apply changes that need it)"),
            Step::Stop => write!(f, "stop"),
            Step::Template => write!(f, "convert to a template"),
        }
    }
}

/// What PVE reports about the guest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub config: BTreeMap<String, String>,
    pub running: bool,
}

/// The steps from `observed` (None: the guest does not exist) to `spec`.
pub fn plan(spec: &LxcGuestSpec, owner_uid: &str, observed: Option<&Observed>) -> Vec<Step> {
    let desired = render::config(spec, owner_uid);
    let Some(observed) = observed else {
        let mut steps = Vec::new();
        if let Some(clone) = &spec.source.clone {
            steps.push(Step::Clone {
                source: clone.vmid,
                full: clone.full,
            });
            steps.push(Step::Configure {
                changes: diff(&desired, &BTreeMap::new()),
            });
        } else {
            let mut params = desired;
            params.extend(render::create_only(spec));
            params.insert(
                "ostemplate".into(),
                spec.source.ostemplate.clone().unwrap_or_default(),
            );
            steps.push(Step::Create { params });
        }
        steps.push(if spec.template {
            Step::Template
        } else {
            Step::Start
        });
        return steps;
    };
    // A template is immutable: it is only ever cloned.
    if observed.config.get("template").is_some_and(|t| t == "1") {
        return Vec::new();
    }
    let mut steps = Vec::new();
    let changes = diff(&desired, &observed.config);
    let restart = observed.running && changes.iter().any(|c| c.needs_restart);
    if !changes.is_empty() {
        steps.push(Step::Configure { changes });
    }
    if let Some(size) = grow_to(spec, &observed.config) {
        steps.push(Step::Resize { size });
    }
    if spec.template {
        if observed.running {
            steps.push(Step::Stop);
        }
        steps.push(Step::Template);
    } else if restart {
        steps.push(Step::Restart);
    } else if !observed.running {
        steps.push(Step::Start);
    }
    steps
}

/// Keys whose observed value differs from the desired one. NICs compare by the fields
/// Phoenix sets, so PVE's generated MAC does not count as drift.
pub fn diff(
    desired: &BTreeMap<String, String>,
    observed: &BTreeMap<String, String>,
) -> Vec<Change> {
    desired
        .iter()
        .filter(|(key, want)| !same(key, want, observed.get(*key)))
        .map(|(key, want)| Change {
            key: key.clone(),
            from: observed.get(key).cloned(),
            to: Some(want.clone()),
            needs_restart: needs_restart(key),
        })
        .collect()
}

fn same(key: &str, want: &str, have: Option<&String>) -> bool {
    let Some(have) = have else { return false };
    if key.starts_with("net") {
        let fields = |s: &str| -> BTreeMap<String, String> {
            s.split(',')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.into(), v.into()))
                .collect()
        };
        let (want, have) = (fields(want), fields(have));
        return want.iter().all(|(k, v)| have.get(k) == Some(v));
    }
    want == have
}

fn grow_to(spec: &LxcGuestSpec, observed: &BTreeMap<String, String>) -> Option<String> {
    let have: f64 = observed
        .get("rootfs")?
        .split("size=")
        .nth(1)?
        .trim_end_matches(|c: char| !c.is_ascii_digit() && c != '.')
        .parse()
        .ok()?;
    let want: f64 = render::gib(&spec.rootfs.size).parse().ok()?;
    (want > have).then(|| format!("{want}G"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(file: &str) -> LxcGuestSpec {
        let text =
            std::fs::read_to_string(format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        serde_yaml_ng::from_str::<phoenix_crds::LxcGuest>(&text)
            .unwrap()
            .spec
    }

    #[test]
    fn a_new_guest_is_cloned_configured_and_started() {
        let steps = plan(&example("lxc-801.yaml"), "uid", None);
        assert_eq!(
            steps[0],
            Step::Clone {
                source: 900,
                full: true
            }
        );
        assert!(
            matches!(&steps[1], Step::Configure { changes } if changes.iter().any(|c| c.key == "dev0"))
        );
        assert_eq!(steps[2], Step::Start);
        let template = plan(&example("lxc-900.yaml"), "uid", None);
        assert!(
            matches!(&template[0], Step::Create { params } if params["ostemplate"].ends_with("ubuntu-24.04-standard_24.04-2_amd64.tar.zst"))
        );
        assert_eq!(
            template[1],
            Step::Template,
            "a template is converted, not started"
        );
        let mut converted = render::config(&example("lxc-900.yaml"), "uid");
        converted.insert("template".into(), "1".into());
        converted.insert("memory".into(), "1".into());
        let observed = Observed {
            config: converted,
            running: false,
        };
        assert!(
            plan(&example("lxc-900.yaml"), "uid", Some(&observed)).is_empty(),
            "a template is left as it is"
        );
    }

    #[test]
    fn a_converged_guest_needs_nothing_and_drift_is_one_change() {
        let spec = example("lxc-103.yaml");
        let mut config = render::config(&spec, "uid");
        config.insert("rootfs".into(), "fastData:subvol-103-disk-0,size=8G".into());
        config.insert(
            "net0".into(),
            format!("{},hwaddr=BC:24:11:00:00:67,type=veth", config["net0"]),
        );
        let observed = Observed {
            config: config.clone(),
            running: true,
        };
        assert_eq!(
            plan(&spec, "uid", Some(&observed)),
            vec![],
            "steady state: nothing to do"
        );
        let mut drifted = observed.clone();
        drifted.config.insert("memory".into(), "4096".into());
        let steps = plan(&spec, "uid", Some(&drifted));
        assert_eq!(
            steps,
            vec![Step::Configure {
                changes: vec![Change {
                    key: "memory".into(),
                    from: Some("4096".into()),
                    to: Some("1024".into()),
                    needs_restart: false
                }]
            }]
        );
        let mut features = observed;
        features
            .config
            .insert("features".into(), "nesting=1,keyctl=1".into());
        let mut spec_with_features = spec.clone();
        spec_with_features.features = Some(phoenix_crds::lxc::LxcFeatures {
            nesting: true,
            ..Default::default()
        });
        let steps = plan(&spec_with_features, "uid", Some(&features));
        assert_eq!(
            steps.last(),
            Some(&Step::Restart),
            "features apply at the next start"
        );
    }

    #[test]
    fn the_root_disk_only_grows() {
        let mut spec = example("lxc-103.yaml");
        let mut config = render::config(&spec, "uid");
        config.insert("rootfs".into(), "fastData:subvol-103-disk-0,size=8G".into());
        spec.rootfs.size = "16G".into();
        let steps = plan(
            &spec,
            "uid",
            Some(&Observed {
                config: config.clone(),
                running: true,
            }),
        );
        assert_eq!(steps, vec![Step::Resize { size: "16G".into() }]);
        spec.rootfs.size = "4G".into();
        assert!(
            plan(
                &spec,
                "uid",
                Some(&Observed {
                    config,
                    running: true
                })
            )
            .is_empty()
        );
    }
}
