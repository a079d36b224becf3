//! UDP: one socket per shard per listen address, all bound with
//! SO_REUSEPORT so the kernel spreads flows over the shards, read and
//! written in batches (`sysio::batch`): when the runtime says a socket is
//! readable, one recvmmsg takes every queued datagram (up to [`BATCH`]),
//! each goes through the pipeline, and one sendmmsg per socket sends what
//! they produced; again until the socket is drained.

use super::{send, Current, Served};
use edge::flow::{Flow, Transport};
use edge::proxy::{Edge, Outcome, Worker};
use socket2::{Protocol, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Instant;
use sysio::batch::Wait;
use sysio::{RecvBatch, SendBatch};

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Room per datagram: the largest UDP payload. The pages of a slot are
/// only touched (and so only resident) when a datagram that large arrives.
pub const SLOT: usize = 65_536;

/// Receive buffer asked for, so bursts are queued rather than dropped.
const RECV_BUFFER: usize = 4 << 20;
/// Send buffer asked for.
const SEND_BUFFER: usize = 4 << 20;

/// Binds a non-blocking UDP socket that shares its address with the other
/// shards' sockets. It is watched for readability only
/// (`sysio::watch`): a send to a full send buffer waits a moment and
/// tries again rather than drop (see [`flush`]).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let s = super::shared_socket(addr, Type::DGRAM, Protocol::UDP)?;
    // Larger buffers are a wish, not a requirement (limited by rmem_max).
    let _ = s.set_recv_buffer_size(RECV_BUFFER);
    let _ = s.set_send_buffer_size(SEND_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// What one batch (or one timer run) sends: one batch per local address
/// of the edge.
pub(super) struct Out {
    batches: Vec<SendBatch>,
    /// The worker's output buffer, handed over to a batch by swapping.
    handoff: Vec<u8>,
    /// Requests for pinned flows found gone, to answer 430
    /// ([`Out::answer_gone`]).
    gone: send::Gone,
}

impl Out {
    pub(super) fn new(served: &Served) -> Out {
        Out {
            batches: served
                .sockets
                .iter()
                .map(|_| SendBatch::new(BATCH))
                .collect(),
            handoff: Vec::new(),
            gone: send::Gone::default(),
        }
    }

    /// Answers 430 for the requests [`Out::queue`] found no flow for
    /// (RFC 5626 §5.3), now that the worker is free again.
    pub(super) fn answer_gone(&mut self, served: &Rc<Served>, edge: &Edge, worker: &mut Worker) {
        std::mem::take(&mut self.gone).answer(served, edge, worker);
    }

    /// Queues one datagram made outside the pipeline, from the edge's
    /// socket `local`.
    fn push(&mut self, local: usize, bytes: &[u8], to: SocketAddr) {
        if let Some(b) = self.batches.get_mut(local) {
            b.push(bytes, to);
        }
    }

    /// Queues what the pipeline said to send after `outcome`: datagrams
    /// into the batches, connection messages into their connections.
    fn queue(&mut self, served: &Rc<Served>, worker: &mut Worker, outcome: Outcome) {
        match outcome {
            Outcome::Send(to) if to.transport == Transport::Udp => {
                if let Some(b) = self.batches.get_mut(to.local) {
                    // The output buffer itself goes into the batch, the
                    // worker gets an empty one: no copy.
                    worker.swap_output(&mut self.handoff);
                    b.push_swap(&mut self.handoff, to.remote);
                }
            }
            Outcome::Send(to) => send::to_connection(served, to, worker.output(), &mut self.gone),
            Outcome::Queued => self.queue_all(served, worker),
            Outcome::Drop(_) | Outcome::Resolve => {}
        }
    }

    /// Queues the datagrams of the worker's send queue into the batches,
    /// and hands each connection message to `other`.
    pub(super) fn queue_datagrams(&mut self, worker: &Worker, mut other: impl FnMut(&[u8], Flow)) {
        for (bytes, to) in worker.sends().iter() {
            match (to.transport, self.batches.get_mut(to.local)) {
                (Transport::Udp, Some(b)) => b.push(bytes, to.remote),
                (Transport::Udp, None) => {}
                _ => other(bytes, to),
            }
        }
    }

    /// Queues everything in the worker's send queue.
    pub(super) fn queue_all(&mut self, served: &Rc<Served>, worker: &Worker) {
        for (bytes, to) in worker.sends().iter() {
            match (to.transport, self.batches.get_mut(to.local)) {
                (Transport::Udp, Some(b)) => b.push(bytes, to.remote),
                (Transport::Udp, None) => {}
                _ => send::to_connection(served, to, bytes, &mut self.gone),
            }
        }
    }
}

/// How long a send waits for a full send buffer to drain before trying
/// again.
const FULL_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// Sends every queued batch from its socket; while a socket's send
/// buffer is full, pauses and tries again (the shard's other tasks run
/// meanwhile).
pub(super) async fn flush(served: &Served, out: &mut Out) {
    for (b, s) in out.batches.iter_mut().zip(&served.sockets) {
        let Some(s) = s else {
            continue;
        };
        while !b.is_empty() {
            match b.send(s.as_raw_fd(), |to, e| tracing::debug!(?to, "send: {e}")) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(FULL_PAUSE).await;
                }
                Err(e) => {
                    tracing::debug!("send: {e}");
                    break;
                }
            }
        }
    }
}

