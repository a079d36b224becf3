//! Cluster state in Redis (`[cluster] redis` or `redis_cluster`; DESIGN
//! principle 6): one task on the main runtime keeps this node's share of
//! what the cluster counts together —
//!
//! - **membership**: every second the node writes its id, zone, link
//!   address and the SIP address it offers per edge with a 3-second
//!   lease, and reads who else is alive: the live count shares the
//!   limits, the others' link addresses join `[cluster] peers` for the
//!   node-to-node relay, and their SIP addresses are where
//!   `capacity_failover = ["cluster"]` redirects;
//! - **calls per second**: each limit's leases (see
//!   [`edge::limits::SharedRate`]), asked for every 5 ms when due;
//! - **bans**: what this node bans or lifts is published (a hash of the
//!   bans in force, and a stream of changes the other nodes follow every
//!   250 ms);
//! - **channels**: the calls answered and ended here are recorded every
//!   250 ms, and the cluster's counts of calls in progress taken back;
//! - **registrations**: the built-in registrar's bindings changed here are
//!   written every 250 ms, and the others' changes applied to this node's
//!   copy.
//!
//! The forwarding path never waits for any of it. When Redis does not
//! answer (an error, or no answer within [`store::RESPONSE_TIMEOUT`]),
//! every limit falls back to this node's share (the limit over the nodes
//! it last knew alive), which is logged once and shown in `/health` and
//! `/api/cluster`; the task keeps knocking every second, and the first
//! answer puts the limits back on shared counting.

mod channels;
mod members;
mod registrations;
mod shared_bans;
mod store;

use arc_swap::ArcSwap;
use edge::bans::{Applied, Bans};
use edge::config::Config;
use edge::limits::SharedRate;
use edge::proxy::Edge;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// How often due leases are asked for: a lease lasts a quarter of a
/// node's share of a second and the next is asked at half of it, so at
/// any rate a node has tens of milliseconds in hand.
const LEASE_EVERY: Duration = Duration::from_millis(20);
/// How often the node renews its membership, and knocks while Redis is
/// down.
const BEAT_EVERY: Duration = Duration::from_secs(1);
/// How often bans and calls in progress are exchanged.
const BANS_EVERY: Duration = Duration::from_millis(250);

/// The Lua script that leases tokens of one limit from the current second
/// of Redis's clock: `KEYS[1]` the limit, `ARGV` its calls per second, the
/// tokens wanted, the calls owed (charged first, even past the limit: they
/// were admitted) and the live node count. Near the limit what is left is
/// split between the nodes. Answers the tokens granted and Redis's time in
/// Unix milliseconds.
const LEASE: &str = r"
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(t[1])
local limit, want, owed, nodes = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local used = 0
if tonumber(redis.call('HGET', KEYS[1], 'w') or '-1') == w then
  used = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
end
used = used + owed
local left = limit - used
local grant = 0
if left > 0 then
  grant = math.min(want, left)
  if left < want * nodes then grant = math.min(grant, math.ceil(left / nodes)) end
end
redis.call('HSET', KEYS[1], 'w', w, 'n', used + grant)
redis.call('PEXPIRE', KEYS[1], 5000)
return {grant, ms}
";

/// Where the cluster store stands, for `/health` and `/api/cluster`.
#[derive(Debug, Default)]
pub struct Status {
    state: Mutex<State>,
    /// Why the exchange task last failed, for the lease task to act on.
    exchange_failed: Mutex<Option<String>>,
    /// Redis calls made (leases, heartbeats, bans).
    pub redis_calls: AtomicU64,
    /// Leases granted, and the tokens in them.
    pub leases: AtomicU64,
    /// Tokens granted by leases.
    pub tokens: AtomicU64,
    /// The Redis connection, once made (shared with both tasks).
    conn: Arc<Mutex<Option<store::Conn>>>,
    /// This node's id in the membership.
    id: String,
    /// The node is stopping and has left the membership: no more beats.
    left: std::sync::atomic::AtomicBool,
}

