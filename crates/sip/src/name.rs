//! Header names: the ones a proxy acts on, by full and compact form.

/// A header the proxy knows by name; everything else is [`HeaderName::Other`].
///
/// Compact forms (RFC 3261 §7.3.3 and the IANA registry) map to the same
/// variant, so code never has to think about `v:` versus `Via:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    ContentLength,
    ContentType,
    ContentEncoding,
    Contact,
    Route,
    RecordRoute,
    Path,
    Require,
    ProxyRequire,
    Supported,
    Unsupported,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    Allow,
    Accept,
    Expires,
    MinExpires,
    Timestamp,
    Event,
    AllowEvents,
    Subject,
    ReferTo,
    ReferredBy,
    AcceptContact,
    RejectContact,
    RequestDisposition,
    SessionExpires,
    Identity,
    IdentityInfo,
    UserAgent,
    Server,
    RetryAfter,
    Other,
}

/// (full name, compact letter or 0, variant). The compact letters are the
/// full IANA list: a b c d e f i j k l m n o r s t u v x y.
const TABLE: &[(&str, u8, HeaderName)] = &[
    ("Via", b'v', HeaderName::Via),
    ("From", b'f', HeaderName::From),
    ("To", b't', HeaderName::To),
    ("Call-ID", b'i', HeaderName::CallId),
    ("CSeq", 0, HeaderName::CSeq),
    ("Max-Forwards", 0, HeaderName::MaxForwards),
    ("Content-Length", b'l', HeaderName::ContentLength),
    ("Content-Type", b'c', HeaderName::ContentType),
    ("Content-Encoding", b'e', HeaderName::ContentEncoding),
    ("Contact", b'm', HeaderName::Contact),
    ("Route", 0, HeaderName::Route),
    ("Record-Route", 0, HeaderName::RecordRoute),
    ("Path", 0, HeaderName::Path),
    ("Require", 0, HeaderName::Require),
    ("Proxy-Require", 0, HeaderName::ProxyRequire),
    ("Supported", b'k', HeaderName::Supported),
    ("Unsupported", 0, HeaderName::Unsupported),
    ("Authorization", 0, HeaderName::Authorization),
    ("Proxy-Authorization", 0, HeaderName::ProxyAuthorization),
    ("WWW-Authenticate", 0, HeaderName::WwwAuthenticate),
    ("Proxy-Authenticate", 0, HeaderName::ProxyAuthenticate),
    ("Allow", 0, HeaderName::Allow),
    ("Accept", 0, HeaderName::Accept),
    ("Expires", 0, HeaderName::Expires),
    ("Min-Expires", 0, HeaderName::MinExpires),
    ("Timestamp", 0, HeaderName::Timestamp),
    ("Event", b'o', HeaderName::Event),
    ("Allow-Events", b'u', HeaderName::AllowEvents),
    ("Subject", b's', HeaderName::Subject),
    ("Refer-To", b'r', HeaderName::ReferTo),
    ("Referred-By", b'b', HeaderName::ReferredBy),
    ("Accept-Contact", b'a', HeaderName::AcceptContact),
    ("Reject-Contact", b'j', HeaderName::RejectContact),
    ("Request-Disposition", b'd', HeaderName::RequestDisposition),
    ("Session-Expires", b'x', HeaderName::SessionExpires),
    ("Identity", b'y', HeaderName::Identity),
    ("Identity-Info", b'n', HeaderName::IdentityInfo),
    ("User-Agent", 0, HeaderName::UserAgent),
    ("Server", 0, HeaderName::Server),
    ("Retry-After", 0, HeaderName::RetryAfter),
];

impl HeaderName {
    /// Looks a header name up, case-insensitively, by full or compact form.
    pub fn lookup(name: &[u8]) -> HeaderName {
        let Some(&first) = name.first() else {
            return HeaderName::Other;
        };
        if name.len() == 1 {
            let c = first.to_ascii_lowercase();
            return TABLE
                .iter()
                .find(|(_, short, _)| *short == c)
                .map_or(HeaderName::Other, |&(_, _, n)| n);
        }
        // Candidates share length and first letter: usually one or two.
        let c = first.to_ascii_lowercase();
        TABLE
            .iter()
            .filter(|(full, _, _)| {
                full.len() == name.len() && full.as_bytes()[0].to_ascii_lowercase() == c
            })
            .find(|(full, _, _)| full.as_bytes().eq_ignore_ascii_case(name))
            .map_or(HeaderName::Other, |&(_, _, n)| n)
    }

    /// The canonical full name (`"Other"` has none and gives `""`).
    pub fn full(self) -> &'static str {
        TABLE
            .iter()
            .find(|(_, _, n)| *n == self)
            .map_or("", |&(full, _, _)| full)
    }

    /// The compact form, where the registry defines one.
    pub fn compact(self) -> Option<u8> {
        TABLE
            .iter()
            .find(|(_, c, n)| *n == self && *c != 0)
            .map(|&(_, c, _)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compact_form_maps_to_its_full_name() {
        let letters = b"abcdefijklmnorstuvxy";
        for &l in letters {
            let by_short = HeaderName::lookup(&[l]);
            assert_ne!(by_short, HeaderName::Other, "compact form {}", l as char);
            assert_eq!(HeaderName::lookup(by_short.full().as_bytes()), by_short);
            assert_eq!(HeaderName::lookup(&[l.to_ascii_uppercase()]), by_short);
            assert_eq!(by_short.compact(), Some(l));
        }
        assert_eq!(HeaderName::lookup(b"q"), HeaderName::Other);
    }

    #[test]
    fn full_names_are_case_insensitive() {
        assert_eq!(HeaderName::lookup(b"MaX-fOrWaRdS"), HeaderName::MaxForwards);
        assert_eq!(HeaderName::lookup(b"call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::lookup(b"X-Custom"), HeaderName::Other);
    }
}
