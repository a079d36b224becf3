//! Sealed flow tokens (DESIGN principle 1; RFC 5626 §5.3 in spirit): what
//! any instance needs to route a later request of a dialog, or a request
//! along a registration's Path, in either direction — sealed into the user
//! part of the Record-Route or Path entry the edge writes
//! (`<sip:TOKEN@edge;lr>`), so that no instance keeps dialog state.
//!
//! A token holds the outside party's flow (transport, its address and
//! port as the edge saw them, the edge's local address, and on a
//! connection the connection and the node that owns it), whether requests
//! from the pool follow that flow rather than their Request-URI, and the
//! pool side's address (where requests from outside go).
//!
//! **Sealing.** AES-256-GCM-SIV (RFC 8452, RustCrypto `aes-gcm-siv`) under
//! a key derived from the cluster secret, with the edge's name as
//! associated data: a token is unreadable without the secret, and one that
//! was forged, altered, truncated, sealed under a key the ring no longer
//! holds, or sealed by another edge does not open. The nonce is fixed:
//! GCM-SIV is built to stay secure when nonces repeat, at the price that
//! two tokens with the same contents are the same text — which says only
//! what the messages around them say already (the same caller, the same
//! server). That keeps twelve nonce bytes out of every Record-Route.
//!
//! **Wire form.** One key-id byte (which of the ring's keys sealed it),
//! the ciphertext, the 16-byte tag, in unpadded base64url (RFC 4648 §5,
//! all characters a URI user part takes unescaped). An IPv4 UDP caller
//! and a destination take 32 bytes: 43 characters.

use crate::flow::{ConnId, Transport};
use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The outside party's side of a dialog, as the edge saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outside {
    /// The transport it came on (or was sent to).
    pub transport: Transport,
    /// Which of the edge's local addresses it used.
    pub local: u8,
    /// Its address and port as seen by the edge (after any NAT).
    pub remote: SocketAddr,
    /// On a connection transport, the connection, if the edge holds it.
    pub conn: Option<Conn>,
}

/// A connection a token names: it lives on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn {
    /// Its number on its owner node.
    pub id: ConnId,
    /// The owner's node-to-node address, if it has one: another node
    /// relays there.
    pub owner: Option<SocketAddr>,
}

/// What a token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// The outside party's flow.
    pub outside: Outside,
    /// Requests from the pool go to `outside` whatever their Request-URI
    /// names: the party is behind NAT, or reachable only over its own
    /// connection. Otherwise they follow the Request-URI (its Contact),
    /// as RFC 3261 routes them.
    pub sticky: bool,
    /// The pool side — the server chosen for the dialog, or the one that
    /// sent it out — as transport and address.
    pub pool: Option<(Transport, SocketAddr)>,
}

/// The longest token text: key id, every field at its largest, tag.
pub const MAX_TEXT: usize = (1 + MAX_PLAIN + TAG).div_ceil(3) * 4;
const TAG: usize = 16;
/// Flags (2), local, outside address (18), connection (8 + 18), pool (18).
const MAX_PLAIN: usize = 3 + 18 + 8 + 18 + 18;
const MAX_SEALED: usize = 1 + MAX_PLAIN + TAG;

// Flag bits of the first byte (bits 0-2: the outside transport).
const OUTSIDE_V6: u8 = 1 << 3;
const STICKY: u8 = 1 << 4;
const HAS_CONN: u8 = 1 << 5;
const HAS_POOL: u8 = 1 << 6;
const POOL_V6: u8 = 1 << 7;
// Of the second byte (bits 0-2: the pool transport).
const HAS_OWNER: u8 = 1 << 3;
const OWNER_V6: u8 = 1 << 4;
const SECOND_UNUSED: u8 = !0b1_1111;

/// One sealing key of the ring.
#[derive(Clone)]
pub struct TokenKey {
    id: u8,
    cipher: Aes256GcmSiv,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({})", self.id)
    }
}

impl TokenKey {
    /// Derives the key (and its id) from a cluster secret: every node with
    /// the same secret derives the same.
    pub fn from_secret(secret: &[u8]) -> TokenKey {
        let key = blake3::derive_key("sipedge 2026 flow token v1 key", secret);
        let id = blake3::derive_key("sipedge 2026 flow token v1 key id", secret)[0];
        TokenKey {
            id,
            cipher: Aes256GcmSiv::new(&key.into()),
        }
    }

