//! `[[edge.peer]]`: named sources of requests, and what is rewritten in
//! what they send (`[edge.peer.in]`) and in what is sent to them
//! (`[edge.peer.out]`): number rules, the `tel:`/`sip:` form, header
//! policy. Each number rule's `examples` are run here, so `sipedge check`
//! and a reload refuse a rule that does not do what its examples say.

use super::{networks, Cx, DeValue, Result, Table, Value};
use crate::config::model::{Peer, Rewrites, Transport};
use crate::header_policy::{self, HeaderPolicy, Name};
use crate::numbers::{Field, Fields, Pattern, Rewrite, Rule, Rules, UriForm};

/// Keys of `[[edge.peer]]`.
const PEER_KEYS: &[&str] = &["name", "sources", "user_agent", "transport", "in", "out"];
/// Keys of `[edge.peer.in]` and `[edge.peer.out]`.
const DIRECTION_KEYS: &[&str] = &["number", "tel", "remove", "allow", "replace", "add"];
/// Keys of a `number` rule.
const RULE_KEYS: &[&str] = &[
    "match",
    "replace",
    "e164",
    "national_prefix",
    "international_prefix",
    "strip_prefix",
    "add_prefix",
    "fields",
    "examples",
];
/// The most memory one `match` may compile to: far above any number
/// pattern, far below what would hurt a node.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Reads an edge's `[[edge.peer]]` tables: a unique name each, and at
/// least one condition (a peer matching everything would hide the ones
/// after it).
pub(super) fn peers(t: &Table<'_, '_>) -> Result<Vec<Peer>> {
    let cx = t.cx;
    let Some(v) = t.get("peer") else {
        return Ok(Vec::new());
    };
    let DeValue::Array(items) = v.get_ref() else {
        return Err(cx.err(
            v.span().start,
            "peer",
            "expected [[edge.peer]] tables (double brackets)",
        ));
    };
    let mut peers: Vec<Peer> = Vec::new();
    for item in items {
        let p = cx.table(item, "peer", "[[edge.peer]]")?;
        p.check_keys(PEER_KEYS, |_| None)?;
        let n = p.required("name", "the peer's name, e.g. \"carrier-a\"")?;
        let name = cx.string(n, "name")?;
        let well_formed = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !well_formed {
            return Err(cx.err(
                n.span().start,
                "name",
                format!("{name:?}: letters, digits, '-', '_' and '.' only"),
            ));
        }
        if peers.iter().any(|q| q.name == name) {
            return Err(cx.err(
                n.span().start,
                "name",
                format!("{name:?} names another peer of this edge already"),
            ));
        }
        let sources = match p.get("sources") {
            Some(v) => networks(cx, v, "sources")?,
            None => Vec::new(),
        };
        let user_agent = p
            .get("user_agent")
            .map(|v| cx.string(v, "user_agent").map(str::to_owned))
            .transpose()?
            .filter(|u| !u.is_empty());
        let transport = match p.get("transport") {
            Some(v) => {
                let s = cx.string(v, "transport")?;
                Some(Transport::from_name(s.as_bytes()).ok_or_else(|| {
                    cx.err(
                        v.span().start,
                        "transport",
                        format!("{s:?} is not one of udp, tcp, tls, ws, wss"),
                    )
                })?)
            }
            None => None,
        };
        if sources.is_empty() && user_agent.is_none() {
            return Err(cx.err(
                n.span().start,
                "sources",
                "give `sources` (networks) or `user_agent`, or both: a peer must be told apart",
            ));
        }
        let from_peer = rewrites(cx, p.get("in"), "in")?;
        let to_peer = rewrites(cx, p.get("out"), "out")?;
        if sources.is_empty() && !to_peer.is_empty() {
            return Err(cx.err(
                p.get("out").map_or(n.span().start, |v| v.span().start),
                "out",
                "needs `sources`: a request is found to go to this peer by its next hop's address",
            ));
        }
        peers.push(Peer {
            name: name.to_owned(),
            sources,
            user_agent,
            transport,
            from_peer,
            to_peer,
        });
    }
    Ok(peers)
}

