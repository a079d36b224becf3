//! The proxy: one edge's request and response pipelines as a function
//! from (message, the flow it arrived on, time) to what to send on which
//! flow — stateless, or with transactions (`stateful`) on a
//! transactional edge. [`Worker::handle`] parses and checks sizes, the
//! operator's `validate` rules run, then a request goes through the
//! stages of `pipeline`, a response through `response`, and what leaves
//! through the compact/compress stage.
//!
//! [`Edge`] is the immutable snapshot built from one `[[edge]]` of the
//! config, with handles on the edge's live state (destination health and
//! totals, CPS buckets, calls in progress, the transaction table,
//! counters). A reload builds the next snapshot with
//! [`Edge::reloaded`], which hands that state on by edge and destination
//! URI, so calls and transactions in flight carry on.
//! [`Worker`] is the mutable, per-thread part (parse index, splicer, output
//! buffers, dispatch counters, statistics), moved onto a new snapshot with
//! [`Worker::renew`]. The daemon owns sockets and calls [`Worker::handle`]
//! for every message and, on a transactional edge, [`Worker::poll`] from a
//! timer task.

mod addresses;
mod capacity;
mod checked;
mod client_cert;
mod encoding;
pub mod explain;
mod flow_failed;
mod forward;
pub(crate) mod hiding;
mod hops;
mod local;
mod nat_sdp;
pub(crate) mod normalize;
mod pipeline;
mod registrar;
mod reply;
mod response;
mod route;
mod sanity;
mod security;
mod sends;
mod splices;
mod stateful;

pub(crate) use addresses::DestRef;
pub use addresses::{Destination, Local};
pub use capacity::Peer;
pub use client_cert::ClientTagger;
pub use encoding::{Direction, Encoder};
pub use sends::Sends;
pub use stateful::Stateful;

use crate::config;
use crate::dispatch::{Algorithm, Selector, Target, WorkerState};
use crate::flow::{Flow, Transport};
use crate::health::{Counters, HealthView};
use crate::keyring::KeyRing;
use crate::limits::Limits;
use crate::stats::{Event, Stats};
use crate::validate;
use sip::{HeaderIndex, ParseError, Splicer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The most header lines sipedge adds to a message it forwards: Via,
/// Record-Route, Max-Forwards, Content-Length, Content-Encoding,
/// X-Validate-Fail, with room to spare.
const ADDED_HEADERS: usize = 8;

/// The most bytes sipedge adds to a message it forwards, besides its
/// sent-by three times (in Via and two Record-Routes, or Via and Path):
/// the rest of those lines, a flow token (at most
/// [`crate::token::MAX_TEXT`]), `received`/`rport`, Max-Forwards,
/// Content-Length, Content-Encoding and X-Validate-Fail come to about
/// 390; with room to spare.
const ADDED_BYTES: usize = 448;

/// The largest UDP payload over IPv4 (65,535 − 20 − 8): nothing larger can
/// be sent.
pub(crate) const MAX_DATAGRAM: usize = 65_507;

/// How many lines of each header the proxy itself matches and routes on
/// and which may appear once only: Call-ID, CSeq, From, To, Max-Forwards
/// (Content-Length, the sixth, is the parser's: two do not parse).
pub(crate) fn count_singletons(m: &sip::Message<'_>) -> [u8; 5] {
    let mut counts = [0u8; 5];
    for h in m.headers() {
        let slot = match h.name {
            sip::HeaderName::CallId => 0,
            sip::HeaderName::CSeq => 1,
            sip::HeaderName::From => 2,
            sip::HeaderName::To => 3,
            sip::HeaderName::MaxForwards => 4,
            _ => continue,
        };
        counts[slot] = counts[slot].saturating_add(1);
    }
    counts
}

/// Call records of blocked requests written per worker and second at
/// most (`[records]`).
const BLOCKED_RECORDS_PER_SECOND: u32 = 20;

/// What the daemon should do with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send [`Worker::output`] on this flow.
    Send(Flow),
    /// Send everything in [`Worker::sends`] (a transactional edge's step
    /// may send several datagrams).
    Queued,
    /// Nothing to send; the event says why (already counted).
    Drop(Event),
    /// The request's next hop is a host name without a DNS answer at hand:
    /// look up [`Worker::lookup`] (RFC 3263), store the answer in
    /// [`Edge::names`], then hand the same message to
    /// [`Worker::handle`] again.
    Resolve,
}

