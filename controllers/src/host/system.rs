//! The node's system setup as features, pure: packages, locale, AppArmor profiles and the
//! NVIDIA driver rendered with the in-guest features' catalog types, so each runs on the
//! node the same way — files pushed, a script under `flock` that skips itself when its
//! marker holds its hash, named steps. Every value spliced into a line is one the
//! schema's patterns allow (package, locale and module names, profile file names).

use crate::provision::catalog::{Feature, feature, file, step};
use phoenix_crds::host_system::{AppArmorProfile, HostNvidia, HostSystem};

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
    out
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
fn locale_feature(locale: &str) -> Feature {
    let (input, charmap) = locale.split_once('.').unwrap_or((locale, "UTF-8"));
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
    let lines: Vec<&str> = loads.iter().map(String::as_str).collect();
    feature("host-apparmor", files, vec![step("load", &lines)])
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
    let loads: Vec<&str> = loads.iter().map(String::as_str).collect();
    let mut boot = spec.modules.join("\n");
    boot.push('\n');
    feature(
        "host-nvidia",
        vec![file(NVIDIA_MODULES, boot, "0644")],
        vec![
            step("driver", &["apt-get update -q", &install]),
            step("modules", &loads),
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
            "nvidia": {}
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
                "host-nvidia"
            ]
        );
        let script = features[0].script();
        assert!(script.contains("apt-get install -y -q nfs-kernel-server zfsutils-linux"));
        assert!(script.contains("echo '==> install'"));
        let locale = features[1].script();
        assert!(locale.contains("localedef -i en_US -c -f UTF-8"));
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
