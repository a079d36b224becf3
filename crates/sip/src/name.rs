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

/// `known` (a name of [`TABLE`]: letters and `-`) equals `name` ignoring
/// ASCII case, eight bytes at a time: setting bit 0x20 lower-cases a
/// letter, and no other byte that a header line can hold turns into a
/// letter or `-` that way (only CR becomes `-`, and CR ends the line).
#[inline]
fn same_name(known: &[u8], name: &[u8]) -> bool {
    if known.len() != name.len() {
        return false;
    }
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let mut a = known.chunks_exact(8);
    let mut b = name.chunks_exact(8);
    for (x, y) in a.by_ref().zip(b.by_ref()) {
        let word = |c: &[u8]| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if word(x) | FOLD != word(y) | FOLD {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(x, y)| x | 0x20 == y | 0x20)
}

/// 0..26 for an ASCII letter of either case.
#[inline]
const fn letter_index(c: u8) -> Option<usize> {
    let l = c.to_ascii_lowercase();
    if l.is_ascii_lowercase() {
        Some((l - b'a') as usize)
    } else {
        None
    }
}

/// Longest full name in [`TABLE`] plus one.
const MAX_LEN: usize = 24;
/// Candidates per (length, first letter); no pair has more (checked when
/// the index is built).
const SLOTS: usize = 3;

/// Compact letter → 1 + its [`TABLE`] index (0: none).
const COMPACT: [u8; 26] = {
    let mut out = [0u8; 26];
    let mut i = 0;
    while i < TABLE.len() {
        let c = TABLE[i].1;
        if c != 0 {
            match letter_index(c) {
                Some(l) => out[l] = (i + 1) as u8,
                None => panic!("compact form is not a letter"),
            }
        }
        i += 1;
    }
    out
};

/// (length × 26 + first letter) → 1 + the [`TABLE`] indices of the full
/// names of that length and first letter (0 ends the list).
const FULL: [[u8; SLOTS]; MAX_LEN * 26] = {
    let mut out = [[0u8; SLOTS]; MAX_LEN * 26];
    let mut i = 0;
    while i < TABLE.len() {
        let name = TABLE[i].0.as_bytes();
        assert!(name.len() < MAX_LEN, "raise MAX_LEN");
        let slot = match letter_index(name[0]) {
            Some(l) => name.len() * 26 + l,
            None => panic!("a full name starts with a letter"),
        };
        let mut k = 0;
        while out[slot][k] != 0 {
            k += 1;
            assert!(k < SLOTS, "raise SLOTS");
        }
        out[slot][k] = (i + 1) as u8;
        i += 1;
    }
    out
};

impl HeaderName {
    /// Looks a header name up, case-insensitively, by full or compact form.
    ///
    /// Every header line of every message comes through here, so the
    /// candidates are found by index (length and first letter for full
    /// names, the letter for compact ones) rather than by scanning the
    /// table: at most a couple of comparisons per line.
    #[inline]
    pub fn lookup(name: &[u8]) -> HeaderName {
        let Some(&first) = name.first() else {
            return HeaderName::Other;
        };
        let Some(letter) = letter_index(first) else {
            return HeaderName::Other;
        };
        if name.len() == 1 {
            return match COMPACT[letter] {
                0 => HeaderName::Other,
                i => TABLE[usize::from(i - 1)].2,
            };
        }
        let Some(slots) = FULL.get(name.len() * 26 + letter) else {
            return HeaderName::Other;
        };
        for &i in slots {
            if i == 0 {
                break;
            }
            let (full, _, n) = TABLE[usize::from(i - 1)];
            if same_name(full.as_bytes(), name) {
                return n;
            }
        }
        HeaderName::Other
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

    #[test]
    fn the_index_finds_every_name_and_nothing_else() {
        for &(full, _, n) in TABLE {
            assert_eq!(HeaderName::lookup(full.as_bytes()), n, "{full}");
            assert_eq!(HeaderName::lookup(full.to_uppercase().as_bytes()), n);
            assert_eq!(HeaderName::lookup(full.to_lowercase().as_bytes()), n);
            // One letter off, or one longer: not the header.
            let mut near = full.as_bytes().to_vec();
            let last = near.len() - 1;
            near[last] ^= 0x01;
            assert_eq!(HeaderName::lookup(&near), HeaderName::Other, "{full}");
            near[last] ^= 0x01;
            near.push(b's');
            assert_eq!(HeaderName::lookup(&near), HeaderName::Other, "{full}");
        }
        for odd in [
            &b""[..],
            b"1",
            b"-",
            b"\xff",
            b"Q",
            &[b'a'; 300][..],
            b"9Via",
        ] {
            assert_eq!(HeaderName::lookup(odd), HeaderName::Other, "{odd:?}");
        }
    }
}
