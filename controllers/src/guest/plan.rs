//! The plan: from what PVE has (or nothing) to what the spec wants, as an ordered list of
//! steps, each saying whether it disrupts the guest. A value, so `phoenix plan` can print
//! it and tests can check it without any I/O. Each kind renders its own config and says
//! which keys need a restart; the shape of the plan is shared.

use super::render;
use std::collections::BTreeMap;

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
    /// Have PVE download an image (`download-url`) before creating from it.
    Download {
        storage: String,
        filename: String,
        url: String,
        /// `sha256:<hex>`
        checksum: Option<String>,
    },
    /// Destroy a template whose source changed, so a new generation is built.
    Destroy,
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
            Step::Download { .. } => "Download",
            Step::Destroy => "Destroy",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Create { params } => write!(f, "create from {}", source_of(params)),
            Step::Clone { source, full } => write!(
                f,
                "{} clone of {source}",
                if *full { "full" } else { "linked" }
            ),
            Step::Configure { changes } => {
                write!(f, "configure")?;
                for c in changes {
                    // Keys read from Secrets are named, not shown.
                    let hidden = SECRET_KEYS.contains(&c.key.as_str());
                    let to = if hidden {
                        "<from a Secret>"
                    } else {
                        c.to.as_deref().unwrap_or("<delete>")
                    };
                    let restart = if c.needs_restart {
                        " (needs restart)"
                    } else {
                        ""
                    };
                    write!(
                        f,
                        "\n    {}: {} -> {to}{restart}",
                        c.key,
                        if hidden {
                            "<hidden>"
                        } else {
                            c.from.as_deref().unwrap_or("<unset>")
                        }
                    )?;
                }
                Ok(())
            }
            Step::Resize { disk, size } => write!(f, "grow {disk} to {size}"),
            Step::Start => write!(f, "start"),
            Step::Restart => write!(f, "restart (to apply changes that need it)"),
            Step::Stop => write!(f, "stop"),
            Step::Template => write!(f, "convert to a template"),
            Step::Download {
                storage,
                filename,
                url,
                ..
            } => write!(f, "download {url} to {storage}:import/{filename}"),
            Step::Destroy => write!(
                f,
                "destroy the template to build a new generation from the changed source (replace)"
            ),
        }
    }
}

/// Config keys whose values come from Secrets: plans, events and conditions name them
/// without their values.
pub const SECRET_KEYS: [&str; 2] = ["sshkeys", "cipassword"];

/// What a create starts from: a container's OS template, or the image a VM disk imports.
fn source_of(params: &BTreeMap<String, String>) -> &str {
    params
        .get("ostemplate")
        .map(String::as_str)
        .or_else(|| {
            params
                .values()
                .flat_map(|v| v.split(','))
                .find_map(|o| o.strip_prefix("import-from="))
        })
        .unwrap_or("?")
}

/// Every config change the steps make.
pub fn changes(steps: &[Step]) -> impl Iterator<Item = &Change> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Configure { changes } => Some(changes),
            _ => None,
        })
        .flatten()
}

/// What PVE reports about the guest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub config: BTreeMap<String, String>,
    pub running: bool,
}

/// The steps for a guest that does not exist: `first` makes it (create, or clone then
/// configure), then it is converted (a template) or started.
pub fn from_nothing(mut first: Vec<Step>, template: bool) -> Vec<Step> {
    first.push(if template {
        Step::Template
    } else {
        Step::Start
    });
    first
}

/// The first steps of a guest cloned from a template: the clone, then every managed key
/// set (the clone carries the template's values).
pub fn cloned(
    clone: &phoenix_crds::guest::CloneSource,
    desired: &BTreeMap<String, String>,
    needs_restart: &dyn Fn(&str) -> bool,
) -> Vec<Step> {
    vec![
        Step::Clone {
            source: clone.vmid,
            full: clone.full,
        },
        Step::Configure {
            changes: diff(desired, &BTreeMap::new(), needs_restart),
        },
    ]
}

/// What a kind says about its config for planning.
pub struct Wanted<'a> {
    pub config: BTreeMap<String, String>,
    /// Disks Phoenix sizes: (key, size like `8G`).
    pub disks: Vec<(String, String)>,
    /// Whether a change of this key only takes effect at the next start.
    pub needs_restart: &'a dyn Fn(&str) -> bool,
    /// Keys the spec owns even when it does not set them (the NICs, mounts and devices it
    /// lists), by key and live value: present in PVE but not wanted, they are deleted.
    pub owned: &'a dyn Fn(&str, &str) -> bool,
    pub template: bool,
}

/// `netN`-style keys: `prefix` followed by an index.
pub fn numbered(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The steps for a guest that exists: configure what differs, grow disks, then stop and
/// convert (a template), or restart or start.
pub fn from_observed(wanted: &Wanted, observed: &Observed) -> Vec<Step> {
    // A template is immutable: it is only ever cloned.
    if observed.config.get("template").is_some_and(|t| t == "1") {
        return Vec::new();
    }
    let mut steps = Vec::new();
    let mut changes = diff(&wanted.config, &observed.config, wanted.needs_restart);
    changes.extend(
        observed
            .config
            .iter()
            .filter(|(key, value)| (wanted.owned)(key, value) && !wanted.config.contains_key(*key))
            .map(|(key, value)| Change {
                key: key.clone(),
                from: Some(value.clone()),
                to: None,
                needs_restart: (wanted.needs_restart)(key),
            }),
    );
    let restart = observed.running && changes.iter().any(|c| c.needs_restart);
    if !changes.is_empty() {
        steps.push(Step::Configure { changes });
    }
    steps.extend(wanted.disks.iter().filter_map(|(disk, size)| {
        grow_to(disk, size, &observed.config).map(|size| Step::Resize {
            disk: disk.clone(),
            size,
        })
    }));
    if wanted.template {
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
    needs_restart: &dyn Fn(&str) -> bool,
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
/// otherwise make up a new one, and DHCP leases and firewall rules would follow). A
/// container's NIC carries it as `hwaddr=`, a VM's as the value of its model (`virtio=`).
fn keep_mac(key: &str, want: &str, have: Option<&String>) -> String {
    let Some(have) = have.filter(|_| key.starts_with("net")) else {
        return want.to_owned();
    };
    if !want.contains("hwaddr=")
        && let Some(mac) = have.split(',').find(|p| p.starts_with("hwaddr="))
    {
        return format!("{want},{mac}");
    }
    let (want_model, rest) = want.split_once(',').unwrap_or((want, ""));
    let have_model = have.split(',').next().unwrap_or("");
    match have_model.split_once('=') {
        Some((model, mac)) if model == want_model && !want_model.contains('=') => {
            let rest = if rest.is_empty() {
                String::new()
            } else {
                format!(",{rest}")
            };
            format!("{model}={mac}{rest}")
        }
        _ => want.to_owned(),
    }
}

fn same(key: &str, want: &str, have: Option<&String>) -> bool {
    let Some(have) = have else { return false };
    if key.starts_with("mp") {
        return same_mount(want, have);
    }
    if key.starts_with("net") {
        // A part without a value (a VM's bare `virtio`) only asks for the key.
        let fields = |s: &str| -> BTreeMap<String, String> {
            s.split(',')
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .map(|(k, v)| (k.into(), v.into()))
                .collect()
        };
        let (want, have) = (fields(want), fields(have));
        return want
            .iter()
            .all(|(k, v)| have.get(k) == Some(v) || (v.is_empty() && have.contains_key(k)));
    }
    want == have
}

/// The disks the spec sizes: the root disk and every mount point that is a volume.
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
