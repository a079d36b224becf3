//! `[[edge.domain]]` and the TLS keys of a destination. The files they
//! name are read (and the certificates checked) by the daemon; here only
//! names and combinations are checked, each at its line.

use std::path::PathBuf;

use toml::de::DeValue;

use super::{describe, Result, Table, Value};
use crate::config::tls::{Cipher, Curve, Domain, TlsClient, TlsVersion};

/// Keys of `[[edge.domain]]`.
const DOMAIN_KEYS: &[&str] = &[
    "name",
    "cert",
    "key",
    "tls_versions",
    "ciphers",
    "curves",
    "verify_client",
    "require_client",
    "client_ca",
];

/// Keys of `[[edge.destination]]` that only a TLS destination takes.
pub(super) const DESTINATION_TLS_KEYS: &[&str] =
    &["ca", "server_name", "client_cert", "client_key"];

/// Reads an edge's `[[edge.domain]]` entries (none when absent).
pub(super) fn domains(t: &Table<'_, '_>) -> Result<Vec<Domain>> {
    let cx = t.cx;
    let Some(v) = t.get("domain") else {
        return Ok(Vec::new());
    };
    let DeValue::Array(items) = v.get_ref() else {
        return Err(cx.err(
            v.span().start,
            "domain",
            format!(
                "expected [[edge.domain]] tables (double brackets), found {}",
                describe(v.get_ref())
            ),
        ));
    };
    let mut out: Vec<Domain> = Vec::with_capacity(items.len());
    for item in items {
        let d = domain(&Table {
            prefix: "domain.",
            ..cx.table(item, "domain", "[[edge.domain]]")?
        })?;
        if let Some(other) = out.iter().find(|o| o.name == d.name) {
            return Err(cx.err_line(
                d.line,
                "domain.name",
                format!(
                    "domain {:?} is already listed at line {}",
                    d.name, other.line
                ),
            ));
        }
        out.push(d);
    }
    Ok(out)
}

