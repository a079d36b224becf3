//! The compact/compress stage, last before send (DESIGN principle 5): what
//! an edge does to a message it sends in one direction — header names to
//! their compact forms (RFC 3261 §7.3.3), bodies compressed with
//! `Content-Encoding: deflate` or `gzip` (§20.12), or such bodies
//! decompressed for a peer that does not read them.
//!
//! It works on the finished message as the earlier stages wrote it, so
//! every kind of output (forwarded, relayed, answered locally, sent by a
//! transaction) goes through the same code; an edge that configures
//! nothing skips it without parsing anything.

use std::io::{Read, Write};

use crate::config::{BodyCoding, Coding};
use sip::compact::compact_names;
use sip::splice::write_num;
use sip::{HeaderIndex, HeaderName, Splicer};

/// One direction's settings, with the header names it keeps long.
#[derive(Clone, Debug, Default)]
pub struct Direction {
    coding: Coding,
    keep: Vec<HeaderName>,
}

impl Direction {
    /// A direction doing `coding`, never compacting `keep`.
    pub fn new(coding: Coding, keep: &[HeaderName]) -> Direction {
        Direction {
            coding,
            keep: keep.to_vec(),
        }
    }

    /// True when the direction changes nothing.
    pub fn is_identity(&self) -> bool {
        self.coding.is_identity()
    }
}

/// The reusable buffers of the stage (one per worker).
#[derive(Debug, Default)]
pub struct Encoder {
    index: HeaderIndex,
    splicer: Splicer,
    body: Vec<u8>,
    out: Vec<u8>,
}

