//! Writing new messages (local replies, probes, tests): start line, header
//! lines, Content-Length and body, in one pass into a reusable buffer.

use crate::splice::write_num;

/// Builds one message into a byte buffer.
#[derive(Debug)]
pub struct Writer<'w> {
    out: &'w mut Vec<u8>,
}

impl<'w> Writer<'w> {
    /// Starts a request: `METHOD uri SIP/2.0`.
    pub fn request(out: &'w mut Vec<u8>, method: &[u8], uri: &[u8]) -> Writer<'w> {
        out.extend_from_slice(method);
        out.push(b' ');
        out.extend_from_slice(uri);
        out.extend_from_slice(b" SIP/2.0\r\n");
        Writer { out }
    }

    /// Starts a response: `SIP/2.0 code reason`.
    pub fn response(out: &'w mut Vec<u8>, code: u16, reason: &[u8]) -> Writer<'w> {
        out.extend_from_slice(b"SIP/2.0 ");
        write_num(out, code);
        out.push(b' ');
        out.extend_from_slice(reason);
        out.extend_from_slice(b"\r\n");
        Writer { out }
    }

    /// Adds `Name: value`.
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> &mut Self {
        self.header_with(name, |w| w.extend_from_slice(value))
    }

    /// Adds `Name: ` followed by whatever `f` writes.
    pub fn header_with(&mut self, name: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        self.out.extend_from_slice(name);
        self.out.extend_from_slice(b": ");
        f(self.out);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Copies a whole header line (with its CRLF) from another message.
    pub fn raw_line(&mut self, line: &[u8]) -> &mut Self {
        self.out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            self.out.extend_from_slice(b"\r\n");
        }
        self
    }

    /// Ends the header section with Content-Length and appends the body.
    pub fn finish(self, body: &[u8]) {
        self.out.extend_from_slice(b"Content-Length: ");
        write_num(self.out, body.len());
        self.out.extend_from_slice(b"\r\n\r\n");
        self.out.extend_from_slice(body);
    }
}
