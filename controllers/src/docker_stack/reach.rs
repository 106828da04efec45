//! How the controller reaches a Portainer named by URL: on the platform, at that URL with
//! TLS checked against the cluster's Step-CA root (Portainer is served behind its route);
//! in simulate mode, the simulator's resolver names the loopback listener standing in for
//! it, with the simulator's pinned certificate — the platform's names are never dialled.

use crate::ca_root;
use crate::conditions::reason;
use crate::context::Context;
use crate::error::Error;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use phoenix_clients::portainer::{Auth, PortainerClient};
use phoenix_clients::proxmox::Trust;

/// A Portainer client for `url`, authenticated by `auth`.
pub async fn client(ctx: &Context, url: &str, auth: Auth) -> Result<PortainerClient, Error> {
    let (base, trust) = match ctx.pve.redirect() {
        Some(redirect) => {
            let (host, port) = host_and_port(url)?;
            let query = [("host", host), ("port", port.to_string())];
            match redirect.resolve(&query).await.map_err(unreachable)? {
                Some(address) => (
                    format!("https://{address}"),
                    Trust::Fingerprint(redirect.fingerprint.clone()),
                ),
                None => {
                    return Err(unreachable(format!(
                        "the simulator serves nothing at {url}"
                    )));
                }
            }
        }
        None => (url.to_owned(), Trust::CaBundle(ca_roots(ctx).await?)),
    };
    PortainerClient::new(&base, &trust, auth).map_err(|e| Error::Input {
        reason: reason::PORTAINER_UNREACHABLE,
        message: format!("a client for {url}: {e}"),
    })
}

fn unreachable(message: String) -> Error {
    Error::Input {
        reason: reason::PORTAINER_UNREACHABLE,
        message,
    }
}

/// Host and port of an `http(s)://host[:port][/]` URL (the schema allows no more).
fn host_and_port(url: &str) -> Result<(String, u16), Error> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split('/').next().unwrap_or_default();
    let default = if scheme == "http" { 80 } else { 443 };
    match authority.rsplit_once(':') {
        None => Ok((authority.to_owned(), default)),
        Some((host, port)) => port.parse().map(|p| (host.to_owned(), p)).map_err(|_| {
            Error::spec(
                reason::INVALID_URL,
                format!("{url}: the port is not a number"),
            )
        }),
    }
}

/// Every cluster's Step-CA root, as the Certificate controller publishes them.
async fn ca_roots(ctx: &Context) -> Result<String, Error> {
    let configs: Api<ConfigMap> = Api::namespaced(ctx.kube.clone(), ca_root::NAMESPACE);
    let roots: String = configs
        .get_opt(ca_root::CONFIGMAP)
        .await?
        .and_then(|c| c.data)
        .unwrap_or_default()
        .into_values()
        .collect();
    if roots.is_empty() {
        return Err(Error::Input {
            reason: reason::WAITING_FOR_CA_ROOT,
            message: format!(
                "no Step-CA root published yet in {}/{}: Portainer's certificate cannot be checked",
                ca_root::NAMESPACE,
                ca_root::CONFIGMAP
            ),
        });
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_of_urls() {
        let ok = |u: &str| host_and_port(u).unwrap();
        assert_eq!(
            ok("https://portainer.internal.thinkheads.ai"),
            ("portainer.internal.thinkheads.ai".into(), 443)
        );
        assert_eq!(ok("https://p.example:9443/"), ("p.example".into(), 9443));
        assert_eq!(ok("http://p.example"), ("p.example".into(), 80));
        assert!(host_and_port("https://p.example:x").is_err());
    }
}
