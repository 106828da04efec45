//! Installing a certificate into guests (`spec.install`): the files pushed through the
//! guest exec client, read back and checked by hash, owner and mode set, and the reload
//! command run once per new certificate. Status records, per guest, the SHA-256 of the
//! chain it holds; a guest already holding the current one is left alone.

use super::Issued;
use crate::conditions::reason;
use crate::context::Context;
use crate::error::Error;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use phoenix_clients::exec::GuestShell;
use phoenix_crds::certificate::{Certificate, CertificateStatus, InstallTarget, InstalledCopy};
use std::time::Duration;

const QUICK: Duration = Duration::from_secs(60);

use crate::hashing::sha256;

/// Installs `issued` wherever it is not yet. Guests not running yet are waited for: the
/// message names them.
pub async fn install(
    cert: &Certificate,
    ctx: &Context,
    issued: &Issued,
    status: &mut CertificateStatus,
) -> Result<Option<String>, Error> {
    let hash = sha256(&issued.chain_pem);
    let namespace = cert.namespace().unwrap_or_default();
    let mut waiting = Vec::new();
    status
        .installed
        .retain(|copy| cert.spec.install.iter().any(|t| label(t) == copy.guest));
    for target in &cert.spec.install {
        let guest = label(target);
        if status
            .installed
            .iter()
            .any(|c| c.guest == guest && c.sha256 == hash)
        {
            continue;
        }
        let shell = match crate::guest_exec::object_shell(
            ctx,
            &namespace,
            target.guest_ref.kind,
            &target.guest_ref.name,
        )
        .await?
        {
            Ok(shell) => shell,
            Err(why) => {
                waiting.push(format!("{guest} ({why})"));
                continue;
            }
        };
        push(&shell, target, issued).await?;
        if let Some(command) = &target.reload_command {
            let argv = ["sh".to_owned(), "-c".to_owned(), command.clone()];
            let out = shell.exec(&argv, QUICK).await?;
            if !out.success() {
                return Err(Error::spec(
                    reason::RELOAD_FAILED,
                    format!(
                        "{command:?} in {guest} exited {}: {}",
                        out.exit_code,
                        out.tail(3)
                    ),
                ));
            }
        }
        status.installed.retain(|c| c.guest != guest);
        status.installed.push(InstalledCopy {
            guest: guest.clone(),
            sha256: hash.clone(),
        });
        ctx.event(
            cert,
            EventType::Normal,
            crate::conditions::reason::INSTALLED,
            format!("certificate installed in {guest} at {}", target.cert_path),
        )
        .await;
    }
    Ok((!waiting.is_empty()).then(|| format!("not installed yet in {}", waiting.join(", "))))
}

fn label(target: &InstallTarget) -> String {
    format!("{:?}/{}", target.guest_ref.kind, target.guest_ref.name)
}

/// Pushes the files, then reads them back: what is in the guest must be what was issued.
async fn push(shell: &GuestShell, target: &InstallTarget, issued: &Issued) -> Result<(), Error> {
    let mut files = vec![
        (&target.cert_path, issued.chain_pem.as_str(), "0644"),
        (
            &target.key_path,
            issued.key_pem.as_str(),
            target.key_mode.as_str(),
        ),
    ];
    if let Some(chain) = &target.chain_path {
        files.push((chain, issued.root_pem.as_str(), "0644"));
    }
    for (path, content, mode) in &files {
        shell.push(path, content.as_bytes(), mode, QUICK).await?;
        let chown = ["chown".to_owned(), target.owner.clone(), (*path).clone()];
        let owned = shell.exec(&chown, QUICK).await?;
        if !owned.success() {
            return Err(Error::spec(
                reason::INSTALL_FAILED,
                format!("chown {} {path}: {}", target.owner, owned.tail(2)),
            ));
        }
        let back = shell
            .exec(&["cat".to_owned(), (*path).clone()], QUICK)
            .await?;
        if sha256(&back.output) != sha256(content) {
            return Err(Error::spec(
                reason::INSTALL_MISMATCH,
                format!("{path} in the guest does not hold what was pushed"),
            ));
        }
    }
    Ok(())
}
