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
    /// Grow a disk, `rootfs` or `mpN` (PVE never shrinks).
    Resize {
        disk: String,
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
            Step::Resize { disk, size } => write!(f, "grow {disk} to {size}"),
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
    steps.extend(disks(spec).into_iter().filter_map(|(disk, size)| {
        grow_to(&disk, &size, &observed.config).map(|size| Step::Resize { disk, size })
    }));
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
            to: Some(keep_mac(key, want, observed.get(key))),
            needs_restart: needs_restart(key),
        })
        .collect()
}

/// A NIC rewritten without a MAC in the spec keeps the one PVE gave it (PVE would
/// otherwise make up a new one, and DHCP leases and firewall rules would follow).
fn keep_mac(key: &str, want: &str, have: Option<&String>) -> String {
    let live_mac = have
        .filter(|_| key.starts_with("net") && !want.contains("hwaddr="))
        .and_then(|h| h.split(',').find(|p| p.starts_with("hwaddr=")));
    match live_mac {
        Some(mac) => format!("{want},{mac}"),
        None => want.to_owned(),
    }
}

fn same(key: &str, want: &str, have: Option<&String>) -> bool {
    let Some(have) = have else { return false };
    if key.starts_with("mp") {
        return same_mount(want, have);
    }
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

/// The disks the spec sizes: the root disk and every mount point that is a volume.
fn disks(spec: &LxcGuestSpec) -> Vec<(String, String)> {
    let mut disks = vec![("rootfs".to_string(), spec.rootfs.size.clone())];
    disks.extend(spec.mount_points.iter().filter_map(|mp| {
        mp.volume
            .as_ref()
            .map(|v| (format!("mp{}", mp.index), v.size.clone()))
    }));
    disks
}

/// The size to grow `disk` to, when the spec wants more than PVE has.
fn grow_to(disk: &str, wanted: &str, observed: &BTreeMap<String, String>) -> Option<String> {
    let have: f64 = observed
        .get(disk)?
        .split(',')
        .find_map(|p| p.strip_prefix("size="))?
        .trim_end_matches(|c: char| !c.is_ascii_digit() && c != '.')
        .parse()
        .ok()?;
    let want: f64 = render::gib(wanted).parse().ok()?;
    (want > have).then(|| format!("{want}G"))
}

/// A mount point as PVE shows it (`fastData:subvol-914-disk-0,size=200G,mp=/x`) against
/// the one Phoenix asks for (`fastData:200,mp=/x`): the same storage and options; sizes are
/// the resize step's business, and a new volume is never allocated over an existing one.
fn same_mount(want: &str, have: &str) -> bool {
    fn split(s: &str) -> (&str, BTreeMap<&str, &str>) {
        let mut parts = s.split(',');
        let source = parts.next().unwrap_or("");
        let options = parts
            .filter_map(|p| p.split_once('='))
            .filter(|(k, _)| *k != "size")
            .collect();
        (source, options)
    }
    let ((want_source, want_options), (have_source, have_options)) = (split(want), split(have));
    if want_options != have_options {
        return false;
    }
    if want_source.starts_with('/') {
        return want_source == have_source;
    }
    let storage = |s: &'_ str| s.split(':').next().unwrap_or("").to_owned();
    storage(want_source) == storage(have_source)
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
        assert_eq!(
            steps,
            vec![Step::Resize {
                disk: "rootfs".into(),
                size: "16G".into()
            }]
        );
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

    #[test]
    fn allocated_mount_points_are_not_reallocated_and_macs_are_kept() {
        let spec = example("lxc-914.yaml");
        let mut config = render::config(&spec, "uid");
        config.insert(
            "rootfs".into(),
            "fastData:subvol-914-disk-0,size=128G".into(),
        );
        config.insert(
            "mp0".into(),
            "fastData:subvol-914-disk-1,size=200G,mp=/root/.ollama".into(),
        );
        let observed = Observed {
            config: config.clone(),
            running: true,
        };
        assert_eq!(
            plan(&spec, "uid", Some(&observed)),
            vec![],
            "an allocated volume is the same mount"
        );
        let mut bigger = spec.clone();
        bigger.mount_points[0].volume.as_mut().unwrap().size = "300G".into();
        assert_eq!(
            plan(&bigger, "uid", Some(&observed)),
            vec![Step::Resize {
                disk: "mp0".into(),
                size: "300G".into()
            }]
        );
        let mut dhcp = config;
        dhcp.insert(
            "net0".into(),
            "name=eth0,bridge=vmbr0,ip=dhcp,hwaddr=BC:24:11:00:00:01".into(),
        );
        let steps = plan(
            &spec,
            "uid",
            Some(&Observed {
                config: dhcp,
                running: true,
            }),
        );
        let Step::Configure { changes } = &steps[0] else {
            panic!("{steps:?}")
        };
        assert!(
            changes[0]
                .to
                .as_deref()
                .unwrap()
                .ends_with(",hwaddr=BC:24:11:00:00:01")
        );
    }
}
