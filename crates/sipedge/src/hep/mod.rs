//! The HEP sender (`[hep]`): takes what the edges trace from a bounded
//! queue and sends it to the capture server as HEPv3, over UDP or TCP,
//! from a thread of its own.
//!
//! The forwarding threads only ever try to queue a copy: when the queue is
//! full (the server slow or gone, a TCP connection stuck) the copy is
//! dropped and counted, and forwarding goes on at its own pace. Nor do
//! they wake the sender: it never waits on the queue, but takes what is
//! there every couple of milliseconds and sends it in one call (UDP:
//! `sendmmsg`; TCP: one write), so a busy node pays a system call per
//! batch, not per message. A TCP connection that fails is opened again at
//! most once a second; what comes meanwhile is dropped and counted.

mod encode;

use crate::offload::Queue;
use edge::config::Transport;
use edge::trace::{Captured, Sink};
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a TCP connect or write to the capture server may take.
const TCP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long after a failure the sender tries the server again.
const RETRY: Duration = Duration::from_secs(1);

/// Packets sent in one call at most.
const BATCH: usize = 64;

/// How long the sender sleeps when it found less than a batch waiting:
/// the delay a trace may take, and what spares the forwarding threads a
/// wake-up per message.
const IDLE: Duration = Duration::from_millis(2);

/// What became of the traces (`sipedge_hep_messages_total`): `done` is
/// sent to the capture server; `failed`, not sent (no connection, a send
/// error, too long for HEP).
pub use crate::offload::Counts;

/// The edges' sink: a bounded queue to the sender thread.
#[derive(Debug)]
pub struct Sender(Queue<Captured>);

impl Sink for Sender {
    fn offer(&self, message: Captured) {
        self.0.offer(message);
    }
}

/// Starts the sender thread for `cfg`; the sink to give the edges, and
/// the counts for `/metrics`.
pub fn start(cfg: &edge::config::Hep) -> Result<(Arc<Sender>, Arc<Counts>), String> {
    let (queue, rx, counts) = Queue::new(cfg.queue);
    let mut out = Out::new(cfg)?;
    let thread_counts = Arc::clone(&counts);
    let (capture_id, password) = (cfg.capture_id, cfg.password.clone());
    std::thread::Builder::new()
        .name("sipedge-hep".into())
        .spawn(move || {
            run(
                rx,
                &mut out,
                capture_id,
                password.as_deref(),
                &thread_counts,
            )
        })
        .map_err(|e| format!("[hep]: cannot start the sender thread: {e}"))?;
    Ok((Arc::new(Sender(queue)), counts))
}

/// The sender thread: until every sink is gone.
fn run(
    rx: Receiver<Captured>,
    out: &mut Out,
    capture_id: u32,
    password: Option<&str>,
    counts: &Counts,
) {
    let mut packet = Vec::with_capacity(2048);
    loop {
        let mut taken = 0;
        let mut gone = false;
        while taken < BATCH {
            match rx.try_recv() {
                Ok(m) => {
                    taken += 1;
                    if encode::encode(&mut packet, &m, capture_id, password) {
                        out.push(&mut packet);
                    } else {
                        counts.failed.fetch_add(1, Relaxed);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
        let (sent, failed) = out.flush();
        counts.done.fetch_add(sent, Relaxed);
        counts.failed.fetch_add(failed, Relaxed);
        if gone {
            return;
        }
        if taken < BATCH {
            std::thread::sleep(IDLE);
        }
    }
}

/// The way to the capture server, with the packets waiting for it.
enum Out {
    Udp {
        socket: UdpSocket,
        server: SocketAddr,
        batch: sysio::SendBatch,
    },
    Tcp {
        tcp: Tcp,
        /// Packets back to back, for one write.
        pending: Vec<u8>,
        count: u64,
    },
}

/// A TCP connection to the capture server, opened when needed.
struct Tcp {
    server: SocketAddr,
    stream: Option<TcpStream>,
    /// Until when, after a failure, nothing is tried.
    quiet_until: Option<Instant>,
    /// Whether the present failure was logged.
    logged: bool,
}

impl Out {
    fn new(cfg: &edge::config::Hep) -> Result<Out, String> {
        Ok(match cfg.transport {
            Transport::Tcp => Out::Tcp {
                tcp: Tcp {
                    server: cfg.server,
                    stream: None,
                    quiet_until: None,
                    logged: false,
                },
                pending: Vec::with_capacity(BATCH * 1024),
                count: 0,
            },
            _ => {
                let socket = UdpSocket::bind(encode::unspecified_for(cfg.server)).map_err(|e| {
                    format!("[hep] server {}: cannot open a socket: {e}", cfg.server)
                })?;
                Out::Udp {
                    socket,
                    server: cfg.server,
                    batch: sysio::SendBatch::new(BATCH),
                }
            }
        })
    }

    /// Queues `packet` (taking its bytes, leaving it an empty buffer).
    fn push(&mut self, packet: &mut Vec<u8>) {
        match self {
            Out::Udp { server, batch, .. } => batch.push_swap(packet, *server),
            Out::Tcp { pending, count, .. } => {
                pending.extend_from_slice(packet);
                *count += 1;
            }
        }
    }

    /// Sends what is queued: (sent, failed).
    fn flush(&mut self) -> (u64, u64) {
        match self {
            Out::Udp { socket, batch, .. } => {
                if batch.is_empty() {
                    return (0, 0);
                }
                let n = batch.len() as u64;
                match batch.send(socket.as_raw_fd(), |_, _| {}) {
                    Ok((sent, failed)) => (sent as u64, failed as u64),
                    Err(_) => (0, n),
                }
            }
            Out::Tcp {
                tcp,
                pending,
                count,
            } => {
                if *count == 0 {
                    return (0, 0);
                }
                let n = std::mem::take(count);
                let ok = tcp.send(pending);
                pending.clear();
                if ok {
                    (n, 0)
                } else {
                    (0, n)
                }
            }
        }
    }
}

impl Tcp {
    fn send(&mut self, packet: &[u8]) -> bool {
        if self.stream.is_none() {
            if self.quiet_until.is_some_and(|t| Instant::now() < t) {
                return false;
            }
            match TcpStream::connect_timeout(&self.server, TCP_TIMEOUT) {
                Ok(s) => {
                    let _ = s.set_write_timeout(Some(TCP_TIMEOUT));
                    let _ = s.set_nodelay(true);
                    if self.logged {
                        tracing::info!(server = %self.server, "HEP capture server reached again");
                    }
                    self.logged = false;
                    self.stream = Some(s);
                }
                Err(e) => {
                    self.failed(&e);
                    return false;
                }
            }
        }
        let Some(s) = self.stream.as_mut() else {
            return false;
        };
        match s.write_all(packet) {
            Ok(()) => true,
            Err(e) => {
                self.stream = None;
                self.failed(&e);
                false
            }
        }
    }

    fn failed(&mut self, e: &std::io::Error) {
        self.quiet_until = Some(Instant::now() + RETRY);
        if !self.logged {
            tracing::warn!(server = %self.server, "HEP capture server unreachable ({e}); traces are dropped until it answers");
            self.logged = true;
        }
    }
}
