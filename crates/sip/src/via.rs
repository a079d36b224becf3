//! Via values (RFC 3261 §20.42, RFC 3581 rport).

use crate::error::ParseError;
use crate::host::Host;
use crate::lex;
use crate::params::Params;
use crate::uri::parse_port;

/// The `rport` parameter of RFC 3581.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rport {
    /// Not asked for.
    Absent,
    /// Asked for: the server fills in the source port.
    Requested,
    /// Filled in by a server.
    Port(u16),
}

/// The RFC 3261 §8.1.1.7 magic cookie that marks a unique branch.
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

/// One Via value; offsets are relative to the value's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// UDP, TCP, TLS, SCTP, WS... as written.
    pub transport: &'a [u8],
    /// The sent-by host.
    pub host: Host<'a>,
    /// The sent-by host as written (brackets included).
    pub host_text: &'a [u8],
    /// The sent-by port, if written.
    pub port: Option<u16>,
    /// The `branch` parameter.
    pub branch: Option<&'a [u8]>,
    /// The `received` parameter.
    pub received: Option<&'a [u8]>,
    /// The `rport` parameter.
    pub rport: Rport,
    /// Where the `;rport[=n]` parameter is written (start, end).
    pub rport_at: Option<(usize, usize)>,
    /// The `maddr` parameter.
    pub maddr: Option<&'a [u8]>,
    /// The `ttl` parameter (0 to 255).
    pub ttl: Option<u8>,
    /// Where the `received` parameter is written (start, end).
    pub received_at: Option<(usize, usize)>,
}

