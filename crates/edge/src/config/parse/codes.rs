//! Lists of SIP status codes in a config file: `["2xx", "404", 503]`.

use toml::de::DeValue;

use super::{describe, Cx, Result, Value};
use crate::config::model::CodeRange;

/// Reads an array of `"200"`-style codes and `"2xx"`-style classes (whole
/// numbers such as `200` are taken too). `allowed(class, text)` refuses the
/// classes that make no sense for `key`, with its reason.
pub(super) fn codes(
    cx: &Cx<'_>,
    v: &Value<'_>,
    key: &str,
    allowed: fn(u16, &str) -> std::result::Result<(), String>,
) -> Result<Vec<CodeRange>> {
    let DeValue::Array(items) = v.get_ref() else {
        return Err(cx.err(
            v.span().start,
            key,
            format!(
                "expected an array of status codes such as [\"2xx\", \"404\"], found {}",
                describe(v.get_ref())
            ),
        ));
    };
    items
        .iter()
        .map(|item| {
            let at = item.span().start;
            let range = match item.get_ref() {
                DeValue::String(s) => code_range(s, allowed),
                DeValue::Integer(i) => code_range(&i.to_string(), allowed),
                other => Err(format!(
                    "expected a status code such as \"200\" or \"2xx\", found {}",
                    describe(other)
                )),
            };
            range.map_err(|m| cx.err(at, key, m))
        })
        .collect()
}

/// One entry: `"404"` (one code) or `"2xx"` (a class).
fn code_range(
    s: &str,
    allowed: fn(u16, &str) -> std::result::Result<(), String>,
) -> std::result::Result<CodeRange, String> {
    let b = s.as_bytes();
    let not_a_code = || {
        format!(
            "{s:?} is not a status code: expected a final code such as \"200\" \
             or a class such as \"2xx\""
        )
    };
    let class = match b.first() {
        Some(c) if b.len() == 3 && c.is_ascii_digit() => u16::from(c - b'0'),
        _ => return Err(not_a_code()),
    };
    let range = if b[1..].eq_ignore_ascii_case(b"xx") {
        CodeRange {
            lo: class * 100,
            hi: class * 100 + 99,
        }
    } else if b[1..].iter().all(u8::is_ascii_digit) {
        let code = class * 100 + u16::from(b[1] - b'0') * 10 + u16::from(b[2] - b'0');
        CodeRange { lo: code, hi: code }
    } else {
        return Err(not_a_code());
    };
    allowed(class, s)?;
    Ok(range)
}
