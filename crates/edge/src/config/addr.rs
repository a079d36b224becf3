//! Parsing the address-like strings of a config file: listen entries,
//! `host[:port]` and destination SIP URIs.
//!
//! Each function returns a plain message on error; the caller adds file, line
//! and key. Everything is checked here, once, so the rest of the proxy can
//! trust the values (hickory-dns style: check wire-ish numbers at the boundary).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::model::{HostPort, Transport};

/// Parses a transport name (`udp`, `tcp`, `tls`), ignoring ASCII case as
/// RFC 3261 §19.1.1 does for the `transport` URI parameter.
pub(super) fn transport(name: &str) -> Option<Transport> {
    Transport::from_name(name.as_bytes())
}

/// Parses a listen entry `transport:address`, e.g. `udp:[::1]:5060`.
pub(super) fn listen(entry: &str) -> Result<(Transport, SocketAddr), String> {
    let usage = "expected \"transport:address\" with transport udp, tcp, tls, ws \
                 or wss and an IP address with port, e.g. \"udp:127.0.0.1:5060\" or \"udp:[::1]:5060\"";
    let Some((name, address)) = entry.split_once(':') else {
        return Err(format!("{entry:?}: {usage}"));
    };
    let Some(transport) = transport(name) else {
        return Err(format!("{entry:?}: unknown transport {name:?}; {usage}"));
    };
    // Without a port, the transport's default (5061 for TLS); an IPv6
    // address then needs its brackets, or its last group would read as
    // the port.
    let bare = |a: &str| match a.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().map(IpAddr::V6).ok(),
        None => a.parse::<std::net::Ipv4Addr>().map(IpAddr::V4).ok(),
    };
    let addr: SocketAddr = address
        .parse()
        .ok()
        .or_else(|| bare(address).map(|ip| SocketAddr::new(ip, transport.default_port())))
        .ok_or(())
        .map_err(|_| format!("{entry:?}: {address:?} is not an IP address (with port); {usage}"))?;
    Ok((transport, addr))
}

/// Parses `host[:port]`: `1.2.3.4`, `1.2.3.4:5060`, `[::1]`, `[::1]:5060`,
/// a bare `::1`, or a DNS name with optional port.
///
/// Rejects port 0 and the wildcard addresses, which cannot be routed to.
pub(super) fn host_port(text: &str) -> Result<HostPort, String> {
    let usage = "expected host[:port], e.g. \"203.0.113.5:5060\", \"[2001:db8::1]:5060\" \
                 or \"sip.example.com\"";
    let (host, port) = split_host_port(text).map_err(|m| format!("{text:?}: {m}; {usage}"))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        if ip.is_unspecified() {
            return Err(format!(
                "{text:?}: {ip} is a wildcard address, which cannot be routed to"
            ));
        }
    }
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

/// Splits and checks `host[:port]`, returning the host without brackets.
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    if text.is_empty() {
        return Err("empty".to_owned());
    }
    if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("missing ']' after the IPv6 address".to_owned());
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port_number(port)?),
                None => return Err(format!("unexpected {after:?} after ']'")),
            },
        };
        return Ok((host, port));
    }
    // A bare IPv6 literal: all its colons belong to the address, no port.
    if text.parse::<Ipv6Addr>().is_ok() {
        return Ok((text, None));
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, Some(port_number(port)?)),
        None => (text, None),
    };
    if host.parse::<IpAddr>().is_err() && !is_hostname(host) {
        return Err(format!("{host:?} is not an IP address or host name"));
    }
    Ok((host, port))
}

/// Parses a port, 1..=65535.
fn port_number(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{text:?} is not a port (1-65535)")),
        Ok(port) => Ok(port),
    }
}

/// Whether `name` is a DNS host name: dot-separated labels of letters,
/// digits and inner hyphens (RFC 1123 §2.1), at most 253 characters.
fn is_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The parts of a destination URI that routing needs.
#[derive(Debug)]
pub(super) struct SipUri<'a> {
    /// The host, IPv6 literals without brackets.
    pub host: &'a str,
    /// The explicit port, if any.
    pub port: Option<u16>,
    /// The transport: `;transport=`, else UDP, or TLS for `sips:`.
    pub transport: Transport,
}

