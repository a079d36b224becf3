//! The versions, cipher suites and key-exchange groups a config names,
//! as rustls's aws-lc-rs provider implements them (aws-lc-rs for the
//! hybrid post-quantum group, which the ring provider lacks).

use edge::config::{Cipher, Curve, TlsVersion};
use rustls::crypto::aws_lc_rs::{self, cipher_suite as cs, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};
use std::sync::Arc;

/// The rustls suite for `c`.
fn suite(c: Cipher) -> SupportedCipherSuite {
    match c {
        Cipher::TLS_AES_128_GCM_SHA256 => cs::TLS13_AES_128_GCM_SHA256,
        Cipher::TLS_AES_256_GCM_SHA384 => cs::TLS13_AES_256_GCM_SHA384,
        Cipher::TLS_CHACHA20_POLY1305_SHA256 => cs::TLS13_CHACHA20_POLY1305_SHA256,
        Cipher::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => {
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        Cipher::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => {
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        Cipher::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        Cipher::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        Cipher::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        Cipher::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
    }
}

/// The rustls group for `c`.
fn group(c: Curve) -> &'static dyn SupportedKxGroup {
    match c {
        Curve::X25519 => kx_group::X25519,
        Curve::Secp256r1 => kx_group::SECP256R1,
        Curve::Secp384r1 => kx_group::SECP384R1,
        Curve::X25519MlKem768 => kx_group::X25519MLKEM768,
    }
}

/// The rustls versions for `versions`.
pub fn versions(versions: &[TlsVersion]) -> Vec<&'static SupportedProtocolVersion> {
    versions
        .iter()
        .map(|v| match v {
            TlsVersion::V1_2 => &rustls::version::TLS12,
            TlsVersion::V1_3 => &rustls::version::TLS13,
        })
        .collect()
}

/// The provider offering exactly `ciphers` and `curves` (rustls's
/// defaults where a list is empty).
pub fn provider(ciphers: &[Cipher], curves: &[Curve]) -> Arc<CryptoProvider> {
    let mut p = aws_lc_rs::default_provider();
    if !ciphers.is_empty() {
        p.cipher_suites = ciphers.iter().map(|c| suite(*c)).collect();
    }
    if !curves.is_empty() {
        p.kx_groups = curves.iter().map(|c| group(*c)).collect();
    }
    Arc::new(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_maps_onto_the_suite_of_that_name() {
        for c in Cipher::all() {
            let rustls_name = format!("{:?}", suite(c).suite());
            let ours = c.name().replacen(
                "TLS_",
                "TLS13_",
                usize::from(c.version() == TlsVersion::V1_3),
            );
            assert_eq!(rustls_name, ours, "{c:?}");
        }
        for c in Curve::all() {
            let name = format!("{:?}", group(c).name()).to_ascii_lowercase();
            assert_eq!(name, c.name(), "{c:?}");
        }
    }
}
