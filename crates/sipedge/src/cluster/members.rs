//! Node membership: each node renews its entry every second with a
//! 3-second lease (a sorted set scored by when the lease ends, on Redis's
//! clock) and reads who else is alive. The live count is what each limit
//! is shared by, and what a node falls back on when Redis goes away.

use super::store::Conn;
use edge::config::Config;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long a node counts as alive after its last renewal, in ms.
const LEASE_MS: u64 = 3000;

/// The live nodes (scored by lease end) and their details, under one
/// hash tag so that a Redis Cluster keeps them in one slot.
const NODES: &str = "sipedge:{nodes}";
const INFO: &str = "sipedge:{nodes}:info";

/// Renews `ARGV[1]`'s lease of `ARGV[2]` ms with details `ARGV[3]`, drops
/// the lapsed, and answers the details of every live node.
const BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(gone) do redis.call('HDEL', KEYS[2], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for i, id in ipairs(ids) do out[i] = redis.call('HGET', KEYS[2], id) or '' end
return out
";

/// One node of the cluster, as it describes itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Member {
    /// `[node] id`.
    pub id: String,
    /// `[node] zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Its node-to-node link address (`[cluster] listen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Per edge name, the SIP URIs (one per transport) at which it serves
    /// that edge on its own address (see
    /// [`edge::config::Edge::own_uris`]): where the others'
    /// `capacity_failover = ["cluster"]` redirects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sip: BTreeMap<String, Vec<String>>,
}

impl Member {
    /// This node.
    pub fn of(cfg: &Config) -> Member {
        Member {
            id: cfg.node.id.clone(),
            zone: cfg.node.zone.clone(),
            link: cfg
                .cluster
                .as_ref()
                .and_then(|c| c.listen)
                .map(|a| a.to_string()),
            sip: cfg
                .edges
                .iter()
                .map(|e| {
                    let uris = e.own_uris(&cfg.node).into_iter().map(|(_, u)| u);
                    (e.name.clone(), uris.collect::<Vec<_>>())
                })
                .filter(|(_, uris)| !uris.is_empty())
                .collect(),
        }
    }
}

/// Takes node `id` out of the membership (a planned stop).
pub async fn leave(mut conn: Conn, id: &str) -> Result<(), String> {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .zrem(NODES, id)
        .ignore()
        .hdel(INFO, id)
        .ignore();
    tokio::time::timeout(
        super::store::RESPONSE_TIMEOUT,
        pipe.query_async::<()>(&mut conn),
    )
    .await
    .map_err(|_| "no answer in time".to_owned())?
    .map_err(|e| e.to_string())
}

/// The SIP URIs the live nodes other than `me` offer for edge `edge`, in
/// the order of their ids (as [`beat`] answers them), so that every node
/// redirects a Call-ID to the same one; without `me`'s own URIs (two
/// nodes given one public address would redirect to themselves) and
/// without repeats.
pub fn offers<'a>(members: &'a [Member], me: &Member, edge: &str) -> Vec<&'a str> {
    let own = me.sip.get(edge);
    let mut out: Vec<&str> = Vec::new();
    for m in members.iter().filter(|m| m.id != me.id) {
        for uri in m.sip.get(edge).into_iter().flatten() {
            if !own.is_some_and(|o| o.contains(uri)) && !out.contains(&uri.as_str()) {
                out.push(uri);
            }
        }
    }
    out
}

/// Renews `me` and answers the live nodes.
pub async fn beat(mut conn: Conn, me: &Member) -> Result<Vec<Member>, String> {
    let details = serde_json::to_string(me).map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(
        super::store::RESPONSE_TIMEOUT,
        redis::Script::new(BEAT)
            .key(NODES)
            .key(INFO)
            .arg(&me.id)
            .arg(LEASE_MS)
            .arg(details)
            .invoke_async::<Vec<String>>(&mut conn),
    )
    .await
    .map_err(|_| "no answer in time".to_owned())?
    .map_err(|e| e.to_string())?;
    let mut members: Vec<Member> = answer
        .iter()
        .filter_map(|d| serde_json::from_str::<Member>(d).ok())
        .collect();
    members.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str, public: &str) -> Config {
        let text = format!(
            "[node]\nid = \"{id}\"\n{public}\n[cluster]\nredis = \"redis://127.0.0.1:6379\"\n\
             [[edge]]\nname = \"a\"\nlisten = [\"udp:127.0.0.1:5060\"]\n\
             [[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n\
             [[edge]]\nname = \"b\"\nlisten = [\"tcp:127.0.0.1:5080\"]\n\
             [[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n"
        );
        edge::config::parse(&text, "t.toml").expect("config")
    }

    #[test]
    fn a_node_offers_its_public_address_per_edge_and_skips_itself() {
        let one = Member::of(&config("one", "public_address = \"198.51.100.1\""));
        assert_eq!(one.sip["a"], ["sip:198.51.100.1:5060"]);
        assert_eq!(one.sip["b"], ["sip:198.51.100.1:5080;transport=tcp"]);
        let two = Member::of(&config("two", "public_address = \"198.51.100.2\""));
        let twin = Member::of(&config("twin", "public_address = \"198.51.100.2\""));
        let silent = Member::of(&config("three", ""));
        assert!(silent.sip.is_empty());
        // What Redis stores and answers: a node without addresses writes
        // none, and an older node's entry (no `sip`) still reads.
        let json = serde_json::to_string(&silent).unwrap();
        assert!(!json.contains("sip"), "{json}");
        let old: Member = serde_json::from_str(r#"{"id":"old"}"#).unwrap();
        let all = [one.clone(), old, silent, two.clone(), twin];
        // twin offers what two does: once.
        assert_eq!(offers(&all, &one, "a"), ["sip:198.51.100.2:5060"]);
        // two never redirects to its own address, whoever else offers it.
        assert_eq!(
            offers(&all, &two, "b"),
            ["sip:198.51.100.1:5080;transport=tcp"]
        );
        assert!(offers(&all, &one, "nowhere").is_empty());
    }
}
