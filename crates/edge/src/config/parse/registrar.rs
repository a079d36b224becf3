//! `[edge.registrar]`: the built-in registrar of `flags = ["registrations"]`.

use super::{Cx, Result, Table};
use crate::config::model::{Keepalive, Registrar};

/// Keys of `[edge.registrar]`.
const REGISTRAR_KEYS: &[&str] = &[
    "allow",
    "domains",
    "min_expires",
    "max_expires",
    "default_expires",
    "max_contacts",
    "keepalive_interval",
    "keepalive",
    "keepalive_failures",
];

/// Reads `[edge.registrar]` (`t` is `None` when the edge has none: then
/// `allow` is missing, which is an error at `at`, the flag). Errors name
/// the key as `registrar.<key>`.
pub(super) fn registrar(cx: &Cx<'_>, t: Option<&Table<'_, '_>>, at: usize) -> Result<Registrar> {
    let Some(t) = t else {
        return Err(cx.err(
            at,
            "flags",
            "registrations: the built-in registrar takes REGISTERs only from the sources \
             [edge.registrar] allow names (it does not authenticate): add that table, \
             with allow = [\"0.0.0.0/0\"] to take any",
        ));
    };
    t.check_keys(REGISTRAR_KEYS, |_| None)?;
    let Some(v) = t.get("allow") else {
        return Err(cx.err(
            t.at,
            "registrar.allow",
            "required: the networks whose REGISTERs the built-in registrar takes \
             (it does not authenticate; [\"0.0.0.0/0\", \"::/0\"] takes any)",
        ));
    };
    let allow = super::networks(cx, v, "registrar.allow")?;
    let domains = match t.get("domains") {
        Some(v) => cx
            .string_array(v, "registrar.domains")?
            .into_iter()
            .map(|(d, at)| {
                if !is_domain(d) {
                    return Err(cx.err(
                        at,
                        "registrar.domains",
                        format!("{d:?} is not a domain (\"example.com\") or an address"),
                    ));
                }
                Ok(d.to_ascii_lowercase())
            })
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let num = |key: &str, default: i64, lo: i64, hi: i64| -> Result<i64> {
        t.get(key).map_or(Ok(default), |v| {
            cx.int(v, &format!("registrar.{key}"), lo, hi)
        })
    };
    let day = 86_400;
    let min_expires = num("min_expires", 60, 1, day)? as u32;
    let max_expires = num("max_expires", 3600, 1, 7 * day)? as u32;
    let default_expires = num("default_expires", 3600, 1, 7 * day)? as u32;
    if max_expires < min_expires {
        let at = t.get("max_expires").map_or(t.at, |v| v.span().start);
        return Err(cx.err(
            at,
            "registrar.max_expires",
            format!("{max_expires} is shorter than min_expires ({min_expires})"),
        ));
    }
    if !(min_expires..=max_expires).contains(&default_expires) {
        let at = t.get("default_expires").map_or(t.at, |v| v.span().start);
        return Err(cx.err(
            at,
            "registrar.default_expires",
            format!("{default_expires} is not between min_expires ({min_expires}) and max_expires ({max_expires})"),
        ));
    }
    let keepalive = match t.get("keepalive") {
        Some(v) => match cx.string(v, "registrar.keepalive")? {
            "options" => Keepalive::Options,
            "crlf" => Keepalive::Crlf,
            other => {
                return Err(cx.err(
                    v.span().start,
                    "registrar.keepalive",
                    format!("unknown keepalive {other:?} (expected options or crlf)"),
                ))
            }
        },
        None => Keepalive::Options,
    };
    Ok(Registrar {
        allow,
        domains,
        min_expires,
        max_expires,
        default_expires,
        max_contacts: num("max_contacts", 10, 1, 100)? as usize,
        keepalive_interval: num("keepalive_interval", 30, 0, 3600)? as u32,
        keepalive,
        keepalive_failures: num("keepalive_failures", 3, 1, 100)? as u32,
        line: cx.line(t.at),
    })
}

/// A host as a URI writes it: a name, an IPv4 address, or an IPv6 one in
/// brackets — no user, port, path or spaces.
fn is_domain(d: &str) -> bool {
    let bracketed = d.starts_with('[') && d.ends_with(']');
    !d.is_empty()
        && !d.contains(|c: char| c.is_whitespace() || matches!(c, '@' | '/' | ';' | '?'))
        && (bracketed || !d.contains(':'))
}
