//! The OPTIONS prober of one edge, sans-IO (quinn-proto style): it writes
//! probes into a buffer and says where to send them, takes replies, send
//! errors and the passing of time, and keeps a [`Tracker`] per destination.
//! The daemon owns the socket and the clock.
//!
//! Probes go over UDP, whatever the destination's transport: destinations
//! reached over TCP or TLS are probed over UDP too in this version, so such
//! a server must also listen on UDP at the same address for its health to be
//! known.

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::HeaderIndex;

use super::tracker::{ProbeResult, State, Tracker};
use super::view::HealthView;
use crate::config::{self, Probe, Transport};

/// The start of every probe's Via branch: RFC 3261's magic cookie, then a
/// mark of our own so a reply to a probe is told apart at a glance.
const BRANCH_PREFIX: &[u8] = b"z9hG4bKsEp";

/// Below this, latency differences are LAN noise: least-latency treats
/// every destination faster than this as equally fast.
const LATENCY_FLOOR: Duration = Duration::from_millis(5);

/// The most the first probes of an edge are spread apart, so thousands of
/// destinations are not probed in one burst at start.
const MAX_STAGGER_STEP: Duration = Duration::from_millis(10);

/// A probe sent and not answered yet (its deadline is in the timer heap).
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    seq: u64,
    sent: Instant,
}

/// What the prober keeps per destination besides its tracker.
#[derive(Clone, Debug)]
struct Dest {
    /// The URI as configured: Request-URI and To of the probe.
    uri: String,
    addr: SocketAddr,
    /// The transport probes go over: the destination's own.
    transport: Transport,
    /// When the next probe is due; `None` while one is outstanding or when
    /// the destination is not probed.
    next: Option<Instant>,
    outstanding: Option<Outstanding>,
}

/// Probes the destinations of one edge with SIP OPTIONS and keeps their
/// health; one per edge, driven by the daemon:
///
/// 1. after [`handle_timeout`](Self::handle_timeout) or any other input, call
///    [`poll_transmit`](Self::poll_transmit) until it returns `None`, sending
///    each probe it writes;
/// 2. wait for a datagram or [`next_timeout`](Self::next_timeout);
/// 3. when [`changed`](Self::changed) says so, [`apply`](Self::apply) the
///    result to the edge's [`HealthView`].
///
/// Scheduling: a healthy destination is probed every `interval`; after a
/// failed probe of one that is not inactive yet, the next probe follows
/// `timeout` after the failed one was sent, so a dead server is marked
/// inactive within about `inactive_threshold × timeout` of its first failed
/// probe. Inactive and operator-held destinations are probed every `interval`.
/// At most one probe per destination is outstanding.
#[derive(Debug)]
pub struct Prober {
    probe: Probe,
    dests: Vec<Dest>,
    trackers: Vec<Tracker>,
    /// Our own socket addresses, one per address family.
    locals: Vec<SocketAddr>,
    /// The node id as it may appear in a Call-ID.
    node: String,
    /// The From tag of every probe of this prober (random per prober).
    tag: u64,
    /// What Timestamp values count from.
    epoch: Instant,
    /// The last sequence number used (branch, Call-ID and CSeq of a probe).
    seq: u64,
    /// (due, destination) of next probes; entries that no longer match the
    /// destination's `next` are stale and skipped.
    due: BinaryHeap<Reverse<(Instant, usize)>>,
    /// (deadline, destination, seq) of outstanding probes; stale when the
    /// probe was answered.
    deadlines: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Reused header index for parsing replies.
    index: HeaderIndex,
    changed: bool,
}

impl Prober {
    /// A prober for `edge`'s destinations, every one active and due for a
    /// first probe right away (spread a few milliseconds apart).
    ///
    /// `locals` are the prober's own bound socket addresses, one per address
    /// family in use; a probe's Via and From name the one of the
    /// destination's family, with `;rport` so the reply comes back to the
    /// socket it was sent from even when that address is a wildcard.
    /// `node` names this instance in the Call-ID.
    pub fn new(
        edge: &config::Edge,
        node: &config::Node,
        locals: &[SocketAddr],
        now: Instant,
    ) -> Prober {
        let n = edge.destinations.len();
        let probe = edge.probe.clone();
        let step = u32::try_from(n)
            .ok()
            .filter(|&n| n > 0)
            .map_or(Duration::ZERO, |n| {
                (probe.interval / n).min(MAX_STAGGER_STEP)
            });
        let mut prober = Prober {
            dests: edge
                .destinations
                .iter()
                .map(|d| Dest {
                    uri: d.uri.clone(),
                    addr: d.addr,
                    transport: d.transport,
                    next: None,
                    outstanding: None,
                })
                .collect(),
            trackers: (0..n).map(|_| Tracker::new(&probe)).collect(),
            locals: locals.to_vec(),
            node: call_id_safe(&node.id),
            tag: 0,
            epoch: now,
            seq: 0,
            due: BinaryHeap::with_capacity(n),
            deadlines: BinaryHeap::with_capacity(n),
            index: HeaderIndex::new(),
            changed: false,
            probe,
        };
        let (tag, seq) = random_pair(&node.id, &edge.name);
        prober.tag = tag;
        // Start the sequence at a random point so a restarted instance does
        // not reuse the branches of the previous run.
        prober.seq = seq & 0x00ff_ffff;
        if prober.probe.enabled {
            let mut at = now;
            for i in 0..n {
                prober.schedule(i, at);
                at += step;
            }
        }
        prober
    }

    /// The prober that replaces this one when the config is reloaded:
    /// for `edge`'s destinations, where each one still configured with the
    /// same URI, address and transport keeps its tracker (state, latency,
    /// counts, an operator's hold) under the new probe settings and its
    /// place in the schedule, and a new one is probed at once. A probe
    /// outstanding at the reload is not waited for (its answer is
    /// ignored): the destination is probed again now.
    pub fn reseeded(
        &self,
        edge: &config::Edge,
        node: &config::Node,
        locals: &[SocketAddr],
        now: Instant,
    ) -> Prober {
        let mut next = Prober::new(edge, node, locals, now);
        next.tag = self.tag;
        next.seq = self.seq;
        next.epoch = self.epoch;
        next.due.clear();
        let old: std::collections::HashMap<(&str, SocketAddr, Transport), usize> = self
            .dests
            .iter()
            .enumerate()
            .rev()
            .map(|(j, d)| ((d.uri.as_str(), d.addr, d.transport), j))
            .collect();
        let mut at = now;
        for i in 0..next.dests.len() {
            let d = &next.dests[i];
            let carried = old.get(&(d.uri.as_str(), d.addr, d.transport)).copied();
            let due = match carried {
                Some(j) => {
                    let mut t = self.trackers[j].clone();
                    t.reconfigure(&next.probe);
                    next.trackers[i] = t;
                    self.dests[j].next.unwrap_or(now)
                }
                None => {
                    at += MAX_STAGGER_STEP.min(next.probe.interval / 100);
                    at
                }
            };
            if next.wants_probes(i) {
                next.schedule(i, due);
            }
        }
        next.changed = true;
        next
    }

