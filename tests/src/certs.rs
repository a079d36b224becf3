//! Test certificates, made by the test (rcgen): a CA and the leaves it
//! signs, written as PEM files into a test's folder. Nothing here has any
//! value outside the test that made it.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// A certificate authority whose certificate is at [`Ca::cert`].
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert: PathBuf,
    dir: PathBuf,
}

/// A leaf's files.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8).
    pub key: PathBuf,
}

/// How long a leaf is valid, relative to now.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Start, days from now (negative: in the past).
    pub from_days: i64,
    /// End, days from now.
    pub to_days: i64,
}

impl Validity {
    /// From yesterday for a year.
    pub const GOOD: Validity = Validity {
        from_days: -1,
        to_days: 365,
    };
}

impl Ca {
    /// A new CA named `name`, its certificate written to `dir/name.pem`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let (from, to) = dates(Validity::GOOD);
        params.not_before = from;
        params.not_after = to;
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, cert.pem()).expect("write the CA certificate");
        Ca {
            issuer: Issuer::new(params, key),
            cert: path,
            dir: dir.to_path_buf(),
        }
    }

    /// The CA's certificate, PEM.
    pub fn cert(&self) -> &Path {
        &self.cert
    }

    /// A leaf for `names` (DNS names or IP addresses; the first is also
    /// its common name), valid from yesterday for a year, written as
    /// `file.pem` and `file.key`.
    pub fn leaf(&self, file: &str, names: &[&str]) -> Leaf {
        self.leaf_valid(file, names, Validity::GOOD)
    }

    /// [`Ca::leaf`] with an RSA key (2048 bits) instead of ECDSA P-256.
    pub fn leaf_rsa(&self, file: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        self.leaf_with(file, names, Validity::GOOD, key)
    }

    /// [`Ca::leaf`] with the given validity.
    pub fn leaf_valid(&self, file: &str, names: &[&str], validity: Validity) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        self.leaf_with(file, names, validity, key)
    }

    fn leaf_with(&self, file: &str, names: &[&str], validity: Validity, key: KeyPair) -> Leaf {
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("leaf params");
        if let Some(cn) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *cn);
        }
        params
            .distinguished_name
            .push(DnType::OrganizationName, "sipedge test");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let (from, to) = dates(validity);
        params.not_before = from;
        params.not_after = to;
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let leaf = Leaf {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write the key");
        leaf
    }
}

fn dates(v: Validity) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (
        now + Duration::days(v.from_days),
        now + Duration::days(v.to_days),
    )
}
