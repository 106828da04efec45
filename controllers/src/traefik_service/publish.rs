//! Putting a route's files where they serve: its document and certificate into Traefik's
//! guest, and for a public route its site and certificate into the gateway's, checked with
//! `nginx -t` before anything else is written, then nginx reloaded. A site nginx refuses
//! is put back as it was and Traefik's document left alone: the route stays as it was.
//! Guests are entered only when the files would change, each through its object's marker
//! check.

use super::gateway::{self, GatewayPaths};
use super::guest_files;
use super::render::{self, Files, TlsPair};
use crate::conditions::reason;
use crate::context::Context;
use crate::error::Error;
use crate::guest_exec;
use crate::hashing::sha256;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use phoenix_clients::exec::GuestShell;
use phoenix_crds::common::GuestKind;
use phoenix_crds::traefik_service::{TraefikService, TraefikServiceStatus};

/// Everything a route puts into guests.
pub struct Wanted {
    pub traefik: Files,
    pub gateway: Option<GatewayFiles>,
}

/// A public route's files in the gateway guest: its site, then its certificate, key and
/// the root Traefik's certificate is checked against; and the shared upgrade map.
pub struct GatewayFiles {
    pub site: (String, String),
    pub certificate: [(String, String); 3],
}

impl GatewayFiles {
    pub fn new(public: &gateway::PublicRoute, object: &str, pair: &TlsPair) -> GatewayFiles {
        let paths = GatewayPaths::of(public.root, public.id);
        GatewayFiles {
            site: (paths.site, gateway::site(public, object)),
            certificate: [
                (paths.cert, pair.chain.clone()),
                (paths.key, pair.key.clone()),
                (paths.ca, pair.root.clone()),
            ],
        }
    }
}

impl Wanted {
    /// One hash over every file's content: what status remembers as written.
    fn hash(&self) -> String {
        let mut contents = vec![self.traefik.config.1.as_str()];
        contents.extend(
            self.traefik
                .certificate
                .iter()
                .flatten()
                .map(|(_, c)| c.as_str()),
        );
        if let Some(g) = &self.gateway {
            contents.push(&g.site.1);
            contents.extend(g.certificate.iter().map(|(_, c)| c.as_str()));
        }
        sha256(&contents.concat())
    }
}

/// What `write` did.
pub enum Wrote {
    /// The files already hold what they would: no guest was entered.
    Nothing,
    Files,
    /// A guest cannot be entered yet: the reason and why.
    Blocked(&'static str, String),
}

/// Writes the route's files when they differ from what was last written.
pub async fn write(
    route: &TraefikService,
    ctx: &Context,
    wanted: &Wanted,
    status: &mut TraefikServiceStatus,
) -> Result<Wrote, Error> {
    let hash = wanted.hash();
    if status.config_hash.as_deref() == Some(hash.as_str())
        || written_already(route, ctx, &hash).await?
    {
        status.config_hash = Some(hash);
        return Ok(Wrote::Nothing);
    }
    let namespace = route.namespace().unwrap_or_default();
    let traefik = &route.spec.traefik_ref.name;
    let traefik_shell = match enter(ctx, &namespace, traefik).await? {
        Ok(shell) => shell,
        Err(why) => return Ok(Wrote::Blocked(reason::WAITING_FOR_TRAEFIK, why)),
    };
    let gateway = &route.spec.gateway_ref.name;
    let gateway_shell = match &wanted.gateway {
        None => None,
        Some(_) => match enter(ctx, &namespace, gateway).await? {
            Ok(shell) => Some(shell),
            Err(why) => return Ok(Wrote::Blocked(reason::WAITING_FOR_GATEWAY, why)),
        },
    };
    // The gateway's site is tested before anything else is written: one nginx refuses
    // leaves the route as it was everywhere, Traefik's document included.
    let staged = match (&wanted.gateway, &gateway_shell) {
        (Some(files), Some(shell)) => Some(stage_gateway(shell, files, gateway).await?),
        _ => None,
    };
    to_traefik(&traefik_shell, &wanted.traefik).await?;
    let note = format!("{} written in LxcGuest {traefik}", wanted.traefik.config.0);
    ctx.event(route, EventType::Normal, reason::ROUTE_WRITTEN, note)
        .await;
    if let (Some(staged), Some(shell)) = (staged, &gateway_shell) {
        reload_gateway(shell, staged, gateway).await?;
        let note = format!(
            "{} written in LxcGuest {gateway}, nginx reloaded",
            staged.site
        );
        ctx.event(route, EventType::Normal, reason::GATEWAY_RELOADED, note)
            .await;
    }
    status.config_hash = Some(hash);
    Ok(Wrote::Files)
}

/// Whether the route's stored status already records `hash`: the watch cache can be a
/// pass behind (the pass that wrote the files also added the finalizer, whose event may
/// wake the next one before the status it wrote arrives), and a stale cache must not
/// send the same files into the guests twice. One read, only when a write seems due.
async fn written_already(route: &TraefikService, ctx: &Context, hash: &str) -> Result<bool, Error> {
    let namespace = route.namespace().unwrap_or_default();
    let api: kube::Api<TraefikService> = kube::Api::namespaced(ctx.kube.clone(), &namespace);
    let fresh = api.get_status(&route.name_any()).await?;
    Ok(fresh
        .status
        .and_then(|s| s.config_hash)
        .is_some_and(|stored| stored == hash))
}

async fn enter(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Result<GuestShell, String>, Error> {
    Ok(
        guest_exec::object_shell(ctx, namespace, GuestKind::LxcGuest, name)
            .await?
            .map_err(|why| format!("LxcGuest {namespace}/{name}: {why}")),
    )
}

/// Certificates first: Traefik reads them when it loads the document naming them.
async fn to_traefik(shell: &GuestShell, files: &Files) -> Result<(), Error> {
    for (path, content) in files.certificate.iter().flatten() {
        guest_files::put(shell, path, content, mode_of(path)).await?;
    }
    let (path, content) = &files.config;
    guest_files::put(shell, path, content, "0644").await
}

fn mode_of(path: &str) -> &'static str {
    match path.ends_with(".key") {
        true => "0600",
        false => "0644",
    }
}

/// A site in place that `nginx -t` accepted, not yet serving; the previous one kept aside.
#[derive(Clone, Copy)]
struct Staged<'a> {
    site: &'a str,
}

