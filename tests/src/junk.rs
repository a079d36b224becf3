//! Garbage datagrams for robustness tests: what a SIP port on the Internet
//! receives besides SIP (scanners, truncated packets, keep-alives, broken
//! stacks, forged responses).
//!
//! Every datagram is reproducible from a seed (a small xorshift generator,
//! no dependency), so a failure can be replayed. None of them is a valid
//! SIP request that a proxy could rightly forward: each is either not SIP
//! at all, a keep-alive, a request that breaks a MUST of RFC 3261 (missing
//! or duplicated mandatory header, bad syntax, body shorter than its
//! Content-Length, RFC 3261 §18.3), or a response a proxy must drop (its
//! top Via is not the proxy's, or its branch is forged).

use std::net::SocketAddr;

/// A deterministic pseudo-random generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced by a fixed value).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        (self.next_u64() % n as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// `len` random printable ASCII characters, with CRLFs sprinkled in.
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| match self.below(40) {
                0 => b'\n',
                1 => b'\r',
                2 => b':',
                _ => b' ' + self.below(95) as u8,
            })
            .collect()
    }
}

/// What the garbage is made of: where it is sent, and who sends it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The proxy's listening address (junk names it as Request-URI host,
    /// and forged responses name it in their top Via).
    pub edge: SocketAddr,
    /// The sending socket (named in the junk's Via, with `rport`, so any
    /// answer comes back to the sender and nowhere else).
    pub sender: SocketAddr,
    /// A pool server: forged responses name it as the next hop, so a proxy
    /// that forwarded one would hand it to that server.
    pub victim: SocketAddr,
}

/// A well-formed INVITE with an SDP body, from `t.sender` to a user at
/// `t.edge`, with Call-ID `call_id`; the base of the broken variants.
pub fn valid_invite(t: &Target, call_id: &str) -> String {
    let body = "v=0\r\no=junk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                t=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:bob@{edge} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id};rport\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         From: <sip:junk@{me}>;tag=j1\r\n\
         To: <sip:bob@{edge}>\r\n\
         Max-Forwards: 70\r\n\
         Contact: <sip:junk@{me}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{body}",
        edge = t.edge,
        me = t.sender,
        len = body.len(),
    )
}

/// Offset just past the last character of the To header's value in
/// `msg` (before its CRLF).
pub fn to_value_end(msg: &str) -> usize {
    let at = msg.find("\r\nTo:").expect("To header") + 2;
    at + msg[at..].find("\r\n").expect("line end")
}

/// Replaces the first header line starting with `name:` by `line` (or
/// removes it when `line` is empty).
fn with_line(msg: &str, name: &str, line: &str) -> String {
    let prefix = format!("\r\n{name}:");
    let Some(at) = msg.find(&prefix) else {
        panic!("no {name} in template");
    };
    let start = at + 2;
    let end = start + msg[start..].find("\r\n").expect("line end");
    let mut out = String::with_capacity(msg.len() + line.len());
    out.push_str(&msg[..start]);
    if line.is_empty() {
        out.push_str(&msg[end + 2..]);
    } else {
        out.push_str(line);
        out.push_str(&msg[end..]);
    }
    out
}

/// The broken-SIP variant number `k` (of [`BROKEN_KINDS`]) of
/// [`valid_invite`]: each breaks one rule of RFC 3261.
pub fn broken_sip(t: &Target, k: usize, call_id: &str) -> Vec<u8> {
    let ok = valid_invite(t, call_id);
    let me = t.sender;
    let edge = t.edge;
    let s = match k % BROKEN_KINDS {
        0 => with_line(&ok, "Call-ID", ""),
        1 => with_line(&ok, "CSeq", ""),
        2 => with_line(&ok, "From", ""),
        3 => with_line(&ok, "To", ""),
        4 => with_line(&ok, "Via", ""),
        5 => with_line(&ok, "CSeq", "CSeq: abc INVITE"),
        6 => with_line(&ok, "CSeq", "CSeq: 1 BYE"),
        7 => with_line(&ok, "Max-Forwards", "Max-Forwards: -1"),
        8 => with_line(&ok, "Max-Forwards", "Max-Forwards: x"),
        9 => with_line(
            &ok,
            "Call-ID",
            &format!("Call-ID: {call_id}\r\nCall-ID: {call_id}-2"),
        ),
        10 => with_line(&ok, "Content-Length", "Content-Length: 5000"),
        11 => ok.replacen(&format!("sip:bob@{edge}"), "nonsense", 1),
        12 => ok.replacen(" SIP/2.0\r\n", " SIP/3.0\r\n", 1),
        13 => with_line(&ok, "Via", "Via: garbage"),
        14 => with_line(&ok, "From", "Fr\0m: <sip:junk@127.0.0.1>;tag=1"),
        15 => with_line(&ok, "To", "To <sip:bob@127.0.0.1>"),
        16 => format!("INVITE sip:bob@{edge} SIP/2.0\r\n\r\n"),
        17 => ok.replacen(
            &format!("sip:bob@{edge} "),
            &format!("sip:bob@{edge}?Subject=x "),
            1,
        ),
        18 => with_line(&ok, "From", "From: <<<sip:"),
        19 => ok.replacen("INVITE sip:", "INVITEsip:", 1),
        20 => with_line(
            &ok,
            "Content-Length",
            "Content-Length: 99999999999999999999999",
        ),
        21 => with_line(&ok, "CSeq", "CSeq: 4294967296 INVITE"),
        // Route is what a proxy forwards by, so it must parse (§16.3 step 1).
        22 => with_line(&ok, "Contact", "Route: <sip:bob@[::1;lr>"),
        23 => with_line(
            &ok,
            "Via",
            &format!("Via: SIP/2.0/UDP {me};branch=;rport=x"),
        ),
        // A response whose top Via claims to be the proxy's, with a branch
        // in the proxy's format but a MAC it did not compute, and whose next
        // Via is a pool server: a reflection attempt.
        24 => format!(
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP {edge};branch=z9hG4bKsE0123456789abcdef.01234567\r\n\
             Via: SIP/2.0/UDP {victim};branch=z9hG4bK-{call_id}\r\n\
             From: <sip:junk@{me}>;tag=j1\r\nTo: <sip:bob@{edge}>;tag=j2\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            victim = t.victim
        ),
        // A response whose top Via is not the proxy's at all.
        _ => format!(
            "SIP/2.0 180 Ringing\r\n\
             Via: SIP/2.0/UDP {victim};branch=z9hG4bK-{call_id}\r\n\
             From: <sip:junk@{me}>;tag=j1\r\nTo: <sip:bob@{edge}>;tag=j2\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            victim = t.victim
        ),
    };
    s.into_bytes()
}

