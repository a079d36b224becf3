//! Bans shared across the cluster: a ban this node makes (a flood, the
//! operator's) or lifts is written to a hash of the bans in force and
//! appended to a stream of changes; every node follows the stream, and a
//! node that (re)starts loads the hash first. The APIBAN feed's bans are
//! not shared: every node polls the feed itself.

use super::store::Conn;
use super::Status;
use edge::bans::{Applied, Ban, Bans, Reason};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The bans in force: address → [`Entry`] (JSON).
const IN_FORCE: &str = "sipedge:bans";
/// The stream of changes: one field `b`, a [`Entry`] (JSON).
const CHANGES: &str = "sipedge:bans:changes";
/// Changes kept in the stream, about: a node that falls further behind
/// than this reloads nothing, so it may miss bans (they expire anyway).
const KEPT: usize = 10_000;
/// Changes read at once.
const READ: usize = 1000;

/// One ban or lift as stored.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct Entry {
    /// The address (in the stream; the hash keys by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<IpAddr>,
    /// When the ban ends (Unix ms); 0: lifted.
    until: u64,
    #[serde(default)]
    reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edge: Option<String>,
    /// The node that made the change (in the stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

impl Entry {
    fn ban(&self) -> Option<Ban> {
        Some(Ban {
            until_ms: self.until,
            reason: Reason::of_name(&self.reason)?,
            edge: self.edge.as_deref().map(Arc::from),
        })
    }
}

/// This node's side of the exchange.
pub struct SharedBans {
    bans: Arc<Bans>,
    out: mpsc::Receiver<Applied>,
    /// The last change read; `None` until the bans in force are loaded.
    last: Option<String>,
}

impl SharedBans {
    pub fn new(bans: Arc<Bans>, out: mpsc::Receiver<Applied>) -> SharedBans {
        SharedBans {
            bans,
            out,
            last: None,
        }
    }

    /// Publishes this node's changes and applies the others'.
    pub async fn exchange(
        &mut self,
        mut conn: Conn,
        me: &str,
        status: &Status,
    ) -> Result<(), String> {
        let calls = &status.redis_calls;
        let err = |e: redis::RedisError| e.to_string();
        if self.last.is_none() {
            // Where the stream is now, then what is in force: a change
            // made between the two is read again, which is harmless.
            let newest = super::store::newest(&mut conn, CHANGES).await?;
            let all: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(IN_FORCE)
                .query_async(&mut conn)
                .await
                .map_err(err)?;
            calls.fetch_add(2, Ordering::Relaxed);
            let now_ms = self.bans.unix_ms(std::time::Instant::now());
            let mut lapsed = Vec::new();
            for (ip, text) in &all {
                let (Ok(ip), Ok(e)) = (ip.parse::<IpAddr>(), serde_json::from_str::<Entry>(text))
                else {
                    continue;
                };
                match e.ban() {
                    Some(b) if b.until_ms > now_ms => {
                        self.bans.shared_ban(ip, b);
                    }
                    _ => lapsed.push(ip.to_string()),
                }
            }
            if !lapsed.is_empty() {
                let _: () = redis::cmd("HDEL")
                    .arg(IN_FORCE)
                    .arg(&lapsed)
                    .query_async(&mut conn)
                    .await
                    .map_err(err)?;
            }
            self.last = Some(newest);
        }
        while let Ok(applied) = self.out.try_recv() {
            let mut pipe = redis::pipe();
            for (ip, ban) in &applied.added {
                let stored = Entry {
                    ip: None,
                    until: ban.until_ms,
                    reason: ban.reason.name().to_owned(),
                    edge: ban.edge.as_deref().map(str::to_owned),
                    node: None,
                };
                pipe.cmd("HSET")
                    .arg(IN_FORCE)
                    .arg(ip.to_string())
                    .arg(json(&stored))
                    .ignore();
                let change = Entry {
                    ip: Some(*ip),
                    node: Some(me.to_owned()),
                    ..stored
                };
                add_change(&mut pipe, &change);
            }
            for ip in &applied.lifted {
                pipe.cmd("HDEL").arg(IN_FORCE).arg(ip.to_string()).ignore();
                let change = Entry {
                    ip: Some(*ip),
                    until: 0,
                    reason: String::new(),
                    edge: None,
                    node: Some(me.to_owned()),
                };
                add_change(&mut pipe, &change);
            }
            calls.fetch_add(1, Ordering::Relaxed);
            let _: () = pipe.query_async(&mut conn).await.map_err(err)?;
        }
        let Some(last) = self.last.clone() else {
            return Ok(());
        };
        let read = super::store::follow(&mut conn, CHANGES, &last, READ, "b").await?;
        calls.fetch_add(1, Ordering::Relaxed);
        for (id, text) in read {
            self.last = Some(id);
            let Some(e) = text.and_then(|t| serde_json::from_str::<Entry>(&t).ok()) else {
                continue;
            };
            let (Some(ip), false) = (e.ip, e.node.as_deref() == Some(me)) else {
                continue;
            };
            match e.ban() {
                Some(b) if e.until > 0 => {
                    self.bans.shared_ban(ip, b);
                }
                _ => {
                    self.bans.shared_lift(ip);
                }
            }
        }
        Ok(())
    }
}

fn json(e: &Entry) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

fn add_change(pipe: &mut redis::Pipeline, change: &Entry) {
    pipe.cmd("XADD")
        .arg(CHANGES)
        .arg("MAXLEN")
        .arg("~")
        .arg(KEPT)
        .arg("*")
        .arg("b")
        .arg(json(change))
        .ignore();
}
