//! The CSeq header: sequence number and method.

use crate::error::ParseError;
use crate::lex;

/// `CSeq: 1 INVITE` (RFC 3261 §20.16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Below 2**32 (§8.1.1.5); larger values are refused, not truncated.
    pub number: u32,
    /// The method as written.
    pub method: &'a [u8],
}

impl<'a> CSeq<'a> {
    /// Parses a CSeq value (folding allowed between the two parts).
    pub fn parse(v: &'a [u8]) -> Result<CSeq<'a>, ParseError> {
        let v = lex::trim(v);
        let digits = v.iter().take_while(|c| c.is_ascii_digit()).count();
        let number = lex::parse_u64(&v[..digits])
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(ParseError::BadCSeq)?;
        let rest = &v[digits..];
        let method = lex::trim_start(rest);
        if method.len() == rest.len() || !lex::all_token(method) {
            return Err(ParseError::BadCSeq);
        }
        Ok(CSeq { number, method })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_folded_and_padded() {
        let c = CSeq::parse(b"0009\r\n  INVITE").unwrap();
        assert_eq!((c.number, c.method), (9, &b"INVITE"[..]));
    }

    #[test]
    fn refuses_overlarge_and_missing_method() {
        assert_eq!(
            CSeq::parse(b"36893488147419103232 REGISTER"),
            Err(ParseError::BadCSeq)
        );
        assert_eq!(CSeq::parse(b"4294967296 INVITE"), Err(ParseError::BadCSeq));
        assert!(CSeq::parse(b"4294967295 INVITE").is_ok());
        assert_eq!(CSeq::parse(b"12"), Err(ParseError::BadCSeq));
        assert_eq!(CSeq::parse(b"12INVITE"), Err(ParseError::BadCSeq));
    }
}
