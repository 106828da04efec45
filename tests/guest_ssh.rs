//! Guest exec over real SSH: Debian's `sshd`, started here on 127.0.0.1 with throwaway
//! keys, stands in for the PVE node; its `pct` is `phoenix sim pct`, which reaches the
//! simulated container. Phoenix checks the node's host key as pinned for the node's real
//! address (10.0.0.13) while dialling only the loopback sshd (`--sim-ssh`).

mod support;

use kube::api::{Api, Patch, PatchParams};
use phoenix_crds::LxcGuest;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::ApiServer;

/// A throwaway sshd on loopback; stopped on drop.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) -> (String, String) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "phoenix-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let private = std::fs::read_to_string(path).unwrap();
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (private, public.trim().to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// sshd whose sessions find `pct` (forwarding to the simulator of `data_dir`) on PATH.
fn start_sshd(dir: &Path, data_dir: &Path, client_public: &str) -> (Sshd, String) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let pct = bin.join("pct");
    std::fs::write(
        &pct,
        format!(
            "#!/bin/sh\nexec {} sim pct --credentials {} \"$@\"\n",
            env!("CARGO_BIN_EXE_phoenix"),
            data_dir.join("sim.json").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pct, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_, host_public) = keygen(&dir.join("host_key"));
    std::fs::write(
        dir.join("authorized_keys"),
        format!(
            "environment=\"PATH={}:/usr/bin:/bin\" {client_public}\n",
            bin.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nPermitUserEnvironment yes\nStrictModes no\nPidFile {pid}\nLogLevel VERBOSE\n",
            host = dir.join("host_key").display(),
            keys = dir.join("authorized_keys").display(),
            pid = dir.join("sshd.pid").display(),
        ),
    )
    .unwrap();
    // sshd's privilege separation directory (systemd creates it on a booted system).
    std::fs::create_dir_all("/run/sshd").unwrap();
    let log = dir.join("sshd.log");
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .expect("sshd starts (openssh-server is installed by make deps)");
    let sshd = Sshd { child, port, log };
    // Ready when it accepts connections.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "sshd did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    (sshd, host_public)
}

fn ssh_secret(server: &ApiServer, private: &str, known_hosts: &str) {
    let indent = |text: &str| {
        text.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    support::kubectl_apply(
        server,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: pve-ssh, namespace: phoenix-system}}\nstringData:\n  id_ed25519: |\n{}  known_hosts: {known_hosts}\n",
            indent(private)
        ),
    );
}

fn reason_of(g: &LxcGuest) -> String {
    support::ready_reason(&g.status.clone().unwrap_or_default().common.conditions)
}

#[tokio::test(flavor = "multi_thread")]
async fn features_go_over_ssh_with_the_pinned_host_key_and_a_changed_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (private, public) = keygen(&dir.path().join("id_ed25519"));
    let (sshd, host_public) = start_sshd(dir.path(), &data, &public);
    let address = format!("127.0.0.1:{}", sshd.port);
    let log = dir.path().join("phoenix.log");
    let server = ApiServer::up_simulated_logged(
        &data,
        &["--task-duration", "default=0.2", "--sim-ssh", &address],
        &log,
    );
    support::homelab_cluster(&server).await;
    // Pinned for the node's real address, as an operator would write it.
    ssh_secret(&server, &private, &format!("10.0.0.13 {host_public}"));
    support::kubectl_apply(
        &server,
        &support::guest_yaml(
            "over-ssh",
            511,
            "  provisioning: {stepCli: {}}
  healthChecks: [{name: shell, exec: {command: [\"true\"]}}]
",
        ),
    );
    let api: Api<LxcGuest> = Api::namespaced(support::client(&server).await, "default");
    support::wait_for(
        &api,
        "step-cli applied over SSH",
        Duration::from_secs(90),
        |gs| {
            gs.iter().all(|g| {
                support::is_ready(&g.status.clone().unwrap_or_default().common.conditions)
                    && g.status
                        .as_ref()
                        .is_some_and(|s| s.guest.features.len() == 1)
            })
        },
    )
    .await;
    let sshd_log = std::fs::read_to_string(&sshd.log).unwrap();
    assert!(
        sshd_log.contains("Accepted publickey for root"),
        "the commands came through sshd:\n{sshd_log}"
    );
    let inside = support::SimAdmin::of(&server).guest(511).await;
    assert!(
        inside["files"]["/var/lib/phoenix/features/step-cli.sh"]
            .as_str()
            .is_some_and(|s| s.contains("dpkg -i /tmp/step-cli.deb")),
        "the script was pushed through pct push over SSH"
    );

    // The node's key is not the pinned one (another machine answers): refused, named.
    let (_, other_public) = keygen(&dir.path().join("other_host_key"));
    ssh_secret(&server, &private, &format!("10.0.0.13 {other_public}"));
    api.patch(
        "over-ssh",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"provisioning": {"stepCli": {"version": "0.28.2"}}}})),
    )
    .await
    .unwrap();
    support::wait_for(
        &api,
        "the host key refused",
        Duration::from_secs(60),
        |gs| gs.iter().all(|g| reason_of(g) == "SshHostKeyMismatch"),
    )
    .await;
    let g = api.get("over-ssh").await.unwrap();
    let message = g
        .status
        .unwrap()
        .common
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(
        message.contains("host key of 10.0.0.13 does not match"),
        "{message}"
    );

    // The private key shows up nowhere: not in logs, events or status.
    let everything = [
        std::fs::read_to_string(&log).unwrap(),
        support::kubectl(&server, &["get", "events", "-A", "-o", "yaml"]),
        support::kubectl(&server, &["get", "lxcguests", "-o", "yaml"]),
    ]
    .join("\n");
    for line in private.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!everything.contains(line), "the SSH key leaked: {line}");
    }
    assert!(
        everything.contains("SshHostKeyMismatch"),
        "the refusal is told (event and status)"
    );
}
