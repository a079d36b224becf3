//! TLS (RFC 3261 §26.2, RFC 5630) with rustls: each edge's SIP domains as
//! server configs picked by SNI, and what sipedge verifies a TLS
//! destination by. Built from the config and its certificate files at
//! start and at every reload ([`load`]); a reload stores the next [`Tls`]
//! where the listeners read it, so new handshakes use the new
//! certificates while established connections carry on.
//!
//! The certificate is chosen from the client's SNI here rather than by
//! rustls's resolver, which matches exact names only and returns nothing
//! when a phone sends no SNI (many do): the exact name, then a wildcard
//! domain covering it, then the edge's first domain. Each domain has its
//! own versions, suites, groups and client-certificate policy, so the
//! choice is made on the ClientHello, before the handshake goes on
//! (`LazyConfigAcceptor`).

mod certs;
mod suites;

use edge::config::{Config, ConfigError, Domain, TlsClient};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;

/// The node's TLS material: per edge (in config order), what its TLS
/// listeners present and how it connects to its TLS destinations.
pub struct Tls {
    edges: Vec<EdgeTls>,
}

/// One edge's TLS material.
pub struct EdgeTls {
    /// Its domains, the first the default; empty when it has none.
    domains: Vec<Served>,
    /// Its TLS destinations by address.
    clients: HashMap<SocketAddr, Client>,
    /// For a TLS connection to an address no destination names (the next
    /// hop of a Route toward the outside, a caller whose connection
    /// closed): the edge's `tls_ca` or the system's roots, the address
    /// as the name the certificate must cover.
    outside: Arc<ClientConfig>,
}

/// One domain as its handshakes serve it.
struct Served {
    name: String,
    config: Arc<ServerConfig>,
    /// The leaf certificate, to tell a reload that changed it.
    leaf: CertificateDer<'static>,
}

/// How to connect to one TLS destination.
#[derive(Clone)]
pub struct Client {
    /// Roots, versions and the client certificate, if any.
    pub config: Arc<ClientConfig>,
    /// The name its certificate must cover.
    pub name: ServerName<'static>,
}

/// What [`load`] built, with its warnings (certificates expiring soon).
pub struct Loaded {
    /// The material.
    pub tls: Tls,
    /// One line each, `file:line: key: …`.
    pub warnings: Vec<String>,
}

/// Reads and checks every certificate and key `cfg` names (`file` is the
/// config file, for errors), at `now`. A certificate that is expired or
/// not yet valid, does not cover its domain or does not match its key is
/// an error at its domain's line; one that expires within 14 days is a
/// warning.
pub fn load(cfg: &Config, file: &str, now: SystemTime) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let mut edges = Vec::with_capacity(cfg.edges.len());
    let needs_roots = cfg.edges.iter().any(|e| {
        e.destinations
            .iter()
            .any(|d| d.tls.as_ref().is_some_and(|t| t.ca.is_none()))
            || (e.tls_ca.is_none() && e.listen.iter().any(|l| l.transport.is_secure()))
    });
    let system = Arc::new(if needs_roots {
        system_roots()
    } else {
        RootCertStore::empty()
    });
    for e in &cfg.edges {
        let mut domains = Vec::with_capacity(e.domains.len());
        for d in &e.domains {
            let err =
                |key: &str, m: String| ConfigError::new(file, d.line, format!("domain.{key}"), m);
            let (served, found) = server(d, now).map_err(|(k, m)| err(k, m))?;
            for (k, w) in found {
                warnings.push(err(k, w).to_string());
            }
            domains.push(served);
        }
        // What sipedge presents when a TLS peer asks for a certificate:
        // the destination's client_cert, else the edge's first domain's.
        let identity = match e.domains.first() {
            Some(d) => Some(
                identity(&d.cert, &d.key)
                    .map_err(|(_, m)| ConfigError::new(file, d.line, "domain.cert", m))?,
            ),
            None => None,
        };
        let mut clients = HashMap::new();
        for d in &e.destinations {
            let Some(t) = &d.tls else { continue };
            let client = client(t, &system, identity.as_ref())
                .map_err(|(k, m)| ConfigError::new(file, d.line, k, m))?;
            clients.insert(d.addr, client);
        }
        let roots = match &e.tls_ca {
            Some(ca) => {
                Arc::new(roots(ca).map_err(|m| ConfigError::new(file, e.line, "tls_ca", m))?)
            }
            None => Arc::clone(&system),
        };
        let outside = client_config(roots, identity.as_ref().map(clone_identity))
            .map_err(|(k, m)| ConfigError::new(file, e.line, k, m))?;
        edges.push(EdgeTls {
            domains,
            clients,
            outside,
        });
    }
    Ok(Loaded {
        tls: Tls { edges },
        warnings,
    })
}