/// One edge, ready to route: addresses, destinations, selector, keys.
#[derive(Debug)]
pub struct Edge {
    /// The edge's name from the config.
    pub name: String,
    locals: Vec<Local>,
    /// The configured destinations, then those a reload removed while
    /// calls may still be up on them (see [`Edge::reloaded`]).
    destinations: Vec<Destination>,
    /// How many of `destinations` are configured: only these are chosen.
    configured: usize,
    /// When each removed destination (after the configured ones) was removed.
    retired_at: Vec<Instant>,
    selector: Selector,
    health: Arc<HealthView>,
    ping_replies: bool,
    /// The cluster's keys: branches are signed with the first and verify
    /// under any.
    keys: KeyRing,
    /// The transactions of a transactional edge; `None` when stateless.
    stateful: Option<Stateful>,
    /// Calls per second and channels of the edge and its destinations.
    limits: Limits,
    /// Where calls beyond capacity are redirected (`capacity_failover`).
    capacity_failover: Vec<Peer>,
    /// `capacity_failover` names `"cluster"`: [`Edge::other_nodes`] join
    /// the configured peers.
    failover_cluster: bool,
    /// The answer to a call beyond capacity that is not redirected
    /// (`capacity_code`), with its standard reason phrase.
    capacity_code: (u16, &'static str),
    /// The cluster's other live nodes that serve this edge, at their own
    /// addresses, as the cluster task last heard from Redis; kept across
    /// reloads.
    other_nodes: Arc<arc_swap::ArcSwap<Vec<Peer>>>,
    /// The operator's validation checks (`validate`) and what a failure
    /// gets (`on_invalid`).
    rules: validate::Rules,
    on_invalid: config::OnInvalid,
    /// In-dialog requests from outside toward a foreign next hop
    /// (`foreign_next_hop`).
    foreign_next_hop: config::ForeignNextHop,
    /// The header carrying a verified TLS client's certificate subject
    /// toward the pool (`client_cert_header`).
    client_cert_header: Option<Box<str>>,
    /// Failures per reason (indexed like [`validate::Failure::ALL`]): a
    /// rare path, so shared atomics; kept across reloads.
    invalid: Arc<[AtomicU64]>,
    /// What is done to messages sent toward the destinations (`compress_in`).
    toward_pool: Direction,
    /// What is done to messages sent anywhere else (`compress_out`).
    toward_outside: Direction,
    /// The origin of the monotonic seconds the dispatch memo counts in
    /// and of the CPS buckets' clock: the first snapshot's start, kept
    /// across reloads.
    epoch: Instant,
    /// The longest message this edge forwards: one datagram less what it
    /// may add.
    room: usize,
    /// The outbound proxy's DNS answers, kept across reloads.
    names: Arc<crate::outbound::Names>,
    /// Networks besides the destinations that may go out through the
    /// edge (`outbound_from`).
    outbound_from: Vec<ipnet::IpNet>,
    /// The NAT tests run on requests from outside (`nat_test`).
    nat_tests: crate::nat::NatTests,
    /// Replace private addresses in the SDP of parties behind NAT
    /// (`nat_sdp`).
    nat_sdp: bool,
    /// Keep the pool's addresses from the outside (`topology_hiding`).
    hiding: bool,
    /// This node's address on the node-to-node link (`[cluster] listen`):
    /// the owner the flow tokens of its connections name.
    relay: Option<SocketAddr>,
    /// Requests from outside found behind NAT, then per test (indexed
    /// like [`crate::nat::NatTest::ALL`]): a shared counter per request
    /// only where NAT was found; kept across reloads.
    nat_found: Arc<[AtomicU64; 8]>,
    /// Which sources and User-Agents are dropped unanswered.
    hygiene: crate::hygiene::Hygiene,
    /// Packets dropped by [`Edge::hygiene`] and the bans, per
    /// [`crate::hygiene::Block`] reason; kept across reloads.
    blocked: Arc<[AtomicU64; 6]>,
    /// The node's bans, shared by every edge.
    bans: Arc<crate::bans::Bans>,
    /// Flood protection: its settings and the sources' counts (kept
    /// across reloads).
    flood: Option<(config::Flood, Arc<crate::flood::Sketch>)>,
    /// The built-in registrar (`flags = ["registrations"]`), its bindings
    /// kept across reloads.
    registrar: Option<crate::registrar::Registrar>,
    /// Where the node's traces go (`[hep]`), whether this edge traces or
    /// not; a reload carries it on.
    trace_sink: Option<Arc<dyn crate::trace::Sink>>,
    /// The edge's share of calls to trace (`hep_sample`), when `hep`.
    hep_sample: Option<u16>,
    /// This edge's tracing: the sink and its share, when both are set.
    tracer: Option<crate::trace::Tracer>,
    /// Where the node's call records go (`[records]`), whether this edge
    /// records or not; a reload carries it on.
    records_sink: Option<Arc<dyn crate::records::Sink>>,
    /// This edge writes call records (`records`).
    records_on: bool,
    /// This edge's records: the sink, when both are set.
    recorder: Option<crate::records::Recorder>,
    /// Where its requests come from, by name (`[[edge.peer]]`).
    peers: crate::peers::Peers,
}

impl Edge {
    /// Builds the snapshot of one configured edge, with fresh state. `keys`
    /// are the cluster's (they key the Via branch MAC).
    pub fn new(edge: &config::Edge, node: &config::Node, keys: &KeyRing) -> Edge {
        Edge::build(edge, node, keys, None, Instant::now())
    }

    /// The snapshot that replaces this one when the config is reloaded:
    /// built from `edge` (the same edge's new configuration), holding this
    /// one's live state — the transaction table, the edge's CPS bucket
    /// and calls in progress, the failure counters, and for each
    /// destination whose URI is still configured its health, speed,
    /// totals, calls in progress and (same limit) CPS bucket. A new
    /// destination starts usable, like every destination at start.
    ///
    /// A removed destination gets no new calls, but the calls already on
    /// it carry on: it is still recognised as the pool's, for in-dialog
    /// requests toward it and for what it sends, until `max_call_duration`
    /// after `now`, the moment of its removal. Its calls keep their counts
    /// until their BYE.
    pub fn reloaded(
        &self,
        edge: &config::Edge,
        node: &config::Node,
        keys: &KeyRing,
        now: Instant,
    ) -> Edge {
        Edge::build(edge, node, keys, Some(self), now)
    }

    /// A copy of this edge to run a message through without effect
    /// (`explain`): built from `edge` (the configuration this snapshot was
    /// built from) with this one's destination health, DNS answers and
    /// the node's bans, but transactions, limits, counters, flood counts,
    /// registrations and tracing of its own. A destination whose own
    /// limits have no room now is unusable in the copy, so that the copy
    /// picks as the live edge would.
    pub fn shadow(
        &self,
        edge: &config::Edge,
        node: &config::Node,
        keys: &KeyRing,
        now: Instant,
    ) -> Edge {
        let mut e = Edge::build(edge, node, keys, Some(self), now);
        let health = self.health.detached();
        for i in 0..self.configured {
            if !self.limits.dest_has_room(i, now) {
                health.set_usable(i, false);
            }
        }
        e.health = Arc::new(health);
        e.stateful = e.stateful.is_some().then(|| Stateful::new(edge, None));
        e.limits = Limits::new(edge, e.epoch, None, &vec![None; e.configured]);
        e.invalid = validate::Failure::ALL
            .iter()
            .map(|_| AtomicU64::new(0))
            .collect();
        e.nat_found = Arc::default();
        e.blocked = Arc::default();
        e.flood = e.flood.map(|(f, _)| (f, Arc::default()));
        e.peers = crate::peers::Peers::new(&edge.peers, None);
        e.registrar = edge
            .registrar
            .as_ref()
            .map(|cfg| crate::registrar::Registrar::new(cfg, None, e.epoch));
        e.with_trace(None).with_records(None)
    }

