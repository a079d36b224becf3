//! Parser microbenchmarks: `sip::parse` of the three messages a proxy sees
//! most (an INVITE with SDP, an in-dialog BYE, a 200 OK on its way back) and
//! the value accessors the proxy calls on every one of them.
//!
//! `cargo bench -p sip --bench parse` (add `-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sip::{HeaderIndex, HeaderName, Message, NameAddr, Via};
use std::hint::black_box;

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

/// An INVITE from a customer PBX: 16 header lines and an SDP offer.
fn invite() -> Vec<u8> {
    format!(
        "INVITE sip:+15551234567@192.0.2.10:5060;user=phone SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---a8f3c2e1d9b7f605;rport\r\n\
         Max-Forwards: 70\r\n\
         Contact: <sip:+15557654321@198.51.100.7:5060;transport=udp>\r\n\
         To: <sip:+15551234567@example.net;user=phone>\r\n\
         From: \"Alice Example\" <sip:+15557654321@example.com;user=phone>;tag=8a7c3f21\r\n\
         Call-ID: 3c26700857f1-a1b2c3d4e5f6@198.51.100.7\r\n\
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

/// An in-dialog BYE from the caller, routed through the edge's Record-Route.
fn bye() -> Vec<u8> {
    b"BYE sip:+15551234567@10.0.0.11:5060 SIP/2.0\r\n\
      Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---77c1e0a4b2d9;rport\r\n\
      Max-Forwards: 70\r\n\
      Route: <sip:192.0.2.10:5060;lr>\r\n\
      Contact: <sip:+15557654321@198.51.100.7:5060;transport=udp>\r\n\
      To: <sip:+15551234567@example.net;user=phone>;tag=as5f3e9c1a\r\n\
      From: \"Alice Example\" <sip:+15557654321@example.com;user=phone>;tag=8a7c3f21\r\n\
      Call-ID: 3c26700857f1-a1b2c3d4e5f6@198.51.100.7\r\n\
      CSeq: 2 BYE\r\n\
      User-Agent: ExamplePBX/4.2.1\r\n\
      Content-Length: 0\r\n\r\n"
        .to_vec()
}

/// The 200 OK to the INVITE as the destination sends it back through the
/// edge: the edge's Via on top, the caller's below, the edge's Record-Route.
fn ok() -> Vec<u8> {
    format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsE3f0c7a9d21b48e65.1a2b3c4d\r\n\
         Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---a8f3c2e1d9b7f605;rport=5060;received=198.51.100.7\r\n\
         Record-Route: <sip:192.0.2.10:5060;lr>\r\n\
         To: <sip:+15551234567@example.net;user=phone>;tag=as5f3e9c1a\r\n\
         From: \"Alice Example\" <sip:+15557654321@example.com;user=phone>;tag=8a7c3f21\r\n\
         Call-ID: 3c26700857f1-a1b2c3d4e5f6@198.51.100.7\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:+15551234567@10.0.0.11:5060>\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY\r\n\
         Supported: replaces, timer\r\n\
         Require: timer\r\n\
         Session-Expires: 1800;refresher=uac\r\n\
         Server: ExampleSwitch/11.3\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP_ANSWER}",
        SDP_ANSWER.len()
    )
    .into_bytes()
}

fn messages() -> [(&'static str, Vec<u8>); 3] {
    [
        ("invite_sdp", invite()),
        ("bye_in_dialog", bye()),
        ("ok_200", ok()),
    ]
}

/// What a stateless proxy reads from every message, beyond the index.
fn proxy_reads(m: &Message<'_>) -> usize {
    let (_, via) = m.top_via().expect("top Via");
    let cseq = m.cseq().expect("CSeq");
    let call_id = m.call_id().expect("Call-ID");
    let from = NameAddr::parse(m.first_value(HeaderName::From).expect("From")).expect("From");
    let tag = from.tag().expect("From tag");
    via.branch.map_or(0, <[u8]>::len) + cseq.number as usize + call_id.len() + tag.len()
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (name, msg) in messages() {
        let mut idx = HeaderIndex::new();
        // Sanity, once: the message parses and has what the benches read.
        proxy_reads(&sip::parse(&msg, &mut idx).expect("parses"));
        g.bench_function(name, |b| {
            b.iter(|| {
                let m = sip::parse(black_box(&msg), &mut idx).expect("parses");
                black_box(m.headers().len())
            })
        });
    }
    g.finish();
}

fn parse_and_read(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_and_read");
    g.throughput(Throughput::Elements(1));
    for (name, msg) in messages() {
        let mut idx = HeaderIndex::new();
        g.bench_function(name, |b| {
            b.iter(|| {
                let m = sip::parse(black_box(&msg), &mut idx).expect("parses");
                proxy_reads(&m)
            })
        });
    }
    g.finish();
}

fn accessors(c: &mut Criterion) {
    let mut g = c.benchmark_group("accessors");
    let msg = invite();
    let mut idx = HeaderIndex::new();
    let m = sip::parse(&msg, &mut idx).expect("parses");
    g.bench_function("top_via", |b| {
        b.iter(|| black_box(black_box(&m).top_via().unwrap()))
    });
    let (top, _) = m.top_via().unwrap();
    g.bench_function("via_parse", |b| {
        b.iter(|| black_box(Via::parse(black_box(top.text)).unwrap()))
    });
    g.bench_function("cseq", |b| {
        b.iter(|| black_box(black_box(&m).cseq().unwrap()))
    });
    g.bench_function("call_id", |b| {
        b.iter(|| black_box(black_box(&m).call_id().unwrap()))
    });
    g.bench_function("from_name_addr_tag", |b| {
        b.iter(|| {
            let v = black_box(&m).first_value(HeaderName::From).unwrap();
            black_box(NameAddr::parse(v).unwrap().tag().unwrap())
        })
    });
    g.bench_function("all_of_the_above", |b| {
        b.iter(|| proxy_reads(black_box(&m)))
    });
    g.finish();
}

/// A header section of `size` bytes at most: 200 long headers (some with
/// comma lists, some folded), under the parser's 256-header cap.
fn big_headers(size: usize) -> Vec<u8> {
    let mut out =
        b"OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
        From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\n\
        CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            .to_vec();
    let per = (size.saturating_sub(out.len() + 32)) / 200;
    for i in 0..200 {
        let name = format!("X-Filler-{i}: ");
        out.extend_from_slice(name.as_bytes());
        let mut value = Vec::new();
        while value.len() + name.len() + 4 < per {
            value.extend_from_slice(if i % 3 == 0 { b"a, " } else { b"abcd" });
            if i % 5 == 0 && value.len() % 64 == 0 {
                value.extend_from_slice(b"\r\n ");
            }
        }
        out.extend_from_slice(&value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// Linear time: the same throughput (bytes per second) for 16, 32 and 64
/// KB of headers, parsing and reading every comma-separated value.
fn parse_large(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_large");
    for kb in [16usize, 32, 64] {
        let msg = big_headers(kb * 1024 - 1);
        assert!(msg.len() <= sip::message::MAX_MESSAGE, "{}", msg.len());
        let mut idx = HeaderIndex::new();
        sip::parse(&msg, &mut idx).expect("parses");
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_function(format!("{kb}k"), |b| {
            b.iter(|| {
                let m = sip::parse(black_box(&msg), &mut idx).expect("parses");
                m.headers()
                    .iter()
                    .map(|h| m.elements_of(h).count())
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse, parse_and_read, accessors, parse_large);
criterion_main!(benches);
