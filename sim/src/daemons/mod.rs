//! Real daemons for the services Phoenix configures inside simulated guests, so that in
//! simulate mode a route is carried by the real Traefik and the real nginx on the files
//! Phoenix wrote into the guests:
//!
//! - **Traefik** runs for a guest whose `traefik` unit runs and which holds
//!   `/etc/traefik/traefik.yml` (the `traefik` feature's static configuration), on that
//!   configuration with its entry points moved to loopback ports. It watches the view of
//!   `/etc/traefik/dynamic`, so a route's document reaches it as on the platform, without
//!   a restart.
//! - **nginx** runs for a guest whose `nginx` unit runs and which holds
//!   `/etc/nginx/conf.d/phoenix.conf` (the `nginx-gateway` feature), under a main
//!   configuration of the simulator's that includes the view of `conf.d` (Debian's own
//!   `nginx.conf` is not in a simulated guest). It is reloaded when `systemctl reload
//!   nginx` has run in the guest since the last look, and only then, as on the platform:
//!   files written without a reload are not served. Likewise Traefik is restarted when
//!   the guest restarted its unit.
//!
//! A guest's view is its files under `/etc/traefik/` and `/etc/nginx/` rewritten by
//! [`view`] (paths under the view, ports and platform addresses on loopback) and kept as
//! real files under `<dir>/<vmid>/` by a [`NodeMirror`] (a dot file, then a rename, so a
//! watcher never reads half a file). The resolver (`GET /admin/resolve`) answers a
//! daemon's loopback address for the guest port it serves, after bringing the daemons up
//! to date with the guests; the simulator also does so after each request it answers.

mod process;
pub mod view;

use crate::node_mirror::NodeMirror;
use process::Process;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;
use view::Files;

/// The programs standing in for the guests' own; a daemon without one is not run (the
/// guest's ports then have the simulator's loopback stand-ins).
#[derive(Clone, Debug, Default)]
pub struct Programs {
    pub traefik: Option<PathBuf>,
    pub nginx: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Traefik,
    Nginx,
}

const KINDS: [Kind; 2] = [Kind::Traefik, Kind::Nginx];
/// The guest directories a view holds.
const DIRS: [&str; 2] = ["/etc/traefik/", "/etc/nginx/"];
const TRAEFIK_STATIC: &str = "/etc/traefik/traefik.yml";
const TRAEFIK_DYNAMIC: &str = "/etc/traefik/dynamic/";
const NGINX_INCLUDE: &str = "/etc/nginx/conf.d/phoenix.conf";

impl Kind {
    fn unit(self) -> &'static str {
        match self {
            Kind::Traefik => "traefik",
            Kind::Nginx => "nginx",
        }
    }

    /// The file whose presence says the feature laid the daemon out.
    fn marker(self) -> &'static str {
        match self {
            Kind::Traefik => TRAEFIK_STATIC,
            Kind::Nginx => NGINX_INCLUDE,
        }
    }
}

/// What the supervisor reads of one guest ([`observe`]).
pub struct Observed {
    vmid: u32,
    running: bool,
    files: Files,
    /// Units running (`traefik`, `nginx`; a `.service` suffix dropped).
    running_units: BTreeSet<String>,
    /// How many times each daemon's unit was cycled in it, successfully: Traefik
    /// restarted, nginx reloaded or restarted.
    cycles: BTreeMap<Kind, usize>,
    /// The guest's IPv4 addresses.
    addresses: Vec<Ipv4Addr>,
}

struct Daemon {
    process: Process,
    /// The guest's count of the unit's cycles it last acted on.
    cycles: usize,
}

#[derive(Default)]
struct State {
    running: BTreeMap<(u32, Kind), Daemon>,
    /// The loopback address serving each (guest, port) a wanted daemon listens on.
    ports: HashMap<(u32, u16), SocketAddr>,
    /// What each guest's view holds.
    views: BTreeMap<u32, Files>,
}

/// The daemons of the simulated guests, by guest.
pub struct GuestDaemons {
    programs: Programs,
    dir: PathBuf,
    views: NodeMirror,
    state: tokio::sync::Mutex<State>,
}

impl GuestDaemons {
    /// Daemons running `programs`, their views and logs under `dir`.
    pub fn new(programs: Programs, dir: PathBuf) -> GuestDaemons {
        GuestDaemons {
            views: NodeMirror::new(dir.join("guests")),
            programs,
            dir,
            state: Default::default(),
        }
    }

    /// Stops every daemon (when the simulator stops; they also die with its process).
    pub fn stop_all(&self) {
        if let Ok(mut state) = self.state.try_lock() {
            state.running.clear();
        }
    }

