//! Why a message or a value did not parse.

use std::fmt;

/// What was wrong, precise enough to become a 400 reason phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Only white space (a keep-alive), nothing to answer.
    Empty,
    /// Larger than any message this parser takes.
    TooLarge,
    /// The start line is neither a request line nor a status line.
    BadStartLine,
    /// A request line not of the form `Method SP Request-URI SP SIP/2.0`.
    BadRequestLine,
    /// A SIP version other than 2.0 (RFC 3261 §8.2.2 → 505).
    VersionNotSupported,
    /// A status code not of three digits from 100 to 699.
    BadStatusCode,
    /// A header line without a name or colon, or a continuation with nothing before it.
    BadHeaderLine,
    /// More header lines than the parser indexes.
    TooManyHeaders,
    /// The header section never ends.
    Truncated,
    /// A CR or LF in the start line or header section that is not part of
    /// a CRLF line end (see `message::parse`).
    BareLineEnd,
    /// Content-Length is not a number.
    BadContentLength,
    /// More than one Content-Length value.
    MultipleContentLength,
    /// Content-Length claims more body than the datagram holds.
    ContentLengthTooLarge,
    /// A URI that does not follow RFC 3261 §19.1 / RFC 3966.
    BadUri,
    /// A host with characters no host name or address may have.
    BadHost,
    /// A port that is not a number up to 65535.
    BadPort,
    /// A Via value not of the form `SIP/2.0/transport sent-by;params`.
    BadVia,
    /// A name-addr or addr-spec (From, To, Contact, Route...) that does not parse.
    BadNameAddr,
    /// A header parameter without a name, or an unterminated quoted value.
    BadParam,
    /// CSeq is not `number method` with a number below 2**32.
    BadCSeq,
    /// Max-Forwards is not a number from 0 to 255.
    BadMaxForwards,
}

impl ParseError {
    /// A reason phrase for a 400 response naming what was wrong.
    pub fn reason(self) -> &'static str {
        match self {
            ParseError::Empty => "Empty Message",
            ParseError::TooLarge => "Message Too Large",
            ParseError::BadStartLine => "Bad Start Line",
            ParseError::BadRequestLine => "Bad Request Line",
            ParseError::VersionNotSupported => "Version Not Supported",
            ParseError::BadStatusCode => "Bad Status Code",
            ParseError::BadHeaderLine => "Bad Header Line",
            ParseError::TooManyHeaders => "Too Many Headers",
            ParseError::Truncated => "Truncated Message",
            ParseError::BareLineEnd => "Line End Not CRLF",
            ParseError::BadContentLength => "Bad Content-Length",
            ParseError::MultipleContentLength => "Multiple Content-Length",
            ParseError::ContentLengthTooLarge => "Content-Length Larger Than Message",
            ParseError::BadUri => "Bad URI",
            ParseError::BadHost => "Bad Host",
            ParseError::BadPort => "Bad Port",
            ParseError::BadVia => "Bad Via",
            ParseError::BadNameAddr => "Bad Address",
            ParseError::BadParam => "Bad Parameter",
            ParseError::BadCSeq => "Bad CSeq",
            ParseError::BadMaxForwards => "Bad Max-Forwards",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}
