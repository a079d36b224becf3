//! `nat_sdp = true`: the SDP of a party behind NAT names its private
//! address in its `c=` lines, where no peer can send media; the edge
//! replaces each private IPv4 connection address with the address the
//! party's packets come from, for peers that send media where the SDP
//! says (with symmetric RTP the media then reaches the NAT binding that
//! the party's own media opens). Only for a party the edge's `nat_test`
//! finds behind NAT (on an answer, the tests that read a response: its
//! Contact and SDP), only `application/sdp` bodies that are not
//! compressed; the `o=` line is left alone.

use sip::splice::write_num;
use sip::{HeaderName, Message, Splicer};
use std::net::IpAddr;

/// Writes the rewrites of `m`'s SDP into `sp`, for a party whose packets
/// come from `source`, and the new Content-Length if there is one.
/// Returns the body's length as it leaves.
pub(crate) fn rewrite(sp: &mut Splicer, m: &Message<'_>, source: IpAddr) -> usize {
    let body = m.body();
    let source = match source {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => return body.len(),
        },
        IpAddr::V4(v4) => v4,
    };
    if !is_plain_sdp(m) {
        return body.len();
    }
    let mut text = [0u8; 15];
    let text = {
        let mut w = std::io::Cursor::new(&mut text[..]);
        let _ = std::io::Write::write_fmt(&mut w, format_args!("{source}"));
        let n = w.position() as usize;
        &text[..n]
    };
    let start = m.body_span().start as usize;
    let mut len = body.len();
    for r in crate::nat::private_sdp_spans(body) {
        len = len + text.len() - r.len();
        sp.replace(start + r.start..start + r.end, text);
    }
    if len != body.len() {
        if let Some(h) = m.first(HeaderName::ContentLength) {
            sp.replace_with(h.value.range(), |w| write_num(w, len));
        }
    }
    len
}

/// Whether answer `m`, from `source` outside the pool, is to have its SDP
/// rewritten: `nat_sdp`, and one of the edge's NAT tests that read a
/// response (its Contact, its SDP; the Via on top is the edge's own)
/// fires on it.
pub(crate) fn answer_behind_nat(
    edge: &super::Edge,
    m: &Message<'_>,
    top: &sip::Via<'_>,
    source: std::net::SocketAddr,
) -> bool {
    use crate::nat::{NatTest, NatTests};
    const ON_ANSWERS: u8 = NatTest::PrivateContact as u8
        | NatTest::PrivateSdp as u8
        | NatTest::ContactAddress as u8
        | NatTest::ContactPort as u8;
    let tests = NatTests(edge.nat_tests().0 & ON_ANSWERS);
    edge.nat_sdp() && !crate::nat::detect_in(tests, m, top, source).is_empty()
}

/// An uncompressed body of type `application/sdp`.
fn is_plain_sdp(m: &Message<'_>) -> bool {
    let sdp = m.first_value(HeaderName::ContentType).is_some_and(|v| {
        let kind = v.split(|&b| b == b';').next().unwrap_or_default();
        kind.trim_ascii().eq_ignore_ascii_case(b"application/sdp")
    });
    sdp && m.first(HeaderName::ContentEncoding).is_none()
}