    /// The loopback address of the daemon serving `port` of guest `vmid`, if one does.
    pub async fn address(&self, vmid: u32, port: u16) -> Option<SocketAddr> {
        self.state.lock().await.ports.get(&(vmid, port)).copied()
    }

    /// Brings every daemon up to date with `guests` (as [`observe`] read them): started,
    /// stopped, its view rewritten, nginx reloaded. `stand_in` gives the loopback
    /// listener standing in for a guest's port that no daemon serves.
    pub async fn sync<F, Fut>(&self, guests: Vec<Observed>, stand_in: F)
    where
        F: Fn(u32, u16) -> Fut,
        Fut: Future<Output = Option<SocketAddr>>,
    {
        let mut state = self.state.lock().await;
        let wanted: BTreeSet<(u32, Kind)> = guests
            .iter()
            .flat_map(|g| KINDS.iter().map(move |k| (g, *k)))
            .filter(|(g, k)| self.wants(g, *k))
            .map(|(g, k)| (g.vmid, k))
            .collect();
        state.running.retain(|key, _| wanted.contains(key));
        self.reserve_ports(&mut state, &guests, &wanted);
        let resolved = resolve(&state, &guests, stand_in).await;
        for guest in guests
            .iter()
            .filter(|g| wanted.iter().any(|(v, _)| *v == g.vmid))
        {
            self.update_view(&mut state, guest, &resolved);
        }
        for guest in &guests {
            for kind in KINDS.iter().filter(|k| wanted.contains(&(guest.vmid, **k))) {
                self.run(&mut state, guest, *kind).await;
            }
        }
    }

    fn wants(&self, guest: &Observed, kind: Kind) -> bool {
        let program = match kind {
            Kind::Traefik => &self.programs.traefik,
            Kind::Nginx => &self.programs.nginx,
        };
        program.is_some()
            && guest.running
            && guest.running_units.contains(kind.unit())
            && guest.files.contains_key(kind.marker())
    }

    /// A loopback port for each guest port a wanted daemon listens on; kept while wanted.
    fn reserve_ports(
        &self,
        state: &mut State,
        guests: &[Observed],
        wanted: &BTreeSet<(u32, Kind)>,
    ) {
        let mut keep = BTreeSet::new();
        for guest in guests {
            for kind in KINDS.iter().filter(|k| wanted.contains(&(guest.vmid, **k))) {
                keep.extend(listened(guest, *kind).into_iter().map(|p| (guest.vmid, p)));
            }
        }
        state.ports.retain(|key, _| keep.contains(key));
        for key in keep {
            if let (std::collections::hash_map::Entry::Vacant(slot), Some(address)) =
                (state.ports.entry(key), free_loopback())
            {
                slot.insert(address);
            }
        }
    }

    /// Rewrites the guest's view from its files; a Traefik document naming a file that
    /// changed is written again too: Phoenix renames it into place with its certificate,
    /// which is what makes Traefik read a renewed certificate.
    fn update_view(&self, state: &mut State, guest: &Observed, resolved: &view::Resolved) {
        let root = self.views_root(guest.vmid);
        let ports: HashMap<u16, SocketAddr> = state
            .ports
            .iter()
            .filter(|((vmid, _), _)| *vmid == guest.vmid)
            .map(|((_, port), address)| (*port, *address))
            .collect();
        let fresh = render_view(&guest.files, &root, &ports, resolved);
        let name = guest.vmid.to_string();
        let before = match state.views.remove(&guest.vmid) {
            Some(before) => {
                self.views.follow(&name, &before, &fresh);
                before
            }
            // First sight (the view may hold an earlier run's files): exactly the guest's.
            None => {
                self.views.restore(&name, &fresh);
                Files::new()
            }
        };
        let changed: Vec<&String> = fresh
            .keys()
            .chain(before.keys())
            .filter(|p| before.get(*p) != fresh.get(*p))
            .collect();
        for (path, text) in fresh.iter().filter(|(p, _)| p.starts_with(TRAEFIK_DYNAMIC)) {
            let names_changed = changed
                .iter()
                .any(|c| *c != path && text.contains(&format!("{root}{c}")));
            if names_changed && let Err(e) = self.views.write(&name, path, text) {
                tracing::warn!(vmid = guest.vmid, path, error = %e, "cannot rewrite a view file");
            }
        }
        state.views.insert(guest.vmid, fresh);
    }

    fn views_root(&self, vmid: u32) -> String {
        self.dir
            .join("guests")
            .join(vmid.to_string())
            .display()
            .to_string()
    }