    /// Appends `token`, sealed for `edge`, to `w` as text. False (and
    /// nothing written) only if the cipher refused, which it does for
    /// inputs of gigabytes, never for a token.
    pub fn seal(&self, token: &Token, edge: &[u8], w: &mut Vec<u8>) -> bool {
        let mut sealed = [0u8; MAX_SEALED];
        sealed[0] = self.id;
        let len = encode(token, &mut sealed[1..]);
        let body = &mut sealed[1..1 + len];
        // Only a plaintext or associated data over 2^36 bytes fails.
        let Ok(tag) = self
            .cipher
            .encrypt_inout_detached(&NONCE, edge, body.into())
        else {
            return false;
        };
        sealed[1 + len..1 + len + TAG].copy_from_slice(&tag);
        let mut text = [0u8; MAX_TEXT];
        match URL_SAFE_NO_PAD.encode_slice(&sealed[..1 + len + TAG], &mut text) {
            Ok(n) => {
                w.extend_from_slice(&text[..n]);
                true
            }
            Err(_) => false,
        }
    }

    fn open(&self, sealed: &[u8], edge: &[u8]) -> Option<Token> {
        let (body, tag) = sealed.split_at(sealed.len() - TAG);
        let mut plain = [0u8; MAX_PLAIN];
        let plain = &mut plain[..body.len()];
        plain.copy_from_slice(body);
        let tag = Tag::try_from(tag).ok()?;
        self.cipher
            .decrypt_inout_detached(&NONCE, edge, (&mut *plain).into(), &tag)
            .ok()?;
        decode(plain)
    }
}

impl TokenKey {
    /// Appends `plain`, sealed for `edge` as a `label` blob, to `w` as
    /// text (the wire form of a token, of any length): what topology
    /// hiding puts in place of a pool server's Contact, Vias and
    /// Record-Route entries. The label keeps a blob of one kind from
    /// opening as another. False (nothing written) when its text would be
    /// longer than [`open_blob`] reads, or if the cipher refused.
    pub fn seal_blob(&self, label: &[u8], edge: &[u8], plain: &[u8], w: &mut Vec<u8>) -> bool {
        if (1 + plain.len() + TAG).div_ceil(3) * 4 > MAX_BLOB_TEXT {
            return false;
        }
        let mut sealed = Vec::with_capacity(1 + plain.len() + TAG);
        sealed.push(self.id);
        sealed.extend_from_slice(plain);
        let ad = [label, b"\0", edge].concat();
        let Ok(tag) = self
            .cipher
            .encrypt_inout_detached(&NONCE, &ad, (&mut sealed[1..]).into())
        else {
            return false;
        };
        sealed.extend_from_slice(&tag);
        let at = w.len();
        w.resize(at + sealed.len().div_ceil(3) * 4, 0);
        match URL_SAFE_NO_PAD.encode_slice(&sealed, &mut w[at..]) {
            Ok(n) => {
                w.truncate(at + n);
                true
            }
            Err(_) => {
                w.truncate(at);
                false
            }
        }
    }
}

/// The longest blob text [`open_blob`] reads: room for a handful of Via
/// headers or route entries, far below what a datagram holds.
pub const MAX_BLOB_TEXT: usize = 4096;

/// Opens blob `text` sealed for `edge` as a `label` blob under any key of
/// `keys`; `None` for anything else.
pub fn open_blob(keys: &[TokenKey], label: &[u8], text: &[u8], edge: &[u8]) -> Option<Vec<u8>> {
    if text.len() > MAX_BLOB_TEXT {
        return None;
    }
    let sealed = URL_SAFE_NO_PAD.decode(text).ok()?;
    if sealed.len() < 1 + TAG {
        return None;
    }
    let (id, rest) = (sealed[0], &sealed[1..]);
    let (body, tag) = rest.split_at(rest.len() - TAG);
    let tag = Tag::try_from(tag).ok()?;
    let ad = [label, b"\0", edge].concat();
    keys.iter().filter(|k| k.id == id).find_map(|k| {
        let mut plain = body.to_vec();
        k.cipher
            .decrypt_inout_detached(&NONCE, &ad, (&mut plain[..]).into(), &tag)
            .ok()?;
        Some(plain)
    })
}

/// The fixed nonce (see the module's doc).
const NONCE: Nonce = aes_gcm_siv::aead::array::Array([0u8; 12]);

