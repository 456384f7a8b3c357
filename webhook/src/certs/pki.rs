//! Generating the CA and the serving certificate. Pure: the time is passed
//! in; only key generation draws randomness.

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::{CertError, CertSettings};

/// How long a new CA is valid: 10 years.
pub const CA_LIFETIME: SignedDuration = SignedDuration::from_hours(24 * 3650);
/// How long a new serving certificate is valid: 1 year (never beyond its CA).
pub const LEAF_LIFETIME: SignedDuration = SignedDuration::from_hours(24 * 365);
/// How far back `notBefore` is set, for replicas whose clock lags.
pub const BACKDATE: SignedDuration = SignedDuration::from_mins(5);
/// A certificate with less than this left is renewed, whatever its lifetime.
pub const RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(24 * 30);

/// When a certificate valid from `not_before` to `not_after` is due for
/// renewal: once two thirds of its lifetime have passed, or 30 days before it
/// expires, whichever is earlier (never before `not_before`).
pub fn renew_at(not_before: Timestamp, not_after: Timestamp) -> Timestamp {
    let lifetime = not_after.duration_since(not_before);
    let two_thirds = not_before
        .checked_add(lifetime / 3 * 2)
        .unwrap_or(not_after);
    let last_month = not_after
        .checked_sub(RENEW_BEFORE)
        .unwrap_or(not_before)
        .max(not_before);
    two_thirds.min(last_month)
}

/// The PEM documents stored in the Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Material {
    /// `ca.crt`: the CA that signs the serving certificate first, then earlier
    /// CAs that are still trusted (see [`super`] on CA rotation). This is the
    /// `caBundle` of the webhook configurations.
    pub ca_crt: String,
    /// `ca.key`: the private key of the first CA in `ca_crt` (PKCS#8).
    pub ca_key: String,
    /// `tls.crt`: the serving certificate.
    pub tls_crt: String,
    /// `tls.key`: its private key (PKCS#8).
    pub tls_key: String,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("ca_crt", &self.ca_crt)
            .field("ca_key", &"<redacted>")
            .field("tls_crt", &self.tls_crt)
            .field("tls_key", &"<redacted>")
            .finish()
    }
}

/// Certificates ready to serve, and when to renew them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// What the Secret holds.
    pub material: Material,
    /// When the serving certificate or the CA is due for renewal.
    pub renew_at: Timestamp,
}

/// A CA read back from a Secret that can sign a new serving certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningCa {
    /// Its certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// Start of its validity.
    pub not_before: Timestamp,
    /// End of its validity.
    pub not_after: Timestamp,
    /// Earlier CAs (PEM) still trusted, kept after it in `ca.crt`.
    pub earlier: Vec<String>,
}

impl std::fmt::Debug for SigningCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCa")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("earlier", &self.earlier.len())
            .finish_non_exhaustive()
    }
}

fn time(what: &'static str, t: Result<Timestamp, jiff::Error>) -> Result<Timestamp, CertError> {
    t.map_err(|e| CertError::Time {
        what,
        detail: e.to_string(),
    })
}

fn offset(what: &'static str, t: Timestamp) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).map_err(|e| CertError::Time {
        what,
        detail: e.to_string(),
    })
}

fn generate(what: &'static str) -> impl Fn(rcgen::Error) -> CertError {
    move |source| CertError::Generate { what, source }
}

/// A new CA and a serving certificate it signs, for `settings`' DNS names.
/// `keep_trusting` (PEM CAs) follow the new CA in `ca.crt`.
pub fn issue(
    settings: &CertSettings,
    now: Timestamp,
    keep_trusting: &[String],
) -> Result<Issued, CertError> {
    let not_before = time("CA notBefore", now.checked_sub(BACKDATE))?;
    let not_after = time("CA notAfter", now.checked_add(CA_LIFETIME))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "kubectl-ephemeral");
    params
        .distinguished_name
        .push(DnType::CommonName, "ephemeral-webhook CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = offset("CA notBefore", not_before)?;
    params.not_after = offset("CA notAfter", not_after)?;
    let key = KeyPair::generate().map_err(generate("CA key"))?;
    let cert = params.self_signed(&key).map_err(generate("CA"))?;
    let ca = SigningCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_before,
        not_after,
        earlier: keep_trusting.to_vec(),
    };
    renew_leaf(settings, &ca, now)
}

/// A new serving certificate for `settings`' names, signed by `ca`
/// (valid for [`LEAF_LIFETIME`], but not beyond the CA).
pub fn renew_leaf(
    settings: &CertSettings,
    ca: &SigningCa,
    now: Timestamp,
) -> Result<Issued, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(generate("CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(generate("CA issuer"))?;
    let not_before = time("notBefore", now.checked_sub(BACKDATE))?;
    let not_after = time("notAfter", now.checked_add(LEAF_LIFETIME))?.min(ca.not_after);
    let mut params = CertificateParams::new(settings.subject_alt_names())
        .map_err(generate("serving certificate"))?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, settings.server_name());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = offset("notBefore", not_before)?;
    params.not_after = offset("notAfter", not_after)?;
    let key = KeyPair::generate().map_err(generate("serving key"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(generate("serving certificate"))?;
    let mut ca_crt = ca.cert_pem.clone();
    for earlier in &ca.earlier {
        ca_crt.push_str(earlier);
    }
    Ok(Issued {
        material: Material {
            ca_crt,
            ca_key: ca.key_pem.clone(),
            tls_crt: cert.pem(),
            tls_key: key.serialize_pem(),
        },
        renew_at: renew_at(not_before, not_after).min(renew_at(ca.not_before, ca.not_after)),
    })
}
