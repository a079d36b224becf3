//! What the request pipeline's stages learn about a request, handed from
//! one stage to the next so that none parses a header twice: where it
//! came from ([`Origin`]), what its headers say ([`Facts`]), where it may
//! go ([`Route`]), and all of it once it passed every check ([`Checked`]).

use super::Edge;
use crate::flow::{Flow, Transport};
use sip::{Element, Method, NameAddr, Uri, Via};
use std::net::SocketAddr;

/// Where a request's next hop (top Route after ours, or Request-URI) points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NextHop {
    /// At this edge itself.
    Here,
    /// At destination `i` of the pool.
    Destination(usize),
    /// Somewhere outside the pool (None: a name we cannot resolve).
    Outside(Option<Hop>),
}

/// What the sanity stage read from the request's headers.
pub(crate) struct Facts<'a> {
    /// The first Route URIs, parsed once while validating.
    pub route_uris: [Option<Uri<'a>>; 8],
    /// The same URIs as written (for the loop hash).
    pub route_texts: [&'a [u8]; 8],
    pub call_id: &'a [u8],
    pub cseq: u32,
    pub from: NameAddr<'a>,
    /// The From tag (empty without one), read once: the loop hash, the
    /// branch MAC and the local stage all use it.
    pub from_tag: &'a [u8],
    pub to_tag: Option<&'a [u8]>,
    pub uri: Uri<'a>,
    pub max_forwards: Option<u8>,
}

/// The request's Route set as the route stage reads it: the first entries
/// (up to 8), how many lead with this edge's own address (consumed here,
/// RFC 3261 §16.4), and where the next one — or the Request-URI — points.
pub(crate) struct RouteSet<'a> {
    pub entries: [Option<Element<'a>>; 8],
    pub len: usize,
    pub ours: usize,
    pub next: NextHop,
    /// The flow token in our own entries (see [`crate::token`]).
    pub token: Sealed,
    /// The DNS query of a next hop outside named by host name.
    pub name: Option<crate::outbound::Query<'a>>,
}

/// What our own Route entries carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sealed {
    /// No token: a route set from before tokens, or none of ours.
    None,
    /// A token that opened.
    Open(crate::token::Token),
    /// A user part in our own entry that is not a token sealed by the
    /// cluster for this edge: refused, never followed.
    Refused,
}

/// The request as it came: its top Via and where it came from, which is
/// what any answer to it needs.
#[derive(Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// The top Via element.
    pub top: Element<'a>,
    /// The top Via, parsed.
    pub via: Via<'a>,
    /// The flow it arrived on.
    pub from: Flow,
}

/// A request that passed every check and is to be forwarded, with what the
/// checks read from it, so no later stage parses a header again.
pub(crate) struct Checked<'a> {
    /// Where it came from.
    pub origin: Origin<'a>,
    pub facts: Facts<'a>,
    /// The Route set, our own entries counted.
    pub routes: RouteSet<'a>,
    /// Where the route stage says it goes.
    pub route: Route,
    /// The transaction MAC of our branch (the same for retransmissions, the
    /// CANCEL and the non-2xx ACK).
    pub mac: u64,
    /// The loop hash of our branch.
    pub loop_hash: u32,
    /// The method.
    pub method: Method,
    /// It carries a To tag.
    pub in_dialog: bool,
    /// The destination of the pool it came from, if one.
    pub from_pool: Option<usize>,
    /// It goes out of the pool toward the outside (from the pool, or from
    /// `outbound_from`), rather than into it.
    pub outward: bool,
    /// The NAT tests that fired on it (only on requests from outside).
    pub nat: crate::nat::NatTests,
    /// An in-dialog request from outside (not an ACK or CANCEL) whose next
    /// hop is foreign, dispatched into the pool: counted where it arrives,
    /// not each time a transaction checks its stored request again.
    pub foreign_hop: bool,
}

impl<'a> Checked<'a> {
    /// How many leading Route entries named this edge (and are not
    /// forwarded).
    pub fn ours(&self) -> usize {
        self.routes.ours
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &'a [u8] {
        self.facts.call_id
    }

    /// The Request-URI, parsed.
    pub fn request_uri(&self) -> &Uri<'a> {
        &self.facts.uri
    }

    /// The MAC our branch carries toward destination number `attempt`
    /// of this request (see [`crate::branch`]).
    pub fn branch_mac(&self, edge: &Edge, attempt: u8) -> u64 {
        edge.keys
            .signing()
            .branch_mac(self.mac, self.loop_hash, attempt)
    }
}

/// A next hop as an address and the transport to reach it by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// A verdict of a stage that refuses a request: a response code and reason.
pub(crate) type Refusal = (u16, &'static str);

/// What the route stage decided.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Route {
    /// Forward to a next hop (and which destination it is, if one).
    To(Hop, Option<usize>),
    /// Choose a destination by the edge's algorithm.
    Dispatch { follow_up: bool },
    /// Out through the outbound proxy to the host name of the route
    /// set's `name`: its DNS answer's targets, in turn (RFC 3263).
    Named,
    /// To a contact registered with the built-in registrar, with the
    /// contact as Request-URI: both in the worker (`target`,
    /// `target_flow`), which keeps this enum — copied with every checked
    /// request — small.
    Reach,
}
