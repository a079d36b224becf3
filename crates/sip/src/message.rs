//! The message: start line, an index of header lines, and the body — all
//! as offsets into the receive buffer (nothing is copied).

use crate::cseq::CSeq;
use crate::error::ParseError;
use crate::lex;
use crate::name::HeaderName;
use crate::via::Via;

/// The largest message accepted: the largest UDP payload.
pub const MAX_MESSAGE: usize = 65_535;

/// The most header lines indexed; more is refused rather than grown without
/// bound (a 64 KB datagram of one-letter headers would otherwise cost 16k
/// index entries).
pub const MAX_HEADERS: usize = 256;

/// A byte range of the buffer a message was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from usize offsets (messages are at most [`MAX_MESSAGE`] long).
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// As a range for slicing.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// True when the span covers nothing.
    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

/// One header field as found in the buffer.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// The name, resolved from full or compact form.
    pub name: HeaderName,
    /// Where the name is written.
    pub name_span: Span,
    /// The value, without surrounding white space; may span folded lines.
    pub value: Span,
    /// The whole field, from the name to past the CRLF of its last line:
    /// what to cut to remove it.
    pub line: Span,
}

/// Reusable storage for a message's header index, so parsing allocates
/// nothing once it has grown to the usual header count.
#[derive(Debug, Default)]
pub struct HeaderIndex {
    entries: Vec<Header>,
}

impl HeaderIndex {
    /// An index with room for a typical message.
    pub fn new() -> HeaderIndex {
        HeaderIndex {
            entries: Vec::with_capacity(48),
        }
    }
}

/// Request methods the proxy treats specially; the rest are `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other,
}

impl Method {
    /// How many kinds there are (`Other` included): the size of a table
    /// indexed by `method as usize`.
    pub const COUNT: usize = Method::Other as usize + 1;

    /// Every kind, in declaration order (`ALL[m as usize] == m`).
    pub const ALL: [Method; Method::COUNT] = [
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Register,
        Method::Options,
        Method::Info,
        Method::Update,
        Method::Prack,
        Method::Subscribe,
        Method::Notify,
        Method::Refer,
        Method::Message,
        Method::Publish,
        Method::Other,
    ];

    /// The method as written on the wire; `OTHER` for the rest (a metric
    /// label must come from a bounded set, so unknown methods share one).
    pub fn name(self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other => "OTHER",
        }
    }

    /// Methods are case-sensitive (RFC 3261 §7.1).
    pub fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            _ => Method::Other,
        }
    }
}

