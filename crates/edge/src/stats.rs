//! Per-worker counters of what an edge did with each message: each has
//! one writer (its worker thread), and `/metrics` and the admin API sum
//! them when asked.

use sip::Method;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// What happened to a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Event {
    /// A request forwarded toward a destination or the outside.
    RequestForwarded,
    /// A response forwarded back along the Via path.
    ResponseForwarded,
    /// A request answered locally (any status).
    Replied,
    /// Only white space: a keep-alive.
    KeepAlive,
    /// Not a SIP message, or one whose framing or start line is broken.
    Malformed,
    /// A request whose top Via cannot be read: nowhere to answer.
    BadVia,
    /// A response whose top Via is not ours.
    ResponseNotOurs,
    /// A response carrying our Via with a branch that does not verify.
    BadToken,
    /// A response whose next hop cannot be reached (no Via, a name, broadcast).
    ResponseUnroutable,
    /// An ACK that could not be forwarded (ACKs are never answered).
    AckDropped,
    /// An in-dialog request from outside toward a foreign next hop, refused
    /// (`foreign_next_hop = "refuse"`).
    RelayDenied,
    /// No socket of the right address family to send from.
    NoSocket,
    /// No usable destination for a new request.
    NoDestination,
    /// A message a transaction answered or swallowed itself: a
    /// retransmission answered from it, the ACK of our non-2xx final.
    Absorbed,
    /// A request that arrived again while its transaction was alive.
    Retransmission,
    /// Sent on to the next destination after one failed (transactional).
    Failover,
    /// Forwarded statelessly on a transactional edge because its table was
    /// full (or the request too large to keep).
    Untracked,
    /// A new call beyond capacity redirected to another node (302).
    CapacityRedirected,
    /// A new call beyond capacity refused (503 with Retry-After).
    CapacityRefused,
    /// An in-dialog request from outside toward a foreign next hop, sent
    /// into the pool instead (`foreign_next_hop = "dispatch"`); ACKs and
    /// CANCELs, which follow their INVITE there in any case, not counted.
    ForeignDispatched,
    /// A message too large to forward with sipedge's own headers added:
    /// answered 400/513, or dropped.
    Oversized,
    /// A response or ACK that failed validation, dropped.
    Invalid,
    /// A request too large for a UDP datagram sent over the stream
    /// transport its destination also takes (RFC 3261 §18.1.1).
    LargeOverStream,
    /// A response whose fields the proxy reads are not fit to act on (a
    /// singleton header twice, a Call-ID or CSeq that does not parse),
    /// dropped.
    BadResponse,
    /// A request whose top Via, or whose answer's address, is this edge
    /// itself: dropped, since any answer would come back to the edge as a
    /// response of its own (a garbled response, a forged Via, a pool
    /// server sending the edge its own request back).
    OwnVia,
    /// An out-of-dialog request from outside that routes through this edge
    /// to a foreign host (an open-relay attempt on the outbound proxy):
    /// refused 403. Only the edge's destinations and `outbound_from` may
    /// go out through it.
    OutboundDenied,
    /// A request to a host name whose DNS answer was not at hand: handed
    /// to the resolver, and handled again when the answer comes.
    Resolving,
    /// A request to a host name that has no usable DNS answer: refused
    /// (404 when the name has no records, 503 when the lookup failed).
    Unresolvable,
    /// A request whose Route names this edge with a user part that is not
    /// a flow token the cluster sealed for this edge (forged, altered,
    /// truncated, under a dropped secret, another edge's): refused 403.
    FlowTokenRefused,
    /// A request a flow token sent to a connection that is gone: answered
    /// 430 Flow Failed (RFC 5626 §5.3), or dropped if an ACK.
    FlowFailed,
    /// A REGISTER the built-in registrar took (200 OK).
    Registered,
    /// A REGISTER the built-in registrar refused (403, 423, 400, 500).
    RegisterRefused,
    /// A request from the pool sent to a registered contact.
    ToBinding,
    /// A request from the pool for an address of record with no contact bound (480).
    NotRegistered,
    /// A keepalive sent to a registered contact.
    KeepaliveSent,
    /// An answer to an OPTIONS keepalive.
    KeepaliveAnswered,
    /// A binding removed because its contact stopped answering keepalives.
    BindingLost,
    /// A packet dropped unanswered by the edge's hygiene (`deny`,
    /// `restrict`, `user_agent_deny`); per reason in the admin API.
    Blocked,
    /// A new call: an INVITE outside any dialog, to be dispatched, before
    /// the limits judge it (a stateless edge counts a retransmission
    /// again, as its CPS limit does).
    NewCall,
}

