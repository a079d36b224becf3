//! The TLS part of the configuration model: an edge's SIP domains
//! (`[[edge.domain]]`, what its `tls:` and `wss:` listeners present) and
//! what a TLS destination is verified against.
//!
//! Versions, cipher suites and key-exchange groups are named here as the
//! operator writes them (IANA names, with the OpenSSL spellings users
//! know as aliases); the daemon maps each onto what rustls implements.
//! Only what rustls offers can be named: an unknown name, or a known one
//! rustls leaves out by design, is a config error at its line.

use std::path::PathBuf;

/// One SIP domain an edge serves over TLS (`[[edge.domain]]`): the
/// certificate its handshakes present and what they allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// The domain, lowercase: exact (`sip.example.com`) or a wildcard over
    /// one label (`*.example.com`). A client's SNI picks the domain: the
    /// exact name, then the wildcard, then the edge's first domain (also
    /// what a client that sends no SNI gets).
    pub name: String,
    /// The certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Versions offered; never empty. TLS 1.1 and older are refused by
    /// design (RFC 8996 deprecates them).
    pub versions: Vec<TlsVersion>,
    /// Cipher suites offered, in preference order; empty: rustls's
    /// defaults (every suite below).
    pub ciphers: Vec<Cipher>,
    /// Key-exchange groups offered, in preference order; empty: rustls's
    /// defaults (the hybrid post-quantum group first).
    pub curves: Vec<Curve>,
    /// Check a client certificate against `client_ca` when one is sent.
    pub verify_client: bool,
    /// Refuse a handshake without a client certificate (implies
    /// `verify_client`).
    pub require_client: bool,
    /// The CAs client certificates must chain to, PEM; set whenever
    /// `verify_client` or `require_client` is.
    pub client_ca: Option<PathBuf>,
    /// Line of the `[[edge.domain]]` header, for messages about it.
    pub line: usize,
}

impl Domain {
    /// Whether a client presenting `sni` (lowercase) gets this domain by
    /// name: equal, or this is `*.rest` and `sni` is one label more than
    /// `rest` (RFC 6125 §6.4.3: the wildcard covers exactly one label).
    pub fn covers(&self, sni: &str) -> bool {
        wildcard_covers(&self.name, sni)
    }
}

/// Whether the name `pattern` (exact, or `*.` and a suffix) covers `name`;
/// both lowercase.
pub fn wildcard_covers(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => name
            .strip_suffix(rest)
            .and_then(|head| head.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => pattern == name,
    }
}

/// A TLS protocol version sipedge offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    V1_2,
    /// TLS 1.3 (RFC 8446).
    V1_3,
}

impl TlsVersion {
    /// Both, in the order of the default `tls_versions = ["1.2", "1.3"]`.
    pub const ALL: [TlsVersion; 2] = [TlsVersion::V1_2, TlsVersion::V1_3];

    /// The name in config files.
    pub fn name(&self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }

    /// The version `text` names: `1.2`, `TLSv1.2`, `tls1.3`, any case.
    pub fn from_name(text: &str) -> Option<TlsVersion> {
        let t = text.to_ascii_lowercase();
        let t = t
            .strip_prefix("tlsv")
            .or_else(|| t.strip_prefix("tls"))
            .unwrap_or(&t);
        TlsVersion::ALL.into_iter().find(|v| v.name() == t)
    }
}

