//! Call records (`[records]`): what the edge did with each call attempt,
//! for "why did this call go there?" after the fact.
//!
//! A worker with records on reports a few facts per call as they pass —
//! a new INVITE (who calls whom, from where), each destination it was
//! sent to, each destination's final answer, the caller's final answer
//! (relayed, or the edge's own refusal and why), a BYE — to a [`Sink`]:
//! a bounded queue to a writer thread that joins them by Call-ID into one
//! JSON line per attempt and one per call end. So the forwarding threads
//! only pick out what a message says and queue it; the joining,
//! formatting and writing happen elsewhere, and a full queue drops
//! records (counted) rather than slowing calls.
//!
//! An edge keeps no call state (DESIGN principle 1), and neither do the
//! records: the writer joins what passes *this node*. A call whose
//! answer and BYE take different nodes of an anycast cluster gets its
//! end record without a duration on the node that saw the BYE; a
//! consumer joins the nodes' records by Call-ID.

use crate::flow::{Flow, Transport};
use crate::proxy::Edge;
use sip::{HeaderName, Message, Method};
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// One fact about a call, as a worker saw it pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When.
    pub at: SystemTime,
    /// The edge's name.
    pub edge: Arc<str>,
    /// The call's Call-ID.
    pub call_id: Box<str>,
    /// What happened.
    pub what: What,
}

/// What a worker saw happen to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A new INVITE (no To tag) arrived: a call attempt starts.
    Invite {
        /// The From URI's user part.
        from_user: Box<str>,
        /// The To URI's user part.
        to_user: Box<str>,
        /// The sender, as the edge saw it.
        source: SocketAddr,
        /// Its transport.
        transport: Transport,
        /// The `[[edge.peer]]` it came from, if one.
        peer: Option<Arc<str>>,
    },
    /// The INVITE was sent to `dest` (a destination's URI, or an address
    /// outside the pool).
    Tried {
        /// Where to.
        dest: Box<str>,
    },
    /// `dest` answered the INVITE finally.
    Answered {
        /// Who answered.
        dest: Box<str>,
        /// With what.
        code: u16,
    },
    /// The caller got its final answer: relayed from a destination, or
    /// the edge's own (`refused` says why the edge refused the call; a
    /// code of 0 is a request dropped unanswered).
    Final {
        /// The status code (0: dropped).
        code: u16,
        /// Why the edge itself refused the call, if it did.
        refused: Option<Box<str>>,
    },
    /// A BYE passed.
    Bye {
        /// Sent by the pool's side (else the caller's).
        from_pool: bool,
    },
}

/// Where records go. Implemented by the daemon's writer.
pub trait Sink: Send + Sync + Debug {
    /// Takes `record`, or drops it (and counts it) when it cannot now.
    fn offer(&self, record: Record);
}

/// Why the edge refused a call itself, as the stage that refused it
/// says: the reason's class and, for validation, the failed check.
/// Set only on the paths that refuse; read only with records on.
pub type Refusal = (&'static str, &'static str);

/// An edge's records: the sink and the edge's name.
#[derive(Debug, Clone)]
pub struct Recorder {
    sink: Arc<dyn Sink>,
    edge: Arc<str>,
}

impl Recorder {
    /// Records of edge `edge` into `sink`.
    pub fn new(sink: Arc<dyn Sink>, edge: &str) -> Recorder {
        Recorder {
            sink,
            edge: Arc::from(edge),
        }
    }

    fn offer(&self, call_id: &[u8], what: What) {
        self.sink.offer(Record {
            at: SystemTime::now(),
            edge: Arc::clone(&self.edge),
            call_id: text(call_id),
            what,
        });
    }
}

/// Whether a message read may matter to the records: an INVITE, a BYE,
/// or a final response. Everything else (ACK, provisional answers,
/// OPTIONS, REGISTER...) is passed over without a parse.
pub(crate) fn may_matter(read: &[u8]) -> bool {
    read.starts_with(b"INVITE ")
        || read.starts_with(b"BYE ")
        || (read.starts_with(b"SIP/2.0 ")
            && read.get(8).is_some_and(|&d| (b'2'..=b'6').contains(&d)))
}

/// What `m`, read on `from`, tells the records, with `sent` what the
/// worker sends after it and `refusal` why it refused, if it did.
pub(crate) fn read(
    r: &Recorder,
    edge: &Edge,
    m: &Message<'_>,
    from: &Flow,
    refusal: Option<Refusal>,
    sent: &[(&[u8], Flow)],
) {
    let Some(call_id) = m.call_id() else {
        return;
    };
    let from_pool = edge.destination_of(from).is_some();
    match (m.status(), m.method()) {
        (None, Method::Invite) if to_tag(m).is_none() => {
            let user = |h| {
                m.first_value(h)
                    .and_then(|v| sip::NameAddr::parse(v).ok())
                    .and_then(|n| n.parse_uri().ok())
                    .and_then(|u| u.user)
                    .map_or_else(|| Box::from(""), text)
            };
            r.offer(
                call_id,
                What::Invite {
                    from_user: user(HeaderName::From),
                    to_user: user(HeaderName::To),
                    source: from.remote,
                    transport: from.transport,
                    peer: edge
                        .peers()
                        .of(from, m)
                        .and_then(|i| edge.peers().name(i))
                        .cloned(),
                },
            );
            // Nothing sent on: the edge answered the call itself, and the
            // answer's reason phrase says why when no stage did.
            let forwarded = sent.iter().any(|(b, _)| b.starts_with(b"INVITE "));
            for &(bytes, to) in sent {
                let why = match (forwarded, refusal) {
                    (true, _) => None,
                    (false, Some(r)) => Some(r),
                    (false, None) => Some((own_reason(bytes), "")),
                };
                sent_one(r, edge, call_id, bytes, &to, why);
            }
            // Dropped unanswered by a stage that refuses calls (security,
            // validation). Anything else dropped (a retransmission a
            // transaction absorbed) ends nothing.
            if let (true, Some((reason, detail))) = (sent.is_empty(), refusal) {
                r.offer(
                    call_id,
                    What::Final {
                        code: 0,
                        refused: Some(refused(reason, detail)),
                    },
                );
            }
        }
        // A BYE that goes on (not one refused or absorbed).
        (None, Method::Bye) if sent.iter().any(|(b, _)| b.starts_with(b"BYE ")) => {
            r.offer(call_id, What::Bye { from_pool });
        }
        (Some(code), _) if code >= 200 && cseq_is_invite(m) => {
            let dest = peer_name(edge, from);
            r.offer(call_id, What::Answered { dest, code });
            for &(bytes, to) in sent {
                sent_one(r, edge, call_id, bytes, &to, None);
            }
        }
        _ => {}
    }
}