/// Number of [`Event`] kinds.
pub const EVENTS: usize = Event::NewCall as usize + 1;

impl Event {
    /// Every event, in declaration order.
    pub const ALL: [Event; EVENTS] = [
        Event::RequestForwarded,
        Event::ResponseForwarded,
        Event::Replied,
        Event::KeepAlive,
        Event::Malformed,
        Event::BadVia,
        Event::ResponseNotOurs,
        Event::BadToken,
        Event::ResponseUnroutable,
        Event::AckDropped,
        Event::RelayDenied,
        Event::NoSocket,
        Event::NoDestination,
        Event::Absorbed,
        Event::Retransmission,
        Event::Failover,
        Event::Untracked,
        Event::CapacityRedirected,
        Event::CapacityRefused,
        Event::ForeignDispatched,
        Event::Oversized,
        Event::Invalid,
        Event::LargeOverStream,
        Event::BadResponse,
        Event::OwnVia,
        Event::OutboundDenied,
        Event::Resolving,
        Event::Unresolvable,
        Event::FlowTokenRefused,
        Event::FlowFailed,
        Event::Registered,
        Event::RegisterRefused,
        Event::ToBinding,
        Event::NotRegistered,
        Event::KeepaliveSent,
        Event::KeepaliveAnswered,
        Event::BindingLost,
        Event::Blocked,
        Event::NewCall,
    ];

    /// A stable name for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Event::RequestForwarded => "request_forwarded",
            Event::ResponseForwarded => "response_forwarded",
            Event::Replied => "replied",
            Event::KeepAlive => "keepalive",
            Event::Malformed => "malformed",
            Event::BadVia => "bad_via",
            Event::ResponseNotOurs => "response_not_ours",
            Event::BadToken => "bad_token",
            Event::ResponseUnroutable => "response_unroutable",
            Event::AckDropped => "ack_dropped",
            Event::RelayDenied => "relay_denied",
            Event::NoSocket => "no_socket",
            Event::NoDestination => "no_destination",
            Event::Absorbed => "absorbed",
            Event::Retransmission => "retransmission",
            Event::Failover => "failover",
            Event::Untracked => "untracked",
            Event::CapacityRedirected => "capacity_redirected",
            Event::CapacityRefused => "capacity_refused",
            Event::ForeignDispatched => "foreign_dispatched",
            Event::Oversized => "oversized",
            Event::Invalid => "invalid",
            Event::LargeOverStream => "large_over_stream",
            Event::BadResponse => "bad_response",
            Event::OwnVia => "own_via",
            Event::OutboundDenied => "outbound_denied",
            Event::Resolving => "resolving",
            Event::Unresolvable => "unresolvable",
            Event::FlowTokenRefused => "flow_token_refused",
            Event::FlowFailed => "flow_failed",
            Event::Registered => "registered",
            Event::RegisterRefused => "register_refused",
            Event::ToBinding => "to_binding",
            Event::NotRegistered => "not_registered",
            Event::KeepaliveSent => "keepalive_sent",
            Event::KeepaliveAnswered => "keepalive_answered",
            Event::BindingLost => "binding_lost",
            Event::Blocked => "blocked",
            Event::NewCall => "new_call",
        }
    }
}

/// Response classes counted: 1xx to 6xx.
pub const CLASSES: usize = 6;

/// The label of response class `i` (0 for 1xx).
pub const CLASS_NAMES: [&str; CLASSES] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// The class index of status `code` (100..=699; anything else is taken
/// as the nearest class, since the parser already refused it).
#[inline]
pub fn class_of(code: u16) -> usize {
    (usize::from(code / 100)).clamp(1, CLASSES) - 1
}

/// Adds one to a counter that only this thread writes: a relaxed load and
/// store, which costs what a plain increment does, where a read-modify-write
/// would lock the bus.
#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

