//! Debian's `pebble` (Let's Encrypt's ACME test server), started on loopback as the
//! stand-in for Step-CA's ACME provisioner, with `pebble-challtestsrv` as its DNS: every
//! name resolves to 127.0.0.1, so HTTP-01 validation reaches the challenge responder on
//! `http01_port` of this machine and nothing else. All ports are picked free, so several
//! can run at once (tests run in parallel).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running pebble; stopped (with its DNS) on drop.
pub struct Pebble {
    pub directory_url: String,
    /// The issuing root (PEM), new on every start: pebble's management `/roots/0`.
    pub roots_url: String,
    /// The CA of pebble's own HTTPS listener (a certificate made here).
    pub listener_ca: PathBuf,
    /// Where pebble validates HTTP-01 challenges (on 127.0.0.1).
    pub http01_port: u16,
    pebble: Child,
    dns: Child,
    /// How to start both again (same ports and files).
    commands: [Vec<String>; 2],
    validate: bool,
    dir: PathBuf,
    ports: [u16; 2],
}

#[derive(Debug, thiserror::Error)]
pub enum PebbleError {
    #[error("{0} is not installed (apt-get install pebble)")]
    Missing(&'static str),
    #[error("pebble: {0}")]
    Start(String),
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16, PebbleError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| PebbleError::Start(e.to_string()))
}

impl Pebble {
    /// Starts pebble with its files in `dir`, validating HTTP-01 on `http01_port`. With
    /// `validate` false pebble takes every challenge as valid and connects nowhere: for
    /// orders naming the real platform's IP addresses, which must never be dialled.
    pub fn start(dir: &Path, http01_port: u16, validate: bool) -> Result<Self, PebbleError> {
        let start = |e: &dyn std::fmt::Display| PebbleError::Start(e.to_string());
        for program in ["pebble", "pebble-challtestsrv"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {program}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !found {
                return Err(PebbleError::Missing(if program == "pebble" {
                    "pebble"
                } else {
                    "pebble-challtestsrv"
                }));
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| start(&e))?;
        let key = rcgen::KeyPair::generate().map_err(|e| start(&e))?;
        let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .and_then(|p| p.self_signed(&key))
            .map_err(|e| start(&e))?;
        let listener_ca = dir.join("pebble-listener.pem");
        std::fs::write(&listener_ca, cert.pem()).map_err(|e| start(&e))?;
        std::fs::write(dir.join("pebble-listener.key"), key.serialize_pem())
            .map_err(|e| start(&e))?;
        let (acme, management, dns) = (free_port()?, free_port()?, free_port()?);
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": listener_ca,
            "privateKey": dir.join("pebble-listener.key"),
            "httpPort": http01_port,
            "tlsPort": free_port()?,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }});
        let config_path = dir.join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).map_err(|e| start(&e))?;
        // Only A records, all 127.0.0.1; nothing else of the DNS server is opened.
        let dns_command: Vec<String> = [
            "pebble-challtestsrv",
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{}", free_port()?),
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ]
        .map(String::from)
        .to_vec();
        let pebble_command: Vec<String> = vec![
            "pebble".into(),
            "-config".into(),
            config_path.display().to_string(),
            "-strict=false".into(),
            "-dnsserver".into(),
            format!("127.0.0.1:{dns}"),
        ];
        let (dns_child, pebble_child) = launch(dir, &dns_command, &pebble_command, validate)?;
        let pebble = Self {
            directory_url: format!("https://127.0.0.1:{acme}/dir"),
            roots_url: format!("https://127.0.0.1:{management}/roots/0"),
            listener_ca,
            http01_port,
            pebble: pebble_child,
            dns: dns_child,
            commands: [dns_command, pebble_command],
            validate,
            dir: dir.to_owned(),
            ports: [acme, management],
        };
        pebble.wait_listening()?;
        Ok(pebble)
    }

    /// Stops pebble (and its DNS): the ACME server is gone until [`Pebble::resume`].
    pub fn stop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts pebble again on the same ports (with a new root, as pebble always has).
    pub fn resume(&mut self) -> Result<(), PebbleError> {
        let [dns, pebble] = &self.commands;
        let (dns, pebble) = launch(&self.dir, dns, pebble, self.validate)?;
        (self.dns, self.pebble) = (dns, pebble);
        self.wait_listening()
    }

    /// Ready when its ports accept connections.
    fn wait_listening(&self) -> Result<(), PebbleError> {
        let deadline = Instant::now() + Duration::from_secs(15);
        for port in self.ports {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline {
                    return Err(PebbleError::Start(format!(
                        "nothing listens on 127.0.0.1:{port} after 15 s"
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

/// Starts the DNS stand-in, then pebble (without its random validation sleeps), logging
/// into `dir`.
fn launch(
    dir: &Path,
    dns: &[String],
    pebble: &[String],
    validate: bool,
) -> Result<(Child, Child), PebbleError> {
    let spawn = |argv: &[String], log: &str, env: &[(&str, &str)]| {
        let file =
            std::fs::File::create(dir.join(log)).map_err(|e| PebbleError::Start(e.to_string()))?;
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .envs(env.iter().copied())
            .stdout(file)
            .stderr(Stdio::null());
        die_with_parent(&mut command);
        command
            .spawn()
            .map_err(|e| PebbleError::Start(format!("{}: {e}", argv[0])))
    };
    let dns = spawn(dns, "challtestsrv.log", &[])?;
    let mut env = vec![("PEBBLE_VA_NOSLEEP", "1")];
    if !validate {
        env.push(("PEBBLE_VA_ALWAYS_VALID", "1"));
    }
    let pebble = spawn(pebble, "pebble.log", &env)?;
    Ok((dns, pebble))
}

/// The child is killed when the process that started it dies, however it dies (a
/// SIGKILLed `phoenix up` leaves no pebble behind).
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
