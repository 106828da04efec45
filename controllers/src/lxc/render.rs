//! An LxcGuest spec as the PVE config it stands for: pure, so the plan, the controller and
//! `phoenix plan` agree on every key.

use crate::guest::render::{common_config, flag, gib};
use phoenix_crds::LxcGuestSpec;
use std::collections::BTreeMap;

/// The config keys Phoenix manages, with the values it wants. Keys that only exist at
/// create time (rootfs allocation, unprivileged, pool) are in [`create_only`].
pub fn config(spec: &LxcGuestSpec, owner_uid: &str) -> BTreeMap<String, String> {
    let mut out = common_config(&spec.common, owner_uid);
    out.insert("hostname".into(), spec.hostname.clone());
    out.insert("swap".into(), spec.swap.to_string());
    for (i, nic) in spec.network.iter().enumerate() {
        let mut parts = vec![
            format!("name={}", nic.name),
            format!("bridge={}", nic.bridge),
            format!("ip={}", nic.ip),
        ];
        let optional = [
            ("gw", nic.gateway.clone()),
            ("ip6", nic.ip6.clone()),
            ("tag", nic.vlan.map(|v| v.to_string())),
            ("hwaddr", nic.mac.clone()),
            ("mtu", nic.mtu.map(|m| m.to_string())),
        ];
        parts.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k}={v}"))),
        );
        if nic.firewall {
            parts.push("firewall=1".into());
        }
        out.insert(format!("net{i}"), parts.join(","));
    }
    if let Some(features) = &spec.features {
        let mut parts: Vec<String> = [
            ("fuse", features.fuse),
            ("keyctl", features.keyctl),
            ("nesting", features.nesting),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| format!("{k}=1"))
        .collect();
        if !features.mount.is_empty() {
            parts.push(format!("mount={}", features.mount.join(";")));
        }
        if !parts.is_empty() {
            out.insert("features".into(), parts.join(","));
        }
    }
    for mp in &spec.mount_points {
        let source = match (&mp.volume, &mp.host_path) {
            (Some(v), _) => format!("{}:{}", v.storage, gib(&v.size)),
            (None, Some(path)) => path.clone(),
            (None, None) => continue,
        };
        let mut value = format!("{source},mp={}", mp.path);
        if mp.read_only {
            value.push_str(",ro=1");
        }
        if mp.backup {
            value.push_str(",backup=1");
        }
        out.insert(format!("mp{}", mp.index), value);
    }
    for (i, dev) in spec.devices.iter().enumerate() {
        let mut value = dev.path.clone();
        let optional = [
            ("mode", dev.mode.clone()),
            ("uid", dev.uid.map(|u| u.to_string())),
            ("gid", dev.gid.map(|g| g.to_string())),
        ];
        for (k, v) in optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))) {
            value.push_str(&format!(",{k}={v}"));
        }
        out.insert(format!("dev{i}"), value);
    }
    if let Some(dns) = &spec.dns {
        if !dns.nameservers.is_empty() {
            out.insert("nameserver".into(), dns.nameservers.join(" "));
        }
        if let Some(domain) = &dns.search_domain {
            out.insert("searchdomain".into(), domain.clone());
        }
    }
    out
}

/// Parameters that only a create takes.
pub fn create_only(spec: &LxcGuestSpec) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(
        "rootfs".into(),
        format!("{}:{}", spec.rootfs.storage, gib(&spec.rootfs.size)),
    );
    out.insert("unprivileged".into(), flag(spec.unprivileged).into());
    if let Some(pool) = &spec.common.pool {
        out.insert("pool".into(), pool.clone());
    }
    if !spec.ssh_public_keys.is_empty() {
        out.insert("ssh-public-keys".into(), spec.ssh_public_keys.join("\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(file: &str) -> LxcGuestSpec {
        crate::examples::example::<phoenix_crds::LxcGuest>(file).spec
    }

    #[test]
    fn the_gpu_container_renders_as_pve_config() {
        let config = config(&example("lxc-801.yaml"), "uid-801");
        assert_eq!(
            config["net0"],
            "name=eth0,bridge=vmbr0,ip=10.0.0.141/24,gw=10.0.0.1,firewall=1"
        );
        assert_eq!(config["mp0"], "/mnt/nfs/models,mp=/models");
        assert_eq!(config["dev0"], "/dev/nvidia0");
        assert_eq!(config["features"], "nesting=1");
        assert_eq!(config["tags"], "ai;gpu;phoenix");
        assert_eq!(config["startup"], "order=10");
        assert_eq!(config["onboot"], "1");
        assert_eq!(config["memory"], "16384");
        assert!(config["description"].contains("uid-801"));
        assert_eq!(
            create_only(&example("lxc-801.yaml"))["rootfs"],
            "fastData:64"
        );
    }
}
