//! Where what the pipeline says to send goes, from a connection's task:
//! a datagram straight out of the edge's UDP socket, a message for a
//! connection into its queue — opening a connection when none is open to
//! that address (RFC 3261 §18.2.2, RFC 5923 reuse otherwise). The UDP
//! receive path batches its datagrams instead (`udp::Out`) and hands only
//! connection messages here.

use super::tcp;
use super::{Current, Served};
use edge::flow::{Flow, Transport};
use edge::proxy::{Edge, Outcome, Worker};
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
    deliver(served, edge, worker, outcome);
}

/// A message the framer could not frame: answered if it can be, before
/// the connection closes.
pub(super) fn unframed(served: &Rc<Served>, head: &[u8], why: sip::Unframed, from: Flow) {
    let mut current = served.current();
    let Current { edge, worker } = &mut *current;
    let outcome = worker.unframed(edge, head, why, from);
    deliver(served, edge, worker, outcome);
}

fn deliver(served: &Rc<Served>, edge: &Edge, worker: &mut Worker, outcome: Outcome) {
    let mut gone = Gone::default();
    match outcome {
        Outcome::Send(to) => one(served, to, worker.output(), &mut gone),
        Outcome::Queued => {
            for (bytes, to) in worker.sends().iter() {
                one(served, to, bytes, &mut gone);
            }
        }
        Outcome::Drop(_) | Outcome::Resolve => {}
    }
    if outcome == Outcome::Queued {
        if let Some(w) = &served.wake {
            w.poke();
        }
    }
    gone.answer(served, edge, worker);
}

/// Sends `bytes` on `to`.
fn one(served: &Rc<Served>, to: Flow, bytes: &[u8], gone: &mut Gone) {
    match to.transport {
        Transport::Udp => {
            if let Some(Some(s)) = served.sockets.get(to.local) {
                if let Err(e) = s.get_ref().send_to(bytes, to.remote) {
                    tracing::debug!(to = %to.remote, "send: {e}");
                }
            }
        }
        _ => to_connection(served, to, bytes, gone),
    }
}

/// Queues `bytes` on the connection for `to`, or opens one; a request for
/// a pinned flow whose connection is gone is kept in `gone`, to be
/// answered 430 once the worker is free.
pub(super) fn to_connection(served: &Rc<Served>, to: Flow, bytes: &[u8], gone: &mut Gone) {
    if to.transport == Transport::Udp {
        return;
    }
    if tcp::send(served, to, bytes) == tcp::Sent::FlowGone {
        gone.add(bytes, to);
    }
}

/// Requests for flows found gone while a worker's output was being sent
/// (rare: each is copied).
#[derive(Default)]
pub(super) struct Gone(Vec<(Vec<u8>, Flow)>);

impl Gone {
    /// Keeps `request` for `flow`, to be answered.
    pub(super) fn add(&mut self, request: &[u8], flow: Flow) {
        self.0.push((request.to_vec(), flow));
    }

    /// Answers each 430 (RFC 5626 §5.3) through the worker, and sends the
    /// answers.
    pub(super) fn answer(self, served: &Rc<Served>, edge: &Edge, worker: &mut Worker) {
        for (request, flow) in self.0 {
            let outcome = worker.flow_failed(edge, &request, flow, Instant::now());
            // A 430 goes back toward the pool, never to a pinned flow:
            // this does not come back here.
            deliver(served, edge, worker, outcome);
        }
    }
}