/// Reads `[edge.peer.in]` or `[edge.peer.out]` (`key`); errors name
/// their keys as `in.<key>`.
fn rewrites(cx: &Cx<'_>, v: Option<&Value<'_>>, key: &'static str) -> Result<Rewrites> {
    let Some(v) = v else {
        return Ok(Rewrites::default());
    };
    let what = if key == "in" {
        "[edge.peer.in]"
    } else {
        "[edge.peer.out]"
    };
    let mut t = cx.table(v, key, what)?;
    t.prefix = if key == "in" { "in." } else { "out." };
    t.check_keys(DIRECTION_KEYS, |_| None)?;
    let named = |k: &str| format!("{key}.{k}");
    let numbers = match t.get("number") {
        Some(v) => number_rules(cx, v, &named("number"))?,
        None => Rules::default(),
    };
    let tel = match t.get("tel") {
        Some(v) => match cx.string(v, &named("tel"))? {
            "tel" => Some(UriForm::Tel),
            "sip" => Some(UriForm::Sip),
            other => {
                return Err(cx.err(
                    v.span().start,
                    &named("tel"),
                    format!("{other:?}: \"tel\" (tel:+44…) or \"sip\" (sip:+44…@host;user=phone)"),
                ))
            }
        },
        None => None,
    };
    let names = |k: &str| -> Result<Vec<Name>> {
        let Some(v) = t.get(k) else {
            return Ok(Vec::new());
        };
        cx.string_array(v, &named(k))?
            .into_iter()
            .map(|(s, at)| header_name(cx, s, at, &named(k), k == "remove"))
            .collect()
    };
    let remove = names("remove")?;
    let allow = match t.get("allow") {
        Some(_) => Some(names("allow")?),
        None => None,
    };
    let lines = |k: &str| -> Result<Vec<(Name, Box<[u8]>)>> {
        let Some(v) = t.get(k) else {
            return Ok(Vec::new());
        };
        cx.string_array(v, &named(k))?
            .into_iter()
            .map(|(s, at)| header_line(cx, s, at, &named(k)))
            .collect()
    };
    let replace = lines("replace")?;
    let add = lines("add")?.into_iter().map(|(_, l)| l).collect();
    Ok(Rewrites {
        numbers,
        tel,
        headers: HeaderPolicy {
            remove,
            allow,
            replace,
            add,
        },
    })
}

