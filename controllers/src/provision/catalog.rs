//! The built-in feature catalog: each feature of `spec.provisioning`, rendered from the
//! spec into files to push and named steps of shell lines — pure, so what runs in a guest
//! can be read and tested without one. A feature's hash covers the catalog version, its
//! files and its script: any change of either re-applies that feature, and only it.

use crate::traefik_service::{gateway, render};
use phoenix_crds::common::{Provisioning, TraefikFeature, VllmFeature};
use std::collections::BTreeMap;

/// Bumped when a feature's rendering changes, so guests get the new version.
pub const CATALOG_VERSION: &str = "1";

/// Where Phoenix keeps its scripts, locks and markers inside a guest.
pub const STATE_DIR: &str = "/var/lib/phoenix/features";

/// A file a feature puts in place before its script runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub content: String,
    pub mode: &'static str,
    /// Renewed by its Certificate (a TLS key pair): its content stays out of the feature's
    /// hash, so a renewal does not re-run the feature — the Certificate's install targets
    /// bring renewed pairs into the guest.
    pub rotating: bool,
}

/// One named step of a feature's script: the failing step is reported by this name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub lines: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    pub name: String,
    pub files: Vec<File>,
    pub steps: Vec<Step>,
}

/// What features need from outside the spec, read by the caller.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The CA root (PEM) for `trusted-ca`.
    pub ca_root: Option<String>,
    /// The CA Docker daemons check their clients against (`docker_client_ca`).
    pub docker_client_ca: Option<String>,
    /// Step-CA's URL and root fingerprint, for `step ca bootstrap`.
    pub step_ca: Option<(String, String)>,
    /// Custom scripts by feature name.
    pub custom_scripts: BTreeMap<String, String>,
    /// TLS key pairs by Certificate name: (certificate chain, private key).
    pub tls: BTreeMap<String, (String, String)>,
}

/// What a feature waits for before it can be rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    pub feature: String,
    pub what: String,
}

/// The features of `spec`, in catalog order.
pub fn features(spec: &Provisioning, inputs: &Inputs) -> Result<Vec<Feature>, Missing> {
    let mut out = Vec::new();
    if let Some(base) = &spec.base {
        let mut packages = vec!["curl", "ca-certificates", "gnupg"];
        packages.extend(base.packages.iter().map(String::as_str));
        packages.dedup();
        out.push(feature(
            "base",
            vec![],
            vec![
                step("update", &[
                    "apt-get update -q",
                    "DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confold upgrade",
                ]),
                step("packages", &[&format!(
                    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q -- {}",
                    words(&packages)
                )]),
            ],
        ));
    }
    if let Some(nvidia) = &spec.nvidia {
        out.push(nvidia_feature(nvidia.driver_version.as_deref()));
    }
    if let Some(docker) = &spec.docker {
        out.push(docker_feature(
            docker.tls_certificate_ref.as_ref().map(|r| r.name.as_str()),
            inputs,
        )?);
    }
    if let Some(step_cli) = &spec.step_cli {
        out.push(step_cli_feature(step_cli.version.as_deref(), inputs));
    }
    if spec.trusted_ca.is_some() {
        let root = inputs.ca_root.clone().ok_or_else(|| Missing {
            feature: "trusted-ca".into(),
            what: "the CA root".into(),
        })?;
        out.push(feature(
            "trusted-ca",
            vec![file(
                "/usr/local/share/ca-certificates/phoenix-root-ca.crt",
                root,
                "0644",
            )],
            vec![step("update-trust-store", &["update-ca-certificates"])],
        ));
    }
    if let Some(traefik) = &spec.traefik {
        out.push(traefik_feature(traefik, inputs)?);
    }
    if spec.nginx_gateway.is_some() {
        out.push(nginx_gateway_feature());
    }
    if let Some(ollama) = &spec.ollama {
        let mut pulls: Vec<String> = ollama
            .models
            .iter()
            .map(|m| {
                format!(
                    "env OLLAMA_HOST=127.0.0.1:{} ollama pull {}",
                    ollama.port,
                    quote(m)
                )
            })
            .collect();
        pulls.insert(0, "systemctl daemon-reload".into());
        pulls.insert(1, "systemctl enable --now ollama".into());
        pulls.insert(2, "systemctl restart ollama".into());
        out.push(Feature {
            name: "ollama".into(),
            files: vec![file(
                "/etc/systemd/system/ollama.service.d/phoenix.conf",
                format!(
                    "[Service]\nEnvironment=\"OLLAMA_HOST=0.0.0.0:{}\"\n",
                    ollama.port
                ),
                "0644",
            )],
            steps: vec![
                step(
                    "install",
                    &[
                        "curl -fsSL https://ollama.com/install.sh -o /tmp/ollama-install.sh",
                        "sh /tmp/ollama-install.sh",
                    ],
                ),
                Step {
                    name: "serve",
                    lines: pulls,
                },
            ],
        });
    }
    if let Some(vllm) = &spec.vllm {
        out.push(vllm_feature(vllm, inputs)?);
    }
    for custom in &spec.custom {
        let name = format!("custom-{}", custom.name);
        let script = inputs
            .custom_scripts
            .get(&name)
            .cloned()
            .ok_or_else(|| Missing {
                feature: name.clone(),
                what: format!(
                    "key {:?} of ConfigMap {}",
                    custom.script.key, custom.script.name
                ),
            })?;
        let path = format!("{STATE_DIR}/{name}.custom.sh");
        let env: Vec<String> = custom
            .parameters
            .iter()
            .map(|(k, v)| quote(&format!("{k}={v}")))
            .collect();
        out.push(Feature {
            name: name.clone(),
            files: vec![file(&path, script, "0755")],
            steps: vec![Step {
                name: "run",
                lines: vec![
                    ["env", "--"]
                        .into_iter()
                        .map(str::to_owned)
                        .chain(env)
                        .chain(["sh".to_owned(), path.clone()])
                        .collect::<Vec<_>>()
                        .join(" "),
                ],
            }],
        });
    }
    Ok(out)
}

