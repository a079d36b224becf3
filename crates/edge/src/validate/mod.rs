//! Packet validation (the seeds' "SIP Packet Validation"): the checks an
//! edge's `validate` list selects, run on every message it receives, and
//! the failure each one reports.
//!
//! The checks and their failure reasons follow the list operators know from
//! OpenSIPS's `sip_validate()` (which the seeds' list mirrors): a basic set
//! (mandatory headers, framing, the reply checks) plus `sdp`, `headers`,
//! `request-uri`, `from`, `to` and `contact`, and `no-max-forwards` to skip
//! the Max-Forwards check. The proxy's own safety checks (a request it could
//! not route) run whatever is configured; these are the operator's policy.
//!
//! Sans-IO and allocation-free: a function of the parsed message.

mod headers;
mod hostname;
mod sdp;

use std::fmt;

use crate::config::Transport;
use sip::{HeaderName, Message, Method, NameAddr, Uri};

/// One selectable check (a word of an edge's `validate` list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// Mandatory headers, framing, Path, Content-Type with a body, and the
    /// reply checks (405 with Allow, 423 with Min-Expires…).
    Basic,
    /// The SDP body's integrity.
    Sdp,
    /// Every known header's body has its grammar.
    Headers,
    /// The Request-URI parses and its host is a valid host.
    RequestUri,
    /// The From URI parses and its host is a valid host.
    From,
    /// The To URI parses and its host is a valid host.
    To,
    /// Contact is present where required and parses.
    Contact,
    /// Not a check: leaves Max-Forwards out of the basic checks.
    NoMaxForwards,
}

impl Check {
    /// Every word, in the order checks run.
    pub const ALL: [Check; 8] = [
        Check::Basic,
        Check::Headers,
        Check::RequestUri,
        Check::From,
        Check::To,
        Check::Contact,
        Check::Sdp,
        Check::NoMaxForwards,
    ];

    /// The word in config files.
    pub fn name(self) -> &'static str {
        match self {
            Check::Basic => "basic",
            Check::Sdp => "sdp",
            Check::Headers => "headers",
            Check::RequestUri => "request-uri",
            Check::From => "from",
            Check::To => "to",
            Check::Contact => "contact",
            Check::NoMaxForwards => "no-max-forwards",
        }
    }

    /// The check a config word names.
    pub fn from_name(s: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// Why a message failed validation: the seeds' list of reasons. The reason
/// phrase goes into a 400, the token into `X-Validate-Fail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// A header's body does not have its grammar.
    HeaderParse,
    /// No Call-ID.
    NoCallId,
    /// No Content-Length on a stream transport (RFC 3261 §18.3).
    NoContentLength,
    /// Content-Length says more than the message holds.
    BadContentLength,
    /// The SDP body does not parse.
    SdpParse,
    /// No CSeq.
    NoCSeq,
    /// No From.
    NoFrom,
    /// No To.
    NoTo,
    /// No Via.
    NoVia,
    /// The Request-URI does not parse.
    RequestUriParse,
    /// The Request-URI's host has characters a host cannot have.
    RequestUriHost,
    /// No Max-Forwards.
    NoMaxForwards,
    /// No Contact where one is required (INVITE, SUBSCRIBE, NOTIFY, REFER
    /// and their 2xx).
    NoContact,
    /// A Path header in a request other than REGISTER (RFC 3327).
    PathNotRegister,
    /// A 405 without Allow (RFC 3261 §21.4.6).
    NoAllow,
    /// A 423 without Min-Expires (§21.4.17).
    NoMinExpires,
    /// A 407 without Proxy-Authenticate (§21.4.8).
    NoProxyAuthenticate,
    /// A 420 without Unsupported (§21.4.15).
    NoUnsupported,
    /// A 401 without WWW-Authenticate (§21.4.2).
    NoWwwAuthenticate,
    /// A body without Content-Type (§20.15).
    NoContentType,
    /// To does not parse.
    ToParse,
    /// From does not parse.
    FromParse,
    /// The To URI's host is not a valid host.
    ToHost,
    /// The From URI's host is not a valid host.
    FromHost,
    /// A Contact does not parse.
    ContactParse,
}