/// Receives on the edge's socket number `li` and sends what the pipeline
/// says, for as long as the shard runs. Answers may leave from another of
/// the edge's sockets (the one of the destination's address family).
pub(super) async fn serve(served: &Rc<Served>, li: usize) {
    let name = &served.name;
    let Some(sock) = served.sockets[li].as_ref() else {
        return;
    };
    let fd = sock.as_raw_fd();
    let mut batch = RecvBatch::new(BATCH, SLOT);
    let mut out = Out::new(served);
    loop {
        let mut ready = match sock.readable().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(edge = %name, "socket no longer watched: {e}");
                return;
            }
        };
        let mut drained = false;
        while !drained {
            // Fewer datagrams than a batch holds means the socket is empty:
            // its readiness is cleared (WouldBlock) without another receive
            // to find that out. A datagram arriving after this receive
            // raises a new (edge-triggered) event, so none waits unseen.
            let mut n = 0;
            let got = ready.try_io(|_| {
                n = batch.recv(fd, Wait::No)?;
                if n < BATCH {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(())
                }
            });
            let got = got.unwrap_or_else(|_| Err(io::ErrorKind::WouldBlock.into()));
            drained = match got {
                Ok(()) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                Err(e) => {
                    tracing::debug!(edge = %name, "recv: {e}");
                    true
                }
            };
            if n == 0 {
                continue;
            }
            let now = Instant::now();
            let mut queued = false;
            {
                let mut current = served.current();
                let Current { edge, worker } = &mut *current;
                for i in 0..n {
                    let Some((datagram, src)) = batch.get(i) else {
                        continue;
                    };
                    if edge::stun::looks_like(datagram) {
                        // A phone's keepalive is answered from this
                        // socket (unless the edge's hygiene blocks its
                        // source); anything else may be our own STUN
                        // task's answer.
                        if let Some(reply) = edge::stun::answer(datagram, src) {
                            if !edge.refuses(src.ip(), now) {
                                out.push(li, &reply, src);
                            }
                        } else if let Some(inbox) = served.stun.as_ref() {
                            inbox.deliver(datagram, src);
                        }
                        continue;
                    }
                    let from = Flow::udp(li, src);
                    let outcome = worker.handle(edge, datagram, from, now);
                    if outcome == Outcome::Resolve {
                        super::resolve::park(served, worker.lookup(), datagram, from);
                        continue;
                    }
                    queued |= outcome == Outcome::Queued;
                    out.queue(served, worker, outcome);
                    out.answer_gone(served, edge, worker);
                }
            }
            flush(served, &mut out).await;
            // A socket that always has a full batch waiting would keep the
            // shard to itself: its other sockets, connections and timers
            // get their turn when the task's budget runs out.
            tokio::task::consume_budget().await;
            if queued {
                if let Some(w) = &served.wake {
                    w.poke();
                }
            }
        }
    }
}
