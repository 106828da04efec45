//! Whether a certificate must be issued, and why — cert-manager's trigger policy chain as
//! a pure function of the Secret's certificate, the spec and the time: none yet, one that
//! does not name what the spec asks for, or renewal time reached.

use super::x509::Parsed;
use crate::conditions::reason;
use phoenix_crds::certificate::CertificateSpec;

/// Why a new certificate is needed: the `Issuing` condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub reason: &'static str,
    pub message: String,
}

/// The first policy that asks for an issuance; `None`: the certificate held is current.
pub fn trigger(
    current: Option<&Parsed>,
    spec: &CertificateSpec,
    now: jiff::Timestamp,
) -> Option<Trigger> {
    let Some(c) = current else {
        return Some(Trigger {
            reason: reason::DOES_NOT_EXIST,
            message: "no certificate in the Secret yet".into(),
        });
    };
    if !c.covers(&spec.dns_names, &spec.ip_addresses) {
        return Some(Trigger {
            reason: reason::INCORRECT_CERTIFICATE,
            message: "the Secret's certificate does not name what the spec asks for".into(),
        });
    }
    let renewal = renewal_time(c, spec);
    (now >= renewal).then(|| Trigger {
        reason: reason::RENEWING,
        message: format!("renewal time {renewal} reached"),
    })
}

/// `renewBefore` ahead of expiry, or a third of the lifetime (cert-manager's default, and
/// Step-CA's 24 h certificates renew at 16 h).
pub fn renewal_time(c: &Parsed, spec: &CertificateSpec) -> jiff::Timestamp {
    let lifetime = c.not_after.as_second() - c.not_before.as_second();
    let before = spec
        .renew_before
        .as_deref()
        .and_then(super::x509::parse_duration)
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .filter(|b| *b < lifetime)
        .unwrap_or(lifetime / 3);
    jiff::Timestamp::from_second(c.not_after.as_second() - before).unwrap_or(c.not_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn held(names: &[&str]) -> Parsed {
        Parsed {
            not_before: at("2026-01-01T00:00:00Z"),
            not_after: at("2026-01-02T00:00:00Z"),
            serial: "01".into(),
            dns_names: names.iter().map(|n| n.to_string()).collect(),
            ip_addresses: vec!["10.0.0.10".into()],
        }
    }

    fn spec(names: &[&str], renew_before: Option<&str>) -> CertificateSpec {
        let mut spec: CertificateSpec = serde_json::from_value(serde_json::json!({
            "secretName": "tls",
            "dnsNames": names,
            "ipAddresses": ["10.0.0.10"],
        }))
        .unwrap();
        spec.renew_before = renew_before.map(str::to_owned);
        spec
    }

    #[test]
    fn the_first_policy_that_asks_decides() {
        let ca = ["ca.internal"];
        let table: Vec<(Option<Parsed>, CertificateSpec, &str, Option<&str>)> = vec![
            (
                None,
                spec(&ca, None),
                "2026-01-01T01:00:00Z",
                Some("DoesNotExist"),
            ),
            (
                Some(held(&ca)),
                spec(&ca, None),
                "2026-01-01T01:00:00Z",
                None,
            ),
            // A third of 24 h before expiry: renewal at 16:00.
            (
                Some(held(&ca)),
                spec(&ca, None),
                "2026-01-01T15:59:59Z",
                None,
            ),
            (
                Some(held(&ca)),
                spec(&ca, None),
                "2026-01-01T16:00:00Z",
                Some("Renewing"),
            ),
            (
                Some(held(&ca)),
                spec(&ca, Some("1h")),
                "2026-01-01T22:00:00Z",
                None,
            ),
            (
                Some(held(&ca)),
                spec(&ca, Some("1h")),
                "2026-01-01T23:00:00Z",
                Some("Renewing"),
            ),
            // A renewBefore longer than the lifetime falls back to a third.
            (
                Some(held(&ca)),
                spec(&ca, Some("48h")),
                "2026-01-01T15:00:00Z",
                None,
            ),
            (
                Some(held(&["CA.Internal"])),
                spec(&ca, None),
                "2026-01-01T01:00:00Z",
                None,
            ),
            (
                Some(held(&ca)),
                spec(&["ca.internal", "acme.internal"], None),
                "2026-01-01T23:59:00Z",
                Some("IncorrectCertificate"),
            ),
        ];
        for (current, spec, now, expected) in table {
            let got = trigger(current.as_ref(), &spec, at(now)).map(|t| t.reason);
            assert_eq!(got, expected, "{now} {:?}", spec.renew_before);
        }
    }
}
