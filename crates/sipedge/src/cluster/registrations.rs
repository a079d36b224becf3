//! The built-in registrar's bindings across the cluster (see
//! [`edge::registrar::shared`]): per edge, a hash of every address of
//! record's bindings and a stream of which changed and where. Every
//! exchange this node writes the addresses of record REGISTERs changed
//! here and announces them; it reads the others' announcements and
//! replaces its copy of each. A node that starts loads the whole hash
//! first. Any node then routes a request for any registered phone from
//! memory, whichever node took its REGISTER.

use super::store::Conn;
use edge::proxy::Edge;
use edge::registrar::{Record, Registrar};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Instant, SystemTime};

/// Changes kept in each stream, about.
const KEPT: usize = 100_000;
/// Changes read at once.
const READ: usize = 5000;

/// One announcement: the address of record (as text: the registrar's
/// key is `user@host`) and the node that changed it.
#[derive(Serialize, Deserialize)]
struct Change {
    aor: String,
    node: String,
}

/// Where one edge's exchange stands.
#[derive(Default)]
pub struct Follow {
    /// The last announcement read, per edge; none: load the hash first.
    last: HashMap<String, String>,
}

fn keys(edge: &str) -> (String, String) {
    let tag = format!("{{edge/{edge}}}");
    (
        format!("sipedge:reg:{tag}"),
        format!("sipedge:reg:{tag}:changes"),
    )
}

fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Follow {
    /// Writes what changed here on `edge`'s registrar and applies what
    /// changed elsewhere; `Ok(n)`: the Redis calls made (0: no registrar).
    pub async fn exchange(&mut self, mut conn: Conn, edge: &Edge, me: &str) -> Result<u64, String> {
        let Some(reg) = edge.registrar() else {
            return Ok(0);
        };
        reg.outbox().share(true);
        let err = |e: redis::RedisError| e.to_string();
        let (all, changes) = keys(&edge.name);
        let now = Instant::now();
        let to_unix = reg.to_unix(now, unix_s());
        let mut calls = 0;
        if !self.last.contains_key(&edge.name) {
            let from = super::store::newest(&mut conn, &changes).await?;
            let held: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(&all)
                .query_async(&mut conn)
                .await
                .map_err(err)?;
            calls += 2;
            for (aor, text) in &held {
                import(reg, aor, Some(text), to_unix);
            }
            self.last.insert(edge.name.clone(), from);
        }
        let changed = reg.outbox().take();
        if !changed.is_empty() {
            let mut pipe = redis::pipe();
            for aor in &changed {
                let records = reg.export(aor, now, to_unix);
                let text = String::from_utf8_lossy(aor).into_owned();
                if records.is_empty() {
                    pipe.cmd("HDEL").arg(&all).arg(&text).ignore();
                } else {
                    let json = serde_json::to_string(&records).unwrap_or_default();
                    pipe.cmd("HSET").arg(&all).arg(&text).arg(json).ignore();
                }
                let change = Change {
                    aor: text,
                    node: me.to_owned(),
                };
                pipe.cmd("XADD")
                    .arg(&changes)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(KEPT)
                    .arg("*")
                    .arg("c")
                    .arg(serde_json::to_string(&change).unwrap_or_default())
                    .ignore();
            }
            calls += 1;
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                reg.outbox().requeue(changed);
                return Err(e.to_string());
            }
        }
        let last = self
            .last
            .get(&edge.name)
            .cloned()
            .unwrap_or_else(|| "0".into());
        let read = super::store::follow(&mut conn, &changes, &last, READ, "c").await?;
        calls += 1;
        let mut theirs = Vec::new();
        for (id, text) in read {
            self.last.insert(edge.name.clone(), id);
            let Some(c) = text.and_then(|t| serde_json::from_str::<Change>(&t).ok()) else {
                continue;
            };
            if c.node != me && !theirs.contains(&c.aor) {
                theirs.push(c.aor);
            }
        }
        if !theirs.is_empty() {
            let held: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&all)
                .arg(&theirs)
                .query_async(&mut conn)
                .await
                .map_err(err)?;
            calls += 1;
            for (aor, text) in theirs.iter().zip(held) {
                import(reg, aor, text.as_deref(), to_unix);
            }
        }
        Ok(calls)
    }
}

/// Replaces `aor`'s bindings with the stored `text` (none: removed).
fn import(reg: &Registrar, aor: &str, text: Option<&str>, to_unix: i64) {
    let records: Vec<Record> = text
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    reg.import(aor.as_bytes(), &records, to_unix);
}
