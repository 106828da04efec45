//! dnsmasq on the node, decided: the main config rendered from the spec, and the changes
//! that bring the node's files to the wanted ones. Records live in a `--hostsdir`
//! directory dnsmasq watches (a file added, replaced by a rename, or removed is answered
//! at once, without a restart or SIGHUP — tests/support/DNSMASQ-FACTS.md); only a changed
//! main config restarts it, after `dnsmasq --test` accepted it.

use super::records::Records;
use crate::hashing::sha256;
use phoenix_crds::proxmox_host::Dnsmasq;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// dnsmasq's main config as Phoenix writes it (Debian's dnsmasq reads /etc/dnsmasq.d).
pub const CONFIG_PATH: &str = "/etc/dnsmasq.d/phoenix.conf";
/// The watched directory of record files.
pub const HOSTS_DIR: &str = "/etc/phoenix/dnsmasq/hosts";
pub const UNIT: &str = "dnsmasq";

/// The path of record file `name`.
pub fn record_path(name: &str) -> String {
    format!("{HOSTS_DIR}/{name}")
}

/// The main config for `spec` on host `host`; an address the schema let through but that
/// is not one is refused here (nothing unparsed reaches the file).
pub fn render(host: &str, spec: &Dnsmasq) -> Result<String, String> {
    let ip = |text: &str, field: &str| {
        text.parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .map_err(|_| format!("spec.dnsmasq.{field}: {text:?} is not an IP address"))
    };
    let domain = &spec.domain;
    let mut lines = vec![
        format!("# Managed by Phoenix (ProxmoxHost {host}); rewritten when the spec changes."),
        // Never forward plain names or private reverse lookups upstream.
        "domain-needed".into(),
        "bogus-priv".into(),
        // Upstreams come from here, not from the node's resolv.conf.
        "no-resolv".into(),
        format!("local=/{domain}/"),
        format!("domain={domain}"),
        format!("hostsdir={HOSTS_DIR}"),
    ];
    if !spec.listen_addresses.is_empty() {
        lines.push("bind-interfaces".into());
        for address in &spec.listen_addresses {
            lines.push(format!(
                "listen-address={}",
                ip(address, "listenAddresses")?
            ));
        }
    }
    for upstream in &spec.upstreams {
        lines.push(format!("server={}", ip(upstream, "upstreams")?));
    }
    if let Some(wildcard) = &spec.wildcard {
        // Names with a record of their own keep it: hosts entries beat `address=`.
        lines.push(format!("address=/{domain}/{}", ip(wildcard, "wildcard")?));
    }
    Ok(lines.join("\n") + "\n")
}

/// What the node holds: SHA-256 per path (the config and each record file), and whether
/// dnsmasq runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub hashes: BTreeMap<String, String>,
    pub active: bool,
}

/// The command that observes it in one go: `sha256sum` of the config and every record
/// file (dot files — partial writes — are not matched by the glob), then the unit's state.
pub fn observe_command() -> Vec<String> {
    let script = format!(
        "sha256sum {CONFIG_PATH} {HOSTS_DIR}/* 2>/dev/null || true\nsystemctl is-active {UNIT} || true"
    );
    vec!["sh".into(), "-c".into(), script]
}

/// Reads [`observe_command`]'s output.
pub fn parse_observed(output: &str) -> Observed {
    let mut observed = Observed::default();
    for line in output.lines() {
        match line.split_once("  ") {
            Some((hash, path))
                if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                observed.hashes.insert(path.to_owned(), hash.to_owned());
            }
            _ if line.trim() == "active" => observed.active = true,
            _ => {}
        }
    }
    observed
}

/// One change to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Write record file `name` (atomically: dnsmasq reads it on the rename).
    WriteRecord(String),
    RemoveRecord(String),
    /// Check the new main config with `dnsmasq --test`, put it in place and restart.
    WriteConfig,
    /// Enable and (re)start the unit with the config in place.
    Start,
}

/// The changes from `observed` to `config` and `records`: records first (the directory
/// must exist before dnsmasq starts watching it), then the config and a restart.
pub fn plan(config: &str, records: &Records, observed: &Observed) -> Vec<Change> {
    let mut changes = Vec::new();
    for (name, content) in &records.files {
        if observed.hashes.get(&record_path(name)) != Some(&sha256(content)) {
            changes.push(Change::WriteRecord(name.clone()));
        }
    }
    let prefix = format!("{HOSTS_DIR}/");
    for path in observed.hashes.keys() {
        if let Some(name) = path.strip_prefix(&prefix)
            && !records.files.contains_key(name)
        {
            changes.push(Change::RemoveRecord(name.to_owned()));
        }
    }
    if observed.hashes.get(CONFIG_PATH) != Some(&sha256(config)) {
        changes.push(Change::WriteConfig);
    } else if !observed.active {
        changes.push(Change::Start);
    }
    changes
}

