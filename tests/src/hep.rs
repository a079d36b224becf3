//! A HEPv3 capture server for the tests: receives what sipedge traces
//! (`[hep]`) over UDP or TCP and decodes every packet strictly, so a
//! malformed one fails the test rather than being skipped.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::netns::require_private_netns;

/// One decoded HEPv3 packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// IP protocol: 17 UDP, 6 TCP.
    pub protocol: u8,
    /// Since the Unix epoch.
    pub at: Duration,
    /// The capture agent id.
    pub capture_id: u32,
    /// The authentication key, if sent.
    pub password: Option<String>,
    /// The correlation id (the Call-ID), if sent.
    pub correlation: Option<String>,
    /// The SIP message.
    pub payload: String,
}

/// Decodes one HEPv3 packet; `Err` says what is wrong with it.
pub fn decode(p: &[u8]) -> Result<Packet, String> {
    if p.len() < 6 || &p[..4] != b"HEP3" {
        return Err("no HEP3 header".into());
    }
    if usize::from(u16::from_be_bytes([p[4], p[5]])) != p.len() {
        return Err("the total length is not the packet's".into());
    }
    let (mut family, mut protocol, mut proto_type) = (None, None, None);
    let (mut src_ip, mut dst_ip, mut ports) = (None, None, (None, None));
    let (mut secs, mut micros, mut capture_id) = (None, None, None);
    let (mut password, mut correlation, mut payload) = (None, None, None);
    let mut at = 6;
    while at < p.len() {
        let head = p.get(at..at + 6).ok_or("a truncated chunk header")?;
        let vendor = u16::from_be_bytes([head[0], head[1]]);
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
        let v = p
            .get(at + 6..at + len)
            .ok_or("a chunk longer than the packet")?;
        if vendor != 0 {
            return Err(format!("vendor {vendor}"));
        }
        let u16_of = |v: &[u8]| {
            v.try_into()
                .map(u16::from_be_bytes)
                .map_err(|_| "not 2 bytes")
        };
        let u32_of = |v: &[u8]| {
            v.try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| "not 4 bytes")
        };
        let text = |v: &[u8]| String::from_utf8(v.to_vec()).map_err(|_| "not UTF-8");
        match kind {
            1 => family = v.first().copied(),
            2 => protocol = v.first().copied(),
            3 | 4 => {
                let b: [u8; 4] = v.try_into().map_err(|_| "IPv4 not 4 bytes")?;
                let ip = Some(IpAddr::V4(Ipv4Addr::from(b)));
                if kind == 3 {
                    src_ip = ip
                } else {
                    dst_ip = ip
                }
            }
            5 | 6 => {
                let b: [u8; 16] = v.try_into().map_err(|_| "IPv6 not 16 bytes")?;
                let ip = Some(IpAddr::V6(Ipv6Addr::from(b)));
                if kind == 5 {
                    src_ip = ip
                } else {
                    dst_ip = ip
                }
            }
            7 => ports.0 = Some(u16_of(v)?),
            8 => ports.1 = Some(u16_of(v)?),
            9 => secs = Some(u32_of(v)?),
            10 => micros = Some(u32_of(v)?),
            11 => proto_type = v.first().copied(),
            12 => capture_id = Some(u32_of(v)?),
            14 => password = Some(text(v)?),
            15 => payload = Some(text(v)?),
            17 => correlation = Some(text(v)?),
            _ => {}
        }
        at += len.max(6);
    }
    let need = |what: &str| format!("no {what} chunk");
    if !matches!(family, Some(2 | 10)) {
        return Err(need("IP family"));
    }
    if proto_type != Some(1) {
        return Err("protocol type is not SIP (1)".into());
    }
    Ok(Packet {
        src: SocketAddr::new(
            src_ip.ok_or_else(|| need("source"))?,
            ports.0.ok_or_else(|| need("source port"))?,
        ),
        dst: SocketAddr::new(
            dst_ip.ok_or_else(|| need("destination"))?,
            ports.1.ok_or_else(|| need("destination port"))?,
        ),
        protocol: protocol.ok_or_else(|| need("IP protocol"))?,
        at: Duration::new(
            u64::from(secs.ok_or_else(|| need("seconds"))?),
            1000 * micros.ok_or_else(|| need("microseconds"))?,
        ),
        capture_id: capture_id.ok_or_else(|| need("capture id"))?,
        password,
        correlation,
        payload: payload.ok_or_else(|| need("payload"))?,
    })
}

/// A capture server on loopback, collecting decoded packets from a
/// thread until dropped.
pub struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Result<Packet, String>>>>,
}

impl Receiver {
    /// Listens for HEP over UDP on a free loopback port.
    pub fn udp() -> Receiver {
        require_private_netns();
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the HEP receiver");
        let addr = socket.local_addr().expect("its address");
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = socket.recv(&mut buf) {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(decode(&buf[..n]));
            }
        });
        Receiver { addr, got }
    }

    /// `udp:HOST:PORT`, as `[hep] server` takes it.
    pub fn server(&self) -> String {
        format!("udp:{}", self.addr)
    }

    /// Every packet so far; panics on one that did not decode.
    #[track_caller]
    pub fn packets(&self) -> Vec<Packet> {
        self.got
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|r| {
                r.clone()
                    .unwrap_or_else(|e| panic!("a HEP packet did not decode: {e}"))
            })
            .collect()
    }

    /// Waits until at least `n` packets came, at most `limit`.
    pub fn wait_for(&self, n: usize, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.got.lock().unwrap_or_else(|e| e.into_inner()).len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// A TCP capture server that accepts nothing and reads nothing, with a
/// small receive buffer: what is sent to it soon blocks, as to a capture
/// server that stopped reading.
pub struct Stuck {
    listener: TcpListener,
}

impl Stuck {
    /// Listens on a free loopback port.
    pub fn tcp() -> Stuck {
        require_private_netns();
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a TCP socket");
        s.set_recv_buffer_size(4096)
            .expect("a small receive buffer");
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        s.listen(4).expect("listen");
        Stuck { listener: s.into() }
    }

    /// `tcp:HOST:PORT`, as `[hep] server` takes it.
    pub fn server(&self) -> String {
        format!("tcp:{}", self.listener.local_addr().expect("its address"))
    }

    /// Bytes waiting on the first connection not accepted yet (accepts it
    /// and reads what is there without waiting): sipedge did connect.
    pub fn connected(&self) -> bool {
        self.listener.set_nonblocking(true).expect("non-blocking");
        match self.listener.accept() {
            Ok((mut c, _)) => {
                let _ = c.set_nonblocking(true);
                let mut b = [0u8; 16];
                c.read(&mut b).is_ok_and(|n| n > 0)
            }
            Err(_) => false,
        }
    }
}
