//! SIP over TCP for sipload (`--transport tcp`): the UAC on one
//! connection to the proxy, each UAS endpoint a listener taking the
//! proxy's connections. Messages are framed with `sip::Framer`; what the
//! state machines send is appended to its connection's buffer and written
//! once per turn of the main loop, like the UDP send batches.

use crate::Outbox;
use sip::{Frame, Framer};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

/// The most a message may be: what the framer refuses beyond it.
const MAX_MESSAGE: usize = 65_535;
/// Bytes read from a connection per read call.
const READ: usize = 64 * 1024;

/// One connection.
struct Conn {
    /// The sipload socket index it belongs to (the UAC's, or a UAS
    /// endpoint's).
    sock: usize,
    peer: SocketAddr,
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    framer: Framer,
    closed: bool,
}

/// Messages received in one turn, copied out of the connections' buffers
/// so the state machines can send while they handle them.
#[derive(Default)]
pub struct Inbox {
    bytes: Vec<u8>,
    /// (socket index, peer, range in `bytes`).
    messages: Vec<(usize, SocketAddr, std::ops::Range<usize>)>,
}

impl Inbox {
    /// The messages, in arrival order: (socket index, peer, bytes).
    pub fn iter(&self) -> impl Iterator<Item = (usize, SocketAddr, &[u8])> {
        self.messages
            .iter()
            .map(|(s, p, r)| (*s, *p, &self.bytes[r.clone()]))
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.messages.clear();
    }
}

/// The UAC's connection and the UAS endpoints' listeners and connections.
pub struct TcpNet {
    /// Per socket index: the UAS endpoint's listener (`None` for the UAC).
    listeners: Vec<Option<TcpListener>>,
    conns: Vec<Conn>,
    by_peer: HashMap<(usize, SocketAddr), usize>,
    /// The UAC's connection (index into `conns`).
    uac: Option<usize>,
    /// Messages that had no connection to go on (its peer closed it).
    pub refused: u64,
    /// Connections closed by their peer or on an error.
    pub closed: u64,
}

impl TcpNet {
    /// Connects the UAC (socket 0) to `proxy` when given, and listens on
    /// each of `uas` (the following socket indices).
    pub fn new(proxy: Option<SocketAddr>, uas: &[SocketAddr]) -> Result<TcpNet, String> {
        let mut net = TcpNet {
            listeners: Vec::new(),
            conns: Vec::new(),
            by_peer: HashMap::new(),
            uac: None,
            refused: 0,
            closed: 0,
        };
        if proxy.is_some() {
            net.listeners.push(None);
        }
        // Listening first: the UAC may call one of its own endpoints.
        for a in uas {
            let l = TcpListener::bind(a).map_err(|e| format!("cannot listen on {a}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            net.listeners.push(Some(l));
        }
        if let Some(proxy) = proxy {
            let stream =
                TcpStream::connect(proxy).map_err(|e| format!("cannot connect to {proxy}: {e}"))?;
            net.add(0, proxy, stream)?;
            net.uac = Some(0);
        }
        Ok(net)
    }

    /// The UAC connection's local address (for its Via and Contact).
    pub fn uac_local(&self) -> Option<SocketAddr> {
        self.uac
            .and_then(|i| self.conns[i].stream.local_addr().ok())
    }

    fn add(&mut self, sock: usize, peer: SocketAddr, stream: TcpStream) -> Result<(), String> {
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        self.by_peer.insert((sock, peer), self.conns.len());
        self.conns.push(Conn {
            sock,
            peer,
            stream,
            rbuf: Vec::with_capacity(READ),
            wbuf: Vec::new(),
            framer: Framer::default(),
            closed: false,
        });
        Ok(())
    }

    /// Every descriptor to wait on.
    pub fn fds(&self) -> Vec<RawFd> {
        let listeners = self.listeners.iter().flatten().map(|l| l.as_raw_fd());
        let conns = self
            .conns
            .iter()
            .filter(|c| !c.closed)
            .map(|c| c.stream.as_raw_fd());
        listeners.chain(conns).collect()
    }

    /// Whether a write is waiting for room in a socket buffer.
    pub fn pending(&self) -> bool {
        self.conns.iter().any(|c| !c.closed && !c.wbuf.is_empty())
    }

    /// Writes what each connection has buffered, as far as the kernel
    /// takes it.
    pub fn flush(&mut self) {
        for c in &mut self.conns {
            if c.closed || c.wbuf.is_empty() {
                continue;
            }
            let mut at = 0;
            while at < c.wbuf.len() {
                match c.stream.write(&c.wbuf[at..]) {
                    Ok(0) => break,
                    Ok(n) => at += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        c.closed = true;
                        self.closed += 1;
                        break;
                    }
                }
            }
            c.wbuf.drain(..at);
        }
    }

    /// Accepts new connections and reads every connection, framing what
    /// arrived into `inbox` (emptied first); returns the messages taken.
    pub fn recv(&mut self, inbox: &mut Inbox) -> usize {
        inbox.clear();
        for sock in 0..self.listeners.len() {
            while let Some(Some(l)) = self.listeners.get(sock) {
                let Ok((stream, peer)) = l.accept() else {
                    break;
                };
                if self.add(sock, peer, stream).is_err() {
                    self.closed += 1;
                }
            }
        }
        for c in &mut self.conns {
            if c.closed {
                continue;
            }
            loop {
                let len = c.rbuf.len();
                c.rbuf.resize(len + READ, 0);
                let got = c.stream.read(&mut c.rbuf[len..]);
                let n = match got {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        c.rbuf.truncate(len);
                        break;
                    }
                    Err(_) => {
                        c.rbuf.truncate(len);
                        c.closed = true;
                        break;
                    }
                };
                c.rbuf.truncate(len + n);
                if n == 0 {
                    c.closed = true;
                    break;
                }
                if n < READ {
                    break;
                }
            }
            if c.closed {
                self.closed += 1;
            }
            let mut at = 0;
            loop {
                match c.framer.next(&c.rbuf[at..], MAX_MESSAGE) {
                    Frame::Message(n) => {
                        let start = inbox.bytes.len();
                        inbox.bytes.extend_from_slice(&c.rbuf[at..at + n]);
                        inbox.messages.push((c.sock, c.peer, start..start + n));
                        at += n;
                    }
                    Frame::Ping => at += 4,
                    Frame::KeepAlive => at += 2,
                    Frame::NeedMore => break,
                    Frame::Unframed { .. } => {
                        // Nothing after it can be framed.
                        at = c.rbuf.len();
                        c.closed = true;
                        self.closed += 1;
                        break;
                    }
                }
            }
            c.rbuf.drain(..at);
        }
        inbox.messages.len()
    }
}

impl Outbox for TcpNet {
    fn send(&mut self, sock: usize, to: SocketAddr, build: impl FnOnce(&mut Vec<u8>)) {
        // The UAC sends everything on its one connection (ACK and BYE
        // name the proxy in their Route); a UAS answers on the connection
        // the request came in on.
        let conn = match self.uac {
            Some(i) if self.conns[i].sock == sock => Some(i),
            _ => self.by_peer.get(&(sock, to)).copied(),
        };
        match conn.map(|i| &mut self.conns[i]) {
            Some(c) if !c.closed => build(&mut c.wbuf),
            _ => self.refused += 1,
        }
    }
}
