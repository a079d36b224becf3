//! The capacity keys of an `[[edge]]` (`cps`, `channels`,
//! `capacity_failover`, `capacity_code`, `max_call_duration`) and of a
//! destination (`cps`, `channels`).

use super::{Result, Table};
use crate::config::addr;
use crate::config::model::Capacity;

/// The highest `cps` or `channels` accepted: far beyond one node, low
/// enough that no arithmetic on it overflows.
const MOST: i64 = 10_000_000;

/// The `capacity_failover` entry that stands for every other live node of
/// the cluster.
const CLUSTER: &str = "cluster";

/// The codes a call beyond capacity may get (`capacity_code`): those that
/// say "not now" or "not here" and need no header of their own. 6xx tells
/// the caller to try no other route — for carriers who want exactly that.
const REFUSALS: [u16; 10] = [403, 404, 480, 486, 500, 502, 503, 504, 600, 603];

/// A whole-number limit, or `None` when the key is absent.
pub(super) fn limit(t: &Table<'_, '_>, key: &str) -> Result<Option<u32>> {
    t.get(key)
        .map(|v| t.cx.int(v, key, 1, MOST).map(|n| n as u32))
        .transpose()
}

/// Reads an edge's capacity keys; every one is optional.
pub(super) fn capacity(t: &Table<'_, '_>) -> Result<Capacity> {
    let cx = t.cx;
    let d = Capacity::default();
    let mut failover = Vec::new();
    let mut failover_cluster = None;
    if let Some(v) = t.get("capacity_failover") {
        for (uri, at) in cx.string_array(v, "capacity_failover")? {
            if uri == CLUSTER {
                failover_cluster = Some(cx.line(at));
                continue;
            }
            addr::sip_uri(uri).map_err(|m| {
                cx.err(
                    at,
                    "capacity_failover",
                    format!(
                        "{m} (expected another node's SIP URI, e.g. \"sip:198.51.100.2:5060\", \
                         or \"cluster\" for the cluster's other live nodes)"
                    ),
                )
            })?;
            failover.push(uri.to_owned());
        }
    }
    let max_call_duration = t
        .get("max_call_duration")
        .map_or(Ok(d.max_call_duration), |v| {
            cx.seconds(v, "max_call_duration", 60.0, 7.0 * 86_400.0)
        })?;
    let code = match t.get("capacity_code") {
        None => d.code,
        Some(v) => {
            let code = cx.int(v, "capacity_code", 400, 699)? as u16;
            if !REFUSALS.contains(&code) {
                return Err(cx.err(
                    v.span().start,
                    "capacity_code",
                    format!(
                        "{code} does not say \"no room now\": expected one of {}",
                        REFUSALS.map(|c| c.to_string()).join(", ")
                    ),
                ));
            }
            code
        }
    };
    Ok(Capacity {
        cps: limit(t, "cps")?,
        channels: limit(t, "channels")?,
        failover,
        failover_cluster,
        code,
        max_call_duration,
    })
}
