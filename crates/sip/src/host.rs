//! Hosts: IPv4 addresses, IPv6 references and domain names.

use crate::error::ParseError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A host as it appears in a URI or a Via sent-by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// A dotted-quad address.
    Ipv4(Ipv4Addr),
    /// An IPv6 reference (written in brackets in URIs and Via).
    Ipv6(Ipv6Addr),
    /// A domain name, as written (compare case-insensitively).
    Name(&'a [u8]),
}

impl<'a> Host<'a> {
    /// Parses a host: `[v6]`, dotted quad, or a host name of letters,
    /// digits, `-`, `.` and `_`.
    pub fn parse(s: &'a [u8]) -> Result<Host<'a>, ParseError> {
        if s.first() == Some(&b'[') {
            if s.last() != Some(&b']') || s.len() < 3 {
                return Err(ParseError::BadHost);
            }
            return parse_v6(&s[1..s.len() - 1]).map(Host::Ipv6);
        }
        if s.is_empty()
            || !s
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
        {
            return Err(ParseError::BadHost);
        }
        if let Some(ip) = parse_ipv4(s) {
            return Ok(Host::Ipv4(ip));
        }
        Ok(Host::Name(s))
    }

    /// The address, when the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::Ipv4(a) => Some(IpAddr::V4(a)),
            Host::Ipv6(a) => Some(IpAddr::V6(a)),
            Host::Name(_) => None,
        }
    }

    /// True when both name the same host: equal addresses, or names equal
    /// ignoring case.
    pub fn same(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            _ => self.ip().is_some() && self.ip() == other.ip(),
        }
    }
}

/// A dotted quad, byte by byte (the standard parser goes through UTF-8
/// checks and is several times slower on this hot path).
pub fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut out = [0u8; 4];
    let mut parts = s.split(|&c| c == b'.');
    for o in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = p.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
        *o = u8::try_from(v).ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(out))
}

/// Parses an IPv6 address without brackets. Tolerates the `:::` form that
/// RFC 3261's ABNF allows before an embedded IPv4 address (RFC 5118 §4.10:
/// implementations must tolerate both).
pub fn parse_v6(s: &[u8]) -> Result<Ipv6Addr, ParseError> {
    let text = std::str::from_utf8(s).map_err(|_| ParseError::BadHost)?;
    if let Ok(a) = text.parse() {
        return Ok(a);
    }
    if let Some(i) = text.find(":::") {
        let mut fixed = [0u8; 64];
        let (head, tail) = (&s[..i], &s[i + 1..]);
        if head.len() + tail.len() <= fixed.len() {
            fixed[..head.len()].copy_from_slice(head);
            fixed[head.len()..head.len() + tail.len()].copy_from_slice(tail);
            let f = &fixed[..head.len() + tail.len()];
            if let Some(a) = std::str::from_utf8(f).ok().and_then(|t| t.parse().ok()) {
                return Ok(a);
            }
        }
    }
    Err(ParseError::BadHost)
}

/// Parses an address that may or may not be in brackets (Via `received`
/// values are written both ways, RFC 5118 §4.5).
pub fn parse_ip(s: &[u8]) -> Option<IpAddr> {
    if s.first() == Some(&b'[') && s.last() == Some(&b']') && s.len() > 2 {
        return parse_v6(&s[1..s.len() - 1]).ok().map(IpAddr::V6);
    }
    if let Some(a) = parse_ipv4(s) {
        return Some(IpAddr::V4(a));
    }
    parse_v6(s).ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_host() {
        assert_eq!(
            Host::parse(b"192.0.2.1").unwrap(),
            Host::Ipv4([192, 0, 2, 1].into())
        );
        assert!(matches!(
            Host::parse(b"[2001:db8::10]").unwrap(),
            Host::Ipv6(_)
        ));
        assert_eq!(
            Host::parse(b"Example.COM").unwrap(),
            Host::Name(b"Example.COM")
        );
        assert_eq!(Host::parse(b"999.1.1.1").unwrap(), Host::Name(b"999.1.1.1"));
        assert_eq!(Host::parse(b"exa mple.com"), Err(ParseError::BadHost));
        assert_eq!(Host::parse(b"[2001:db8::10"), Err(ParseError::BadHost));
        assert_eq!(Host::parse(b""), Err(ParseError::BadHost));
    }

    #[test]
    fn dotted_quads() {
        assert_eq!(parse_ipv4(b"192.0.2.1"), Some([192, 0, 2, 1].into()));
        assert_eq!(parse_ipv4(b"255.255.255.255"), Some(Ipv4Addr::BROADCAST));
        for bad in [
            &b"256.1.1.1"[..],
            b"1.2.3",
            b"1.2.3.4.5",
            b"1..2.3",
            b"1.2.3.4 ",
            b"",
            b"1234.1.1.1",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn three_colon_reference_is_tolerated() {
        let a = Host::parse(b"[2001:db8:::192.0.2.1]").unwrap();
        let b = Host::parse(b"[2001:db8::192.0.2.1]").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn received_with_and_without_brackets() {
        assert_eq!(parse_ip(b"[2001:db8::9:255]"), parse_ip(b"2001:db8::9:255"));
        assert!(parse_ip(b"2001:db8::9:255").is_some());
        assert_eq!(parse_ip(b"10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(parse_ip(b"host"), None);
    }
}
