//! Reading the config file, resolving its destinations' host names and
//! reading the certificates it names: the I/O the sans-IO `edge::config`
//! parser leaves to the daemon.

use edge::config::{Config, ConfigError, Resolve};
use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;

/// The system resolver (getaddrinfo), asked once per destination name
/// when the file is loaded: the first address it returns.
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

/// Reads and parses the configuration file at `path`; an unreadable file is
/// an error with line 0.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(file.as_str(), 0, "", format!("cannot read: {e}")))?;
    edge::config::parse_with(&text, &file, &SystemDns)
}

/// A config file as it runs: the config, and its TLS material built
/// from the certificate files it names (checked: see [`crate::tls::load`]).
pub struct Loaded {
    /// The config.
    pub cfg: Config,
    /// Server and client TLS configs, and warnings about certificates.
    pub tls: crate::tls::Loaded,
}

/// [`load`], and the certificates and keys the file names.
pub fn load_all(path: &Path) -> Result<Loaded, ConfigError> {
    let cfg = load(path)?;
    let tls = crate::tls::load(
        &cfg,
        &path.display().to_string(),
        std::time::SystemTime::now(),
    )?;
    Ok(Loaded { cfg, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reports_io_errors_with_line_zero() {
        let e = load(Path::new("/nonexistent/sipedge.toml")).unwrap_err();
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
        let cfg = edge::config::parse_with(text, "t.toml", &SystemDns).expect("resolves");
        assert!(cfg.edges[0].destinations[0].addr.ip().is_loopback());
        let e = edge::config::parse(text, "t.toml").expect_err("no resolver");
        assert_eq!((e.line, e.key.as_str()), (6, "uri"), "{e}");
    }
}
