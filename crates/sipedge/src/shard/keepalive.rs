//! The built-in registrar's keepalives (`[edge.registrar]
//! keepalive_interval`), run by shard 0 once a second for each edge: the
//! core says which contacts are due and what to send
//! ([`edge::proxy::Worker::keepalives`]); this sends it — a datagram from
//! the edge's socket, or into the phone's connection, never a new one.
//! A keepalive whose connection is gone is not answered with a 430 (it
//! is the edge's own request): the binding's unanswered count removes it.

use super::{tcp, Current, Served};
use edge::flow::Transport;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often the bindings are swept: keepalives leave within a second of
/// their time.
const SWEEP: Duration = Duration::from_secs(1);

/// Sweeps the edge's bindings every [`SWEEP`], while the edge runs (an
/// edge without the registrar, or one a reload takes it from, costs one
/// check a second).
pub(super) async fn run(served: Rc<Served>) {
    let mut tick = tokio::time::interval(SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Sent while the worker is borrowed: nothing here awaits, and the
        // connection queues do not touch the worker.
        let mut current = served.current();
        let Current { edge, worker } = &mut *current;
        if edge.registrar().is_none() || worker.keepalives(edge, Instant::now()) == 0 {
            continue;
        }
        for (bytes, to) in worker.sends().iter() {
            match to.transport {
                Transport::Udp => {
                    if let Some(Some(s)) = served.sockets.get(to.local) {
                        if let Err(e) = s.get_ref().send_to(bytes, to.remote) {
                            tracing::debug!(to = %to.remote, "keepalive: {e}");
                        }
                    }
                }
                _ => {
                    let _ = tcp::send(&served, to, bytes);
                }
            }
        }
    }
}
