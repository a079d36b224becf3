//! name-addr / addr-spec values: From, To, Contact, Route, Record-Route, Path.

use crate::error::ParseError;
use crate::lex;
use crate::params::Params;
use crate::uri::Uri;

/// `[display-name] <uri> *(;param)` or `addr-spec *(;param)` (RFC 3261 §20.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name, quotes included when quoted.
    pub display: Option<&'a [u8]>,
    /// The URI as written (inside the angle brackets when bracketed).
    pub uri: &'a [u8],
    /// Header parameters after the address, starting with `;` (or empty).
    pub params: &'a [u8],
    /// True for the `<...>` form.
    pub bracketed: bool,
}

impl<'a> NameAddr<'a> {
    /// Parses one value. Refuses an unterminated quote, a display name with
    /// characters that are neither token nor white space, white space
    /// inside the brackets, and an addr-spec with `?` or `,` (which must be
    /// bracketed, §20.10).
    pub fn parse(v: &'a [u8]) -> Result<NameAddr<'a>, ParseError> {
        let v = lex::trim(v);
        if v.is_empty() {
            return Err(ParseError::BadNameAddr);
        }
        let (display, lt) = if v[0] == b'"' {
            let close = lex::closing_quote(v, 0).ok_or(ParseError::BadNameAddr)?;
            let lt = lex::skip_lws(v, close + 1);
            if v.get(lt) != Some(&b'<') {
                return Err(ParseError::BadNameAddr);
            }
            (Some(&v[..=close]), Some(lt))
        } else {
            match v.iter().position(|&c| c == b'<') {
                Some(lt) => {
                    let d = lex::trim(&v[..lt]);
                    if !d.iter().all(|&c| lex::is_token(c) || lex::is_lws(c)) {
                        return Err(ParseError::BadNameAddr);
                    }
                    ((!d.is_empty()).then_some(d), Some(lt))
                }
                None => (None, None),
            }
        };
        let (uri, rest, bracketed) = match lt {
            Some(lt) => {
                let gt = v[lt..]
                    .iter()
                    .position(|&c| c == b'>')
                    .ok_or(ParseError::BadNameAddr)?
                    + lt;
                let uri = &v[lt + 1..gt];
                // No white space and no control byte: one comparison.
                if uri.is_empty() || uri.iter().any(|&c| c <= b' ' || c == 0x7f) {
                    return Err(ParseError::BadNameAddr);
                }
                (uri, &v[gt + 1..], true)
            }
            None => {
                let semi = v.iter().position(|&c| c == b';').unwrap_or(v.len());
                let uri = lex::trim_end(&v[..semi]);
                if uri
                    .iter()
                    .any(|&c| c <= b' ' || c == 0x7f || matches!(c, b'?' | b',' | b'"'))
                {
                    return Err(ParseError::BadNameAddr);
                }
                (uri, &v[semi..], false)
            }
        };
        // The tag is what dialogs match on (RFC 3261 §19.3): a token.
        for p in Params::new(rest) {
            let p = p.map_err(|_| ParseError::BadNameAddr)?;
            let bad_tag =
                p.name.eq_ignore_ascii_case(b"tag") && !p.value.is_some_and(lex::all_token);
            if bad_tag {
                return Err(ParseError::BadNameAddr);
            }
        }
        Ok(NameAddr {
            display,
            uri,
            params: rest,
            bracketed,
        })
    }

    /// A header parameter (`Some(None)` for a flag).
    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        Params::find(self.params, name)
    }

    /// The `tag` parameter (From/To, RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.param(b"tag").flatten()
    }

    /// The URI, parsed.
    pub fn parse_uri(&self) -> Result<Uri<'a>, ParseError> {
        Uri::parse(self.uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let n = NameAddr::parse(
            b"\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.uri, b"sip:jdrosen@example.com");
        assert_eq!(n.tag(), Some(&b"98asjd8"[..]));
        let n =
            NameAddr::parse(b"sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert!(!n.bracketed);
        assert_eq!(n.uri, b"sip:vivekg@chair-dnrc.example.com");
        assert_eq!(n.tag(), Some(&b"1918181833n"[..]));
        let n = NameAddr::parse(b"\"caller\"<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display, Some(&b"\"caller\""[..]));
        let n = NameAddr::parse(
            b"token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=_token~1'+`*%!-.",
        )
        .unwrap();
        assert_eq!(n.display, Some(&b"token1~` token2'+_ token3*%!.-"[..]));
        assert_eq!(n.tag(), Some(&b"_token~1'+`*%!-."[..]));
    }

    #[test]
    fn malformed_forms() {
        assert!(NameAddr::parse(b"\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(NameAddr::parse(b"Watson, Thomas <sip:t.watson@example.org>").is_err());
        assert!(NameAddr::parse(b"\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
        assert!(NameAddr::parse(b"sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse(b"\"Joe\" <sip:joe@example.org>;;;;").is_err());
        assert!(NameAddr::parse(b"").is_err());
        // Control bytes in the URI, a tag that is not a token.
        assert!(NameAddr::parse(b"<sip:a\x0fb@example.com>;tag=1").is_err());
        assert!(NameAddr::parse(b"sip:a\x7f@example.com;tag=1").is_err());
        assert!(NameAddr::parse(b"<sip:a@example.com>;tag=a\x01").is_err());
        assert!(NameAddr::parse(b"<sip:a@example.com>;tag=\"a\"").is_err());
        assert!(NameAddr::parse(b"<sip:a@example.com>;tag").is_err());
    }
}
