use super::*;

const MAX: usize = 65_535;

const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
Call-ID: a@b\r\n\
Content-Length: 8\r\n\
\r\n\
v=0\r\n\r\n\r";

const BYE: &[u8] = b"BYE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK2\r\n\
l: 0\r\n\
\r\n";

/// What a connection reading `chunks` one after another makes of them:
/// every frame with the bytes it consumed, until the stream ends or
/// cannot be framed.
fn read(chunks: &[&[u8]]) -> Vec<(Frame, Vec<u8>)> {
    let mut framer = Framer::default();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let f = framer.next(&buf, MAX);
            match f {
                Frame::NeedMore => break,
                Frame::Unframed { head, .. } => {
                    out.push((f, buf[..head.unwrap_or(0)].to_vec()));
                    return out;
                }
                _ => {
                    let n = f.consumed();
                    out.push((f, buf.drain(..n).collect()));
                }
            }
        }
    }
    out
}

fn one(bytes: &[u8]) -> Frame {
    Framer::default().next(bytes, MAX)
}

#[test]
fn a_message_ends_after_content_length_octets_of_body() {
    assert_eq!(one(INVITE), Frame::Message(INVITE.len()));
    assert_eq!(one(BYE), Frame::Message(BYE.len()));
    // The body may hold an empty line of its own.
    let mut two = INVITE.to_vec();
    two.extend_from_slice(BYE);
    assert_eq!(one(&two), Frame::Message(INVITE.len()));
}

#[test]
fn every_split_of_a_segment_frames_the_same() {
    let mut stream = Vec::new();
    stream.extend_from_slice(b"\r\n\r\n");
    stream.extend_from_slice(INVITE);
    stream.extend_from_slice(b"\r\n");
    stream.extend_from_slice(BYE);
    stream.extend_from_slice(INVITE);
    let whole = read(&[&stream]);
    let kinds: Vec<Frame> = whole.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        kinds,
        [
            Frame::Ping,
            Frame::Message(INVITE.len()),
            Frame::KeepAlive,
            Frame::Message(BYE.len()),
            Frame::Message(INVITE.len()),
        ]
    );
    for at in 0..=stream.len() {
        assert_eq!(
            read(&[&stream[..at], &stream[at..]]),
            whole,
            "split at {at}"
        );
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(read(&bytes), whole, "one byte at a time");
    for at in 1..stream.len() {
        for (a, b) in [(at / 3, at), (at, at + 7)] {
            let b = b.min(stream.len());
            let got = read(&[&stream[..a], &stream[a..b], &stream[b..]]);
            assert_eq!(got, whole, "splits at {a} and {b}");
        }
    }
}

#[test]
fn a_double_crlf_is_a_ping_and_a_single_one_a_keep_alive() {
    assert_eq!(one(b"\r\n\r\n"), Frame::Ping);
    assert_eq!(one(b"\r\n"), Frame::NeedMore, "a ping may still be coming");
    assert_eq!(one(b"\r\n\r"), Frame::NeedMore);
    assert_eq!(one(b"\r"), Frame::NeedMore);
    assert_eq!(one(b"\r\nBYE"), Frame::KeepAlive);
    // Other white space before a start line is the message's (the parser
    // skips it): the header section starts after it.
    let m = b"\r\r\nl: 0\r\nBYE sip:a@b SIP/2.0\r\nl: 0\r\n\r\n";
    assert_eq!(one(m), Frame::Message(m.len()));
    assert_eq!(one(b"\r\r\n\n \t"), Frame::NeedMore);
    assert_eq!(Frame::Ping.consumed(), 4);
    assert_eq!(Frame::KeepAlive.consumed(), 2);
}

#[test]
fn a_message_without_content_length_cannot_be_framed() {
    let m = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\nrest";
    let head = m.len() - 4;
    assert_eq!(
        one(m),
        Frame::Unframed {
            why: Unframed::NoContentLength,
            head: Some(head)
        }
    );
    assert_eq!(Unframed::NoContentLength.answer().0, 400);
}

