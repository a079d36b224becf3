//! HEPv3 packets (the Homer Encapsulation Protocol, version 3, as
//! Kamailio's siptrace, OpenSIPS and heplify send it): `HEP3`, the total
//! length, then chunks of vendor 0 (generic), each a type, a length and
//! its value, all in network byte order.
//!
//! Hand-written: the format is a dozen fixed chunks, and the one crate
//! for it (`hep`) only parses.

use edge::flow::Transport;
use edge::trace::Captured;
use std::net::{IpAddr, SocketAddr};

/// The generic chunk types sipedge writes.
mod chunk {
    pub const FAMILY: u16 = 0x0001;
    pub const PROTOCOL: u16 = 0x0002;
    pub const SRC_IPV4: u16 = 0x0003;
    pub const DST_IPV4: u16 = 0x0004;
    pub const SRC_IPV6: u16 = 0x0005;
    pub const DST_IPV6: u16 = 0x0006;
    pub const SRC_PORT: u16 = 0x0007;
    pub const DST_PORT: u16 = 0x0008;
    pub const SECONDS: u16 = 0x0009;
    pub const MICROSECONDS: u16 = 0x000a;
    pub const PROTO_TYPE: u16 = 0x000b;
    pub const CAPTURE_ID: u16 = 0x000c;
    pub const AUTH_KEY: u16 = 0x000e;
    pub const PAYLOAD: u16 = 0x000f;
    pub const CORRELATION_ID: u16 = 0x0011;
}

/// `PROTO_TYPE` of SIP.
const SIP: u8 = 1;

/// Writes `m` as one HEPv3 packet into `out` (cleared first); `false`
/// when it would not fit the format's 16-bit length (a message near
/// 64 KiB), and nothing is written.
pub fn encode(out: &mut Vec<u8>, m: &Captured, capture_id: u32, password: Option<&str>) -> bool {
    out.clear();
    out.extend_from_slice(b"HEP3\0\0");
    let (src, dst) = if m.received {
        (m.remote, m.local)
    } else {
        (m.local, m.remote)
    };
    let (src_ip, dst_ip) = same_family(src.ip(), dst.ip());
    match (src_ip, dst_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            put(out, chunk::FAMILY, &[2]);
            put(out, chunk::SRC_IPV4, &s.octets());
            put(out, chunk::DST_IPV4, &d.octets());
        }
        (s, d) => {
            put(out, chunk::FAMILY, &[10]);
            put(out, chunk::SRC_IPV6, &v6(s).octets());
            put(out, chunk::DST_IPV6, &v6(d).octets());
        }
    }
    let protocol = match m.transport {
        Transport::Udp => 17,
        Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss => 6,
    };
    put(out, chunk::PROTOCOL, &[protocol]);
    put(out, chunk::SRC_PORT, &src.port().to_be_bytes());
    put(out, chunk::DST_PORT, &dst.port().to_be_bytes());
    put(out, chunk::SECONDS, &(m.at.as_secs() as u32).to_be_bytes());
    put(
        out,
        chunk::MICROSECONDS,
        &m.at.subsec_micros().to_be_bytes(),
    );
    put(out, chunk::PROTO_TYPE, &[SIP]);
    put(out, chunk::CAPTURE_ID, &capture_id.to_be_bytes());
    if let Some(p) = password {
        put(out, chunk::AUTH_KEY, p.as_bytes());
    }
    if let Some(id) = edge::trace::call_id(&m.bytes) {
        put(out, chunk::CORRELATION_ID, id);
    }
    if out.len() + 6 + m.bytes.len() > usize::from(u16::MAX) {
        out.clear();
        return false;
    }
    put(out, chunk::PAYLOAD, &m.bytes);
    let total = out.len() as u16;
    out[4..6].copy_from_slice(&total.to_be_bytes());
    true
}