    /// Writes the next due probe into `buf` (replacing its content) and
    /// returns where to send it; `None` when no probe is due at `now`.
    /// Also takes note of probes that timed out by `now`.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<(Transport, SocketAddr)> {
        self.expire(now);
        while let Some(&Reverse((at, i))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            let Some(d) = self.dests.get_mut(i) else {
                continue;
            };
            if d.next != Some(at) || d.outstanding.is_some() {
                continue; // stale entry
            }
            d.next = None;
            let (addr, transport) = (d.addr, d.transport);
            self.trackers[i].note_sent();
            let Some(local) = self
                .locals
                .iter()
                .copied()
                .find(|l| l.is_ipv4() == addr.is_ipv4())
            else {
                let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                let why = format!("no local {family} address to probe from");
                self.finish(i, ProbeResult::Unreachable(why), now, now);
                continue;
            };
            self.seq += 1;
            let seq = self.seq;
            let since_epoch = now.saturating_duration_since(self.epoch);
            write_probe(
                buf,
                &ProbeText {
                    uri: &self.dests[i].uri,
                    transport,
                    local,
                    index: i,
                    seq,
                    tag: self.tag,
                    node: &self.node,
                    timestamp: since_epoch,
                },
            );
            let deadline = now + self.probe.timeout;
            self.dests[i].outstanding = Some(Outstanding { seq, sent: now });
            self.deadlines.push(Reverse((deadline, i, seq)));
            self.prune();
            return Some((transport, addr));
        }
        self.prune();
        None
    }

    /// Takes a datagram received on the prober's socket at `now`.
    ///
    /// A final response whose top Via branch names an outstanding probe ends
    /// it (alive or not per `alive_codes`); provisional responses, replies to
    /// probes already given up, requests and anything malformed are ignored.
    /// The source address is not checked: a server may answer from another
    /// address of its own (a second interface, a virtual IP), and the branch
    /// already identifies the probe.
    pub fn handle_datagram(&mut self, bytes: &[u8], _from: SocketAddr, now: Instant) {
        let mut index = std::mem::take(&mut self.index);
        let matched = reply_of(bytes, &mut index);
        self.index = index;
        let Some((i, seq, code)) = matched else {
            return;
        };
        let Some(d) = self.dests.get_mut(i) else {
            return;
        };
        let Some(o) = d.outstanding.filter(|o| o.seq == seq) else {
            return;
        };
        d.outstanding = None;
        let rtt = now.saturating_duration_since(o.sent);
        let result = if self.probe.is_alive(code) {
            ProbeResult::Alive { code, rtt }
        } else {
            ProbeResult::Dead { code, rtt }
        };
        self.finish(i, result, o.sent, now);
        self.prune();
    }

    /// Takes an error from sending to `to` (or an ICMP error reported for
    /// it): the latest outstanding probe to that address fails as unreachable.
    pub fn handle_send_error(&mut self, to: SocketAddr, err: &str, now: Instant) {
        let latest = self
            .dests
            .iter()
            .enumerate()
            .filter(|(_, d)| d.addr == to)
            .filter_map(|(i, d)| d.outstanding.map(|o| (o.seq, i)))
            .max();
        let Some((_, i)) = latest else {
            return;
        };
        let Some(o) = self.dests[i].outstanding.take() else {
            return;
        };
        self.finish(i, ProbeResult::Unreachable(err.to_owned()), o.sent, now);
        self.prune();
    }

    /// Takes note of probes whose timeout passed by `now`. Call when
    /// [`next_timeout`](Self::next_timeout) is reached, then drain
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
        self.prune();
    }

    /// The earliest instant at which a probe is due or an outstanding one
    /// times out; `None` when nothing is scheduled (probing disabled).
    pub fn next_timeout(&self) -> Option<Instant> {
        let due = self.due.peek().map(|Reverse((at, _))| *at);
        let deadline = self.deadlines.peek().map(|Reverse((at, _, _))| *at);
        match (due, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Passive suspicion of destination `i` (`why` becomes its reason): an
    /// active destination is probed at once rather than at its next
    /// interval. Ignored when probing is disabled.
    pub fn suspect(&mut self, i: usize, why: &str, now: Instant) {
        if !self.probe.enabled {
            return;
        }
        let Some(t) = self.trackers.get_mut(i) else {
            return;
        };
        if t.state() != State::Active || t.manual() {
            return;
        }
        t.suspect(why);
        if self.dests[i].outstanding.is_none() {
            self.schedule(i, now);
        }
        self.prune();
    }

    /// The operator sets destination `i`'s state (see [`Tracker::set_state`]);
    /// it is probed at once for a fresh result. With probing disabled, only a
    /// destination set to `probing` is probed, until it is active again.
    pub fn set_state(&mut self, i: usize, state: State, now: Instant) {
        let Some(t) = self.trackers.get_mut(i) else {
            return;
        };
        if t.set_state(state) {
            self.changed = true;
        }
        if self.dests[i].outstanding.is_none() {
            if self.wants_probes(i) {
                self.schedule(i, now);
            } else {
                self.dests[i].next = None;
            }
        }
        self.prune();
    }

    /// Every destination's tracker, in configuration order.
    pub fn trackers(&self) -> &[Tracker] {
        &self.trackers
    }

    /// Pushes every destination's usability and least-latency scale into
    /// `view`.
    ///
    /// Scale: with `l_i` the moving-average latency of destination `i`
    /// floored at 5 ms, `scale_i = min_j l_j / l_i` over the destinations
    /// with a measurement, so the fastest has 1.0 and one twice as slow 0.5;
    /// a destination never measured gets 1.0.
    pub fn apply(&self, view: &HealthView) {
        let floored = |t: &Tracker| t.latency().map(|(_, avg)| avg.max(LATENCY_FLOOR));
        let fastest = self.trackers.iter().filter_map(floored).min();
        for (i, t) in self.trackers.iter().enumerate() {
            view.set_usable(i, t.usable());
            let scale = match (floored(t), fastest) {
                (Some(l), Some(min)) => min.as_secs_f64() / l.as_secs_f64(),
                _ => 1.0,
            };
            view.set_scale(i, scale);
        }
    }

    /// True once after any state change since the last call (then apply the
    /// view and log): a probe result that flipped a state, or an operator
    /// action that changed one.
    pub fn changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Whether destination `i` is probed at all: always when probing is
    /// enabled; otherwise only while it is on its way back from `probing`.
    fn wants_probes(&self, i: usize) -> bool {
        let t = &self.trackers[i];
        self.probe.enabled || (t.state() != State::Active && !t.manual())
    }

    /// Makes destination `i`'s next probe due at `at`.
    fn schedule(&mut self, i: usize, at: Instant) {
        self.dests[i].next = Some(at);
        self.due.push(Reverse((at, i)));
    }

    /// Records a result for destination `i` (whose probe was sent at `sent`;
    /// its outstanding probe already cleared) and schedules the next probe.
    fn finish(&mut self, i: usize, result: ProbeResult, sent: Instant, now: Instant) {
        if self.trackers[i].record(&result, now) {
            self.changed = true;
        }
        if self.wants_probes(i) {
            let gap = if self.trackers[i].retry_soon() {
                self.probe.timeout
            } else {
                self.probe.interval
            };
            self.schedule(i, (sent + gap).max(now));
        } else {
            self.dests[i].next = None;
        }
    }

    /// Ends every outstanding probe whose deadline is at or before `now` as
    /// a timeout.
    fn expire(&mut self, now: Instant) {
        while let Some(&Reverse((at, i, seq))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(d) = self.dests.get_mut(i) else {
                continue;
            };
            match d.outstanding {
                Some(o) if o.seq == seq => {
                    d.outstanding = None;
                    self.finish(i, ProbeResult::Timeout, o.sent, now);
                }
                _ => {} // answered already
            }
        }
    }

    /// Drops stale entries from the top of both timer heaps, so
    /// [`next_timeout`](Self::next_timeout) does not wake the daemon for
    /// nothing, and rebuilds a heap that stale entries have bloated.
    fn prune(&mut self) {
        let dests = &self.dests;
        let due_valid = |&Reverse((at, i)): &Reverse<(Instant, usize)>| {
            dests
                .get(i)
                .is_some_and(|d| d.next == Some(at) && d.outstanding.is_none())
        };
        let deadline_valid = |&Reverse((_, i, seq)): &Reverse<(Instant, usize, u64)>| {
            dests
                .get(i)
                .is_some_and(|d| d.outstanding.is_some_and(|o| o.seq == seq))
        };
        while self.due.peek().is_some_and(|e| !due_valid(e)) {
            self.due.pop();
        }
        while self.deadlines.peek().is_some_and(|e| !deadline_valid(e)) {
            self.deadlines.pop();
        }
        let bloated = 2 * dests.len() + 64;
        if self.due.len() > bloated {
            self.due.retain(due_valid);
        }
        if self.deadlines.len() > bloated {
            self.deadlines.retain(deadline_valid);
        }
    }
}

/// What one probe message says.
struct ProbeText<'a> {
    uri: &'a str,
    transport: Transport,
    local: SocketAddr,
    index: usize,
    seq: u64,
    tag: u64,
    node: &'a str,
    timestamp: Duration,
}

