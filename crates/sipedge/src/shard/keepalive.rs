//! The built-in registrar's keepalives (`[edge.registrar]
//! keepalive_interval`), run by shard 0 once a second for each edge: the
//! core says which contacts are due and what to send
//! ([`edge::proxy::Worker::keepalives`]); this sends it — datagrams in
//! batches from the edge's sockets, pausing while a send buffer is full
//! (the shard's other tasks run meanwhile), and into the phones'
//! connections, never new ones. A keepalive whose connection is gone is
//! not answered with a 430 (it is the edge's own request): the binding's
//! unanswered count removes it.

use super::udp::{flush, Out};
use super::{tcp, Current, Served};
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
    let mut out = Out::new(&served);
    loop {
        tick.tick().await;
        {
            let mut current = served.current();
            let Current { edge, worker } = &mut *current;
            if edge.registrar().is_none() || worker.keepalives(edge, Instant::now()) == 0 {
                continue;
            }
            // The connection queues do not touch the worker.
            out.queue_datagrams(worker, |bytes, to| {
                let _ = tcp::send(&served, to, bytes);
            });
        }
        flush(&served, &mut out).await;
    }
}
