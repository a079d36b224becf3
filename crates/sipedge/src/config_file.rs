//! Reading the config file, looking up its destinations' host names and
//! reading the certificates it names: the I/O the sans-IO `edge::config`
//! parser leaves to the daemon.

use crate::dns::Wanted;
use edge::config::{Config, ConfigError, Resolve, Transport};
use edge::outbound::{Answer, Target};
use std::cell::Cell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How soon a name whose lookup failed, keeping its last servers, is
/// asked again: the failure may pass.
const RETRY_FAILED: Duration = Duration::from_secs(30);

/// The system resolver (getaddrinfo): the address of a name, for what
/// needs only that.
pub struct SystemDns;

impl Resolve for SystemDns {
    fn resolve(&self, host: &str) -> Result<IpAddr, String> {
        match (host, 0).to_socket_addrs() {
            Ok(mut addrs) => addrs
                .next()
                .map(|a| a.ip())
                .ok_or_else(|| format!("host name {host:?} has no address")),
            Err(e) => Err(format!("cannot resolve host name {host:?}: {e}")),
        }
    }
}

/// What each destination name last resolved to, for as long as the
/// process runs: a later lookup that fails keeps it (and says so).
fn last_good() -> &'static Mutex<HashMap<String, Vec<Target>>> {
    static LAST: OnceLock<Mutex<HashMap<String, Vec<Target>>>> = OnceLock::new();
    LAST.get_or_init(Mutex::default)
}

/// Destination names looked up by RFC 3263 (NAPTR, SRV, A/AAAA) with
/// hickory-resolver, on a runtime of its own (the parse is synchronous
/// and may run where a runtime already is: see [`parse_text`]).
struct Rfc3263 {
    rt: tokio::runtime::Runtime,
    servers: Vec<SocketAddr>,
    resolver: std::cell::OnceCell<Result<hickory_resolver::TokioResolver, String>>,
    /// When the earliest answer used expires.
    until: Cell<Option<Instant>>,
}

impl Resolve for Rfc3263 {
    fn resolve(&self, host: &str) -> Result<IpAddr, String> {
        SystemDns.resolve(host)
    }

    fn locate(
        &self,
        key: &str,
        host: &str,
        _port: u16,
        _transport: Transport,
    ) -> Result<Vec<Target>, String> {
        let w = Wanted::from_key(key).ok_or_else(|| format!("{host:?} is not a host name"))?;
        let resolver = self.resolver.get_or_init(|| {
            self.rt
                .block_on(async { crate::dns::resolver(&self.servers) })
        });
        let (answer, until) = match resolver {
            Ok(r) => self.rt.block_on(crate::dns::locate(r, &w)),
            Err(e) => {
                tracing::warn!("{e}");
                (Answer::Failed, Instant::now())
            }
        };
        let why = match answer {
            Answer::Targets(found) => {
                let at = Instant::now() + crate::dns::held_for(until);
                self.until
                    .set(Some(self.until.get().map_or(at, |u| u.min(at))));
                let mut last = last_good().lock().unwrap_or_else(|e| e.into_inner());
                last.insert(key.to_owned(), found.clone());
                return Ok(found);
            }
            Answer::NoSuchName => {
                "DNS names no SIP server for it (no NAPTR, SRV or address records)"
            }
            Answer::Failed => "its DNS lookup failed",
        };
        let last = last_good().lock().unwrap_or_else(|e| e.into_inner());
        match last.get(key) {
            Some(found) => {
                tracing::warn!(name = key, "{why}: the servers it had last stay");
                let at = Instant::now() + RETRY_FAILED;
                self.until
                    .set(Some(self.until.get().map_or(at, |u| u.min(at))));
                Ok(found.clone())
            }
            None => Err(format!("{host:?}: {why}")),
        }
    }
}