/// What the worker sends on its own (timers: failover, timeouts) tells
/// the records: INVITEs to the next destination, final answers.
pub(crate) fn sent_alone(
    r: &Recorder,
    edge: &Edge,
    index: &mut sip::HeaderIndex,
    sent: &mut dyn Iterator<Item = (&[u8], Flow)>,
) {
    for (bytes, to) in sent {
        if !may_matter(bytes) {
            continue;
        }
        let Ok(m) = sip::parse(bytes, index) else {
            continue;
        };
        let (Some(call_id), true) = (m.call_id(), cseq_is_invite(&m)) else {
            continue;
        };
        sent_one(r, edge, call_id, bytes, &to, None);
    }
}

/// One message sent for a call: an INVITE to a next hop, or a final
/// answer to the caller.
fn sent_one(
    r: &Recorder,
    edge: &Edge,
    call_id: &[u8],
    bytes: &[u8],
    to: &Flow,
    refusal: Option<Refusal>,
) {
    if bytes.starts_with(b"INVITE ") {
        let dest = peer_name(edge, to);
        r.offer(call_id, What::Tried { dest });
    } else if let Some(code) = status(bytes).filter(|&c| c >= 200) {
        let refused = refusal.map(|(reason, detail)| refused(reason, detail));
        r.offer(call_id, What::Final { code, refused });
    }
}

fn refused(reason: &str, detail: &str) -> Box<str> {
    match detail {
        "" => Box::from(reason),
        d => Box::from(format!("{reason}:{d}")),
    }
}

/// Why the edge answered a call itself, by the reason phrase it wrote
/// (each stage that refuses writes its own): a token for the record.
fn own_reason(bytes: &[u8]) -> &'static str {
    const OWN: &[(&str, &str)] = &[
        ("Bad Request", "bad-request"),
        ("Relaying Denied", "relay-denied"),
        ("Invalid Flow Token", "flow-token"),
        ("Loop Detected", "loop"),
        ("Too Many Hops", "too-many-hops"),
        ("Message Too Large", "too-large"),
        ("No Destination Available", "no-destination"),
        ("Temporarily Unavailable", "not-registered"),
        ("Unresolvable Destination", "unresolvable"),
        ("Request Timeout", "timeout"),
    ];
    let line = bytes.split(|&b| b == b'\r').next().unwrap_or_default();
    let said = line.get(12..).unwrap_or_default();
    OWN.iter()
        .find(|(p, _)| p.as_bytes() == said)
        .map_or("answered", |&(_, token)| token)
}

fn status(bytes: &[u8]) -> Option<u16> {
    let digits = bytes.strip_prefix(b"SIP/2.0 ")?.get(..3)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn to_tag<'a>(m: &Message<'a>) -> Option<&'a [u8]> {
    m.first_value(HeaderName::To)
        .and_then(|v| sip::NameAddr::parse(v).ok())
        .and_then(|n| n.tag())
}

fn cseq_is_invite(m: &Message<'_>) -> bool {
    m.cseq().is_ok_and(|c| c.method == b"INVITE")
}

/// The destination a flow leads to, by its URI (a destination a reload
/// removed included), or the address outside the pool.
fn peer_name(edge: &Edge, flow: &Flow) -> Box<str> {
    match edge
        .destination_of(flow)
        .and_then(|i| edge.destination_uri(i))
    {
        Some(uri) => Box::from(uri),
        None => Box::from(flow.remote.to_string()),
    }
}

/// The longest Call-ID or user part kept: what comes from outside is
/// bounded before it is queued.
const MAX_TEXT: usize = 256;

fn text(b: &[u8]) -> Box<str> {
    let b = &b[..b.len().min(MAX_TEXT)];
    Box::from(String::from_utf8_lossy(b).as_ref())
}

#[cfg(test)]
mod tests {
    use super::{may_matter, status};

    #[test]
    fn only_invites_byes_and_final_answers_are_parsed() {
        assert!(may_matter(b"INVITE sip:a@b SIP/2.0\r\n"));
        assert!(may_matter(b"BYE sip:a@b SIP/2.0\r\n"));
        assert!(may_matter(b"SIP/2.0 200 OK\r\n"));
        assert!(may_matter(b"SIP/2.0 503 Service Unavailable\r\n"));
        assert!(!may_matter(b"SIP/2.0 180 Ringing\r\n"));
        assert!(!may_matter(b"ACK sip:a@b SIP/2.0\r\n"));
        assert!(!may_matter(b"OPTIONS sip:a@b SIP/2.0\r\n"));
        assert_eq!(status(b"SIP/2.0 486 Busy Here\r\n"), Some(486));
        assert_eq!(status(b"SIP/2.0 4x6 Busy\r\n"), None);
    }
}