/// Opens token `text` sealed for `edge` under any key of `keys` (the
/// signing key first). `None` for anything that is not a whole token
/// sealed by one of them for this edge.
pub fn open(keys: &[TokenKey], text: &[u8], edge: &[u8]) -> Option<Token> {
    if text.len() > MAX_TEXT {
        return None;
    }
    let mut sealed = [0u8; MAX_TEXT / 4 * 3];
    let n = URL_SAFE_NO_PAD.decode_slice(text, &mut sealed).ok()?;
    // The key id, the shortest plaintext (flags, local, an IPv4 flow), tag.
    if !(1 + 3 + 6 + TAG..=MAX_SEALED).contains(&n) {
        return None;
    }
    let (id, rest) = (sealed[0], &sealed[1..n]);
    keys.iter()
        .filter(|k| k.id == id)
        .find_map(|k| k.open(rest, edge))
}

/// Writes `token`'s plaintext into `out`; returns its length.
fn encode(token: &Token, out: &mut [u8]) -> usize {
    let o = &token.outside;
    let mut first = Transport::code(o.transport);
    let mut second = 0;
    if o.remote.is_ipv6() {
        first |= OUTSIDE_V6;
    }
    if token.sticky {
        first |= STICKY;
    }
    if let Some(c) = &o.conn {
        first |= HAS_CONN;
        if let Some(owner) = c.owner {
            second |= HAS_OWNER;
            if owner.is_ipv6() {
                second |= OWNER_V6;
            }
        }
    }
    if let Some((t, a)) = token.pool {
        first |= HAS_POOL;
        if a.is_ipv6() {
            first |= POOL_V6;
        }
        second |= Transport::code(t);
    }
    out[0] = first;
    out[1] = second;
    out[2] = o.local;
    let mut at = 3;
    at += put_addr(&mut out[at..], o.remote);
    if let Some(c) = &o.conn {
        out[at..at + 8].copy_from_slice(&c.id.0.to_be_bytes());
        at += 8;
        if let Some(owner) = c.owner {
            at += put_addr(&mut out[at..], owner);
        }
    }
    if let Some((_, a)) = token.pool {
        at += put_addr(&mut out[at..], a);
    }
    at
}

fn put_addr(out: &mut [u8], a: SocketAddr) -> usize {
    let n = match a.ip() {
        IpAddr::V4(ip) => {
            out[..4].copy_from_slice(&ip.octets());
            4
        }
        IpAddr::V6(ip) => {
            out[..16].copy_from_slice(&ip.octets());
            16
        }
    };
    out[n..n + 2].copy_from_slice(&a.port().to_be_bytes());
    n + 2
}

/// Reads a plaintext back; strict, so that one plaintext has one meaning.
fn decode(p: &[u8]) -> Option<Token> {
    let (&first, &second, &local) = (p.first()?, p.get(1)?, p.get(2)?);
    if second & SECOND_UNUSED != 0 {
        return None;
    }
    let mut r = Reader { p, at: 3 };
    let remote = r.addr(first & OUTSIDE_V6 != 0)?;
    let conn = if first & HAS_CONN != 0 {
        let id = ConnId(u64::from_be_bytes(r.take(8)?.try_into().ok()?));
        let owner = if second & HAS_OWNER != 0 {
            Some(r.addr(second & OWNER_V6 != 0)?)
        } else if second & OWNER_V6 != 0 {
            return None;
        } else {
            None
        };
        Some(Conn { id, owner })
    } else if second & (HAS_OWNER | OWNER_V6) != 0 {
        return None;
    } else {
        None
    };
    let pool = if first & HAS_POOL != 0 {
        let t = Transport::from_code(second & 0b111)?;
        Some((t, r.addr(first & POOL_V6 != 0)?))
    } else if first & POOL_V6 != 0 || second & 0b111 != 0 {
        return None;
    } else {
        None
    };
    if r.at != p.len() {
        return None;
    }
    Some(Token {
        outside: Outside {
            transport: Transport::from_code(first & 0b111)?,
            local,
            remote,
            conn,
        },
        sticky: first & STICKY != 0,
        pool,
    })
}

struct Reader<'a> {
    p: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.p.get(self.at..self.at + n)?;
        self.at += n;
        Some(s)
    }

    fn addr(&mut self, v6: bool) -> Option<SocketAddr> {
        let ip = if v6 {
            let o: [u8; 16] = self.take(16)?.try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            let o: [u8; 4] = self.take(4)?.try_into().ok()?;
            IpAddr::V4(Ipv4Addr::from(o))
        };
        let port = u16::from_be_bytes(self.take(2)?.try_into().ok()?);
        Some(SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests;
