//! Per-worker counters: plain integers, no atomics on the hot path; the
//! daemon sums them when asked.

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
}

/// Number of [`Event`] kinds.
pub const EVENTS: usize = Event::Blocked as usize + 1;

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
        }
    }
}

/// Counters of one worker for one edge.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Indexed by [`Event`].
    pub events: [u64; EVENTS],
    /// Requests sent to each destination (index as in the config).
    pub per_destination: Vec<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            events: [0; EVENTS],
            per_destination: Vec::new(),
        }
    }
}

impl Stats {
    /// Counts one event.
    #[inline]
    pub fn count(&mut self, e: Event) {
        self.events[e as usize] += 1;
    }

    /// How many of that event.
    pub fn get(&self, e: Event) -> u64 {
        self.events[e as usize]
    }

    /// Adds another worker's counters.
    pub fn add(&mut self, other: &Stats) {
        for (a, b) in self.events.iter_mut().zip(other.events.iter()) {
            *a += b;
        }
        if self.per_destination.len() < other.per_destination.len() {
            self.per_destination.resize(other.per_destination.len(), 0);
        }
        for (a, b) in self
            .per_destination
            .iter_mut()
            .zip(other.per_destination.iter())
        {
            *a += b;
        }
    }
}