    fn build(
        edge: &config::Edge,
        node: &config::Node,
        keys: &KeyRing,
        previous: Option<&Edge>,
        now: Instant,
    ) -> Edge {
        let locals: Vec<Local> = edge
            .listen
            .iter()
            .map(|l| Local::new(l.transport, l.addr, edge.advertise.as_ref()))
            .collect();
        let longest_sent_by = locals.iter().map(|l| l.sent_by.len()).max().unwrap_or(0);
        let room = MAX_DATAGRAM.saturating_sub(3 * longest_sent_by + ADDED_BYTES);
        let mut destinations: Vec<Destination> =
            edge.destinations.iter().map(Destination::new).collect();
        let configured = destinations.len();
        let targets: Vec<Target> = edge
            .destinations
            .iter()
            .zip(&destinations)
            .map(|(d, dest)| Target {
                id: dest.id,
                weight: d.weight,
                priority: d.priority,
                zone: d.zone.clone(),
                limit_zones: d.limit_zones.clone(),
                backup_zones: d.backup_zones.clone(),
                rank: d.rank,
            })
            .collect();
        let carried: Vec<Option<usize>> = match previous {
            Some(p) => {
                let old: std::collections::HashMap<u64, usize> = p
                    .configured()
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(j, d)| (d.id, j))
                    .collect();
                destinations
                    .iter()
                    .map(|d| old.get(&d.id).copied())
                    .collect()
            }
            None => vec![None; destinations.len()],
        };
        let mut retired_at = Vec::new();
        if let Some(p) = previous {
            let keep_for = edge.capacity.max_call_duration;
            let removed_now = p.configured().iter().map(|d| (d, now));
            let removed_before = p.retired().iter().zip(p.retired_at.iter().copied());
            for (d, at) in removed_now.chain(removed_before) {
                let known = destinations.iter().any(|k| k.id == d.id);
                if !known && now.saturating_duration_since(at) < keep_for {
                    destinations.push(d.clone());
                    retired_at.push(at);
                }
            }
        }
        let epoch = previous.map_or_else(Instant::now, |p| p.epoch);
        let health = match previous {
            Some(p) => HealthView::carried(&p.health, &carried),
            None => HealthView::new(configured),
        };
        Edge {
            name: edge.name.clone(),
            locals,
            destinations,
            configured,
            retired_at,
            selector: Selector::new(edge.algorithm, &targets, node.zone.as_deref()),
            health: Arc::new(health),
            ping_replies: edge.ping_replies,
            keys: keys.clone(),
            stateful: (edge.insertion == config::Insertion::Transactional)
                .then(|| Stateful::new(edge, previous.and_then(|p| p.stateful.as_ref()))),
            limits: Limits::new(edge, epoch, previous.map(|p| &p.limits), &carried),
            capacity_failover: edge
                .capacity
                .failover
                .iter()
                .map(|u| Peer::new(u))
                .collect(),
            failover_cluster: edge.capacity.failover_cluster.is_some(),
            capacity_code: (
                edge.capacity.code,
                crate::reason::phrase(edge.capacity.code).unwrap_or("Service Unavailable"),
            ),
            other_nodes: previous.map_or_else(Arc::default, |p| Arc::clone(&p.other_nodes)),
            toward_pool: Direction::new(edge.compress_in, &edge.compact_keep),
            toward_outside: Direction::new(edge.compress_out, &edge.compact_keep),
            rules: validate::Rules::new(&edge.validate),
            on_invalid: edge.on_invalid,
            foreign_next_hop: edge.foreign_next_hop,
            client_cert_header: edge.client_cert_header.as_deref().map(Box::from),
            invalid: match previous {
                Some(p) => Arc::clone(&p.invalid),
                None => validate::Failure::ALL
                    .iter()
                    .map(|_| AtomicU64::new(0))
                    .collect(),
            },
            epoch,
            room,
            names: previous.map_or_else(Arc::default, |p| Arc::clone(&p.names)),
            outbound_from: edge.outbound_from.clone(),
            nat_tests: edge.nat_test,
            nat_sdp: edge.nat_sdp,
            hiding: edge.topology_hiding,
            relay: previous.and_then(|p| p.relay),
            nat_found: previous.map_or_else(Arc::default, |p| Arc::clone(&p.nat_found)),
            hygiene: crate::hygiene::Hygiene::new(&edge.hygiene),
            blocked: previous.map_or_else(Arc::default, |p| Arc::clone(&p.blocked)),
            bans: previous.map_or_else(
                || {
                    let unix_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    Arc::new(crate::bans::Bans::new(now, unix_ms))
                },
                |p| Arc::clone(&p.bans),
            ),
            flood: edge.hygiene.flood.map(|f| {
                let sketch = previous
                    .and_then(|p| p.flood.as_ref())
                    .map_or_else(Arc::default, |(_, s)| Arc::clone(s));
                (f, sketch)
            }),
            registrar: edge.registrar.as_ref().map(|cfg| {
                crate::registrar::Registrar::new(
                    cfg,
                    previous.and_then(|p| p.registrar.as_ref()),
                    epoch,
                )
            }),
            trace_sink: None,
            records_sink: None,
            records_on: edge.records,
            recorder: None,
            peers: crate::peers::Peers::new(&edge.peers, previous.map(|p| &p.peers)),
            hep_sample: edge.hep.then_some(edge.hep_sample),
            tracer: None,
        }
        .with_trace(previous.and_then(|p| p.trace_sink.clone()))
        .with_records(previous.and_then(|p| p.records_sink.clone()))
    }