/// The first line of a message.
#[derive(Clone, Copy, Debug)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP/2.0`
    Request {
        /// The method, if a well-known one.
        method: Method,
        /// Where the method is written.
        method_span: Span,
        /// Where the Request-URI is written.
        uri: Span,
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase`
    Response {
        /// 100 to 699.
        code: u16,
        /// The reason phrase (may be empty).
        reason: Span,
    },
}

/// A parsed message: offsets into `buf`, values parsed on demand.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    buf: &'a [u8],
    headers: &'a [Header],
    start: StartLine,
    start_line: Span,
    headers_end: usize,
    body: Span,
    content_length: Option<usize>,
}

/// Why a line of the start line or header section did not end well.
enum LineEnd {
    /// The buffer ends before the line does.
    Missing,
    /// A CR not followed by LF, or an LF not preceded by CR.
    Bare,
}

/// Returns (end of line content, start of next line) for the line at `at`.
///
/// Only CRLF ends a line (RFC 3261 §7: "each line ... terminated by a
/// carriage-return line-feed sequence"), and a CR or LF anywhere else in the
/// start line or header section makes the message malformed: sipedge
/// refuses it (400) rather than normalising it. The servers behind an edge
/// read such lines in different ways — some end a line at a bare LF or
/// CR, some take it as part of the value — so `Subject: a\nRoute: <…>` is
/// one header to one of them and two to another, and no rewriting by the
/// edge can know which meaning the sender wanted the server to see. Only a
/// message with none of them means the same to every reader, and senders
/// that use bare LF are rare enough that refusing them costs less than the
/// smuggling it prevents. Bodies are not lines: they are framed by
/// Content-Length and passed on as they are.
///
/// Here: a line ends at its LF, which must follow a CR; [`parse`] then
/// counts the CRs of the whole section in one pass, so that one standing
/// alone anywhere is found too.
fn line_at(buf: &[u8], at: usize) -> Result<(usize, usize), LineEnd> {
    let nl = memchr::memchr(b'\n', &buf[at..]).ok_or(LineEnd::Missing)? + at;
    if nl == at || buf[nl - 1] != b'\r' {
        return Err(LineEnd::Bare);
    }
    Ok((nl - 1, nl + 1))
}

impl From<LineEnd> for ParseError {
    fn from(e: LineEnd) -> ParseError {
        match e {
            LineEnd::Missing => ParseError::Truncated,
            LineEnd::Bare => ParseError::BareLineEnd,
        }
    }
}

/// Where a message's start line begins: after the blank lines, spaces and
/// NULs a sender or a keep-alive may put first. None: nothing but those.
/// Shared with anyone who must read the start line of a message that does
/// not parse, so both agree on what the message is.
pub fn start_of(buf: &[u8]) -> Option<usize> {
    buf.iter()
        .position(|&c| !matches!(c, b'\r' | b'\n' | b' ' | b'\t' | 0))
}

/// True when `line` (a start line without its line end) is recognisably a
/// request line, even one too broken to parse: a method token, a space,
/// and a last word naming a SIP version (any version, any case, RFC 3261
/// §7.1). A status line is not, nor are bytes that merely end like one
/// (`\xff\xfe 200 OK`): whoever answers what does not parse must be sure it
/// is not answering a garbled response.
pub fn is_request_line(line: &[u8]) -> bool {
    let line = line.trim_ascii_end();
    let Some(sp) = memchr::memchr(b' ', line) else {
        return false;
    };
    let last = line.rsplit(|&c| c == b' ').next().unwrap_or_default();
    lex::all_token(&line[..sp]) && last.len() > 4 && last[..4].eq_ignore_ascii_case(b"SIP/")
}

/// Parses `buf` into a message, filling `index` with its header lines.
///
/// Framing follows RFC 3261 §18.3 for datagrams: the body is Content-Length
/// octets after the empty line (octets beyond it are ignored, RFC 4475
/// §3.1.1.8), or the rest of the datagram when there is no Content-Length.
/// Leading CRLFs are skipped (§7.5). Every line of the start line and the
/// header section must end in CRLF, with no other CR or LF in it
/// ([`ParseError::BareLineEnd`]; why: `line_at`).
pub fn parse<'a>(buf: &'a [u8], index: &'a mut HeaderIndex) -> Result<Message<'a>, ParseError> {
    index.entries.clear();
    if buf.len() > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    let first = start_of(buf).ok_or(ParseError::Empty)?;
    let (sl_end, mut at) = line_at(buf, first)?;
    let mut lines = 1;
    let start = parse_start_line(buf, first, sl_end)?;
    let start_line = Span::new(first, sl_end);

    let entries = &mut index.entries;
    let headers_end;
    let body_start;
    loop {
        // RFC 3261 §7: every line ends in CRLF and the empty line must be
        // present even without a body. A datagram that ends inside its
        // header section was cut: answering it is right, forwarding a
        // patched-up copy is not.
        if at >= buf.len() {
            return Err(ParseError::Truncated);
        }
        let (le, next) = line_at(buf, at)?;
        lines += 1;
        if le == at {
            headers_end = at;
            body_start = next;
            break;
        }
        let c = buf[at];
        if c == b' ' || c == b'\t' {
            let last = entries.last_mut().ok_or(ParseError::BadHeaderLine)?;
            let content = lex::trim_end(&buf[at..le]);
            if !content.iter().all(|&c| c == b' ' || c == b'\t') {
                last.value.end = (at + content.len()) as u32;
            }
            last.line.end = next as u32;
            at = next;
            continue;
        }
        let colon = memchr::memchr(b':', &buf[at..le]).ok_or(ParseError::BadHeaderLine)? + at;
        let name = lex::trim_end(&buf[at..colon]);
        if !lex::all_token(name) {
            return Err(ParseError::BadHeaderLine);
        }
        let mut vs = colon + 1;
        while vs < le && (buf[vs] == b' ' || buf[vs] == b'\t') {
            vs += 1;
        }
        let ve = at + (colon - at) + 1 + lex::trim_end(&buf[colon + 1..le]).len();
        if entries.len() >= MAX_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
        entries.push(Header {
            name: HeaderName::lookup(name),
            name_span: Span::new(at, at + name.len()),
            value: Span::new(vs, ve.max(vs)),
            line: Span::new(at, next),
        });
        at = next;
    }

    // Every line ended in CRLF: any other CR stands alone.
    if memchr::memchr_iter(b'\r', &buf[first..body_start]).count() != lines {
        return Err(ParseError::BareLineEnd);
    }

    let mut content_length = None;
    for h in entries
        .iter()
        .filter(|h| h.name == HeaderName::ContentLength)
    {
        if content_length.is_some() {
            return Err(ParseError::MultipleContentLength);
        }
        let v = lex::trim(&buf[h.value.range()]);
        let n = lex::parse_u64(v).ok_or(ParseError::BadContentLength)?;
        content_length = Some(usize::try_from(n).map_err(|_| ParseError::BadContentLength)?);
    }
    let body_end = match content_length {
        Some(n) => {
            if n > buf.len() - body_start {
                return Err(ParseError::ContentLengthTooLarge);
            }
            body_start + n
        }
        None => buf.len(),
    };
    Ok(Message {
        buf,
        headers: &index.entries,
        start,
        start_line,
        headers_end,
        body: Span::new(body_start, body_end),
        content_length,
    })
}

fn parse_start_line(buf: &[u8], start: usize, end: usize) -> Result<StartLine, ParseError> {
    let line = &buf[start..end];
    let sp1 = line
        .iter()
        .position(|&c| c == b' ')
        .ok_or(ParseError::BadStartLine)?;
    let first = &line[..sp1];
    if first.len() >= 4 && first[..4].eq_ignore_ascii_case(b"SIP/") {
        if !first.eq_ignore_ascii_case(b"SIP/2.0") {
            return Err(ParseError::BadStartLine);
        }
        let rest = &line[sp1 + 1..];
        let code_end = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
        let code = &rest[..code_end];
        if code.len() != 3 {
            return Err(ParseError::BadStatusCode);
        }
        let code = lex::parse_u64(code).ok_or(ParseError::BadStatusCode)? as u16;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStatusCode);
        }
        let reason_start = start + sp1 + 1 + (code_end + 1).min(rest.len());
        return Ok(StartLine::Response {
            code,
            reason: Span::new(reason_start, end),
        });
    }
    if !lex::all_token(first) {
        return Err(ParseError::BadRequestLine);
    }
    let rest = &line[sp1 + 1..];
    let sp2 = rest
        .iter()
        .position(|&c| c == b' ')
        .ok_or(ParseError::BadRequestLine)?;
    let uri = &rest[..sp2];
    if uri.is_empty() || uri.iter().any(|&c| c <= b' ' || c == 0x7f) {
        return Err(ParseError::BadRequestLine);
    }
    let version = &rest[sp2 + 1..];
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        let is_other_version = version.len() > 4
            && version[..4].eq_ignore_ascii_case(b"SIP/")
            && version[4..]
                .iter()
                .all(|&c| c.is_ascii_digit() || c == b'.')
            && version[4..].contains(&b'.');
        return Err(if is_other_version {
            ParseError::VersionNotSupported
        } else {
            ParseError::BadRequestLine
        });
    }
    let uri_start = start + sp1 + 1;
    Ok(StartLine::Request {
        method: Method::from_bytes(first),
        method_span: Span::new(start, start + sp1),
        uri: Span::new(uri_start, uri_start + sp2),
    })
}

/// One comma-separated value of a multi-value header (Via, Route, Contact...).
#[derive(Clone, Copy, Debug)]
pub struct Element<'a> {
    /// The header line it belongs to.
    pub header: &'a Header,
    /// The element in the message buffer, without surrounding white space.
    pub span: Span,
    /// The element's bytes.
    pub text: &'a [u8],
    /// True when it is the only element of its header line.
    pub alone: bool,
}

impl<'a> Message<'a> {
    /// The buffer the message was parsed from.
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    /// The start line.
    pub fn start_line(&self) -> StartLine {
        self.start
    }

    /// The start line's bytes, without its CRLF.
    pub fn start_line_span(&self) -> Span {
        self.start_line
    }

    /// True for requests.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The method of a request (`Other` for responses and unknown methods).
    pub fn method(&self) -> Method {
        match self.start {
            StartLine::Request { method, .. } => method,
            StartLine::Response { .. } => Method::Other,
        }
    }

    /// The method as written (empty for responses).
    pub fn method_bytes(&self) -> &'a [u8] {
        match self.start {
            StartLine::Request { method_span, .. } => &self.buf[method_span.range()],
            StartLine::Response { .. } => b"",
        }
    }

    /// The Request-URI as written (empty for responses).
    pub fn uri(&self) -> &'a [u8] {
        &self.buf[self.uri_span().range()]
    }

    /// Where the Request-URI is written (empty for responses).
    pub fn uri_span(&self) -> Span {
        match self.start {
            StartLine::Request { uri, .. } => uri,
            StartLine::Response { .. } => Span::default(),
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Every header line, in order.
    pub fn headers(&self) -> &'a [Header] {
        self.headers
    }

    /// A header's value, without surrounding white space.
    pub fn value(&self, h: &Header) -> &'a [u8] {
        lex::trim(&self.buf[h.value.range()])
    }

    /// The first header line of that name.
    pub fn first(&self, name: HeaderName) -> Option<&'a Header> {
        self.headers.iter().find(|h| h.name == name)
    }

    /// The value of the first header line of that name.
    pub fn first_value(&self, name: HeaderName) -> Option<&'a [u8]> {
        self.first(name).map(|h| self.value(h))
    }

    /// Every header line of that name, in order.
    pub fn all(&self, name: HeaderName) -> impl Iterator<Item = &'a Header> + 'a {
        self.headers.iter().filter(move |h| h.name == name)
    }

    /// How many header lines have that name.
    pub fn count(&self, name: HeaderName) -> usize {
        self.all(name).count()
    }

    /// Every comma-separated value of every header line of that name, in
    /// order — the list view RFC 3261 §7.3.1 says is equivalent to one line.
    pub fn elements(&self, name: HeaderName) -> impl Iterator<Item = Element<'a>> + 'a {
        let buf = self.buf;
        self.all(name).flat_map(move |h| Elements::new(buf, h))
    }

    /// The comma-separated values of one header line.
    pub fn elements_of(&self, h: &'a Header) -> impl Iterator<Item = Element<'a>> + 'a {
        Elements::new(self.buf, h)
    }

    /// The body (Content-Length octets, or the rest of the datagram).
    pub fn body(&self) -> &'a [u8] {
        &self.buf[self.body.range()]
    }

    /// Where the body is.
    pub fn body_span(&self) -> Span {
        self.body
    }

    /// Offset of the first header line (just past the start line's CRLF).
    pub fn headers_start(&self) -> usize {
        self.headers
            .first()
            .map_or(self.headers_end, |h| h.line.start as usize)
    }

    /// Offset of the empty line ending the header section: where a header
    /// appended at the end goes.
    pub fn headers_end(&self) -> usize {
        self.headers_end
    }

    /// Offset one past the message: octets beyond (RFC 4475 §3.1.1.8) are not part of it.
    pub fn end(&self) -> usize {
        self.body.end as usize
    }

    /// The Content-Length value, if the header is present.
    pub fn content_length(&self) -> Option<usize> {
        self.content_length
    }

    /// The Call-ID value.
    pub fn call_id(&self) -> Option<&'a [u8]> {
        self.first_value(HeaderName::CallId)
    }

    /// The CSeq, parsed.
    pub fn cseq(&self) -> Result<CSeq<'a>, ParseError> {
        CSeq::parse(
            self.first_value(HeaderName::CSeq)
                .ok_or(ParseError::BadCSeq)?,
        )
    }

    /// Max-Forwards, if present; 0 to 255 (RFC 3261 §20.22).
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        match self.first_value(HeaderName::MaxForwards) {
            None => Ok(None),
            Some(v) => lex::parse_u64(v)
                .and_then(|n| u8::try_from(n).ok())
                .map(Some)
                .ok_or(ParseError::BadMaxForwards),
        }
    }

    /// The topmost Via value, parsed, with where it is.
    pub fn top_via(&self) -> Result<(Element<'a>, Via<'a>), ParseError> {
        let e = self
            .elements(HeaderName::Via)
            .next()
            .ok_or(ParseError::BadVia)?;
        Ok((e, Via::parse(e.text)?))
    }

    /// The offset of `sub` in the buffer; `sub` must be a slice of it.
    pub fn offset_of(&self, sub: &[u8]) -> usize {
        (sub.as_ptr() as usize).saturating_sub(self.buf.as_ptr() as usize)
    }
}

/// Splits one header line into its comma-separated elements.
struct Elements<'a> {
    buf: &'a [u8],
    header: &'a Header,
    pos: usize,
    end: usize,
    first: bool,
}

impl<'a> Elements<'a> {
    fn new(buf: &'a [u8], header: &'a Header) -> Elements<'a> {
        Elements {
            buf,
            header,
            pos: header.value.start as usize,
            end: header.value.end as usize,
            first: true,
        }
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Element<'a>;
    fn next(&mut self) -> Option<Element<'a>> {
        if self.pos > self.end {
            return None;
        }
        let value = &self.buf[..self.end];
        // Fast path: no quote or bracket before the next comma.
        let comma = match memchr::memchr3(b',', b'"', b'<', &value[self.pos..]) {
            None => self.end,
            Some(i) if value[self.pos + i] == b',' => self.pos + i,
            Some(_) => lex::find_unquoted(value, b',', self.pos).unwrap_or(self.end),
        };
        let raw = &self.buf[self.pos..comma];
        let lead = raw.len() - lex::trim_start(raw).len();
        let text = lex::trim(raw);
        let start = self.pos + lead;
        let alone = self.first && comma == self.end;
        self.first = false;
        self.pos = comma + 1;
        Some(Element {
            header: self.header,
            span: Span::new(start, start + text.len()),
            text,
            alone,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &[u8]) -> Result<Vec<(HeaderName, Vec<u8>)>, ParseError> {
        let mut index = HeaderIndex::new();
        let m = parse(text, &mut index)?;
        Ok(m.headers()
            .iter()
            .map(|h| (h.name, m.value(h).to_vec()))
            .collect())
    }

    #[test]
    fn every_method_has_its_index_and_reads_back_from_its_name() {
        for (i, m) in Method::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i);
            if *m != Method::Other {
                assert_eq!(Method::from_bytes(m.name().as_bytes()), *m);
            }
        }
    }

    #[test]
    fn request_lines_are_recognised_even_broken() {
        for yes in [
            &b"INVITE sip:a@b SIP/2.0"[..],
            b"OPTIONS sip:a@b sip/7.0",
            b"INVITE  sip:a@b ; lr  SIP/2.0  ",
            b"NEWMETHOD <sip:a@b> SIP/2.0",
        ] {
            assert!(is_request_line(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"\xff\xfe 200 OK"[..],
            b"SIP/2.0 200 OK",
            b"200 OK",
            b"XIP/2.0 200 OK",
            b"INVITE",
            b"INVITE sip:a@b SIP/",
            b"IN\x01VITE sip:a@b SIP/2.0",
            b"",
        ] {
            assert!(!is_request_line(no), "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn only_crlf_ends_a_line() {
        let ok = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: a\r\nCall-ID: x\r\n\r\n";
        assert_eq!(parsed(ok).map(|h| h.len()), Ok(2));
        // A server reading bare LF as a line end would see a Route here, one
        // reading only CRLF a single Subject: neither may be forwarded.
        for smuggled in [
            &b"OPTIONS sip:a@b SIP/2.0\r\nSubject: a\nRoute: <sip:evil;lr>\r\n\r\n"[..],
            b"OPTIONS sip:a@b SIP/2.0\r\nSubject: a\rRoute: <sip:evil;lr>\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\nCall-ID: x\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\n\r\n\r\n",
            b"SIP/2.0 200 OK\rVia: SIP/2.0/UDP h\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\tfolded\n\r\n",
        ] {
            assert_eq!(
                parsed(smuggled),
                Err(ParseError::BareLineEnd),
                "{}",
                String::from_utf8_lossy(smuggled)
            );
        }
        // Folding is CRLF followed by white space; the body is not lines.
        let folded = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: a\r\n b\r\n\r\nx\ny\rz";
        assert_eq!(parsed(folded).map(|h| h.len()), Ok(1));
        // Blank lines before the start line (RFC 3261 §7.5) are not lines
        // of the message, whatever ends them.
        let lead = b"\n\r\n\rOPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n";
        assert_eq!(parsed(lead).map(|h| h.len()), Ok(1));
        // Cut short: truncated, not bare.
        let cut = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r";
        assert_eq!(parsed(cut), Err(ParseError::Truncated));
    }
}
