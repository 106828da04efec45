//! The end-to-end check: one HTTPS request for the route's host, sent from the controller
//! to the hop in front of it (Traefik's guest) with the host as SNI and Host, its answer
//! judged. The hop's certificate must chain to the route's root. In simulate mode the
//! simulator's resolver names where the hop is served on loopback (the platform's
//! addresses are never dialled): the real Traefik or nginx run on the guest's files, or
//! without them a stand-in presenting the certificate installed in the guest; either is
//! checked as on the platform.

use crate::pve::Redirect;
use phoenix_clients::proxmox::{Trust, client_config, error_chain};
use std::net::SocketAddr;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What came back: the status when something answered, and a sentence for the operator.
pub struct Answer {
    pub status: Option<u16>,
    pub message: String,
    from_backend: bool,
}

impl Answer {
    /// Whether the backend answered, rather than Traefik for it (see [`traefiks_own`]).
    pub fn from_backend(&self) -> bool {
        self.from_backend
    }
}

/// Traefik's body when no router matches.
const NO_ROUTE: &str = "404 page not found";

/// Whether Traefik answered by itself: its 404 for a host no router matches, a gateway
/// error (no backend reachable), or its 500 with the bare status text (a backend whose
/// certificate it refused).
fn traefiks_own(status: u16, body: &str) -> bool {
    let bare = http_text(status).is_some_and(|text| body.trim() == text);
    body.trim() == NO_ROUTE || matches!(status, 502..=504) || (status == 500 && bare)
}

fn http_text(status: u16) -> Option<&'static str> {
    reqwest::StatusCode::from_u16(status)
        .ok()?
        .canonical_reason()
}

/// GET `https://<host><path>` through `hop` (the guest's address and port), its
/// certificate checked against `root_pem` for the host. A route without a certificate of
/// its own (`None`) is served with Traefik's default one, which names no route: its
/// certificate is then not checked (the request carries nothing secret; what is judged is
/// who answers).
pub async fn through(
    redirect: Option<&Redirect>,
    hop: SocketAddr,
    host: &str,
    path: &str,
    root_pem: Option<&str>,
) -> Answer {
    let trust = match root_pem {
        Some(pem) => Trust::CaBundle(pem.to_owned()),
        None => Trust::InsecureSkipVerify,
    };
    let address = match redirect {
        Some(redirect) => {
            let query = [
                ("address", hop.ip().to_string()),
                ("port", hop.port().to_string()),
            ];
            match redirect.resolve(&query).await {
                Ok(Some(address)) => address,
                Ok(None) => return failed(format!("the simulator serves nothing at {hop}")),
                Err(e) => return failed(e),
            }
        }
        None => hop,
    };
    match request(address, trust, host, path).await {
        Ok((status, body)) => Answer {
            status: Some(status),
            message: match (body.trim(), traefiks_own(status, &body)) {
                (NO_ROUTE, _) => {
                    format!("{hop} answered {status} {NO_ROUTE}: the route is not loaded")
                }
                (text, true) => format!(
                    "{hop} answered {status} {text} for {host}{path}: the backend did not answer"
                ),
                (_, false) => format!("{hop} answered {status} for {host}{path}"),
            },
            from_backend: !traefiks_own(status, &body),
        },
        Err(e) => failed(format!("{host}{path} through {hop}: {e}")),
    }
}

fn failed(message: String) -> Answer {
    Answer {
        status: None,
        message,
        from_backend: false,
    }
}

async fn request(
    address: SocketAddr,
    trust: Trust,
    host: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let tls = client_config(&trust)?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .resolve(host, address)
        .no_proxy()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("https://{host}:{}{path}", address.port());
    let response = client.get(&url).send().await.map_err(|e| error_chain(&e))?;
    let status = response.status().as_u16();
    // Enough of the body to tell Traefik's own 404 from the backend's.
    let body = response.text().await.unwrap_or_default();
    Ok((status, body.chars().take(200).collect()))
}

#[cfg(test)]
mod tests {
    use super::traefiks_own;

    #[test]
    fn traefiks_own_answers_are_told_from_the_backends() {
        assert!(traefiks_own(404, "404 page not found\n"));
        assert!(traefiks_own(502, "Bad Gateway"));
        assert!(traefiks_own(500, "Internal Server Error"));
        assert!(!traefiks_own(500, "{\"error\": \"db down\"}"));
        assert!(!traefiks_own(404, "no such collection"));
        assert!(!traefiks_own(200, "ok"));
    }
}