impl Status {
    /// Takes this node out of the membership at once, at a planned stop,
    /// so that no other node redirects calls to it (`capacity_failover =
    /// ["cluster"]`) or counts it in the limits' shares for the rest of its
    /// lease; waits [`store::RESPONSE_TIMEOUT`] at most.
    pub async fn leave(&self) {
        self.left.store(true, Ordering::Relaxed);
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(conn) = conn else {
            return;
        };
        match members::leave(conn, &self.id).await {
            Ok(()) => tracing::info!("cluster: left the membership"),
            Err(e) => {
                tracing::info!("cluster: could not leave the membership ({e}); its lease runs out")
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
struct State {
    up: bool,
    /// Since when `up` has held (Unix seconds).
    since: u64,
    /// Why Redis is down.
    error: Option<String>,
    /// The live nodes Redis last listed (this one included).
    members: Vec<members::Member>,
    /// The node count limits are shared by.
    nodes: u32,
}

/// `/health`'s `cluster` and `GET /api/cluster`.
#[derive(Serialize)]
pub struct StatusBody {
    /// `up` or `down`.
    pub redis: &'static str,
    /// Seconds since it went up or down.
    pub for_s: u64,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `shared` (Redis counts), or `local share` (this node counts its
    /// share of each limit alone).
    pub counting: &'static str,
    /// The node count each limit is shared by.
    pub nodes: u32,
    /// The live nodes Redis last listed.
    pub members: Vec<members::Member>,
    /// Redis calls made.
    pub redis_calls: u64,
    /// Leases granted, and calls-per-second tokens in them.
    pub leases: u64,
    /// Tokens granted by the leases.
    pub tokens: u64,
}

impl Status {
    /// The status now.
    pub fn body(&self) -> StatusBody {
        let s = self.state();
        StatusBody {
            redis: if s.up { "up" } else { "down" },
            for_s: unix_s().saturating_sub(s.since),
            error: s.error.clone(),
            counting: if s.up { "shared" } else { "local share" },
            nodes: s.nodes,
            members: s.members.clone(),
            redis_calls: self.redis_calls.load(Ordering::Relaxed),
            leases: self.leases.load(Ordering::Relaxed),
            tokens: self.tokens.load(Ordering::Relaxed),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Starts the cluster task when `[cluster]` names a Redis; `None` else.
/// `bans_out` carries what this node's ban upkeep applied.
pub fn spawn(
    cfg: &Config,
    edges: Vec<Arc<ArcSwap<Edge>>>,
    bans: Arc<Bans>,
    bans_out: mpsc::Receiver<Applied>,
    peers: Option<Arc<crate::shard::link::Peers>>,
) -> Option<Arc<Status>> {
    let cluster = cfg.cluster.as_ref()?;
    let redis = cluster.redis.clone()?;
    // Until Redis says otherwise: the nodes this node knows of.
    let nodes = u32::try_from(cluster.peers.len() + 1).unwrap_or(u32::MAX);
    let me = members::Member::of(cfg);
    let status = Arc::new(Status {
        id: me.id.clone(),
        ..Status::default()
    });
    {
        let mut s = status.state();
        s.nodes = nodes;
        s.since = unix_s();
        s.error = Some("not connected yet".into());
    }
    let conn = Arc::clone(&status.conn);
    let exchange = Exchange {
        conn: Arc::clone(&conn),
        status: Arc::clone(&status),
        edges: edges.clone(),
        me: me.id.clone(),
        shared_bans: shared_bans::SharedBans::new(bans, bans_out),
        registrations: registrations::Follow::default(),
    };
    let task = Task {
        redis,
        redis_ca: cluster.redis_ca.clone(),
        conn,
        status: Arc::clone(&status),
        edges,
        rates: Vec::new(),
        me,
        peers,
        configured_peers: cluster.peers.clone(),
    };
    tokio::spawn(task.run());
    tokio::spawn(exchange.run());
    Some(status)
}

/// Limits by the name the cluster shares them under.
type Named = Vec<(String, Arc<SharedRate>)>;

/// The lease task: membership and leases, so that no exchange of bans,
/// calls or bindings (which may take Redis a while) holds a lease up.
struct Task {
    redis: edge::config::Redis,
    /// `[cluster] redis_ca`.
    redis_ca: Option<std::path::PathBuf>,
    /// The connection, once made (shared with the exchange task).
    conn: Arc<Mutex<Option<store::Conn>>>,
    status: Arc<Status>,
    edges: Vec<Arc<ArcSwap<Edge>>>,
    /// Each edge's snapshot as last seen, and its limits.
    rates: Vec<(Arc<Edge>, Named)>,
    me: members::Member,
    /// The link's peers, which the members Redis lists join.
    peers: Option<Arc<crate::shard::link::Peers>>,
    /// `[cluster] peers`.
    configured_peers: Vec<std::net::SocketAddr>,
}

impl Task {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(LEASE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat_at = Instant::now();
        loop {
            tick.tick().await;
            let now = Instant::now();
            self.refresh_rates();
            let failed = self
                .status
                .exchange_failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(why) = failed {
                self.down(why);
            }
            if now >= beat_at {
                beat_at = now + BEAT_EVERY;
                self.beat().await;
            }
            if !self.up() {
                continue;
            }
            self.lease(now).await;
        }
    }

    fn conn(&self) -> Option<store::Conn> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn up(&self) -> bool {
        self.status.state().up
    }

    /// Picks up the limits of edges a reload replaced, and puts new ones
    /// on the cluster's counting.
    fn refresh_rates(&mut self) {
        let (up, nodes) = {
            let s = self.status.state();
            (s.up, s.nodes)
        };
        for (i, slot) in self.edges.iter().enumerate() {
            let edge = slot.load_full();
            let fresh = self
                .rates
                .get(i)
                .is_none_or(|(seen, _)| !Arc::ptr_eq(seen, &edge));
            if !fresh {
                continue;
            }
            let rates = edge.shared_rates();
            for (_, r) in &rates {
                r.with_cluster(nodes, up, Instant::now());
            }
            if i < self.rates.len() {
                self.rates[i] = (edge, rates);
            } else {
                self.rates.push((edge, rates));
            }
        }
    }

    fn all_rates(&self) -> impl Iterator<Item = &(String, Arc<SharedRate>)> {
        self.rates.iter().flat_map(|(_, r)| r.iter())
    }

    /// Renews membership (connecting first if need be); on an answer, the
    /// node count and the mode of every limit follow it.
    async fn beat(&mut self) {
        if self.conn().is_none() {
            match tokio::time::timeout(
                store::RESPONSE_TIMEOUT * 4,
                store::connect(&self.redis, self.redis_ca.as_deref()),
            )
            .await
            {
                Ok(Ok(c)) => *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c),
                Ok(Err(e)) => return self.down(format!("cannot connect: {e}")),
                Err(_) => return self.down("cannot connect: timed out".into()),
            }
        }
        let Some(conn) = self.conn() else {
            return;
        };
        if self.status.left.load(Ordering::Relaxed) {
            return;
        }
        self.status.redis_calls.fetch_add(1, Ordering::Relaxed);
        match members::beat(conn, &self.me).await {
            Ok(members) => {
                let nodes = u32::try_from(members.len()).unwrap_or(u32::MAX).max(1);
                let was_up = {
                    let mut s = self.status.state();
                    let was = s.up;
                    if !was {
                        s.up = true;
                        s.since = unix_s();
                        s.error = None;
                    }
                    s.nodes = nodes;
                    s.members = members;
                    was
                };
                if !was_up {
                    tracing::info!(
                        nodes,
                        "cluster: Redis answers; limits are counted across the cluster"
                    );
                }
                for (_, r) in self.all_rates() {
                    r.with_cluster(nodes, true, Instant::now());
                }
                self.follow_members();
                self.offer_members(true);
            }
            Err(e) => self.down(e),
        }
    }

    /// The link's peers: the configured ones and every other live member
    /// with a link address.
    fn follow_members(&self) {
        let Some(peers) = &self.peers else {
            return;
        };
        let own = self.me.link.as_deref();
        let mut addrs = self.configured_peers.clone();
        let members = self.status.state().members.clone();
        for m in &members {
            let Some(link) = m.link.as_deref().filter(|&l| Some(l) != own) else {
                continue;
            };
            if let Ok(a) = link.parse() {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
        }
        peers.set(&addrs);
    }

    /// Redis failed: every limit to this node's share; logged once.
    fn down(&mut self, why: String) {
        let nodes = {
            let mut s = self.status.state();
            if s.up || s.error.is_none() {
                tracing::warn!(
                    nodes = s.nodes,
                    "cluster: Redis unreachable ({why}); each limit counted on this node at 1/{} of it until Redis answers",
                    s.nodes
                );
            }
            if s.up {
                s.since = unix_s();
            }
            s.up = false;
            s.error = Some(why);
            s.nodes
        };
        for (_, r) in self.all_rates() {
            r.with_cluster(nodes, false, Instant::now());
        }
        self.offer_members(false);
    }

    /// Each edge's capacity failover to the cluster: the other live
    /// nodes' addresses for it while Redis answers; none while it does
    /// not (a node that died meanwhile would leave the caller waiting,
    /// where a 503 lets it try its next route at once).
    fn offer_members(&self, up: bool) {
        let members = if up {
            self.status.state().members.clone()
        } else {
            Vec::new()
        };
        for slot in &self.edges {
            let edge = slot.load();
            edge.set_other_nodes(&members::offers(&members, &self.me, &edge.name));
        }
    }

    /// Asks for every lease due, all at once.
    async fn lease(&mut self, now: Instant) {
        let Some(conn) = self.conn() else {
            return;
        };
        let nodes = self.status.state().nodes;
        let due: Vec<(&String, &Arc<SharedRate>, u32, u32)> = self
            .all_rates()
            .filter_map(|(k, r)| {
                let (want, owed) = r.lease_due(now)?;
                Some((k, r, want, owed))
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let script = &redis::Script::new(LEASE);
        let asks = due.iter().map(|(key, r, want, owed)| {
            let mut conn = conn.clone();
            let (limit, want, owed) = (r.limit(), *want, *owed);
            async move {
                script
                    .key(format!("sipedge:cps:{key}"))
                    .arg(limit)
                    .arg(want)
                    .arg(owed)
                    .arg(nodes)
                    .invoke_async::<(u32, u64)>(&mut conn)
                    .await
            }
        });
        let answers = tokio::time::timeout(
            store::RESPONSE_TIMEOUT,
            futures_util::future::join_all(asks),
        )
        .await;
        self.status
            .redis_calls
            .fetch_add(due.len() as u64, Ordering::Relaxed);
        let answered = Instant::now();
        let mut failed = None;
        match answers {
            Ok(answers) => {
                for ((_, r, _, owed), a) in due.iter().zip(answers) {
                    match a {
                        Ok((grant, redis_ms)) => {
                            r.leased(answered, redis_ms, grant);
                            self.status.leases.fetch_add(1, Ordering::Relaxed);
                            self.status
                                .tokens
                                .fetch_add(u64::from(grant), Ordering::Relaxed);
                        }
                        Err(e) => {
                            r.unleased(answered, *owed);
                            failed = Some(e.to_string());
                        }
                    }
                }
            }
            Err(_) => {
                for (_, r, _, owed) in &due {
                    r.unleased(answered, *owed);
                }
                failed = Some("no answer in time".into());
            }
        }
        if let Some(e) = failed {
            self.down(e);
        }
    }
}

/// The exchange task: every [`BANS_EVERY`], while Redis is up, the bans,
/// calls in progress and bindings of this node and the others'. A
/// failure goes to the lease task, which marks Redis down.
struct Exchange {
    conn: Arc<Mutex<Option<store::Conn>>>,
    status: Arc<Status>,
    edges: Vec<Arc<ArcSwap<Edge>>>,
    me: String,
    shared_bans: shared_bans::SharedBans,
    registrations: registrations::Follow,
}

impl Exchange {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(BANS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(conn) = conn.filter(|_| self.status.state().up) else {
                continue;
            };
            if let Err(e) = self.once(conn).await {
                *self
                    .status
                    .exchange_failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(e);
            }
        }
    }

    async fn once(&mut self, conn: store::Conn) -> Result<(), String> {
        self.shared_bans
            .exchange(conn.clone(), &self.me, &self.status)
            .await?;
        for slot in &self.edges {
            let edge = slot.load_full();
            if channels::exchange(conn.clone(), &edge).await? {
                self.status.redis_calls.fetch_add(1, Ordering::Relaxed);
            }
            let calls = self
                .registrations
                .exchange(conn.clone(), &edge, &self.me)
                .await?;
            self.status.redis_calls.fetch_add(calls, Ordering::Relaxed);
        }
        Ok(())
    }
}
