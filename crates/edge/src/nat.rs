//! NAT detection: the seven tests operators know from OpenSIPS's
//! `nat_uac_test` (and the seed's "Far End NAT Traversal"), each a pure
//! function of the request and the address it came from.
//!
//! Which tests run is the edge's `nat_test`; a request is behind NAT when
//! any of them fires. What the edge then does about it (rport/received,
//! the flow token as the way back, the SDP rewrite) is the NAT-fix stage's
//! business, not this module's.

use sip::{HeaderName, Host, Message, NameAddr, Uri, Via};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One NAT test. The discriminant is OpenSIPS's `nat_uac_test` flag, so
/// a bitmask users already have means the same here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NatTest {
    /// An RFC 1918 / RFC 6598 address in the Contact.
    PrivateContact = 1,
    /// The top Via's address differs from the source address.
    Received = 2,
    /// An RFC 1918 / RFC 6598 address in the top Via.
    PrivateVia = 4,
    /// An RFC 1918 / RFC 6598 address in the SDP (a `c=` line).
    PrivateSdp = 8,
    /// The source port differs from the top Via's port.
    ViaPort = 16,
    /// The Contact's address differs from the source address.
    ContactAddress = 32,
    /// The Contact's port differs from the source port.
    ContactPort = 64,
}

impl NatTest {
    /// Every test, in flag order.
    pub const ALL: [NatTest; 7] = [
        NatTest::PrivateContact,
        NatTest::Received,
        NatTest::PrivateVia,
        NatTest::PrivateSdp,
        NatTest::ViaPort,
        NatTest::ContactAddress,
        NatTest::ContactPort,
    ];

    /// Its name in `nat_test` and in counters.
    pub fn name(self) -> &'static str {
        match self {
            NatTest::PrivateContact => "private-contact",
            NatTest::Received => "received",
            NatTest::PrivateVia => "private-via",
            NatTest::PrivateSdp => "private-sdp",
            NatTest::ViaPort => "via-port",
            NatTest::ContactAddress => "contact-address",
            NatTest::ContactPort => "contact-port",
        }
    }

    /// The test called `name`.
    pub fn from_name(name: &str) -> Option<NatTest> {
        NatTest::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Its position in [`NatTest::ALL`] (for per-test counters).
    pub fn index(self) -> usize {
        (self as u8).trailing_zeros() as usize
    }
}

/// A set of tests, as OpenSIPS's bitmask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatTests(pub u8);

impl NatTests {
    /// The set holding `tests`.
    pub fn of(tests: &[NatTest]) -> NatTests {
        NatTests(tests.iter().fold(0, |m, &t| m | t as u8))
    }

    /// The set of an OpenSIPS `nat_uac_test` bitmask; `None` when it has a
    /// bit no test stands for.
    pub fn from_flags(flags: u32) -> Option<NatTests> {
        u8::try_from(flags)
            .ok()
            .filter(|f| f & 0x80 == 0)
            .map(NatTests)
    }

    /// True when `t` is in the set.
    pub fn has(self, t: NatTest) -> bool {
        self.0 & t as u8 != 0
    }

    /// True when the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The tests in the set, in flag order.
    pub fn iter(self) -> impl Iterator<Item = NatTest> {
        NatTest::ALL.into_iter().filter(move |&t| self.has(t))
    }
}

/// What the tests look at in one request.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    /// Where the request came from.
    pub source: SocketAddr,
    /// Its top Via.
    pub via: &'a Via<'a>,
    /// Its (first) Contact URI, if any.
    pub contact: Option<&'a Uri<'a>>,
    /// Its body (for the SDP test; empty when it has none).
    pub body: &'a [u8],
}

/// Which of `tests` fire for the request `seen` describes.
pub fn detect(tests: NatTests, seen: &Seen<'_>) -> NatTests {
    let src = seen.source;
    let fired = |t: NatTest| match t {
        NatTest::PrivateContact => seen.contact.is_some_and(|c| private_host(&c.host)),
        NatTest::Received => !same_ip(&seen.via.host, src.ip()),
        NatTest::PrivateVia => private_host(&seen.via.host),
        NatTest::PrivateSdp => sdp_addresses(seen.body).any(|ip| is_private(IpAddr::V4(ip))),
        NatTest::ViaPort => seen.via.port.unwrap_or(5060) != src.port(),
        NatTest::ContactAddress => seen.contact.is_some_and(|c| !same_ip(&c.host, src.ip())),
        NatTest::ContactPort => seen
            .contact
            .is_some_and(|c| c.port.unwrap_or(5060) != src.port()),
    };
    NatTests(
        tests
            .iter()
            .filter(|&t| fired(t))
            .fold(0, |m, t| m | t as u8),
    )
}