/// A header name of `remove` or `allow`; one SIP needs may be named in
/// `allow` (it is let through anyway) but not removed.
fn header_name(cx: &Cx<'_>, s: &str, at: usize, key: &str, removing: bool) -> Result<Name> {
    let well_formed = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.!%+`'~*".contains(&b))
        && s.find('*').is_none_or(|i| i == s.len() - 1);
    let name = Name::parse(s).filter(|_| well_formed).ok_or_else(|| {
        cx.err(
            at,
            key,
            format!("{s:?} is not a header name (a name, or a prefix ending in '*' like \"X-*\")"),
        )
    })?;
    if removing && header_policy::is_needed(&name) {
        return Err(cx.err(at, key, needed_message(s)));
    }
    Ok(name)
}

fn needed_message(s: &str) -> String {
    format!(
        "{s:?} is a header SIP needs, which a policy never removes, replaces or adds \
         (they are: {})",
        header_policy::NEEDED
    )
}

/// A `Name: value` line of `replace` or `add`.
fn header_line(cx: &Cx<'_>, s: &str, at: usize, key: &str) -> Result<(Name, Box<[u8]>)> {
    let bad = |why: &str| cx.err(at, key, format!("{s:?}: {why}"));
    let Some((name, value)) = s.split_once(':') else {
        return Err(bad("expected \"Name: value\""));
    };
    let name = name.trim();
    if name.contains('*') {
        return Err(bad("a line names one header, not a prefix"));
    }
    let parsed = header_name(cx, name, at, key, false)?;
    if header_policy::is_needed(&parsed) {
        return Err(cx.err(at, key, needed_message(name)));
    }
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(bad("one line: no CR, LF or NUL"));
    }
    let line = format!("{name}: {}", value.trim());
    Ok((parsed, line.into_bytes().into()))
}

/// Reads the `number` rules (an array of tables), each checked against
/// its own `examples`.
fn number_rules(cx: &Cx<'_>, v: &Value<'_>, key: &str) -> Result<Rules> {
    let DeValue::Array(items) = v.get_ref() else {
        return Err(cx.err(
            v.span().start,
            key,
            "expected [[edge.peer.in.number]] tables (double brackets), or an array of \
             inline tables",
        ));
    };
    let mut rules = Vec::with_capacity(items.len());
    for item in items {
        let mut r = cx.table(item, key, "of one number rule")?;
        r.prefix = if key.starts_with("in") {
            "in.number."
        } else {
            "out.number."
        };
        r.check_keys(RULE_KEYS, |_| None)?;
        let rule = number_rule(cx, &r, key)?;
        if let Some(v) = r.get("examples") {
            examples(cx, v, &rule, &format!("{key}.examples"))?;
        }
        rules.push(rule);
    }
    Ok(Rules(rules))
}

/// One rule: exactly one of `replace` (with `match`), `e164`,
/// `strip_prefix`, `add_prefix`; `match` alone is the others' condition.
fn number_rule(cx: &Cx<'_>, r: &Table<'_, '_>, key: &str) -> Result<Rule> {
    let named = |k: &str| format!("{key}.{k}");
    let string = |k: &str| -> Result<Option<(&str, usize)>> {
        r.get(k)
            .map(|v| Ok((cx.string(v, &named(k))?, v.span().start)))
            .transpose()
    };
    let pattern = match string("match")? {
        Some((s, at)) => Some(
            regex::bytes::RegexBuilder::new(s)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map(Pattern)
                .map_err(|e| {
                    let why = e.to_string();
                    let last = why.lines().last().unwrap_or("invalid").trim().to_owned();
                    cx.err(at, &named("match"), format!("{s:?}: {last}"))
                })?,
        ),
        None => None,
    };
    let kinds = ["replace", "e164", "strip_prefix", "add_prefix"];
    let given: Vec<&str> = kinds.into_iter().filter(|k| r.get(k).is_some()).collect();
    if given.len() != 1 {
        return Err(cx.err(
            r.at,
            key,
            format!(
                "a rule does one thing: give exactly one of replace (with match), e164, \
                 strip_prefix, add_prefix{}",
                if given.is_empty() {
                    String::new()
                } else {
                    format!(" (this one gives {})", given.join(", "))
                }
            ),
        ));
    }
    let mut only = pattern.clone();
    let digits = |k: &str, default: &str| -> Result<String> {
        match string(k)? {
            Some((s, at)) if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) => {
                Err(cx.err(at, &named(k), format!("{s:?}: digits only")))
            }
            Some((s, _)) => Ok(s.to_owned()),
            None => Ok(default.to_owned()),
        }
    };
    let rewrite = match given[0] {
        "replace" => {
            let (with, at) = string("replace")?.unwrap_or_default();
            let Some(pattern) = only.take() else {
                return Err(cx.err(
                    at,
                    &named("replace"),
                    "needs `match`: the regular expression whose match it replaces",
                ));
            };
            Rewrite::Replace {
                pattern,
                with: with.to_owned(),
            }
        }
        "e164" => {
            let country = digits("e164", "")?;
            if country.len() > 3 {
                return Err(cx.err(
                    r.get("e164").map_or(r.at, |v| v.span().start),
                    &named("e164"),
                    format!("{country:?}: a country code has one to three digits"),
                ));
            }
            Rewrite::E164 {
                country,
                national: digits("national_prefix", "0")?,
                international: digits("international_prefix", "00")?,
            }
        }
        other => {
            let (p, at) = string(other)?.unwrap_or_default();
            if p.is_empty()
                || p.bytes()
                    .any(|b| b.is_ascii_control() || b == b'@' || b == b' ')
            {
                return Err(cx.err(
                    at,
                    &named(other),
                    format!("{p:?}: the characters of a number's prefix"),
                ));
            }
            if other == "strip_prefix" {
                Rewrite::StripPrefix(p.to_owned())
            } else {
                Rewrite::AddPrefix(p.to_owned())
            }
        }
    };
    let e164 = matches!(rewrite, Rewrite::E164 { .. });
    for k in ["national_prefix", "international_prefix"] {
        if !e164 {
            if let Some(v) = r.get(k) {
                return Err(cx.err(v.span().start, &named(k), "goes with e164 only"));
            }
        }
    }
    let fields = match r.get("fields") {
        Some(v) => {
            let mut set = Vec::new();
            for (s, at) in cx.string_array(v, &named("fields"))? {
                let f = Field::ALL
                    .into_iter()
                    .find(|f| f.name() == s)
                    .ok_or_else(|| {
                        cx.err(
                            at,
                            &named("fields"),
                            format!("{s:?} is not one of ruri, from, to, pai"),
                        )
                    })?;
                set.push(f);
            }
            if set.is_empty() {
                return Err(cx.err(
                    v.span().start,
                    &named("fields"),
                    "names no field (ruri, from, to, pai)",
                ));
            }
            Fields::of(&set)
        }
        None => Fields::ALL,
    };
    Ok(Rule {
        rewrite,
        only,
        fields,
    })
}

/// Runs `rule` on each `[input, expected]` pair of `examples`.
fn examples(cx: &Cx<'_>, v: &Value<'_>, rule: &Rule, key: &str) -> Result<()> {
    let shape = || {
        cx.err(
            v.span().start,
            key,
            "expected pairs of numbers, [[\"0044207946000\", \"+44207946000\"], …]",
        )
    };
    let DeValue::Array(pairs) = v.get_ref() else {
        return Err(shape());
    };
    for pair in pairs {
        let DeValue::Array(two) = pair.get_ref() else {
            return Err(shape());
        };
        let mut two = two.iter();
        let (Some(input), Some(want), None) = (two.next(), two.next(), two.next()) else {
            return Err(shape());
        };
        let (input, want) = (cx.string(input, key)?, cx.string(want, key)?);
        let got = rule
            .apply(input.as_bytes())
            .unwrap_or_else(|| input.as_bytes().to_vec());
        if got != want.as_bytes() {
            return Err(cx.err(
                pair.span().start,
                key,
                format!(
                    "{input:?} becomes {:?} by this rule, not {want:?}",
                    String::from_utf8_lossy(&got)
                ),
            ));
        }
    }
    Ok(())
}
