//! Debian's nginx (1.22, `make deps`) on loopback, running the gateway files Phoenix
//! renders from a directory standing in for the gateway guest's filesystem: the main
//! configuration is the harness's (pid, logs and temp paths in the test's directory), the
//! sites are Phoenix's, included as the guest's `conf.d` includes them.

use phoenix_controllers::traefik_service::gateway::{CERTS_DIR, SITES_DIR};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::support::https::NGINX as BINARY;

pub struct Nginx {
    child: Child,
    pub https: SocketAddr,
    pub http: SocketAddr,
    config: PathBuf,
    pub error_log: PathBuf,
}

impl Drop for Nginx {
    /// SIGTERM to nginx's process group (its own, see `start`): the master and every
    /// worker, old generations still draining after a reload included. A SIGKILL to the
    /// master alone would leave its workers running.
    fn drop(&mut self) {
        let group = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe {
            libc::kill(-group, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// Two loopback ports free now (nginx binds them a moment later).
pub fn free_ports() -> (SocketAddr, SocketAddr) {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
    };
    (free(), free())
}

/// Creates the gateway's directories under `root`.
pub fn layout(root: &Path) {
    for dir in [SITES_DIR, CERTS_DIR] {
        std::fs::create_dir_all(root.join(dir.trim_start_matches('/'))).unwrap();
    }
}

impl Nginx {
    /// The main configuration for the sites under `root`, written to `root/nginx.conf`.
    fn main_config(root: &Path) -> PathBuf {
        let dir = root.display();
        let sites = root.join(SITES_DIR.trim_start_matches('/'));
        let text = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid {dir}/nginx.pid;\n\
             error_log {dir}/error.log info;\nevents {{ worker_connections 64; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {dir}/client;\n\
             \x20   proxy_temp_path {dir}/proxy;\n    fastcgi_temp_path {dir}/fastcgi;\n\
             \x20   uwsgi_temp_path {dir}/uwsgi;\n    scgi_temp_path {dir}/scgi;\n\
             \x20   include {}/*.conf;\n}}\n",
            sites.display()
        );
        let path = root.join("nginx.conf");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `nginx -t` on the sites under `root`: Ok, or nginx's complaint.
    pub fn test(root: &Path) -> Result<(), String> {
        assert!(
            Path::new(BINARY).exists(),
            "nginx is not installed: run `make deps`"
        );
        let config = Self::main_config(root);
        let out = Command::new(BINARY)
            .arg("-t")
            .arg("-c")
            .arg(&config)
            .output()
            .expect("nginx runs");
        match out.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// Starts nginx on the sites under `root` (which must listen on `https`/`http`),
    /// returning once both ports accept connections.
    pub fn start(root: &Path, https: SocketAddr, http: SocketAddr) -> Nginx {
        Self::test(root).unwrap_or_else(|e| panic!("nginx -t: {e}"));
        let config = Self::main_config(root);
        let child = Command::new(BINARY)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A process group of its own, so that Drop stops every nginx process at once.
            .process_group(0)
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx {
            child,
            https,
            http,
            config,
            error_log: root.join("error.log"),
        };
        for _ in 0..200 {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited {status}: {}", nginx.errors());
            }
            let up = |a| std::net::TcpStream::connect(a).is_ok();
            if up(https) && up(http) {
                return nginx;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("nginx did not listen: {}", nginx.errors());
    }

    /// `nginx -s reload`: the master re-reads the configuration, keeping the old one
    /// when the new one fails.
    pub fn reload(&self) -> Result<(), String> {
        let out = Command::new(BINARY)
            .args(["-s", "reload", "-c"])
            .arg(&self.config)
            .output()
            .expect("nginx runs");
        match out.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    pub fn errors(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}
