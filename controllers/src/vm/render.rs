//! A VmGuest spec as the PVE config it stands for: pure, so the plan, the controller and
//! `phoenix plan` agree on every key.

use crate::guest::render::{common_config, flag, gib};
use crate::ownership::owner_marker;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use phoenix_crds::VmGuestSpec;
use phoenix_crds::vm::{CloudImage, Hotplug, NicModel, VmDisk};
use std::collections::BTreeMap;

/// What PVE's `uri_escape` leaves alone; everything else in `sshkeys` is %-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What the config is rendered from besides the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// The authorized keys read from `cloudInit.sshKeysSecretRefs`, one per line.
    pub ssh_keys: Option<String>,
    /// The user data read from `cloudInit.userData`.
    pub user_data: Option<String>,
}

/// The owner marker, and for a template built from an image, the image: a changed
/// source is seen in PVE itself, whatever happened to the object's status.
pub fn description(spec: &VmGuestSpec, owner_uid: &str) -> String {
    let marker = owner_marker(owner_uid);
    match (&spec.source.cloud_image, spec.template) {
        (Some(image), true) => format!("{marker}\nSource: {}", source_text(image)),
        _ => marker,
    }
}

fn source_text(image: &CloudImage) -> String {
    let origin = image
        .url
        .as_deref()
        .or(image.volume.as_deref())
        .unwrap_or("");
    match &image.checksum {
        Some(sum) => format!("{origin} ({sum})"),
        None => origin.to_owned(),
    }
}

/// The volume a cloud image is imported from: the given one, or where `download-url` puts
/// the URL's file.
pub fn image_volume(image: &CloudImage) -> String {
    match &image.volume {
        Some(volume) => volume.clone(),
        None => format!("{}:import/{}", image.download_storage, download_name(image)),
    }
}

/// The file name a downloaded image gets: the URL's, with a hash of the URL and checksum
/// (`…/current/x.img` is a new image under the same name next month: the old file must not
/// pass for it), and `.qcow2` for Ubuntu's `.img` files (qcow2 inside; PVE's import content
/// wants the suffix).
pub fn download_name(image: &CloudImage) -> String {
    let url = image.url.as_deref().unwrap_or("");
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or("image");
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, "img")) => (stem, "qcow2"),
        Some((stem, extension)) => (stem, extension),
        None => (name, "qcow2"),
    };
    let source = format!("{url} {}", image.checksum.as_deref().unwrap_or(""));
    let digest = ring::digest::digest(&ring::digest::SHA256, source.as_bytes());
    let hash: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{stem}-{hash}.{extension}")
}

/// The image a template was built from, as its description names it.
pub fn source_line(description: &str) -> Option<&str> {
    description.lines().find_map(|l| l.strip_prefix("Source: "))
}

/// Whether PVE hot-plugs `what` for this VM: the spec's list, or PVE's default
/// (`network,disk,usb`) when the spec has none.
pub fn hotplug(spec: &VmGuestSpec, what: Hotplug) -> bool {
    if spec.hotplug.is_empty() {
        return matches!(what, Hotplug::Network | Hotplug::Disk | Hotplug::Usb);
    }
    spec.hotplug.contains(&what)
}

