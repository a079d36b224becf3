//! Valid hosts (RFC 3261 §25.1): `hostname`, `IPv4address` or
//! `IPv6reference`.

/// True when `host` (as written in a URI, brackets included for IPv6) is a
/// valid host: an IPv6 reference, a dotted quad, or labels of letters,
/// digits and inner hyphens, the last one starting with a letter.
pub(super) fn valid(host: &[u8]) -> bool {
    if host.first() == Some(&b'[') {
        return matches!(sip::Host::parse(host), Ok(sip::Host::Ipv6(_)));
    }
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    if sip::host::parse_ipv4(host).is_some() {
        return true;
    }
    // A trailing dot ends a fully qualified name.
    let name = host.strip_suffix(b".").unwrap_or(host);
    let labels: Vec<&[u8]> = name.split(|&c| c == b'.').collect();
    let label_ok = |l: &[u8]| {
        !l.is_empty()
            && l.len() <= 63
            && l.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && l[0] != b'-'
            && l[l.len() - 1] != b'-'
    };
    labels.iter().all(|l| label_ok(l))
        && labels
            .last()
            .is_some_and(|top| top[0].is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn hosts() {
        for ok in [
            &b"example.com"[..],
            b"example.com.",
            b"a-b.example.com",
            b"192.0.2.1",
            b"[2001:db8::1]",
            b"[::ffff:192.0.2.1]",
            b"localhost",
            b"x1.example",
        ] {
            assert!(valid(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b""[..],
            b"-a.example.com",
            b"a-.example.com",
            b"a..example.com",
            b"exa_mple.com",
            b"example.123",
            b"[2001:db8::1",
            b"2001:db8::1",
            b"ex ample.com",
            b"host.example.com$",
        ] {
            assert!(!valid(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
