//! `[edge.transaction]`: timers and failover of the transactional mode.

use super::codes::codes;
use super::probe::secs_text;
use super::{Cx, Result, Table};
use crate::config::model::Transaction;
use crate::transaction::Timers;

/// Keys of `[edge.transaction]`.
const TRANSACTION_KEYS: &[&str] = &[
    "t1",
    "t2",
    "t4",
    "linger",
    "failover_codes",
    "failover_timeout",
    "invite_timeout",
    "max_transactions",
];

/// Reads `[edge.transaction]`; every key is optional and defaults as
/// [`Transaction::default`] says. Errors name the key as `transaction.<key>`.
pub(super) fn transaction(t: &Table<'_, '_>) -> Result<Transaction> {
    let cx: &Cx<'_> = t.cx;
    t.check_keys(TRANSACTION_KEYS, |_| None)?;
    let d = Transaction::default();
    let secs = |key: &str, full: &str, default, lo, hi| {
        t.get(key)
            .map_or(Ok(default), |v| cx.seconds(v, full, lo, hi))
    };
    let t1 = secs("t1", "transaction.t1", d.timers.t1, 0.01, 10.0)?;
    let t2 = secs("t2", "transaction.t2", d.timers.t2, 0.01, 60.0)?;
    let t4 = secs("t4", "transaction.t4", d.timers.t4, 0.01, 60.0)?;
    let linger = secs("linger", "transaction.linger", d.timers.linger, 0.0, 120.0)?;
    // Timer E and G back off from T1 up to T2: a T2 below T1 would make
    // them shrink.
    if t2 < t1 {
        let (key, at) = match (t.get("t2"), t.get("t1")) {
            (Some(v), _) => ("transaction.t2", v.span().start),
            (None, Some(v)) => ("transaction.t1", v.span().start),
            (None, None) => ("transaction.t2", t.at),
        };
        return Err(cx.err(
            at,
            key,
            format!(
                "t2 ({} s) must not be shorter than t1 ({} s)",
                secs_text(t2),
                secs_text(t1)
            ),
        ));
    }
    let failover_codes = match t.get("failover_codes") {
        Some(v) => codes(cx, v, "transaction.failover_codes", failover_class)?,
        None => d.failover_codes,
    };
    let failover_timeout = secs(
        "failover_timeout",
        "transaction.failover_timeout",
        d.failover_timeout,
        0.05,
        300.0,
    )?;
    let invite_timeout = secs(
        "invite_timeout",
        "transaction.invite_timeout",
        d.invite_timeout,
        1.0,
        3600.0,
    )?;
    let max_transactions = t
        .get("max_transactions")
        .map_or(Ok(d.max_transactions), |v| {
            cx.int(v, "transaction.max_transactions", 1, 10_000_000)
                .map(|n| n as usize)
        })?;
    Ok(Transaction {
        timers: Timers { t1, t2, t4, linger },
        failover_codes,
        failover_timeout,
        invite_timeout,
        max_transactions,
        line: cx.line(t.at),
    })
}

/// Which classes `failover_codes` may name: 3xx to 5xx. A 6xx is a global
/// failure that ends the search (RFC 3261 §16.7 step 5); 1xx and 2xx are
/// not failures.
fn failover_class(class: u16, s: &str) -> std::result::Result<(), String> {
    match class {
        3..=5 => Ok(()),
        6 => Err(format!(
            "{s:?} is a global failure: RFC 3261 §16.7 says a 6xx ends the search, \
             so it is never retried on another destination"
        )),
        1 | 2 => Err(format!(
            "{s:?} is not a failure (failover codes are 300 to 599)"
        )),
        _ => Err(format!(
            "{s:?} is not a SIP status code (failover codes are 300 to 599)"
        )),
    }
}