fn previous_of(site: &str) -> String {
    format!("{site}.phoenix-old")
}

/// The site replaced only if `nginx -t` accepts the whole configuration with it. Refused,
/// the previous site (or none) is put back: the files nginx would load are unchanged.
async fn stage_gateway<'a>(
    shell: &GuestShell,
    files: &'a GatewayFiles,
    guest: &str,
) -> Result<Staged<'a>, Error> {
    for (path, content) in &files.certificate {
        guest_files::put(shell, path, content, mode_of(path)).await?;
    }
    guest_files::put(
        shell,
        gateway::UPGRADE_MAP_FILE,
        gateway::upgrade_map(),
        "0644",
    )
    .await?;
    let (site, content) = &files.site;
    let previous = previous_of(site);
    let kept = guest_files::exec(shell, &["cp", "-f", site, &previous])
        .await?
        .success();
    guest_files::put(shell, site, content, "0644").await?;
    let tested = guest_files::exec(shell, &["nginx", "-t"]).await?;
    if !tested.success() {
        let restore: &[&str] = match kept {
            true => &["mv", "-f", &previous, site],
            false => &["rm", "-f", site],
        };
        guest_files::exec(shell, restore).await?;
        return Err(Error::Input {
            reason: reason::GATEWAY_CONFIG_INVALID,
            message: format!(
                "nginx -t in LxcGuest {guest} refused {site} (the running configuration is unchanged, nothing written): {}",
                tested.tail(3)
            ),
        });
    }
    Ok(Staged { site })
}

/// nginx reloaded onto the staged site; the previous one dropped.
async fn reload_gateway(shell: &GuestShell, staged: Staged<'_>, guest: &str) -> Result<(), Error> {
    let reloaded = guest_files::exec(shell, &["systemctl", "reload", "nginx"]).await?;
    if !reloaded.success() {
        return Err(Error::Input {
            reason: reason::RELOAD_FAILED,
            message: format!(
                "systemctl reload nginx in LxcGuest {guest}: {}",
                reloaded.tail(3)
            ),
        });
    }
    guest_files::exec(shell, &["rm", "-f", &previous_of(staged.site)]).await?;
    Ok(())
}

/// What removal did in one guest: a note, and whether the files were left there.
pub struct Removal {
    pub left: bool,
    pub note: String,
}

/// The route's files removed from both guests (nginx reloaded without its site). A guest
/// that cannot be entered keeps them: its removal says so.
pub async fn remove(
    route: &TraefikService,
    ctx: &Context,
    id: &str,
) -> Result<Vec<Removal>, Error> {
    let namespace = route.namespace().unwrap_or_default();
    let mut notes = Vec::new();
    let traefik = &route.spec.traefik_ref.name;
    let paths = render::Paths::of("", id).all();
    notes.push(match enter(ctx, &namespace, traefik).await? {
        Ok(shell) => {
            guest_files::remove(&shell, &paths).await?;
            removed(format!("{} removed from LxcGuest {traefik}", paths[0]))
        }
        Err(why) => left(format!("{} left: {why}", paths[0])),
    });
    if route.spec.public {
        let name = &route.spec.gateway_ref.name;
        let g = GatewayPaths::of("", id);
        let paths = [g.site, g.cert, g.key, g.ca];
        notes.push(match enter(ctx, &namespace, name).await? {
            Ok(shell) => {
                guest_files::remove(&shell, &paths).await?;
                guest_files::exec(&shell, &["systemctl", "reload", "nginx"]).await?;
                removed(format!("{} removed from LxcGuest {name}", paths[0]))
            }
            Err(why) => left(format!("{} left: {why}", paths[0])),
        });
    }
    Ok(notes)
}

fn removed(note: String) -> Removal {
    Removal { left: false, note }
}

fn left(note: String) -> Removal {
    Removal { left: true, note }
}
