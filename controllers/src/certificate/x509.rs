//! What the controller reads from certificates (validity, serial, names) and makes for
//! them (keys, ACME identifiers, durations like `24h` or `2160h30m`).

use instant_acme::Identifier;
use phoenix_crds::certificate::{KeyAlgorithm, PrivateKey};
use std::time::Duration;

/// The leaf certificate of a chain, as the controller needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub not_before: jiff::Timestamp,
    pub not_after: jiff::Timestamp,
    /// Hex, colon-free, as `openssl x509 -serial` prints it.
    pub serial: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
}

impl Parsed {
    /// Whether the certificate names every DNS name and IP the spec asks for (DNS names
    /// case-insensitively, addresses as addresses: `FD00::1` is `fd00::1`).
    pub fn covers(&self, dns_names: &[String], ip_addresses: &[String]) -> bool {
        let ips: Vec<std::net::IpAddr> = self
            .ip_addresses
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        dns_names
            .iter()
            .all(|n| self.dns_names.iter().any(|m| m.eq_ignore_ascii_case(n)))
            && ip_addresses
                .iter()
                .all(|ip| ip.parse().is_ok_and(|ip| ips.contains(&ip)))
    }
}

/// The first certificate of a PEM chain.
pub fn parse(pem: &str) -> Option<Parsed> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = block.parse_x509().ok()?;
    let time = |t: x509_parser::time::ASN1Time| jiff::Timestamp::from_second(t.timestamp()).ok();
    let (mut dns_names, mut ip_addresses) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => dns_names.push(n.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from(bytes) {
                        ip_addresses.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    Some(Parsed {
        not_before: time(cert.validity().not_before)?,
        not_after: time(cert.validity().not_after)?,
        serial: cert.raw_serial_as_string().replace(':', ""),
        dns_names,
        ip_addresses,
    })
}

fn ip_from(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// Go-style durations, as the CRD's pattern allows: `90m`, `24h`, `2160h30m`, `1.5h`,
/// `1h30m15s`, `500ms`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, seconds) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("ms", 1e-3),
            ("h", 3600.0),
            ("m", 60.0),
            ("s", 1.0),
        ]
        .into_iter()
        .find(|(unit, _)| rest.starts_with(unit))?;
        rest = &rest[unit.len()..];
        total += number * seconds;
    }
    if text.is_empty() {
        return None;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// A new private key of the spec's algorithm.
pub fn new_key(spec: &PrivateKey) -> Result<rcgen::KeyPair, String> {
    let algorithm = match spec.algorithm {
        KeyAlgorithm::ECDSA => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        KeyAlgorithm::RSA => {
            return Err("RSA keys are not supported yet: use ECDSA or Ed25519".into());
        }
    };
    rcgen::KeyPair::generate_for(algorithm).map_err(|e| e.to_string())
}

/// The order's identifiers: DNS names, IPs, and the common name when it is neither.
pub fn identifiers(
    dns_names: &[String],
    ips: &[String],
    common_name: Option<&str>,
) -> Vec<Identifier> {
    let mut out: Vec<Identifier> = dns_names.iter().cloned().map(Identifier::Dns).collect();
    out.extend(
        ips.iter()
            .filter_map(|ip| ip.parse().ok())
            .map(Identifier::Ip),
    );
    if let Some(cn) = common_name
        && !dns_names.iter().any(|n| n == cn)
        && !ips.iter().any(|ip| ip == cn)
    {
        out.push(match cn.parse() {
            Ok(ip) => Identifier::Ip(ip),
            Err(_) => Identifier::Dns(cn.to_owned()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_crd_format() {
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("1h30m15s"), Some(Duration::from_secs(5415)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), None);
        assert_eq!(
            parse_duration("99999999999999999999999h"),
            None,
            "too long, not a panic"
        );
        assert_eq!(parse_duration("5d"), None);
    }

    #[test]
    fn a_certificate_reads_back_with_its_names_and_validity() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![
            "portainer.internal.thinkheads.ai".into(),
            "10.0.0.101".into(),
        ])
        .unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        let parsed = parse(&cert.pem()).unwrap();
        assert_eq!(
            parsed.not_after.as_second() - parsed.not_before.as_second(),
            86400
        );
        assert!(parsed.covers(
            &["portainer.internal.thinkheads.ai".into()],
            &["10.0.0.101".into()]
        ));
        assert!(!parsed.covers(&["other.internal.thinkheads.ai".into()], &[]));
        assert!(parsed.covers(
            &["Portainer.Internal.Thinkheads.ai".into()],
            &["10.0.0.101".into()]
        ));
        assert!(!parsed.covers(&[], &["not-an-ip".into()]));
        let ids = identifiers(
            &["a.example".into()],
            &["10.0.0.1".into()],
            Some("a.example"),
        );
        assert_eq!(ids.len(), 2);
    }
}