impl Failure {
    /// Every reason, for counters indexed by reason.
    pub const ALL: [Failure; 25] = [
        Failure::HeaderParse,
        Failure::NoCallId,
        Failure::NoContentLength,
        Failure::BadContentLength,
        Failure::SdpParse,
        Failure::NoCSeq,
        Failure::NoFrom,
        Failure::NoTo,
        Failure::NoVia,
        Failure::RequestUriParse,
        Failure::RequestUriHost,
        Failure::NoMaxForwards,
        Failure::NoContact,
        Failure::PathNotRegister,
        Failure::NoAllow,
        Failure::NoMinExpires,
        Failure::NoProxyAuthenticate,
        Failure::NoUnsupported,
        Failure::NoWwwAuthenticate,
        Failure::NoContentType,
        Failure::ToParse,
        Failure::FromParse,
        Failure::ToHost,
        Failure::FromHost,
        Failure::ContactParse,
    ];

    /// The reason phrase of the 400 (the seeds' wording).
    pub fn reason(self) -> &'static str {
        match self {
            Failure::HeaderParse => "Header Parsing Error",
            Failure::NoCallId => "No Call-ID Header",
            Failure::NoContentLength => "No Content-Length Header",
            Failure::BadContentLength => "Invalid Content-Length",
            Failure::SdpParse => "SDP Body Parsing Error",
            Failure::NoCSeq => "No CSeq Header",
            Failure::NoFrom => "No From Header",
            Failure::NoTo => "No To Header",
            Failure::NoVia => "No Via Header",
            Failure::RequestUriParse => "Request-URI Parse Error",
            Failure::RequestUriHost => "Bad Hostname in Request-URI",
            Failure::NoMaxForwards => "No Max-Forwards Header",
            Failure::NoContact => "No Contact Header",
            Failure::PathNotRegister => "Path in Non-REGISTER Request",
            Failure::NoAllow => "No Allow Header in 405 Reply",
            Failure::NoMinExpires => "No Min-Expires Header in 423 Reply",
            Failure::NoProxyAuthenticate => "No Proxy-Authenticate Header in 407 Reply",
            Failure::NoUnsupported => "No Unsupported Header in 420 Reply",
            Failure::NoWwwAuthenticate => "No WWW-Authenticate Header in 401 Reply",
            Failure::NoContentType => "No Content-Type Header",
            Failure::ToParse => "To Header Parse Error",
            Failure::FromParse => "From Header Parse Error",
            Failure::ToHost => "Bad Hostname in To Header",
            Failure::FromHost => "Bad Hostname in From Header",
            Failure::ContactParse => "Contact Header Parse Error",
        }
    }

    /// The token for `X-Validate-Fail` and counters.
    pub fn token(self) -> &'static str {
        match self {
            Failure::HeaderParse => "header-parse",
            Failure::NoCallId => "no-call-id",
            Failure::NoContentLength => "no-content-length",
            Failure::BadContentLength => "bad-content-length",
            Failure::SdpParse => "sdp-parse",
            Failure::NoCSeq => "no-cseq",
            Failure::NoFrom => "no-from",
            Failure::NoTo => "no-to",
            Failure::NoVia => "no-via",
            Failure::RequestUriParse => "request-uri-parse",
            Failure::RequestUriHost => "request-uri-host",
            Failure::NoMaxForwards => "no-max-forwards",
            Failure::NoContact => "no-contact",
            Failure::PathNotRegister => "path-not-register",
            Failure::NoAllow => "405-no-allow",
            Failure::NoMinExpires => "423-no-min-expires",
            Failure::NoProxyAuthenticate => "407-no-proxy-authenticate",
            Failure::NoUnsupported => "420-no-unsupported",
            Failure::NoWwwAuthenticate => "401-no-www-authenticate",
            Failure::NoContentType => "no-content-type",
            Failure::ToParse => "to-parse",
            Failure::FromParse => "from-parse",
            Failure::ToHost => "to-host",
            Failure::FromHost => "from-host",
            Failure::ContactParse => "contact-parse",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// The checks one edge runs (its `validate` list).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    bits: u16,
}

