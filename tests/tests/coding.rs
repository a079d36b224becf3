//! Compaction and compression (issue 6 §3) through the running proxy:
//! SIPp calls through an edge that compacts both ways, and a 3 KB SDP that
//! leaves the edge deflated under 1300 bytes and inflates back byte for
//! byte — by the test itself, and by a second sipedge that decompresses.

use std::io::Read;
use std::net::SocketAddr;

use e2e::config::single_edge;
use e2e::expect::ANSWER;
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, Sipedge, SippUac, SippUas, Udp};

fn edge_addr(port: u16) -> SocketAddr {
    SocketAddr::from((e2e::LOCALHOST, port))
}

/// A config of one edge on `listen` in front of `dest` with `lines` added
/// to the edge and its probes off (the raw sockets here answer nothing).
fn edge(listen: u16, dest: u16, lines: &str) -> String {
    single_edge(listen, "first", &[(dest, 1)]).replace("flags = ", &format!("{lines}\nflags = "))
        + "\n[edge.probe]\nenabled = false\n"
}

/// An SDP body of about `len` bytes (ICE candidates make a big one).
fn big_sdp(len: usize) -> String {
    let mut s = String::from(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0 8 101\r\n",
    );
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!(
            "a=candidate:{i} 1 UDP 2130706431 127.0.0.1 {} typ host\r\n",
            4000 + i
        ));
        i += 1;
    }
    s
}

/// The body of a raw message (after the empty line).
fn body_of(msg: &[u8]) -> &[u8] {
    let at = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header section");
    &msg[at + 4..]
}

/// Issue 6: SIPp calls through an edge with compaction on both sides
/// complete: the servers and the caller read compact headers.
#[test]
fn coding_sipp_calls_complete_with_compaction_both_ways() {
    require_private_netns();
    let uas = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let config = edge(
        listen,
        uas.port(),
        "compress_in = [\"compact\"]\ncompress_out = [\"compact\"]",
    );
    let _edge = Sipedge::start(&config);
    let uac = SippUac::run("uac.xml", &format!("127.0.0.1:{listen}"), 20, 20, &[]);
    let uas = uas.stop();
    uac.assert_all_successful();
    // What the server received is compact (Via written as v:, Call-ID as i:).
    let invites = uas.requests("INVITE");
    assert_eq!(invites.len(), 20);
    for m in &invites {
        assert!(m.text.contains("\r\nv: SIP/2.0/UDP"), "{}", m.text);
        assert!(m.text.contains("\r\ni: "), "{}", m.text);
    }
    // And so is what the caller received.
    let oks = uac.responses(200);
    assert!(!oks.is_empty());
    assert!(
        oks.iter().all(|m| m.text.contains("\r\nv: ")),
        "{}",
        oks[0].text
    );
}

/// Issue 6: an INVITE with a 3 KB SDP body leaves the edge compressed
/// (compact headers, deflated body) and smaller than 1300 bytes; inflating
/// it gives back the original body byte for byte.
#[test]
fn coding_a_3kb_sdp_leaves_deflated_under_1300_bytes() {
    require_private_netns();
    let server = Udp::bind();
    let listen = free_port();
    let _edge = Sipedge::start(&edge(
        listen,
        server.port(),
        "compress_in = [\"compact\", \"deflate\"]",
    ));
    let caller = Udp::bind();
    let sdp = big_sdp(3000);
    let invite = Request::new(
        "INVITE",
        &format!("sip:svc@127.0.0.1:{listen}"),
        caller.local_addr(),
    )
    .body("application/sdp", &sdp);
    assert!(invite.build().len() > 3000);
    caller.send_to(invite.build(), edge_addr(listen));
    let (got, _) = server
        .recv_timeout(ANSWER)
        .expect("the INVITE reaches the server");
    assert!(got.len() < 1300, "{} bytes left the edge", got.len());
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("\r\ne: deflate\r\n"), "{text}");
    assert!(text.contains("\r\nv: SIP/2.0/UDP"), "{text}");
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(body_of(&got))
        .read_to_end(&mut inflated)
        .expect("a zlib stream");
    assert_eq!(inflated, sdp.as_bytes());
}

/// Issue 6: a second sipedge that decompresses (`decompress` toward its
/// server) gives the server the original body byte for byte, with no
/// Content-Encoding: the far side of a compressing edge.
#[test]
fn coding_a_decompressing_edge_restores_the_body() {
    require_private_netns();
    let server = Udp::bind();
    let (first, second) = (free_port(), free_port());
    let a = edge(first, second, "compress_in = [\"deflate\"]");
    let b = edge(second, server.port(), "compress_in = [\"decompress\"]")
        .replace("id = \"test\"", "id = \"second\"");
    let _a = Sipedge::start(&a);
    let _b = Sipedge::start(&b);
    let caller = Udp::bind();
    let sdp = big_sdp(3000);
    let invite = Request::new(
        "INVITE",
        &format!("sip:svc@127.0.0.1:{first}"),
        caller.local_addr(),
    )
    .body("application/sdp", &sdp);
    caller.send_to(invite.build(), edge_addr(first));
    let (got, _) = server
        .recv_timeout(ANSWER)
        .expect("the INVITE reaches the server");
    let text = String::from_utf8_lossy(&got);
    assert_eq!(body_of(&got), sdp.as_bytes(), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("content-encoding"),
        "{text}"
    );
    assert_eq!(
        sip::header(&text, "Content-Length"),
        Some(sdp.len().to_string().as_str())
    );
    // Both edges' Vias are on it: it went through the first, compressed.
    assert_eq!(sip::headers(&text, "Via").len(), 3, "{text}");
}
