//! A VmGuest's plan: which keys PVE applies to a running VM (by its `hotplug`), which need
//! a reboot, how it comes to exist (a cloud image imported, or a clone of a template), and
//! when a template is rebuilt (its source changed: a replace, never an edit).

use super::render::{self, Inputs};
use crate::guest::plan::{self, Observed, Step, Wanted};
use phoenix_crds::VmGuestSpec;
use phoenix_crds::vm::Hotplug;
use std::collections::BTreeMap;

/// Keys PVE changes on a running VM without hotplug of any kind.
const LIVE_KEYS: [&str; 7] = [
    "name",
    "tags",
    "description",
    "protection",
    "onboot",
    "startup",
    "sshkeys",
];

/// Whether changing `key` on a running VM waits for its next start. Cloud-init keys
/// (`ipconfigN`, `ciuser`, DNS, `cicustom`) are written to the cloud-init drive only at a
/// start. With CPU hotplug PVE changes `vcpus` live, not `cores` or `sockets`.
pub fn needs_restart(spec: &VmGuestSpec, key: &str) -> bool {
    let hot = |h: Hotplug| render::hotplug(spec, h);
    if LIVE_KEYS.contains(&key) {
        // New keys reach the guest with the next cloud-init run; nothing stops for them.
        return false;
    }
    match key {
        "memory" => !hot(Hotplug::Memory),
        net if net.starts_with("net") => !hot(Hotplug::Network),
        _ => true,
    }
}

/// Keys a VM spec owns even unset — only the families it lists (a clone whose spec says
/// nothing of NICs keeps its template's): its NICs and their addresses, its PCI devices,
/// the cloud-init keys it fills from Secrets and ConfigMaps once it has `cloudInit`, and
/// the hotplug it asks for.
fn owned(spec: &VmGuestSpec, key: &str, value: &str) -> bool {
    let ci = spec.cloud_init.is_some();
    let listed = [
        ("net", !spec.network.is_empty()),
        ("ipconfig", !spec.network.is_empty()),
        ("hostpci", !spec.pci_devices.is_empty()),
    ];
    listed.iter().any(|(p, on)| *on && plan::numbered(key, p))
        || (ci && ["cicustom", "sshkeys"].contains(&key))
        || (!spec.hotplug.is_empty() && key == "hotplug")
        // `numa: 0` is PVE's default spelled out, not something Phoenix set.
        || (!spec.hotplug.is_empty() && key == "numa" && value != "0")
}