/// One hash of the whole wanted set (config and records by path): what status remembers
/// as applied, so that a difference later can be told apart from a change of the spec or
/// of the guests (drift: the node was changed behind Phoenix's back).
pub fn digest(hashes: &BTreeMap<String, String>) -> String {
    let text: String = hashes
        .iter()
        .map(|(path, hash)| format!("{hash}  {path}\n"))
        .collect();
    sha256(&text)
}

/// The hashes the node holds when it is as wanted.
pub fn wanted_hashes(config: &str, records: &Records) -> BTreeMap<String, String> {
    let mut hashes: BTreeMap<String, String> = records
        .files
        .iter()
        .map(|(name, content)| (record_path(name), sha256(content)))
        .collect();
    hashes.insert(CONFIG_PATH.into(), sha256(config));
    hashes
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_crds::proxmox_host::DnsRecord;

    fn spec() -> Dnsmasq {
        Dnsmasq {
            domain: "internal.example".into(),
            listen_addresses: vec!["10.0.0.13".into()],
            upstreams: vec!["1.1.1.1".into(), "2606:4700:4700::1111".into()],
            wildcard: Some("10.0.0.12".into()),
            records: vec![DnsRecord {
                name: "pve.internal.example".into(),
                address: "10.0.0.13".into(),
            }],
        }
    }

    #[test]
    fn the_config_names_domain_records_dir_listeners_upstreams_and_wildcard() {
        let config = render("phoenix", &spec()).unwrap();
        for line in [
            "local=/internal.example/",
            "hostsdir=/etc/phoenix/dnsmasq/hosts",
            "bind-interfaces",
            "listen-address=10.0.0.13",
            "server=1.1.1.1",
            "server=2606:4700:4700::1111",
            "address=/internal.example/10.0.0.12",
            "no-resolv",
        ] {
            assert!(config.lines().any(|l| l == line), "{line} in {config}");
        }
        let mut odd = spec();
        odd.upstreams = vec!["1.2.3".into()];
        let error = render("phoenix", &odd).unwrap_err();
        assert!(error.contains("spec.dnsmasq.upstreams"), "{error}");
    }

    #[test]
    fn observation_is_read_from_sha256sum_and_systemctl() {
        let hash = "a".repeat(64);
        let output = format!(
            "{hash}  /etc/dnsmasq.d/phoenix.conf\n{hash}  /etc/phoenix/dnsmasq/hosts/static\nactive\n"
        );
        let observed = parse_observed(&output);
        assert_eq!(observed.hashes.len(), 2);
        assert!(observed.active);
        let missing = parse_observed("inactive\n");
        assert!(missing.hashes.is_empty() && !missing.active);
    }

    fn records(files: &[(&str, &str)]) -> Records {
        Records {
            files: files
                .iter()
                .map(|(n, c)| ((*n).to_owned(), (*c).to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn plan_writes_what_differs_removes_what_is_gone_and_restarts_only_for_the_config() {
        use Change::*;
        let config = "conf\n";
        let wanted = records(&[("a", "1 a\n"), ("b", "2 b\n")]);
        let as_wanted = Observed {
            hashes: wanted_hashes(config, &wanted),
            active: true,
        };
        let mut changed = as_wanted.clone();
        changed.hashes.insert(record_path("b"), sha256("3 b\n"));
        changed.hashes.insert(record_path("old"), sha256("x\n"));
        let mut stopped = as_wanted.clone();
        stopped.active = false;
        let cases: Vec<(&str, Observed, Vec<Change>)> = vec![
            (
                "a fresh node",
                Observed::default(),
                vec![
                    WriteRecord("a".into()),
                    WriteRecord("b".into()),
                    WriteConfig,
                ],
            ),
            ("as wanted: nothing", as_wanted, vec![]),
            (
                "a record changed, another left over",
                changed,
                vec![WriteRecord("b".into()), RemoveRecord("old".into())],
            ),
            ("stopped", stopped, vec![Start]),
        ];
        for (name, observed, expected) in cases {
            assert_eq!(plan(config, &wanted, &observed), expected, "{name}");
        }
    }

    #[test]
    fn the_digest_changes_with_any_file() {
        let a = wanted_hashes("c\n", &records(&[("a", "1\n")]));
        let b = wanted_hashes("c\n", &records(&[("a", "2\n")]));
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(digest(&a), digest(&a.clone()));
    }
}
