//! Shared by the pipeline benches: a realistic edge, and rings of INVITEs,
//! BYEs and 200 OKs that it forwards, built and checked before measuring.

#![allow(dead_code)]

use edge::proxy::{Edge, Outcome, Worker};
use std::net::SocketAddr;

const CONFIG: &str = r#"
[node]
id = "bench"
secret = "bench-secret-0123456789abcdef"
[[edge]]
listen = ["udp:192.0.2.10:5060"]
algorithm = "ALG"
[[edge.destination]]
uri = "sip:10.0.0.11:5060"
weight = 3
[[edge.destination]]
uri = "sip:10.0.0.12:5060"
"#;
const SECRET: &[u8] = b"bench-secret-0123456789abcdef";
pub const CALLER: &str = "198.51.100.7:5060";
/// Distinct messages per bench, cycled through.
pub const RING: usize = 256;

/// The SDP offer of a typical PBX: one audio stream, four codecs (~290 bytes).
const SDP_OFFER: &str = "v=0\r\n\
o=- 3874125620 3874125620 IN IP4 198.51.100.7\r\n\
s=ExamplePBX\r\n\
c=IN IP4 198.51.100.7\r\n\
t=0 0\r\n\
m=audio 16384 RTP/AVP 0 8 18 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// The SDP answer of the called side.
const SDP_ANSWER: &str = "v=0\r\n\
o=- 1120 1120 IN IP4 10.0.0.11\r\n\
s=-\r\n\
c=IN IP4 10.0.0.11\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

const FROM: &str = "\"Alice Example\" <sip:+15557654321@example.com;user=phone>";
const TO: &str = "<sip:+15551234567@example.net;user=phone>";

/// Call `i`'s INVITE from the customer PBX: 16 header lines and an SDP offer.
pub fn invite(i: usize) -> Vec<u8> {
    format!(
        "INVITE sip:+15551234567@192.0.2.10:5060;user=phone SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---a8f3c2e1{i:08x};rport\r\n\
         Max-Forwards: 70\r\n\
         Contact: <sip:+15557654321@198.51.100.7:5060;transport=udp>\r\n\
         To: {TO}\r\n\
         From: {FROM};tag=8a7c{i:04x}\r\n\
         Call-ID: 3c26700857f1-{i:08x}@198.51.100.7\r\n\
         CSeq: 1 INVITE\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO, REFER, NOTIFY\r\n\
         Supported: replaces, timer, 100rel\r\n\
         Session-Expires: 1800\r\n\
         Min-SE: 90\r\n\
         User-Agent: ExamplePBX/4.2.1\r\n\
         P-Asserted-Identity: \"Alice Example\" <sip:+15557654321@example.com>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP_OFFER}",
        SDP_OFFER.len()
    )
    .into_bytes()
}

/// The 200 OK the destination sends for the INVITE we forwarded: its Vias
/// and Record-Route copied back (so our branch MAC verifies), a To tag,
/// the usual headers and an SDP answer.
fn ok_for(forwarded: &[u8], i: usize) -> Vec<u8> {
    let mut idx = sip::HeaderIndex::new();
    let m = sip::parse(forwarded, &mut idx).expect("forwarded INVITE parses");
    let mut out = b"SIP/2.0 200 OK\r\n".to_vec();
    for h in m.headers() {
        use sip::HeaderName::*;
        match h.name {
            Via | RecordRoute | From | CallId | CSeq => {
                out.extend_from_slice(&forwarded[h.line.range()]);
            }
            To => {
                out.extend_from_slice(b"To: ");
                out.extend_from_slice(m.value(h));
                out.extend_from_slice(format!(";tag=as5f{i:06x}\r\n").as_bytes());
            }
            _ => {}
        }
    }
    out.extend_from_slice(
        format!(
            "Contact: <sip:+15551234567@10.0.0.11:5060>\r\n\
             Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY\r\n\
             Supported: replaces, timer\r\n\
             Require: timer\r\n\
             Session-Expires: 1800;refresher=uac\r\n\
             Server: ExampleSwitch/11.3\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{SDP_ANSWER}",
            SDP_ANSWER.len()
        )
        .as_bytes(),
    );
    out
}