/// The steps from `observed` (None: the VM does not exist) to `spec`.
pub fn plan(
    spec: &VmGuestSpec,
    owner_uid: &str,
    inputs: &Inputs,
    observed: Option<&Observed>,
) -> Vec<Step> {
    let desired = render::config(spec, owner_uid, inputs);
    let restart = |key: &str| needs_restart(spec, key);
    let owned = |key: &str, value: &str| owned(spec, key, value);
    let Some(observed) = observed else {
        let first = match &spec.source.clone {
            Some(clone) => plan::cloned(clone, &desired, &restart),
            None => {
                let mut params = desired;
                params.extend(render::create_only(spec));
                vec![Step::Create { params }]
            }
        };
        return plan::from_nothing(first, spec.template);
    };
    // A template built (or being built) from another image is replaced, never edited;
    // the rest of its description is the user's to annotate.
    let source = |config: &BTreeMap<String, String>| {
        config
            .get("description")
            .and_then(|d| render::source_line(d))
            .map(str::to_owned)
    };
    if spec.template && source(&observed.config) != source(&desired) {
        // One being provisioned before conversion runs: PVE destroys only stopped VMs.
        let stop = observed.running.then_some(Step::Stop);
        return stop.into_iter().chain([Step::Destroy]).collect();
    }
    if observed.config.get("template").is_some_and(|t| t == "1") {
        return Vec::new();
    }
    let wanted = Wanted {
        config: desired,
        disks: render::disks(spec),
        needs_restart: &restart,
        owned: &owned,
        template: spec.template,
    };
    plan::from_observed(&wanted, observed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::example;

    fn running_clone(spec: &VmGuestSpec) -> Observed {
        let mut config = render::config(spec, "uid", &Inputs::default());
        config.insert(
            "net0".into(),
            "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1".into(),
        );
        config.insert("scsi0".into(), "fastData:vm-1002-disk-0,size=100G".into());
        config.insert("serial0".into(), "socket".into());
        Observed {
            config,
            running: true,
        }
    }

    #[test]
    fn a_clone_is_cloned_configured_and_started_and_then_needs_nothing() {
        let spec = example("vm-1002.yaml");
        let steps = plan(&spec, "uid", &Inputs::default(), None);
        assert_eq!(
            steps[0],
            Step::Clone {
                source: 9000,
                full: true
            }
        );
        assert!(
            matches!(&steps[1], Step::Configure { changes } if changes.iter().any(|c| c.key == "ipconfig0"))
        );
        assert_eq!(steps[2], Step::Start);
        let observed = running_clone(&spec);
        assert_eq!(
            plan(&spec, "uid", &Inputs::default(), Some(&observed)),
            vec![]
        );
    }

    #[test]
    fn memory_is_hot_plugged_when_the_spec_allows_it_and_a_reboot_otherwise() {
        let mut spec = example("vm-1002.yaml");
        let observed = running_clone(&spec);
        spec.common.memory = 12288;
        let steps = plan(&spec, "uid", &Inputs::default(), Some(&observed));
        assert!(
            matches!(&steps[..], [Step::Configure { changes }] if changes.len() == 1 && !changes[0].needs_restart),
            "{steps:?}"
        );
        spec.hotplug.clear();
        let mut observed = observed;
        observed.config.remove("hotplug");
        observed.config.remove("numa");
        let steps = plan(&spec, "uid", &Inputs::default(), Some(&observed));
        assert!(
            matches!(&steps[..], [Step::Configure { changes }, Step::Restart] if changes[0].needs_restart)
        );
    }

    #[test]
    fn keys_the_spec_no_longer_lists_are_deleted() {
        let mut spec = example("vm-1002.yaml");
        let mut observed = running_clone(&spec);
        observed.config.insert(
            "net1".into(),
            "virtio=BC:24:11:00:00:02,bridge=vmbr1".into(),
        );
        observed
            .config
            .insert("hostpci0".into(), "0000:01:00".into());
        observed.config.insert("serial0".into(), "socket".into());
        spec.hotplug = vec![Hotplug::Cpu, Hotplug::Disk];
        observed
            .config
            .insert("hotplug".into(), "cpu,memory,disk,network".into());
        let steps = plan(&spec, "uid", &Inputs::default(), Some(&observed));
        let Step::Configure { changes } = &steps[0] else {
            panic!("{steps:?}")
        };
        let deleted: Vec<&str> = changes
            .iter()
            .filter(|c| c.to.is_none())
            .map(|c| c.key.as_str())
            .collect();
        assert_eq!(
            deleted,
            vec!["net1", "numa"],
            "hostpci is not listed by this spec"
        );
        assert_eq!(steps.last(), Some(&Step::Restart), "{steps:?}");
    }

    #[test]
    fn a_disk_only_grows_and_the_mac_pve_gave_is_kept() {
        let mut spec = example("vm-1002.yaml");
        let observed = running_clone(&spec);
        spec.disks[0].size = "120G".into();
        spec.network[0].vlan = Some(20);
        let steps = plan(&spec, "uid", &Inputs::default(), Some(&observed));
        let Step::Configure { changes } = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(
            changes[0].to.as_deref(),
            Some("virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,tag=20,firewall=1")
        );
        assert_eq!(
            steps[1],
            Step::Resize {
                disk: "scsi0".into(),
                size: "120G".into()
            }
        );
    }

    #[test]
    fn a_template_is_created_converted_and_rebuilt_only_when_its_source_changes() {
        let mut spec = example("vm-9000.yaml");
        let steps = plan(&spec, "uid", &Inputs::default(), None);
        assert!(matches!(&steps[0], Step::Create { params } if params.contains_key("ide2")));
        assert_eq!(steps[1], Step::Template);
        let mut config = render::config(&spec, "uid", &Inputs::default());
        config.insert("template".into(), "1".into());
        let observed = Observed {
            config,
            running: false,
        };
        assert_eq!(
            plan(&spec, "uid", &Inputs::default(), Some(&observed)),
            vec![]
        );
        let mut annotated = observed.clone();
        let note = format!("{}\nbuilt for the swarm", annotated.config["description"]);
        annotated.config.insert("description".into(), note);
        assert_eq!(
            plan(&spec, "uid", &Inputs::default(), Some(&annotated)),
            vec![],
            "a note added in the PVE UI is not a new source"
        );
        let mut unconverted = observed.clone();
        unconverted.config.remove("template");
        spec.source.cloud_image.as_mut().unwrap().url =
            Some("https://cloud-images.ubuntu.com/noble/20261101/noble.img".into());
        for built in [&observed, &unconverted] {
            assert_eq!(
                plan(&spec, "uid", &Inputs::default(), Some(built)),
                vec![Step::Destroy],
                "built from the old image, converted or not: replaced"
            );
        }
    }
}
