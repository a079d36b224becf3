//! The node-to-node link's datagrams (`[cluster]`): a connection lives on
//! one node, and a request a flow token sends to it that reaches another
//! node is relayed to the owner in a [`Relayed`] datagram; each node also
//! tells the others it is alive ([`Kind::Alive`], every
//! [`ALIVE_EVERY`]), so that a request for a connection of a node gone
//! silent is answered 430 at once instead of relayed into the void.
//!
//! Every datagram carries the time it was sent and a MAC under the
//! cluster's link key (from the secret; any key of the ring verifies, so
//! a rotation does not cut the link) that also covers the sender's and
//! the receiver's link addresses ([`Ends`]), so that a datagram copied to
//! another node, or sent from elsewhere, does not verify: one that does
//! not verify, or is more than [`FRESH`] old or early, is dropped. Nodes'
//! clocks must agree to within that (NTP).
//!
//! Layout: `sElk`, kind (1), key id (1), sent at (8, ms since the Unix
//! epoch), then for a relayed message the edge (8, a hash of its name),
//! the connection id (8), transport (1), the remote address (family 1,
//! address 4 or 16, port 2); then the MAC (16) over all of that and the
//! message, then the message.

use crate::flow::{ConnId, Transport};
use crate::keyring::LinkKey;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; 4] = b"sElk";
const MAC: usize = 16;
/// The oldest (or earliest) a datagram may be.
pub const FRESH: Duration = Duration::from_secs(10);
/// How often each node says it is alive.
pub const ALIVE_EVERY: Duration = Duration::from_secs(1);
/// A peer not heard from for this long is taken for gone.
pub const SILENT_FOR: Duration = Duration::from_secs(3);

/// What a datagram is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// "I am alive."
    Alive,
    /// A message for a connection this node holds.
    Relayed,
}

/// A message relayed to the node holding its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relayed<'a> {
    /// Which edge ([`edge_id`] of its name).
    pub edge: u64,
    /// The connection, as its owner numbers it.
    pub conn: ConnId,
    /// Its transport.
    pub transport: Transport,
    /// Its remote address (the phone's, as the owner sees it).
    pub remote: SocketAddr,
    /// The SIP message, as the relaying node forwarded it.
    pub message: &'a [u8],
}

/// The two ends of a datagram: the sending node's link address (where it
/// comes from) and the receiving node's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    /// The sender's `[cluster] listen`.
    pub from: SocketAddr,
    /// The receiver's `[cluster] listen`.
    pub to: SocketAddr,
}

impl Ends {
    /// The ends as the MAC covers them.
    fn bytes(&self) -> [u8; 36] {
        let mut b = [0u8; 36];
        for (k, a) in [self.from, self.to].into_iter().enumerate() {
            let ip = match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            b[k * 18..k * 18 + 16].copy_from_slice(&ip.octets());
            b[k * 18 + 16..k * 18 + 18].copy_from_slice(&a.port().to_be_bytes());
        }
        b
    }
}

/// How datagrams name an edge: the same on every node (edges are matched
/// by name across a cluster, as across reloads).
pub fn edge_id(name: &str) -> u64 {
    xxh3_64(name.as_bytes())
}

/// Writes an alive datagram, sent at `now_ms` between `ends`, into `out`.
pub fn alive(key: &LinkKey, now_ms: u64, ends: Ends, out: &mut Vec<u8>) {
    out.clear();
    head(out, Kind::Alive, key, now_ms);
    let mac = key.mac(&[&ends.bytes(), out]);
    out.extend_from_slice(&mac);
}

/// Writes `r`, sent at `now_ms` between `ends`, into `out`.
pub fn relayed(key: &LinkKey, now_ms: u64, ends: Ends, r: &Relayed<'_>, out: &mut Vec<u8>) {
    out.clear();
    head(out, Kind::Relayed, key, now_ms);
    out.extend_from_slice(&r.edge.to_be_bytes());
    out.extend_from_slice(&r.conn.0.to_be_bytes());
    out.push(Transport::code(r.transport));
    match r.remote.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&r.remote.port().to_be_bytes());
    let mac = key.mac(&[&ends.bytes(), out, r.message]);
    out.extend_from_slice(&mac);
    out.extend_from_slice(r.message);
}

fn head(out: &mut Vec<u8>, kind: Kind, key: &LinkKey, now_ms: u64) {
    out.extend_from_slice(MAGIC);
    out.push(match kind {
        Kind::Alive => 1,
        Kind::Relayed => 2,
    });
    out.push(key.id());
    out.extend_from_slice(&now_ms.to_be_bytes());
}

