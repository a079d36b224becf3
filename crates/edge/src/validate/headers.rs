//! The `headers` check: every header a proxy knows the grammar of has it
//! (RFC 3261 §20, §25.1). Unknown headers are passed on as they are.

use super::Failure;
use sip::{CSeq, HeaderName, Message, NameAddr, Via};

/// The first header of `m` whose body does not have its grammar.
pub(super) fn check(m: &Message<'_>) -> Result<(), Failure> {
    for h in m.headers() {
        let v = m.value(h);
        let ok = match h.name {
            HeaderName::Via => m.elements_of(h).all(|e| Via::parse(e.text).is_ok()),
            HeaderName::From | HeaderName::To => NameAddr::parse(v).is_ok(),
            HeaderName::Contact => m
                .elements_of(h)
                .all(|e| e.text == b"*" || NameAddr::parse(e.text).is_ok()),
            HeaderName::Route | HeaderName::RecordRoute | HeaderName::Path => m
                .elements_of(h)
                .all(|e| NameAddr::parse(e.text).and_then(|n| n.parse_uri()).is_ok()),
            HeaderName::CSeq => CSeq::parse(v).is_ok(),
            HeaderName::CallId => call_id(v),
            HeaderName::MaxForwards => number(v, 255),
            HeaderName::ContentLength => number(v, u64::from(u32::MAX)),
            HeaderName::Expires | HeaderName::MinExpires => number(v, u64::from(u32::MAX)),
            HeaderName::ContentType => media_type(v),
            HeaderName::Require
            | HeaderName::ProxyRequire
            | HeaderName::Supported
            | HeaderName::Unsupported
            | HeaderName::Allow
            | HeaderName::AllowEvents => token_list(v),
            _ => true,
        };
        if !ok {
            return Err(Failure::HeaderParse);
        }
    }
    Ok(())
}

/// RFC 3261 token characters.
fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// `1*DIGIT` no greater than `max`.
fn number(v: &[u8], max: u64) -> bool {
    let v = v.trim_ascii();
    !v.is_empty()
        && v.len() <= 20
        && v.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|n| n <= max)
}

/// `word ["@" word]` (RFC 3261 §25.1 callid).
fn call_id(v: &[u8]) -> bool {
    let word = |w: &[u8]| {
        !w.is_empty()
            && w.iter()
                .all(|&c| is_token(c) || b"()<>:\\\"/[]?{}".contains(&c))
    };
    match v.iter().position(|&c| c == b'@') {
        Some(at) => word(&v[..at]) && word(&v[at + 1..]),
        None => word(v),
    }
}

/// `type "/" subtype *(";" parameter)`.
fn media_type(v: &[u8]) -> bool {
    let main = v
        .split(|&c| c == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    match main.iter().position(|&c| c == b'/') {
        Some(slash) => {
            let (t, s) = (main[..slash].trim_ascii(), main[slash + 1..].trim_ascii());
            !t.is_empty()
                && !s.is_empty()
                && t.iter().all(|&c| is_token(c))
                && s.iter().all(|&c| is_token(c))
        }
        None => false,
    }
}

/// A comma-separated list of tokens (an empty value is allowed: RFC 3261
/// lets Supported and Allow be empty).
fn token_list(v: &[u8]) -> bool {
    let v = v.trim_ascii();
    v.is_empty()
        || v.split(|&c| c == b',').all(|t| {
            let t = t.trim_ascii();
            !t.is_empty() && t.iter().all(|&c| is_token(c))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_grammars() {
        assert!(number(b"70", 255) && !number(b"256", 255) && !number(b"7a", 255));
        assert!(!number(b"", 255) && !number(b"99999999999999999999999", u64::MAX));
        assert!(call_id(b"a84b4c76e66710@pc33.atlanta.com") && call_id(b"xyz"));
        assert!(!call_id(b"a b") && !call_id(b"@host") && !call_id(b""));
        assert!(media_type(b"application/sdp") && media_type(b"multipart/mixed;boundary=x"));
        assert!(!media_type(b"application") && !media_type(b"/sdp") && !media_type(b"a b/c"));
        assert!(token_list(b"timer, 100rel") && token_list(b"") && !token_list(b"a,,b"));
    }
}