/// Writes an OPTIONS probe into `buf` (cleared first): formatted straight
/// into the buffer, no intermediate strings.
fn write_probe(buf: &mut Vec<u8>, p: &ProbeText<'_>) {
    buf.clear();
    let ProbeText {
        uri,
        transport,
        local,
        index,
        seq,
        tag,
        node,
        timestamp,
    } = *p;
    // CSeq numbers must stay below 2^31 (RFC 3261 §8.1.1.5).
    let cseq = seq & 0x7fff_ffff;
    let (secs, micros) = (timestamp.as_secs(), timestamp.subsec_micros());
    let via = std::str::from_utf8(transport.via_name()).unwrap_or("UDP");
    // Writing into a Vec cannot fail.
    let _ = write!(
        buf,
        "OPTIONS {uri} SIP/2.0\r\n\
         Via: SIP/2.0/{via} {local};branch=z9hG4bKsEp{index:x}.{seq:x};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:sipedge@{local}>;tag={tag:016x}\r\n\
         To: <{uri}>\r\n\
         Call-ID: probe.{seq:x}.{index:x}.{node}\r\n\
         CSeq: {cseq} OPTIONS\r\n\
         Timestamp: {secs}.{micros:06}\r\n\
         User-Agent: sipedge\r\n\
         Content-Length: 0\r\n\r\n"
    );
}

/// The (destination index, sequence number, status code) of a final
/// response to one of our probes; `None` for anything else.
fn reply_of(bytes: &[u8], index: &mut HeaderIndex) -> Option<(usize, u64, u16)> {
    let msg = sip::parse(bytes, index).ok()?;
    let code = msg.status().filter(|&c| c >= 200)?;
    let (_, via) = msg.top_via().ok()?;
    let (i, seq) = parse_branch(via.branch?)?;
    Some((i, seq, code))
}

/// `z9hG4bKsEp<index hex>.<seq hex>` → (index, seq).
fn parse_branch(branch: &[u8]) -> Option<(usize, u64)> {
    let rest = branch.strip_prefix(BRANCH_PREFIX)?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let index = usize::try_from(hex(&rest[..dot])?).ok()?;
    Some((index, hex(&rest[dot + 1..])?))
}

/// A non-empty run of at most 16 hex digits as a number.
fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        let digit = (b as char).to_digit(16)?;
        Some(n << 4 | u64::from(digit))
    })
}