impl Rules {
    /// The rules of a `validate` list.
    pub fn new(checks: &[Check]) -> Rules {
        let mut r = Rules::default();
        for &c in checks {
            r.bits |= 1 << (c as u16);
        }
        r
    }

    /// True when check `c` is selected.
    pub fn has(self, c: Check) -> bool {
        self.bits & (1 << (c as u16)) != 0
    }

    /// True when nothing is to be checked.
    pub fn is_empty(self) -> bool {
        self.bits & !(1 << (Check::NoMaxForwards as u16)) == 0
    }
}

/// Runs the selected checks on a message received over `transport`; the
/// first failure, in the order of [`Check::ALL`], is returned.
pub fn check(m: &Message<'_>, rules: Rules, transport: Transport) -> Result<(), Failure> {
    if rules.is_empty() {
        return Ok(());
    }
    if rules.has(Check::Basic) {
        basic(m, rules, transport)?;
    }
    if rules.has(Check::Headers) {
        headers::check(m)?;
    }
    if m.is_request() && rules.has(Check::RequestUri) {
        let u = Uri::parse(m.uri()).map_err(|_| Failure::RequestUriParse)?;
        if !hostname::valid(u.host_text) {
            return Err(Failure::RequestUriHost);
        }
    }
    if rules.has(Check::From) {
        uri_of(
            m,
            HeaderName::From,
            Failure::NoFrom,
            Failure::FromParse,
            Failure::FromHost,
        )?;
    }
    if rules.has(Check::To) {
        uri_of(
            m,
            HeaderName::To,
            Failure::NoTo,
            Failure::ToParse,
            Failure::ToHost,
        )?;
    }
    if rules.has(Check::Contact) {
        contact(m)?;
    }
    if rules.has(Check::Sdp) && is_sdp(m) {
        sdp::check(m.body()).map_err(|_| Failure::SdpParse)?;
    }
    Ok(())
}

/// The basic set: what OpenSIPS's `sip_validate()` checks whatever its flags.
fn basic(m: &Message<'_>, rules: Rules, transport: Transport) -> Result<(), Failure> {
    let present = |n| m.first(n).is_some();
    for (name, failure) in [
        (HeaderName::CallId, Failure::NoCallId),
        (HeaderName::CSeq, Failure::NoCSeq),
        (HeaderName::From, Failure::NoFrom),
        (HeaderName::To, Failure::NoTo),
        (HeaderName::Via, Failure::NoVia),
    ] {
        if !present(name) {
            return Err(failure);
        }
    }
    if m.is_request() && !rules.has(Check::NoMaxForwards) && !present(HeaderName::MaxForwards) {
        return Err(Failure::NoMaxForwards);
    }
    if transport != Transport::Udp && !present(HeaderName::ContentLength) {
        return Err(Failure::NoContentLength);
    }
    // The parser refuses a Content-Length beyond the datagram; over UDP a
    // shorter one ends the body there (RFC 3261 §18.3), which is not an
    // error (RFC 4475 §3.1.1.8).
    if m.content_length().is_some_and(|n| n > m.body().len()) {
        return Err(Failure::BadContentLength);
    }
    if !m.body().is_empty() && !present(HeaderName::ContentType) {
        return Err(Failure::NoContentType);
    }
    if m.is_request() && m.method() != Method::Register && present(HeaderName::Path) {
        return Err(Failure::PathNotRegister);
    }
    if let Some(code) = m.status() {
        let needs = match code {
            405 => Some((HeaderName::Allow, Failure::NoAllow)),
            423 => Some((HeaderName::MinExpires, Failure::NoMinExpires)),
            407 => Some((HeaderName::ProxyAuthenticate, Failure::NoProxyAuthenticate)),
            420 => Some((HeaderName::Unsupported, Failure::NoUnsupported)),
            401 => Some((HeaderName::WwwAuthenticate, Failure::NoWwwAuthenticate)),
            _ => None,
        };
        if let Some((name, failure)) = needs {
            if !present(name) {
                return Err(failure);
            }
        }
    }
    Ok(())
}

