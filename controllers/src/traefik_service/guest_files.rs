//! Files a route keeps in the guest that serves it, written so that a watcher (Traefik's
//! file provider, inotify) never reads half a file: each goes to a dot-name beside its
//! place (`.x.yml.phoenix-new`: no extension Traefik loads) and is renamed into it.

use crate::error::Error;
use phoenix_clients::exec::{ExecOutput, GuestShell};
use std::time::Duration;

const QUICK: Duration = Duration::from_secs(60);

/// Writes `content` at `path` in one step as the guest's readers see it.
pub async fn put(shell: &GuestShell, path: &str, content: &str, mode: &str) -> Result<(), Error> {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let partial = format!("{dir}/.{name}.phoenix-new");
    shell
        .push(&partial, content.as_bytes(), mode, QUICK)
        .await?;
    run(shell, &["mv", "-f", &partial, path]).await
}

/// Removes `paths` (those already gone are fine).
pub async fn remove(shell: &GuestShell, paths: &[String]) -> Result<(), Error> {
    let mut argv = vec!["rm", "-f"];
    argv.extend(paths.iter().map(String::as_str));
    run(shell, &argv).await
}

/// `argv` in the guest; its output whatever its exit.
pub async fn exec(shell: &GuestShell, argv: &[&str]) -> Result<ExecOutput, Error> {
    let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
    Ok(shell.exec(&argv, QUICK).await?)
}

/// `argv` in the guest, which must succeed.
async fn run(shell: &GuestShell, argv: &[&str]) -> Result<(), Error> {
    let out = exec(shell, argv).await?;
    if out.success() {
        return Ok(());
    }
    Err(Error::Input {
        reason: crate::conditions::reason::INSTALL_FAILED,
        message: format!(
            "{} exited {}: {}",
            argv.join(" "),
            out.exit_code,
            out.tail(2)
        ),
    })
}
