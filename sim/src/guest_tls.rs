//! The certificate a stand-in for a guest's HTTPS service presents: the one installed in
//! that guest for the name the client asks for (SNI), as the service there would present
//! it (vLLM in LXC 801 serves `/etc/vllm/tls.crt`), so that a client checking the chain
//! and the name (Traefik's `serversTransport`) succeeds or fails as it would on the
//! platform. Without such a certificate, the simulator's own.
//!
//! A pair is a PEM certificate file with its key beside it, named as the features install
//! them: `tls.crt` + `tls.key`, `cert.pem` + `key.pem`, `x.pem` + `x.key`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A guest's PEM files now (`None` once the guest is gone), path → content.
pub type Installed = Box<dyn Fn() -> Option<BTreeMap<String, String>> + Send + Sync>;

/// Picks, at each handshake, the certificate installed in a guest for the name asked.
pub struct GuestCertificates {
    pub installed: Installed,
    pub fallback: Arc<CertifiedKey>,
}

impl std::fmt::Debug for GuestCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestCertificates").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for GuestCertificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let installed = hello
            .server_name()
            .and_then(|name| self.installed_for(name));
        Some(installed.unwrap_or_else(|| self.fallback.clone()))
    }
}

impl GuestCertificates {
    fn installed_for(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let pems = (self.installed)()?;
        pairs(&pems)
            .filter_map(|(chain, key)| certified(chain, key))
            .find(|pair| covers(pair, name))
            .map(Arc::new)
    }
}

/// The PEM files among a guest's files.
pub fn pem_files(files: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    files
        .iter()
        .filter(|(_, c)| c.contains("-----BEGIN "))
        .map(|(p, c)| (p.clone(), c.clone()))
        .collect()
}

/// The certificate files of `files` with the key beside each.
pub fn pairs(files: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
    files.iter().filter_map(move |(path, chain)| {
        if !chain.contains("-----BEGIN CERTIFICATE-----") {
            return None;
        }
        let key = [
            ("tls.crt", "tls.key"),
            ("cert.pem", "key.pem"),
            (".crt", ".key"),
            (".pem", ".key"),
        ]
        .iter()
        .filter_map(|(cert, key)| Some(format!("{}{key}", path.strip_suffix(cert)?)))
        .find_map(|candidate| files.get(&candidate))
        .filter(|key| key.contains("PRIVATE KEY-----"))?;
        Some((chain.as_str(), key.as_str()))
    })
}

/// A chain and its key as rustls serves them, when they parse and belong together.
pub fn certified(chain: &str, key: &str) -> Option<CertifiedKey> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<_, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).ok()?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).ok()?;
    let pair = CertifiedKey::new(certs, signing);
    pair.keys_match().ok()?;
    Some(pair)
}

/// Whether the leaf of `pair` names `name` (wildcards as TLS clients read them).
fn covers(pair: &CertifiedKey, name: &str) -> bool {
    let (Some(leaf), Ok(name)) = (pair.cert.first(), ServerName::try_from(name)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn the_pair_installed_for_a_name_is_found_and_others_are_not() {
        let (vllm, vllm_key) = issue(&["embedding.internal.thinkheads.ai"]);
        let (docker, docker_key) = issue(&["*.internal.thinkheads.ai"]);
        let (_, other_key) = issue(&["x"]);
        let files: BTreeMap<String, String> = [
            ("/etc/vllm/tls.crt", vllm.as_str()),
            ("/etc/vllm/tls.key", vllm_key.as_str()),
            ("/etc/vllm/ca.crt", vllm.as_str()),
            ("/etc/docker/tls/cert.pem", docker.as_str()),
            ("/etc/docker/tls/key.pem", docker_key.as_str()),
            // A certificate whose neighbour is another certificate's key: no pair.
            ("/etc/odd/a.crt", vllm.as_str()),
            ("/etc/odd/a.key", other_key.as_str()),
        ]
        .map(|(p, c)| (p.to_owned(), c.to_owned()))
        .into();
        let found: Vec<CertifiedKey> = pairs(&files).filter_map(|(c, k)| certified(c, k)).collect();
        assert_eq!(found.len(), 2, "vllm's and docker's; a/a.key do not match");
        let names = |name: &str| found.iter().filter(|p| covers(p, name)).count();
        assert_eq!(names("embedding.internal.thinkheads.ai"), 2);
        assert_eq!(names("portainer.internal.thinkheads.ai"), 1);
        assert_eq!(names("a.b.internal.thinkheads.ai"), 0);
    }
}