#[test]
fn content_length_must_be_one_number() {
    let bad = |v: &str| {
        let m = format!("BYE sip:a@b SIP/2.0\r\nContent-Length: {v}\r\n\r\n");
        match one(m.as_bytes()) {
            Frame::Unframed { why, .. } => why == Unframed::BadContentLength,
            _ => false,
        }
    };
    for v in ["", "x", "1 2", "-1", "+1", "99999999999999999999999", "1x"] {
        assert!(bad(v), "{v:?}");
    }
    for v in ["0", " 0 ", "007"] {
        assert!(!bad(v), "{v:?}");
    }
    let twice = b"BYE sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n";
    assert!(matches!(
        one(twice),
        Frame::Unframed {
            why: Unframed::BadContentLength,
            ..
        }
    ));
}

#[test]
fn a_folded_content_length_is_read_whole() {
    let m = b"BYE sip:a@b SIP/2.0\r\nContent-Length:\r\n  2\r\n\r\nab";
    assert_eq!(one(m), Frame::Message(m.len()));
    let split = b"BYE sip:a@b SIP/2.0\r\nContent-Length: 1\r\n 2\r\n\r\n";
    assert!(matches!(one(split), Frame::Unframed { .. }));
}

#[test]
fn only_crlf_ends_a_line() {
    // A bare LF does not start a header: no Content-Length is hidden in
    // another header's value (the message parser refuses the message too).
    let m = b"BYE sip:a@b SIP/2.0\r\nSubject: a\nContent-Length: 0\r\n\r\n";
    assert!(matches!(
        one(m),
        Frame::Unframed {
            why: Unframed::NoContentLength,
            ..
        }
    ));
    // A name is trimmed as the parser trims it: two Content-Lengths here.
    let m = b"BYE sip:a@b SIP/2.0\r\nl\n: 5\r\nl: 0\r\n\r\n";
    assert!(matches!(
        one(m),
        Frame::Unframed {
            why: Unframed::BadContentLength,
            ..
        }
    ));
    // Nor does a continuation line that looks like one.
    let m = b"BYE sip:a@b SIP/2.0\r\nSubject: a\r\n l: 0\r\nl: 3\r\n\r\nabc";
    assert_eq!(one(m), Frame::Message(m.len()));
}

#[test]
fn a_message_longer_than_the_limit_is_refused_early() {
    let mut f = Framer::default();
    let head = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 100\r\n\r\n";
    assert_eq!(
        f.next(head, head.len() + 99),
        Frame::Unframed {
            why: Unframed::TooLarge,
            head: Some(head.len())
        }
    );
    assert_eq!(f.next(head, head.len() + 100), Frame::NeedMore);
    // A header section that never ends stops at the limit.
    let endless = vec![b'a'; 100];
    assert_eq!(Framer::default().next(&endless, 101), Frame::NeedMore);
    assert_eq!(
        Framer::default().next(&endless, 100),
        Frame::Unframed {
            why: Unframed::TooLarge,
            head: None
        }
    );
}

#[test]
fn a_trickled_head_is_framed_as_when_it_comes_at_once() {
    // Fed one byte at a time, the search resumes where it stopped.
    let mut f = Framer::default();
    let mut buf = Vec::new();
    let mut got = None;
    for &b in INVITE {
        buf.push(b);
        match f.next(&buf, MAX) {
            Frame::NeedMore => assert!(f.searched <= buf.len()),
            other => {
                got = Some(other);
                break;
            }
        }
    }
    assert_eq!(got, Some(Frame::Message(INVITE.len())));
}

#[test]
fn every_framed_message_parses_with_its_body_where_the_frame_says() {
    for m in [INVITE, BYE] {
        let Frame::Message(n) = one(m) else {
            panic!("not framed")
        };
        let mut index = crate::HeaderIndex::new();
        let parsed = crate::parse(&m[..n], &mut index).expect("parses");
        assert_eq!(parsed.body_span().end as usize, n);
    }
}
