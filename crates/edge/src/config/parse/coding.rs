//! `compress_in`, `compress_out` and `compact_keep`: what an edge does to
//! the messages it sends, toward its destinations and toward everyone else.

use super::{Result, Table};
use crate::config::model::{BodyCoding, Coding};
use sip::HeaderName;

/// The words a direction's list may hold.
const WORDS: &str = "compact, deflate, gzip, decompress";

/// Reads `key` (`compress_in` or `compress_out`): a list of `compact` and
/// at most one of `deflate`, `gzip`, `decompress`.
pub(super) fn coding(t: &Table<'_, '_>, key: &str) -> Result<Coding> {
    let cx = t.cx;
    let mut out = Coding::default();
    let Some(v) = t.get(key) else {
        return Ok(out);
    };
    for (word, at) in cx.string_array(v, key)? {
        let body = match word {
            "compact" => {
                out.compact = true;
                continue;
            }
            "deflate" => BodyCoding::Deflate,
            "gzip" => BodyCoding::Gzip,
            "decompress" => BodyCoding::Decompress,
            other => {
                return Err(cx.err(
                    at,
                    key,
                    format!("unknown {other:?} (expected any of: {WORDS})"),
                ))
            }
        };
        if out.body != BodyCoding::Keep && out.body != body {
            return Err(cx.err(
                at,
                key,
                format!(
                    "{} and {}: a direction either compresses bodies one way or \\
                     decompresses them",
                    out.body.name(),
                    body.name()
                ),
            ));
        }
        out.body = body;
    }
    Ok(out)
}

/// Reads `compact_keep`: header names that have a compact form and are to
/// keep their full one.
pub(super) fn compact_keep(t: &Table<'_, '_>) -> Result<Vec<HeaderName>> {
    let cx = t.cx;
    let Some(v) = t.get("compact_keep") else {
        return Ok(Vec::new());
    };
    cx.string_array(v, "compact_keep")?
        .into_iter()
        .map(|(name, at)| {
            let h = HeaderName::lookup(name.as_bytes());
            match h.compact() {
                Some(_) => Ok(h),
                None => Err(cx.err(
                    at,
                    "compact_keep",
                    format!(
                        "{name:?} has no compact form, so it is never compacted (those \\
                         that have one: Accept-Contact, Allow-Events, Call-ID, Contact, \\
                         Content-Encoding, Content-Length, Content-Type, Event, From, \\
                         Identity, Identity-Info, Refer-To, Referred-By, Reject-Contact, \\
                         Request-Disposition, Session-Expires, Subject, Supported, To, Via)"
                    ),
                )),
            }
        })
        .collect()
}

/// Reads `validate` (check names) and `on_invalid` (`reject` or `tag`).
pub(super) fn validation(
    t: &Table<'_, '_>,
) -> Result<(Vec<crate::validate::Check>, crate::config::model::OnInvalid)> {
    use crate::config::model::OnInvalid;
    use crate::validate::Check;
    let cx = t.cx;
    let mut checks = Vec::new();
    if let Some(v) = t.get("validate") {
        for (word, at) in cx.string_array(v, "validate")? {
            let c = Check::from_name(word).ok_or_else(|| {
                let names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
                cx.err(
                    at,
                    "validate",
                    format!(
                        "unknown check {word:?} (expected any of: {})",
                        names.join(", ")
                    ),
                )
            })?;
            checks.push(c);
        }
    }
    let on_invalid = match t.get("on_invalid") {
        Some(v) => match cx.string(v, "on_invalid")? {
            "reject" => OnInvalid::Reject,
            "tag" => OnInvalid::Tag,
            other => {
                return Err(cx.err(
                    v.span().start,
                    "on_invalid",
                    format!("unknown {other:?} (expected reject or tag)"),
                ))
            }
        },
        None => OnInvalid::Reject,
    };
    Ok((checks, on_invalid))
}