/// One generic chunk: vendor 0, `kind`, the chunk's whole length, `value`.
fn put(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((6 + value.len()) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// Both addresses in one family: an IPv4 one beside an IPv6 one is written
/// IPv4-mapped (a wildcard listener's 0.0.0.0 beside an IPv6 peer).
fn same_family(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    match (a, b) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (a, b),
        _ => (IpAddr::V6(v6(a)), IpAddr::V6(v6(b))),
    }
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The address a packet to `server` is sent from: any, of its family.
pub fn unspecified_for(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The chunks of a packet, as (type, value).
    fn chunks(p: &[u8]) -> Vec<(u16, Vec<u8>)> {
        assert_eq!(&p[..4], b"HEP3");
        assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), p.len());
        let mut out = Vec::new();
        let mut at = 6;
        while at < p.len() {
            assert_eq!(&p[at..at + 2], &[0, 0], "vendor 0");
            let kind = u16::from_be_bytes([p[at + 2], p[at + 3]]);
            let len = usize::from(u16::from_be_bytes([p[at + 4], p[at + 5]]));
            out.push((kind, p[at + 6..at + len].to_vec()));
            at += len;
        }
        assert_eq!(at, p.len());
        out
    }

    fn captured(received: bool, local: &str, remote: &str, bytes: &[u8]) -> Captured {
        Captured {
            at: Duration::new(1_700_000_000, 123_456_000),
            received,
            transport: Transport::Tcp,
            local: local.parse().expect("addr"),
            remote: remote.parse().expect("addr"),
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn a_received_message_goes_from_its_sender_to_the_edge() {
        let msg = b"BYE sip:a SIP/2.0\r\nCall-ID: c1@h\r\n\r\n";
        let m = captured(true, "10.0.0.1:5060", "192.0.2.9:40000", msg);
        let mut out = Vec::new();
        assert!(encode(&mut out, &m, 2001, Some("homer")));
        let c = chunks(&out);
        let get = |k: u16| c.iter().find(|(t, _)| *t == k).map(|(_, v)| v.clone());
        assert_eq!(get(chunk::FAMILY), Some(vec![2]));
        assert_eq!(get(chunk::PROTOCOL), Some(vec![6]));
        assert_eq!(get(chunk::SRC_IPV4), Some(vec![192, 0, 2, 9]));
        assert_eq!(get(chunk::DST_IPV4), Some(vec![10, 0, 0, 1]));
        assert_eq!(get(chunk::SRC_PORT), Some(40000u16.to_be_bytes().to_vec()));
        assert_eq!(get(chunk::DST_PORT), Some(5060u16.to_be_bytes().to_vec()));
        assert_eq!(
            get(chunk::SECONDS),
            Some(1_700_000_000u32.to_be_bytes().to_vec())
        );
        assert_eq!(
            get(chunk::MICROSECONDS),
            Some(123_456u32.to_be_bytes().to_vec())
        );
        assert_eq!(get(chunk::PROTO_TYPE), Some(vec![1]));
        assert_eq!(get(chunk::CAPTURE_ID), Some(2001u32.to_be_bytes().to_vec()));
        assert_eq!(get(chunk::AUTH_KEY), Some(b"homer".to_vec()));
        assert_eq!(get(chunk::CORRELATION_ID), Some(b"c1@h".to_vec()));
        assert_eq!(get(chunk::PAYLOAD), Some(msg.to_vec()));
    }

    #[test]
    fn a_sent_message_goes_from_the_edge_and_families_are_made_one() {
        let m = captured(false, "0.0.0.0:5060", "[2001:db8::1]:5070", b"x");
        let mut out = Vec::new();
        assert!(encode(&mut out, &m, 1, None));
        let c = chunks(&out);
        let get = |k: u16| c.iter().find(|(t, _)| *t == k).map(|(_, v)| v.clone());
        assert_eq!(get(chunk::FAMILY), Some(vec![10]));
        let mapped = std::net::Ipv4Addr::UNSPECIFIED
            .to_ipv6_mapped()
            .octets()
            .to_vec();
        assert_eq!(get(chunk::SRC_IPV6), Some(mapped));
        assert_eq!(get(chunk::DST_PORT), Some(5070u16.to_be_bytes().to_vec()));
        assert_eq!(
            get(chunk::CORRELATION_ID),
            None,
            "no Call-ID, no correlation id"
        );
        assert_eq!(get(chunk::AUTH_KEY), None);
    }

    #[test]
    fn a_message_too_long_for_the_format_is_refused() {
        let m = captured(true, "10.0.0.1:5060", "10.0.0.2:5060", &vec![b'a'; 65_500]);
        let mut out = Vec::new();
        assert!(!encode(&mut out, &m, 1, None));
        assert!(out.is_empty());
    }
}
