//! The node's system setup as features, pure: packages, locale, AppArmor profiles, the
//! NVIDIA driver and Linux accounts rendered with the in-guest features' catalog types, so each runs on the
//! node the same way — files pushed, a script under `flock` that skips itself when its
//! marker holds its hash, named steps. Every value spliced into a line is one the
//! schema's patterns allow (package, locale, module, account names, shells, profile
//! file names; ids are numbers).

use crate::provision::catalog::{Feature, feature, file, step};
use phoenix_crds::host_system::{AppArmorProfile, HostNvidia, HostSystem, LinuxGroup, LinuxUser};

/// Where Phoenix's AppArmor profiles go (one file each, named for the profile).
const APPARMOR_DIR: &str = "/etc/apparmor.d";
/// The modules the NVIDIA feature has loaded at boot.
const NVIDIA_MODULES: &str = "/etc/modules-load.d/phoenix-nvidia.conf";

/// The features of `spec`, in the order they run (packages first: the rest may need them).
pub fn features(spec: &HostSystem) -> Vec<Feature> {
    let mut out = Vec::new();
    if !spec.packages.is_empty() {
        out.push(packages(&spec.packages));
    }
    if let Some(locale) = &spec.locale {
        out.push(locale_feature(locale));
    }
    if !spec.apparmor_profiles.is_empty() {
        out.push(apparmor(&spec.apparmor_profiles));
    }
    if let Some(nvidia) = &spec.nvidia {
        out.push(nvidia_feature(nvidia));
    }
    if !spec.groups.is_empty() || !spec.users.is_empty() {
        out.push(accounts(&spec.groups, &spec.users));
    }
    out
}

/// Groups, then users: each created only when missing (so an existing account keeps its
/// ids and home), users added to their groups.
fn accounts(groups: &[LinuxGroup], users: &[LinuxUser]) -> Feature {
    let group_lines: Vec<String> = groups
        .iter()
        .map(|g| {
            let gid = g.gid.map(|id| format!("-g {id} ")).unwrap_or_default();
            format!("getent group {0} >/dev/null || groupadd {gid}{0}", g.name)
        })
        .collect();
    let mut user_lines = Vec::new();
    for u in users {
        let uid = u.uid.map(|id| format!("-u {id} ")).unwrap_or_default();
        let shell = u
            .shell
            .as_ref()
            .map(|s| format!("-s {s} "))
            .unwrap_or_default();
        user_lines.push(format!(
            "id -u {0} >/dev/null 2>&1 || useradd -m {uid}{shell}{0}",
            u.name
        ));
        if !u.groups.is_empty() {
            user_lines.push(format!("usermod -a -G {} {}", u.groups.join(","), u.name));
        }
    }
    feature(
        "host-accounts",
        vec![],
        vec![
            step("groups", &borrowed(&group_lines)),
            step("users", &borrowed(&user_lines)),
        ],
    )
}

/// Rendered lines as `step` takes them.
fn borrowed(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

fn packages(names: &[String]) -> Feature {
    let install = format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q {}",
        names.join(" ")
    );
    feature(
        "host-packages",
        vec![],
        vec![step("install", &["apt-get update -q", &install])],
    )
}

/// `en_US.UTF-8` is generated from `en_US` in UTF-8 (Debian's `localedef` call), then
/// made the system's `LANG`.
/// `de_DE.ISO-8859-15@euro` is made from the source `de_DE@euro` in ISO-8859-15.
fn locale_feature(locale: &str) -> Feature {
    let (name, modifier) = match locale.split_once('@') {
        Some((name, modifier)) => (name, format!("@{modifier}")),
        None => (locale, String::new()),
    };
    let (base, charmap) = name.split_once('.').unwrap_or((name, "UTF-8"));
    let input = format!("{base}{modifier}");
    let generate =
        format!("localedef -i {input} -c -f {charmap} -A /usr/share/locale/locale.alias {locale}");
    let set = format!("update-locale LANG={locale}");
    feature(
        "host-locale",
        vec![],
        vec![step("generate", &[&generate]), step("set", &[&set])],
    )
}

