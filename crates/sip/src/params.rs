//! `;name=value` parameter lists: header parameters (white space allowed
//! around `;` and `=`, quoted values) and URI parameters (no white space).

use crate::error::ParseError;
use crate::lex;

/// One parameter; offsets are relative to the list it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name (compare case-insensitively).
    pub name: &'a [u8],
    /// The value, quotes included when quoted; None for a bare flag.
    pub value: Option<&'a [u8]>,
    /// Offset of the `;` before the parameter.
    pub start: usize,
    /// Offset one past the value (or the name).
    pub end: usize,
}

/// Iterates header parameters: `*( SEMI generic-param )`, RFC 3261 §25.1.
/// Yields an error for an empty name, a missing value after `=`, an
/// unterminated quoted string, or anything that is not a parameter.
#[derive(Clone, Debug)]
pub struct Params<'a> {
    s: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Params<'a> {
    /// Parameters of `s`, which must be empty or start (after white space) with `;`.
    pub fn new(s: &'a [u8]) -> Params<'a> {
        Params {
            s,
            pos: 0,
            failed: false,
        }
    }

    /// The value of the first parameter of that name; `Some(None)` for a flag.
    pub fn find(s: &'a [u8], name: &[u8]) -> Option<Option<&'a [u8]>> {
        Params::new(s)
            .map_while(Result::ok)
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    fn step(&mut self) -> Result<Option<Param<'a>>, ParseError> {
        let s = self.s;
        let mut i = lex::skip_lws(s, self.pos);
        if i >= s.len() {
            return Ok(None);
        }
        if s[i] != b';' {
            return Err(ParseError::BadParam);
        }
        let start = i;
        i = lex::skip_lws(s, i + 1);
        let ns = i;
        while i < s.len() && lex::is_token(s[i]) {
            i += 1;
        }
        if i == ns {
            return Err(ParseError::BadParam);
        }
        let name = &s[ns..i];
        let mut end = i;
        let mut value = None;
        let j = lex::skip_lws(s, i);
        if j < s.len() && s[j] == b'=' {
            let vs = lex::skip_lws(s, j + 1);
            // gen-value = token / host / quoted-string (RFC 3261 §25.1),
            // read leniently (any visible ASCII unquoted, as peers send)
            // but never with a control byte or a raw non-ASCII byte, which
            // no form allows outside quotes.
            let ve = if vs < s.len() && s[vs] == b'"' {
                let close = lex::closing_quote(s, vs).ok_or(ParseError::BadParam)?;
                if s[vs..close].iter().any(|&c| lex::is_ctl(c)) {
                    return Err(ParseError::BadParam);
                }
                close + 1
            } else if vs < s.len() && s[vs] == b'[' {
                let close = vs
                    + s[vs..]
                        .iter()
                        .position(|&c| c == b']')
                        .ok_or(ParseError::BadParam)?;
                // An IPv6 reference, perhaps with a zone (`%25eth0`, RFC
                // 6874): visible ASCII.
                if !s[vs + 1..close].iter().all(|&c| lex::is_value(c)) {
                    return Err(ParseError::BadParam);
                }
                close + 1
            } else {
                let mut k = vs;
                while k < s.len() && lex::is_value(s[k]) {
                    k += 1;
                }
                // It ends at white space, a separator or the end: any
                // other byte is a control or non-ASCII one.
                if k < s.len() && !lex::is_lws(s[k]) && !matches!(s[k], b';' | b',' | b'"') {
                    return Err(ParseError::BadParam);
                }
                k
            };
            if ve == vs {
                return Err(ParseError::BadParam);
            }
            value = Some(&s[vs..ve]);
            end = ve;
        }
        self.pos = end;
        Ok(Some(Param {
            name,
            value,
            start,
            end,
        }))
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<Param<'a>, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(p) => p.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The value of a URI parameter (`;lr`, `;transport=udp`) in a list
/// without white space; `Some(None)` for a flag.
pub fn uri_param<'a>(params: &'a [u8], name: &[u8]) -> Option<Option<&'a [u8]>> {
    params
        .split(|&c| c == b';')
        .filter(|p| !p.is_empty())
        .find_map(|p| {
            let (n, v) = match p.iter().position(|&c| c == b'=') {
                Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
                None => (p, None),
            };
            n.eq_ignore_ascii_case(name).then_some(v)
        })
}

/// Removes surrounding quotes from a quoted-string value (escapes are kept).
pub fn unquote(v: &[u8]) -> &[u8] {
    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tortuous_white_space() {
        let s = b" ;   tag    = 1918181833n";
        let p: Vec<_> = Params::new(s).collect::<Result<_, _>>().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, b"tag");
        assert_eq!(p[0].value, Some(&b"1918181833n"[..]));
        let folded = b"\r\n  ;\r\n  tag = 98asjd8";
        assert_eq!(Params::find(folded, b"TAG"), Some(Some(&b"98asjd8"[..])));
    }

    #[test]
    fn quoted_and_bracketed_values() {
        let s = b";a=\"x;y\\\"z\";received=[2001:db8::1];rport";
        let p: Vec<_> = Params::new(s).collect::<Result<_, _>>().unwrap();
        assert_eq!(p[0].value, Some(&b"\"x;y\\\"z\""[..]));
        assert_eq!(p[1].value, Some(&b"[2001:db8::1]"[..]));
        assert_eq!(p[2].value, None);
        assert_eq!(&s[p[2].start..p[2].end], b";rport");
    }

    /// Checks that the whole list parses.
    fn validate(s: &[u8]) -> Result<(), ParseError> {
        Params::new(s).try_for_each(|p| p.map(|_| ()))
    }

    #[test]
    fn malformed_lists_fail() {
        assert!(validate(b";;").is_err());
        assert!(validate(b";a=").is_err());
        assert!(validate(b";a=\"open").is_err());
        assert!(validate(b"junk").is_err());
        assert!(validate(b"").is_ok());
    }

    #[test]
    fn uri_params() {
        assert_eq!(
            uri_param(b"lr;transport=TCP", b"transport"),
            Some(Some(&b"TCP"[..]))
        );
        assert_eq!(uri_param(b"LR", b"lr"), Some(None));
        assert_eq!(uri_param(b"", b"lr"), None);
    }
}
