//! Probe connections: OPTIONS to a destination reached over TCP or TLS
//! go over a connection of the prober's own (RFC 3261 §18: the probe checks the
//! transport the calls use), opened when the first probe is due, kept
//! while it works and opened again after it fails. What arrives on it is
//! framed and handed to the prober like a datagram; a connect that fails
//! fails the probe at once.

use crate::tls::Tls;
use arc_swap::ArcSwap;
use edge::flow::Transport;
use sip::{Frame, Framer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The longest answer to a probe read from a connection.
const MAX_ANSWER: usize = 65_535;

/// What a probe connection reports to the prober task.
pub enum Event {
    /// A message arrived from this destination.
    Message(SocketAddr, Vec<u8>),
    /// The connection to this destination (the one numbered so) could
    /// not be opened or broke.
    Failed(SocketAddr, u64, String),
}

/// The open probe connections of one edge.
pub struct Streams {
    /// Each connection with its number: a late failure of an old one
    /// must not make the prober forget its replacement.
    conns: HashMap<SocketAddr, (u64, mpsc::Sender<Vec<u8>>)>,
    next: u64,
    events: mpsc::Sender<Event>,
    connect_timeout: Duration,
    /// The node's TLS material and the edge's index in it.
    tls: (Arc<ArcSwap<Tls>>, usize),
}

impl Streams {
    /// No connections yet; what they report goes to `events`.
    pub fn new(
        events: mpsc::Sender<Event>,
        connect_timeout: Duration,
        tls: (Arc<ArcSwap<Tls>>, usize),
    ) -> Streams {
        Streams {
            conns: HashMap::new(),
            next: 0,
            events,
            connect_timeout,
            tls,
        }
    }

    /// Forgets connection number `n` to `to` (it broke): the next probe
    /// opens another.
    pub fn forget(&mut self, to: SocketAddr, n: u64) {
        if self.conns.get(&to).is_some_and(|(k, _)| *k == n) {
            self.conns.remove(&to);
        }
    }

    /// Sends `probe` to `to` over its connection, opening one (over
    /// `transport`, TCP or TLS) if none is open (or the last one broke).
    pub fn send(&mut self, to: SocketAddr, transport: Transport, probe: &[u8]) {
        if let Some((_, tx)) = self.conns.get(&to) {
            if tx.try_send(probe.to_vec()).is_ok() {
                return;
            }
        }
        let (tx, rx) = mpsc::channel(8);
        let _ = tx.try_send(probe.to_vec());
        self.next += 1;
        self.conns.insert(to, (self.next, tx));
        let tls = (transport == Transport::Tls)
            .then(|| self.tls.0.load().client(self.tls.1, to, None))
            .flatten();
        tokio::spawn(run(
            to,
            self.next,
            rx,
            self.events.clone(),
            self.connect_timeout,
            tls,
        ));
    }
}

/// One probe connection: connects (and for TLS completes the handshake
/// with `tls`), then runs it.
async fn run(
    to: SocketAddr,
    n: u64,
    rx: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<Event>,
    connect_timeout: Duration,
    tls: Option<crate::tls::Client>,
) {
    let connected = async {
        let stream = tokio::net::TcpStream::connect(to)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        match tls {
            Some(client) => crate::tls::connect(client, stream)
                .await
                .map(|s| Stream::Tls(Box::new(s))),
            None => Ok(Stream::Tcp(stream)),
        }
    };
    let stream = match tokio::time::timeout(connect_timeout, connected).await {
        Ok(Ok(s)) => s,
        Ok(Err(why)) => {
            let _ = events.send(Event::Failed(to, n, why)).await;
            return;
        }
        Err(_) => {
            let _ = events
                .send(Event::Failed(to, n, "connect: timed out".to_owned()))
                .await;
            return;
        }
    };
    match stream {
        Stream::Tcp(s) => {
            let (read, write) = s.into_split();
            serve(to, n, rx, events, read, write).await
        }
        Stream::Tls(s) => {
            let (read, write) = tokio::io::split(*s);
            serve(to, n, rx, events, read, write).await
        }
    }
}

/// A probe connection, open.
enum Stream {
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

/// Writes what is queued, reads answers, until the prober drops the
/// connection or it breaks.
async fn serve(
    to: SocketAddr,
    n: u64,
    mut rx: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<Event>,
    mut read: impl tokio::io::AsyncRead + Unpin,
    mut write: impl tokio::io::AsyncWrite + Unpin,
) {
    let mut buf = Vec::with_capacity(4096);
    let mut framer = Framer::default();
    let why = loop {
        tokio::select! {
            probe = rx.recv() => match probe {
                Some(p) => {
                    // TLS buffers what is written until it is flushed.
                    if let Err(e) = async { write.write_all(&p).await?; write.flush().await }.await {
                        break format!("write: {e}");
                    }
                }
                // The prober dropped this connection.
                None => return,
            },
            got = read.read_buf(&mut buf) => match got {
                Ok(0) => break "connection closed by the destination".to_owned(),
                Err(e) => break format!("read: {e}"),
                Ok(_) => loop {
                    match framer.next(&buf, MAX_ANSWER) {
                        Frame::NeedMore => break,
                        Frame::Message(n) => {
                            let m = buf.drain(..n).collect();
                            let _ = events.send(Event::Message(to, m)).await;
                        }
                        f @ (Frame::Ping | Frame::KeepAlive) => {
                            buf.drain(..f.consumed());
                        }
                        Frame::Unframed { .. } => {
                            let _ = events
                                .send(Event::Failed(to, n, "unframed answer".to_owned()))
                                .await;
                            return;
                        }
                    }
                },
            },
        }
    };
    let _ = events.send(Event::Failed(to, n, why)).await;
}
