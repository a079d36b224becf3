//! Where what the pipeline says to send goes, from a connection's task:
//! a datagram straight out of the edge's UDP socket, a message for a
//! connection into its queue — opening a connection when none is open to
//! that address (RFC 3261 §18.2.2, RFC 5923 reuse otherwise). The UDP
//! receive path batches its datagrams instead (`udp::Out`) and hands only
//! connection messages here.

use super::tcp;
use super::{Current, Served};
use edge::flow::{Flow, Transport};
use edge::proxy::{Outcome, Worker};
use std::rc::Rc;
use std::time::Instant;

/// One message that arrived on a connection, through the pipeline.
pub(super) fn handle(served: &Rc<Served>, bytes: &[u8], from: Flow) {
    step(served, bytes, from, true);
}

/// A message that waited for a DNS answer, through the pipeline again.
/// The answer is stored by now (and kept for a while), so it does not
/// wait twice; if it would, it is dropped rather than looped.
pub(super) fn handle_answered(served: &Rc<Served>, bytes: &[u8], from: Flow) {
    step(served, bytes, from, false);
}

/// `bytes` through the pipeline; one that needs a DNS answer first waits
/// for it if `may_wait`.
fn step(served: &Rc<Served>, bytes: &[u8], from: Flow, may_wait: bool) {
    let mut current = served.current();
    let Current { edge, worker } = &mut *current;
    let outcome = worker.handle(edge, bytes, from, Instant::now());
    if may_wait && outcome == Outcome::Resolve {
        super::resolve::park(served, worker.lookup(), bytes, from);
        return;
    }
    deliver(served, worker, outcome);
}

/// A message the framer could not frame: answered if it can be, before
/// the connection closes.
pub(super) fn unframed(served: &Rc<Served>, head: &[u8], why: sip::Unframed, from: Flow) {
    let mut current = served.current();
    let Current { edge, worker } = &mut *current;
    let outcome = worker.unframed(edge, head, why, from);
    deliver(served, worker, outcome);
}

fn deliver(served: &Rc<Served>, worker: &mut Worker, outcome: Outcome) {
    match outcome {
        Outcome::Send(to) => one(served, to, worker.output()),
        Outcome::Queued => {
            for (bytes, to) in worker.sends().iter() {
                one(served, to, bytes);
            }
        }
        Outcome::Drop(_) | Outcome::Resolve => {}
    }
    if outcome == Outcome::Queued {
        if let Some(w) = &served.wake {
            w.poke();
        }
    }
}

/// Sends `bytes` on `to`.
fn one(served: &Rc<Served>, to: Flow, bytes: &[u8]) {
    match to.transport {
        Transport::Udp => {
            if let Some(Some(s)) = served.sockets.get(to.local) {
                if let Err(e) = s.get_ref().send_to(bytes, to.remote) {
                    tracing::debug!(to = %to.remote, "send: {e}");
                }
            }
        }
        _ => to_connection(served, to, bytes),
    }
}

/// Queues `bytes` on the connection for `to`, or opens one.
pub(super) fn to_connection(served: &Rc<Served>, to: Flow, bytes: &[u8]) {
    if to.transport == Transport::Udp {
        return;
    }
    tcp::send(served, to, bytes);
}