/// From or To: present, parses, and names a valid host (a non-SIP URI such
/// as `tel:` or `http:` has no host to check, RFC 4475 §3.3.4).
fn uri_of(
    m: &Message<'_>,
    name: HeaderName,
    missing: Failure,
    parse: Failure,
    host: Failure,
) -> Result<(), Failure> {
    let v = m.first_value(name).ok_or(missing)?;
    let n = NameAddr::parse(v).map_err(|_| parse)?;
    if !is_absolute_uri(n.uri) {
        return Err(parse);
    }
    if is_sip_uri(n.uri) {
        let u = n.parse_uri().map_err(|_| parse)?;
        if !hostname::valid(u.host_text) {
            return Err(host);
        }
    }
    Ok(())
}

/// True when `uri` is a URI at all: a scheme (`ALPHA *( ALPHA / DIGIT /
/// "+" / "-" / "." )`, RFC 3261 §25.1), a colon, and something after it
/// of the characters a URI may hold (visible ASCII but `<`, `>`, `"`).
/// `caller@192.0.2.1` has no scheme; `s\xa4p:caller@…` has a byte no
/// scheme may contain.
fn is_absolute_uri(uri: &[u8]) -> bool {
    let Some(colon) = uri.iter().position(|&c| c == b':') else {
        return false;
    };
    let (scheme, rest) = (&uri[..colon], &uri[colon + 1..]);
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    let rest_ok = !rest.is_empty()
        && rest
            .iter()
            .all(|&c| c.is_ascii_graphic() && !matches!(c, b'<' | b'>' | b'"'));
    scheme_ok && rest_ok
}

/// True for a `sip:` or `sips:` URI (the ones whose host is checked).
fn is_sip_uri(uri: &[u8]) -> bool {
    let lower = |n: usize| uri.get(..n).map(<[u8]>::to_ascii_lowercase);
    lower(4).as_deref() == Some(b"sip:") || lower(5).as_deref() == Some(b"sips:")
}

/// Contact: required in INVITE, SUBSCRIBE, NOTIFY and REFER (RFC 3261
/// §8.1.1.8, RFC 6665, RFC 3515) and in a 2xx to an INVITE (§13.3.1.4);
/// every one present parses (or is `*`, in a REGISTER). An RFC 2543 peer
/// (no magic cookie in its Via branch) is not held to RFC 3261's
/// requirement (RFC 4475 §3.4.1).
fn contact(m: &Message<'_>) -> Result<(), Failure> {
    let rfc3261 = m.top_via().is_ok_and(|(_, v)| v.has_cookie());
    let required = rfc3261
        && if m.is_request() {
            matches!(
                m.method(),
                Method::Invite | Method::Subscribe | Method::Notify | Method::Refer
            )
        } else {
            m.status().is_some_and(|c| (200..300).contains(&c))
                && m.cseq().is_ok_and(|c| c.method == b"INVITE")
        };
    let mut any = false;
    for e in m.elements(HeaderName::Contact) {
        any = true;
        if e.text == b"*" && m.method() == Method::Register {
            continue;
        }
        let n = NameAddr::parse(e.text).map_err(|_| Failure::ContactParse)?;
        if !is_absolute_uri(n.uri) {
            return Err(Failure::ContactParse);
        }
        if is_sip_uri(n.uri) {
            n.parse_uri().map_err(|_| Failure::ContactParse)?;
        }
    }
    if required && !any {
        return Err(Failure::NoContact);
    }
    Ok(())
}

/// Whether the body is SDP (Content-Type application/sdp, parameters
/// allowed).
fn is_sdp(m: &Message<'_>) -> bool {
    !m.body().is_empty()
        && m.first_value(HeaderName::ContentType).is_some_and(|v| {
            let t = v.split(|&c| c == b';').next().unwrap_or_default();
            t.trim_ascii().eq_ignore_ascii_case(b"application/sdp")
        })
}

#[cfg(test)]
mod tests;
