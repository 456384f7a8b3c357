//! Reading the Secret back: whether its certificates can be reused, only the
//! serving certificate needs renewing, or everything must be made anew.
//! Pure: the Secret's data and the time are passed in.

use std::collections::BTreeMap;

use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use rcgen::{KeyPair, PublicKeyData};
use rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::CertSettings;
use super::pki::{Issued, Material, SigningCa, renew_at};
use super::secret::{CA_CRT, CA_KEY, TLS_CRT, TLS_KEY};

/// A serving certificate that starts later than this from now is renewed
/// (more than any sane clock skew between replicas).
const FUTURE_TOLERANCE: SignedDuration = SignedDuration::from_hours(1);

/// What to do with the Secret's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Everything is valid and not yet due for renewal: serve it as it is.
    Reuse(Issued),
    /// The CA is good, the serving certificate is not: sign a new one with
    /// this CA.
    RenewLeaf {
        /// The CA to sign with.
        ca: SigningCa,
        /// Why the serving certificate cannot stay.
        reason: String,
    },
    /// The CA is missing, unusable or due for renewal: make a new CA and
    /// serving certificate.
    Recreate {
        /// Why.
        reason: String,
        /// CAs (PEM) that must stay trusted next to the new one: the CA being
        /// rotated out while it is still valid, and earlier ones still valid.
        keep_trusting: Vec<String>,
    },
}

/// A parsed certificate with its encodings.
struct Cert {
    der: CertificateDer<'static>,
    not_before: Timestamp,
    not_after: Timestamp,
}

impl Cert {
    /// The parsed form (`parse_certs` checked that it parses).
    fn parsed(&self, key: &str) -> Result<X509Certificate<'_>, String> {
        x509_parser::parse_x509_certificate(&self.der)
            .map(|(_, cert)| cert)
            .map_err(|e| format!("{key} is not an X.509 certificate: {e}"))
    }

    fn pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }
}

/// PEM-encodes `der` with 64-character lines.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn text<'a>(data: &'a BTreeMap<String, ByteString>, key: &str) -> Result<&'a str, String> {
    let bytes = data.get(key).ok_or_else(|| format!("{key} is missing"))?;
    let text = std::str::from_utf8(&bytes.0).map_err(|_| format!("{key} is not PEM text"))?;
    if text.trim().is_empty() {
        return Err(format!("{key} is empty"));
    }
    Ok(text)
}

fn timestamp(key: &str, t: x509_parser::time::ASN1Time) -> Result<Timestamp, String> {
    Timestamp::from_second(t.timestamp())
        .map_err(|_| format!("{key}: validity date {t} is out of range"))
}

/// Every certificate in the PEM under `key`, in order.
fn parse_certs(data: &BTreeMap<String, ByteString>, key: &str) -> Result<Vec<Cert>, String> {
    let pem = text(data, key)?;
    let ders = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} is not PEM: {e}"))?;
    if ders.is_empty() {
        return Err(format!("{key} holds no CERTIFICATE block"));
    }
    ders.into_iter()
        .map(|der| {
            let (not_before, not_after) = {
                let (_, cert) = x509_parser::parse_x509_certificate(&der)
                    .map_err(|e| format!("{key} is not an X.509 certificate: {e}"))?;
                let validity = cert.validity();
                (
                    timestamp(key, validity.not_before)?,
                    timestamp(key, validity.not_after)?,
                )
            };
            Ok(Cert {
                der,
                not_before,
                not_after,
            })
        })
        .collect()
}

/// The private key under `key`, checked against `cert`'s public key.
fn parse_key(
    data: &BTreeMap<String, ByteString>,
    key: &str,
    cert: &Cert,
    cert_key: &str,
) -> Result<String, String> {
    let pem = text(data, key)?;
    let pair = KeyPair::from_pem(pem).map_err(|e| format!("{key} is not a PKCS#8 key: {e}"))?;
    if pair.der_bytes() != &cert.parsed(cert_key)?.public_key().subject_public_key.data[..] {
        return Err(format!("{key} does not match {cert_key}"));
    }
    Ok(pem.to_owned())
}

