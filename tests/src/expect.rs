//! Expectations for hand-driven exchanges ([`crate::Udp`] callers and a
//! [`crate::FakePool`]): the next message must be the one the test caused.
//! Each wait is bounded by [`ANSWER`]; none synchronises anything.

use std::net::SocketAddr;
use std::time::Duration;

use crate::sip;
use crate::{Arrival, FakePool, Udp};

/// Long enough for any answer on loopback; only reached when one is lost.
pub const ANSWER: Duration = Duration::from_secs(5);

/// How long to wait for something that must not come.
pub const SILENCE: Duration = Duration::from_millis(300);

/// The next message any pool server received; it must be `method` of
/// `call_id`. Tests that send one thing at a time use it so that anything
/// else (a duplicate, a message that should not have been forwarded) fails.
#[track_caller]
pub fn next_arrival(pool: &FakePool, method: &str, call_id: &str) -> Arrival {
    let got = pool
        .recv(ANSWER)
        .unwrap_or_else(|| panic!("{method} of {call_id} reached no pool server"));
    assert_eq!(
        (sip::method(&got.text), sip::header(&got.text, "Call-ID")),
        (Some(method), Some(call_id)),
        "server {} got something else than the {method} of {call_id}:\n{}",
        got.server,
        got.text
    );
    got
}

/// Panics if any pool server receives anything within [`SILENCE`].
#[track_caller]
pub fn pool_silent(pool: &FakePool, what: &str) {
    if let Some(stray) = pool.recv(SILENCE) {
        panic!("{what}: server {} received\n{}", stray.server, stray.text);
    }
}

/// The next final (>= 200) response that `peer` receives for `call_id`
/// with CSeq method `cseq`, skipping anything else.
#[track_caller]
pub fn final_response(peer: &Udp, call_id: &str, cseq: &str) -> (String, SocketAddr) {
    peer.recv_matching(ANSWER, |t| {
        sip::status_code(t).is_some_and(|c| c >= 200)
            && sip::header(t, "Call-ID") == Some(call_id)
            && sip::cseq(t).is_some_and(|(_, m)| m == cseq)
    })
    .unwrap_or_else(|| panic!("no final response to the {cseq} of {call_id}"))
}

/// Every Via value of a message, comma-separated values split, in order.
pub fn via_values(msg: &str) -> Vec<String> {
    sip::headers(msg, "Via")
        .iter()
        .flat_map(|line| line.split(','))
        .map(|v| v.trim().to_string())
        .collect()
}

/// The `branch` parameter of a Via value.
pub fn branch_of(via: &str) -> Option<&str> {
    via.split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("branch"))
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_vias_and_reads_branches() {
        let msg = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b\r\n\
                   v: SIP/2.0/UDP c;rport;branch=z9hG4bK3\r\n\r\n";
        let vias = via_values(msg);
        assert_eq!(vias.len(), 3);
        assert_eq!(branch_of(&vias[0]), Some("z9hG4bK1"));
        assert_eq!(branch_of(&vias[1]), None);
        assert_eq!(branch_of(&vias[2]), Some("z9hG4bK3"));
    }
}