/// [`detect`] on a parsed request with top Via `via` from `source`.
pub fn detect_in(tests: NatTests, m: &Message<'_>, via: &Via<'_>, source: SocketAddr) -> NatTests {
    if tests.is_empty() {
        return tests;
    }
    let contact = m
        .first_value(HeaderName::Contact)
        .and_then(|v| NameAddr::parse(v).ok())
        .and_then(|n| Uri::parse(n.uri).ok());
    detect(
        tests,
        &Seen {
            source,
            via,
            contact: contact.as_ref(),
            body: m.body(),
        },
    )
}

/// RFC 1918 private and RFC 6598 shared (carrier-grade NAT) addresses;
/// an IPv4-mapped IPv6 address counts as its IPv4 address.
pub fn is_private(ip: IpAddr) -> bool {
    let v4 = match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => return false,
        },
    };
    let [a, b, ..] = v4.octets();
    v4.is_private() || (a == 100 && (64..128).contains(&b))
}

fn private_host(h: &Host<'_>) -> bool {
    h.ip().is_some_and(is_private)
}

/// True when `h` is the address `ip` (a name never is).
fn same_ip(h: &Host<'_>, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    h.ip() == Some(ip)
}

/// Where, in `body`, the private (RFC 1918 / RFC 6598) IPv4 addresses of
/// its `c=IN IP4 ADDR` lines are: what `nat_sdp` replaces.
pub fn private_sdp_spans(body: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut at = 0;
    body.split(|&b| b == b'\n').filter_map(move |line| {
        let start = at;
        at += line.len() + 1;
        let addr = line.strip_prefix(b"c=IN IP4 ")?;
        let len = addr
            .iter()
            .position(|&b| matches!(b, b'/' | b'\r' | b' '))
            .unwrap_or(addr.len());
        let ip: Ipv4Addr = std::str::from_utf8(&addr[..len]).ok()?.parse().ok()?;
        let from = start + b"c=IN IP4 ".len();
        is_private(IpAddr::V4(ip)).then_some(from..from + len)
    })
}

