//! The username of a digest credential (Authorization, Proxy-Authorization).

use crate::lex;
use crate::params::unquote;

/// The `username` of `Digest username="alice", realm=...` (RFC 3261
/// §22.4), without quotes; None when the credential has none.
pub fn digest_username(v: &[u8]) -> Option<&[u8]> {
    let v = lex::trim(v);
    let scheme_end = v.iter().position(|&c| lex::is_lws(c))?;
    let mut rest = &v[scheme_end..];
    loop {
        rest = lex::trim_start(rest);
        let eq = rest.iter().position(|&c| c == b'=')?;
        let name = lex::trim(&rest[..eq]);
        let vs = lex::skip_lws(rest, eq + 1);
        let (value, next) = if rest.get(vs) == Some(&b'"') {
            let close = lex::closing_quote(rest, vs)?;
            (&rest[vs..=close], close + 1)
        } else {
            let e = rest[vs..]
                .iter()
                .position(|&c| c == b',')
                .map_or(rest.len(), |p| p + vs);
            (lex::trim(&rest[vs..e]), e)
        };
        if name.eq_ignore_ascii_case(b"username") {
            let u = unquote(value);
            return (!u.is_empty()).then_some(u);
        }
        let comma = rest[next..].iter().position(|&c| c == b',')?;
        rest = &rest[next + comma + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_username_anywhere() {
        let v = b"Digest realm=\"3CX\", username=\"1001\", nonce=\"a,b\"";
        assert_eq!(digest_username(v), Some(&b"1001"[..]));
        let v = b"Digest username=\"alice\",realm=\"x\"";
        assert_eq!(digest_username(v), Some(&b"alice"[..]));
        let v = b"Digest realm=\"x, username=fake\", nonce=\"n\"";
        assert_eq!(digest_username(v), None);
        assert_eq!(digest_username(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), None);
        assert_eq!(digest_username(b""), None);
    }
}
