//! The HEP sender (`[hep]`): takes what the edges trace from a bounded
//! queue and sends it to the capture server as HEPv3, over UDP or TCP,
//! from a thread of its own.
//!
//! The forwarding threads only ever try to queue a copy: when the queue is
//! full (the server slow or gone, a TCP connection stuck) the copy is
//! dropped and counted, and forwarding goes on at its own pace. A TCP
//! connection that fails is opened again at most once a second; what
//! comes meanwhile is dropped and counted.

mod encode;

use edge::config::Transport;
use edge::trace::{Captured, Sink};
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a TCP connect or write to the capture server may take.
const TCP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long after a failure the sender tries the server again.
const RETRY: Duration = Duration::from_secs(1);

/// What became of the traces (`sipedge_hep_messages_total`).
#[derive(Debug, Default)]
pub struct Counts {
    /// Sent to the capture server.
    pub sent: AtomicU64,
    /// Dropped because the queue was full.
    pub queue_full: AtomicU64,
    /// Dropped because they could not be sent (no connection, a send
    /// error, too long for HEP).
    pub failed: AtomicU64,
}

/// The edges' sink: a bounded queue to the sender thread.
#[derive(Debug)]
pub struct Sender {
    queue: SyncSender<Captured>,
    counts: Arc<Counts>,
}

impl Sink for Sender {
    fn offer(&self, message: Captured) {
        match self.queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counts.queue_full.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counts.failed.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Starts the sender thread for `cfg`; the sink to give the edges, and
/// the counts for `/metrics`.
pub fn start(cfg: &edge::config::Hep) -> Result<(Arc<Sender>, Arc<Counts>), String> {
    let (queue, rx) = sync_channel(cfg.queue);
    let counts = Arc::new(Counts::default());
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
    Ok((
        Arc::new(Sender {
            queue,
            counts: Arc::clone(&counts),
        }),
        counts,
    ))
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
    while let Ok(m) = rx.recv() {
        if encode::encode(&mut packet, &m, capture_id, password) && out.send(&packet) {
            counts.sent.fetch_add(1, Relaxed);
        } else {
            counts.failed.fetch_add(1, Relaxed);
        }
    }
}

/// The way to the capture server.
enum Out {
    Udp {
        socket: UdpSocket,
        server: SocketAddr,
    },
    Tcp(Tcp),
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
            Transport::Tcp => Out::Tcp(Tcp {
                server: cfg.server,
                stream: None,
                quiet_until: None,
                logged: false,
            }),
            _ => {
                let socket = UdpSocket::bind(encode::unspecified_for(cfg.server)).map_err(|e| {
                    format!("[hep] server {}: cannot open a socket: {e}", cfg.server)
                })?;
                Out::Udp {
                    socket,
                    server: cfg.server,
                }
            }
        })
    }

    /// Sends one packet; `false` when it could not be.
    fn send(&mut self, packet: &[u8]) -> bool {
        match self {
            Out::Udp { socket, server } => socket.send_to(packet, *server).is_ok(),
            Out::Tcp(t) => t.send(packet),
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
