//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966).

use crate::error::ParseError;
use crate::host::Host;
use crate::params::uri_param;

/// The scheme of a URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:`
    Tel,
    /// Anything else (a proxy answers 416 for these in a Request-URI).
    Other,
}

impl Scheme {
    /// The scheme of `uri` without parsing the rest.
    pub fn of(uri: &[u8]) -> Scheme {
        let colon = match uri.iter().position(|&c| c == b':') {
            Some(c) => c,
            None => return Scheme::Other,
        };
        let s = &uri[..colon];
        if s.eq_ignore_ascii_case(b"sip") {
            Scheme::Sip
        } else if s.eq_ignore_ascii_case(b"sips") {
            Scheme::Sips
        } else if s.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        }
    }
}

/// A parsed URI; every part borrows from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    /// sip, sips or tel.
    pub scheme: Scheme,
    /// The user part (tel: the subscriber number), still %-escaped.
    pub user: Option<&'a [u8]>,
    /// The password, if the userinfo has one.
    pub password: Option<&'a [u8]>,
    /// The host (tel URIs have none: `Host::Name(b"")`).
    pub host: Host<'a>,
    /// The host as written, brackets included.
    pub host_text: &'a [u8],
    /// The port, if written.
    pub port: Option<u16>,
    /// The parameters without the leading `;`.
    pub params: &'a [u8],
    /// The headers after `?`, if any.
    pub headers: Option<&'a [u8]>,
}

/// Bytes that may never appear raw in a URI.
fn forbidden(c: u8) -> bool {
    c <= b' ' || c == 0x7f || matches!(c, b'<' | b'>' | b'"')
}

impl<'a> Uri<'a> {
    /// Parses a sip:, sips: or tel: URI. Other schemes are `BadUri` — check
    /// [`Scheme::of`] first to answer them with 416.
    pub fn parse(s: &'a [u8]) -> Result<Uri<'a>, ParseError> {
        if s.iter().any(|&c| forbidden(c)) {
            return Err(ParseError::BadUri);
        }
        let scheme = Scheme::of(s);
        let colon = s
            .iter()
            .position(|&c| c == b':')
            .ok_or(ParseError::BadUri)?;
        let rest = &s[colon + 1..];
        match scheme {
            Scheme::Sip | Scheme::Sips => Self::parse_sip(scheme, rest),
            Scheme::Tel => {
                let semi = rest.iter().position(|&c| c == b';').unwrap_or(rest.len());
                if semi == 0 {
                    return Err(ParseError::BadUri);
                }
                Ok(Uri {
                    scheme,
                    user: Some(&rest[..semi]),
                    password: None,
                    host: Host::Name(b""),
                    host_text: b"",
                    port: None,
                    params: rest.get(semi + 1..).unwrap_or(b""),
                    headers: None,
                })
            }
            Scheme::Other => Err(ParseError::BadUri),
        }
    }

    fn parse_sip(scheme: Scheme, rest: &'a [u8]) -> Result<Uri<'a>, ParseError> {
        // The user part may hold ';', '?', ',' and ':' (RFC 4475 §3.1.1.2
        // and §3.1.1.9); only an unescaped '@' ends it, so take the last one.
        let (user, password, hp) = match rest.iter().rposition(|&c| c == b'@') {
            Some(at) => {
                let ui = &rest[..at];
                let (u, p) = match ui.iter().position(|&c| c == b':') {
                    Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(ParseError::BadUri);
                }
                (Some(u), p, &rest[at + 1..])
            }
            None => (None, None, rest),
        };
        let (host_text, after_host) = if hp.first() == Some(&b'[') {
            let close = hp
                .iter()
                .position(|&c| c == b']')
                .ok_or(ParseError::BadHost)?;
            (&hp[..=close], &hp[close + 1..])
        } else {
            let end = hp
                .iter()
                .position(|&c| matches!(c, b':' | b';' | b'?'))
                .unwrap_or(hp.len());
            (&hp[..end], &hp[end..])
        };
        let host = Host::parse(host_text)?;
        let mut tail = after_host;
        let mut port = None;
        if tail.first() == Some(&b':') {
            let end = tail
                .iter()
                .position(|&c| matches!(c, b';' | b'?'))
                .unwrap_or(tail.len());
            port = Some(parse_port(&tail[1..end])?);
            tail = &tail[end..];
        }
        let (params, headers) = match tail.iter().position(|&c| c == b'?') {
            Some(q) => (&tail[..q], Some(&tail[q + 1..])),
            None => (tail, None),
        };
        let params = params.strip_prefix(b";").unwrap_or(params);
        if !tail.is_empty() && !matches!(tail[0], b';' | b'?') {
            return Err(ParseError::BadUri);
        }
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            host_text,
            port,
            params,
            headers,
        })
    }

    /// A URI parameter (`Some(None)` for a flag such as `lr`).
    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        uri_param(self.params, name)
    }

    /// True for a loose-routing URI (`;lr`, RFC 3261 §16.4).
    pub fn is_loose(&self) -> bool {
        self.param(b"lr").is_some()
    }
}

/// A port: 1 to 5 digits, at most 65535.
pub fn parse_port(s: &[u8]) -> Result<u16, ParseError> {
    if s.is_empty() || s.len() > 5 || !s.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::BadPort);
    }
    crate::lex::parse_u64(s)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(ParseError::BadPort)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_sip_uri() {
        let u = Uri::parse(b"sips:alice:secret@[2001:db8::10]:5071;transport=tcp;lr?subject=x")
            .unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, Some(&b"alice"[..]));
        assert_eq!(u.password, Some(&b"secret"[..]));
        assert_eq!(u.host, Host::Ipv6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5071));
        assert_eq!(u.param(b"transport"), Some(Some(&b"tcp"[..])));
        assert!(u.is_loose());
        assert_eq!(u.headers, Some(&b"subject=x"[..]));
    }

    #[test]
    fn odd_but_valid_user_parts() {
        let u = Uri::parse(b"sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host, Host::Name(b"example.com"));
        let weird = b"sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
        let u = Uri::parse(weird).unwrap();
        assert_eq!(
            u.user,
            Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
        );
        assert_eq!(u.host, Host::Name(b"example.com"));
        assert!(u.params.is_empty());
    }

    #[test]
    fn port_ambiguity_of_rfc5118() {
        let u = Uri::parse(b"sip:user@[2001:db8::10:5070]").unwrap();
        assert_eq!(u.port, None);
        let u = Uri::parse(b"sip:user@[2001:db8::10]:5070").unwrap();
        assert_eq!(u.port, Some(5070));
        assert!(Uri::parse(b"sip:2001:db8::10").is_err());
    }

    #[test]
    fn tel_and_unknown_schemes() {
        let u = Uri::parse(b"tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some(&b"+1-201-555-0123"[..]));
        assert_eq!(
            Scheme::of(b"nobodyKnowsThisScheme:totallyopaquecontent"),
            Scheme::Other
        );
        assert!(Uri::parse(b"soap.beep://192.0.2.103:3002").is_err());
    }

    #[test]
    fn malformed() {
        assert!(Uri::parse(b"<sip:user@example.com>").is_err());
        assert!(Uri::parse(b"sip:user@example.com; lr").is_err());
        assert!(Uri::parse(b"sip:user@host:99999").is_err());
        assert!(Uri::parse(b"sip:@host").is_err());
        assert!(Uri::parse(b"sip:host:5060x").is_err());
    }
}