/// A certificate chain and its key, as a TLS client presents them.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn clone_identity((chain, key): &Identity) -> Identity {
    (chain.clone(), key.clone_key())
}

/// Reads a chain and its key.
fn identity(cert: &std::path::Path, key: &std::path::Path) -> Result<Identity, KeyError> {
    let chain = certs::chain(cert).map_err(|m| ("client_cert", m))?;
    let key = certs::key(key).map_err(|m| ("client_key", m))?;
    Ok((chain, key))
}

/// A client config trusting `roots` and presenting `identity` when asked.
fn client_config(
    roots: Arc<RootCertStore>,
    identity: Option<Identity>,
) -> Result<Arc<ClientConfig>, KeyError> {
    let builder = ClientConfig::builder_with_provider(suites::provider(&[], &[]))
        .with_safe_default_protocol_versions()
        .map_err(|e| ("uri", format!("{e}")))?
        .with_root_certificates(roots);
    let config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| ("client_key", format!("{e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The system's trusted roots (rustls-native-certs: the distribution's
/// bundle); unreadable ones are skipped.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!("system roots: {e}");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

/// A root store of the CA certificates in `path`.
fn roots(path: &std::path::Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in certs::chain(path)? {
        roots
            .add(c)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

type KeyError = (&'static str, String);

/// One domain's server config, checked.
fn server(d: &Domain, now: SystemTime) -> Result<(Served, Vec<KeyError>), KeyError> {
    let chain = certs::chain(&d.cert).map_err(|m| ("cert", m))?;
    let key = certs::key(&d.key).map_err(|m| ("key", m))?;
    let leaf = chain[0].clone();
    let mut warnings: Vec<KeyError> = certs::check(&leaf, Some(&d.name), now)
        .map_err(|m| ("cert", format!("{}: {m}", d.cert.display())))?
        .map(|w| ("cert", w))
        .into_iter()
        .collect();
    warnings.extend(suites_for_key(d, &leaf)?.map(|w| ("ciphers", w)));
    let provider = suites::provider(&d.ciphers, &d.curves);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&suites::versions(&d.versions))
        .map_err(|e| ("tls_versions", format!("{e}")))?;
    let builder = match &d.client_ca {
        Some(ca) if d.verify_client => {
            let roots = Arc::new(roots(ca).map_err(|m| ("client_ca", m))?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if d.require_client {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| ("client_ca", format!("{}: {e}", ca.display())))?,
            )
        }
        _ => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        let m = match e {
            rustls::Error::InconsistentKeys(_) => {
                format!("{} is not the key of {}", d.key.display(), d.cert.display())
            }
            other => format!("{}: {other}", d.key.display()),
        };
        ("key", m)
    })?;
    Ok((
        Served {
            name: d.name.clone(),
            config: Arc::new(config),
            leaf,
        },
        warnings,
    ))
}

/// TLS 1.2 suites name the key they authenticate with (ECDSA or RSA): a
/// domain offering TLS 1.2 whose `ciphers` have no suite for its
/// certificate's key fails every TLS 1.2 handshake. An error when 1.2 is
/// its only version, else a warning (TLS 1.3 suites fit any key).
fn suites_for_key(d: &Domain, leaf: &CertificateDer<'_>) -> Result<Option<String>, KeyError> {
    use edge::config::TlsVersion;
    if d.ciphers.is_empty() || !d.versions.contains(&TlsVersion::V1_2) {
        return Ok(None);
    }
    let Some(rsa) = certs::is_rsa(leaf.as_ref()) else {
        return Ok(None);
    };
    let (kind, family) = if rsa {
        ("RSA", "_RSA_")
    } else {
        ("ECDSA", "_ECDSA_")
    };
    let fits = d
        .ciphers
        .iter()
        .any(|c| c.version() == TlsVersion::V1_2 && c.name().contains(family));
    if fits {
        return Ok(None);
    }
    let m = format!(
        "no TLS 1.2 suite in ciphers fits the certificate's {kind} key (add a \
         TLS_ECDHE_{kind}_WITH_… suite)"
    );
    if d.versions == [TlsVersion::V1_2] {
        return Err(("ciphers", m));
    }
    Ok(Some(format!("{m}: TLS 1.2 clients cannot connect")))
}

/// How to connect to one TLS destination, checked: `default` is what
/// it presents unless the destination names its own client certificate.
fn client(
    t: &TlsClient,
    system: &Arc<RootCertStore>,
    default: Option<&Identity>,
) -> Result<Client, KeyError> {
    let roots = match &t.ca {
        Some(ca) => Arc::new(roots(ca).map_err(|m| ("ca", m))?),
        None => Arc::clone(system),
    };
    let name = ServerName::try_from(t.server_name.clone())
        .map_err(|e| ("server_name", format!("{:?}: {e}", t.server_name)))?;
    let identity = match &t.client_cert {
        Some((cert, key)) => Some(identity(cert, key)?),
        None => default.map(clone_identity),
    };
    Ok(Client {
        config: client_config(roots, identity)?,
        name,
    })
}

impl Tls {
    /// Edge `index`'s material (empty for an index out of range).
    pub fn edge(&self, index: usize) -> Option<&EdgeTls> {
        self.edges.get(index)
    }

    /// How to connect to `to` from edge `edge`: as its destination at that
    /// address, else as an outside peer whose certificate must cover
    /// `domain` (the SIP domain DNS found it for, RFC 5922) or, without
    /// one, its address. `None` for an edge out of range.
    pub fn client(&self, edge: usize, to: SocketAddr, domain: Option<&str>) -> Option<Client> {
        let e = self.edges.get(edge)?;
        if let Some(c) = e.clients.get(&to) {
            return Some(c.clone());
        }
        let name = domain
            .and_then(|d| ServerName::try_from(d.to_owned()).ok())
            .unwrap_or_else(|| ServerName::IpAddress(to.ip().into()));
        Some(Client {
            config: Arc::clone(&e.outside),
            name,
        })
    }

    /// The domains whose certificate differs from `old`'s, as
    /// `edge/domain`, for a reload's report.
    pub fn renewed(&self, old: &Tls, names: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for ((e, o), edge) in self.edges.iter().zip(&old.edges).zip(names) {
            for d in &e.domains {
                let same = o
                    .domains
                    .iter()
                    .any(|p| p.name == d.name && p.leaf == d.leaf);
                if !same {
                    out.push(format!(
                        "edge {edge}: domain {}: certificate loaded",
                        d.name
                    ));
                }
            }
        }
        out
    }
}

impl EdgeTls {
    /// The server config for a client that sent `sni`: the domain of that
    /// exact name, else a wildcard domain covering it, else the first.
    /// `None` when the edge has no domain.
    fn pick(&self, sni: Option<&str>) -> Option<&Served> {
        if let Some(sni) = sni {
            let sni = sni.to_ascii_lowercase();
            let sni = sni.trim_end_matches('.');
            if let Some(d) = self.domains.iter().find(|d| d.name == sni) {
                return Some(d);
            }
            if let Some(d) = self.domains.iter().find(|d| {
                d.name.starts_with("*.") && edge::config::tls::wildcard_covers(&d.name, sni)
            }) {
                return Some(d);
            }
        }
        self.domains.first()
    }
}

/// An accepted TLS connection, handshake done.
pub struct Accepted {
    /// The stream.
    pub stream: tokio_rustls::server::TlsStream<TcpStream>,
    /// The domain it got.
    pub domain: String,
    /// The client certificate's subject, when one was sent (and verified).
    pub client: Option<String>,
}

/// Completes the server side of a handshake on `stream` for edge `edge`
/// within `limit`.
pub async fn accept(
    tls: &arc_swap::ArcSwap<Tls>,
    edge: usize,
    stream: TcpStream,
    limit: Duration,
) -> Result<Accepted, String> {
    let handshake = async {
        let acceptor =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let start = acceptor.await.map_err(|e| format!("ClientHello: {e}"))?;
        let (config, domain) = {
            let material = tls.load();
            let sni = start.client_hello().server_name().map(str::to_owned);
            let served = material
                .edge(edge)
                .and_then(|e| e.pick(sni.as_deref()))
                .ok_or("the edge has no TLS domain")?;
            (Arc::clone(&served.config), served.name.clone())
        };
        let stream = start
            .into_stream(config)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let client = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| certs::subject(c.as_ref()));
        Ok::<_, String>(Accepted {
            stream,
            domain,
            client,
        })
    };
    tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| "handshake: timed out".to_owned())?
}

/// Completes the client side of a handshake on `stream` to `client`.
pub async fn connect(
    client: Client,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    tokio_rustls::TlsConnector::from(client.config)
        .connect(client.name, stream)
        .await
        .map_err(|e| format!("handshake: {e}"))
}