    /// The NAT tests run on requests from outside, for the NAT stage.
    pub(crate) fn nat_tests(&self) -> crate::nat::NatTests {
        self.nat_tests
    }

    /// Counts a request from outside that `fired` found behind NAT.
    pub(crate) fn count_nat(&self, fired: crate::nat::NatTests) {
        self.nat_found[0].fetch_add(1, Ordering::Relaxed);
        for t in fired.iter() {
            self.nat_found[1 + t.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests from outside found behind NAT since start, and how often
    /// each test fired (the tests configured, in flag order).
    pub fn nat_counts(&self) -> (u64, Vec<(crate::nat::NatTest, u64)>) {
        let per_test = self
            .nat_tests
            .iter()
            .map(|t| (t, self.nat_found[1 + t.index()].load(Ordering::Relaxed)))
            .collect();
        (self.nat_found[0].load(Ordering::Relaxed), per_test)
    }

    /// The outbound proxy's DNS answers: the daemon stores what it looked
    /// up here (and removes what expired).
    pub fn names(&self) -> &Arc<crate::outbound::Names> {
        &self.names
    }

    /// True when requests from `ip` may go out through the edge to hosts
    /// outside the pool (besides the destinations: `outbound_from`).
    pub(crate) fn lets_out(&self, ip: std::net::IpAddr) -> bool {
        self.outbound_from.iter().any(|n| n.contains(&ip))
    }

    /// How a transaction names destination `i` of this snapshot so that a
    /// later one finds it again.
    pub(crate) fn dest_ref(&self, i: usize) -> DestRef {
        let id = self.destinations.get(i).map_or(0, |d| d.id);
        DestRef {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            id,
        }
    }

    /// The index in this snapshot of the destination `r` names: one
    /// comparison while no reload moved it, a search after one; `None`
    /// when a reload removed it.
    pub(crate) fn resolve(&self, r: DestRef) -> Option<usize> {
        let i = r.index as usize;
        if self.destinations.get(i).is_some_and(|d| d.id == r.id) {
            return Some(i);
        }
        self.destinations.iter().position(|d| d.id == r.id)
    }

    /// The dispatch algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.selector.algorithm()
    }

    /// The transaction state of a transactional edge (`None` when stateless).
    pub fn stateful(&self) -> Option<&Stateful> {
        self.stateful.as_ref()
    }

    /// What the compact/compress stage does to a message sent on `to`:
    /// `compress_in` toward a destination, `compress_out` toward anyone else.
    fn direction(&self, to: &Flow) -> &Direction {
        if self.destination_of(to).is_some() {
            &self.toward_pool
        } else {
            &self.toward_outside
        }
    }

    /// Whether `message`, for `to`, is within [`forward::UDP_LIMIT`] once
    /// the edge's compaction and compression toward `to` are applied (on
    /// a copy: only requests over the limit get here).
    fn fits_a_datagram_once_coded(&self, message: &[u8], to: &Flow) -> bool {
        let d = self.direction(to);
        if d.is_identity() {
            return message.len() <= forward::UDP_LIMIT;
        }
        let mut copy = message.to_vec();
        Encoder::default().apply(d, &mut copy);
        copy.len() <= forward::UDP_LIMIT
    }

    /// True when an answer to a request whose top Via is `via`, sent to
    /// `to`, would reach this edge itself: the Via is one the edge wrote
    /// (one of its addresses with one of its branches — a phone behind
    /// NAT may well claim the edge's private address, never its branch),
    /// or `to` is one of its sockets or advertised addresses. sipedge never sends such an answer:
    /// it would come back as a response carrying the edge's own Via, and
    /// (from a destination sharing the edge's address, say) be relayed to
    /// the caller as the final answer of a call it has nothing to do with.
    pub(crate) fn answers_itself(&self, via: Option<&sip::Via<'_>>, to: SocketAddr) -> bool {
        let ours = via.filter(|v| v.branch.and_then(crate::branch::parse_branch).is_some());
        let to_host = match to.ip() {
            std::net::IpAddr::V4(a) => sip::Host::Ipv4(a),
            std::net::IpAddr::V6(a) => sip::Host::Ipv6(a),
        };
        self.locals.iter().any(|l| {
            // Its socket, or its advertised address (a wildcard bind).
            let to_us = l.addr == to || l.is(&to_host, Some(to.port()));
            to_us || ours.is_some_and(|v| l.is(&v.host, v.port))
        })
    }

    /// True when neither direction changes anything (the stage is skipped).
    fn codes_nothing(&self) -> bool {
        self.toward_pool.is_identity() && self.toward_outside.is_identity()
    }

    fn count_invalid(&self, f: validate::Failure) {
        if let Some(i) = validate::Failure::ALL.iter().position(|&x| x == f) {
            self.invalid[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Messages that failed validation since start, per reason (only the
    /// reasons seen).
    pub fn invalid_counts(&self) -> Vec<(validate::Failure, u64)> {
        validate::Failure::ALL
            .iter()
            .zip(self.invalid.iter())
            .map(|(&f, n)| (f, n.load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// The capacity state (calls per second, channels).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// When this edge was built: [`Worker::handle`]'s times count from here.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// `now` in whole seconds since [`epoch`](Self::epoch), the clock of the
    /// dispatch memo.
    pub(crate) fn secs(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// The health view the workers dispatch by; the prober writes it.
    pub fn health(&self) -> &Arc<HealthView> {
        &self.health
    }

    /// The tier (1, 2 or 3) of destination `i` as this node's zone sees it,
    /// or `None` when its `limit_zones` keep this node from using it.
    pub fn tier(&self, i: usize) -> Option<u8> {
        self.selector.tier(i)
    }

    /// The local addresses, in config order.
    pub fn locals(&self) -> &[Local] {
        &self.locals
    }

    /// The edge's own address on `flow` (its listener's bound address).
    fn local_addr(&self, flow: &Flow) -> SocketAddr {
        self.locals
            .get(flow.local)
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |l| l.addr)
    }

    /// The destinations, in config order.
    pub fn destinations(&self) -> &[Destination] {
        self.configured()
    }

    fn configured(&self) -> &[Destination] {
        &self.destinations[..self.configured]
    }

    /// Destinations a reload removed that still get the in-dialog
    /// requests of their calls.
    pub fn retired(&self) -> &[Destination] {
        &self.destinations[self.configured..]
    }

    /// The header that carries a verified TLS client's certificate
    /// subject toward the pool, if configured. The runtime writes it into
    /// what arrives on a TLS connection ([`ClientTagger`]); on every other
    /// flow the forwarding stage removes it.
    pub fn client_cert_header(&self) -> Option<&str> {
        self.client_cert_header.as_deref()
    }

    /// The local address to send to `to` over `transport` from: the one
    /// the message came in on when transport and family match, else the
    /// first that matches.
    pub fn local_for(
        &self,
        transport: Transport,
        to: SocketAddr,
        received_on: usize,
    ) -> Option<usize> {
        let fits = |l: &Local| l.transport == transport && l.addr.is_ipv4() == to.is_ipv4();
        if self.locals.get(received_on).is_some_and(fits) {
            return Some(received_on);
        }
        self.locals.iter().position(fits)
    }

    /// The flow to send to `to` over `transport` on, or `None` when the
    /// edge has no local address of that transport and family.
    pub(crate) fn flow_to(
        &self,
        transport: Transport,
        to: SocketAddr,
        received_on: usize,
    ) -> Option<Flow> {
        let local = self.local_for(transport, to, received_on)?;
        Some(Flow {
            transport,
            local,
            remote: to,
            conn: None,
            reconnect: None,
            pinned: false,
            owner: None,
        })
    }

    /// The edge's named peers (`[[edge.peer]]`).
    pub fn peers(&self) -> &crate::peers::Peers {
        &self.peers
    }

    /// The URI of destination `i`, configured or removed by a reload.
    pub(crate) fn destination_uri(&self, i: usize) -> Option<&str> {
        self.destinations.get(i).map(|d| d.uri.as_str())
    }

    /// Which destination a message arriving (or leaving) on `flow` is
    /// from (or for), if any (see [`Destination::is_flow`]): an index
    /// into every destination, those a reload removed included.
    pub(crate) fn destination_of(&self, flow: &Flow) -> Option<usize> {
        self.destinations.iter().position(|d| d.is_flow(flow))
    }

    /// The destination at exactly this transport and address, if one (a
    /// flow token's pool side; it may name a server no longer configured).
    pub(crate) fn destination_at(&self, transport: Transport, addr: SocketAddr) -> Option<usize> {
        self.destinations
            .iter()
            .position(|d| d.transport == transport && d.addr == addr)
    }

    /// This snapshot, sending its traces to `sink` (the node's `[hep]`
    /// sender) if the edge traces (`hep`, by default).
    pub fn with_trace(mut self, sink: Option<Arc<dyn crate::trace::Sink>>) -> Edge {
        self.tracer = match (&sink, self.hep_sample) {
            (Some(s), Some(share)) => Some(crate::trace::Tracer::new(Arc::clone(s), share)),
            _ => None,
        };
        self.trace_sink = sink;
        self
    }

    /// This snapshot writing its call records into `sink` (the node's
    /// `[records]` writer), if it records.
    pub fn with_records(mut self, sink: Option<Arc<dyn crate::records::Sink>>) -> Edge {
        self.recorder = match &sink {
            Some(s) if self.records_on => {
                Some(crate::records::Recorder::new(Arc::clone(s), &self.name))
            }
            _ => None,
        };
        self.records_sink = sink;
        self
    }

    /// This snapshot, sharing the node's `bans` (every edge of a node
    /// shares one; a reload carries it on).
    pub fn with_bans(mut self, bans: Arc<crate::bans::Bans>) -> Edge {
        self.bans = bans;
        self
    }

    /// Every calls-per-second limit of the edge, named as the cluster
    /// shares it: `edge/NAME` for the edge's own, `edge/NAME/URI` for a
    /// destination's (every node must give an edge the same name).
    pub fn shared_rates(&self) -> Vec<(String, Arc<crate::limits::SharedRate>)> {
        self.limits
            .rates()
            .filter_map(|(dest, r)| {
                let name = match dest {
                    None => format!("edge/{}", self.name),
                    Some(i) => format!("edge/{}/{}", self.name, self.destinations.get(i)?.uri),
                };
                Some((name, Arc::clone(r)))
            })
            .collect()
    }

    /// Sets the cluster's other live nodes that serve this edge, each by
    /// the SIP URIs it offers (in the same order on every node, so that
    /// every node picks the same one for a Call-ID); kept across reloads. A call beyond capacity
    /// may be redirected to them when `capacity_failover` names
    /// `"cluster"`. What is not a `sip:` or `sips:` URI is left out: it
    /// came from outside (Redis), and goes into a Contact.
    pub fn set_other_nodes(&self, uris: &[&str]) {
        let peers: Vec<Peer> = uris.iter().filter_map(|u| Peer::checked(u)).collect();
        let now = self.other_nodes.load();
        if peers.iter().map(|p| &p.uri).ne(now.iter().map(|p| &p.uri)) {
            self.other_nodes.store(Arc::new(peers));
        }
    }

    /// The node's bans.
    pub fn bans(&self) -> &Arc<crate::bans::Bans> {
        &self.bans
    }

    /// This snapshot, on a node whose node-to-node link address is
    /// `relay` (`[cluster] listen`; a reload carries it on).
    pub fn on_link(mut self, relay: Option<SocketAddr>) -> Edge {
        self.relay = relay;
        self
    }

    /// The cluster's keys this snapshot signs and verifies with.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Whether the pool's addresses are kept from the outside
    /// (`topology_hiding`).
    pub(crate) fn hiding(&self) -> bool {
        self.hiding
    }

    /// Whether the SDP of parties behind NAT is rewritten (`nat_sdp`).
    pub(crate) fn nat_sdp(&self) -> bool {
        self.nat_sdp
    }

    /// The built-in registrar, if the edge has one.
    pub fn registrar(&self) -> Option<&crate::registrar::Registrar> {
        self.registrar.as_ref()
    }

    /// This node's node-to-node link address, if it has one.
    pub fn relay(&self) -> Option<SocketAddr> {
        self.relay
    }

    /// A fresh per-thread worker for this edge.
    pub fn worker(&self) -> Worker {
        Worker {
            index: HeaderIndex::new(),
            spare: HeaderIndex::new(),
            encoder: Encoder::default(),
            splicer: Splicer::new(),
            out: Vec::with_capacity(4096),
            sends: Sends::default(),
            dispatch: WorkerState::for_algorithm(self.selector.algorithm()),
            algorithm: self.selector.algorithm(),
            counters: self.health.register(),
            lookup: String::new(),
            tries: Vec::with_capacity(crate::outbound::MAX_TRIES),
            target: Vec::new(),
            target_flow: None,
            lookup_key: Vec::new(),
            refusal: None,
            blocked_records: (0, 0),
            stats: {
                let stats = Stats::default();
                self.health.board().register(stats.tally());
                stats
            },
        }
    }
}

/// The per-thread state of one edge: reused buffers and counters.
#[derive(Debug)]
pub struct Worker {
    index: HeaderIndex,
    /// A second index, for re-reading a stored request while a received
    /// message holds the first (transactional edges).
    spare: HeaderIndex,
    encoder: Encoder,
    splicer: Splicer,
    out: Vec<u8>,
    sends: Sends,
    dispatch: WorkerState,
    /// The algorithm `dispatch` was sized for.
    algorithm: Algorithm,
    counters: Arc<Counters>,
    /// The DNS query of the last [`Outcome::Resolve`] (reused buffer).
    lookup: String,
    /// The targets of a request to a host name, in the order tried.
    tries: Vec<(Transport, SocketAddr)>,
    /// The Request-URI of a request sent to a registered contact, or the
    /// Contact list of a REGISTER's answer (reused buffer).
    target: Vec<u8>,
    /// Where a request to a registered contact goes.
    target_flow: Option<Flow>,
    /// An address of record being looked up (reused buffer).
    lookup_key: Vec<u8>,
    /// Why the last message was refused, by the stage that refused it
    /// (for the call records).
    refusal: Option<crate::records::Refusal>,
    /// Records of blocked requests this second: the second (edge clock)
    /// and how many.
    blocked_records: (u64, u32),
    /// What this worker has done.
    pub stats: Stats,
}

/// The parts of a worker the pipelines use, borrowed separately from the
/// parse index (which the parsed message borrows).
pub(crate) struct Scratch<'w> {
    pub splicer: &'w mut Splicer,
    pub out: &'w mut Vec<u8>,
    pub spare: &'w mut HeaderIndex,
    pub sends: &'w mut Sends,
    pub dispatch: &'w mut WorkerState,
    pub counters: &'w Counters,
    pub stats: &'w mut Stats,
    pub lookup: &'w mut String,
    pub tries: &'w mut Vec<(Transport, SocketAddr)>,
    pub target: &'w mut Vec<u8>,
    pub target_flow: &'w mut Option<Flow>,
    pub lookup_key: &'w mut Vec<u8>,
    pub refusal: &'w mut Option<crate::records::Refusal>,
}

impl Worker {
    /// Moves this worker onto `edge`, the snapshot a reload made of the
    /// edge it served: its buffers and event counts are kept, and its
    /// dispatch memo while the algorithm stays (the memo checks each
    /// remembered destination's identity, so a moved one is not
    /// followed); its per-destination counters start over, registered
    /// with the new health view (which carries the totals on).
    pub fn renew(&mut self, edge: &Edge) {
        if edge.algorithm() != self.algorithm {
            self.dispatch = WorkerState::for_algorithm(edge.algorithm());
            self.algorithm = edge.algorithm();
        }
        self.counters = edge.health.register();
        edge.health.board().register(self.stats.tally());
    }

    /// Handles one message (a datagram, or one framed off a stream)
    /// received on flow `from` at `now`.
    pub fn handle(&mut self, edge: &Edge, datagram: &[u8], from: Flow, now: Instant) -> Outcome {
        let outcome = self.step(edge, datagram, from, now);
        let outcome = self.fits(outcome);
        if let Some(t) = &edge.tracer {
            self.trace(edge, t, datagram, &from, outcome);
        }
        if let Some(r) = &edge.recorder {
            if crate::records::may_matter(datagram) {
                self.record(edge, r, datagram, &from, outcome, now);
            }
        }
        outcome
    }

    /// Tells the edge's call records what a message read on `from` and
    /// what is sent after it (`outcome`) say about its call.
    fn record(
        &mut self,
        edge: &Edge,
        r: &crate::records::Recorder,
        read: &[u8],
        from: &Flow,
        outcome: Outcome,
        now: Instant,
    ) {
        // Under a flood of blocked sources, a few records a second say
        // so; the rest are dropped as cheaply as without records.
        if outcome == Outcome::Drop(Event::Blocked) {
            let sec = edge.secs(now);
            if self.blocked_records.0 != sec {
                self.blocked_records = (sec, 0);
            }
            if self.blocked_records.1 >= BLOCKED_RECORDS_PER_SECOND {
                return;
            }
            self.blocked_records.1 += 1;
        }
        let Ok(m) = sip::parse(read, &mut self.spare) else {
            return;
        };
        // One message (a stateless step) needs no list; a transactional
        // step's several are gathered.
        let one;
        let several: Vec<(&[u8], Flow)>;
        let sent: &[(&[u8], Flow)] = match outcome {
            Outcome::Send(to) => {
                one = [(&self.out[..], to)];
                &one
            }
            Outcome::Queued => {
                several = self.sends.iter().collect();
                &several
            }
            Outcome::Drop(_) | Outcome::Resolve => &[],
        };
        crate::records::read(r, edge, &m, from, self.refusal, sent);
    }

    /// Offers a message read on `from` and what is to be sent after it
    /// (`outcome`) to the edge's tracer, if its call is traced; a bare
    /// keepalive (white space) is not.
    fn trace(
        &self,
        edge: &Edge,
        t: &crate::trace::Tracer,
        read: &[u8],
        from: &Flow,
        outcome: Outcome,
    ) {
        if read.iter().all(u8::is_ascii_whitespace) || !t.wants(read) {
            return;
        }
        t.offer(read, true, from, edge.local_addr(from));
        match outcome {
            Outcome::Send(to) => t.offer(&self.out, false, &to, edge.local_addr(&to)),
            Outcome::Queued => {
                for (bytes, to) in self.sends.iter() {
                    t.offer(bytes, false, &to, edge.local_addr(&to));
                }
            }
            Outcome::Drop(_) | Outcome::Resolve => {}
        }
    }

    /// Offers what the worker sends on its own (retransmissions, timeouts'
    /// answers, keepalives: its send queue) to the edge's tracer, each
    /// message by its own call.
    pub(crate) fn trace_sends(&self, edge: &Edge) {
        let Some(t) = &edge.tracer else {
            return;
        };
        for (bytes, to) in self.sends.iter() {
            if !bytes.iter().all(u8::is_ascii_whitespace) && t.wants(bytes) {
                t.offer(bytes, false, &to, edge.local_addr(&to));
            }
        }
    }

    /// Answers a stream message the framer could not frame (`why`): a
    /// request whose header section `head` still shows where to answer
    /// gets 400 or 513 on `from`; anything else is dropped. The runtime
    /// closes the connection after sending it (nothing after such a
    /// message can be framed).
    pub fn unframed(
        &mut self,
        edge: &Edge,
        head: &[u8],
        why: sip::Unframed,
        from: Flow,
    ) -> Outcome {
        let (_, mut s) = self.split();
        let (code, reason) = why.answer();
        let outcome = reply::salvaged(edge, &mut s, head, code, reason, from);
        self.fits(outcome)
    }

    /// [`Worker::handle`] but for the last guard.
    fn step(&mut self, edge: &Edge, datagram: &[u8], from: Flow, now: Instant) -> Outcome {
        let (index, mut s) = self.split();
        s.out.clear();
        if let Some(why) = edge.blocks(&from) {
            s.stats.count(Event::Blocked);
            *s.refusal = Some(("blocked", why.name()));
            return Outcome::Drop(Event::Blocked);
        }
        let suspect = edge.suspect(&from, datagram, now);
        let msg = match sip::parse(datagram, index) {
            Ok(m) => m,
            Err(ParseError::Empty) => {
                s.stats.count(Event::KeepAlive);
                return Outcome::Drop(Event::KeepAlive);
            }
            Err(e) => return reply::malformed(edge, &mut s, datagram, e, from),
        };
        let blocked = match suspect {
            Some(why) if !edge.excuses(&msg, why) => Some(why.name()),
            _ => edge.ignores(&msg).then_some("user_agent"),
        };
        if let Some(why) = blocked {
            s.stats.count(Event::Blocked);
            *s.refusal = Some(("blocked", why));
            return Outcome::Drop(Event::Blocked);
        }
        match msg.status() {
            None => s.stats.request(msg.method()),
            Some(code) => s.stats.response(code),
        }
        // A stream message without Content-Length cannot be framed (RFC
        // 3261 §18.3): the runtime hands over its header section, it is
        // answered here, and the connection closes.
        if from.frames_by_content_length() && msg.content_length().is_none() {
            let (code, reason) = sip::Unframed::NoContentLength.answer();
            s.stats.count(Event::Malformed);
            return reply::refuse(edge, &mut s, &msg, from, code, reason, Event::Malformed);
        }
        // Room for what sipedge adds, so that what it forwards always
        // parses again (at the next sipedge, say) and fits one datagram
        // (RFC 3261 §21.5.11).
        // (A response only loses sipedge's Via: the last guard suffices.)
        let too_big = if msg.headers().len() > sip::MAX_HEADERS - ADDED_HEADERS {
            // The 400 copies every Via line: with nearly all lines Vias it
            // would cross the limit itself, and is not sent.
            let vias = msg.all(sip::HeaderName::Via).count();
            let answerable = vias < sip::MAX_HEADERS - ADDED_HEADERS;
            Some((400, ParseError::TooManyHeaders.reason(), answerable))
        } else if msg.is_request() && datagram.len() > edge.room {
            Some((513, "Message Too Large", true))
        } else {
            None
        };
        if let Some((code, reason, answerable)) = too_big {
            s.stats.count(Event::Oversized);
            if !answerable {
                return Outcome::Drop(Event::Oversized);
            }
            let event = Event::Oversized;
            let outcome = reply::refuse(edge, &mut s, &msg, from, code, reason, event);
            if outcome == Outcome::Drop(Event::OwnVia) {
                s.stats.count(Event::OwnVia);
            }
            return outcome;
        }
        if !msg.is_request() && !response::sane(&msg) {
            s.stats.count(Event::BadResponse);
            return Outcome::Drop(Event::BadResponse);
        }
        // The validate stage: the operator's checks (`validate`).
        let mut tag = None;
        if !edge.rules.is_empty() {
            if let Err(f) = validate::check(&msg, edge.rules, from.transport) {
                edge.count_invalid(f);
                match edge.on_invalid {
                    config::OnInvalid::Reject => {
                        *s.refusal = Some(("validation", f.token()));
                        let outcome = reply::invalid(edge, &mut s, &msg, from, f);
                        if let Outcome::Drop(e) = outcome {
                            s.stats.count(e);
                        }
                        return outcome;
                    }
                    config::OnInvalid::Tag => tag = Some(f),
                }
            }
        }
        let is_request = msg.is_request();
        let outcome = match (&edge.stateful, msg.is_request()) {
            (_, true) => pipeline::request(edge, &mut s, &msg, from, now),
            (None, false) => response::handle(edge, &mut s, &msg, from, now),
            (Some(st), false) => match stateful::response(edge, st, &mut s, &msg, now) {
                Some(o) => o,
                None => response::handle(edge, &mut s, &msg, from, now),
            },
        };
        match outcome {
            Outcome::Drop(e) => s.stats.count(e),
            Outcome::Send(_) | Outcome::Queued | Outcome::Resolve => {}
        }
        if let Some(f) = tag {
            self.tag(outcome, is_request, f);
        }
        self.encode(edge, outcome);
        outcome
    }

    /// The last guard before sending: a datagram larger than UDP carries
    /// over IPv4 (which the room kept in `Edge::room` should never let
    /// through) is dropped and counted as oversized, not handed to a
    /// sendmsg that would fail.
    fn fits(&mut self, outcome: Outcome) -> Outcome {
        let too_big = |b: &[u8]| b.len() > MAX_DATAGRAM;
        let dropped = match outcome {
            Outcome::Send(_) if too_big(&self.out) => {
                self.stats.count(Event::Oversized);
                return Outcome::Drop(Event::Oversized);
            }
            Outcome::Queued => self.sends.retain(|b| !too_big(b)),
            _ => 0,
        };
        for _ in 0..dropped {
            self.stats.count(Event::Oversized);
        }
        outcome
    }

    /// `on_invalid = "tag"`: what goes on carries `X-Validate-Fail` with the
    /// failed check — the forwarded message only (a request's outgoing
    /// requests, a response's outgoing responses), not the answers sipedge
    /// writes itself on the way.
    fn tag(&mut self, outcome: Outcome, request: bool, f: validate::Failure) {
        let same_kind = |b: &[u8]| b.starts_with(b"SIP/2.0 ") != request;
        let insert = |b: &mut Vec<u8>| {
            if let Some(eol) = memchr::memchr(b'\n', b) {
                let line = format!("X-Validate-Fail: {}\r\n", f.token());
                b.splice(eol + 1..eol + 1, line.bytes());
            }
            true
        };
        match outcome {
            Outcome::Send(_) if same_kind(&self.out) => {
                insert(&mut self.out);
            }
            Outcome::Queued => self.sends.rewrite(|b, _| same_kind(b) && insert(b)),
            _ => {}
        }
    }

    /// The compact/compress stage over what a step is about to send.
    fn encode(&mut self, edge: &Edge, outcome: Outcome) {
        if edge.codes_nothing() {
            return;
        }
        match outcome {
            Outcome::Send(to) => {
                self.encoder.apply(edge.direction(&to), &mut self.out);
            }
            Outcome::Queued => {
                let encoder = &mut self.encoder;
                self.sends
                    .rewrite(|bytes, to| encoder.apply(edge.direction(to), bytes));
            }
            Outcome::Drop(_) | Outcome::Resolve => {}
        }
    }

    /// Runs the transaction timers of a transactional edge due at `now`
    /// (the daemon's timer thread calls it every [`Stateful::tick`]); what
    /// to send is left in [`sends`](Self::sends). Does nothing on a
    /// stateless edge.
    pub fn poll(&mut self, edge: &Edge, now: Instant) -> usize {
        let Some(st) = &edge.stateful else {
            return 0;
        };
        let (_, mut s) = self.split();
        let n = stateful::poll(edge, st, &mut s, now);
        if !self.sends.is_empty() {
            self.encode(edge, Outcome::Queued);
            self.fits(Outcome::Queued);
            self.trace_sends(edge);
            if let Some(r) = &edge.recorder {
                crate::records::sent_alone(r, edge, &mut self.spare, &mut self.sends.iter());
            }
        }
        n
    }

    /// The parse index, and everything else borrowed apart for the
    /// pipelines (the parsed message borrows the index), with the send
    /// queue emptied for a new step.
    fn split(&mut self) -> (&mut HeaderIndex, Scratch<'_>) {
        let Worker {
            index,
            spare,
            encoder: _,
            splicer,
            out,
            sends,
            dispatch,
            algorithm: _,
            counters,
            stats,
            lookup,
            tries,
            target,
            target_flow,
            lookup_key,
            refusal,
            blocked_records: _,
        } = self;
        sends.clear();
        *refusal = None;
        let s = Scratch {
            splicer,
            out,
            spare,
            sends,
            dispatch,
            counters,
            stats,
            lookup,
            tries,
            target,
            target_flow,
            lookup_key,
            refusal,
        };
        (index, s)
    }

    /// The datagrams to send after [`Outcome::Queued`] or [`Worker::poll`].
    pub fn sends(&self) -> &Sends {
        &self.sends
    }

    /// Hands the bytes to send after [`Outcome::Send`] over to the caller by
    /// swapping them into `buf` (whose old contents are dropped and whose
    /// allocation the worker reuses): the send path copies nothing.
    pub fn swap_output(&mut self, buf: &mut Vec<u8>) {
        buf.clear();
        std::mem::swap(&mut self.out, buf);
    }

    /// The bytes to send after [`Outcome::Send`].
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// What to look up after [`Outcome::Resolve`]: the query's key
    /// ([`crate::outbound::Query::write_key`]), a SIP URI of the host,
    /// port, transport and scheme that decide which records are asked.
    pub fn lookup(&self) -> &str {
        &self.lookup
    }
}

#[cfg(test)]
mod tests;
