//! Header policy of a peer and direction: headers removed, replaced or
//! added, or only an allowed set let through (what may leave toward a
//! carrier: no internal `X-` headers), as splicer edits.
//!
//! Names match in any case and in compact form (`s` is `Subject`); a
//! name ending in `*` matches every header that starts with it (`X-*`).
//! The headers SIP itself runs on ([`NEEDED`]) are never removed or
//! replaced, and an allow-list always lets them through.

use sip::{Header, HeaderName, Message, Splicer};

/// A header name to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// One with a compact form or the proxy knows: matched in any form.
    Known(HeaderName),
    /// Any other, lower case.
    Exact(Box<[u8]>),
    /// `X-*`: every name that starts with it (lower case, without `*`).
    Prefix(Box<[u8]>),
}

impl Name {
    /// The name as written in a config (`None` when empty).
    pub fn parse(s: &str) -> Option<Name> {
        if s.is_empty() || s == "*" {
            return None;
        }
        if let Some(p) = s.strip_suffix('*') {
            return Some(Name::Prefix(p.to_ascii_lowercase().into_bytes().into()));
        }
        Some(match HeaderName::lookup(s.as_bytes()) {
            HeaderName::Other => Name::Exact(s.to_ascii_lowercase().into_bytes().into()),
            known => Name::Known(known),
        })
    }

    /// Whether header `h` of `m` has this name.
    pub fn matches(&self, m: &Message<'_>, h: &Header) -> bool {
        let name = &m.buf()[h.name_span.range()];
        match self {
            Name::Known(k) => h.name == *k,
            Name::Exact(n) => h.name == HeaderName::Other && name.eq_ignore_ascii_case(n),
            Name::Prefix(p) => name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p),
        }
    }
}

/// The headers every SIP message runs on, by the name the proxy knows
/// them by: routing, transactions, dialogs, framing, extensions,
/// authentication and events. Never removed by a policy.
const NEEDED_KNOWN: &[HeaderName] = &[
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::MaxForwards,
    HeaderName::ContentLength,
    HeaderName::ContentType,
    HeaderName::ContentEncoding,
    HeaderName::Contact,
    HeaderName::Route,
    HeaderName::RecordRoute,
    HeaderName::Path,
    HeaderName::Require,
    HeaderName::ProxyRequire,
    HeaderName::Supported,
    HeaderName::Unsupported,
    HeaderName::Authorization,
    HeaderName::ProxyAuthorization,
    HeaderName::WwwAuthenticate,
    HeaderName::ProxyAuthenticate,
    HeaderName::Allow,
    HeaderName::Accept,
    HeaderName::Expires,
    HeaderName::MinExpires,
    HeaderName::Event,
    HeaderName::AllowEvents,
    HeaderName::ReferTo,
    HeaderName::SessionExpires,
    HeaderName::RetryAfter,
];

/// The rest of [`NEEDED_KNOWN`], by name (lower case).
const NEEDED_OTHER: &[&[u8]] = &[
    b"subscription-state",
    b"rseq",
    b"rack",
    b"min-se",
    b"content-disposition",
];

/// The names of what SIP needs, for the README and error messages.
pub const NEEDED: &str = "Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length, \
    Content-Type, Content-Encoding, Content-Disposition, Contact, Route, Record-Route, Path, \
    Require, Proxy-Require, Supported, Unsupported, Allow, Accept, Expires, Min-Expires, \
    Authorization, Proxy-Authorization, WWW-Authenticate, Proxy-Authenticate, Event, \
    Allow-Events, Subscription-State, Refer-To, Session-Expires, Min-SE, RSeq, RAck, \
    Retry-After";

/// Whether `name` (as a config writes it) is one SIP needs.
pub fn is_needed(name: &Name) -> bool {
    match name {
        Name::Known(k) => NEEDED_KNOWN.contains(k),
        Name::Exact(n) => NEEDED_OTHER.contains(&&**n),
        // `*` alone is refused when parsed; a prefix may cover needed
        // names (`C*`), which `remove` then leaves alone one by one.
        Name::Prefix(_) => false,
    }
}

/// Whether header `h` of `m` is one SIP needs.
fn needed(m: &Message<'_>, h: &Header) -> bool {
    match h.name {
        HeaderName::Other => {
            let name = &m.buf()[h.name_span.range()];
            NEEDED_OTHER.iter().any(|n| name.eq_ignore_ascii_case(n))
        }
        known => NEEDED_KNOWN.contains(&known),
    }
}

/// One direction's header policy of a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderPolicy {
    /// `remove`.
    pub remove: Vec<Name>,
    /// `allow`: when given, only these (and what SIP needs) pass.
    pub allow: Option<Vec<Name>>,
    /// `replace`: headers of the name removed and the line written
    /// instead (added when there was none).
    pub replace: Vec<(Name, Box<[u8]>)>,
    /// `add`: lines added, `Name: value` without CRLF.
    pub add: Vec<Box<[u8]>>,
}