    /// Starts the daemon when it does not run; when the guest cycled the unit since,
    /// reloads nginx or restarts Traefik, as systemd would have.
    async fn run(&self, state: &mut State, guest: &Observed, kind: Kind) {
        let key = (guest.vmid, kind);
        let cycles = guest.cycles.get(&kind).copied().unwrap_or_default();
        if let Some(daemon) = state.running.get_mut(&key) {
            let cycled = daemon.cycles != cycles;
            match (daemon.process.alive(), cycled, kind) {
                (true, false, _) => return,
                (true, true, Kind::Nginx) => {
                    daemon.cycles = cycles;
                    self.nginx_reload(guest.vmid);
                    return;
                }
                (true, true, Kind::Traefik) => {
                    tracing::info!(vmid = guest.vmid, "Traefik restarted, as the guest did");
                    state.running.remove(&key);
                }
                (false, ..) => {
                    tracing::warn!(vmid = guest.vmid, daemon = kind.unit(), log = %self.log(key).display(), "a guest's daemon exited: starting it again")
                }
            }
        }
        let started = match kind {
            Kind::Traefik => self.start_traefik(guest.vmid),
            Kind::Nginx => self.start_nginx(guest.vmid),
        };
        match started {
            Ok(process) => {
                let daemon = Daemon { process, cycles };
                state.running.insert(key, daemon);
                let ports: Vec<SocketAddr> = listened(guest, kind)
                    .iter()
                    .filter_map(|p| state.ports.get(&(guest.vmid, *p)).copied())
                    .collect();
                until_listening(&ports).await;
                tracing::info!(
                    vmid = guest.vmid,
                    daemon = kind.unit(),
                    ?ports,
                    "a guest's daemon runs on loopback"
                );
            }
            Err(e) => {
                state.running.remove(&key);
                tracing::warn!(vmid = guest.vmid, daemon = kind.unit(), error = %e, "cannot start a guest's daemon");
            }
        }
    }

    fn log(&self, (vmid, kind): (u32, Kind)) -> PathBuf {
        self.dir.join(format!("{vmid}-{}.log", kind.unit()))
    }

    fn start_traefik(&self, vmid: u32) -> std::io::Result<Process> {
        let program = self
            .programs
            .traefik
            .as_deref()
            .unwrap_or(Path::new("traefik"));
        let config = format!("{}{TRAEFIK_STATIC}", self.views_root(vmid));
        Process::spawn(
            program,
            &[format!("--configFile={config}")],
            &self.log((vmid, Kind::Traefik)),
        )
    }

    /// nginx under the simulator's main configuration, checked with `nginx -t` first.
    fn start_nginx(&self, vmid: u32) -> std::io::Result<Process> {
        let program = self.programs.nginx.as_deref().unwrap_or(Path::new("nginx"));
        let main = self.nginx_main(vmid)?;
        let test = std::process::Command::new(program)
            .args(["-t", "-q", "-c"])
            .arg(&main)
            .output()?;
        if !test.status.success() {
            return Err(std::io::Error::other(format!(
                "nginx -t: {}",
                String::from_utf8_lossy(&test.stderr).trim()
            )));
        }
        Process::spawn(
            program,
            &["-c".into(), main.display().to_string()],
            &self.log((vmid, Kind::Nginx)),
        )
    }

    /// `nginx -s reload`: the master keeps its configuration when the new one fails.
    fn nginx_reload(&self, vmid: u32) {
        let program = self.programs.nginx.as_deref().unwrap_or(Path::new("nginx"));
        let main = self.dir.join(format!("{vmid}-nginx/nginx.conf"));
        let out = std::process::Command::new(program)
            .args(["-s", "reload", "-c"])
            .arg(&main)
            .output();
        match out {
            Ok(o) if o.status.success() => tracing::info!(vmid, "nginx reloaded, as the guest did"),
            Ok(o) => {
                tracing::warn!(vmid, error = %String::from_utf8_lossy(&o.stderr).trim(), "nginx reload refused")
            }
            Err(e) => tracing::warn!(vmid, error = %e, "nginx reload"),
        }
    }