/// Call `i`'s BYE from the caller: Route = the Record-Route we inserted in
/// the forwarded INVITE, Request-URI = the destination's Contact.
fn bye_for(forwarded: &[u8], dest: SocketAddr, i: usize) -> Vec<u8> {
    let mut idx = sip::HeaderIndex::new();
    let m = sip::parse(forwarded, &mut idx).expect("forwarded INVITE parses");
    let rr = m
        .first_value(sip::HeaderName::RecordRoute)
        .expect("the edge record-routes INVITEs");
    let rr = String::from_utf8_lossy(rr);
    format!(
        "BYE sip:+15551234567@{dest} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---77c1e0a4{i:08x};rport\r\n\
         Max-Forwards: 70\r\n\
         Route: {rr}\r\n\
         Contact: <sip:+15557654321@198.51.100.7:5060;transport=udp>\r\n\
         To: {TO};tag=as5f{i:06x}\r\n\
         From: {FROM};tag=8a7c{i:04x}\r\n\
         Call-ID: 3c26700857f1-{i:08x}@198.51.100.7\r\n\
         CSeq: 2 BYE\r\n\
         User-Agent: ExamplePBX/4.2.1\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A set-up edge, its warm worker and one ring of messages per bench.
pub struct Setup {
    pub edge: Edge,
    pub worker: Worker,
    pub invites: Vec<Vec<u8>>,
    pub byes: Vec<Vec<u8>>,
    pub oks: Vec<(Vec<u8>, SocketAddr)>,
}

pub fn setup(algorithm: &str) -> Setup {
    let cfg = edge::config::parse(&CONFIG.replace("ALG", algorithm), "bench.toml").expect("config");
    let edge = Edge::new(
        &cfg.edges[0],
        &cfg.node,
        &edge::keyring::KeyRing::single(SECRET),
    );
    let mut worker = edge.worker();
    let caller: SocketAddr = CALLER.parse().unwrap();
    let invites: Vec<Vec<u8>> = (0..RING).map(invite).collect();
    let mut byes = Vec::new();
    let mut oks = Vec::new();
    for (i, inv) in invites.iter().enumerate() {
        let Outcome::Send(edge::flow::Flow { remote: to, .. }) = worker.handle(
            &edge,
            inv,
            edge::flow::Flow::udp(0, caller),
            edge.epoch() + std::time::Duration::from_secs(1),
        ) else {
            panic!("INVITE {i} not forwarded");
        };
        oks.push((ok_for(worker.output(), i), to));
        byes.push(bye_for(worker.output(), to, i));
    }
    // Every BYE and 200 OK is forwarded too; this also warms the worker.
    for (i, bye) in byes.iter().enumerate() {
        let out = worker.handle(
            &edge,
            bye,
            edge::flow::Flow::udp(0, caller),
            edge.epoch() + std::time::Duration::from_secs(1),
        );
        assert!(
            matches!(out, Outcome::Send(edge::flow::Flow { remote: to, .. }) if edge.destinations().iter().any(|d| d.addr == to)),
            "BYE {i}: {out:?}"
        );
    }
    for (i, (ok, from)) in oks.iter().enumerate() {
        let out = worker.handle(
            &edge,
            ok,
            edge::flow::Flow::udp(0, *from),
            edge.epoch() + std::time::Duration::from_secs(1),
        );
        assert_eq!(
            out,
            Outcome::Send(edge::flow::Flow::udp(0, caller)),
            "200 OK {i}"
        );
    }
    Setup {
        edge,
        worker,
        invites,
        byes,
        oks,
    }
}