impl<'a> Via<'a> {
    /// Parses one Via value: `SIP / 2.0 / transport sent-by *(; param)`,
    /// white space and folding allowed where RFC 3261 allows them.
    pub fn parse(v: &'a [u8]) -> Result<Via<'a>, ParseError> {
        let mut i = lex::skip_lws(v, 0);
        let mut parts: [&[u8]; 3] = [b""; 3];
        for (n, part) in parts.iter_mut().enumerate() {
            if n > 0 {
                if v.get(i) != Some(&b'/') {
                    return Err(ParseError::BadVia);
                }
                i = lex::skip_lws(v, i + 1);
            }
            let s = i;
            while i < v.len() && (lex::is_token(v[i])) {
                i += 1;
            }
            *part = &v[s..i];
            if part.is_empty() {
                return Err(ParseError::BadVia);
            }
            i = lex::skip_lws(v, i);
        }
        if !parts[0].eq_ignore_ascii_case(b"SIP") || parts[1] != b"2.0" {
            return Err(ParseError::BadVia);
        }
        let transport = parts[2];
        // sent-by
        let hs = i;
        if v.get(i) == Some(&b'[') {
            i += v[i..]
                .iter()
                .position(|&c| c == b']')
                .ok_or(ParseError::BadVia)?
                + 1;
        } else {
            while i < v.len()
                && (v[i].is_ascii_alphanumeric() || matches!(v[i], b'-' | b'.' | b'_'))
            {
                i += 1;
            }
        }
        let host_text = &v[hs..i];
        let host = Host::parse(host_text).map_err(|_| ParseError::BadVia)?;
        let mut port = None;
        let j = lex::skip_lws(v, i);
        if v.get(j) == Some(&b':') {
            let ps = lex::skip_lws(v, j + 1);
            let mut pe = ps;
            while pe < v.len() && v[pe].is_ascii_digit() {
                pe += 1;
            }
            port = Some(parse_port(&v[ps..pe]).map_err(|_| ParseError::BadVia)?);
            i = pe;
        }
        let params = &v[i..];
        let mut via = Via {
            transport,
            host,
            host_text,
            port,
            branch: None,
            received: None,
            rport: Rport::Absent,
            rport_at: None,
            maddr: None,
            ttl: None,
            received_at: None,
        };
        for p in Params::new(params) {
            let p = p.map_err(|_| ParseError::BadVia)?;
            let at = (i + p.start, i + p.end);
            let name = p.name;
            if name.eq_ignore_ascii_case(b"branch") {
                // The branch is what transactions match on (RFC 3261
                // §17.2.3): a token, nothing else.
                let b = p.value.filter(|b| lex::all_token(b));
                via.branch = Some(b.ok_or(ParseError::BadVia)?);
            } else if name.eq_ignore_ascii_case(b"received") {
                via.received = Some(p.value.ok_or(ParseError::BadVia)?);
                via.received_at = Some(at);
            } else if name.eq_ignore_ascii_case(b"rport") {
                via.rport = match p.value {
                    None => Rport::Requested,
                    Some(n) => Rport::Port(parse_port(n).map_err(|_| ParseError::BadVia)?),
                };
                via.rport_at = Some(at);
            } else if name.eq_ignore_ascii_case(b"maddr") {
                via.maddr = Some(p.value.ok_or(ParseError::BadVia)?);
            } else if name.eq_ignore_ascii_case(b"ttl") {
                let t = p.value.and_then(lex::parse_u64).ok_or(ParseError::BadVia)?;
                via.ttl = Some(u8::try_from(t).map_err(|_| ParseError::BadVia)?);
            }
        }
        Ok(via)
    }

    /// True when the branch carries the RFC 3261 magic cookie, so it alone
    /// identifies the transaction (§17.2.3).
    pub fn has_cookie(&self) -> bool {
        self.branch.is_some_and(|b| {
            b.len() > MAGIC_COOKIE.len() && b[..7].eq_ignore_ascii_case(MAGIC_COOKIE)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_via() {
        let v = Via::parse(b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK77;rport;received=10.0.0.1")
            .unwrap();
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.host, Host::Ipv4([192, 0, 2, 1].into()));
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch, Some(&b"z9hG4bK77"[..]));
        assert_eq!(v.rport, Rport::Requested);
        assert_eq!(v.received, Some(&b"10.0.0.1"[..]));
        assert!(v.has_cookie());
        let s = b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK77;rport;received=10.0.0.1";
        let (a, b) = v.rport_at.unwrap();
        assert_eq!(&s[a..b], b";rport");
    }

    #[test]
    fn tortuous_via() {
        let v = Via::parse(b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.branch, Some(&b"390skdjuw"[..]));
        assert!(!v.has_cookie());
        let v = Via::parse(
            b"SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .unwrap();
        assert_eq!(v.host, Host::Name(b"spindle.example.com"));
        assert_eq!(v.branch, Some(&b"z9hG4bK9ikj8"[..]));
    }

    #[test]
    fn ipv6_sent_by_and_received() {
        let v = Via::parse(
            b"SIP/2.0/UDP [2001:db8::9:1]:5070;received=2001:db8::9:255;branch=z9hG4bKas3",
        )
        .unwrap();
        assert!(matches!(v.host, Host::Ipv6(_)));
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received, Some(&b"2001:db8::9:255"[..]));
        let v =
            Via::parse(b"SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(v.received, Some(&b"[2001:db8::9:255]"[..]));
    }

    #[test]
    fn malformed_vias() {
        assert!(Via::parse(b"SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse(b"SIP/2.0 192.0.2.15").is_err());
        assert!(Via::parse(b"SIP/3.0/UDP host").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP host:99999").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP host;ttl=300").is_err());
        assert!(Via::parse(b"").is_err());
        // A control byte or a non-token in the branch, or a control byte
        // in any parameter, is not a Via a proxy may match or forward on.
        assert!(Via::parse(b"SIP/2.0/UDP h;branch=z9hG4bK\x0fab").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP h;branch=\"z9hG4bKab\"").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP h;branch=z9hG4bKab;x=a\x01b").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP h;branch=z9hG4bKab;x=\"a\x01b\"").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP h;branch=z9hG4bKab;x=\xc3\xa9").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP h;branch=z9hG4bKab;received=[::1\x01]").is_err());
        // An IPv6 reference may carry a zone (RFC 6874).
        let v = Via::parse(b"SIP/2.0/UDP h;branch=z9hG4bKab;received=[fe80::1%25eth0]").unwrap();
        assert_eq!(v.received, Some(&b"[fe80::1%25eth0]"[..]));
    }
}
