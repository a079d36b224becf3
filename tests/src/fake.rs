//! Hand-driven pool servers: raw UDP sockets that tell which of them got a
//! request, for tests that need exact control (one request at a time,
//! chosen answers or none) rather than SIPp's call flows.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::require_private_netns;
use crate::sip;

/// A message that reached one server of a [`FakePool`].
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Index of the server in the pool.
    pub server: usize,
    /// The message text.
    pub text: String,
    /// Who sent it (sipedge's socket).
    pub from: SocketAddr,
}

/// `n` UDP servers on 127.0.0.1 that report every message they receive
/// on one channel, tagged with the server's index.
///
/// OPTIONS requests (health probes) are answered 200 by the servers
/// themselves and not reported, so the pool looks healthy to sipedge and
/// tests only see the traffic they caused.
pub struct FakePool {
    sockets: Vec<Arc<UdpSocket>>,
    arrivals: Receiver<Arrival>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl FakePool {
    /// Binds `n` servers on ports the kernel picks.
    pub fn start(n: usize) -> FakePool {
        require_private_netns();
        let (tx, arrivals) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut sockets = Vec::new();
        let mut threads = Vec::new();
        for server in 0..n {
            let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind fake server"));
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("set_read_timeout");
            let (sock2, tx, stop) = (Arc::clone(&sock), tx.clone(), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = sock2.recv_from(&mut buf) else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                    if sip::method(&text) == Some("OPTIONS") {
                        let ok = sip::response_to(&text, 200, "OK");
                        let _ = sock2.send_to(ok.as_bytes(), from);
                        continue;
                    }
                    if tx.send(Arrival { server, text, from }).is_err() {
                        break;
                    }
                }
            }));
            sockets.push(sock);
        }
        FakePool {
            sockets,
            arrivals,
            stop,
            threads,
        }
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Whether the pool has no server.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Address of server `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.sockets[i].local_addr().expect("bound")
    }

    /// Ports of all servers, in index order (for a sipedge config).
    pub fn ports(&self) -> Vec<u16> {
        (0..self.len()).map(|i| self.addr(i).port()).collect()
    }

    /// The next message any server received (OPTIONS excepted), waiting
    /// at most `limit`.
    pub fn recv(&self, limit: Duration) -> Option<Arrival> {
        self.arrivals.recv_timeout(limit).ok()
    }

    /// The next arrival that satisfies `accept`, discarding others, within
    /// `limit`.
    pub fn recv_matching(
        &self,
        limit: Duration,
        accept: impl Fn(&Arrival) -> bool,
    ) -> Option<Arrival> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let arrival = self.recv(left)?;
            if accept(&arrival) {
                return Some(arrival);
            }
        }
    }

    /// Sends `bytes` from server `i` (e.g. a response to what it received).
    pub fn send_from(&self, i: usize, bytes: impl AsRef<[u8]>, to: SocketAddr) {
        self.sockets[i]
            .send_to(bytes.as_ref(), to)
            .expect("fake server send");
    }
}

impl Drop for FakePool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
