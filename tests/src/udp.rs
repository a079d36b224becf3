//! A raw UDP endpoint for crafted messages and the answers to them.

use std::io::ErrorKind;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use crate::netns::require_private_netns;

/// A UDP socket on 127.0.0.1 for tests that speak SIP by hand: malformed
/// packets, requests from outside the pool, OPTIONS pings, or a fake pool
/// server that answers (or does not) exactly as a test needs.
#[derive(Debug)]
pub struct Udp {
    sock: UdpSocket,
}

impl Udp {
    /// Binds 127.0.0.1 on a port the kernel picks (bound at once, so no
    /// other test can take it).
    pub fn bind() -> Udp {
        Self::bind_port(0)
    }

    /// Binds 127.0.0.1:`port` (e.g. a port from [`crate::free_port`] that a
    /// sipedge config names as a destination).
    pub fn bind_port(port: u16) -> Udp {
        require_private_netns();
        let sock = UdpSocket::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("cannot bind UDP 127.0.0.1:{port}: {e}"));
        Udp { sock }
    }

    /// Binds `ip` (another loopback address, 127.0.0.2 say, as a second
    /// source) on a port the kernel picks.
    pub fn bind_ip(ip: &str) -> Udp {
        require_private_netns();
        let sock =
            UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("cannot bind UDP {ip}:0: {e}"));
        Udp { sock }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("bound socket has an address")
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Sends one datagram.
    pub fn send_to(&self, bytes: impl AsRef<[u8]>, to: impl ToSocketAddrs) {
        let bytes = bytes.as_ref();
        let sent = self
            .sock
            .send_to(bytes, to)
            .unwrap_or_else(|e| panic!("UDP send failed: {e}"));
        assert_eq!(sent, bytes.len(), "short UDP send");
    }

    /// Receives one datagram, waiting at most `limit`; `None` if nothing
    /// came. The limit bounds the test, it is not a synchronisation.
    pub fn recv_timeout(&self, limit: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65_536];
        // Bounded: each turn either returns or waits for the time left; a
        // spurious wake-up (EINTR) costs one more turn.
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            self.sock
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    buf.truncate(n);
                    return Some((buf, from));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                // ECONNREFUSED from an earlier send to a closed port: not an
                // answer, keep waiting.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => panic!("UDP receive failed: {e}"),
            }
        }
    }

    /// A datagram already queued on the socket, without waiting. Loopback
    /// delivers a datagram as it is sent, so once a later event proves that
    /// sipedge has handled a message (the next request reached the pool),
    /// anything it sent this socket for that message is here.
    pub fn already_received(&self) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 65_536];
        self.sock.set_nonblocking(true).expect("set_nonblocking");
        let got = loop {
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => break Some((buf[..n].to_vec(), from)),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break None,
                Err(e) => panic!("UDP receive failed: {e}"),
            }
        };
        self.sock.set_nonblocking(false).expect("set_nonblocking");
        got
    }

    /// [`Udp::recv_timeout`] as text.
    pub fn recv_text_timeout(&self, limit: Duration) -> Option<(String, SocketAddr)> {
        self.recv_timeout(limit)
            .map(|(b, from)| (String::from_utf8_lossy(&b).into_owned(), from))
    }

    /// Receives until a message satisfies `accept` or `limit` runs out,
    /// discarding the others (e.g. skip a 100 Trying to get the final
    /// response).
    pub fn recv_matching(
        &self,
        limit: Duration,
        accept: impl Fn(&str) -> bool,
    ) -> Option<(String, SocketAddr)> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let (text, from) = self.recv_text_timeout(left)?;
            if accept(&text) {
                return Some((text, from));
            }
        }
    }
}