fn nvidia_feature(driver: Option<&str>) -> Feature {
    // In a container the kernel module is the host's: only the user space goes in, and it
    // must be the host's version.
    let driver_step = match driver {
        Some(v) => step(
            "driver",
            &[
                &format!(
                    "curl -fsSLo /tmp/nvidia.run https://us.download.nvidia.com/XFree86/Linux-x86_64/{v}/NVIDIA-Linux-x86_64-{v}.run"
                ),
                "sh /tmp/nvidia.run --silent --no-kernel-module --no-questions --ui=none",
            ],
        ),
        None => step(
            "driver",
            &["DEBIAN_FRONTEND=noninteractive apt-get install -y -q nvidia-driver"],
        ),
    };
    feature(
        "nvidia",
        vec![],
        vec![
            driver_step,
            step(
                "container-toolkit",
                &[
                    "curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey -o /tmp/nvidia-container.key",
                    "gpg --batch --yes --dearmor -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg /tmp/nvidia-container.key",
                    "curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list -o /etc/apt/sources.list.d/nvidia-container-toolkit.list",
                    "apt-get update -q",
                    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q nvidia-container-toolkit",
                ],
            ),
            step("verify", &["nvidia-smi"]),
        ],
    )
}

fn docker_feature(tls: Option<&str>, inputs: &Inputs) -> Result<Feature, Missing> {
    let mut files = Vec::new();
    let mut steps = vec![step(
        "install",
        &[
            "curl -fsSL https://get.docker.com -o /tmp/get-docker.sh",
            "sh /tmp/get-docker.sh",
        ],
    )];
    if let Some(certificate) = tls {
        let (chain, key) = tls_pair("docker", certificate, inputs)?;
        // Clients are checked against Phoenix's own client CA, not the platform's: a key
        // the platform CA issued to any guest must not open the daemon.
        let ca = inputs.docker_client_ca.clone().ok_or_else(|| Missing {
            feature: "docker".into(),
            what: "Phoenix's Docker client CA (clients of the daemon are checked against it)"
                .into(),
        })?;
        files.extend([
            file("/etc/docker/tls/ca.pem", ca, "0644"),
            rotating("/etc/docker/tls/cert.pem", chain, "0644"),
            rotating("/etc/docker/tls/key.pem", key, "0600"),
            file(
                "/etc/docker/daemon.json",
                concat!(
                    "{\n  \"tls\": true,\n  \"tlsverify\": true,\n",
                    "  \"tlscacert\": \"/etc/docker/tls/ca.pem\",\n",
                    "  \"tlscert\": \"/etc/docker/tls/cert.pem\",\n",
                    "  \"tlskey\": \"/etc/docker/tls/key.pem\",\n",
                    "  \"hosts\": [\"unix:///var/run/docker.sock\", \"tcp://0.0.0.0:2376\"]\n}\n"
                )
                .into(),
                "0644",
            ),
            // The packaged unit passes -H, which conflicts with `hosts` in daemon.json.
            file(
                "/etc/systemd/system/docker.service.d/phoenix.conf",
                "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd --containerd=/run/containerd/containerd.sock\n".into(),
                "0644",
            ),
        ]);
    }
    steps.push(step(
        "start",
        &[
            "systemctl daemon-reload",
            "systemctl enable --now docker",
            "systemctl restart docker",
            "docker info",
        ],
    ));
    Ok(Feature {
        name: "docker".into(),
        files,
        steps,
    })
}