/// The config keys Phoenix manages, with the values it wants. Disks are sized, not
/// compared ([`disks`]); keys that exist only at create time are in [`create_only`].
pub fn config(spec: &VmGuestSpec, owner_uid: &str, inputs: &Inputs) -> BTreeMap<String, String> {
    let mut out = common_config(&spec.common, owner_uid);
    out.insert("name".into(), spec.name.clone());
    out.insert("sockets".into(), spec.sockets.to_string());
    out.insert("description".into(), description(spec, owner_uid));
    if let Some(cpu) = &spec.cpu_type {
        out.insert("cpu".into(), cpu.clone());
    }
    out.insert("agent".into(), flag(spec.agent.enabled).into());
    if !spec.hotplug.is_empty() {
        let names: Vec<&str> = spec
            .hotplug
            .iter()
            .map(|h| match h {
                Hotplug::Cpu => "cpu",
                Hotplug::Memory => "memory",
                Hotplug::Disk => "disk",
                Hotplug::Network => "network",
                Hotplug::Usb => "usb",
            })
            .collect();
        out.insert("hotplug".into(), names.join(","));
    }
    if hotplug(spec, Hotplug::Memory) {
        // PVE hot-plugs memory only into a NUMA guest.
        out.insert("numa".into(), "1".into());
    }
    for nic in &spec.network {
        let model = match nic.model {
            NicModel::Virtio => "virtio",
            NicModel::E1000 => "e1000",
            NicModel::Vmxnet3 => "vmxnet3",
        };
        let mut parts = vec![match &nic.mac {
            Some(mac) => format!("{model}={}", mac.to_uppercase()),
            None => model.to_owned(),
        }];
        parts.push(format!("bridge={}", nic.bridge));
        if let Some(vlan) = nic.vlan {
            parts.push(format!("tag={vlan}"));
        }
        if nic.firewall {
            parts.push("firewall=1".into());
        }
        out.insert(format!("net{}", nic.index), parts.join(","));
        if let Some(ip) = &nic.ip {
            let mut value = format!("ip={ip}");
            if let Some(gw) = &nic.gateway {
                value.push_str(&format!(",gw={gw}"));
            }
            out.insert(format!("ipconfig{}", nic.index), value);
        }
    }
    for (i, device) in spec.pci_devices.iter().enumerate() {
        let mut value = match (&device.mapping, &device.id) {
            (Some(mapping), _) => format!("mapping={mapping}"),
            (None, Some(id)) => id.clone(),
            (None, None) => continue,
        };
        if device.pcie {
            value.push_str(",pcie=1");
        }
        if device.primary_gpu {
            value.push_str(",x-vga=1");
        }
        out.insert(format!("hostpci{i}"), value);
    }
    if let Some(ci) = &spec.cloud_init {
        if let Some(user) = &ci.user {
            out.insert("ciuser".into(), user.clone());
        }
        if let Some(dns) = &ci.dns {
            if !dns.nameservers.is_empty() {
                out.insert("nameserver".into(), dns.nameservers.join(" "));
            }
            if let Some(domain) = &dns.search_domain {
                out.insert("searchdomain".into(), domain.clone());
            }
        }
        if let Some((storage, name)) = inputs
            .user_data
            .as_deref()
            .and_then(|data| super::snippets::volume(spec, data))
        {
            out.insert("cicustom".into(), format!("user={storage}:snippets/{name}"));
        }
        if let Some(keys) = &inputs.ssh_keys {
            out.insert(
                "sshkeys".into(),
                utf8_percent_encode(keys, UNRESERVED).to_string(),
            );
        }
    }
    out
}

/// The disks Phoenix grows: (slot, size).
pub fn disks(spec: &VmGuestSpec) -> Vec<(String, String)> {
    spec.disks
        .iter()
        .map(|d| (d.slot.clone(), d.size.clone()))
        .collect()
}

fn disk_options(disk: &VmDisk) -> String {
    let mut options = String::new();
    for (on, option) in [
        (disk.ssd, ",ssd=1"),
        (disk.discard, ",discard=on"),
        (disk.iothread, ",iothread=1"),
    ] {
        if on {
            options.push_str(option);
        }
    }
    options
}