impl HeaderPolicy {
    /// The policy changes nothing.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.allow.is_none()
            && self.replace.is_empty()
            && self.add.is_empty()
    }

    /// Writes the policy's edits of `m` into `sp`.
    pub fn apply(&self, sp: &mut Splicer, m: &Message<'_>) {
        if self.is_empty() {
            return;
        }
        // Before the last header line: after every other header, and
        // always inside a terminated header section. Written first, so
        // that it comes before the removal of that line when the policy
        // removes it (the splicer skips an edit inside a removed range).
        if !self.replace.is_empty() || !self.add.is_empty() {
            if let Some(last) = m.headers().last() {
                let lines = self.replace.iter().map(|(_, l)| l).chain(&self.add);
                sp.insert_with(last.line.start as usize, |w| {
                    for l in lines {
                        w.extend_from_slice(l);
                        w.extend_from_slice(b"\r\n");
                    }
                });
            }
        }
        for h in m.headers() {
            if needed(m, h) {
                continue;
            }
            let removed = self.remove.iter().any(|n| n.matches(m, h))
                || self.replace.iter().any(|(n, _)| n.matches(m, h))
                || self
                    .allow
                    .as_ref()
                    .is_some_and(|a| !a.iter().any(|n| n.matches(m, h)));
            if removed {
                sp.remove(h.line.range());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(policy: &HeaderPolicy, msg: &str) -> String {
        let mut index = sip::HeaderIndex::new();
        let m = sip::parse(msg.as_bytes(), &mut index).expect("parses");
        let mut sp = Splicer::new();
        policy.apply(&mut sp, &m);
        let mut out = Vec::new();
        sp.write_message(&m, &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    const MSG: &str = "INVITE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
        From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
        s: compact subject\r\nX-Internal-Route: pool-7\r\nx-internal-cost: 3\r\n\
        User-Agent: pbx\r\nDiversion: <sip:9@h>\r\nContent-Length: 0\r\n\r\n";

    fn names(v: &[&str]) -> Vec<Name> {
        v.iter().filter_map(|n| Name::parse(n)).collect()
    }

    #[test]
    fn remove_matches_any_case_compact_forms_and_prefixes() {
        let p = HeaderPolicy {
            remove: names(&["Subject", "X-Internal-*"]),
            ..HeaderPolicy::default()
        };
        let out = run(&p, MSG);
        assert!(!out.contains("compact subject"), "{out}");
        assert!(!out.to_ascii_lowercase().contains("x-internal"), "{out}");
        assert!(out.contains("User-Agent: pbx\r\nDiversion"), "{out}");
        // A line added where a removed one was is still written.
        let last = "INVITE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            Call-ID: c\r\nX-Internal: 1\r\n\r\n";
        let p = HeaderPolicy {
            remove: names(&["X-Internal"]),
            add: vec![(*b"X-Carrier: a").into()],
            ..HeaderPolicy::default()
        };
        assert!(run(&p, last).ends_with("Call-ID: c\r\nX-Carrier: a\r\n\r\n"));
    }

    #[test]
    fn an_allow_list_keeps_only_its_names_and_what_sip_needs() {
        let p = HeaderPolicy {
            allow: Some(names(&["Diversion"])),
            ..HeaderPolicy::default()
        };
        let out = run(&p, MSG);
        for gone in ["compact subject", "X-Internal", "x-internal", "User-Agent"] {
            assert!(!out.contains(gone), "{gone}: {out}");
        }
        for kept in [
            "Via:",
            "From:",
            "To:",
            "Call-ID:",
            "CSeq:",
            "Diversion:",
            "Content-Length:",
        ] {
            assert!(out.contains(kept), "{kept}: {out}");
        }
    }

    #[test]
    fn replace_writes_one_line_in_place_of_all_and_add_appends() {
        let p = HeaderPolicy {
            replace: vec![
                (
                    Name::parse("User-Agent").expect("name"),
                    (*b"User-Agent: edge").into(),
                ),
                (
                    Name::parse("X-Absent").expect("name"),
                    (*b"X-Absent: now").into(),
                ),
            ],
            add: vec![(*b"X-Carrier: a").into()],
            ..HeaderPolicy::default()
        };
        let out = run(&p, MSG);
        assert!(!out.contains("User-Agent: pbx"), "{out}");
        assert!(
            out.ends_with(
                "User-Agent: edge\r\nX-Absent: now\r\nX-Carrier: a\r\nContent-Length: 0\r\n\r\n"
            ),
            "{out}"
        );
        // What SIP needs is never removed, whatever a policy names.
        let p = HeaderPolicy {
            remove: names(&["C*", "Call-ID"]),
            ..HeaderPolicy::default()
        };
        let out = run(&p, MSG);
        assert!(out.contains("Call-ID: c\r\nCSeq: 1 INVITE"), "{out}");
        assert!(is_needed(&Name::parse("v").expect("name")));
        assert!(is_needed(&Name::parse("RSeq").expect("name")));
        assert!(!is_needed(&Name::parse("Diversion").expect("name")));
    }
}
