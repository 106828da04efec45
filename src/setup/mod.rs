//! `phoenix setup`: the bootstrap a person runs once with PVE administrator credentials. It
//! creates the role (the privileges the controllers use, `phoenix_controllers::privileges`),
//! the user and the API token Phoenix acts as, writes the token into the Secret the
//! ProxmoxCluster refers to, and prints the next command. With `--manage-access` it also
//! grants a second role (`PhoenixAccess`, the privileges to keep PVE's users, groups and
//! ACL entries of a ProxmoxCluster's `spec.access`); without it, it takes that role back.
//! Run again, it changes nothing.
//! The password or token is read from a file, the terminal or stdin — never an argument —
//! and neither it nor the new token's secret is ever printed.

mod decide;

use anyhow::{Context, bail};
use clap::Args;
use decide::{Observed, SecretHolds, Step, Wanted};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams};
use phoenix_clients::proxmox::{self, ErrorKind, ProxmoxClient, Trust};
use phoenix_controllers::privileges;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct SetupArgs {
    /// PVE's API endpoint, `https://HOST:8006`.
    #[arg(long, required_unless_present = "simulator")]
    pub endpoint: Option<String>,
    /// SHA-256 fingerprint of PVE's certificate (as `pvenode cert info` shows it).
    #[arg(long, conflicts_with = "ca_file")]
    pub fingerprint: Option<String>,
    /// PEM CA bundle PVE's certificate chains to (instead of --fingerprint).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// The simulator of `phoenix up --simulate` (its DATA_DIR/sim.json): its endpoint and
    /// certificate instead of --endpoint.
    #[arg(long, conflicts_with_all = ["endpoint", "fingerprint", "ca_file"])]
    pub simulator: Option<PathBuf>,
    /// The administrator setup logs in as.
    #[arg(long, default_value = "root@pam")]
    pub user: String,
    /// A file holding the administrator's password. Without it (or --token-file) the
    /// password is asked for on the terminal, or read from stdin's first line.
    #[arg(long, conflicts_with = "token_file")]
    pub password_file: Option<PathBuf>,
    /// A file holding an administrator API token, `USER@REALM!ID=SECRET`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The role created for Phoenix.
    #[arg(long, default_value = privileges::ROLE, value_parser = role_id)]
    pub role: String,
    /// Also let Phoenix manage PVE's users, groups and ACL entries (a ProxmoxCluster's
    /// spec.access): a second role, PhoenixAccess, with User.Modify, Group.Allocate,
    /// Realm.AllocateUser and Permissions.Modify on / — enough for the token to raise its
    /// own rights, hence opt-in. Without it, setup takes that role back.
    #[arg(long)]
    pub manage_access: bool,
    /// The user Phoenix acts as (no password: only its token can act).
    #[arg(long, default_value = "phoenix@pve", value_parser = user_id)]
    pub phoenix_user: String,
    /// The token's id.
    #[arg(long, default_value = "controller", value_parser = token_id)]
    pub token_name: String,
    /// Replace the token when it exists but the Secret does not hold its secret (PVE shows
    /// a secret only once); whatever else uses the old one stops working.
    #[arg(long)]
    pub replace_token: bool,
    /// The Secret the token is written to, NAMESPACE/NAME (the ProxmoxCluster's
    /// spec.credentialsSecretRef).
    #[arg(long, default_value = "phoenix-system/pve-token", value_parser = secret_ref)]
    pub secret: (String, String),
    /// The Kubernetes cluster to write the Secret to (default: KUBECONFIG, in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

pub fn run(args: SetupArgs) -> ExitCode {
    crate::runtime::in_runtime(async move {
        match setup(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("phoenix setup: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Bound on every PVE call setup makes.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The field manager of what setup writes in Kubernetes.
const MANAGER: &str = "phoenix-setup";

async fn setup(args: SetupArgs) -> anyhow::Result<()> {
    let config = pve_config(&args)?;
    let admin = log_in(&config, &args).await?;
    let kube = crate::kube_client::connect(args.kubeconfig.as_deref()).await?;
    let wanted = Wanted {
        role: args.role.clone(),
        privileges: privileges::controller(),
        access_role: privileges::ACCESS_ROLE.to_owned(),
        access_privileges: args.manage_access.then(privileges::access),
        user: args.phoenix_user.clone(),
        token: args.token_name.clone(),
        replace_token: args.replace_token,
    };
    let (namespace, name) = &args.secret;
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    let secret = secrets.get_opt(name).await?;
    let observed = Observed {
        roles: admin.roles().await?,
        users: admin.users().await?,
        acl: admin.acl().await?,
        secret: secret_holds(secret.as_ref(), &wanted, &config).await?,
    };
    let steps = decide::plan(&wanted, &observed).map_err(anyhow::Error::msg)?;
    if steps.is_empty() {
        let roles = match wanted.access_privileges {
            Some(_) => format!("roles {} and {}", wanted.role, wanted.access_role),
            None => format!("role {}", wanted.role),
        };
        println!(
            "Nothing to change: {roles}, user {}, token {} and Secret {namespace}/{name} are in place.",
            wanted.user,
            wanted.full_token_id()
        );
    }
    let mut secret_value = None;
    for step in &steps {
        perform(
            step,
            &admin,
            &wanted,
            &kube,
            &args.secret,
            &mut secret_value,
        )
        .await
        .with_context(|| format!("could not {step}"))?;
        println!("✓ {step}");
    }
    println!(
        "\nNext: kubectl apply -f <your ProxmoxCluster manifest>, whose spec.credentialsSecretRef is {{name: {name}, namespace: {namespace}}}"
    );
    Ok(())
}

/// PVE's address and how its certificate is trusted, without credentials yet.
fn pve_config(args: &SetupArgs) -> anyhow::Result<proxmox::Config> {
    let (endpoint, trust) = match (&args.simulator, &args.endpoint) {
        (Some(file), _) => {
            let (credentials, _) = crate::simulator::read_credentials(file)?;
            (credentials.url, Trust::Fingerprint(credentials.fingerprint))
        }
        (None, Some(endpoint)) => (endpoint.clone(), trust(args)?),
        (None, None) => bail!("--endpoint or --simulator is needed"),
    };
    Ok(proxmox::Config {
        endpoint,
        token_id: String::new(),
        token_secret: String::new(),
        trust,
        timeout: CALL_TIMEOUT,
    })
}

fn trust(args: &SetupArgs) -> anyhow::Result<Trust> {
    match (&args.fingerprint, &args.ca_file) {
        (Some(fingerprint), _) => Ok(Trust::Fingerprint(fingerprint.clone())),
        (None, Some(file)) => Ok(Trust::CaBundle(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read --ca-file {}", file.display()))?,
        )),
        (None, None) => bail!(
            "--fingerprint or --ca-file is needed: PVE's certificate is self-signed by default"
        ),
    }
}

/// A client acting as the administrator: a password login, or its token.
async fn log_in(config: &proxmox::Config, args: &SetupArgs) -> anyhow::Result<ProxmoxClient> {
    if let Some(file) = &args.token_file {
        let text = read_secret_file(file)?;
        let Some((id, secret)) = text.rsplit_once('=') else {
            bail!(
                "{}: want USER@REALM!ID=SECRET on its first line",
                file.display()
            );
        };
        let client = ProxmoxClient::new(&proxmox::Config {
            token_id: id.to_owned(),
            token_secret: secret.to_owned(),
            ..config.clone()
        })?;
        client
            .version()
            .await
            .context("the administrator's token")?;
        return Ok(client);
    }
    let password = match &args.password_file {
        Some(file) => read_secret_file(file)?,
        None => read_password(&args.user)?,
    };
    ProxmoxClient::login(config, &args.user, &password)
        .await
        .with_context(|| format!("logging in as {}", args.user))
}

/// The first line of a file holding a secret; a file others may read is warned about.
fn read_secret_file(file: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "warning: {} can be read by others than its owner (chmod 600 it)",
            file.display()
        );
    }
    let text = std::fs::read_to_string(file)?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// From the terminal without echo, or stdin's first line when it is not a terminal.
fn read_password(user: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password(format!(
            "Password for {user}: "
        ))?);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// What the Secret holds, its token tried against PVE when it is the wanted one.
async fn secret_holds(
    secret: Option<&Secret>,
    wanted: &Wanted,
    config: &proxmox::Config,
) -> anyhow::Result<SecretHolds> {
    let Some(secret) = secret else {
        return Ok(SecretHolds::Nothing);
    };
    let text = |key: &str| phoenix_controllers::pve::secret_text(secret, key);
    let (Some(id), Some(token_secret)) = (text("tokenId"), text("tokenSecret")) else {
        return Ok(SecretHolds::Nothing);
    };
    if id != wanted.full_token_id() {
        return Ok(SecretHolds::OtherToken);
    }
    let client = ProxmoxClient::new(&proxmox::Config {
        token_id: id,
        token_secret,
        ..config.clone()
    })?;
    match client.version().await {
        Ok(_) => Ok(SecretHolds::Wanted { accepted: true }),
        Err(e) if e.kind == ErrorKind::Unauthorized => Ok(SecretHolds::Wanted { accepted: false }),
        Err(e) => Err(e.into()),
    }
}

async fn perform(
    step: &Step,
    admin: &ProxmoxClient,
    wanted: &Wanted,
    kube: &kube::Client,
    secret: &(String, String),
    value: &mut Option<String>,
) -> anyhow::Result<()> {
    match step {
        Step::CreateRole { role, privileges } => admin.create_role(role, privileges).await?,
        Step::SetRole {
            role, privileges, ..
        } => admin.set_role(role, privileges).await?,
        Step::CreateUser => {
            admin
                .create_user(&wanted.user, "Phoenix controllers (phoenix setup)")
                .await?
        }
        Step::Grant(role) => admin.grant("/", role, &wanted.user).await?,
        Step::Revoke(role) => {
            let user = proxmox::access::Grantee::User;
            admin.set_acl("/", role, user, &wanted.user, None).await?
        }
        Step::DeleteRole(role) => admin.delete_role(role).await?,
        Step::CreateToken | Step::ReplaceToken => {
            if *step == Step::ReplaceToken {
                admin.delete_token(&wanted.user, &wanted.token).await?;
            }
            let token = admin
                .create_token(&wanted.user, &wanted.token, false, "Phoenix controllers")
                .await?;
            *value = Some(token.secret);
        }
        Step::WriteSecret => {
            let Some(token_secret) = value.as_deref() else {
                bail!("no token was created to write");
            };
            write_secret(kube, secret, &wanted.full_token_id(), token_secret).await?;
        }
    }
    Ok(())
}

/// The namespace (when missing) and the Secret, by server-side apply under setup's own
/// field manager.
async fn write_secret(
    kube: &kube::Client,
    (namespace, name): &(String, String),
    token_id: &str,
    token_secret: &str,
) -> anyhow::Result<()> {
    let params = PatchParams::apply(MANAGER).force();
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    if namespaces.get_opt(namespace).await?.is_none() {
        let object = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        namespaces
            .patch(namespace, &params, &Patch::Apply(object))
            .await?;
    }
    let data: BTreeMap<String, ByteString> = [("tokenId", token_id), ("tokenSecret", token_secret)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let object = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            annotations: Some(BTreeMap::from([(
                "phoenix.thinkheads.ai/written-by".to_owned(),
                MANAGER.to_owned(),
            )])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    };
    let mut object = serde_json::to_value(object)?;
    object["apiVersion"] = "v1".into();
    object["kind"] = "Secret".into();
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    secrets.patch(name, &params, &Patch::Apply(object)).await?;
    Ok(())
}

/// PVE's user id: `NAME@REALM` (it becomes part of API paths: nothing else gets through).
fn user_id(text: &str) -> Result<String, String> {
    let ok = text.split_once('@').is_some_and(|(name, realm)| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && pve_id(realm)
    });
    ok.then(|| text.to_owned())
        .ok_or_else(|| format!("{text:?} is not a PVE user id (NAME@REALM)"))
}

/// PVE's token id pattern, `[A-Za-z][A-Za-z0-9.\-_]+`.
fn token_id(text: &str) -> Result<String, String> {
    pve_id(text)
        .then(|| text.to_owned())
        .ok_or_else(|| format!("{text:?} is not a PVE token id ([A-Za-z][A-Za-z0-9._-]+)"))
}

/// PVE's role id pattern, `[A-Za-z0-9.\-_]+`.
fn role_id(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    ok.then(|| text.to_owned())
        .ok_or_else(|| format!("{text:?} is not a PVE role id ([A-Za-z0-9._-]+)"))
}

fn pve_id(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && text.len() > 1
        && chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn secret_ref(text: &str) -> Result<(String, String), String> {
    let (namespace, name) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: want NAMESPACE/NAME"))?;
    let dns = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    if !dns(namespace) || !dns(name) {
        return Err(format!("{text:?}: not a Kubernetes NAMESPACE/NAME"));
    }
    Ok((namespace.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_become_api_paths_are_checked() {
        assert!(user_id("phoenix@pve").is_ok());
        assert!(user_id("phoenix@pve/../../x").is_err());
        assert!(user_id("@pve").is_err());
        assert!(token_id("controller").is_ok());
        assert!(token_id("1x").is_err());
        assert!(token_id("a/b").is_err());
        assert!(role_id("Phoenix").is_ok());
        assert!(role_id("Phoe nix").is_err());
        assert_eq!(
            secret_ref("phoenix-system/pve-token").unwrap(),
            ("phoenix-system".into(), "pve-token".into())
        );
        assert!(secret_ref("pve-token").is_err());
    }
}