fn step_cli_feature(version: Option<&str>, inputs: &Inputs) -> Feature {
    let url = match version {
        Some(v) => format!(
            "https://github.com/smallstep/cli/releases/download/v{v}/step-cli_{v}_amd64.deb"
        ),
        None => "https://dl.smallstep.com/cli/docs-cli-install/latest/step-cli_amd64.deb".into(),
    };
    let mut steps = vec![step(
        "install",
        &[
            &format!("curl -fsSLo /tmp/step-cli.deb {}", quote(&url)),
            "dpkg -i /tmp/step-cli.deb",
            "step version",
        ],
    )];
    if let Some((ca_url, fingerprint)) = &inputs.step_ca {
        steps.push(step(
            "bootstrap",
            &[&format!(
                "step ca bootstrap --ca-url {} --fingerprint {} --force",
                quote(ca_url),
                quote(fingerprint)
            )],
        ));
    }
    feature("step-cli", vec![], steps)
}

/// Traefik's static configuration: what the TraefikService controller's documents and the
/// `ping` health check expect.
fn traefik_static() -> String {
    format!(
        "# Written by Phoenix (feature traefik).\n\
         entryPoints:\n  web:\n    address: \":80\"\n    http:\n      redirections:\n        entryPoint:\n          to: {entry}\n          scheme: https\n\
         \x20 {entry}:\n    address: \":443\"\n  ping:\n    address: \":8082\"\n\
         ping:\n  entryPoint: ping\n\
         providers:\n  file:\n    directory: {dir}\n    watch: true\n\
         log:\n  level: INFO\n\
         global:\n  checkNewVersion: false\n  sendAnonymousUsage: false\n",
        entry = render::ENTRY_POINT,
        dir = render::DYNAMIC_DIR,
    )
}

/// The middlewares routes may name, and Traefik's default certificate: defined here once
/// (two providers defining `tls.stores.default` would drop both).
pub fn traefik_defaults(default_certificate: bool) -> String {
    let mut document = serde_json::json!({"http": {"middlewares": {
        "compress": {"compress": {}},
        "secure-headers": {"headers": {
            "stsSeconds": 31536000,
            "contentTypeNosniff": true,
            "frameDeny": true,
            "referrerPolicy": "same-origin",
        }},
    }}});
    if default_certificate {
        document["tls"] = serde_json::json!({"stores": {"default": {"defaultCertificate": {
            "certFile": TRAEFIK_CERT,
            "keyFile": TRAEFIK_KEY,
        }}}});
    }
    let body = serde_json::to_string_pretty(&document).expect("JSON values serialise");
    format!("# Written by Phoenix (feature traefik).\n{body}\n")
}

const TRAEFIK_CERT: &str = "/etc/traefik/certs/traefik.crt";
const TRAEFIK_KEY: &str = "/etc/traefik/certs/traefik.key";

