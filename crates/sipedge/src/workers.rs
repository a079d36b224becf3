//! Worker threads: for every worker and every listen address, one thread
//! that owns one SO_REUSEPORT socket and one [`edge::proxy::Worker`], and
//! loops: receive a batch (blocking until at least one datagram is
//! queued), run each datagram through the pipeline, send the batch of
//! answers. Two system calls per batch; nothing shared on the forwarding
//! path but the immutable edge snapshot and its health view, which the
//! workers only read (relaxed atomic loads) and the prober tasks on the main
//! thread write: no locks. A transactional edge also shares its transaction
//! table (sharded locks, held for one message) and has one timer thread
//! that wakes every few milliseconds to run the transaction timers.

use crate::udp::{BATCH, SLOT};
use edge::config::Config;
use edge::flow::Flow;
use edge::proxy::{Edge, Outcome};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;
use sysio::batch::Wait;
use sysio::{RecvBatch, SendBatch};

/// What was started.
pub struct Running {
    /// Worker count.
    pub workers: usize,
    /// Sockets bound (and threads started), over all workers.
    pub sockets: usize,
    /// The running edges, in config order: their health views are where
    /// the prober tasks publish what the workers may use.
    pub edges: Arc<Vec<Edge>>,
}

/// Binds every socket (so a bind failure is reported before anything
/// runs), then starts one thread per socket.
pub fn start(cfg: &Config, keys: &edge::keyring::KeyRing) -> Result<Running, String> {
    let workers = cfg
        .node
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let edges: Arc<Vec<Edge>> = Arc::new(
        cfg.edges
            .iter()
            .map(|e| Edge::new(e, &cfg.node, keys))
            .collect(),
    );
    // bound[worker][edge] = that worker's sockets for the edge's listens.
    let mut bound: Vec<Vec<Arc<[UdpSocket]>>> = Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut per_edge = Vec::with_capacity(edges.len());
        for conf in &cfg.edges {
            let socks = conf
                .listen
                .iter()
                .map(|l| {
                    crate::udp::bind(l.addr)
                        .map_err(|err| format!("line {}: listen {}: {err}", l.line, l.addr))
                })
                .collect::<Result<Vec<_>, _>>()?;
            per_edge.push(Arc::from(socks));
        }
        bound.push(per_edge);
    }
    let mut sockets = 0;
    for (w, per_edge) in bound.into_iter().enumerate() {
        for (ei, socks) in per_edge.into_iter().enumerate() {
            if w == 0 && edges[ei].stateful().is_some() {
                let (edges, socks) = (Arc::clone(&edges), Arc::clone(&socks));
                std::thread::Builder::new()
                    .name(format!("sipedge-timers-e{ei}"))
                    .spawn(move || run_timers(&edges[ei], &socks))
                    .map_err(|e| format!("cannot start timer thread: {e}"))?;
            }
            for li in 0..socks.len() {
                let (edges, socks) = (Arc::clone(&edges), Arc::clone(&socks));
                std::thread::Builder::new()
                    .name(format!("sipedge-w{w}-e{ei}-{li}"))
                    .spawn(move || serve(&edges[ei], &socks, li))
                    .map_err(|e| format!("cannot start worker thread: {e}"))?;
                sockets += 1;
            }
        }
    }
    Ok(Running {
        workers,
        sockets,
        edges,
    })
}

/// Receives on `socks[li]` and sends what the pipeline says, forever.
/// Answers may leave from another of the edge's sockets (the one of the
/// destination's address family).
fn serve(edge: &Edge, socks: &[UdpSocket], li: usize) {
    let mut worker = edge.worker();
    let mut batch = RecvBatch::new(BATCH, SLOT);
    let mut handoff = Vec::new();
    let mut out: Vec<SendBatch> = socks.iter().map(|_| SendBatch::new(BATCH)).collect();
    let fd = socks[li].as_raw_fd();
    loop {
        let n = match batch.recv(fd, Wait::ForOne) {
            Ok(n) => n,
            Err(e) => {
                // ICMP errors from earlier sends surface here; they concern
                // that send, not this socket.
                tracing::debug!(edge = %edge.name, "recv: {e}");
                continue;
            }
        };
        let now = Instant::now();
        for i in 0..n {
            let Some((datagram, src)) = batch.get(i) else {
                continue;
            };
            match worker.handle(edge, datagram, Flow::udp(li, src), now) {
                Outcome::Send(to) => {
                    if let Some(b) = out.get_mut(to.local) {
                        // The output buffer itself goes into the batch,
                        // the worker gets an empty one: no copy.
                        worker.swap_output(&mut handoff);
                        b.push_swap(&mut handoff, to.remote);
                    }
                }
                Outcome::Queued => {
                    for (bytes, to) in worker.sends().iter() {
                        if let Some(b) = out.get_mut(to.local) {
                            b.push(bytes, to.remote);
                        }
                    }
                }
                Outcome::Drop(_) => {}
            }
        }
        for (b, s) in out.iter_mut().zip(socks) {
            if !b.is_empty() {
                b.send(s.as_raw_fd(), |to, e| tracing::debug!(?to, "send: {e}"));
            }
        }
    }
}

/// The timer thread of a transactional edge: every [`tick`] it runs the
/// transaction timers that are due (retransmissions, failover, timeouts)
/// and sends what they produced from the edge's sockets.
///
/// [`tick`]: edge::proxy::Stateful::tick
fn run_timers(edge: &Edge, socks: &[UdpSocket]) {
    let Some(tick) = edge.stateful().map(|s| s.tick()) else {
        return;
    };
    let mut worker = edge.worker();
    let mut out: Vec<SendBatch> = socks.iter().map(|_| SendBatch::new(BATCH)).collect();
    let mut untracked = Untracked::default();
    loop {
        std::thread::sleep(tick);
        let now = Instant::now();
        untracked.check(edge, now);
        if worker.poll(edge, now) == 0 {
            continue;
        }
        for (bytes, to) in worker.sends().iter() {
            if let Some(b) = out.get_mut(to.local) {
                b.push(bytes, to.remote);
            }
        }
        for (b, s) in out.iter_mut().zip(socks) {
            if !b.is_empty() {
                b.send(s.as_raw_fd(), |to, e| tracing::debug!(?to, "send: {e}"));
            }
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
            .is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(10));
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
