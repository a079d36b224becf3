//! SIP traces (`[hep]`): each message an edge reads, and each it sends,
//! copied with its addresses, transport and time and offered to a sink —
//! the daemon's HEP sender — that never waits: when its queue is full
//! the copy is dropped and counted, so tracing cannot slow forwarding.
//!
//! A call is traced whole or not at all (`hep_sample`): the choice is a
//! fixed-seed hash of its Call-ID, the same on every node.

use crate::flow::{Flow, Transport};
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use xxhash_rust::xxh3::xxh3_64;

/// One message, as traced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// When, since the Unix epoch.
    pub at: Duration,
    /// Read by the edge (`true`), or sent by it.
    pub received: bool,
    /// The transport it went over.
    pub transport: Transport,
    /// The edge's end: where it was read, or sent from.
    pub local: SocketAddr,
    /// The other end.
    pub remote: SocketAddr,
    /// The message as on the wire.
    pub bytes: Vec<u8>,
}

/// Where traces go. `offer` must not block.
pub trait Sink: Send + Sync + Debug {
    /// Takes `message`, or drops it (and counts it) when it cannot now.
    fn offer(&self, message: Captured);
}

/// An edge's tracing: the sink and the share of calls traced.
#[derive(Clone, Debug)]
pub struct Tracer {
    sink: Arc<dyn Sink>,
    /// In ten-thousandths; 10,000 traces every call.
    sample: u16,
}

impl Tracer {
    /// Traces `sample` ten-thousandths of the calls into `sink`.
    pub fn new(sink: Arc<dyn Sink>, sample: u16) -> Tracer {
        Tracer { sink, sample }
    }

    /// Whether the message `bytes` belongs to a traced call (one without
    /// a readable Call-ID is traced only when every call is).
    #[inline]
    pub fn wants(&self, bytes: &[u8]) -> bool {
        if self.sample >= 10_000 {
            return true;
        }
        call_id(bytes).is_some_and(|id| xxh3_64(id) % 10_000 < u64::from(self.sample))
    }

    /// Offers `bytes`, read or sent on `flow` whose edge end is `local`.
    pub fn offer(&self, bytes: &[u8], received: bool, flow: &Flow, local: SocketAddr) {
        self.sink.offer(Captured {
            at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
            received,
            transport: flow.transport,
            local,
            remote: flow.remote,
            bytes: bytes.to_vec(),
        });
    }
}

/// The Call-ID of a message (`Call-ID:` or its compact form `i:`), found
/// by a scan of its header lines: for sampling what the edge sends on its
/// own (retransmissions, keepalives) and for the capture server's
/// correlation id, without a parse.
pub fn call_id(msg: &[u8]) -> Option<&[u8]> {
    let head = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(msg, |end| &msg[..end]);
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            let value = line[colon + 1..].trim_ascii();
            return (!value.is_empty()).then_some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Keep(Mutex<Vec<Captured>>);

    impl Sink for Keep {
        fn offer(&self, message: Captured) {
            self.0.lock().expect("lock").push(message);
        }
    }

    #[test]
    fn the_call_id_is_found_in_either_form_and_never_in_the_body() {
        let long = b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nCall-ID:  abc@h \r\n\r\nCall-ID: body";
        assert_eq!(call_id(long), Some(&b"abc@h"[..]));
        let compact = b"SIP/2.0 200 OK\r\ni: xyz\r\nCSeq: 1 BYE\r\n\r\n";
        assert_eq!(call_id(compact), Some(&b"xyz"[..]));
        let none = b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\ni: body";
        assert_eq!(call_id(none), None);
        assert_eq!(call_id(b"\r\n\r\n"), None);
    }

    #[test]
    fn a_sample_keeps_whole_calls_and_about_its_share() {
        let keep = Arc::new(Keep::default());
        let t = Tracer::new(keep, 2_500);
        let msg = |i: u32| format!("BYE sip:a SIP/2.0\r\nCall-ID: call-{i}\r\n\r\n").into_bytes();
        let traced = (0..10_000).filter(|&i| t.wants(&msg(i))).count();
        assert!((2_300..2_700).contains(&traced), "{traced}");
        for i in 0..100 {
            assert_eq!(t.wants(&msg(i)), t.wants(&msg(i)));
        }
        let all = Tracer::new(Arc::new(Keep::default()), 10_000);
        assert!(all.wants(b"garbage"));
        assert!(!t.wants(b"garbage"));
    }

    #[test]
    fn an_offer_carries_both_ends_and_the_bytes() {
        let keep = Arc::new(Keep::default());
        let t = Tracer::new(keep.clone(), 10_000);
        let flow = Flow::udp(0, "192.0.2.7:5060".parse().expect("addr"));
        t.offer(
            b"hello",
            true,
            &flow,
            "127.0.0.1:5060".parse().expect("addr"),
        );
        let got = keep.0.lock().expect("lock");
        assert_eq!(got.len(), 1);
        assert!(got[0].received);
        assert_eq!(got[0].remote, "192.0.2.7:5060".parse().expect("addr"));
        assert_eq!(got[0].local.port(), 5060);
        assert_eq!(got[0].bytes, b"hello");
        assert!(got[0].at.as_secs() > 1_600_000_000);
    }
}