impl Encoder {
    /// Rewrites `msg` for direction `d` into `msg` itself. Returns whether
    /// anything changed. A message that does not parse is left alone (the
    /// stages before only write messages that do).
    pub fn apply(&mut self, d: &Direction, msg: &mut Vec<u8>) -> bool {
        if d.is_identity() {
            return false;
        }
        let Encoder {
            index,
            splicer,
            body,
            out,
        } = self;
        let Ok(m) = sip::parse(msg, index) else {
            return false;
        };
        splicer.clear();
        let mut changed = false;
        // Header lines added below (Content-Encoding, Content-Length) go
        // before the empty line, compact when names are compacted.
        let at_end = m.headers_end();
        let short = |h: HeaderName| d.coding.compact && !d.keep.contains(&h);
        let encoding = m.first(HeaderName::ContentEncoding);
        let new_body: Option<&[u8]> = match d.coding.body {
            BodyCoding::Keep => None,
            BodyCoding::Deflate | BodyCoding::Gzip
                if encoding.is_none() && !m.body().is_empty() =>
            {
                body.clear();
                let gzip = d.coding.body == BodyCoding::Gzip;
                compress(m.body(), gzip, body).then_some(&body[..])
            }
            BodyCoding::Decompress => {
                let token = encoding.map(|h| m.value(h).trim_ascii());
                let gzip = match token {
                    Some(t) if t.eq_ignore_ascii_case(b"gzip") => Some(true),
                    Some(t) if t.eq_ignore_ascii_case(b"deflate") => Some(false),
                    _ => None,
                };
                body.clear();
                // What fits in one datagram beside the rest of the message.
                let room = super::MAX_DATAGRAM.saturating_sub(m.end() - m.body().len() + 16);
                match gzip {
                    Some(gzip) if inflate(m.body(), gzip, body, room) => Some(&body[..]),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(new) = new_body {
            changed = true;
            splicer.replace(m.body_span().range(), new);
            match (d.coding.body, encoding) {
                (BodyCoding::Decompress, Some(h)) => splicer.remove(h.line.range()),
                (coding, _) => splicer.insert_with(at_end, |w| {
                    w.extend_from_slice(if short(HeaderName::ContentEncoding) {
                        b"e: "
                    } else {
                        b"Content-Encoding: "
                    });
                    w.extend_from_slice(coding.name().as_bytes());
                    w.extend_from_slice(b"\r\n");
                }),
            }
            let lengths: Vec<_> = m.all(HeaderName::ContentLength).collect();
            match lengths.first() {
                Some(h) => splicer.replace_with(h.value.range(), |w| write_num(w, new.len())),
                None => splicer.insert_with(at_end, |w| {
                    w.extend_from_slice(if short(HeaderName::ContentLength) {
                        b"l: "
                    } else {
                        b"Content-Length: "
                    });
                    write_num(w, new.len());
                    w.extend_from_slice(b"\r\n");
                }),
            }
        }
        if d.coding.compact && compact_names(&m, splicer, |h| d.keep.contains(&h)) > 0 {
            changed = true;
        }
        if !changed {
            return false;
        }
        out.clear();
        splicer.write_message(&m, out);
        std::mem::swap(msg, out);
        true
    }
}

/// Compresses `input` into `out` (zlib format for deflate, RFC 1950, as
/// HTTP's and so SIP's `deflate` coding is; gzip, RFC 1952). `false` when
/// compression would not make the body smaller (it is then sent as it is).
fn compress(input: &[u8], gzip: bool, out: &mut Vec<u8>) -> bool {
    let level = flate2::Compression::default();
    let done = if gzip {
        let mut e = flate2::write::GzEncoder::new(std::mem::take(out), level);
        e.write_all(input).and_then(|()| e.finish())
    } else {
        let mut e = flate2::write::ZlibEncoder::new(std::mem::take(out), level);
        e.write_all(input).and_then(|()| e.finish())
    };
    match done {
        Ok(v) => {
            *out = v;
            out.len() < input.len()
        }
        Err(_) => false,
    }
}

/// Decompresses `input` into `out`; `false` when it is not valid data of
/// that coding or would inflate beyond `room` bytes. The caller passes
/// what fits in one datagram beside the rest of the message: a body that
/// would inflate to more is passed on compressed, and a zip bomb costs
/// this much work and no more.
fn inflate(input: &[u8], gzip: bool, out: &mut Vec<u8>, room: usize) -> bool {
    let limit = room as u64 + 1;
    let read = if gzip {
        flate2::read::GzDecoder::new(input)
            .take(limit)
            .read_to_end(out)
    } else {
        flate2::read::ZlibDecoder::new(input)
            .take(limit)
            .read_to_end(out)
    };
    read.is_ok() && out.len() <= room
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(len: usize) -> String {
        let mut s = String::from("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\n");
        let mut i = 0;
        while s.len() < len {
            s.push_str(&format!(
                "a=candidate:{i} 1 UDP 2130706431 192.0.2.1 {} typ host\r\n",
                4000 + i
            ));
            i += 1;
        }
        s
    }

    fn invite(body: &str, extra: &str) -> Vec<u8> {
        format!(
            "INVITE sip:b@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n\
             Call-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.1>\r\n{extra}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn parsed(msg: &[u8]) -> (Vec<(HeaderName, String)>, Vec<u8>) {
        let mut idx = HeaderIndex::new();
        let m = sip::parse(msg, &mut idx).expect("parses");
        let hs = m
            .headers()
            .iter()
            .map(|h| (h.name, String::from_utf8_lossy(m.value(h)).into_owned()))
            .collect();
        (hs, m.body().to_vec())
    }

    fn dir(compact: bool, body: BodyCoding) -> Direction {
        Direction::new(Coding { compact, body }, &[])
    }

    #[test]
    fn a_3kb_sdp_leaves_deflated_under_1300_bytes_and_inflates_back() {
        let body = sdp(3000);
        let mut msg = invite(&body, "");
        assert!(msg.len() > 3000);
        let mut enc = Encoder::default();
        assert!(enc.apply(&dir(true, BodyCoding::Deflate), &mut msg));
        assert!(msg.len() < 1300, "{} bytes", msg.len());
        let (hs, compressed) = parsed(&msg);
        assert!(hs.contains(&(HeaderName::ContentEncoding, "deflate".into())));
        let mut back = Vec::new();
        flate2::read::ZlibDecoder::new(&compressed[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body.as_bytes());
        // And sipedge's own decompression gives it back too, byte for byte.
        assert!(enc.apply(&dir(false, BodyCoding::Decompress), &mut msg));
        let (hs, plain) = parsed(&msg);
        assert_eq!(plain, body.as_bytes());
        assert!(!hs.iter().any(|(h, _)| *h == HeaderName::ContentEncoding));
        assert!(hs.contains(&(HeaderName::ContentLength, body.len().to_string())));
    }

    #[test]
    fn gzip_round_trips_and_compact_forms_are_used_for_added_lines() {
        let body = sdp(2000);
        let mut msg = invite(&body, "");
        let mut enc = Encoder::default();
        assert!(enc.apply(&dir(true, BodyCoding::Gzip), &mut msg));
        let text = String::from_utf8_lossy(&msg);
        assert!(text.contains("\r\ne: gzip\r\n"), "{text}");
        assert!(text.contains("\r\nl: "), "{text}");
        assert!(enc.apply(&dir(false, BodyCoding::Decompress), &mut msg));
        assert_eq!(parsed(&msg).1, body.as_bytes());
    }

    #[test]
    fn nothing_to_do_changes_nothing() {
        let mut enc = Encoder::default();
        // Identity; an empty body; a body already encoded; not compressed.
        let original = invite("", "");
        let mut msg = original.clone();
        assert!(!enc.apply(&Direction::default(), &mut msg));
        assert!(!enc.apply(&dir(false, BodyCoding::Deflate), &mut msg));
        assert!(!enc.apply(&dir(false, BodyCoding::Decompress), &mut msg));
        assert_eq!(msg, original);
        let mut encoded = invite(&sdp(500), "Content-Encoding: deflate\r\n");
        let before = encoded.clone();
        assert!(!enc.apply(&dir(false, BodyCoding::Gzip), &mut encoded));
        // A body that says deflate but is not: passed on as it is.
        assert!(!enc.apply(&dir(false, BodyCoding::Decompress), &mut encoded));
        assert_eq!(encoded, before);
    }

    /// An INVITE whose body is `n` bytes of `a`, deflated (raw bytes, not
    /// UTF-8), with Content-Encoding and Content-Length.
    fn deflated_invite(n: usize) -> Vec<u8> {
        let mut big = Vec::new();
        let mut e = flate2::write::ZlibEncoder::new(&mut big, flate2::Compression::best());
        e.write_all(&vec![b'a'; n]).unwrap();
        e.finish().unwrap();
        let head = invite("", "Content-Encoding: deflate\r\n");
        let cl = format!("Content-Length: {}", big.len());
        let mut msg = String::from_utf8_lossy(&head)
            .replace("Content-Length: 0", &cl)
            .into_bytes();
        msg.extend_from_slice(&big);
        msg
    }

    #[test]
    fn a_zip_bomb_is_not_inflated() {
        let mut msg = deflated_invite(1 << 20);
        let before = msg.clone();
        let mut enc = Encoder::default();
        assert!(!enc.apply(&dir(false, BodyCoding::Decompress), &mut msg));
        assert_eq!(msg, before);
    }

    #[test]
    fn a_body_is_inflated_only_when_the_message_still_fits_a_datagram() {
        let mut enc = Encoder::default();
        let mut fits = deflated_invite(60_000);
        assert!(enc.apply(&dir(false, BodyCoding::Decompress), &mut fits));
        assert!(fits.len() <= super::super::MAX_DATAGRAM);
        // 65,400 bytes of body alone fit a datagram; with the headers they
        // do not, so the body goes on compressed.
        let mut too_big = deflated_invite(65_400);
        let before = too_big.clone();
        assert!(!enc.apply(&dir(false, BodyCoding::Decompress), &mut too_big));
        assert_eq!(too_big, before);
    }
}
