//! Where one message ends on a stream (TCP, TLS): RFC 3261 §18.3.
//!
//! A datagram is one message; a stream is bytes, and only the header
//! section's Content-Length says where a message ends. [`Framer::next`]
//! looks at the front of a connection's receive buffer and says what is
//! there: a whole message of n bytes, a keep-alive, not enough yet, or a
//! message whose end cannot be known (the connection must then close,
//! since nothing after it can be framed either).
//!
//! Keep-alives (RFC 5626 §3.5.1): a double CRLF is a ping, answered with
//! a single CRLF (the pong); a single CRLF between messages is a pong or
//! the leading line end RFC 3261 §7.5 says to ignore, answered with
//! nothing.
//!
//! Only the header lines' names and the one value framing needs are read
//! here; the message parser judges everything else.

/// What the front of a stream buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The first n bytes are one message (start line, headers, and
    /// exactly Content-Length octets of body).
    Message(usize),
    /// The first 4 bytes are a double-CRLF ping: answer with CRLF.
    Ping,
    /// The first 2 bytes are a single CRLF: consume them, answer nothing.
    KeepAlive,
    /// Nothing complete yet: read more and ask again.
    NeedMore,
    /// A message whose end cannot be known. `head` is the length of its
    /// header section (through the empty line) when that is complete, so
    /// that it can still be answered (400, 513); then the connection
    /// closes.
    Unframed {
        /// Why.
        why: Unframed,
        /// The bytes of the header section, when it is complete.
        head: Option<usize>,
    },
}

impl Frame {
    /// How many bytes at the front of the buffer this frame consumes
    /// (0 for [`Frame::NeedMore`] and [`Frame::Unframed`], after which
    /// nothing more is read).
    pub fn consumed(self) -> usize {
        match self {
            Frame::Message(n) => n,
            Frame::Ping => 4,
            Frame::KeepAlive => 2,
            Frame::NeedMore | Frame::Unframed { .. } => 0,
        }
    }
}

/// Why a stream message cannot be framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unframed {
    /// No Content-Length: mandatory on streams (RFC 3261 §18.3, §20.14).
    NoContentLength,
    /// A Content-Length that is not a number, or more than one.
    BadContentLength,
    /// The message (or its header section so far) is longer than the
    /// connection may buffer.
    TooLarge,
}

impl Unframed {
    /// The response a request framed so gets, with its reason phrase.
    pub fn answer(self) -> (u16, &'static str) {
        match self {
            Unframed::NoContentLength => (400, "Missing Content-Length"),
            Unframed::BadContentLength => (400, "Bad Content-Length"),
            Unframed::TooLarge => (513, "Message Too Large"),
        }
    }
}

/// The framing state of one connection: how far the search for the end of
/// the current header section has got, so that a client trickling bytes
/// costs a scan of each byte once, not of the whole buffer per read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Framer {
    searched: usize,
}

impl Framer {
    /// What the front of `buf` holds; `max` is the most bytes one message
    /// may take. After a frame that consumes bytes, the caller removes
    /// them from the front of its buffer before asking again.
    pub fn next(&mut self, buf: &[u8], max: usize) -> Frame {
        if buf.starts_with(b"\r\n") {
            self.searched = 0;
            return match buf.get(2..4) {
                Some(b"\r\n") => Frame::Ping,
                // "\r\n" or "\r\n\r": a ping may still be coming.
                None | Some([b'\r']) => Frame::NeedMore,
                Some(_) => Frame::KeepAlive,
            };
        }
        // Other white space before the start line belongs to the message
        // (the parser skips it, RFC 3261 §7.5): the head starts after it.
        let Some(first) = crate::message::start_of(buf) else {
            return if buf.len() >= max {
                Frame::Unframed {
                    why: Unframed::TooLarge,
                    head: None,
                }
            } else {
                Frame::NeedMore
            };
        };
        // Resume a little before where the last search stopped: the
        // empty line may straddle two reads.
        let from = self.searched.saturating_sub(3).clamp(first, buf.len());
        let Some(at) = memchr::memmem::find(&buf[from..], b"\r\n\r\n") else {
            self.searched = buf.len();
            if buf.len() >= max {
                return Frame::Unframed {
                    why: Unframed::TooLarge,
                    head: None,
                };
            }
            return Frame::NeedMore;
        };
        let head = from + at + 4;
        if head > max {
            self.searched = 0;
            return Frame::Unframed {
                why: Unframed::TooLarge,
                head: None,
            };
        }
        let length = match content_length(&buf[first..head - 2]) {
            Ok(n) => n,
            Err(why) => {
                self.searched = 0;
                return Frame::Unframed {
                    why,
                    head: Some(head),
                };
            }
        };
        let end = head.saturating_add(length);
        if end > max {
            self.searched = 0;
            return Frame::Unframed {
                why: Unframed::TooLarge,
                head: Some(head),
            };
        }
        if buf.len() < end {
            // Keep the header search where it is: it found the end.
            self.searched = head.saturating_sub(4);
            return Frame::NeedMore;
        }
        self.searched = 0;
        Frame::Message(end)
    }
}

/// The one Content-Length of a header section (its lines, each ending in
/// CRLF, without the empty line). Folded values are joined; `l` is the
/// compact form.
fn content_length(head: &[u8]) -> Result<usize, Unframed> {
    let mut found: Option<usize> = None;
    // Lines end in CRLF only, as the message parser reads them: a bare LF
    // is a byte of its line, never a line end that could hide a header.
    let mut lines = CrlfLines(head).peekable();
    // The start line names no header.
    lines.next();
    while let Some(line) = lines.next() {
        if line.first().is_some_and(|&c| c == b' ' || c == b'\t') {
            // A continuation of a header other than Content-Length.
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        // Trimmed as the message parser trims it: "l\n" names Content-Length too.
        let name = crate::lex::trim_end(&line[..colon]);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        // White space around the digits (folding included), none inside.
        let mut digits = 0usize;
        let mut ended = false;
        let mut value: u64 = 0;
        let mut line = &line[colon + 1..];
        loop {
            for &c in line {
                match c {
                    b'0'..=b'9' if !ended => {
                        digits += 1;
                        value = value
                            .checked_mul(10)
                            .and_then(|v| v.checked_add(u64::from(c - b'0')))
                            .ok_or(Unframed::BadContentLength)?;
                    }
                    b' ' | b'\t' => ended = digits > 0,
                    _ => return Err(Unframed::BadContentLength),
                }
            }
            // A folded value goes on on the next line.
            match lines.peek() {
                Some(next) if next.first().is_some_and(|&c| c == b' ' || c == b'\t') => {
                    line = lines.next().unwrap_or_default();
                    ended = digits > 0;
                }
                _ => break,
            }
        }
        if digits == 0 || found.is_some() {
            return Err(Unframed::BadContentLength);
        }
        found = Some(usize::try_from(value).map_err(|_| Unframed::BadContentLength)?);
    }
    found.ok_or(Unframed::NoContentLength)
}

/// The lines of a header section, split at CRLF (without it).
struct CrlfLines<'a>(&'a [u8]);

impl<'a> Iterator for CrlfLines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        let (line, rest) = match memchr::memmem::find(self.0, b"\r\n") {
            Some(i) => (&self.0[..i], &self.0[i + 2..]),
            None => (self.0, &self.0[..0]),
        };
        self.0 = rest;
        Some(line)
    }
}

#[cfg(test)]
mod tests;