/// How many variants [`broken_sip`] has.
pub const BROKEN_KINDS: usize = 26;

/// The size of the huge datagrams: 60 KiB, under the 65,507-byte UDP
/// payload limit.
pub const HUGE: usize = 60 * 1024;

/// `n` garbage datagrams for `t`, reproducible from `seed`, in a mix of:
/// empty datagrams, CRLF keep-alives (RFC 5626 §4.4.1), random bytes,
/// random text, truncated INVITEs (cut before their To header is complete,
/// so a mandatory header is missing or broken, or inside their body, so it
/// is shorter than Content-Length),
/// every [`broken_sip`] variant, and huge (60 KiB) random and SIP-shaped
/// datagrams. Call-IDs of SIP-shaped ones start with `junk-`.
pub fn garbage(seed: u64, n: usize, t: &Target) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let call_id = format!("junk-{seed:x}-{i}");
        let d = match i % 10 {
            0 => match (i / 10) % 4 {
                0 => Vec::new(),
                1 => b"\r\n\r\n".to_vec(),
                2 => b"\r\n".to_vec(),
                _ => b"\r\n\r\n\r\n\r\n".to_vec(),
            },
            1 | 2 => {
                let len = 1 + rng.below(1500);
                rng.bytes(len)
            }
            3 => {
                let len = 1 + rng.below(1500);
                rng.text(len)
            }
            4 | 5 => {
                let ok = valid_invite(t, &call_id);
                let cut = if i % 10 == 4 {
                    // Before the To value is complete: a mandatory header
                    // (To or one before it) is missing or cut short.
                    1 + rng.below(to_value_end(&ok) - 1)
                } else {
                    // Inside the body: shorter than its Content-Length.
                    let body = ok.find("\r\n\r\n").expect("empty line") + 4;
                    body + rng.below(ok.len() - body)
                };
                ok.as_bytes()[..cut].to_vec()
            }
            6..=8 => broken_sip(t, i / 10 * 3 + (i % 10 - 6), &call_id),
            _ => match (i / 10) % 10 {
                0 => rng.bytes(HUGE),
                1 => {
                    // A huge INVITE whose body is shorter than announced.
                    let mut d = valid_invite(t, &call_id).into_bytes();
                    let pad = HUGE.saturating_sub(d.len());
                    d.extend(std::iter::repeat_n(b'a', pad));
                    let text = String::from_utf8(d).expect("ascii");
                    with_line(&text, "Content-Length", "Content-Length: 70000").into_bytes()
                }
                2 => {
                    // A huge header line with no colon in it.
                    let ok = valid_invite(t, &call_id);
                    with_line(&ok, "Contact", &"X".repeat(HUGE)).into_bytes()
                }
                _ => {
                    let len = 1 + rng.below(1500);
                    rng.bytes(len)
                }
            },
        };
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            edge: "127.0.0.1:5060".parse().unwrap(),
            sender: "127.0.0.1:20001".parse().unwrap(),
            victim: "127.0.0.1:5070".parse().unwrap(),
        }
    }

    #[test]
    fn garbage_is_reproducible_and_mixed() {
        let a = garbage(7, 1000, &target());
        assert_eq!(a, garbage(7, 1000, &target()));
        assert_ne!(a, garbage(8, 1000, &target()));
        assert_eq!(a.len(), 1000);
        assert!(a.iter().any(Vec::is_empty));
        assert!(a.iter().any(|d| d == b"\r\n\r\n"));
        assert!(a.iter().any(|d| d.len() >= HUGE));
        assert!(a.iter().all(|d| d.len() <= 65_507));
        // Every broken variant appears.
        for k in 0..BROKEN_KINDS {
            let variant = broken_sip(&target(), k, "x");
            assert!(!variant.is_empty());
        }
        let kinds = a.iter().filter(|d| d.starts_with(b"SIP/2.0 ")).count();
        assert!(kinds > 0, "no forged responses in the mix");
    }

    #[test]
    fn variants_differ_from_the_valid_invite() {
        let t = target();
        let ok = valid_invite(&t, "x").into_bytes();
        for k in 0..BROKEN_KINDS {
            assert_ne!(broken_sip(&t, k, "x"), ok, "variant {k} is not broken");
        }
        let text = valid_invite(&t, "x");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
    }
}