/// Decides what to do with the Secret's `data` (`None`: no Secret) for
/// `settings` at `now`. See [`super`] for the renewal rule.
pub fn decide(
    data: Option<&BTreeMap<String, ByteString>>,
    settings: &CertSettings,
    now: Timestamp,
) -> Decision {
    let recreate = |reason: String| Decision::Recreate {
        reason,
        keep_trusting: Vec::new(),
    };
    let Some(data) = data else {
        return recreate("the Secret does not exist".to_owned());
    };
    let cas = match parse_certs(data, CA_CRT) {
        Ok(cas) => cas,
        Err(reason) => return recreate(reason),
    };
    let (ca, earlier) = match cas.split_first() {
        Some(split) => split,
        None => return recreate(format!("{CA_CRT} holds no CERTIFICATE block")),
    };
    match ca.parsed(CA_CRT) {
        Ok(parsed) if parsed.is_ca() => {}
        Ok(_) => return recreate(format!("{CA_CRT} is not a CA certificate")),
        Err(reason) => return recreate(reason),
    }
    let ca_key = match parse_key(data, CA_KEY, ca, CA_CRT) {
        Ok(key) => key,
        Err(reason) => return recreate(reason),
    };
    let still_trusted: Vec<String> = earlier
        .iter()
        .filter(|c| now < c.not_after)
        .map(Cert::pem)
        .collect();
    let ca_renew_at = renew_at(ca.not_before, ca.not_after);
    if now >= ca_renew_at {
        let mut keep_trusting = Vec::new();
        if now < ca.not_after {
            keep_trusting.push(ca.pem());
        }
        keep_trusting.extend(still_trusted);
        return Decision::Recreate {
            reason: format!(
                "the CA expires at {} and was due for renewal at {ca_renew_at}",
                ca.not_after
            ),
            keep_trusting,
        };
    }
    let signing = SigningCa {
        cert_pem: ca.pem(),
        key_pem: ca_key,
        not_before: ca.not_before,
        not_after: ca.not_after,
        earlier: still_trusted,
    };
    match check_leaf(data, settings, now, ca) {
        Ok((tls_crt, tls_key, leaf_renew_at)) => Decision::Reuse(Issued {
            material: Material {
                // As stored, so that an unchanged Secret is never rewritten.
                ca_crt: text(data, CA_CRT).unwrap_or_default().to_owned(),
                ca_key: signing.key_pem,
                tls_crt,
                tls_key,
            },
            renew_at: leaf_renew_at.min(ca_renew_at),
        }),
        Err(reason) => Decision::RenewLeaf {
            ca: signing,
            reason,
        },
    }
}

/// An IP SAN's octets as text, the way [`std::net::IpAddr`] prints it.
fn ip_text(octets: &[u8]) -> Option<String> {
    match octets.len() {
        4 => <[u8; 4]>::try_from(octets)
            .ok()
            .map(|o| std::net::Ipv4Addr::from(o).to_string()),
        16 => <[u8; 16]>::try_from(octets)
            .ok()
            .map(|o| std::net::Ipv6Addr::from(o).to_string()),
        _ => None,
    }
}

/// Checks the serving certificate; when it can stay, its PEM, its key's PEM
/// and its renewal time.
fn check_leaf(
    data: &BTreeMap<String, ByteString>,
    settings: &CertSettings,
    now: Timestamp,
    ca: &Cert,
) -> Result<(String, String, Timestamp), String> {
    let leaves = parse_certs(data, TLS_CRT)?;
    let leaf = leaves
        .first()
        .ok_or_else(|| format!("{TLS_CRT} holds no CERTIFICATE block"))?;
    let key = parse_key(data, TLS_KEY, leaf, TLS_CRT)?;
    let ca_parsed = ca.parsed(CA_CRT)?;
    let parsed = leaf.parsed(TLS_CRT)?;
    if parsed.issuer() != ca_parsed.subject()
        || parsed
            .verify_signature(Some(ca_parsed.public_key()))
            .is_err()
    {
        return Err(format!("{TLS_CRT} is not signed by the CA in {CA_CRT}"));
    }
    let names: Vec<String> = match parsed.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(name) => Some((*name).to_owned()),
                GeneralName::IPAddress(octets) => ip_text(octets),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let missing: Vec<String> = settings
        .subject_alt_names()
        .into_iter()
        .filter(|n| !names.contains(n))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{TLS_CRT} is not valid for {} (it names {})",
            missing.join(", "),
            if names.is_empty() {
                "no names".to_owned()
            } else {
                names.join(", ")
            }
        ));
    }
    if leaf.not_before > now.checked_add(FUTURE_TOLERANCE).unwrap_or(now) {
        return Err(format!("{TLS_CRT} is not valid before {}", leaf.not_before));
    }
    let due = renew_at(leaf.not_before, leaf.not_after);
    if now >= due {
        return Err(format!(
            "{TLS_CRT} expires at {} and was due for renewal at {due}",
            leaf.not_after
        ));
    }
    Ok((text(data, TLS_CRT)?.to_owned(), key, due))
}
