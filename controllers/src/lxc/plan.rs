//! An LxcGuest's plan: which of its keys need a restart, which disks it sizes, and how it
//! comes to exist (created from an OS template, or cloned from a container template).

use super::render;
use crate::guest::plan::{self, Observed, Step, Wanted};
use phoenix_crds::LxcGuestSpec;

/// Keys PVE applies to a running container only at its next start (they go pending).
const RESTART_KEYS: [&str; 5] = [
    "features",
    "hostname",
    "nameserver",
    "searchdomain",
    "unprivileged",
];

pub fn needs_restart(key: &str) -> bool {
    RESTART_KEYS.contains(&key) || key.starts_with("mp") || key.starts_with("dev")
}

/// The steps from `observed` (None: the guest does not exist) to `spec`.
pub fn plan(spec: &LxcGuestSpec, owner_uid: &str, observed: Option<&Observed>) -> Vec<Step> {
    let desired = render::config(spec, owner_uid);
    let Some(observed) = observed else {
        let first = match &spec.source.clone {
            Some(clone) => plan::cloned(clone, &desired, &needs_restart),
            None => {
                let mut params = desired;
                params.extend(render::create_only(spec));
                params.insert(
                    "ostemplate".into(),
                    spec.source.ostemplate.clone().unwrap_or_default(),
                );
                vec![Step::Create { params }]
            }
        };
        return plan::from_nothing(first, spec.template);
    };
    let wanted = Wanted {
        config: desired,
        disks: disks(spec),
        needs_restart: &needs_restart,
        owned: &|key: &str, _: &str| owned(spec, key),
        template: spec.template,
    };
    plan::from_observed(&wanted, observed)
}

/// The numbered keys a container spec lists in full — only the families it lists (a clone
/// whose spec says nothing of mounts keeps its template's): NICs, mount points, devices.
fn owned(spec: &LxcGuestSpec, key: &str) -> bool {
    let listed = [
        ("net", !spec.network.is_empty()),
        ("mp", !spec.mount_points.is_empty()),
        ("dev", !spec.devices.is_empty()),
    ];
    listed.iter().any(|(p, on)| *on && plan::numbered(key, p))
}

fn disks(spec: &LxcGuestSpec) -> Vec<(String, String)> {
    let mut disks = vec![("rootfs".to_string(), spec.rootfs.size.clone())];
    disks.extend(spec.mount_points.iter().filter_map(|mp| {
        mp.volume
            .as_ref()
            .map(|v| (format!("mp{}", mp.index), v.size.clone()))
    }));
    disks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::plan::Change;

    fn example(file: &str) -> LxcGuestSpec {
        crate::examples::example::<phoenix_crds::LxcGuest>(file).spec
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