/// The node id with anything a Call-ID word may not hold (RFC 3261 §25.1)
/// replaced by `_`.
fn call_id_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-.!%*_+`'~()<>:\\\"/[]?{}".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Two random numbers for the From tag and the first sequence number, from
/// the standard library's per-process random hash keys (no clock read, no
/// extra dependency); the ids only make the input differ per prober.
fn random_pair(node: &str, edge: &str) -> (u64, u64) {
    let state = RandomState::new();
    let mut h = state.build_hasher();
    h.write(node.as_bytes());
    h.write(edge.as_bytes());
    let a = h.finish();
    h.write_u64(a);
    (a, h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CodeRange, Edge, Node};
    use sip::HeaderName;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    const LOCAL4: &str = "127.0.0.1:40000";
    const LOCAL6: &str = "[::1]:40001";

    /// An edge with `dests` and `probe` settings, plus its node.
    fn setup(probe: Probe, dests: &[&str]) -> (Edge, Node) {
        let mut text = String::from(
            "[node]\nid = \"node-1\"\n[[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:5060\"]\n",
        );
        for d in dests {
            text.push_str(&format!("[[edge.destination]]\nuri = \"{d}\"\n"));
        }
        let config = config::parse(&text, "t.toml").expect("valid config");
        let mut edge = config.edges[0].clone();
        edge.probe = probe;
        (edge, config.node)
    }

    /// 10 s interval, 2 s timeout, 3 down, 1 up.
    fn defaults() -> Probe {
        Probe::default()
    }

    fn prober(probe: Probe, dests: &[&str], now: Instant) -> Prober {
        let (edge, node) = setup(probe, dests);
        Prober::new(&edge, &node, &[sa(LOCAL4), sa(LOCAL6)], now)
    }

    /// Polls one probe at `now`: (destination address, message).
    fn poll(p: &mut Prober, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        let mut buf = Vec::new();
        p.poll_transmit(now, &mut buf).map(|(_, to)| (to, buf))
    }

    /// A header's value in a message we wrote.
    fn header(msg: &[u8], name: HeaderName) -> String {
        let mut idx = HeaderIndex::new();
        let m = sip::parse(msg, &mut idx).expect("probe parses");
        String::from_utf8_lossy(m.first_value(name).expect("header present")).into_owned()
    }

    /// The reply a server gives to `probe`: status line, then the probe's
    /// Via, From, To, Call-ID, CSeq and Timestamp copied (RFC 3261 §8.2.6.2).
    fn reply(probe: &[u8], code: u16) -> Vec<u8> {
        let mut idx = HeaderIndex::new();
        let m = sip::parse(probe, &mut idx).expect("probe parses");
        let mut out = format!("SIP/2.0 {code} Whatever\r\n").into_bytes();
        for h in m.headers() {
            if matches!(
                h.name,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
                    | HeaderName::Timestamp
            ) {
                out.extend_from_slice(&probe[h.line.range()]);
            }
        }
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        out
    }

    fn answer(p: &mut Prober, probe: &[u8], code: u16, now: Instant) {
        p.handle_datagram(&reply(probe, code), sa("127.0.0.1:5070"), now);
    }

    #[test]
    fn a_reseeded_prober_keeps_the_trackers_of_destinations_still_configured() {
        let t0 = Instant::now();
        let (a, b, c) = (
            "sip:127.0.0.1:5070",
            "sip:127.0.0.1:5071",
            "sip:127.0.0.1:5072",
        );
        let mut p = prober(defaults(), &[a, b], t0);
        // A answers 200 (a latency), B is held inactive by hand.
        let (_, probe_a) = poll(&mut p, t0).expect("A due");
        answer(&mut p, &probe_a, 200, t0 + ms(30));
        p.set_state(1, State::Inactive, t0 + ms(40));
        let seq = p.seq;
        let (edge, node) = setup(defaults(), &[c, b, a]);
        let now = t0 + ms(50);
        let mut p = p.reseeded(&edge, &node, &[sa(LOCAL4), sa(LOCAL6)], now);
        assert!(p.changed(), "the new order must be applied to the view");
        let t = p.trackers();
        assert_eq!(t[0].probes(), (0, 0), "C is new");
        assert_eq!((t[1].state(), t[1].manual()), (State::Inactive, true));
        assert_eq!(t[2].latency().map(|(l, _)| l), Some(ms(30)));
        // C is probed now; A keeps its 10 s interval; B (probe sent by
        // set_state, not waited for) is probed again now.
        let mut due = Vec::new();
        while let Some((to, _)) = poll(&mut p, now + ms(20)) {
            due.push(to);
        }
        due.sort();
        // Numbering carries on, so a late answer to a probe of before the
        // reload matches none of after it.
        assert_eq!(p.seq, seq + 2);
        assert_eq!(due, [sa("127.0.0.1:5071"), sa("127.0.0.1:5072")]);
        let view = HealthView::new(3);
        p.apply(&view);
        assert!(view.usable(0) && !view.usable(1) && view.usable(2));
    }

    #[test]
    fn probe_message_is_a_well_formed_options() {
        let t0 = Instant::now();
        let mut p = prober(defaults(), &["sip:127.0.0.1:5070;transport=udp"], t0);
        let (to, msg) = poll(&mut p, t0 + ms(1500)).expect("first probe due at once");
        assert_eq!(to, sa("127.0.0.1:5070"));
        let text = String::from_utf8(msg.clone()).expect("ASCII");
        let seq = p.seq;
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines,
            [
                "OPTIONS sip:127.0.0.1:5070;transport=udp SIP/2.0".to_owned(),
                format!("Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKsEp0.{seq:x};rport"),
                "Max-Forwards: 70".to_owned(),
                format!("From: <sip:sipedge@127.0.0.1:40000>;tag={:016x}", p.tag),
                "To: <sip:127.0.0.1:5070;transport=udp>".to_owned(),
                format!("Call-ID: probe.{seq:x}.0.node-1"),
                format!("CSeq: {} OPTIONS", seq & 0x7fff_ffff),
                "Timestamp: 1.500000".to_owned(),
                "User-Agent: sipedge".to_owned(),
                "Content-Length: 0".to_owned(),
                String::new(),
                String::new(),
            ]
        );
        // And our own parser reads it as such.
        let mut idx = HeaderIndex::new();
        let m = sip::parse(&msg, &mut idx).expect("parses");
        assert_eq!(m.method(), sip::Method::Options);
        let (_, via) = m.top_via().expect("via");
        assert!(via.has_cookie());
        assert_eq!(via.rport, sip::Rport::Requested);
        assert_eq!(m.content_length(), Some(0));
        assert_eq!(m.end(), msg.len());
    }

    #[test]
    fn via_names_the_local_address_of_the_destination_family() {
        let t0 = Instant::now();
        let mut p = prober(defaults(), &["sip:[::1]:5070"], t0);
        let (to, msg) = poll(&mut p, t0).expect("due");
        assert_eq!(to, sa("[::1]:5070"));
        let via = header(&msg, HeaderName::Via);
        assert!(via.starts_with("SIP/2.0/UDP [::1]:40001;branch="), "{via}");
        assert!(header(&msg, HeaderName::From).starts_with("<sip:sipedge@[::1]:40001>"));
    }

    #[test]
    fn every_probe_has_its_own_branch_and_call_id() {
        let t0 = Instant::now();
        let mut p = prober(
            defaults(),
            &["sip:127.0.0.1:5070", "sip:127.0.0.1:5071"],
            t0,
        );
        let mut seen = Vec::new();
        // From when both destinations are due (the second 10 ms after the first).
        let mut now = t0 + ms(10);
        for _ in 0..3 {
            while let Some((_, msg)) = poll(&mut p, now) {
                answer(&mut p, &msg, 200, now);
                seen.push((
                    header(&msg, HeaderName::Via),
                    header(&msg, HeaderName::CallId),
                ));
            }
            now += ms(10_020);
        }
        assert_eq!(seen.len(), 6);
        for (k, a) in seen.iter().enumerate() {
            for b in &seen[k + 1..] {
                assert_ne!(a.0, b.0);
                assert_ne!(a.1, b.1);
            }
        }
    }

    #[test]
    fn first_probes_are_staggered() {
        let t0 = Instant::now();
        let mut p = prober(
            defaults(),
            &[
                "sip:127.0.0.1:5070",
                "sip:127.0.0.1:5071",
                "sip:127.0.0.1:5072",
            ],
            t0,
        );
        assert_eq!(p.next_timeout(), Some(t0));
        let (to, _) = poll(&mut p, t0).expect("first at once");
        assert_eq!(to, sa("127.0.0.1:5070"));
        assert!(poll(&mut p, t0).is_none());
        // The earliest event is now the second destination's first probe.
        assert_eq!(p.next_timeout(), Some(t0 + ms(10)));
        assert_eq!(
            poll(&mut p, t0 + ms(10)).map(|x| x.0),
            Some(sa("127.0.0.1:5071"))
        );
        assert_eq!(
            poll(&mut p, t0 + ms(25)).map(|x| x.0),
            Some(sa("127.0.0.1:5072"))
        );
    }

    #[test]
    fn stagger_step_fits_short_intervals() {
        let t0 = Instant::now();
        let probe = Probe {
            interval: ms(100),
            timeout: ms(50),
            ..defaults()
        };
        let dests: Vec<String> = (0..20)
            .map(|k| format!("sip:127.0.0.1:{}", 6000 + k))
            .collect();
        let dests: Vec<&str> = dests.iter().map(String::as_str).collect();
        let mut p = prober(probe, &dests, t0);
        // 100 ms / 20 = 5 ms apart: all first probes within one interval.
        let mut sent = 0;
        while poll(&mut p, t0 + ms(95)).is_some() {
            sent += 1;
        }
        assert_eq!(sent, 20);
    }

    #[test]
    fn a_reply_marks_alive_and_measures_latency() {
        let t0 = Instant::now();
        let mut p = prober(defaults(), &["sip:127.0.0.1:5070"], t0);
        let (_, msg) = poll(&mut p, t0).expect("due");
        assert_eq!(p.next_timeout(), Some(t0 + ms(2000)), "the deadline");
        answer(&mut p, &msg, 200, t0 + ms(3));
        let t = &p.trackers()[0];
        assert_eq!(t.state(), State::Active);
        assert_eq!(t.reason(), "probe: 200 OK in 3.0 ms");
        assert_eq!(t.latency(), Some((ms(3), ms(3))));
        let last = t.last_probe().expect("recorded");
        assert_eq!(
            (last.result.as_str(), last.ok, last.at),
            ("200 OK", true, t0 + ms(3))
        );
        assert_eq!(t.probes(), (1, 0));
        assert!(!p.changed(), "still active: no change");
        // Next probe one interval after the last was sent.
        assert_eq!(p.next_timeout(), Some(t0 + ms(10_000)));
        assert!(poll(&mut p, t0 + ms(9_999)).is_none());
        assert!(poll(&mut p, t0 + ms(10_000)).is_some());
    }

    #[test]
    fn provisional_replies_are_ignored() {
        let t0 = Instant::now();
        let mut p = prober(defaults(), &["sip:127.0.0.1:5070"], t0);
        let (_, msg) = poll(&mut p, t0).expect("due");
        answer(&mut p, &msg, 100, t0 + ms(1));
        assert!(p.trackers()[0].last_probe().is_none());
        answer(&mut p, &msg, 200, t0 + ms(7));
        assert_eq!(p.trackers()[0].latency(), Some((ms(7), ms(7))));
    }

    #[test]
    fn a_dead_server_is_inactive_after_threshold_times_timeout() {
        let t0 = Instant::now();
        let mut p = prober(defaults(), &["sip:127.0.0.1:5070"], t0);
        assert!(poll(&mut p, t0).is_some());
        // Retried as soon as each timeout passes, not after the interval.
        for k in 1..=2u64 {
            let at = t0 + ms(2000 * k);
            assert_eq!(p.next_timeout(), Some(at));
            p.handle_timeout(at);
            assert_eq!(p.trackers()[0].state(), State::Active);
            assert!(poll(&mut p, at).is_some(), "retry {k}");
        }
        let at = t0 + ms(6000);
        p.handle_timeout(at);
        let t = &p.trackers()[0];
        assert_eq!(t.state(), State::Inactive);
        assert_eq!(
            t.reason(),
            "3 probes in a row failed (last: timeout after 2 s)"
        );
        assert_eq!(t.probes(), (3, 3));
        assert!(p.changed());
        assert!(!p.changed(), "reported once");
        // Inactive: probed every interval from the last send.
        assert!(poll(&mut p, at).is_none());
        assert_eq!(p.next_timeout(), Some(t0 + ms(4000 + 10_000)));
    }

    #[test]
    fn a_timed_out_probe_is_seen_by_poll_transmit_too() {
        let t0 = Instant::now();
        let mut p = prober(defaults(), &["sip:127.0.0.1:5070"], t0);
        poll(&mut p, t0).expect("due");
        // No handle_timeout call: poll_transmit notices the timeout and retries.
        assert!(poll(&mut p, t0 + ms(2000)).is_some());
        assert_eq!(p.trackers()[0].probes(), (2, 1));
    }

    #[test]
    fn it_comes_back_with_a_good_probe() {
        let t0 = Instant::now();
        let probe = Probe {
            inactive_threshold: 1,
            ..defaults()
        };
        let mut p = prober(probe, &["sip:127.0.0.1:5070"], t0);
        poll(&mut p, t0).expect("due");
        p.handle_timeout(t0 + ms(2000));
        assert_eq!(p.trackers()[0].state(), State::Inactive);
        assert!(p.changed());
        let (_, msg) = poll(&mut p, t0 + ms(10_000)).expect("interval");
        answer(&mut p, &msg, 200, t0 + ms(10_002));
        assert_eq!(p.trackers()[0].state(), State::Active);
        assert!(p.changed());
    }

    #[test]
    fn a_code_not_alive_fails_and_is_retried_after_the_timeout() {
        let t0 = Instant::now();
        let probe = Probe {
            alive_codes: vec![CodeRange { lo: 200, hi: 200 }],
            ..defaults()
        };
        let mut p = prober(probe, &["sip:127.0.0.1:5070"], t0);
        let (_, msg) = poll(&mut p, t0).expect("due");
        answer(&mut p, &msg, 404, t0 + ms(4));
        let t = &p.trackers()[0];
        assert_eq!(t.state(), State::Active);
        assert!(t
            .reason()
            .starts_with("probe failed: 404 Not Found in 4.0 ms"));
        assert_eq!(t.latency(), Some((ms(4), ms(4))));
        // Retried `timeout` after the failed probe was sent.
        assert_eq!(p.next_timeout(), Some(t0 + ms(2000)));
    }

    #[test]
    fn malformed_or_foreign_replies_are_ignored() {
        let t0 = Instant::now();
        let mut p = prober(defaults(), &["sip:127.0.0.1:5070"], t0);
        let (_, msg) = poll(&mut p, t0).expect("due");
        let good = String::from_utf8(reply(&msg, 200)).expect("ASCII");
        let branch = format!("z9hG4bKsEp0.{:x}", p.seq);
        let junk: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\r\n\r\n".to_vec(),
            b"garbage \xff\xfe".to_vec(),
            vec![0; 70_000],
            // A request, not a response.
            msg.clone(),
            // No Via at all.
            b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".to_vec(),
            // Broken Via.
            good.replace("SIP/2.0/UDP", "SIP/UDP").into_bytes(),
            // Branches that are not ours, or do not parse.
            good.replace(&branch, "z9hG4bKother").into_bytes(),
            good.replace(&branch, "z9hG4bKsEp").into_bytes(),
            good.replace(&branch, "z9hG4bKsEp0.").into_bytes(),
            good.replace(&branch, "z9hG4bKsEp.1").into_bytes(),
            good.replace(&branch, "z9hG4bKsEpzz.1").into_bytes(),
            good.replace(&branch, "z9hG4bKsEp0.11111111111111111")
                .into_bytes(),
            good.replace(&branch, "z9hG4bKsEpffffffffffffffff.1")
                .into_bytes(),
            good.replace(&branch, "z9hG4bKsEp7.1").into_bytes(),
            good.replace(&branch, &format!("z9hG4bKsEp0.{:x}", p.seq + 1))
                .into_bytes(),
            // A bad status line.
            good.replace("SIP/2.0 200", "SIP/2.0 2000").into_bytes(),
        ];
        for j in &junk {
            p.handle_datagram(j, sa("127.0.0.1:5070"), t0 + ms(1));
        }
        assert!(p.trackers()[0].last_probe().is_none(), "nothing matched");
        // The real reply still does.
        p.handle_datagram(good.as_bytes(), sa("10.9.9.9:1"), t0 + ms(2));
        assert!(p.trackers()[0].last_probe().is_some_and(|r| r.ok));
        // A duplicate (retransmitted) reply is not counted twice.
        p.handle_datagram(good.as_bytes(), sa("127.0.0.1:5070"), t0 + ms(3));
        assert_eq!(p.trackers()[0].latency(), Some((ms(2), ms(2))));
    }

    #[test]
    fn a_late_reply_to_a_timed_out_probe_is_ignored() {
        let t0 = Instant::now();
        let mut p = prober(defaults(), &["sip:127.0.0.1:5070"], t0);
        let (_, first) = poll(&mut p, t0).expect("due");
        let (_, second) = poll(&mut p, t0 + ms(2000)).expect("retry");
        answer(&mut p, &first, 200, t0 + ms(2100));
        let t = &p.trackers()[0];
        assert!(t.last_probe().is_some_and(|r| !r.ok), "still the timeout");
        answer(&mut p, &second, 200, t0 + ms(2101));
        assert_eq!(p.trackers()[0].latency(), Some((ms(101), ms(101))));
    }

    #[test]
    fn a_send_error_fails_the_probe_as_unreachable() {
        let t0 = Instant::now();
        let mut p = prober(defaults(), &["sip:127.0.0.1:5070"], t0);
        poll(&mut p, t0).expect("due");
        p.handle_send_error(sa("127.0.0.1:9"), "not ours", t0);
        assert!(p.trackers()[0].last_probe().is_none());
        p.handle_send_error(sa("127.0.0.1:5070"), "connection refused", t0 + ms(1));
        let t = &p.trackers()[0];
        assert_eq!(
            t.last_probe().map(|r| r.result.as_str()),
            Some("unreachable: connection refused")
        );
        assert_eq!(t.probes(), (1, 1));
        // Retried `timeout` after it was sent; the old deadline is gone.
        assert_eq!(p.next_timeout(), Some(t0 + ms(2000)));
        // An error with nothing outstanding is ignored.
        p.handle_send_error(sa("127.0.0.1:5070"), "again", t0 + ms(2));
        assert_eq!(p.trackers()[0].probes(), (1, 1));
    }

    #[test]
    fn a_send_error_goes_to_the_latest_probe_to_that_address() {
        let t0 = Instant::now();
        let mut p = prober(
            defaults(),
            &["sip:a@127.0.0.1:5070", "sip:b@127.0.0.1:5070"],
            t0,
        );
        poll(&mut p, t0).expect("first");
        poll(&mut p, t0 + ms(10)).expect("second");
        p.handle_send_error(sa("127.0.0.1:5070"), "refused", t0 + ms(10));
        assert!(p.trackers()[0].last_probe().is_none());
        assert!(p.trackers()[1].last_probe().is_some());
    }

    #[test]
    fn no_local_address_of_the_family_is_unreachable() {
        let t0 = Instant::now();
        let (edge, node) = setup(defaults(), &["sip:[::1]:5070", "sip:127.0.0.1:5071"]);
        let mut p = Prober::new(&edge, &node, &[sa(LOCAL4)], t0);
        let (to, _) = poll(&mut p, t0 + ms(10)).expect("the IPv4 one is still probed");
        assert_eq!(to, sa("127.0.0.1:5071"));
        let t = &p.trackers()[0];
        assert_eq!(
            t.last_probe().map(|r| r.result.as_str()),
            Some("unreachable: no local IPv6 address to probe from")
        );
    }

    #[test]
    fn suspicion_probes_at_once() {
        let t0 = Instant::now();
        let mut p = prober(defaults(), &["sip:127.0.0.1:5070"], t0);
        let (_, msg) = poll(&mut p, t0).expect("due");
        answer(&mut p, &msg, 200, t0 + ms(1));
        let now = t0 + ms(3000);
        p.suspect(0, "suspected: 12 requests, no reply", now);
        assert_eq!(p.trackers()[0].reason(), "suspected: 12 requests, no reply");
        assert_eq!(p.next_timeout(), Some(now));
        let (_, msg) = poll(&mut p, now).expect("probed at once");
        // While it is outstanding, more suspicion sends nothing more.
        p.suspect(0, "suspected: again", now);
        assert!(poll(&mut p, now).is_none());
        answer(&mut p, &msg, 200, now + ms(2));
        assert_eq!(p.trackers()[0].reason(), "probe: 200 OK in 2.0 ms");
        // Out of range is ignored.
        p.suspect(9, "x", now);
    }

    #[test]
    fn suspicion_is_ignored_when_probing_is_disabled_or_not_active() {
        let t0 = Instant::now();
        let off = Probe {
            enabled: false,
            ..defaults()
        };
        let mut p = prober(off, &["sip:127.0.0.1:5070"], t0);
        p.suspect(0, "suspected: x", t0);
        assert_eq!(p.next_timeout(), None);
        assert_eq!(p.trackers()[0].reason(), "probing disabled");

        let mut p = prober(defaults(), &["sip:127.0.0.1:5070"], t0);
        p.set_state(0, State::Inactive, t0);
        poll(&mut p, t0).expect("probed once after the operator's change");
        p.handle_timeout(t0 + ms(2000));
        p.suspect(0, "suspected: x", t0 + ms(2000));
        assert!(poll(&mut p, t0 + ms(2000)).is_none());
        assert_eq!(p.trackers()[0].reason(), "set inactive by the operator");
    }

    #[test]
    fn operator_inactive_holds_and_apply_hides_it() {
        let t0 = Instant::now();
        let mut p = prober(
            defaults(),
            &["sip:127.0.0.1:5070", "sip:127.0.0.1:5071"],
            t0,
        );
        let view = HealthView::new(2);
        p.set_state(1, State::Inactive, t0);
        assert!(p.changed());
        p.apply(&view);
        assert!(view.usable(0));
        assert!(!view.usable(1));
        // Probes keep running and answering, the hold stays.
        let mut now = t0;
        for _ in 0..3 {
            while let Some((_, msg)) = poll(&mut p, now) {
                answer(&mut p, &msg, 200, now + ms(1));
            }
            now += ms(10_000);
        }
        let t = &p.trackers()[1];
        assert_eq!((t.state(), t.manual()), (State::Inactive, true));
        assert!(t.probes().0 >= 3);
        assert!(!p.changed());
        p.set_state(1, State::Active, now);
        assert!(p.changed());
        p.apply(&view);
        assert!(view.usable(1));
        assert!(!p.trackers()[1].manual());
        // Out of range is ignored.
        p.set_state(5, State::Inactive, now);
    }

    #[test]
    fn operator_probing_is_probed_at_once_and_used_after_good_probes() {
        let t0 = Instant::now();
        let probe = Probe {
            active_threshold: 2,
            ..defaults()
        };
        let mut p = prober(probe, &["sip:127.0.0.1:5070"], t0);
        let (_, msg) = poll(&mut p, t0).expect("due");
        answer(&mut p, &msg, 200, t0 + ms(1));
        let now = t0 + ms(5000);
        p.set_state(0, State::Probing, now);
        assert!(p.changed());
        assert_eq!(p.next_timeout(), Some(now));
        let (_, msg) = poll(&mut p, now).expect("probed at once");
        answer(&mut p, &msg, 200, now + ms(1));
        assert_eq!(p.trackers()[0].state(), State::Probing);
        let (_, msg) = poll(&mut p, now + ms(10_000)).expect("next interval");
        answer(&mut p, &msg, 200, now + ms(10_001));
        assert_eq!(p.trackers()[0].state(), State::Active);
        assert!(p.changed());
    }

    #[test]
    fn disabled_probing_sends_nothing_but_honours_operator_probing() {
        let t0 = Instant::now();
        let off = Probe {
            enabled: false,
            ..defaults()
        };
        let mut p = prober(off, &["sip:127.0.0.1:5070"], t0);
        assert_eq!(p.next_timeout(), None);
        assert!(poll(&mut p, t0 + ms(60_000)).is_none());
        let view = HealthView::new(1);
        p.apply(&view);
        assert!(view.usable(0));

        p.set_state(0, State::Probing, t0);
        let (_, msg) = poll(&mut p, t0).expect("the operator asked for a probe");
        answer(&mut p, &msg, 200, t0 + ms(1));
        assert_eq!(p.trackers()[0].state(), State::Active);
        assert_eq!(p.next_timeout(), None, "active again: no more probes");

        // Held inactive: no probes either.
        p.set_state(0, State::Inactive, t0 + ms(2));
        assert_eq!(p.next_timeout(), None);
    }

    #[test]
    fn apply_scales_by_latency_with_a_floor() {
        let t0 = Instant::now();
        let dests = [
            "sip:127.0.0.1:5070",
            "sip:127.0.0.1:5071",
            "sip:127.0.0.1:5072",
            "sip:127.0.0.1:5073",
        ];
        let mut p = prober(defaults(), &dests, t0);
        // Replies after 10 ms, 20 ms and 2 ms (floored to 5 ms); the last never answers.
        let rtts = [10, 20, 2];
        let mut now = t0;
        for _ in 0..4 {
            if let Some((to, msg)) = poll(&mut p, now) {
                let i = usize::from(to.port() - 5070);
                if let Some(rtt) = rtts.get(i) {
                    answer(&mut p, &msg, 200, now + ms(*rtt));
                }
            }
            now += ms(10);
        }
        let view = HealthView::new(4);
        p.apply(&view);
        let scales: Vec<f64> = (0..4).map(|i| view.scale(i)).collect();
        let expect = [0.5, 0.25, 1.0, 1.0];
        for (got, want) in scales.iter().zip(expect) {
            assert!((got - want).abs() < 1e-9, "{scales:?}");
        }
    }

    #[test]
    fn apply_without_measurements_is_full_scale() {
        let t0 = Instant::now();
        let p = prober(
            defaults(),
            &["sip:127.0.0.1:5070", "sip:127.0.0.1:5071"],
            t0,
        );
        let view = HealthView::new(2);
        view.set_scale(0, 0.3);
        p.apply(&view);
        assert_eq!((view.scale(0), view.scale(1)), (1.0, 1.0));
    }

    #[test]
    fn next_timeout_is_the_earliest_of_due_and_deadline() {
        let t0 = Instant::now();
        let probe = Probe {
            interval: ms(1000),
            timeout: ms(500),
            ..defaults()
        };
        let mut p = prober(probe, &["sip:127.0.0.1:5070", "sip:127.0.0.1:5071"], t0);
        poll(&mut p, t0).expect("first");
        // Second destination due at +10 ms, before the first's deadline.
        assert_eq!(p.next_timeout(), Some(t0 + ms(10)));
        let (_, msg) = poll(&mut p, t0 + ms(10)).expect("second");
        assert_eq!(p.next_timeout(), Some(t0 + ms(500)));
        // Answering the second leaves the first's deadline the earliest.
        answer(&mut p, &msg, 200, t0 + ms(11));
        assert_eq!(p.next_timeout(), Some(t0 + ms(500)));
    }

    #[test]
    fn stale_timer_entries_do_not_pile_up() {
        let t0 = Instant::now();
        let mut p = prober(defaults(), &["sip:127.0.0.1:5070"], t0);
        let (_, msg) = poll(&mut p, t0).expect("due");
        answer(&mut p, &msg, 200, t0 + ms(1));
        for k in 0..1000 {
            p.set_state(0, State::Inactive, t0 + ms(k));
            p.set_state(0, State::Active, t0 + ms(k));
            if let Some((_, msg)) = poll(&mut p, t0 + ms(k)) {
                answer(&mut p, &msg, 200, t0 + ms(k));
            }
        }
        assert!(p.due.len() <= 2 + 64, "{}", p.due.len());
        assert!(p.deadlines.len() <= 2 + 64, "{}", p.deadlines.len());
    }

    #[test]
    fn no_destinations_is_quiet() {
        let t0 = Instant::now();
        let (mut edge, node) = setup(defaults(), &["sip:127.0.0.1:5070"]);
        edge.destinations.clear();
        let mut p = Prober::new(&edge, &node, &[], t0);
        assert_eq!(p.next_timeout(), None);
        assert!(poll(&mut p, t0).is_none());
        p.handle_timeout(t0);
        p.apply(&HealthView::new(0));
        assert!(p.trackers().is_empty());
    }

    #[test]
    fn call_id_keeps_only_word_characters() {
        assert_eq!(call_id_safe("edge-1.lon"), "edge-1.lon");
        assert_eq!(call_id_safe("a b;c@d\u{e9}"), "a_b_c_d_");
    }

    #[test]
    fn branch_parsing() {
        assert_eq!(parse_branch(b"z9hG4bKsEp0.1"), Some((0, 1)));
        assert_eq!(parse_branch(b"z9hG4bKsEpa.ff"), Some((10, 255)));
        assert_eq!(parse_branch(b"z9hG4bKsEpA.FF"), Some((10, 255)));
        assert_eq!(parse_branch(b"z9hG4bKsEp0"), None);
        assert_eq!(parse_branch(b"z9hG4bKsEp0.1.2"), None);
        assert_eq!(parse_branch(b"z9hG4bKsEp-1.2"), None);
        assert_eq!(parse_branch(b"z9hG4bKsEp0.+2"), None);
        assert_eq!(parse_branch(b"z9hG4bK0.1"), None);
        assert_eq!(parse_branch(b""), None);
    }

    /// Thousands of destinations on one prober (one task, no thread each):
    /// every live one is probed once per interval, every dead one is out
    /// within inactive_threshold x timeout of its first probe, and the
    /// timer heaps stay bounded.
    #[test]
    fn five_thousand_destinations_on_one_prober() {
        const N: usize = 5000;
        let uris: Vec<String> = (0..N)
            .map(|i| format!("sip:127.0.{}.{}:5060", i / 250, i % 250 + 1))
            .collect();
        let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
        let t0 = Instant::now();
        let mut p = prober(defaults(), &refs, t0);
        let dead = |i: usize| i.is_multiple_of(4);
        let index_of = |to: SocketAddr| -> usize {
            let std::net::IpAddr::V4(ip) = to.ip() else {
                panic!("{to}")
            };
            let o = ip.octets();
            usize::from(o[2]) * 250 + usize::from(o[3]) - 1
        };
        let mut probes = vec![0u32; N];
        let mut now = t0;
        let end = t0 + Duration::from_secs(35);
        while now <= end {
            p.handle_timeout(now);
            while let Some((to, msg)) = poll(&mut p, now) {
                let i = index_of(to);
                probes[i] += 1;
                if !dead(i) {
                    p.handle_datagram(&reply(&msg, 200), to, now + ms(1));
                }
            }
            assert!(
                p.due.len() + p.deadlines.len() <= 3 * N,
                "timer heaps grow: {} + {}",
                p.due.len(),
                p.deadlines.len()
            );
            now += ms(10);
        }
        for (i, t) in p.trackers().iter().enumerate() {
            if dead(i) {
                assert_eq!(t.state(), State::Inactive, "dead destination {i}");
            } else {
                assert_eq!(t.state(), State::Active, "live destination {i}");
                // First probe within the first interval, then every 10 s.
                assert!((3..=4).contains(&probes[i]), "{i}: {} probes", probes[i]);
            }
        }
        let view = HealthView::new(N);
        p.apply(&view);
        assert_eq!((0..N).filter(|&i| view.usable(i)).count(), N - N / 4);
    }
}