    /// The main configuration: pid, logs and temporary files under the daemon's
    /// directory, the guest's `conf.d` included as Debian's `nginx.conf` includes it.
    fn nginx_main(&self, vmid: u32) -> std::io::Result<PathBuf> {
        let dir = self.dir.join(format!("{vmid}-nginx"));
        std::fs::create_dir_all(&dir)?;
        let d = dir.display();
        let conf_d = format!("{}/etc/nginx/conf.d", self.views_root(vmid));
        let text = format!(
            "# Written by the simulator: guest {vmid}'s nginx on loopback.\n\
             daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n\
             http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/client;\n\
             \x20   proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
             \x20   include {conf_d}/*.conf;\n}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

/// Where each platform address the views name goes: a daemon's port, or the
/// simulator's stand-in for that guest port.
async fn resolve<F, Fut>(state: &State, guests: &[Observed], stand_in: F) -> view::Resolved
where
    F: Fn(u32, u16) -> Fut,
    Fut: Future<Output = Option<SocketAddr>>,
{
    let mut resolved = view::Resolved::new();
    let named: BTreeSet<(Ipv4Addr, u16)> = guests
        .iter()
        .filter(|g| g.running)
        .flat_map(|g| {
            DIRS.iter()
                .flat_map(|dir| view::under(&g.files, dir).into_values())
        })
        .flat_map(|text| view::addresses(&text))
        .collect();
    for (ip, port) in named {
        let Some(owner) = guests.iter().find(|g| g.addresses.contains(&ip)) else {
            continue;
        };
        let target = match state.ports.get(&(owner.vmid, port)) {
            Some(address) => Some(*address),
            None => stand_in(owner.vmid, port).await,
        };
        if let Some(target) = target {
            resolved.insert((ip, port), target);
        }
    }
    resolved
}

/// The guest ports `kind` listens on in `guest`.
fn listened(guest: &Observed, kind: Kind) -> BTreeSet<u16> {
    match kind {
        Kind::Traefik => guest
            .files
            .get(TRAEFIK_STATIC)
            .and_then(|text| view::traefik_ports(text).ok())
            .map(|ports| ports.into_values().collect())
            .unwrap_or_default(),
        Kind::Nginx => view::under(&guest.files, "/etc/nginx/")
            .values()
            .flat_map(|text| view::nginx_ports(text))
            .collect(),
    }
}

/// The view of a guest's files: those under the daemons' directories, rewritten.
fn render_view(
    files: &Files,
    root: &str,
    ports: &HashMap<u16, SocketAddr>,
    resolved: &view::Resolved,
) -> Files {
    let mut out = Files::new();
    for dir in DIRS {
        for (path, text) in view::under(files, dir) {
            let text = view::paths(&view::urls(&text, resolved), &DIRS, root);
            let text = match path.as_str() {
                TRAEFIK_STATIC => match view::traefik_static(&text, ports) {
                    Ok(text) => text,
                    Err(e) => {
                        tracing::warn!(path, error = %e, "a guest's Traefik configuration cannot run on loopback");
                        continue;
                    }
                },
                _ if dir == "/etc/nginx/" => view::nginx_listens(&text, ports),
                _ => text,
            };
            out.insert(path, text);
        }
    }
    out
}

/// A unit cycled in a guest: Traefik restarted (its static configuration is read at
/// start only), nginx reloaded or restarted.
static CYCLED: LazyLock<[(Kind, Regex); 2]> = LazyLock::new(|| {
    let unit = |verbs: &str, unit: &str| {
        Regex::new(&format!(r"\bsystemctl\s+({verbs})\s+{unit}(\.service)?\b")).expect("valid")
    };
    [
        (
            Kind::Traefik,
            unit("restart|reload-or-restart|try-restart", "traefik"),
        ),
        (
            Kind::Nginx,
            unit(
                "reload|restart|reload-or-restart|try-reload-or-restart",
                "nginx",
            ),
        ),
    ]
});

/// The simulated guests, with what the supervisor needs of each (read under the
/// simulator's lock, then handed to [`GuestDaemons::sync`] without it).
pub fn observe(sim: &crate::state::Sim) -> Vec<Observed> {
    sim.cluster
        .guests
        .values()
        .map(|g| Observed {
            vmid: g.vmid,
            running: g.running,
            files: DIRS
                .iter()
                .flat_map(|dir| view::under(&g.inside.files, dir))
                .collect(),
            running_units: g
                .inside
                .services
                .iter()
                .filter(|(_, state)| *state == "running")
                .map(|(unit, _)| unit.trim_end_matches(".service").to_owned())
                .collect(),
            cycles: CYCLED
                .iter()
                .map(|(kind, pattern)| {
                    let done = g.inside.log.iter().filter(|r| r.exit == Some(0));
                    (*kind, done.filter(|r| pattern.is_match(&r.command)).count())
                })
                .collect(),
            addresses: g
                .addresses()
                .iter()
                .filter_map(|(_, _, a, _)| a.parse().ok())
                .collect(),
        })
        .collect()
}

fn free_loopback() -> Option<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()
}

/// Until each address accepts connections (a daemon just started binds them), for at
/// most 10 s: a daemon that never listens is reported by the check that dials it.
async fn until_listening(addresses: &[SocketAddr]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for address in addresses {
        while tokio::net::TcpStream::connect(address).await.is_err()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
