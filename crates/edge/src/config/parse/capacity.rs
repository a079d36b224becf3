//! The capacity keys of an `[[edge]]` (`cps`, `channels`,
//! `capacity_failover`, `capacity_code`, `max_call_duration`) and of a destination (`cps`,
//! `channels`).

use super::{Result, Table};
use crate::config::addr;
use crate::config::model::Capacity;

/// The highest `cps` or `channels` accepted: far beyond one node, low
/// enough that no arithmetic on it overflows.
const MOST: i64 = 10_000_000;

/// The `capacity_failover` entry that stands for every other live node of
/// the cluster.
const CLUSTER: &str = "cluster";

/// Failure codes whose answer must carry a header a refusal has nothing
/// for (WWW-Authenticate, Allow, Proxy-Authenticate, Unsupported,
/// Min-Expires).
const NEEDS_HEADERS: [u16; 5] = [401, 405, 407, 420, 423];

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
            if sip::reason::phrase(code).is_none() || NEEDS_HEADERS.contains(&code) {
                return Err(cx.err(
                    v.span().start,
                    "capacity_code",
                    format!(
                        "{code} is not a code sipedge answers with: expected a failure code of \
                         RFC 3261 §21 that needs no header of its own, e.g. 503, 480, 486, 403"
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
