//! STUN (RFC 5389) as the edge uses it, both ways on its SIP UDP ports:
//!
//! - as a client: one Binding request from the edge's own SIP socket to a
//!   configured server, whose answer says the address and port the NAT in
//!   front of the edge maps that socket to — the address to write into Via
//!   and Record-Route (`[[edge]] stun`);
//! - as a server: a phone behind NAT that keeps its binding open with STUN
//!   (RFC 5626 §4.4.1, §8.4: SIP Outbound's keepalives on the SIP port)
//!   gets the Binding answer saying where the edge sees it ([`answer`]).
//!
//! The messages are the `stun-types` crate's; this module only says which
//! datagrams are STUN and what an answer to our own request holds. The
//! runtime sends and receives them on the edge's sockets, where they
//! share the port with SIP (told apart as RFC 7983 §7 does).

use std::net::SocketAddr;
use stun_types::attribute::{Attribute, AttributeStaticType, Fingerprint, XorMappedAddress};
use stun_types::message::{
    Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec, BINDING,
};

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

/// The answer to a Binding request from `from` (a phone's keepalive):
/// a success carrying `from` as XOR-MAPPED-ADDRESS, and a FINGERPRINT
/// when the request had one (RFC 5389 §7.3.1). `None` for anything else:
/// answers, indications, other methods, garbage, and requests carrying
/// attributes that must be understood (a keepalive has none; an ICE or
/// authenticated request is not for a SIP port) — those are dropped, not
/// answered 420. Only called for datagrams that [`looks_like`] STUN.
pub fn answer(datagram: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let msg = Message::from_bytes(datagram).ok()?;
    if !msg.has_method(BINDING)
        || !msg.has_class(MessageClass::Request)
        || msg
            .iter_attributes()
            .any(|(_, a)| a.get_type().comprehension_required())
    {
        return None;
    }
    let mut out = Message::builder_success(&msg, MessageWriteVec::new());
    out.add_attribute(&XorMappedAddress::new(from, msg.transaction_id()))
        .ok()?;
    if msg.has_attribute(Fingerprint::TYPE) {
        out.add_fingerprint().ok()?;
    }
    Some(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a server answers to `request`, claiming `seen`.
    fn servers_answer(request: &[u8], seen: SocketAddr) -> Vec<u8> {
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
            assert_eq!(mapped(&servers_answer(&req, seen), id), Some(seen));
        }
    }

    #[test]
    fn a_phones_binding_request_is_answered_with_where_it_was_seen() {
        let phone: SocketAddr = "198.51.100.9:5062".parse().expect("address");
        let (req, id) = binding_request();
        let got = answer(&req, phone).expect("answered");
        assert_eq!(mapped(&got, id), Some(phone));
        assert!(!Message::from_bytes(&got)
            .expect("parses")
            .has_attribute(Fingerprint::TYPE));

        // With a FINGERPRINT, the answer has one too.
        let mut with = Message::builder_request(BINDING, MessageWriteVec::new());
        with.add_fingerprint().expect("room");
        let with = with.finish();
        let got = answer(&with, phone).expect("answered");
        let m = Message::from_bytes(&got).expect("its fingerprint checks");
        assert!(m.has_attribute(Fingerprint::TYPE));
        assert_eq!(
            mapped(
                &got,
                Message::from_bytes(&with)
                    .expect("parses")
                    .transaction_id()
                    .into()
            ),
            Some(phone)
        );

        // Not answered: an answer, an authenticated (or ICE) request,
        // a cut or flipped one.
        assert_eq!(answer(&got, phone), None);
        let mut user = Message::builder_request(BINDING, MessageWriteVec::new());
        user.add_attribute(&stun_types::attribute::Username::new("alice").expect("name"))
            .expect("room");
        assert_eq!(answer(&user.finish(), phone), None);
        for cut in 0..with.len() {
            assert_eq!(answer(&with[..cut], phone), None, "cut at {cut}");
        }
        for i in 0..with.len() {
            let mut bad = with.clone();
            bad[i] ^= 0x01;
            let _ = answer(&bad, phone);
        }
    }

    #[test]
    fn anything_but_our_answer_says_nothing() {
        let (req, id) = binding_request();
        let seen: SocketAddr = "198.51.100.7:40123".parse().expect("address");
        let (other, _) = binding_request();
        assert_eq!(
            mapped(&servers_answer(&other, seen), id),
            None,
            "another id"
        );
        assert_eq!(mapped(&req, id), None, "a request");
        let good = servers_answer(&req, seen);
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