/// A cipher suite sipedge can offer: the AEAD suites with forward secrecy
/// that rustls implements (it leaves out CBC, RC4, 3DES and static RSA
/// key exchange by design).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types, missing_docs)]
pub enum Cipher {
    TLS_AES_128_GCM_SHA256,
    TLS_AES_256_GCM_SHA384,
    TLS_CHACHA20_POLY1305_SHA256,
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

/// Each suite with its IANA name and its OpenSSL name.
const CIPHERS: &[(Cipher, &str, &str)] = &[
    (
        Cipher::TLS_AES_128_GCM_SHA256,
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
    ),
    (
        Cipher::TLS_AES_256_GCM_SHA384,
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
    ),
    (
        Cipher::TLS_CHACHA20_POLY1305_SHA256,
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    (
        Cipher::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    ),
    (
        Cipher::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    ),
    (
        Cipher::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ),
    (
        Cipher::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    ),
    (
        Cipher::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    ),
    (
        Cipher::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ),
];

impl Cipher {
    /// Every suite, TLS 1.3 first.
    pub fn all() -> impl Iterator<Item = Cipher> {
        CIPHERS.iter().map(|c| c.0)
    }

    /// The IANA name (RFC 8446 §B.4, RFC 5289, RFC 7905).
    pub fn name(&self) -> &'static str {
        CIPHERS.iter().find(|c| c.0 == *self).map_or("", |c| c.1)
    }

    /// The suite `text` names, by IANA or OpenSSL name, any case.
    pub fn from_name(text: &str) -> Option<Cipher> {
        CIPHERS
            .iter()
            .find(|c| c.1.eq_ignore_ascii_case(text) || c.2.eq_ignore_ascii_case(text))
            .map(|c| c.0)
    }

    /// The version this suite belongs to.
    pub fn version(&self) -> TlsVersion {
        if self.name().contains("_WITH_") {
            TlsVersion::V1_2
        } else {
            TlsVersion::V1_3
        }
    }
}

/// A key-exchange group (`curves`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// X25519 (RFC 7748).
    X25519,
    /// NIST P-256.
    Secp256r1,
    /// NIST P-384.
    Secp384r1,
    /// X25519 combined with ML-KEM-768, the hybrid post-quantum group
    /// (TLS 1.3 only).
    X25519MlKem768,
}

/// Each group with its name and its aliases.
const CURVES: &[(Curve, &str, &[&str])] = &[
    (Curve::X25519, "x25519", &[]),
    (Curve::Secp256r1, "secp256r1", &["prime256v1", "p-256"]),
    (Curve::Secp384r1, "secp384r1", &["p-384"]),
    (
        Curve::X25519MlKem768,
        "x25519mlkem768",
        &["x25519_mlkem768"],
    ),
];

impl Curve {
    /// Every group, in rustls's default preference.
    pub fn all() -> impl Iterator<Item = Curve> {
        [
            Curve::X25519MlKem768,
            Curve::X25519,
            Curve::Secp256r1,
            Curve::Secp384r1,
        ]
        .into_iter()
    }

    /// The name in config files.
    pub fn name(&self) -> &'static str {
        CURVES.iter().find(|c| c.0 == *self).map_or("", |c| c.1)
    }

    /// The group `text` names, any case.
    pub fn from_name(text: &str) -> Option<Curve> {
        CURVES
            .iter()
            .find(|c| {
                c.1.eq_ignore_ascii_case(text) || c.2.iter().any(|a| a.eq_ignore_ascii_case(text))
            })
            .map(|c| c.0)
    }
}

/// How sipedge connects to a TLS destination (`sips:` or
/// `;transport=tls`): what its certificate is verified against and what
/// sipedge presents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsClient {
    /// The CAs the server's certificate must chain to, PEM (`ca`);
    /// `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// The name the server's certificate must cover (`server_name`):
    /// by default the URI's host, a DNS name or an IP address.
    pub server_name: String,
    /// A client certificate chain and its key, PEM (`client_cert`,
    /// `client_key`), for servers that ask for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        assert!(wildcard_covers("*.example.com", "sip.example.com"));
        assert!(!wildcard_covers("*.example.com", "a.b.example.com"));
        assert!(!wildcard_covers("*.example.com", "example.com"));
        assert!(!wildcard_covers("*.example.com", "xexample.com"));
        assert!(wildcard_covers("sip.example.com", "sip.example.com"));
        assert!(!wildcard_covers("sip.example.com", "sip2.example.com"));
    }

    #[test]
    fn names_by_iana_and_openssl_spelling() {
        assert_eq!(
            Cipher::from_name("ECDHE-RSA-AES128-GCM-SHA256"),
            Some(Cipher::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
        );
        assert_eq!(
            Cipher::from_name("tls_aes_256_gcm_sha384"),
            Some(Cipher::TLS_AES_256_GCM_SHA384)
        );
        assert_eq!(Cipher::TLS_AES_128_GCM_SHA256.version(), TlsVersion::V1_3);
        assert_eq!(
            Cipher::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256.version(),
            TlsVersion::V1_2
        );
        assert_eq!(Cipher::from_name("TLS_RSA_WITH_AES_128_CBC_SHA"), None);
        assert_eq!(Curve::from_name("P-256"), Some(Curve::Secp256r1));
        assert_eq!(
            Curve::from_name("X25519MLKEM768"),
            Some(Curve::X25519MlKem768)
        );
        assert_eq!(TlsVersion::from_name("TLSv1.3"), Some(TlsVersion::V1_3));
        assert_eq!(TlsVersion::from_name("1.1"), None);
        assert_eq!(Cipher::all().count(), 9);
    }
}
