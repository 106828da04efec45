//! Checks made from the controller (`fromController`): straight to the guest's address on
//! a real platform; in simulate mode through the simulator's resolver, which hands out a
//! loopback listener standing in for that address and port — the guest addresses in the
//! manifests are the real platform's and are never dialled from here.

use crate::pve::Redirect;
use phoenix_crds::common::{HealthCheck, Scheme};
use std::time::Duration;

/// How the controller reaches guests' services.
#[derive(Clone, Debug)]
pub enum Reach {
    Direct,
    /// The simulator's `GET /admin/resolve`.
    Resolver(Redirect),
}

impl Reach {
    pub fn new(redirect: Option<&Redirect>) -> Self {
        match redirect {
            None => Reach::Direct,
            Some(r) => Reach::Resolver(r.clone()),
        }
    }

    /// Where to connect for `host:port` of a guest.
    async fn address(&self, host: &str, port: u16) -> Result<String, String> {
        let Reach::Resolver(redirect) = self else {
            return Ok(format!("{host}:{port}"));
        };
        let query = [("address", host.to_owned()), ("port", port.to_string())];
        match redirect.resolve(&query).await? {
            Some(address) => Ok(address.to_string()),
            None => Err(format!("the simulator knows no guest at {host}")),
        }
    }
}

/// The address a check from the controller connects to: one of the guest's own, never
/// another host a spec names (the controller's network is not a spec's to probe).
fn guest_address<'a>(named: Option<&'a str>, guest_ips: &'a [String]) -> Result<&'a str, String> {
    match named {
        None => guest_ips
            .first()
            .map(String::as_str)
            .ok_or_else(|| "the guest has no address yet".into()),
        Some(host) if guest_ips.iter().any(|ip| ip == host) => Ok(host),
        Some(host) => Err(format!(
            "{host} is not one of the guest's addresses: checks from the controller reach only the guest"
        )),
    }
}

/// Runs `check` from here against the guest at one of `guest_ips`.
pub async fn check(reach: &Reach, check: &HealthCheck, guest_ips: &[String]) -> Result<(), String> {
    let timeout = Duration::from_secs(check.timeout_seconds.into());
    if let Some(tcp) = &check.tcp {
        let host = guest_address(tcp.host.as_deref(), guest_ips)?;
        let address = reach.address(host, tcp.port).await?;
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&address)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("connect {host}:{}: {e}", tcp.port)),
            Err(_) => Err(format!(
                "connect {host}:{}: no answer within {timeout:?}",
                tcp.port
            )),
        };
    }
    let Some(http) = &check.http else {
        return Err("exec checks run inside the guest".into());
    };
    let ip = guest_address(None, guest_ips)?;
    let address = reach.address(ip, http.port).await?;
    let scheme = match http.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    // As the kubelet's HTTPS probes: the certificate is not verified; the Certificate
    // controller watches certificates, the check asks whether the service answers.
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        // The answer is the check; a redirect is not followed anywhere.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let host = http
        .host
        .clone()
        .unwrap_or_else(|| format!("{ip}:{}", http.port));
    let response = client
        .get(format!("{scheme}://{address}{}", http.path))
        .header("Host", host)
        .send()
        .await
        .map_err(|e| format!("GET {}: {e}", http.path))?;
    let status = response.status().as_u16();
    if status == http.expect_status {
        Ok(())
    } else {
        Err(format!(
            "HTTP status {status}, expected {}",
            http.expect_status
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_check_from_the_controller_reaches_only_the_guest() {
        let ips = vec!["10.0.0.10".to_owned()];
        assert_eq!(guest_address(None, &ips), Ok("10.0.0.10"));
        assert_eq!(guest_address(Some("10.0.0.10"), &ips), Ok("10.0.0.10"));
        assert!(guest_address(None, &[]).is_err());
        // A resolver that answers nothing: a check that got as far as asking it would
        // fail otherwise; this one is refused before any connection is tried.
        let reach = Reach::Resolver(Redirect {
            endpoint: "https://127.0.0.1:1".into(),
            ..Default::default()
        });
        let metadata: HealthCheck = serde_json::from_value(serde_json::json!({
            "name": "metadata",
            "fromController": true,
            "tcp": {"host": "169.254.169.254", "port": 80},
        }))
        .unwrap();
        let refused = check(&reach, &metadata, &ips).await.unwrap_err();
        assert!(
            refused.contains("169.254.169.254 is not one of the guest's addresses"),
            "{refused}"
        );
    }
}