fn traefik_feature(traefik: &TraefikFeature, inputs: &Inputs) -> Result<Feature, Missing> {
    let v = &traefik.version;
    let release = format!("https://github.com/traefik/traefik/releases/download/v{v}");
    let (tarball, sums) = (
        format!("traefik_v{v}_linux_amd64.tar.gz"),
        format!("traefik_v{v}_checksums.txt"),
    );
    let mut files = Vec::new();
    if let Some(r) = &traefik.certificate_ref {
        let (chain, key) = tls_pair("traefik", &r.name, inputs)?;
        files.push(rotating(TRAEFIK_CERT, chain, "0644"));
        files.push(rotating(TRAEFIK_KEY, key, "0600"));
    }
    files.push(file("/etc/traefik/traefik.yml", traefik_static(), "0644"));
    files.push(file(
        &format!("{}/00-phoenix-defaults.yml", render::DYNAMIC_DIR),
        traefik_defaults(traefik.certificate_ref.is_some()),
        "0644",
    ));
    files.push(file(
        "/etc/systemd/system/traefik.service",
        "[Unit]\nDescription=Traefik (Phoenix)\nAfter=network-online.target\nWants=network-online.target\n\n\
         [Service]\nExecStart=/usr/local/bin/traefik --configFile=/etc/traefik/traefik.yml\nRestart=on-failure\n\
         AmbientCapabilities=CAP_NET_BIND_SERVICE\n\n[Install]\nWantedBy=multi-user.target\n"
            .into(),
        "0644",
    ));
    Ok(feature(
        "traefik",
        files,
        vec![
            step(
                "install",
                &[
                    &format!(
                        "curl -fsSLo {} {}",
                        quote(&format!("/tmp/{tarball}")),
                        quote(&format!("{release}/{tarball}"))
                    ),
                    &format!(
                        "curl -fsSLo {} {}",
                        quote(&format!("/tmp/{sums}")),
                        quote(&format!("{release}/{sums}"))
                    ),
                    // The release's own SHA-256 list: a download cut short, altered or
                    // missing from the list stops here, before anything is installed.
                    &checksum_check(&tarball, &sums),
                    &format!(
                        "tar -xzf {} -C /usr/local/bin traefik",
                        quote(&format!("/tmp/{tarball}"))
                    ),
                    "traefik version",
                ],
            ),
            step(
                "service",
                &[
                    "systemctl daemon-reload",
                    "systemctl enable traefik.service",
                    "systemctl restart traefik.service",
                ],
            ),
        ],
    ))
}

/// `sha256sum --check` of `/tmp/<file>` against its line in `/tmp/<sums>` (goreleaser's
/// `HASH  NAME` lines); no line for it is a failure too. The names come from a version
/// the CRD's pattern (`^3\.\d+\.\d+$`) admits.
fn checksum_check(file: &str, sums: &str) -> String {
    format!(
        "cd /tmp && awk -v f={} '$2 == f' {} | sha256sum --check --strict -",
        quote(file),
        quote(sums)
    )
}

fn nginx_gateway_feature() -> Feature {
    feature(
        "nginx-gateway",
        vec![file(
            "/etc/nginx/conf.d/phoenix.conf",
            format!(
                "# Written by Phoenix (feature nginx-gateway): the public routes' sites.\ninclude {}/*.conf;\n",
                gateway::SITES_DIR
            ),
            "0644",
        )],
        vec![
            step(
                "install",
                &["DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx"],
            ),
            step(
                "configure",
                &[
                    "rm -f /etc/nginx/sites-enabled/default",
                    &format!("mkdir -p {}", gateway::CERTS_DIR),
                    "nginx -t",
                ],
            ),
            step(
                "service",
                &[
                    "systemctl enable nginx",
                    "systemctl reload-or-restart nginx",
                ],
            ),
        ],
    )
}

fn vllm_feature(vllm: &VllmFeature, inputs: &Inputs) -> Result<Feature, Missing> {
    let mut files = Vec::new();
    let tls = match &vllm.tls_certificate_ref {
        Some(r) => {
            let (chain, key) = tls_pair("vllm", &r.name, inputs)?;
            files.push(rotating("/etc/vllm/tls.crt", chain, "0644"));
            files.push(rotating("/etc/vllm/tls.key", key, "0600"));
            true
        }
        None => false,
    };
    files.push(file(
        "/etc/systemd/system/vllm.service",
        vllm_unit(vllm, tls),
        "0644",
    ));
    Ok(Feature {
        name: "vllm".into(),
        files,
        steps: vec![
            step(
                "install",
                &[
                    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv",
                    "python3 -m venv /opt/vllm",
                    "/opt/vllm/bin/pip install --upgrade vllm",
                ],
            ),
            step(
                "service",
                &[
                    "systemctl daemon-reload",
                    "systemctl enable --now vllm.service",
                    "systemctl restart vllm.service",
                ],
            ),
        ],
    })
}