/// The cells of one worker for one edge, read by a scrape while the worker
/// counts (each has that one writer).
#[derive(Debug)]
pub struct Tally {
    events: [AtomicU64; EVENTS],
    requests: [AtomicU64; Method::COUNT],
    responses: [AtomicU64; CLASSES],
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            events: std::array::from_fn(|_| AtomicU64::new(0)),
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            responses: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Counters of one worker for one edge: the worker counts without locks or
/// read-modify-writes, the admin API and `/metrics` read them through the
/// edge's [`Board`].
#[derive(Clone, Debug, Default)]
pub struct Stats {
    tally: Arc<Tally>,
}

impl Stats {
    /// Counts one event.
    #[inline]
    pub fn count(&mut self, e: Event) {
        bump(&self.tally.events[e as usize]);
    }

    /// Counts a request read from the network.
    #[inline]
    pub fn request(&mut self, m: Method) {
        bump(&self.tally.requests[m as usize]);
    }

    /// Counts a response read from the network.
    #[inline]
    pub fn response(&mut self, code: u16) {
        bump(&self.tally.responses[class_of(code)]);
    }

    /// How many of that event.
    pub fn get(&self, e: Event) -> u64 {
        self.tally.events[e as usize].load(Relaxed)
    }

    /// The cells, to register with an edge's [`Board`].
    pub fn tally(&self) -> &Arc<Tally> {
        &self.tally
    }
}

/// What every worker of one edge counted, summed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeTotals {
    /// Indexed by [`Event`].
    pub events: [u64; EVENTS],
    /// Requests read, indexed by `Method as usize`.
    pub requests: [u64; Method::COUNT],
    /// Responses read, by class (0 for 1xx).
    pub responses: [u64; CLASSES],
}

impl Default for EdgeTotals {
    fn default() -> Self {
        EdgeTotals {
            events: [0; EVENTS],
            requests: [0; Method::COUNT],
            responses: [0; CLASSES],
        }
    }
}

impl EdgeTotals {
    /// How many of that event.
    pub fn get(&self, e: Event) -> u64 {
        self.events[e as usize]
    }
}

/// The tallies of every worker of one edge. It outlives reloads (a reload
/// hands the same board to the edge's new snapshot), so an edge's counts
/// only ever grow, as Prometheus expects of a counter.
#[derive(Debug, Default)]
pub struct Board {
    tallies: Mutex<Vec<Arc<Tally>>>,
}

impl Board {
    /// Adds a worker's tally (once per worker, when it is made: takes a lock).
    pub fn register(&self, tally: &Arc<Tally>) {
        let mut all = self.lock();
        if !all.iter().any(|t| Arc::ptr_eq(t, tally)) {
            all.push(Arc::clone(tally));
        }
    }

    /// The sums over every registered worker: a close, not an atomic,
    /// snapshot, since workers keep counting while it is taken.
    pub fn totals(&self) -> EdgeTotals {
        let mut t = EdgeTotals::default();
        for w in self.lock().iter() {
            add(&mut t.events, &w.events);
            add(&mut t.requests, &w.requests);
            add(&mut t.responses, &w.responses);
        }
        t
    }

    /// The list; only ever pushed to, so a poisoned lock is used as is.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Tally>>> {
        self.tallies.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn add(sums: &mut [u64], cells: &[AtomicU64]) {
    for (s, c) in sums.iter_mut().zip(cells) {
        *s += c.load(Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_sums_every_worker_and_registers_once() {
        let board = Board::default();
        let mut a = Stats::default();
        let mut b = Stats::default();
        board.register(a.tally());
        board.register(b.tally());
        board.register(a.tally());
        a.count(Event::Failover);
        b.count(Event::Failover);
        a.request(Method::Invite);
        b.request(Method::Other);
        a.response(180);
        b.response(200);
        b.response(699);
        let t = board.totals();
        assert_eq!(t.get(Event::Failover), 2);
        assert_eq!(t.requests[Method::Invite as usize], 1);
        assert_eq!(t.requests[Method::Other as usize], 1);
        assert_eq!(t.responses, [1, 1, 0, 0, 0, 1]);
        assert_eq!(a.get(Event::Failover), 1);
    }

    #[test]
    fn classes_cover_every_code() {
        assert_eq!(class_of(100), 0);
        assert_eq!(class_of(199), 0);
        assert_eq!(class_of(200), 1);
        assert_eq!(class_of(699), 5);
        assert_eq!(class_of(0), 0);
        assert_eq!(class_of(999), 5);
    }

    #[test]
    fn every_event_has_its_index_and_a_distinct_name() {
        let mut names = std::collections::HashSet::new();
        for (i, e) in Event::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i);
            assert!(names.insert(e.name()), "{}", e.name());
        }
    }
}
