//! Certificate files: read (PEM, through rustls-pki-types) and checked
//! before anything uses them, so that `sipedge check` and a reload refuse
//! a certificate that would fail its clients — one that is expired or not
//! yet valid, does not cover its domain, or does not match its key — and
//! warn about one that expires within [`EXPIRY_WARNING`].

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::time::{Duration, SystemTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A certificate expiring sooner than this is a warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// Reads a PEM file's certificates, in order; none is an error.
pub fn chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {}", path.display(), pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {}", path.display(), pem_error(e)))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate (PEM) in it", path.display()));
    }
    Ok(certs)
}

/// Reads a PEM file's private key.
pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {}", path.display(), pem_error(e)))
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => format!("cannot read: {e}"),
        rustls::pki_types::pem::Error::NoItemsFound => "no private key (PEM) in it".to_owned(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// Checks `leaf` at `now`: valid now, and, if `name` is given, covering
/// that name (a domain: exact, or `*.…` covered only by the same
/// wildcard). Returns a warning when it expires within [`EXPIRY_WARNING`].
pub fn check(
    leaf: &CertificateDer<'_>,
    name: Option<&str>,
    now: SystemTime,
) -> Result<Option<String>, String> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| format!("the certificate cannot be read: {e}"))?;
    let at = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
    let not_before = at(cert.validity().not_before.timestamp());
    let not_after = at(cert.validity().not_after.timestamp());
    let date = |t: &x509_parser::time::ASN1Time| t.to_string();
    if now < not_before {
        return Err(format!(
            "the certificate is not valid before {}",
            date(&cert.validity().not_before)
        ));
    }
    if now > not_after {
        return Err(format!(
            "the certificate expired on {}",
            date(&cert.validity().not_after)
        ));
    }
    if let Some(name) = name {
        let names = names(&cert);
        if !names.iter().any(|n| covers(n, name)) {
            return Err(format!(
                "the certificate does not cover {name:?} (it names {})",
                if names.is_empty() {
                    "nothing".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        }
    }
    let warning = (not_after.duration_since(now).unwrap_or_default() < EXPIRY_WARNING).then(|| {
        format!(
            "the certificate expires on {}, in less than 14 days",
            date(&cert.validity().not_after)
        )
    });
    Ok(warning)
}

/// Whether a certificate's key is RSA (`Some(true)`) or another kind
/// (EC, Ed25519: `Some(false)`), which decides the TLS 1.2 suites it can
/// serve; `None` when it cannot be read.
pub fn is_rsa(der: &[u8]) -> Option<bool> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let key = cert.public_key().parsed().ok()?;
    Some(matches!(key, x509_parser::public_key::PublicKey::RSA(_)))
}

/// The subject of a DER certificate, as `CN=…, O=…` (for logs).
pub fn subject(der: &[u8]) -> Option<String> {
    X509Certificate::from_der(der)
        .ok()
        .map(|(_, c)| c.subject().to_string())
}

/// The DNS names a certificate is for: its subjectAltName DNS entries, or
/// when it has none its subject's common names (RFC 5922 §7.1).
fn names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                out.push(d.to_ascii_lowercase());
            }
        }
        if !out.is_empty() {
            return out;
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            out.push(s.to_ascii_lowercase());
        }
    }
    out
}

/// Whether a certificate naming `cert_name` serves the domain `domain`:
/// the same name, or a wildcard name covering it; a wildcard domain needs
/// the same wildcard.
fn covers(cert_name: &str, domain: &str) -> bool {
    cert_name == domain
        || (!domain.starts_with("*.") && edge::config::tls::wildcard_covers(cert_name, domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_names_cover_one_label_and_wildcard_domains_need_the_same_wildcard() {
        assert!(covers("*.example.com", "sip.example.com"));
        assert!(covers("*.example.com", "*.example.com"));
        assert!(!covers("sip.example.com", "*.example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
    }
}