/// The systemd unit serving the model, as the old system generated it from its JSON.
pub fn vllm_unit(vllm: &VllmFeature, tls: bool) -> String {
    let mut args = vec![
        "/opt/vllm/bin/vllm".to_owned(),
        "serve".into(),
        vllm.model.clone(),
        "--host".into(),
        "0.0.0.0".into(),
        "--port".into(),
        vllm.port.to_string(),
    ];
    if let Some(fraction) = vllm.gpu_memory_utilization {
        args.extend(["--gpu-memory-utilization".into(), fraction.to_string()]);
    }
    if tls {
        args.extend([
            "--ssl-certfile".into(),
            "/etc/vllm/tls.crt".into(),
            "--ssl-keyfile".into(),
            "/etc/vllm/tls.key".into(),
        ]);
    }
    args.extend(vllm.args.iter().cloned());
    let env: String = vllm
        .env
        .iter()
        .map(|e| {
            format!(
                "Environment={}\n",
                systemd_assignment(&format!("{}={}", e.name, e.value))
            )
        })
        .collect();
    let exec: Vec<String> = args.iter().map(|a| systemd_word(a)).collect();
    // Admission refuses control characters in the model; an object stored before that rule
    // still cannot add a directive: the description keeps printable characters only.
    let model: String = vllm.model.chars().filter(|c| !c.is_control()).collect();
    format!(
        "# Generated by Phoenix from the vllm feature of its guest; changes are overwritten.\n\
         [Unit]\n\
         Description=vLLM serving {model}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         {env}\
         ExecStart={exec}\n\
         Restart=on-failure\n\
         RestartSec=10\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        model = model.replace('%', "%%"),
        exec = exec.join(" "),
    )
}

/// One word of a systemd command line: quoted when it has to be, `%` and `$` escaped as
/// systemd's specifiers and variables, control characters (a newline would start a new
/// directive) as `\xNN`.
fn systemd_word(word: &str) -> String {
    systemd_quoted(word, true)
}

/// An `Environment=` assignment: quoted as a word, but `$` kept as it is, since systemd
/// expands no variables there (a doubled `$` would reach the service doubled).
fn systemd_assignment(text: &str) -> String {
    systemd_quoted(text, false)
}

fn systemd_quoted(word: &str, escape_dollar: bool) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@".contains(c));
    if plain {
        return word.to_owned();
    }
    let escaped: String = word
        .chars()
        .map(|c| match c {
            '%' => "%%".to_owned(),
            '$' if escape_dollar => "$$".to_owned(),
            '\\' => "\\\\".to_owned(),
            '"' => "\\\"".to_owned(),
            c if c.is_control() => format!("\\x{:02x}", c as u32),
            c => c.to_string(),
        })
        .collect();
    format!("\"{escaped}\"")
}

fn tls_pair(
    feature: &str,
    certificate: &str,
    inputs: &Inputs,
) -> Result<(String, String), Missing> {
    inputs.tls.get(certificate).cloned().ok_or_else(|| Missing {
        feature: feature.into(),
        what: format!("the TLS Secret of Certificate {certificate}"),
    })
}

pub fn feature(name: &str, files: Vec<File>, steps: Vec<Step>) -> Feature {
    Feature {
        name: name.into(),
        files,
        steps,
    }
}

pub fn step(name: &'static str, lines: &[&str]) -> Step {
    Step {
        name,
        lines: lines.iter().map(|l| l.to_string()).collect(),
    }
}

pub fn file(path: &str, content: String, mode: &'static str) -> File {
    File {
        path: path.into(),
        content,
        mode,
        rotating: false,
    }
}

/// Key pair material a Certificate renews.
fn rotating(path: &str, content: String, mode: &'static str) -> File {
    File {
        rotating: true,
        ..file(path, content, mode)
    }
}

fn quote(word: &str) -> String {
    phoenix_clients::exec::quote(word)
}

