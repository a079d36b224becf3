//! RFC 5626 §5.3: a request a flow token sends to a connection that no
//! longer exists gets 430 Flow Failed, so that the sender gives up on the
//! flow (a registrar drops the binding; the phone, which lost its
//! connection too, reconnects and registers again).
//!
//! The runtime finds the connection gone only as it sends, after the
//! pipeline forwarded the request. The answer is therefore made the way
//! the phone would have made it: a 430 to the request as forwarded, our
//! own Via on top, handed to the response pipeline as if it came back on
//! the flow — which checks our branch, pops our Via and takes it to the
//! sender (through its transaction, on a transactional edge).

use super::{Edge, Outcome, Worker};
use crate::flow::Flow;
use crate::stats::Event;
use sip::{HeaderName, Method};
use std::time::Instant;

impl Worker {
    /// The 430 Flow Failed for `request`, a request as the pipeline
    /// forwarded it to pinned flow `to`, whose connection is gone: what
    /// to send, like any answer [`Worker::handle`] gives. An ACK (which
    /// gets no answer) or anything else is dropped.
    pub fn flow_failed(&mut self, edge: &Edge, request: &[u8], to: Flow, now: Instant) -> Outcome {
        self.stats.count(Event::FlowFailed);
        let Some(answer) = answer_430(request, &mut self.spare) else {
            return Outcome::Drop(Event::FlowFailed);
        };
        self.handle(edge, &answer, to, now)
    }
}

/// A 430 to `request` (RFC 3261 §8.2.6.2: its Vias, From, To with a tag,
/// Call-ID and CSeq), or `None` for an ACK or what is not a request.
fn answer_430(request: &[u8], index: &mut sip::HeaderIndex) -> Option<Vec<u8>> {
    let m = sip::parse(request, index).ok()?;
    if !m.is_request() || m.method() == Method::Ack {
        return None;
    }
    let mut out = Vec::with_capacity(256 + request.len() / 2);
    out.extend_from_slice(b"SIP/2.0 430 Flow Failed\r\n");
    let mut copy = |name: &[u8], value: &[u8], tag: bool| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        if tag {
            out.extend_from_slice(b";tag=sE430");
        }
        out.extend_from_slice(b"\r\n");
    };
    for h in m.all(HeaderName::Via) {
        copy(b"Via", m.value(h), false);
    }
    let to = m.first_value(HeaderName::To)?;
    let tagged = sip::NameAddr::parse(to).ok()?.tag().is_some();
    copy(b"From", m.first_value(HeaderName::From)?, false);
    copy(b"To", to, !tagged);
    copy(b"Call-ID", m.first_value(HeaderName::CallId)?, false);
    copy(b"CSeq", m.first_value(HeaderName::CSeq)?, false);
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(out)
}
