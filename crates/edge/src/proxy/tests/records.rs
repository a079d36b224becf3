//! What workers report to the call records.

use super::{addr, edge_with_keys, CALLER, DEST_B, SECRET};
use crate::config;
use crate::flow::Flow;
use crate::records::{Record, Sink, What};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Default)]
struct Kept(Mutex<Vec<Record>>);

impl Sink for Kept {
    fn offer(&self, record: Record) {
        if let Ok(mut v) = self.0.lock() {
            v.push(record);
        }
    }
}

/// A final answer to an INVITE from a destination a reload removed (a
/// re-INVITE's answer, or anyone sending from its address) is reported
/// under its URI, and panics nothing.
#[test]
fn an_answer_from_a_removed_destination_is_reported_by_its_uri() {
    let sink = Arc::new(Kept::default());
    let before = edge_with_keys("first", "", "");
    let text = "[node]\nid = \"t\"\nsecret = \"unit-test-secret-0123456789\"\n\
         [[edge]]\nlisten = [\"udp:127.0.0.1:5060\"]\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n";
    let cfg = config::parse(text, "test.toml").expect("config");
    let keys = crate::keyring::KeyRing::single(SECRET);
    let after = before
        .reloaded(&cfg.edges[0], &cfg.node, &keys, Instant::now())
        .with_records(Some(Arc::clone(&sink) as Arc<dyn Sink>));
    let mut w = after.worker();
    let answer = format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsE0000000000000000.00000000\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-1\r\n\
         From: <sip:a@example.com>;tag=a1\r\nTo: <sip:b@example.com>;tag=b1\r\n\
         Call-ID: removed-1\r\nCSeq: 2 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    w.handle(
        &after,
        answer.as_bytes(),
        Flow::udp(0, addr(DEST_B)),
        Instant::now(),
    );
    let kept = sink.0.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(&*kept[0].call_id, "removed-1");
    assert_eq!(
        kept[0].what,
        What::Answered {
            dest: format!("sip:{DEST_B}").into(),
            code: 200
        }
    );
}
