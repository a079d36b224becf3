//! SIPp's message trace (`-trace_msg -message_file FILE`), parsed.
//!
//! SIPp writes every message it sends or receives to the trace, flushing
//! after each one, as blocks like:
//!
//! ```text
//! ----------------------------------------------- 2026-11-21 23:36:09.537684
//! UDP message received [511] bytes :
//!
//! INVITE sip:service@127.0.0.1:25070 SIP/2.0
//! ...
//! ```
//!
//! (`UDP message sent (309 bytes):` for sent ones). The byte count gives the
//! exact extent of the message, so bodies containing blank lines or dashes
//! do not confuse the parser.

use crate::sip;

/// Whether SIPp sent or received a traced message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer received it (from sipedge, in a proxied test).
    Received,
    /// The peer sent it.
    Sent,
}

/// One message from a SIPp trace.
#[derive(Debug, Clone)]
pub struct TracedMessage {
    /// Sent or received.
    pub direction: Direction,
    /// Transport as SIPp names it (`UDP`, `TCP`, `TLS`).
    pub transport: String,
    /// The message as on the wire (CRLF line ends).
    pub text: String,
}

impl TracedMessage {
    /// Whether this is a request (as opposed to a response).
    pub fn is_request(&self) -> bool {
        sip::method(&self.text).is_some()
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        sip::method(&self.text)
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        sip::status_code(&self.text)
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&str> {
        sip::request_uri(&self.text)
    }

    /// The first value of header `name` (case-insensitive, compact forms
    /// understood).
    pub fn header(&self, name: &str) -> Option<&str> {
        sip::header(&self.text, name)
    }

    /// Every value of header `name`, in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        sip::headers(&self.text, name)
    }

    /// The port of the top Via's sent-by: for a request a server got
    /// from sipedge, the listen port (so the node) it came through.
    pub fn via_port(&self) -> Option<u16> {
        let via = self.header("Via")?;
        let sent_by = via.split_whitespace().nth(1)?.split(';').next()?;
        sent_by.rsplit(':').next()?.parse().ok()
    }

    /// Whether this is one of sipedge's own health probes (an OPTIONS it
    /// originated: a single Via with sipedge's probe branch prefix and a
    /// `probe.` Call-ID), as opposed to a request it forwarded, which
    /// carries the sender's Via below sipedge's. Tests that check what
    /// reached a server leave these out.
    pub fn is_health_probe(&self) -> bool {
        let vias: usize = self
            .headers("Via")
            .iter()
            .map(|line| line.split(',').count())
            .sum();
        self.method() == Some("OPTIONS")
            && vias == 1
            && sip::top_via_branch(&self.text).is_some_and(|b| b.starts_with("z9hG4bKsEp"))
            && self.call_id().is_some_and(|id| id.starts_with("probe."))
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// The CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        sip::cseq(&self.text)
    }
}

/// Parses a whole SIPp message trace; unknown blocks are skipped.
pub fn parse_message_log(log: &[u8]) -> Vec<TracedMessage> {
    let mut out = Vec::new();
    let mut pos = 0;
    // Each turn moves `pos` forward by at least one byte, so the loop ends.
    while let Some(start) = next_separator(log, pos) {
        match parse_block(&log[start..]) {
            Some((msg, consumed)) => {
                out.push(msg);
                pos = start + consumed.max(1);
            }
            None => pos = start + 1,
        }
    }
    out
}

const SEPARATOR: &[u8] = b"-----------------------------------------------";

/// Offset of the next separator line at or after `from`.
fn next_separator(log: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while pos < log.len() {
        let i = pos + find(&log[pos..], SEPARATOR)?;
        if i == 0 || log[i - 1] == b'\n' {
            return Some(i);
        }
        pos = i + 1;
    }
    None
}

/// One block: separator line, description line, blank line, message of the
/// announced size. Returns the message and the bytes the block spans.
fn parse_block(block: &[u8]) -> Option<(TracedMessage, usize)> {
    let line_end = |from: usize| find(&block[from..], b"\n").map(|i| from + i);
    let description_start = line_end(0)? + 1;
    let description_end = line_end(description_start)?;
    let description = std::str::from_utf8(&block[description_start..description_end])
        .ok()?
        .trim_end();
    let (transport, what) = description.split_once(" message ")?;
    let direction = if what.starts_with("received") {
        Direction::Received
    } else if what.starts_with("sent") {
        Direction::Sent
    } else {
        return None;
    };
    let size: usize = what
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())?
        .parse()
        .ok()?;
    let mut body_start = description_end + 1;
    if block.get(body_start) == Some(&b'\n') {
        body_start += 1;
    }
    let body_end = if body_start + size <= block.len() {
        body_start + size
    } else {
        // Truncated trace (killed mid-write): keep what there is.
        block.len()
    };
    let msg = TracedMessage {
        direction,
        transport: transport.trim().to_string(),
        text: String::from_utf8_lossy(&block[body_start..body_end]).into_owned(),
    };
    Some((msg, body_end))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_exactly_by_length() {
        let invite = "INVITE sip:a@127.0.0.1 SIP/2.0\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 54\r\n\r\nv=0\r\n-----------------------------------------------\r\n\r\n";
        let ok = "SIP/2.0 200 OK\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n";
        let log = format!(
            "----------------------------------------------- 2026-11-21 23:36:09.537684\n\
             UDP message received [{}] bytes :\n\n{invite}\n\
             ----------------------------------------------- 2026-11-21 23:36:09.538004\n\
             UDP message sent ({} bytes):\n\n{ok}\n",
            invite.len(),
            ok.len()
        );
        let msgs = parse_message_log(log.as_bytes());
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].direction, Direction::Received);
        assert_eq!(msgs[0].transport, "UDP");
        assert_eq!(msgs[0].text, invite);
        assert_eq!(msgs[0].method(), Some("INVITE"));
        assert_eq!(msgs[1].direction, Direction::Sent);
        assert_eq!(msgs[1].status(), Some(200));
        assert_eq!(msgs[1].cseq(), Some((1, "INVITE")));
    }

    #[test]
    fn tells_sipedges_probes_from_forwarded_options() {
        let msg = |text: &str| TracedMessage {
            direction: Direction::Received,
            transport: "UDP".into(),
            text: text.into(),
        };
        let probe = "OPTIONS sip:127.0.0.1:5070 SIP/2.0\r\n\
                     Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKsEp0.1f;rport\r\n\
                     Call-ID: probe.1f.0.test\r\nCSeq: 31 OPTIONS\r\n\r\n";
        assert!(msg(probe).is_health_probe());
        // Forwarded: a second Via (here combined on one line) below sipedge's.
        let forwarded = probe.replace(
            ";rport\r\n",
            ";rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n",
        );
        assert!(!msg(&forwarded).is_health_probe());
        assert!(!msg(&probe.replace("Call-ID: probe.", "Call-ID: other.")).is_health_probe());
        assert!(!msg(&probe.replace("z9hG4bKsEp", "z9hG4bKxx")).is_health_probe());
        assert!(!msg(&probe.replace("OPTIONS sip", "INFO sip")).is_health_probe());
    }

    #[test]
    fn keeps_a_truncated_last_message() {
        let log = "----------------------------------------------- t\nUDP message received [500] bytes :\n\nBYE sip:x SIP/2.0\r\nCall-ID: z\r\n";
        let msgs = parse_message_log(log.as_bytes());
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].call_id(), Some("z"));
    }
}