/// A config file's text, parsed, and when the DNS answers of its
/// destinations' names run out (`None`: it names none).
pub struct Parsed {
    /// The config.
    pub cfg: Config,
    /// The text it was parsed from: what a DNS refresh parses again.
    pub text: String,
    /// When to look the destinations' names up again.
    pub dns_until: Option<Instant>,
}

/// Parses `text` (of file `file`), looking destination names up with
/// `servers` — those of a running node (its `[node] dns` is read at start
/// only) — or else those of the text's own `[node] dns`, or else
/// /etc/resolv.conf's. Runs on a thread of its own, which may block on
/// DNS whatever runtime the caller is in.
pub fn parse_text(
    text: String,
    file: &str,
    servers: Option<Vec<SocketAddr>>,
) -> Result<Parsed, ConfigError> {
    let servers = match servers {
        Some(s) => s,
        None => edge::config::dns_of(&text, file)?,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    ConfigError::new(file, 0, "", format!("cannot start the DNS runtime: {e}"))
                })?;
            let dns = Rfc3263 {
                rt,
                servers,
                resolver: std::cell::OnceCell::new(),
                until: Cell::new(None),
            };
            let cfg = edge::config::parse_with(&text, file, &dns)?;
            Ok(Parsed {
                cfg,
                dns_until: dns.until.get(),
                text: text.clone(),
            })
        })
        .join()
        .unwrap_or_else(|_| Err(ConfigError::new(file, 0, "", "reading the config stopped")))
    })
}

/// Reads and parses the configuration file at `path` (see
/// [`parse_text`] for `servers`); an unreadable file is an error with
/// line 0.
pub fn load(path: &Path, servers: Option<Vec<SocketAddr>>) -> Result<Parsed, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(file.as_str(), 0, "", format!("cannot read: {e}")))?;
    parse_text(text, &file, servers)
}

/// A config file as it runs: the config, and its TLS material built
/// from the certificate files it names (checked: see [`crate::tls::load`]).
pub struct Loaded {
    /// The config, its text and its DNS answers' expiry.
    pub parsed: Parsed,
    /// Server and client TLS configs, and warnings about certificates.
    pub tls: crate::tls::Loaded,
}

/// [`load`], and the certificates and keys the file names.
pub fn load_all(path: &Path) -> Result<Loaded, ConfigError> {
    let parsed = load(path, None)?;
    let tls = crate::tls::load(
        &parsed.cfg,
        &path.display().to_string(),
        std::time::SystemTime::now(),
    )?;
    Ok(Loaded { parsed, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reports_io_errors_with_line_zero() {
        let e = load(Path::new("/nonexistent/sipedge.toml"), None)
            .err()
            .expect("an error");
        assert_eq!(e.line, 0);
        assert_eq!(e.file, "/nonexistent/sipedge.toml");
        assert!(
            e.to_string()
                .starts_with("/nonexistent/sipedge.toml: cannot read:"),
            "{e}"
        );
    }

    #[test]
    fn names_resolve_through_the_system_and_literals_need_no_lookup() {
        assert_eq!(
            SystemDns.resolve("localhost").map(|ip| ip.is_loopback()),
            Ok(true)
        );
        assert!(SystemDns.resolve("no-such-host.invalid").is_err());
        let text = r#"[node]
id = "n"
[[edge]]
listen = ["udp:127.0.0.1:5060"]
[[edge.destination]]
uri = "sip:localhost:5070"
"#;
        let p = parse_text(text.to_owned(), "t.toml", None).expect("resolves");
        assert!(p.cfg.edges[0].destinations[0].addr.ip().is_loopback());
        assert!(p.dns_until.is_some(), "a name was looked up");
        let e = edge::config::parse(text, "t.toml").expect_err("no resolver");
        assert_eq!((e.line, e.key.as_str()), (6, "uri"), "{e}");
        let literal = text.replace("localhost", "127.0.0.1");
        let p = parse_text(literal, "t.toml", None).expect("parses");
        assert!(p.dns_until.is_none(), "nothing to look up");
    }
}
