//! How the PVE certificate is trusted: a CA bundle, a pinned SHA-256 fingerprint of the
//! certificate itself (what the PVE UI shows), or — only when asked — nothing at all.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// PEM CA certificates the PVE certificate must chain to.
    CaBundle(String),
    /// SHA-256 of the PVE certificate, hex with or without colons.
    Fingerprint(String),
    /// Accept any certificate (logged as a warning on every client built).
    InsecureSkipVerify,
}

/// Normalises `AB:CD:...` or `abcd...` to 64 lower-case hex digits.
pub fn normalise_fingerprint(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_lowercase();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Accepts exactly the certificate with the pinned fingerprint; signatures are still
/// checked, so the peer must hold its key.
#[derive(Debug)]
struct Pinned {
    fingerprint: Option<String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.fingerprint {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) if *pin == sha256_hex(end_entity) => Ok(ServerCertVerified::assertion()),
            Some(_) => Err(rustls::Error::General(
                "the server certificate does not match the pinned SHA-256 fingerprint".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls client configuration for `trust`.
pub fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match trust {
        Trust::CaBundle(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots
                    .add(cert.map_err(|e| format!("CA bundle: {e}"))?)
                    .map_err(|e| format!("CA bundle: {e}"))?;
            }
            if roots.is_empty() {
                return Err("the CA bundle holds no certificate".into());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprint(text) => {
            let fingerprint = normalise_fingerprint(text)
                .ok_or_else(|| format!("{text:?} is not a SHA-256 fingerprint"))?;
            let verifier = Pinned {
                fingerprint: Some(fingerprint),
                provider,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
        Trust::InsecureSkipVerify => {
            tracing::warn!(
                "TLS verification of the Proxmox VE API is off (insecureSkipTlsVerify): anyone on the path can read the API token"
            );
            let verifier = Pinned {
                fingerprint: None,
                provider,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_normalise() {
        let colon = "3A:7F:9C:11:2B:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7";
        assert_eq!(
            normalise_fingerprint(colon).unwrap(),
            "3a7f9c112b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7"
        );
        assert!(normalise_fingerprint("AB:CD").is_none());
        assert!(client_config(&Trust::Fingerprint("nope".into())).is_err());
        assert!(client_config(&Trust::CaBundle("not pem".into())).is_err());
    }
}
