//! SIP over TCP for sipload (`--transport tcp`, and `tls` with a TLS
//! session on each connection, see `tls.rs`): the UAC on one
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
    /// The TLS session, over TLS.
    tls: Option<rustls::Connection>,
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
    /// Over TLS: the configs.
    tls: Option<crate::tls::Tls>,
}

impl TcpNet {
    /// Connects the UAC (socket 0) to `proxy` when given, and listens on
    /// each of `uas` (the following socket indices).
    pub fn new(
        proxy: Option<SocketAddr>,
        uas: &[SocketAddr],
        tls: Option<crate::tls::Tls>,
    ) -> Result<TcpNet, String> {
        let mut net = TcpNet {
            listeners: Vec::new(),
            conns: Vec::new(),
            by_peer: HashMap::new(),
            uac: None,
            refused: 0,
            closed: 0,
            tls,
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
            let session = match &net.tls {
                Some(t) => Some(t.client()?),
                None => None,
            };
            net.add(0, proxy, stream, session)?;
            net.uac = Some(0);
        }
        Ok(net)
    }

    /// The UAC connection's local address (for its Via and Contact).
    pub fn uac_local(&self) -> Option<SocketAddr> {
        self.uac
            .and_then(|i| self.conns[i].stream.local_addr().ok())
    }

    fn add(
        &mut self,
        sock: usize,
        peer: SocketAddr,
        stream: TcpStream,
        tls: Option<rustls::Connection>,
    ) -> Result<(), String> {
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
            tls,
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
        self.conns.iter().any(|c| {
            !c.closed && (!c.wbuf.is_empty() || c.tls.as_ref().is_some_and(|t| t.wants_write()))
        })
    }

    /// Writes what each connection has buffered, as far as the kernel
    /// takes it.
    pub fn flush(&mut self) {
        for c in &mut self.conns {
            if c.closed {
                continue;
            }
            if let Some(t) = c.tls.as_mut() {
                // The plaintext into the session (no limit on what it
                // buffers), the records out as far as the kernel takes them.
                if !c.wbuf.is_empty() && t.writer().write_all(&c.wbuf).is_ok() {
                    c.wbuf.clear();
                }
                while t.wants_write() {
                    match t.write_tls(&mut c.stream) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            c.closed = true;
                            self.closed += 1;
                            break;
                        }
                    }
                }
                continue;
            }
            if c.wbuf.is_empty() {
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
                let session = self.tls.as_ref().and_then(|t| t.server());
                if self.tls.is_some() && session.is_none() {
                    self.closed += 1;
                    continue;
                }
                if self.add(sock, peer, stream, session).is_err() {
                    self.closed += 1;
                }
            }
        }
        for c in &mut self.conns {
            if c.closed {
                continue;
            }
            if let Some(t) = c.tls.as_mut() {
                if !read_tls(t, &mut c.stream, &mut c.rbuf) {
                    c.closed = true;
                }
            } else {
                read_plain(&mut c.stream, &mut c.rbuf, &mut c.closed);
            }
            if c.closed {
                self.closed += 1;
            }
            frame(c, inbox, &mut self.closed);
        }
        inbox.messages.len()
    }
}

/// Reads what a plain connection has, into `rbuf`; sets `closed` when
/// the peer closed it or it failed.
fn read_plain(stream: &mut TcpStream, rbuf: &mut Vec<u8>, closed: &mut bool) {
    loop {
        let len = rbuf.len();
        rbuf.resize(len + READ, 0);
        let n = match stream.read(&mut rbuf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                rbuf.truncate(len);
                return;
            }
            Err(_) => {
                rbuf.truncate(len);
                *closed = true;
                return;
            }
        };
        rbuf.truncate(len + n);
        if n == 0 {
            *closed = true;
            return;
        }
        if n < READ {
            return;
        }
    }
}

/// Reads what a TLS connection has: records into the session, plaintext
/// into `rbuf` after each read (the session holds only so much of it).
/// False when the peer closed it or it failed.
fn read_tls(t: &mut rustls::Connection, stream: &mut TcpStream, rbuf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match t.read_tls(stream) {
            Ok(0) => return false,
            Ok(_) => {
                if t.process_new_packets().is_err() {
                    return false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
        loop {
            match t.reader().read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
    }
}

/// Takes the complete messages off the front of `c.rbuf` into `inbox`.
fn frame(c: &mut Conn, inbox: &mut Inbox, closed: &mut u64) {
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
                if !c.closed {
                    c.closed = true;
                    *closed += 1;
                }
                break;
            }
        }
    }
    c.rbuf.drain(..at);
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
