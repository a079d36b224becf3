//! Calls in progress across the cluster (`channels` of an edge and of its
//! destinations): each node records the calls answered through it and
//! the BYEs it saw, every exchange, in one script call per edge; Redis
//! answers the cluster's counts, which become the node's counters. A
//! call answered through one node and ended through another so frees its
//! channel on both.
//!
//! Per edge, under one hash tag (one slot of a Redis Cluster): a sorted
//! set of its calls and one per destination, scored by when the call is
//! forgotten (`max_call_duration` after its 2xx: a lost BYE), and a key
//! per call naming its destination. A BYE that comes before its call's
//! 2xx was recorded (the two passed different nodes within one exchange)
//! leaves a tombstone for a minute, so the late 2xx does not count a call
//! that is over.

use super::store::Conn;
use edge::limits::{ChannelChange, Channels, DestCalls};
use edge::proxy::Edge;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// `KEYS[1]` the edge's calls, `KEYS[2..]` its destinations' (in config
/// order). `ARGV`: the age at which a call is forgotten (ms), the prefix
/// of a call's key, and the changes packed in one string (Redis unpacks
/// them, so that this node builds one argument, not three per call): per
/// change 19 bytes, `u` or `d`, the call's key (16 hex digits), and for
/// `u` its destination's position in `KEYS` (2 hex digits from 0; `ff`:
/// none). A call's key holds its destination's set. Answers the count of
/// each key.
const SYNC: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local age = tonumber(ARGV[1])
local calls, packed = ARGV[2], ARGV[3]
for at = 1, #packed - 18, 19 do
  local op, key = string.sub(packed, at, at), string.sub(packed, at + 1, at + 16)
  local ck = calls .. key
  if op == 'u' then
    local d = KEYS[tonumber(string.sub(packed, at + 17, at + 18), 16) + 2] or ''
    if redis.call('SET', ck, d, 'PX', age, 'NX') then
      redis.call('ZADD', KEYS[1], now + age, key)
      if d ~= '' then redis.call('ZADD', d, now + age, key) end
    end
  else
    local was = redis.call('GET', ck)
    if was and was ~= '' and was ~= '-' then redis.call('ZREM', was, key) end
    redis.call('SET', ck, '-', 'PX', 60000)
    redis.call('ZREM', KEYS[1], key)
  end
end
local out = {}
for i, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  out[i] = redis.call('ZCARD', k)
end
return out
";

/// Changes recorded by one script call, at most.
const CHUNK: usize = 1000;

/// The prefix of every key of edge `name`: its hash tag.
fn tag(name: &str) -> String {
    format!("{{edge/{name}}}")
}

/// Records `edge`'s changes in Redis and takes the cluster's counts; the
/// changes are put back if Redis fails. `Ok(false)`: the edge counts no
/// channels.
pub async fn exchange(mut conn: Conn, edge: &Edge) -> Result<bool, String> {
    let Some((calls, dest_calls)) = edge.limits().channels() else {
        return Ok(false);
    };
    calls.share(true);
    let changes = calls.take_changes();
    let tag = tag(&edge.name);
    let dests = edge.destinations();
    // A destination's position among the keys (its index), if configured.
    let index_of = |d: &DestCalls| {
        dest_calls
            .iter()
            .position(|c| Arc::ptr_eq(c, d))
            .filter(|&i| i < dests.len() && i < 0xff)
            .unwrap_or(0xff)
    };
    let script = redis::Script::new(SYNC);
    let max_age_ms = (calls.max_age_ns() / 1_000_000).max(1);
    // A script holds Redis while it runs: the changes go in chunks, so
    // that no lease (another node's, too) waits long behind them.
    let mut rest = changes.as_slice();
    loop {
        let (chunk, after) = rest.split_at(rest.len().min(CHUNK));
        let mut packed = String::with_capacity(chunk.len() * 19);
        for c in chunk {
            use std::fmt::Write;
            let _ = match c {
                ChannelChange::Up(key, dest) => write!(packed, "u{key:016x}{:02x}", index_of(dest)),
                ChannelChange::Down(key) => write!(packed, "d{key:016x}ff"),
            };
        }
        let mut inv = script.key(format!("sipedge:calls:{tag}"));
        for d in dests {
            inv.key(format!("sipedge:calls:{tag}:{}", d.uri));
        }
        inv.arg(max_age_ms)
            .arg(format!("sipedge:call:{tag}:"))
            .arg(packed);
        let answer = tokio::time::timeout(
            super::store::RESPONSE_TIMEOUT,
            inv.invoke_async::<Vec<u32>>(&mut conn),
        )
        .await;
        let failed = match answer {
            Ok(Ok(counts)) => {
                if after.is_empty() {
                    set_counts(calls, dest_calls, &counts);
                    return Ok(true);
                }
                rest = after;
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer in time".to_owned(),
        };
        calls.requeue(rest.to_vec());
        return Err(failed);
    }
}

/// The cluster's counts become this node's counters.
fn set_counts(calls: &Channels, dest_calls: &[DestCalls], counts: &[u32]) {
    if let Some(&total) = counts.first() {
        calls.set_total(total);
    }
    for (c, &n) in dest_calls.iter().zip(counts.iter().skip(1)) {
        c.store(n, Ordering::Relaxed);
    }
}