fn domain(t: &Table<'_, '_>) -> Result<Domain> {
    let cx = t.cx;
    t.check_keys(DOMAIN_KEYS, |_| None)?;
    let name_value = t.required("name", "the SIP domain, e.g. name = \"sip.example.com\"")?;
    let name = cx.string(name_value, "domain.name")?.to_ascii_lowercase();
    domain_name(&name).map_err(|m| cx.err(name_value.span().start, "domain.name", m))?;
    let cert = path(t, "cert", "the certificate chain, a PEM file")?;
    let key = path(t, "key", "the certificate's private key, a PEM file")?;

    let versions = match t.get("tls_versions") {
        None => TlsVersion::ALL.to_vec(),
        Some(v) => {
            let mut out = Vec::new();
            for (s, at) in cx.string_array(v, "domain.tls_versions")? {
                let version = TlsVersion::from_name(s).ok_or_else(|| {
                    let why = if matches!(
                        s.to_ascii_lowercase()
                            .trim_start_matches("tlsv")
                            .trim_start_matches("tls"),
                        "1" | "1.0" | "1.1" | "sslv3" | "ssl3"
                    ) {
                        "is refused by design: TLS 1.1 and older are deprecated (RFC 8996)"
                    } else {
                        "is not a TLS version"
                    };
                    cx.err(
                        at,
                        "domain.tls_versions",
                        format!("{s:?} {why}; expected \"1.2\" and/or \"1.3\""),
                    )
                })?;
                if !out.contains(&version) {
                    out.push(version);
                }
            }
            if out.is_empty() {
                return Err(cx.err(
                    v.span().start,
                    "domain.tls_versions",
                    "must name at least one version: \"1.2\" and/or \"1.3\"",
                ));
            }
            out
        }
    };

    let ciphers = match t.get("ciphers") {
        None => Vec::new(),
        Some(v) => {
            let mut out = Vec::new();
            for (s, at) in cx.string_array(v, "domain.ciphers")? {
                let c = Cipher::from_name(s)
                    .ok_or_else(|| cx.err(at, "domain.ciphers", unknown_cipher(s)))?;
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            for version in &versions {
                if !out.iter().any(|c| c.version() == *version) {
                    return Err(cx.err(
                        v.span().start,
                        "domain.ciphers",
                        format!(
                            "no suite for TLS {} (tls_versions has it): add one of {}",
                            version.name(),
                            Cipher::all()
                                .filter(|c| c.version() == *version)
                                .map(|c| c.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
            out
        }
    };

    let curves = match t.get("curves") {
        None => Vec::new(),
        Some(v) => {
            let mut out = Vec::new();
            for (s, at) in cx.string_array(v, "domain.curves")? {
                let c = Curve::from_name(s).ok_or_else(|| {
                    cx.err(
                        at,
                        "domain.curves",
                        format!(
                            "unknown key-exchange group {s:?} (expected one of: {})",
                            Curve::all()
                                .map(|c| c.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            let classical = out.iter().any(|c| *c != Curve::X25519MlKem768);
            if out.is_empty() || (!classical && versions.contains(&TlsVersion::V1_2)) {
                return Err(cx.err(
                    v.span().start,
                    "domain.curves",
                    "needs x25519, secp256r1 or secp384r1 (TLS 1.2 has no post-quantum group)",
                ));
            }
            out
        }
    };

    let flag = |key: &str| -> Result<bool> {
        t.get(key)
            .map_or(Ok(false), |v| cx.boolean(v, &format!("domain.{key}")))
    };
    let require_client = flag("require_client")?;
    let verify_client = flag("verify_client")? || require_client;
    let client_ca = match t.get("client_ca") {
        Some(_) => Some(path(t, "client_ca", "the client CAs, a PEM file")?),
        None => None,
    };
    if verify_client && client_ca.is_none() {
        let key = if require_client {
            "require_client"
        } else {
            "verify_client"
        };
        let at = t.get(key).map_or(t.at, |v| v.span().start);
        return Err(cx.err(
            at,
            &format!("domain.{key}"),
            "needs client_ca, the CA certificates (PEM) client certificates must chain to",
        ));
    }

    Ok(Domain {
        name,
        cert,
        key,
        versions,
        ciphers,
        curves,
        verify_client,
        require_client,
        client_ca,
        line: cx.line(t.at),
    })
}

/// Checks a domain name: labels of letters, digits and `-`, or `*.` and
/// such a name.
fn domain_name(name: &str) -> std::result::Result<(), String> {
    let bare = name.strip_prefix("*.").unwrap_or(name);
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a domain name; expected e.g. \"sip.example.com\" or \"*.example.com\" \
             (a wildcard covers one label, leftmost)"
        ))
    }
}

/// What is wrong with a cipher suite name sipedge does not offer.
fn unknown_cipher(s: &str) -> String {
    let upper = s.to_ascii_uppercase();
    let legacy = [
        "CBC", "RC4", "3DES", "DES-", "NULL", "EXPORT", "MD5", "_SHA", "-SHA",
    ]
    .iter()
    .any(|w| upper.contains(w) && !upper.contains("GCM") && !upper.contains("POLY1305"))
        || upper.starts_with("TLS_RSA_")
        || upper.starts_with("AES")
        || upper.starts_with("TLS_DHE_");
    let why = if legacy {
        "is not offered: sipedge offers only AEAD suites with forward secrecy (no CBC, RC4, 3DES, \
         static RSA or finite-field DHE)"
    } else {
        "is not a cipher suite sipedge knows"
    };
    format!(
        "{s:?} {why}; expected one of: {}",
        Cipher::all()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The TLS settings of a destination `tls` says is one, from its keys;
/// `host` is the URI's host, the default server name. A TLS key on a
/// destination that is not TLS is an error.
pub(super) fn tls_client(t: &Table<'_, '_>, tls: bool, host: &str) -> Result<Option<TlsClient>> {
    let cx = t.cx;
    if !tls {
        if let Some(key) = DESTINATION_TLS_KEYS.iter().find(|k| t.get(k).is_some()) {
            let at = t.get(key).map_or(t.at, |v| v.span().start);
            return Err(cx.err(
                at,
                key,
                "only for a TLS destination (sips: or ;transport=tls)",
            ));
        }
        return Ok(None);
    }
    let ca = match t.get("ca") {
        Some(_) => Some(path(
            t,
            "ca",
            "the CA certificates to verify the server by, a PEM file",
        )?),
        None => None,
    };
    let server_name = match t.get("server_name") {
        Some(v) => {
            let s = cx.string(v, "server_name")?.to_ascii_lowercase();
            if s.parse::<std::net::IpAddr>().is_err() {
                domain_name(&s)
                    .ok()
                    .filter(|_| !s.starts_with("*."))
                    .ok_or_else(|| {
                        cx.err(
                            v.span().start,
                            "server_name",
                            format!("{s:?} is neither a host name nor an IP address"),
                        )
                    })?;
            }
            s
        }
        None => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
    };
    let client_cert = match (t.get("client_cert"), t.get("client_key")) {
        (None, None) => None,
        (Some(_), Some(_)) => Some((
            path(t, "client_cert", "a client certificate chain, a PEM file")?,
            path(t, "client_key", "the client certificate's key, a PEM file")?,
        )),
        (Some(v), None) | (None, Some(v)) => {
            return Err(cx.err(
                v.span().start,
                if t.get("client_cert").is_some() {
                    "client_cert"
                } else {
                    "client_key"
                },
                "client_cert and client_key go together",
            ))
        }
    };
    Ok(Some(TlsClient {
        ca,
        server_name,
        client_cert,
    }))
}

/// An edge's `tls_ca`: the CAs TLS peers that are not destinations are
/// verified against.
pub(super) fn edge_ca(t: &Table<'_, '_>) -> Result<Option<PathBuf>> {
    match t.get("tls_ca") {
        Some(_) => Ok(Some(path(t, "tls_ca", "CA certificates, a PEM file")?)),
        None => Ok(None),
    }
}

/// An edge's `client_cert_header`: the header that carries a verified
/// client certificate's subject toward the pool. Some domain must verify
/// client certificates.
pub(super) fn client_cert_header(t: &Table<'_, '_>, domains: &[Domain]) -> Result<Option<String>> {
    let cx = t.cx;
    let Some(v) = t.get("client_cert_header") else {
        return Ok(None);
    };
    let name = cx.string(v, "client_cert_header")?;
    let at = v.span().start;
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b));
    if !token {
        return Err(cx.err(
            at,
            "client_cert_header",
            format!("{name:?} is not a header name, e.g. \"X-Client-Cert-Subject\""),
        ));
    }
    if sip::HeaderName::lookup(name.as_bytes()) != sip::HeaderName::Other {
        return Err(cx.err(
            at,
            "client_cert_header",
            format!("{name:?} is a header SIP defines: name one of your own"),
        ));
    }
    if !domains.iter().any(|d| d.verify_client) {
        return Err(cx.err(
            at,
            "client_cert_header",
            "no [[edge.domain]] of this edge verifies client certificates \
             (verify_client or require_client)",
        ));
    }
    Ok(Some(name.to_owned()))
}

/// The file `key` names, relative to the config file's folder unless
/// absolute.
pub(super) fn path(t: &Table<'_, '_>, key: &str, what: &str) -> Result<PathBuf> {
    let named = format!("{}{key}", t.prefix);
    let v: &Value<'_> = t.required(key, what)?;
    let s = t.cx.string(v, &named)?;
    if s.is_empty() {
        return Err(t.cx.err(v.span().start, &named, format!("must be {what}")));
    }
    let p = PathBuf::from(s);
    if p.is_absolute() {
        return Ok(p);
    }
    let dir = std::path::Path::new(t.cx.file)
        .parent()
        .unwrap_or(std::path::Path::new(""));
    Ok(dir.join(p))
}
