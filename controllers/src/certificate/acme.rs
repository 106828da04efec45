//! Issuing over ACME with `instant-acme`: the CA root fetched and checked against its
//! pinned SHA-256 fingerprint (as `step ca bootstrap` does), the account restored from (or
//! saved to) a Secret, an order answered through the HTTP-01 responder, a CSR made with
//! rcgen for a new (or kept) key, and the chain downloaded.

use super::http01::Challenges;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, KeyAuthorization,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use phoenix_clients::proxmox::{Trust, client_config, normalise_fingerprint};
use std::time::Duration;

/// One ACME server as the controller reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeServer {
    pub directory_url: String,
    /// Where the CA's root is published (Step-CA: `/roots.pem`).
    pub roots_url: String,
    /// The CA of the ACME server's own HTTPS certificate, when it is not the CA root
    /// itself (pebble's listener); Step-CA serves with a certificate from its root.
    pub server_ca_pem: Option<String>,
    /// SHA-256 of the root, pinned; `None` only in simulate mode (pebble makes a new root
    /// at every start).
    pub root_fingerprint: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The root the CA serves is not the pinned one: nothing is issued.
    #[error("the CA root at {url} has fingerprint {got}, not the pinned {pinned}")]
    RootMismatch {
        url: String,
        got: String,
        pinned: String,
    },
    #[error("{0}")]
    Unreachable(String),
    /// The CA no longer knows the saved account (its state was reset).
    #[error("the CA no longer knows the account: {0}")]
    AccountGone(String),
    #[error("ACME: {0}")]
    Protocol(String),
    /// The spec asks for something not available (a solver).
    #[error("{0}")]
    Unsupported(String),
}

impl AcmeError {
    pub fn category(&self) -> &'static str {
        match self {
            AcmeError::RootMismatch { .. } => "RootFingerprintMismatch",
            AcmeError::Unreachable(_) => "AcmeUnreachable",
            AcmeError::AccountGone(_) => "AcmeAccountGone",
            AcmeError::Protocol(_) => "AcmeFailed",
            AcmeError::Unsupported(_) => "SolverUnavailable",
        }
    }

    /// Only a change of the spec (or of the CA's root) helps: retrying would fail alike.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            AcmeError::RootMismatch { .. } | AcmeError::Unsupported(_)
        )
    }
}

fn protocol(e: impl std::fmt::Display) -> AcmeError {
    AcmeError::Protocol(e.to_string())
}

/// `https://ca:9000/acme/acme/directory` → `https://ca:9000/roots.pem` (Step-CA).
pub fn step_ca_roots_url(directory_url: &str) -> String {
    let origin = directory_url
        .split('/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/");
    format!("{origin}/roots.pem")
}

/// The Secret holding the account of one ACME directory (reused by every Certificate of
/// the namespace that uses it).
pub fn account_secret_name(directory_url: &str) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, directory_url.as_bytes());
    let hex: String = hash.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("phoenix-acme-account-{hex}")
}