/// Parses a destination URI `sip[s]:[user[:password]@]host[:port][;params][?headers]`
/// (RFC 3261 §19.1.1). The user part is allowed and ignored.
pub(super) fn sip_uri(uri: &str) -> Result<SipUri<'_>, String> {
    let (scheme, rest) = uri.split_once(':').ok_or_else(|| {
        format!("{uri:?}: expected a sip: or sips: URI, e.g. \"sip:10.0.0.1:5060\"")
    })?;
    let secure = if scheme.eq_ignore_ascii_case("sip") {
        false
    } else if scheme.eq_ignore_ascii_case("sips") {
        true
    } else {
        return Err(format!(
            "{uri:?}: scheme {scheme:?} is not sip or sips, e.g. \"sip:10.0.0.1:5060\""
        ));
    };
    // '@' cannot appear unescaped in user or password, so the first one ends
    // the userinfo; the userinfo itself may contain ';' and '?'.
    let after_user = rest.split_once('@').map_or(rest, |(_, host)| host);
    let end = after_user.find([';', '?']).unwrap_or(after_user.len());
    let (hostport, tail) = after_user.split_at(end);
    if hostport.is_empty() {
        return Err(format!("{uri:?}: no host"));
    }
    let (host, port) = split_host_port(hostport).map_err(|m| format!("{uri:?}: {m}"))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        if ip.is_unspecified() {
            return Err(format!("{uri:?}: {ip} is a wildcard address"));
        }
    }

    let params = tail.split('?').next().unwrap_or("");
    let mut transport = None;
    for param in params.split(';').filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.eq_ignore_ascii_case("transport") {
            let t = self::transport(value).ok_or_else(|| {
                format!("{uri:?}: transport {value:?} is not supported (udp, tcp, tls, ws or wss)")
            })?;
            transport = Some(t);
        }
    }
    let transport = match (secure, transport) {
        (false, t) => t.unwrap_or(Transport::Udp),
        // sips: means TLS on every hop; ";transport=tcp" is the RFC 3261 way
        // of saying TLS over TCP.
        (true, None | Some(Transport::Tcp | Transport::Tls)) => Transport::Tls,
        (true, Some(Transport::Ws | Transport::Wss)) => Transport::Wss,
        (true, Some(Transport::Udp)) => {
            return Err(format!("{uri:?}: a sips: URI cannot use transport=udp"))
        }
    };
    Ok(SipUri {
        host,
        port,
        transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        let hp = |s| host_port(s).map(|h| h.to_string());
        assert_eq!(hp("1.2.3.4").as_deref(), Ok("1.2.3.4"));
        assert_eq!(hp("[::1]:5060").as_deref(), Ok("[::1]:5060"));
        assert_eq!(hp("::1").as_deref(), Ok("[::1]"));
        assert_eq!(hp("example.com:5070").as_deref(), Ok("example.com:5070"));
        assert_eq!(host_port("[::1]").map(|h| h.host), Ok("::1".to_owned()));
        for bad in [
            "",
            "a:0",
            "a:70000",
            "a:",
            "[::1",
            "[1.2.3.4]",
            "-a.com",
            "a b",
            "0.0.0.0",
            "[::]:5060",
        ] {
            assert!(host_port(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn uri_forms() {
        let u = sip_uri("sip:+1555;npdi@10.0.0.1:5080;lr;transport=TCP?x=@").unwrap();
        assert_eq!(
            (u.host, u.port, u.transport),
            ("10.0.0.1", Some(5080), Transport::Tcp)
        );
        let u = sip_uri("sips:gw.example.com").unwrap();
        assert_eq!(
            (u.host, u.port, u.transport),
            ("gw.example.com", None, Transport::Tls)
        );
        for bad in [
            "10.0.0.1",
            "tel:+1555",
            "sip:",
            "sip:gw@",
            "sip:10.0.0.1;transport=sctp",
            "sips:10.0.0.1;transport=udp",
            "sip:0.0.0.0",
        ] {
            assert!(sip_uri(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn listen_forms() {
        assert_eq!(
            listen("tls:[::1]:5061"),
            Ok((Transport::Tls, "[::1]:5061".parse().unwrap()))
        );
        assert_eq!(
            listen("udp:127.0.0.1"),
            Ok((Transport::Udp, "127.0.0.1:5060".parse().unwrap()))
        );
        assert_eq!(
            listen("tls:[::1]"),
            Ok((Transport::Tls, "[::1]:5061".parse().unwrap()))
        );
        assert!(listen("udp:localhost").is_err());
        assert!(listen("sctp:127.0.0.1:5060").is_err());
        assert!(listen("127.0.0.1:5060").is_err());
    }
}