/// Reads datagram `d` received at `now_ms` between `ends`: its kind and,
/// if relayed, the message. `None` unless it verifies under one of `keys`
/// for these ends and is fresh.
pub fn read<'a>(
    keys: &[LinkKey],
    now_ms: u64,
    ends: Ends,
    d: &'a [u8],
) -> Option<(Kind, Option<Relayed<'a>>)> {
    let rest = d.strip_prefix(MAGIC)?;
    let (&kind, rest) = rest.split_first()?;
    let (&id, rest) = rest.split_first()?;
    let sent = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let fresh = FRESH.as_millis() as u64;
    if sent.abs_diff(now_ms) > fresh {
        return None;
    }
    let kind = match kind {
        1 => Kind::Alive,
        2 => Kind::Relayed,
        _ => return None,
    };
    let mut at = 4 + 2 + 8;
    let mut relayed = None;
    if kind == Kind::Relayed {
        let mut r = Reader { d, at };
        let edge = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
        let conn = ConnId(u64::from_be_bytes(r.take(8)?.try_into().ok()?));
        let transport = Transport::from_code(r.take(1)?[0])?;
        let ip = match r.take(1)?[0] {
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(r.take(4)?).ok()?)),
            6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(r.take(16)?).ok()?)),
            _ => return None,
        };
        let port = u16::from_be_bytes(r.take(2)?.try_into().ok()?);
        at = r.at;
        relayed = Some((edge, conn, transport, SocketAddr::new(ip, port)));
    }
    let (signed, rest) = d.split_at_checked(at)?;
    let (mac, message) = rest.split_at_checked(MAC)?;
    if kind == Kind::Alive && !message.is_empty() {
        return None;
    }
    let ends = ends.bytes();
    let verified = keys
        .iter()
        .filter(|k| k.id() == id)
        .any(|k| same(&k.mac(&[&ends, signed, message]), mac));
    if !verified {
        return None;
    }
    Some((
        kind,
        relayed.map(|(edge, conn, transport, remote)| Relayed {
            edge,
            conn,
            transport,
            remote,
            message,
        }),
    ))
}

/// Compares a MAC in time independent of where it differs.
fn same(a: &[u8; MAC], b: &[u8]) -> bool {
    b.len() == MAC && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct Reader<'a> {
    d: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.d.get(self.at..self.at + n)?;
        self.at += n;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::KeyRing;

    const NOW: u64 = 1_800_000_000_000;

    fn ends() -> Ends {
        Ends {
            from: "10.0.0.2:5070".parse().unwrap(),
            to: "10.0.0.1:5070".parse().unwrap(),
        }
    }

    fn sample() -> Relayed<'static> {
        Relayed {
            edge: edge_id("phones"),
            conn: ConnId(42),
            transport: Transport::Tcp,
            remote: "203.0.113.9:40123".parse().unwrap(),
            message: b"MESSAGE sip:a@b SIP/2.0\r\n\r\n",
        }
    }

    #[test]
    fn relayed_messages_and_alive_read_back_under_any_key_of_the_ring() {
        let old = KeyRing::single(b"the old cluster secret");
        let ring = KeyRing::new([&b"the new cluster secret"[..], b"the old cluster secret"]);
        let mut d = Vec::new();
        relayed(&old.link()[0], NOW, ends(), &sample(), &mut d);
        assert_eq!(
            read(ring.link(), NOW + 500, ends(), &d),
            Some((Kind::Relayed, Some(sample())))
        );
        let v6 = Relayed {
            remote: "[2001:db8::9]:5061".parse().unwrap(),
            transport: Transport::Wss,
            ..sample()
        };
        relayed(&ring.link()[0], NOW, ends(), &v6, &mut d);
        assert_eq!(
            read(ring.link(), NOW, ends(), &d),
            Some((Kind::Relayed, Some(v6)))
        );
        alive(&ring.link()[0], NOW, ends(), &mut d);
        assert_eq!(
            read(ring.link(), NOW, ends(), &d),
            Some((Kind::Alive, None))
        );
        assert_eq!(
            read(old.link(), NOW, ends(), &d),
            None,
            "the old ring lacks the new key"
        );
    }

    #[test]
    fn altered_stale_or_foreign_datagrams_are_dropped() {
        let ring = KeyRing::single(b"the cluster secret");
        let mut d = Vec::new();
        relayed(&ring.link()[0], NOW, ends(), &sample(), &mut d);
        for i in 0..d.len() {
            let mut x = d.clone();
            x[i] ^= 1;
            assert_eq!(read(ring.link(), NOW, ends(), &x), None, "byte {i}");
        }
        for n in 0..d.len() {
            assert_eq!(read(ring.link(), NOW, ends(), &d[..n]), None, "cut to {n}");
        }
        let late = NOW + FRESH.as_millis() as u64 + 1;
        assert_eq!(read(ring.link(), late, ends(), &d), None);
        assert_eq!(
            read(KeyRing::single(b"another cluster").link(), NOW, ends(), &d),
            None
        );
        // Copied to another node, or sent from another address.
        let third: SocketAddr = "10.0.0.3:5070".parse().unwrap();
        for wrong in [
            Ends {
                to: third,
                ..ends()
            },
            Ends {
                from: third,
                ..ends()
            },
        ] {
            assert_eq!(read(ring.link(), NOW, wrong, &d), None, "{wrong:?}");
        }
        alive(&ring.link()[0], NOW, ends(), &mut d);
        d.push(b'x');
        assert_eq!(
            read(ring.link(), NOW, ends(), &d),
            None,
            "alive carries nothing"
        );
    }
}