/// The IPv4 addresses of the body's `c=IN IP4 ADDR` lines.
fn sdp_addresses(body: &[u8]) -> impl Iterator<Item = Ipv4Addr> + '_ {
    body.split(|&b| b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let addr = line.strip_prefix(b"c=IN IP4 ")?;
        let addr = addr.split(|&b| b == b'/').next()?;
        std::str::from_utf8(addr).ok()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE_PUBLIC: &str = "203.0.113.7:40123";

    /// A top Via, a Contact, an SDP address, and the tests that fire.
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [&'a str]);

    /// Which tests fire for a request with top Via `via`, Contact
    /// `contact` and SDP connection address `sdp`, from `source`.
    fn fired(
        via: &str,
        contact: Option<&str>,
        sdp: Option<&str>,
        source: &str,
    ) -> Vec<&'static str> {
        let via = format!("SIP/2.0/UDP {via};branch=z9hG4bK1");
        let via = Via::parse(via.as_bytes()).expect("via");
        let contact = contact.map(|c| format!("sip:alice@{c}"));
        let contact = contact
            .as_ref()
            .map(|c| Uri::parse(c.as_bytes()).expect("uri"));
        let body = sdp.map(|a| format!("v=0\r\no=- 1 1 IN IP4 {a}\r\nc=IN IP4 {a}\r\n"));
        let seen = Seen {
            source: source.parse().expect("source"),
            via: &via,
            contact: contact.as_ref(),
            body: body.as_deref().unwrap_or("").as_bytes(),
        };
        detect(NatTests(0x7f), &seen)
            .iter()
            .map(NatTest::name)
            .collect()
    }

    #[test]
    fn each_test_fires_for_what_it_names_and_nothing_else() {
        // A phone on a public address, talking from where it says: none.
        let none: Vec<&str> = Vec::new();
        assert_eq!(
            fired(
                "203.0.113.7:40123",
                Some("203.0.113.7:40123"),
                Some("203.0.113.7"),
                PHONE_PUBLIC
            ),
            none
        );
        // Behind a NAT that rewrites nothing: every test but none of those
        // that need something to differ from what they compare.
        assert_eq!(
            fired(
                "192.168.1.20:5060",
                Some("192.168.1.20:5060"),
                Some("192.168.1.20"),
                PHONE_PUBLIC
            ),
            [
                "private-contact",
                "received",
                "private-via",
                "private-sdp",
                "via-port",
                "contact-address",
                "contact-port"
            ]
        );
        // (via, contact, sdp, the tests that fire)
        let table: &[Case] = &[
            // A private Contact is also not the source address.
            (
                "203.0.113.7:40123",
                Some("10.0.0.5:40123"),
                None,
                &["private-contact", "contact-address"],
            ),
            ("203.0.113.8:40123", None, None, &["received"]),
            ("203.0.113.7:40124", None, None, &["via-port"]),
            (
                "203.0.113.7:40123",
                None,
                Some("100.64.0.9"),
                &["private-sdp"],
            ),
            (
                "203.0.113.7:40123",
                Some("203.0.113.9:40123"),
                None,
                &["contact-address"],
            ),
            (
                "203.0.113.7:40123",
                Some("203.0.113.7:5060"),
                None,
                &["contact-port"],
            ),
        ];
        for &(via, contact, sdp, want) in table {
            assert_eq!(
                fired(via, contact, sdp, PHONE_PUBLIC),
                want,
                "{via} {contact:?} {sdp:?}"
            );
        }
        // A private Via that matches the source (the edge inside the same
        // network) is private-via alone.
        assert_eq!(
            fired("172.16.0.4:5060", None, None, "172.16.0.4:5060"),
            ["private-via"]
        );
        // A Via or Contact naming a host is not the source address.
        assert_eq!(
            fired(
                "pbx.example.com:40123",
                Some("pbx.example.com:40123"),
                None,
                PHONE_PUBLIC
            ),
            ["received", "contact-address"]
        );
    }

    #[test]
    fn a_parsed_request_is_read_for_its_contact_and_sdp() {
        let text = "INVITE sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1;rport\r\n\
             From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: n1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
             Contact: \"Alice\" <sip:alice@192.168.1.20:5060;transport=udp>;expires=60\r\n\
             Content-Type: application/sdp\r\nContent-Length: 23\r\n\r\n\
             c=IN IP4 192.168.1.20\r\n";
        let mut index = sip::HeaderIndex::new();
        let m = sip::parse(text.as_bytes(), &mut index).expect("parses");
        let top = m.first_value(HeaderName::Via).expect("via");
        let via = Via::parse(top).expect("via parses");
        let all = NatTests(0x7f);
        let fired = detect_in(all, &m, &via, PHONE_PUBLIC.parse().unwrap());
        assert_eq!(fired, all, "behind a NAT that rewrites nothing");
        let from_inside = detect_in(all, &m, &via, "192.168.1.20:5060".parse().unwrap());
        assert_eq!(
            from_inside,
            NatTests::of(&[
                NatTest::PrivateContact,
                NatTest::PrivateVia,
                NatTest::PrivateSdp
            ])
        );
        assert!(detect_in(NatTests(0), &m, &via, PHONE_PUBLIC.parse().unwrap()).is_empty());
    }

    #[test]
    fn private_means_rfc1918_and_rfc6598_only() {
        for p in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "::ffff:192.168.1.1",
        ] {
            assert!(is_private(p.parse().unwrap()), "{p}");
        }
        for p in [
            "172.32.0.1",
            "100.128.0.1",
            "100.63.255.255",
            "8.8.8.8",
            "127.0.0.1",
            "2001:db8::1",
            "fd00::1",
        ] {
            assert!(!is_private(p.parse().unwrap()), "{p}");
        }
    }

    #[test]
    fn only_the_chosen_tests_run_and_bitmasks_read_as_opensips() {
        let via = Via::parse(b"SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1").unwrap();
        let seen = Seen {
            source: PHONE_PUBLIC.parse().unwrap(),
            via: &via,
            contact: None,
            body: b"",
        };
        // OpenSIPS's common 19: private-contact, received, via-port.
        let t = NatTests::from_flags(19).expect("valid");
        assert_eq!(
            t.iter().map(NatTest::name).collect::<Vec<_>>(),
            ["private-contact", "received", "via-port"]
        );
        assert_eq!(
            detect(t, &seen),
            NatTests::of(&[NatTest::Received, NatTest::ViaPort])
        );
        assert!(NatTests::from_flags(128).is_none());
        assert!(detect(NatTests(0), &seen).is_empty());
        for t in NatTest::ALL {
            assert_eq!(NatTest::from_name(t.name()), Some(t));
            assert_eq!(NatTest::ALL[t.index()], t);
        }
    }

    #[test]
    fn private_sdp_spans_cover_exactly_the_private_connection_addresses() {
        let body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 192.168.1.20\r\n\
            m=audio 4000 RTP/AVP 0\r\nc=IN IP4 203.0.113.5\r\nc=IN IP4 100.64.0.9/127\r\nc=IN IP4 10.1.1.1";
        let spans: Vec<&[u8]> = private_sdp_spans(body).map(|r| &body[r]).collect();
        assert_eq!(spans, [&b"192.168.1.20"[..], b"100.64.0.9", b"10.1.1.1"]);
    }

    #[test]
    fn sdp_addresses_are_read_from_connection_lines_only() {
        let body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 203.0.113.5/127\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.168.0.2\r\n";
        let got: Vec<Ipv4Addr> = sdp_addresses(body).collect();
        assert_eq!(
            got,
            [Ipv4Addr::new(203, 0, 113, 5), Ipv4Addr::new(192, 168, 0, 2)]
        );
        assert_eq!(
            sdp_addresses(b"c=IN IP6 ::1\r\nc=IN IP4 junk\r\n").count(),
            0
        );
    }
}
