//! The real dnsmasq (Debian's `dnsmasq-base`) on 127.0.0.1 on a free port, for tests of
//! what Phoenix relies on (see DNSMASQ-FACTS.md beside this file). Stopped when dropped.

use std::io::Read;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::KillOnDrop;

const BINARY: &str = "/usr/sbin/dnsmasq";

/// Options that would make dnsmasq listen somewhere other than the harness's
/// 127.0.0.1:PORT (or read configuration the harness cannot see).
const FORBIDDEN: &[&str] = &[
    "interface",
    "except-interface",
    "listen-address",
    "port",
    "bind-dynamic",
    "auth-server",
    "dhcp-range",
    "enable-tftp",
    "conf-dir",
    "conf-file",
];

/// How long a start or a wait may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long one query waits for its answer before it is retried.
const QUERY_TIMEOUT: Duration = Duration::from_millis(300);

/// A dnsmasq process answering on 127.0.0.1:`port()` only.
pub struct Dnsmasq {
    child: KillOnDrop,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq with `conf_file` and `extra_args` (e.g. `--hostsdir=…`), returning
    /// once it answers queries. Upstream resolvers and /etc/hosts are off: only what the
    /// test configures is answered.
    pub fn start(conf_file: &Path, extra_args: &[&str]) -> Self {
        assert!(
            Path::new(BINARY).exists(),
            "dnsmasq is not installed: run `make deps`"
        );
        refuse_listen_options(conf_file, extra_args);
        // A port freed just before dnsmasq binds it can be taken in between: try again.
        for _ in 0..5 {
            if let Some(started) = Self::try_start(conf_file, extra_args) {
                return started;
            }
        }
        panic!("dnsmasq did not start on a free port after 5 tries");
    }

    /// One start on a fresh port: None if dnsmasq exited (its port was taken).
    fn try_start(conf_file: &Path, extra_args: &[&str]) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = dir.path().join("dnsmasq.log");
        let child = Command::new(BINARY)
            .args(base_args(conf_file, port, &dir.path().join("dnsmasq.pid")))
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("dnsmasq runs");
        let mut dns = Self {
            child: KillOnDrop(child),
            port,
            log,
            _dir: dir,
        };
        dns.wait_until_answering().then_some(dns)
    }

    /// Polls until any answer comes (true) or dnsmasq exits (false).
    fn wait_until_answering(&mut self) -> bool {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.0.try_wait() {
                return false;
            }
            if self.ask("harness-probe.invalid.").is_some() {
                return true;
            }
            // Not bound yet (the query was refused at once): poll again shortly.
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "dnsmasq did not answer within {DEADLINE:?}:\n{}",
            self.log()
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// What dnsmasq logged so far (its log goes to a file; `--log-queries` adds queries).
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// SIGHUP: dnsmasq clears its cache and re-reads hosts files and --hostsdir (not its
    /// configuration file). The same process goes on.
    pub fn reload(&self) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill(2) with a pid this harness spawned and has not reaped.
        let sent = unsafe { libc::kill(pid, libc::SIGHUP) };
        assert_eq!(sent, 0, "SIGHUP to dnsmasq {pid}");
    }

    /// The A records dnsmasq gives for `name` (empty: the name exists without an A
    /// record), or the response code of a failure (NXDomain, Refused, …).
    pub fn query_a(&self, name: &str) -> Result<Vec<Ipv4Addr>, ResponseCode> {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(answer) = self.ask(name) {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("dnsmasq gave no answer for {name} within {DEADLINE:?}");
    }

    /// Polls `query_a(name)` until it gives `want`; panics with the last answer and
    /// dnsmasq's log at the deadline.
    pub fn wait_for_a(&self, name: &str, want: Result<Vec<Ipv4Addr>, ResponseCode>) {
        let deadline = Instant::now() + DEADLINE;
        let mut last = self.query_a(name);
        while last != want {
            assert!(
                Instant::now() < deadline,
                "{name}: wanted {want:?}, still {last:?} after {DEADLINE:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
            last = self.query_a(name);
        }
    }

    /// One UDP query for `name`'s A records; None when no answer came in time.
    fn ask(&self, name: &str) -> Option<Result<Vec<Ipv4Addr>, ResponseCode>> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("udp socket");
        socket.connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        socket.set_read_timeout(Some(QUERY_TIMEOUT)).unwrap();
        let query = a_query(name);
        socket.send(&query.to_vec().expect("query encodes")).ok()?;
        let mut buffer = [0u8; 4096];
        loop {
            let len = socket.recv(&mut buffer).ok()?;
            let Ok(answer) = Message::from_vec(&buffer[..len]) else {
                continue;
            };
            if answer.metadata.id == query.metadata.id {
                return Some(addresses(&answer));
            }
        }
    }
}

/// The command line that pins dnsmasq to 127.0.0.1:`port`, in the foreground, with
/// nothing but the test's configuration.
fn base_args(conf_file: &Path, port: u16, pid_file: &Path) -> Vec<String> {
    let mut args = vec![
        "--keep-in-foreground".to_owned(),
        "--log-facility=-".to_owned(),
        format!("--conf-file={}", conf_file.display()),
        "--no-resolv".to_owned(),
        "--no-hosts".to_owned(),
        "--bind-interfaces".to_owned(),
        "--listen-address=127.0.0.1".to_owned(),
        format!("--port={port}"),
        format!("--pid-file={}", pid_file.display()),
    ];
    // As root dnsmasq would drop to user `dnsmasq`, who cannot read the tests' temp dirs.
    if running_as_root() {
        args.push("--user=root".to_owned());
        args.push("--group=root".to_owned());
    }
    args
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Panics if the configuration could make dnsmasq listen beyond 127.0.0.1:PORT.
fn refuse_listen_options(conf_file: &Path, extra_args: &[&str]) {
    let text = std::fs::read_to_string(conf_file)
        .unwrap_or_else(|e| panic!("{}: {e}", conf_file.display()));
    let conf = text.lines().map(str::trim);
    let args = extra_args.iter().filter_map(|a| a.strip_prefix("--"));
    for option in conf.chain(args) {
        let key = option.split('=').next().unwrap_or_default().trim();
        assert!(
            !FORBIDDEN.contains(&key),
            "the dnsmasq harness decides where dnsmasq listens; remove `{option}`"
        );
    }
}

/// A port free on 127.0.0.1 for UDP and TCP (dnsmasq binds both) at the time of asking.
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("tcp port");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

fn a_query(name: &str) -> Message {
    let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut message = Message::query();
    message.add_query(Query::query(name, RecordType::A));
    message.metadata.recursion_desired = true;
    message
}

fn addresses(answer: &Message) -> Result<Vec<Ipv4Addr>, ResponseCode> {
    if answer.metadata.response_code != ResponseCode::NoError {
        return Err(answer.metadata.response_code);
    }
    let mut found: Vec<Ipv4Addr> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    // dnsmasq rotates the order of several addresses; tests compare sets.
    found.sort();
    Ok(found)
}