/// SHA-256 of a PEM certificate's DER, lower-case hex.
pub fn fingerprint(pem: &str) -> Option<String> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    Some(
        ring::digest::digest(&ring::digest::SHA256, &der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// The most a CA's roots bundle may weigh.
const ROOTS_LIMIT: usize = 64 * 1024;

/// The CA root, checked against the pin. The first fetch cannot verify TLS against a root
/// it does not have yet: the pin vouches for what it returns, and a second fetch over TLS
/// verified against that root proves the answer came from the CA itself. No redirect is
/// followed and no more than [`ROOTS_LIMIT`] bytes are read.
pub async fn fetch_root(server: &AcmeServer) -> Result<String, AcmeError> {
    let trust = match &server.server_ca_pem {
        Some(pem) => Trust::CaBundle(pem.clone()),
        None => Trust::InsecureSkipVerify,
    };
    let first = get_root(server, &trust).await?;
    let got = fingerprint(&first).ok_or_else(|| protocol("unreadable root certificate"))?;
    if let Some(pinned) = &server.root_fingerprint {
        let pinned = normalise_fingerprint(pinned).unwrap_or_else(|| pinned.clone());
        if got != pinned {
            return Err(AcmeError::RootMismatch {
                url: server.roots_url.clone(),
                got,
                pinned,
            });
        }
    }
    if server.server_ca_pem.is_none() {
        let verified = get_root(server, &Trust::CaBundle(first.clone())).await?;
        if verified != first {
            return Err(protocol(format!(
                "{} served another root over a connection verified against the pinned one",
                server.roots_url
            )));
        }
    }
    Ok(first)
}

/// The first certificate of the roots bundle at `server.roots_url`, over TLS as `trust`
/// says.
async fn get_root(server: &AcmeServer, trust: &Trust) -> Result<String, AcmeError> {
    let tls = client_config(trust).map_err(AcmeError::Unreachable)?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| AcmeError::Unreachable(e.to_string()))?;
    let unreachable =
        |e: reqwest::Error| AcmeError::Unreachable(format!("{}: {e}", server.roots_url));
    let response = http
        .get(&server.roots_url)
        .send()
        .await
        .map_err(unreachable)?;
    let pem = bounded_text(response, &server.roots_url).await?;
    // A bundle may hold several roots; the first is the one pinned.
    first_pem(&pem).ok_or_else(|| protocol(format!("{} served no certificate", server.roots_url)))
}

/// The body of a successful answer as text, refused past [`ROOTS_LIMIT`] bytes (a redirect
/// is not a success: it is never followed).
async fn bounded_text(mut response: reqwest::Response, url: &str) -> Result<String, AcmeError> {
    if !response.status().is_success() {
        return Err(AcmeError::Unreachable(format!(
            "{url}: HTTP {}",
            response.status()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| AcmeError::Unreachable(format!("{url}: {e}")))?
    {
        if body.len() + chunk.len() > ROOTS_LIMIT {
            return Err(protocol(format!(
                "{url} served more than {ROOTS_LIMIT} bytes for its roots"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| protocol(format!("{url} served no text")))
}

fn first_pem(bundle: &str) -> Option<String> {
    let start = bundle.find("-----BEGIN CERTIFICATE-----")?;
    let end_marker = "-----END CERTIFICATE-----";
    let end = bundle[start..].find(end_marker)? + start + end_marker.len();
    Some(format!("{}\n", &bundle[start..end]))
}

/// Restores the account from `credentials` (JSON) or creates one; returns the account and
/// its credentials when they are new (to be saved).
pub async fn account(
    server: &AcmeServer,
    root_pem: &str,
    credentials: Option<&str>,
) -> Result<(Account, Option<String>), AcmeError> {
    // instant-acme takes its trust anchor from a file; it holds a public certificate.
    let anchor = tempfile::NamedTempFile::new().map_err(protocol)?;
    let trusted = server.server_ca_pem.as_deref().unwrap_or(root_pem);
    std::fs::write(anchor.path(), trusted).map_err(protocol)?;
    let builder = || Account::builder_with_root(anchor.path()).map_err(protocol);
    if let Some(saved) =
        credentials.and_then(|c| serde_json::from_str::<AccountCredentials>(c).ok())
    {
        return Ok((
            builder()?
                .from_credentials(saved)
                .await
                .map_err(unreachable)?,
            None,
        ));
    }
    let contact = server.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            server.directory_url.clone(),
            None,
        )
        .await
        .map_err(unreachable)?;
    let saved = serde_json::to_string(&credentials).map_err(protocol)?;
    Ok((account, Some(saved)))
}

fn unreachable(e: instant_acme::Error) -> AcmeError {
    match e {
        instant_acme::Error::Api(problem)
            if problem.r#type.as_deref()
                == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
        {
            AcmeError::AccountGone(problem.to_string())
        }
        instant_acme::Error::Api(problem) => AcmeError::Protocol(problem.to_string()),
        other => AcmeError::Unreachable(other.to_string()),
    }
}

/// What answers the CA's challenges: HTTP-01 by the controller's responder
/// ([`Challenges`]); DNS-01 will publish TXT records through the dnsmasq host sync.
pub trait Solver: Send + Sync {
    fn challenge_type(&self) -> ChallengeType;
    /// Publishes the answer for `token` (the key authorization; its digest for DNS-01).
    fn present(&self, identifier: &str, token: &str, key_authorization: &KeyAuthorization);
    /// Withdraws it once the order is done, valid or not.
    fn clean_up(&self, identifier: &str, token: &str);
}

impl Solver for Challenges {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::Http01
    }

    fn present(&self, _identifier: &str, token: &str, key_authorization: &KeyAuthorization) {
        self.insert(token, key_authorization.as_str());
    }

    fn clean_up(&self, _identifier: &str, token: &str) {
        self.remove(token);
    }
}

/// One order for `identifiers`, its challenges answered by `solver`, signed for `key`.
pub async fn issue(
    account: &Account,
    solver: &dyn Solver,
    identifiers: &[Identifier],
    common_name: Option<&str>,
    key: &rcgen::KeyPair,
) -> Result<String, AcmeError> {
    let mut order = account
        .new_order(&NewOrder::new(identifiers))
        .await
        .map_err(unreachable)?;
    let mut tokens = Vec::new();
    let result = async {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(unreachable)?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(protocol(format!("authorization is {other:?}"))),
            }
            let kind = solver.challenge_type();
            let identifier = authorization.identifier().to_string();
            let mut challenge = authorization
                .challenge(kind.clone())
                .ok_or_else(|| protocol(format!("the CA offers no {kind:?} challenge")))?;
            solver.present(
                &identifier,
                &challenge.token,
                &challenge.key_authorization(),
            );
            tokens.push((identifier, challenge.token.clone()));
            challenge.set_ready().await.map_err(unreachable)?;
        }
        let retries = RetryPolicy::new().timeout(Duration::from_secs(60));
        let status = order.poll_ready(&retries).await.map_err(unreachable)?;
        if status != OrderStatus::Ready {
            return Err(protocol(format!("the order is {status:?}, not ready")));
        }
        let names: Vec<String> = identifiers.iter().map(identifier_text).collect();
        let mut params = rcgen::CertificateParams::new(names).map_err(protocol)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = common_name {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let csr = params.serialize_request(key).map_err(protocol)?;
        order.finalize_csr(csr.der()).await.map_err(unreachable)?;
        order.poll_certificate(&retries).await.map_err(unreachable)
    }
    .await;
    for (identifier, token) in tokens {
        solver.clean_up(&identifier, &token);
    }
    result
}

fn identifier_text(identifier: &Identifier) -> String {
    match identifier {
        Identifier::Dns(name) => name.clone(),
        Identifier::Ip(ip) => ip.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_roots_answer_is_bounded_and_a_redirect_is_not_followed() {
        let answer = |status: u16, body: Vec<u8>| {
            reqwest::Response::from(http::Response::builder().status(status).body(body).unwrap())
        };
        let pem = b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".to_vec();
        let url = "https://ca.example/roots.pem";
        assert!(bounded_text(answer(200, pem), url).await.is_ok());
        let huge = vec![b'A'; ROOTS_LIMIT + 1];
        let refused = bounded_text(answer(200, huge), url).await.unwrap_err();
        assert!(refused.to_string().contains("more than"), "{refused}");
        let moved = bounded_text(answer(302, Vec::new()), url)
            .await
            .unwrap_err();
        assert!(moved.to_string().contains("302"), "{moved}");
    }

    #[test]
    fn step_ca_publishes_its_roots_beside_the_acme_directory() {
        assert_eq!(
            step_ca_roots_url("https://10.0.0.10:9000/acme/acme/directory"),
            "https://10.0.0.10:9000/roots.pem"
        );
    }

    #[test]
    fn the_first_certificate_of_a_bundle_is_the_pinned_root() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["root".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let bundle = format!("{}{}", cert.pem(), cert.pem());
        let first = first_pem(&bundle).unwrap();
        assert_eq!(first.trim(), cert.pem().trim());
        let expected: String = ring::digest::digest(&ring::digest::SHA256, cert.der())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(fingerprint(&first), Some(expected));
    }
}
