//! The CA Docker daemons check their clients against. Not the platform's CA: every TLS key
//! in every guest is issued by that one, and a daemon trusting it would take any of them as
//! a root credential on the swarm. This CA is Phoenix's own — made once, kept in a Secret
//! only Phoenix reads (`phoenix-system/phoenix-docker-client-ca`) — so only the client
//! certificates Phoenix signs with it reach a daemon's port 2376.

use crate::error::Error;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use std::collections::BTreeMap;

pub const NAMESPACE: &str = "phoenix-system";
pub const SECRET: &str = "phoenix-docker-client-ca";

/// The client CA's certificate (PEM), made on first use.
pub async fn certificate(kube: &kube::Client) -> Result<String, Error> {
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), NAMESPACE);
    if let Some(pem) = read(&secrets).await? {
        return Ok(pem);
    }
    let (cert, key) = generate().map_err(|e| Error::Input {
        reason: crate::conditions::reason::DOCKER_CLIENT_CA,
        message: format!("the Docker client CA could not be made: {e}"),
    })?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.into()),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(cert.clone().into_bytes())),
            ("tls.key".to_owned(), ByteString(key.into_bytes())),
        ])),
        ..Default::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(cert),
        // Made by another pass (or replica) meanwhile: theirs is the one.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            read(&secrets).await?.ok_or_else(|| Error::Input {
                reason: crate::conditions::reason::DOCKER_CLIENT_CA,
                message: "the Docker client CA Secret vanished after it was made".into(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

async fn read(secrets: &Api<Secret>) -> Result<Option<String>, Error> {
    let Some(secret) = secrets.get_opt(SECRET).await? else {
        return Ok(None);
    };
    Ok(crate::pve::secret_text(&secret, "tls.crt"))
}

/// A new self-signed CA for client authentication only: its certificate and key (PEM).
fn generate() -> Result<(String, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Phoenix Docker client CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_client_ca_is_a_ca_of_its_own() {
        let (cert, key) = super::generate().unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        let parsed = crate::certificate::x509::parse(&cert).expect("parses");
        assert!(parsed.dns_names.is_empty());
    }
}