fn apparmor(profiles: &[AppArmorProfile]) -> Feature {
    let files = profiles
        .iter()
        .map(|p| file(&profile_path(p), p.content.clone(), "0644"))
        .collect();
    // `-r` replaces a loaded profile; the parser refuses a bad one before loading it.
    let loads: Vec<String> = profiles
        .iter()
        .map(|p| format!("apparmor_parser -r -W {}", profile_path(p)))
        .collect();
    feature(
        "host-apparmor",
        files,
        vec![step("load", &borrowed(&loads))],
    )
}

fn profile_path(profile: &AppArmorProfile) -> String {
    format!("{APPARMOR_DIR}/{}", profile.name)
}

fn nvidia_feature(spec: &HostNvidia) -> Feature {
    let install = format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q {}",
        spec.package
    );
    let loads: Vec<String> = spec
        .modules
        .iter()
        .map(|m| format!("modprobe {m}"))
        .collect();
    let mut boot = spec.modules.join("\n");
    boot.push('\n');
    feature(
        "host-nvidia",
        vec![file(NVIDIA_MODULES, boot, "0644")],
        vec![
            step("driver", &["apt-get update -q", &install]),
            step("modules", &borrowed(&loads)),
            // `nvidia-smi` makes the device nodes containers are given; the check says
            // they are there.
            step("devices", &["nvidia-smi -L", "test -c /dev/nvidiactl"]),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system() -> HostSystem {
        serde_json::from_value(serde_json::json!({
            "packages": ["nfs-kernel-server", "zfsutils-linux"],
            "locale": "en_US.UTF-8",
            "apparmorProfiles": [{"name": "phoenix-nesting", "content": "profile x {}\n"}],
            "nvidia": {},
            "groups": [{"name": "share", "gid": 2000}],
            "users": [{"name": "ops", "uid": 2001, "groups": ["share", "sudo"], "shell": "/bin/bash"}]
        }))
        .unwrap()
    }

    #[test]
    fn features_run_packages_first_and_name_their_steps() {
        let features = features(&system());
        let names: Vec<&str> = features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "host-packages",
                "host-locale",
                "host-apparmor",
                "host-nvidia",
                "host-accounts"
            ]
        );
        let accounts = features[4].script();
        assert!(accounts.contains("getent group share >/dev/null || groupadd -g 2000 share"));
        assert!(
            accounts.contains("id -u ops >/dev/null 2>&1 || useradd -m -u 2001 -s /bin/bash ops")
        );
        assert!(accounts.contains("usermod -a -G share,sudo ops"));
        let script = features[0].script();
        assert!(script.contains("apt-get install -y -q nfs-kernel-server zfsutils-linux"));
        assert!(script.contains("echo '==> install'"));
        let locale = features[1].script();
        assert!(locale.contains("localedef -i en_US -c -f UTF-8"));
        let euro = locale_feature("de_DE.ISO-8859-15@euro").script();
        assert!(
            euro.contains("localedef -i de_DE@euro -c -f ISO-8859-15"),
            "{euro}"
        );
        assert!(locale.contains("update-locale LANG=en_US.UTF-8"));
        let apparmor = &features[2];
        assert_eq!(apparmor.files[0].path, "/etc/apparmor.d/phoenix-nesting");
        assert!(
            apparmor
                .script()
                .contains("apparmor_parser -r -W /etc/apparmor.d/phoenix-nesting")
        );
        let nvidia = &features[3];
        assert_eq!(
            nvidia.files[0].content,
            "nvidia\nnvidia_uvm\nnvidia_modeset\n"
        );
        assert!(
            nvidia
                .script()
                .contains("apt-get install -y -q nvidia-driver")
        );
    }

    #[test]
    fn a_changed_profile_changes_only_its_features_hash() {
        let before = features(&system());
        let mut changed = system();
        changed.apparmor_profiles[0].content = "profile y {}\n".into();
        let after = features(&changed);
        assert_eq!(before[0].hash(), after[0].hash());
        assert_ne!(before[2].hash(), after[2].hash());
    }
}
