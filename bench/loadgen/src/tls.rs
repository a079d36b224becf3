//! TLS for sipload (`--transport tls`), with rustls: the UAC's connection
//! to the proxy, and each UAS endpoint's listener, which presents
//! `--tls-cert`. A load generator checks nothing of the proxy's
//! certificate (it measures the proxy, not itself): the client verifier
//! accepts any.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, SignatureScheme,
};
use std::path::Path;
use std::sync::Arc;

/// The client and server configs of a run.
#[derive(Clone, Debug)]
pub struct Tls {
    client: Arc<ClientConfig>,
    server: Option<Arc<ServerConfig>>,
}

impl Tls {
    /// The configs: the server's (for UAS endpoints) from `cert` and `key`
    /// when given.
    pub fn new(cert_key: Option<(&Path, &Path)>) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(Arc::clone(&provider))))
            .with_no_client_auth();
        let server = match cert_key {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{}: {e:?}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: {e:?}", key.display()))?;
                let config = ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_no_client_auth()
                    .with_single_cert(chain, key)
                    .map_err(|e| e.to_string())?;
                Some(Arc::new(config))
            }
            None => None,
        };
        Ok(Tls {
            client: Arc::new(client),
            server,
        })
    }

    /// A client connection's state.
    pub fn client(&self) -> Result<rustls::Connection, String> {
        let name = ServerName::try_from("sipload.invalid").map_err(|e| e.to_string())?;
        let mut c =
            ClientConnection::new(Arc::clone(&self.client), name).map_err(|e| e.to_string())?;
        c.set_buffer_limit(None);
        Ok(rustls::Connection::Client(c))
    }

    /// An accepted connection's state (`None` without a certificate).
    pub fn server(&self) -> Option<rustls::Connection> {
        let config = self.server.as_ref()?;
        let mut c = rustls::ServerConnection::new(Arc::clone(config)).ok()?;
        c.set_buffer_limit(None);
        Some(rustls::Connection::Server(c))
    }
}

/// Accepts any server certificate (see the module documentation).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
