//! The commit a git stack's ref points at now, read as `git ls-remote` reads it over
//! smart HTTP (`GET <repo>/info/refs?service=git-upload-pack`, pkt-lines): one request,
//! no clone, so a new commit is noticed at each resync without redeploying to find out.
//! A small reader rather than a git crate: this is the only git the controller speaks.

use crate::conditions::reason;
use crate::error::Error;
use std::time::Duration;

/// Where the commit comes from.
pub struct Remote<'a> {
    pub url: &'a str,
    pub reference: &'a str,
    pub credentials: Option<(String, String)>,
    /// Simulate mode: only loopback repositories are asked.
    pub loopback_only: bool,
}

fn unreachable(message: String) -> Error {
    Error::Input {
        reason: reason::GIT_UNREACHABLE,
        message,
    }
}

/// The commit `reference` (a branch, a tag or a full ref) points at in the repository.
pub async fn head(remote: &Remote<'_>) -> Result<String, Error> {
    let url = remote.url.trim_end_matches('/');
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(unreachable(format!(
            "{url}: new commits are looked for over HTTP(S) only"
        )));
    }
    if remote.loopback_only && !is_loopback(url) {
        return Err(unreachable(format!(
            "{url} is not on loopback: simulate mode does not reach out"
        )));
    }
    let tls = platform_tls().map_err(unreachable)?;
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .use_preconfigured_tls(tls);
    let http = builder.build().map_err(|e| unreachable(e.to_string()))?;
    let mut request = http
        .get(format!("{url}/info/refs"))
        .query(&[("service", "git-upload-pack")]);
    if let Some((user, password)) = &remote.credentials {
        request = request.basic_auth(user, Some(password));
    }
    let answer = request
        .send()
        .await
        .map_err(|e| unreachable(format!("{url}: {}", e.without_url())))?;
    let status = answer.status();
    if !status.is_success() {
        return Err(unreachable(format!("{url}: HTTP {status}")));
    }
    let body = answer
        .bytes()
        .await
        .map_err(|e| unreachable(format!("{url}: {}", e.without_url())))?;
    find(&refs(&body), remote.reference)
        .ok_or_else(|| unreachable(format!("{url} has no ref {:?}", remote.reference)))
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or_default();
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// TLS for repositories on the Internet: the platform's roots.
fn platform_tls() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// (commit, ref) pairs of an `info/refs` answer in pkt-line format.
fn refs(body: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 4 {
        let Some(len) = std::str::from_utf8(&rest[..4])
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
        else {
            break;
        };
        if len < 4 {
            rest = &rest[4..]; // flush-pkt
            continue;
        }
        let Some(line) = rest.get(4..len) else { break };
        rest = &rest[len..];
        let line = String::from_utf8_lossy(line);
        let line = line.split('\0').next().unwrap_or_default().trim_end();
        if let Some((commit, name)) = line.split_once(' ')
            && commit.len() == 40
            && commit.bytes().all(|b| b.is_ascii_hexdigit())
        {
            out.push((commit.to_owned(), name.to_owned()));
        }
    }
    out
}

/// The commit of `reference`: a full ref, a branch, or a tag (peeled when annotated).
fn find(refs: &[(String, String)], reference: &str) -> Option<String> {
    if reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(reference.to_owned());
    }
    let candidates = [
        reference.to_owned(),
        format!("refs/heads/{reference}"),
        format!("refs/tags/{reference}^{{}}"),
        format!("refs/tags/{reference}"),
    ];
    candidates
        .iter()
        .find_map(|c| refs.iter().find(|(_, name)| name == c))
        .map(|(commit, _)| commit.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(line: &str) -> String {
        format!("{:04x}{line}", line.len() + 4)
    }

    #[test]
    fn refs_of_an_info_refs_answer() {
        let (a, b, c) = ("a".repeat(40), "b".repeat(40), "c".repeat(40));
        let body = format!(
            "{}0000{}{}{}{}0000",
            pkt("# service=git-upload-pack\n"),
            pkt(&format!(
                "{a} HEAD\0multi_ack symref=HEAD:refs/heads/main\n"
            )),
            pkt(&format!("{a} refs/heads/main\n")),
            pkt(&format!("{b} refs/tags/v1\n")),
            pkt(&format!("{c} refs/tags/v1^{{}}\n")),
        );
        let found = refs(body.as_bytes());
        assert_eq!(found.len(), 4);
        assert_eq!(find(&found, "main"), Some(a.clone()));
        assert_eq!(find(&found, "refs/heads/main"), Some(a));
        assert_eq!(find(&found, "v1"), Some(c), "an annotated tag is peeled");
        assert_eq!(find(&found, "nope"), None);
        assert!(refs("00zz".as_bytes()).is_empty());
        assert!(is_loopback("http://127.0.0.1:8080/r.git") && is_loopback("http://u@localhost/r"));
        assert!(!is_loopback("https://10.0.0.5/r.git") && !is_loopback("https://github.com/x"));
    }
}
