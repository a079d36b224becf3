//! The Call-ID (RFC 3261 §20.8): what every element matches dialogs and
//! transactions on, so it must be one unambiguous run of characters.

/// True when `v` (a trimmed Call-ID value) is fit to match and route on:
/// `callid = word [ "@" word ]` (§25.1), read leniently — any visible
/// ASCII, since stacks put `=`, `;` or `,` in Call-IDs that peers accept —
/// but never empty, and never with white space, a control byte or a
/// non-ASCII byte, which no reading of the grammar allows.
pub fn is_valid(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn call_ids() {
        for ok in [&b"a84b4c76e66710@pc33.example.com"[..], b"abc=", b"1-2;3"] {
            assert!(is_valid(ok));
        }
        for bad in [
            &b""[..],
            b"a b",
            b"a\rb",
            b"a\x0fb",
            b"caf\xc3\xa9",
            b"a\x7f",
        ] {
            assert!(!is_valid(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
