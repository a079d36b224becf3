//! SDP body integrity (RFC 4566 §5): the line grammar and the fields a
//! media relay or a server reads.

/// Why an SDP body does not parse (for tests; the proxy reports one
/// failure reason for all).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SdpError {
    /// Not `x=value` lines, or not text.
    Line,
    /// `v=0` does not come first.
    Version,
    /// No `o=`, `s=` or `t=` line in the session part.
    Missing,
    /// An `o=`, `c=`, `t=` or `m=` line with the wrong fields.
    Field,
}

/// Checks `body` as an SDP session description. Lines end in CRLF or LF
/// (RFC 4566 §5 asks CRLF and tells parsers to accept LF).
pub(super) fn check(body: &[u8]) -> Result<(), SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Line)?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty());
    if lines.next() != Some("v=0") {
        return Err(SdpError::Version);
    }
    let (mut o, mut s, mut t, mut in_media) = (false, false, false, false);
    for line in lines {
        let b = line.as_bytes();
        if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
            return Err(SdpError::Line);
        }
        let value = &line[2..];
        let fields: Vec<&str> = value.split(' ').collect();
        match b[0] {
            b'o' if !in_media => {
                // username sess-id sess-version nettype addrtype address
                if fields.len() != 6 || fields.iter().any(|f| f.is_empty()) {
                    return Err(SdpError::Field);
                }
                o = true;
            }
            b's' if !in_media => s = true,
            b't' => {
                if fields.len() != 2 || !fields.iter().all(|f| is_digits(f)) {
                    return Err(SdpError::Field);
                }
                t = true;
            }
            // nettype addrtype connection-address
            b'c' if fields.len() != 3
                || fields[0] != "IN"
                || !matches!(fields[1], "IP4" | "IP6")
                || fields[2].is_empty() =>
            {
                return Err(SdpError::Field);
            }
            b'm' => {
                // media port[/n] proto fmt...
                let port = fields.get(1).and_then(|p| p.split('/').next());
                if fields.len() < 4
                    || fields[0].is_empty()
                    || !port.is_some_and(is_digits)
                    || fields[2].is_empty()
                {
                    return Err(SdpError::Field);
                }
                if !(o && s && t) {
                    return Err(SdpError::Missing);
                }
                in_media = true;
            }
            _ => {}
        }
    }
    if o && s && t {
        Ok(())
    } else {
        Err(SdpError::Missing)
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\ns=-\r\n\
                        c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8\r\n\
                        a=rtpmap:0 PCMU/8000\r\nm=video 51372/2 RTP/AVP 31\r\n";

    #[test]
    fn a_usual_offer_parses_with_crlf_or_lf() {
        assert_eq!(check(GOOD.as_bytes()), Ok(()));
        assert_eq!(check(GOOD.replace("\r\n", "\n").as_bytes()), Ok(()));
    }

    #[test]
    fn broken_bodies_are_told_apart() {
        assert_eq!(check(b"o=x 1 1 IN IP4 h\r\n"), Err(SdpError::Version));
        assert_eq!(check(b"v=0\r\nhello\r\n"), Err(SdpError::Line));
        assert_eq!(check(b"v=0\r\ns=-\r\nt=0 0\r\n"), Err(SdpError::Missing));
        let bad_c = GOOD.replace("c=IN IP4 192.0.2.1", "c=IN IPX 192.0.2.1");
        assert_eq!(check(bad_c.as_bytes()), Err(SdpError::Field));
        let bad_m = GOOD.replace("m=audio 49170 RTP/AVP 0 8", "m=audio x RTP/AVP 0");
        assert_eq!(check(bad_m.as_bytes()), Err(SdpError::Field));
        let bad_o = GOOD.replace(
            "o=alice 2890844526 2890844526 IN IP4 192.0.2.1",
            "o=alice 1",
        );
        assert_eq!(check(bad_o.as_bytes()), Err(SdpError::Field));
        assert_eq!(check(&[b'v', b'=', b'0', b'\n', 0xff]), Err(SdpError::Line));
    }
}