fn words(list: &[&str]) -> String {
    list.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

impl Feature {
    /// Content hash: catalog version, files and steps. Files are hashed, never printed.
    pub fn hash(&self) -> String {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(CATALOG_VERSION.as_bytes());
        context.update(self.name.as_bytes());
        for f in &self.files {
            let content = if f.rotating { "" } else { f.content.as_str() };
            for part in [f.path.as_str(), f.mode, content] {
                context.update(&(part.len() as u64).to_le_bytes());
                context.update(part.as_bytes());
            }
        }
        context.update(self.body().as_bytes());
        let digest = context.finish();
        digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn body(&self) -> String {
        self.steps
            .iter()
            .map(|s| format!("echo '==> {}'\n{}\n", s.name, s.lines.join("\n")))
            .collect()
    }

    pub fn marker(&self) -> String {
        format!("{STATE_DIR}/{}.done", self.name)
    }

    pub fn script_path(&self) -> String {
        format!("{STATE_DIR}/{}.sh", self.name)
    }

    pub fn lock_path(&self) -> String {
        format!("{STATE_DIR}/{}.lock", self.name)
    }

    /// The script: skips itself when the marker holds this hash (a run that completed
    /// while nobody watched), stops at the first failing line, and writes the marker last.
    pub fn script(&self) -> String {
        let hash = self.hash();
        let marker = self.marker();
        format!(
            "#!/bin/sh\n\
             # Phoenix feature {name} (catalog {CATALOG_VERSION}), content {hash}.\n\
             set -eu\n\
             if [ \"$(cat {marker} 2>/dev/null)\" = \"{hash}\" ]; then exit 0; fi\n\
             {body}\
             echo {hash} > {marker}\n",
            name = self.name,
            body = self.body(),
        )
    }
}

/// The step a failed run was in: the last `==> STEP` line of its output.
pub fn failing_step(output: &str) -> Option<String> {
    output
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("==> "))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {

    /// The checksum line run by the real `sh`, `awk` and `sha256sum` on files standing in
    /// for the release's (`/tmp` moved to a directory of the test's).
    #[test]
    fn traefiks_download_is_checked_against_the_releases_checksums() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().display().to_string();
        let (tarball, sums) = (
            "traefik_v3.7.13_linux_amd64.tar.gz",
            "traefik_v3.7.13_checksums.txt",
        );
        let run = |content: &str, listed: &[(&str, &str)]| {
            std::fs::write(dir.path().join(tarball), content).unwrap();
            let lines: String = listed
                .iter()
                .map(|(name, text)| format!("{}  {name}\n", crate::hashing::sha256(text)))
                .collect();
            std::fs::write(dir.path().join(sums), lines).unwrap();
            let line = checksum_check(tarball, sums).replace("cd /tmp", &format!("cd {tmp}"));
            std::process::Command::new("sh")
                .args(["-eu", "-c", &line])
                .output()
                .unwrap()
                .status
                .success()
        };
        let arm = ("traefik_v3.7.13_linux_arm64.tar.gz", "arm");
        assert!(run("release", &[arm, (tarball, "release")]));
        assert!(
            !run("altered", &[arm, (tarball, "release")]),
            "altered download"
        );
        assert!(!run("release", &[arm]), "not in the list");
        let line = checksum_check(tarball, sums);
        let spec: TraefikFeature = serde_json::from_value(serde_json::json!({})).unwrap();
        let feature = traefik_feature(&spec, &Inputs::default()).unwrap();
        let install = &feature.steps[0].lines;
        let at = |needle: &str| install.iter().position(|l| l.contains(needle)).unwrap();
        assert!(
            at(&line) < at("tar -xzf"),
            "checked before it is unpacked: {install:?}"
        );
    }

    #[test]
    fn traefiks_defaults_document_passes_traefiks_schema() {
        for default_certificate in [false, true] {
            let text = traefik_defaults(default_certificate);
            let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
            assert_eq!(
                crate::traefik_service::schema::check(&doc),
                Ok(()),
                "{text}"
            );
        }
    }

    #[test]
    fn traefik_reads_the_routes_directory_and_defines_the_middlewares_routes_name() {
        let spec: Provisioning =
            serde_json::from_value(serde_json::json!({"traefik": {}, "nginxGateway": {}})).unwrap();
        let out = features(&spec, &Inputs::default()).unwrap();
        let names: Vec<&str> = out.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["traefik", "nginx-gateway"]);
        let content = |f: &Feature, path: &str| {
            f.files
                .iter()
                .find(|x| x.path == path)
                .map(|x| x.content.clone())
                .unwrap()
        };
        let static_config: serde_json::Value =
            serde_yaml_ng::from_str(&content(&out[0], "/etc/traefik/traefik.yml")).unwrap();
        assert_eq!(static_config["entryPoints"]["websecure"]["address"], ":443");
        assert_eq!(static_config["entryPoints"]["ping"]["address"], ":8082");
        assert_eq!(
            static_config["providers"]["file"]["directory"],
            render::DYNAMIC_DIR
        );
        let defaults: serde_json::Value = serde_yaml_ng::from_str(&content(
            &out[0],
            "/etc/traefik/dynamic/00-phoenix-defaults.yml",
        ))
        .unwrap();
        let defined: Vec<&String> = defaults["http"]["middlewares"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(defined, render::KNOWN_MIDDLEWARES);
        assert!(
            defaults.get("tls").is_none(),
            "no default certificate unless named"
        );
        assert!(
            content(&out[1], "/etc/nginx/conf.d/phoenix.conf")
                .contains("include /etc/nginx/phoenix/*.conf;")
        );
        // Traefik's own certificate waits for its Secret.
        let spec: Provisioning = serde_json::from_value(
            serde_json::json!({"traefik": {"certificateRef": {"name": "traefik"}}}),
        )
        .unwrap();
        let missing = features(&spec, &Inputs::default()).unwrap_err();
        assert_eq!(missing.feature, "traefik");
    }

    use super::*;
    use phoenix_crds::common::{BaseFeature, CustomFeature, OllamaFeature, UnitEnvVar};

    fn vllm() -> VllmFeature {
        VllmFeature {
            model: "ibm-granite/granite-embedding-278m-multilingual".into(),
            port: 8000,
            args: vec![
                "--task".into(),
                "embed".into(),
                "--served-model-name".into(),
                "granite 278m".into(),
            ],
            gpu_memory_utilization: Some(0.3),
            tls_certificate_ref: None,
            env: vec![UnitEnvVar {
                name: "HF_HOME".into(),
                value: "/models/hf".into(),
            }],
        }
    }

    #[test]
    fn no_spec_value_adds_a_line_to_the_unit() {
        let mut evil = vllm();
        evil.model = "m\nExecStartPre=/bin/sh -c pwned".into();
        evil.args.push("x\nUser=root".into());
        evil.env.push(UnitEnvVar {
            name: "A".into(),
            value: "1\nExecStartPost=/bin/true".into(),
        });
        let unit = vllm_unit(&evil, false);
        for line in unit.lines() {
            let directive = line.split('=').next().unwrap_or_default();
            assert!(
                !["ExecStartPre", "User", "ExecStartPost"].contains(&directive),
                "{line:?} in\n{unit}"
            );
        }
    }

    #[test]
    fn docker_checks_its_clients_against_phoenixs_client_ca_not_the_platform_root() {
        let mut inputs = Inputs {
            ca_root: Some("PLATFORM ROOT".into()),
            ..Default::default()
        };
        inputs
            .tls
            .insert("vm-tls".into(), ("CHAIN".into(), "KEY".into()));
        let missing = docker_feature(Some("vm-tls"), &inputs).unwrap_err();
        assert!(missing.what.contains("client CA"), "{}", missing.what);
        inputs.docker_client_ca = Some("CLIENT CA".into());
        let docker = docker_feature(Some("vm-tls"), &inputs).unwrap();
        let ca = docker
            .files
            .iter()
            .find(|f| f.path == "/etc/docker/tls/ca.pem")
            .unwrap();
        assert_eq!(ca.content, "CLIENT CA");
        assert!(docker.files.iter().all(|f| f.content != "PLATFORM ROOT"));
    }

    #[test]
    fn the_vllm_unit_carries_model_port_gpu_share_env_and_quoted_args() {
        let unit = vllm_unit(&vllm(), true);
        assert!(unit.contains(
            "ExecStart=/opt/vllm/bin/vllm serve ibm-granite/granite-embedding-278m-multilingual --host 0.0.0.0 --port 8000 --gpu-memory-utilization 0.3 --ssl-certfile /etc/vllm/tls.crt --ssl-keyfile /etc/vllm/tls.key --task embed --served-model-name \"granite 278m\"\n"
        ), "{unit}");
        assert!(unit.contains("Environment=HF_HOME=/models/hf\n"));
        assert!(unit.contains("WantedBy=multi-user.target"));
        // systemd expands no `$` in Environment=: a value keeps it as given.
        assert_eq!(systemd_assignment("TOKEN=a$b 50%"), "\"TOKEN=a$b 50%%\"");
        assert_eq!(systemd_word("50%"), "\"50%%\"");
        assert_eq!(
            systemd_word("x\nExecStartPre=/bin/evil $HOME"),
            "\"x\\x0aExecStartPre=/bin/evil $$HOME\""
        );
    }

    #[test]
    fn features_come_in_catalog_order_and_wait_for_their_inputs() {
        let mut spec = Provisioning {
            base: Some(BaseFeature {
                packages: vec!["jq".into()],
            }),
            trusted_ca: Some(Default::default()),
            ollama: Some(OllamaFeature {
                port: 11434,
                models: vec!["llama3.1:8b".into()],
            }),
            ..Default::default()
        };
        let missing = features(&spec, &Inputs::default()).unwrap_err();
        assert_eq!(missing.feature, "trusted-ca");
        let inputs = Inputs {
            ca_root: Some("-----BEGIN CERTIFICATE-----\n".into()),
            docker_client_ca: Some("-----BEGIN CERTIFICATE-----\nclient CA\n".into()),
            ..Default::default()
        };
        let names: Vec<String> = features(&spec, &inputs)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["base", "trusted-ca", "ollama"]);
        spec.custom.push(CustomFeature {
            name: "hardening".into(),
            script: phoenix_crds::common::ConfigMapKeyRef {
                name: "base-hardening".into(),
                key: "hardening.sh".into(),
            },
            parameters: BTreeMap::from([("TIMEZONE".into(), "Europe/Berlin".into())]),
        });
        assert_eq!(
            features(&spec, &inputs).unwrap_err().feature,
            "custom-hardening"
        );
    }

    #[test]
    fn the_hash_follows_content_and_only_that_features_content() {
        let inputs = Inputs::default();
        let spec = |port| Provisioning {
            base: Some(BaseFeature::default()),
            ollama: Some(OllamaFeature {
                port,
                models: vec![],
            }),
            ..Default::default()
        };
        let a = features(&spec(11434), &inputs).unwrap();
        let b = features(&spec(11435), &inputs).unwrap();
        assert_eq!(a[0].hash(), b[0].hash(), "base unchanged");
        assert_ne!(a[1].hash(), b[1].hash(), "ollama changed");
        assert_eq!(
            a[1].hash(),
            features(&spec(11434), &inputs).unwrap()[1].hash()
        );
    }

    #[test]
    fn the_script_guards_on_its_marker_names_its_steps_and_marks_last() {
        let f = &features(
            &Provisioning {
                base: Some(BaseFeature::default()),
                ..Default::default()
            },
            &Inputs::default(),
        )
        .unwrap()[0];
        let script = f.script();
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines[2], "set -eu");
        assert_eq!(
            lines[3],
            format!(
                "if [ \"$(cat {STATE_DIR}/base.done 2>/dev/null)\" = \"{}\" ]; then exit 0; fi",
                f.hash()
            )
        );
        assert_eq!(
            lines.last().unwrap(),
            &format!("echo {} > {STATE_DIR}/base.done", f.hash())
        );
        assert_eq!(
            failing_step("==> update\nHit:1\n==> packages\nE: broken\n").as_deref(),
            Some("packages")
        );
    }

    #[test]
    fn a_renewed_key_pair_does_not_change_the_hash() {
        let mut v = vllm();
        v.tls_certificate_ref = Some(phoenix_crds::common::LocalRef {
            name: "granite".into(),
        });
        let pair = |key: &str| Inputs {
            tls: BTreeMap::from([("granite".into(), ("CHAIN".into(), key.into()))]),
            ..Default::default()
        };
        let before = vllm_feature(&v, &pair("KEY-1")).unwrap();
        let after = vllm_feature(&v, &pair("KEY-2")).unwrap();
        assert_eq!(before.hash(), after.hash());
        v.port = 8001;
        assert_ne!(
            vllm_feature(&v, &pair("KEY-2")).unwrap().hash(),
            before.hash()
        );
    }

    #[test]
    fn secrets_are_in_files_never_in_the_script() {
        let mut v = vllm();
        v.tls_certificate_ref = Some(phoenix_crds::common::LocalRef {
            name: "granite".into(),
        });
        let inputs = Inputs {
            tls: BTreeMap::from([("granite".into(), ("CHAIN".into(), "PRIVATE-KEY".into()))]),
            ..Default::default()
        };
        let f = vllm_feature(&v, &inputs).unwrap();
        assert!(!f.script().contains("PRIVATE-KEY"));
        let key = f
            .files
            .iter()
            .find(|f| f.path == "/etc/vllm/tls.key")
            .unwrap();
        assert_eq!((key.content.as_str(), key.mode), ("PRIVATE-KEY", "0600"));
    }
}
