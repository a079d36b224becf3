//! STUN (RFC 5389) as the edge uses it: one Binding request from the
//! edge's own SIP socket to a configured server, whose answer says the
//! address and port the NAT in front of the edge maps that socket to —
//! the address to write into Via and Record-Route (`[[edge]] stun`).
//!
//! The messages are the `stun-types` crate's; this module only says which
//! datagrams are STUN and what an answer to our own request holds. The
//! runtime sends and receives them on the edge's sockets, where they
//! share the port with SIP (told apart as RFC 7983 §7 does).

use std::net::SocketAddr;
use stun_types::attribute::XorMappedAddress;
use stun_types::message::{Message, MessageClass, MessageWrite, MessageWriteVec, BINDING};

/// The magic cookie that every RFC 5389 message carries in bytes 4..8.
const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// True when `datagram` is a STUN message, not SIP: STUN's first byte is
/// 0 to 3 (SIP's is a letter), and RFC 5389 messages carry the magic
/// cookie. One comparison for a SIP datagram.
pub fn looks_like(datagram: &[u8]) -> bool {
    datagram.len() >= 20 && datagram[0] < 4 && datagram[4..8] == COOKIE
}

/// A Binding request, ready to send, and its transaction id, which the
/// answer must carry ([`mapped`]).
pub fn binding_request() -> (Vec<u8>, u128) {
    let msg = Message::builder_request(BINDING, MessageWriteVec::new());
    let bytes = msg.finish();
    // The header was just written; its id is at bytes 8..20.
    let id = Message::from_bytes(&bytes).map_or(0, |m| m.transaction_id().into());
    (bytes, id)
}

/// The address an answer to our request `id` says we were seen from
/// (its XOR-MAPPED-ADDRESS); `None` for anything else: another
/// transaction, an error answer, a request, garbage.
pub fn mapped(datagram: &[u8], id: u128) -> Option<SocketAddr> {
    if !looks_like(datagram) {
        return None;
    }
    let msg = Message::from_bytes(datagram).ok()?;
    if u128::from(msg.transaction_id()) != id
        || !msg.has_method(BINDING)
        || !msg.has_class(MessageClass::Success)
    {
        return None;
    }
    let addr = msg.attribute::<XorMappedAddress>().ok()?;
    Some(addr.addr(msg.transaction_id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_types::message::MessageWriteExt;

    /// What a server answers to `request`, claiming `seen`.
    fn answer(request: &[u8], seen: SocketAddr) -> Vec<u8> {
        let req = Message::from_bytes(request).expect("our request parses");
        let mut out = Message::builder_success(&req, MessageWriteVec::new());
        out.add_attribute(&XorMappedAddress::new(seen, req.transaction_id()))
            .expect("room for the attribute");
        out.finish()
    }

    #[test]
    fn a_request_is_a_binding_request_told_apart_from_sip() {
        let (bytes, id) = binding_request();
        assert_eq!(bytes.len(), 20, "a header, no attributes");
        assert!(looks_like(&bytes));
        let m = Message::from_bytes(&bytes).expect("parses");
        assert!(m.has_method(BINDING) && m.has_class(MessageClass::Request));
        assert_eq!(u128::from(m.transaction_id()), id);
        assert_ne!(binding_request().1, id, "each request its own id");
        for sip in [
            &b"INVITE sip:a@b SIP/2.0\r\n\r\n"[..],
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert!(!looks_like(sip));
        }
    }

    #[test]
    fn the_answer_to_our_request_says_where_we_were_seen() {
        let (req, id) = binding_request();
        for seen in ["198.51.100.7:40123", "[2001:db8::7]:5060"] {
            let seen: SocketAddr = seen.parse().expect("address");
            assert_eq!(mapped(&answer(&req, seen), id), Some(seen));
        }
    }

    #[test]
    fn anything_but_our_answer_says_nothing() {
        let (req, id) = binding_request();
        let seen: SocketAddr = "198.51.100.7:40123".parse().expect("address");
        let (other, _) = binding_request();
        assert_eq!(mapped(&answer(&other, seen), id), None, "another id");
        assert_eq!(mapped(&req, id), None, "a request");
        let good = answer(&req, seen);
        for cut in 0..good.len() {
            assert_eq!(mapped(&good[..cut], id), None, "cut at {cut}");
        }
        // Bytes flipped one at a time never panic; only the cookie's,
        // type's or id's are caught for sure, so just run them.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let _ = mapped(&bad, id);
        }
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2000 {
            let mut junk = good.clone();
            for b in junk.iter_mut().skip(20) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                *b = rng as u8;
            }
            let _ = mapped(&junk, id);
        }
    }
}
