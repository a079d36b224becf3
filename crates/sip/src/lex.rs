//! Character classes and whitespace handling shared by the value parsers.
//!
//! Inside a header value, CR and LF only ever appear as part of a folded
//! line (the message parser has already found where each header ends), so
//! they count as linear white space here (RFC 3261 §7.3.1).

/// `token` characters of RFC 3261 §25.1, as a table: the parser asks this
/// for nearly every byte of every header name.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        c += 1;
    }
    t
};

/// What an unquoted parameter value may hold: visible ASCII but the
/// separators `;`, `,` and `"` (RFC 3261 §25.1 `gen-value` is token or
/// host; peers send more punctuation, never a control or non-ASCII byte).
static VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"');
        c += 1;
    }
    t
};

/// A byte of an unquoted parameter value ([`VALUE`]).
#[inline(always)]
pub(crate) fn is_value(c: u8) -> bool {
    VALUE[c as usize]
}

/// `token` characters of RFC 3261 §25.1.
#[inline(always)]
pub(crate) fn is_token(c: u8) -> bool {
    TOKEN[c as usize]
}

/// Linear white space, folding included.
#[inline]
pub(crate) fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Control characters (RFC 3261 §25.1 excludes them from every token,
/// word, quoted string and URI) other than white space: in a parsed value,
/// CR and LF only ever appear as folding (CRLF then SP or HT).
#[inline]
pub(crate) fn is_ctl(c: u8) -> bool {
    (c < 0x20 && !matches!(c, b'\t' | b'\r' | b'\n')) || c == 0x7f
}

/// The slice without leading and trailing linear white space.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
}

pub(crate) fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| is_lws(c)).count();
    &s[n..]
}

pub(crate) fn trim_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&c| is_lws(c)).count();
    &s[..s.len() - n]
}

/// Offset of the first byte that is not white space, from `at`.
pub(crate) fn skip_lws(s: &[u8], mut at: usize) -> usize {
    while at < s.len() && is_lws(s[at]) {
        at += 1;
    }
    at
}

/// True when every byte is a token character and there is at least one.
pub(crate) fn all_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| is_token(c))
}

/// Parses a run of ASCII digits into a u64, refusing empty input, any other
/// byte and overflow (RFC 4475 §3.1.2.4: overlarge scalars are errors, not
/// wrap-arounds).
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// Index of the closing quote of a quoted string whose opening quote is at
/// `open`, honouring backslash escapes (`quoted-pair`).
pub(crate) fn closing_quote(s: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Finds `needle` outside quoted strings and outside `<...>`. Jumps from
/// one quote, bracket or needle to the next with memchr: a Route entry
/// carrying a flow token is some 60 bytes of URI between its brackets,
/// scanned byte by byte a few times per request otherwise.
pub(crate) fn find_unquoted(s: &[u8], needle: u8, from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let j = i + memchr::memchr3(b'"', b'<', needle, s.get(i..)?)?;
        match s[j] {
            b'"' => i = closing_quote(s, j)? + 1,
            // Inside brackets only the closing one counts.
            b'<' => i = j + 1 + memchr::memchr(b'>', &s[j + 1..])? + 1,
            _ => return Some(j),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_refuse_overflow_and_junk() {
        assert_eq!(parse_u64(b"0009"), Some(9));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b""), None);
    }

    #[test]
    fn quotes_and_angles_hide_separators() {
        assert_eq!(find_unquoted(b"\"a,b\" <c,d>, e", b',', 0), Some(11));
        assert_eq!(find_unquoted(b"\"a\\\",b\", c", b',', 0), Some(7));
        assert_eq!(find_unquoted(b"\"open, never closed", b',', 0), None);
        assert_eq!(
            find_unquoted(b"<sip:a,b;lr", b',', 0),
            None,
            "an open bracket"
        );
        assert_eq!(
            find_unquoted(b"<a\"b>,c", b',', 0),
            Some(5),
            "a quote in brackets"
        );
        assert_eq!(find_unquoted(b"a;b", b',', 3), None);
    }
}
