//! Taking over a Portainer this stack deployed: the admin (a password Phoenix generates
//! into a Secret it owns, or the one a Secret of the user's holds), an API key written to
//! the Secret the other stacks read, and the `primary` environment Portainer creates once
//! its admin exists. Every pass checks rather than remembers, so a restart anywhere in
//! between ends the same way: one admin, one valid key in the Secret (a key that no longer
//! works is replaced and the old ones deleted), never a second admin.

use super::reach;
use crate::conditions::reason;
use crate::context::Context;
use crate::error::Error;
use crate::pve::secret_texts;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use phoenix_clients::portainer::{Auth, ErrorKind, PortainerClient};
use phoenix_crds::docker_stack::{DockerStack, PortainerBootstrap, PortainerStatus};
use std::collections::BTreeMap;

/// The annotation on Secrets Phoenix made for a stack: the stack's uid. A Secret without
/// it is the user's and is never overwritten.
pub const OWNER: &str = "phoenix.thinkheads.ai/owner-uid";
const ADMIN: &str = "admin";
const MANAGER: &str = "phoenix-dockerstack";

/// Where the bootstrap stands.
pub enum Bootstrap {
    Done(PortainerStatus),
    Waiting {
        reason: &'static str,
        message: String,
    },
}

/// One pass of the bootstrap; `previous` is what the last pass recorded.
pub async fn run(
    stack: &DockerStack,
    ctx: &Context,
    spec: &PortainerBootstrap,
    previous: Option<&PortainerStatus>,
) -> Result<Bootstrap, Error> {
    let anonymous = reach::client(ctx, &spec.url, Auth::None).await?;
    let version = match anonymous.version().await {
        Ok(v) => v,
        Err(e) if e.kind == ErrorKind::Unreachable => {
            return Ok(Bootstrap::Waiting {
                reason: reason::PORTAINER_STARTING,
                message: format!(
                    "Portainer does not answer at {} yet ({})",
                    spec.url, e.message
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let (admin_secret, username, password) = admin_credentials(stack, ctx, spec).await?;
    if !anonymous.admin_exists().await? {
        match anonymous.init_admin(&username, &password).await {
            Err(e) if e.kind == ErrorKind::Conflict => {}
            other => other?,
        }
        let note = format!(
            "Portainer's admin {username:?} created; its password is in Secret {admin_secret}"
        );
        ctx.event(stack, EventType::Normal, reason::ADMIN_INITIALISED, note)
            .await;
    }
    let kept = previous.and_then(|p| p.api_key_id);
    let key = match valid_key(stack, ctx, spec, &anonymous).await? {
        Some(key) => (key, kept),
        None => {
            let (raw, id) = replace_key(stack, ctx, spec, &anonymous, &username, &password).await?;
            (raw, Some(id))
        }
    };
    let keyed = anonymous.with_auth(Auth::ApiKey(key.0));
    let Some(primary) = keyed.endpoints(Some("primary")).await?.into_iter().next() else {
        return Ok(Bootstrap::Waiting {
            reason: reason::WAITING_FOR_ENVIRONMENT,
            message: "Portainer has not created its `primary` environment yet".into(),
        });
    };
    Ok(Bootstrap::Done(PortainerStatus {
        version,
        admin_secret,
        api_key_id: key.1,
        endpoint_id: Some(primary.id),
    }))
}

/// The admin's Secret, username and password: the user's Secret when named, else the one
/// Phoenix generated (made now, before Portainer hears of it, so it is never lost).
async fn admin_credentials(
    stack: &DockerStack,
    ctx: &Context,
    spec: &PortainerBootstrap,
) -> Result<(String, String, String), Error> {
    let namespace = stack.namespace().unwrap_or_default();
    if let Some(named) = &spec.admin_secret_ref {
        let ([username, password], _) =
            secret_texts(&ctx.kube, &namespace, &named.name, ["username", "password"]).await?;
        return Ok((named.name.clone(), username, password));
    }
    let name = format!("{}-portainer-admin", stack.name_any());
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    match secrets.get_opt(&name).await? {
        Some(secret) => {
            ours(stack, &secret)?;
        }
        None => {
            let password = generate_password()?;
            let data = [("username", ADMIN.to_owned()), ("password", password)];
            apply_secret(stack, &secrets, &name, &data).await?;
        }
    }
    let ([username, password], _) =
        secret_texts(&ctx.kube, &namespace, &name, ["username", "password"]).await?;
    Ok((name, username, password))
}

/// The key in the API-key Secret, if it is there and Portainer takes it.
async fn valid_key(
    stack: &DockerStack,
    ctx: &Context,
    spec: &PortainerBootstrap,
    portainer: &PortainerClient,
) -> Result<Option<String>, Error> {
    let namespace = stack.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let Some(secret) = secrets.get_opt(&spec.api_key_secret_ref.name).await? else {
        return Ok(None);
    };
    ours(stack, &secret)?;
    let key = crate::pve::secret_text(&secret, &spec.api_key_secret_ref.key);
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    match portainer.with_auth(Auth::ApiKey(key.clone())).me().await {
        Ok(_) => Ok(Some(key)),
        Err(e) if e.kind == ErrorKind::Unauthorized => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Logs in as the admin, deletes the keys Phoenix made for this stack before, creates one
/// and writes it to the Secret.
async fn replace_key(
    stack: &DockerStack,
    ctx: &Context,
    spec: &PortainerBootstrap,
    portainer: &PortainerClient,
    username: &str,
    password: &str,
) -> Result<(String, i64), Error> {
    let jwt = match portainer.login(username, password).await {
        Ok(jwt) => jwt,
        Err(e) if e.kind == ErrorKind::Invalid => {
            return Err(Error::spec(
                reason::ADMIN_PASSWORD_UNKNOWN,
                format!(
                    "Portainer refuses the admin's password from its Secret ({}): the admin was made with another one",
                    e.message
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let admin = portainer.with_auth(Auth::Jwt(jwt));
    let user = admin.me().await?;
    let description = description(stack);
    for old in admin.keys(user).await? {
        if old.description == description {
            admin.delete_key(user, old.id).await?;
        }
    }
    let key = admin.create_key(user, password, &description).await?;
    let namespace = stack.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let r = &spec.api_key_secret_ref;
    apply_secret(
        stack,
        &secrets,
        &r.name,
        &[(r.key.as_str(), key.raw.clone())],
    )
    .await?;
    let note = format!(
        "Portainer API key {} created and written to Secret {}",
        key.id, r.name
    );
    ctx.event(stack, EventType::Normal, reason::API_KEY_CREATED, note)
        .await;
    Ok((key.raw, key.id))
}

/// The description Phoenix gives the keys it makes for `stack`: how it finds them again.
fn description(stack: &DockerStack) -> String {
    format!(
        "phoenix:{}/{}",
        stack.namespace().unwrap_or_default(),
        stack.name_any()
    )
}

/// A Secret Phoenix may write: one it made for this stack.
fn ours(stack: &DockerStack, secret: &Secret) -> Result<(), Error> {
    let owner = secret.annotations().get(OWNER);
    if owner.is_some() && owner == stack.metadata.uid.as_ref() {
        return Ok(());
    }
    Err(Error::conflict(
        reason::SECRET_NOT_OURS,
        format!(
            "Secret {} exists and was not made by Phoenix for this stack: it is left alone (delete it, or name another)",
            secret.name_any()
        ),
    ))
}

async fn apply_secret(
    stack: &DockerStack,
    secrets: &Api<Secret>,
    name: &str,
    data: &[(&str, String)],
) -> Result<(), Error> {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.clone().into_bytes())))
        .collect();
    let uid = stack.metadata.uid.clone().unwrap_or_default();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            annotations: Some(BTreeMap::from([(OWNER.to_owned(), uid)])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    };
    let params = PatchParams::apply(MANAGER).force();
    let mut body = serde_json::to_value(&secret).unwrap_or_default();
    body["apiVersion"] = "v1".into();
    body["kind"] = "Secret".into();
    secrets.patch(name, &params, &Patch::Apply(&body)).await?;
    Ok(())
}

/// 24 random bytes as hex: 48 characters, well over Portainer's 12.
fn generate_password() -> Result<String, Error> {
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| {
        Error::Input {
            reason: reason::ADMIN_PASSWORD_UNKNOWN,
            message: "no randomness for the admin's password".into(),
        }
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
