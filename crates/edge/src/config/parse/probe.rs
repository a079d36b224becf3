//! `[edge.probe]`: how an edge health-checks its destinations.

use std::time::Duration;

use super::codes::codes;
use super::{Result, Table};
use crate::config::model::Probe;

/// Keys of `[edge.probe]`.
pub(super) const PROBE_KEYS: &[&str] = &[
    "enabled",
    "interval",
    "timeout",
    "inactive_threshold",
    "active_threshold",
    "alive_codes",
];

/// Reads `[edge.probe]`; every key is optional and defaults as
/// [`Probe::default`] says. Errors name the key as `probe.<key>`.
pub(super) fn probe(t: &Table<'_, '_>) -> Result<Probe> {
    let cx = t.cx;
    t.check_keys(PROBE_KEYS, |_| None)?;
    let defaults = Probe::default();
    let enabled = t
        .get("enabled")
        .map_or(Ok(defaults.enabled), |v| cx.boolean(v, "probe.enabled"))?;
    let interval_value = t.get("interval");
    let interval = interval_value.map_or(Ok(defaults.interval), |v| {
        cx.seconds(v, "probe.interval", 0.1, 3600.0)
    })?;
    let timeout_value = t.get("timeout");
    let timeout = timeout_value.map_or(Ok(defaults.timeout), |v| {
        cx.seconds(v, "probe.timeout", 0.05, 60.0)
    })?;
    // One probe per destination is outstanding at a time: a timeout longer
    // than the interval would silently stretch the interval.
    if timeout > interval {
        let (i, o) = (secs_text(interval), secs_text(timeout));
        return Err(match (timeout_value, interval_value) {
            (Some(v), _) => cx.err(
                v.span().start,
                "probe.timeout",
                format!("{o} s is longer than probe.interval ({i} s); it must not exceed it"),
            ),
            (None, Some(v)) => cx.err(
                v.span().start,
                "probe.interval",
                format!(
                    "{i} s is shorter than probe.timeout ({o} s by default); \
                     lower probe.timeout as well"
                ),
            ),
            // Unreachable with the defaults; kept so a future default change
            // still yields an error rather than a panic.
            (None, None) => cx.err(t.at, "probe.timeout", "must not exceed probe.interval"),
        });
    }
    let threshold = |key: &str, full: &str, default: u32| -> Result<u32> {
        t.get(key)
            .map_or(Ok(default), |v| cx.int(v, full, 1, 100).map(|n| n as u32))
    };
    let inactive_threshold = threshold(
        "inactive_threshold",
        "probe.inactive_threshold",
        defaults.inactive_threshold,
    )?;
    let active_threshold = threshold(
        "active_threshold",
        "probe.active_threshold",
        defaults.active_threshold,
    )?;
    let alive_codes = match t.get("alive_codes") {
        Some(v) => codes(cx, v, "probe.alive_codes", alive_class)?,
        None => defaults.alive_codes,
    };
    Ok(Probe {
        enabled,
        interval,
        timeout,
        inactive_threshold,
        active_threshold,
        alive_codes,
        line: cx.line(t.at),
    })
}

/// A duration in seconds as an operator writes it: `2`, `0.5`.
pub(super) fn secs_text(d: Duration) -> String {
    d.as_secs_f64().to_string()
}

/// Which classes `alive_codes` may name: any final response.
fn alive_class(class: u16, s: &str) -> std::result::Result<(), String> {
    match class {
        2..=6 => Ok(()),
        1 => Err(format!(
            "{s:?} is provisional: a probe waits for a final response (200 to 699)"
        )),
        _ => Err(format!(
            "{s:?} is not a SIP status code (final codes are 200 to 699)"
        )),
    }
}