/// Parameters only a create from a cloud image takes: the boot disk imported from the
/// image, further disks allocated, the cloud-init drive, a serial console (cloud images
/// log there), the SCSI controller and the OS type.
pub fn create_only(spec: &VmGuestSpec) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let image = spec.source.cloud_image.as_ref().map(image_volume);
    for (i, disk) in spec.disks.iter().enumerate() {
        let value = match (&image, i) {
            (Some(image), 0) => format!(
                "{}:0,import-from={image}{}",
                disk.storage,
                disk_options(disk)
            ),
            _ => format!("{}:{}{}", disk.storage, gib(&disk.size), disk_options(disk)),
        };
        out.insert(disk.slot.clone(), value);
    }
    if let Some(boot) = spec.disks.first() {
        out.insert("boot".into(), format!("order={}", boot.slot));
    }
    let drive_storage = spec
        .cloud_init
        .as_ref()
        .and_then(|c| c.drive_storage.clone())
        .or_else(|| spec.disks.first().map(|d| d.storage.clone()));
    if let Some(storage) = drive_storage {
        out.insert("ide2".into(), format!("{storage}:cloudinit"));
    }
    out.insert("serial0".into(), "socket".into());
    out.insert("vga".into(), "serial0".into());
    out.insert("scsihw".into(), "virtio-scsi-single".into());
    out.insert("ostype".into(), "l26".into());
    if let Some(pool) = &spec.common.pool {
        out.insert("pool".into(), pool.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::example;

    #[test]
    fn the_template_imports_the_downloaded_image_with_cloud_init_and_a_serial_console() {
        let spec = example("vm-9000.yaml");
        let create = create_only(&spec);
        let scsi0 = &create["scsi0"];
        assert!(
            scsi0.starts_with("fastData:0,import-from=local:import/noble-server-cloudimg-amd64-")
                && scsi0.ends_with(".qcow2,ssd=1,discard=on"),
            "{scsi0}"
        );
        assert_eq!(create["ide2"], "fastData:cloudinit");
        assert_eq!(
            (create["serial0"].as_str(), create["vga"].as_str()),
            ("socket", "serial0")
        );
        let config = config(&spec, "uid", &Inputs::default());
        assert_eq!(config["agent"], "1");
        assert!(config["description"].ends_with(
            "Source: https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"
        ));
    }

    #[test]
    fn a_clone_gets_its_nic_address_keys_and_escaped_ssh_keys() {
        let spec = example("vm-1001.yaml");
        let inputs = Inputs {
            ssh_keys: Some("ssh-ed25519 AAAA+b/c= admin@phoenix".into()),
            user_data: Some("#cloud-config\n".into()),
        };
        let config = config(&spec, "uid", &inputs);
        assert_eq!(config["net0"], "virtio,bridge=vmbr0,firewall=1");
        assert_eq!(config["ipconfig0"], "ip=10.0.0.111/24,gw=10.0.0.1");
        assert_eq!(config["nameserver"], "10.0.0.13");
        assert_eq!(config["hotplug"], "cpu,memory,disk,network");
        assert_eq!(config["numa"], "1");
        assert_eq!(
            config["sshkeys"],
            "ssh-ed25519%20AAAA%2Bb%2Fc%3D%20admin%40phoenix"
        );
        assert!(
            !config["description"].contains("Source"),
            "only templates name their image"
        );
    }

    #[test]
    fn download_names_keep_the_import_suffix_and_follow_the_source() {
        let image = |url: &str, checksum: Option<&str>| CloudImage {
            volume: None,
            url: Some(url.into()),
            checksum: checksum.map(str::to_owned),
            download_storage: "local".into(),
        };
        let current = download_name(&image("https://x/current/noble.img?x=1", None));
        assert!(
            current.starts_with("noble-") && current.ends_with(".qcow2"),
            "{current}"
        );
        let dated = download_name(&image("https://x/20261101/noble.img", None));
        let checked = download_name(&image("https://x/current/noble.img?x=1", Some("sha256:ab")));
        assert_ne!(current, dated, "another URL, another file");
        assert_ne!(current, checked, "another checksum, another file");
        assert!(download_name(&image("https://x/debian-12.raw", None)).ends_with(".raw"));
    }

    #[test]
    fn the_source_line_is_read_back_from_the_description() {
        let spec = example("vm-9000.yaml");
        let description = description(&spec, "uid");
        assert_eq!(
            source_line(&format!("{description}\nedited in the UI")),
            Some("https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img")
        );
    }
}
