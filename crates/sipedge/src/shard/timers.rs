//! The transaction timers of a transactional edge (retransmissions,
//! failover, timeouts), run by shard 0 every [`Stateful::tick`] while the
//! edge holds a transaction, and not at all while it holds none: the task
//! then sleeps until a shard starts one and wakes it.
//!
//! [`Stateful::tick`]: edge::proxy::Stateful::tick

use super::udp::flush;
use super::{Current, Served};
use edge::proxy::Edge;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How the shards wake a timer task that sleeps for want of transactions.
#[derive(Default)]
pub(super) struct Wake {
    idle: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Wake {
    /// Wakes the timer task if it sleeps; a relaxed load otherwise.
    pub(super) fn poke(&self) {
        if self.idle.load(Ordering::Relaxed) && self.idle.swap(false, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }
}

/// Runs the edge's transaction timers from shard 0 and sends what they
/// produce from that shard's sockets.
///
/// The transactions outlive reloads (each snapshot shares the edge's
/// table), so every round reads the latest snapshot: its timers and
/// destinations are the ones in force.
pub(super) async fn run(served: &Rc<Served>) {
    let Some(wake) = served.wake.as_deref() else {
        return;
    };
    let mut untracked = Untracked::default();
    let mut out = super::udp::Out::new(served);
    loop {
        let edge = served.edge();
        let Some(st) = edge.stateful() else {
            return;
        };
        if st.is_empty() {
            wake.idle.store(true, Ordering::Release);
            // A transaction started before `idle` was set is seen here; one
            // started after it pokes.
            if st.is_empty() {
                wake.notify.notified().await;
            }
            wake.idle.store(false, Ordering::Release);
        }
        tokio::time::sleep(st.tick()).await;
        let now = Instant::now();
        untracked.check(&edge, now);
        let due = {
            let mut current = served.current();
            let Current { edge, worker } = &mut *current;
            let due = worker.poll(edge, now);
            out.queue_all(served, worker);
            out.answer_gone(served, edge, worker);
            due
        };
        if due > 0 {
            flush(served, &mut out).await;
        }
    }
}

/// Warns, at most every 10 s, while a transactional edge forwards requests
/// statelessly for want of room: failover silently off is what an operator
/// must hear about.
#[derive(Default)]
struct Untracked {
    seen: u64,
    warned_at: Option<Instant>,
}

impl Untracked {
    fn check(&mut self, edge: &Edge, now: Instant) {
        let Some(total) = edge.stateful().map(|s| s.untracked()) else {
            return;
        };
        let recent = self
            .warned_at
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10));
        if total > self.seen && !recent {
            tracing::warn!(
                edge = %edge.name,
                requests = total - self.seen,
                "transaction table full (max_transactions): requests forwarded statelessly, \
                 without failover"
            );
            self.seen = total;
            self.warned_at = Some(now);
        }
    }
}
