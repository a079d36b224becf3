//! The SIP message model of sipedge: a lazy, zero-copy parser that indexes
//! a receive buffer, value parsers for the headers a proxy acts on, and a
//! splicer that forwards a message by changing only the bytes it must.
//!
//! No I/O and no runtime: everything here is a function of bytes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod call_id;
pub mod compact;
pub mod cseq;
pub mod error;
pub mod framing;
pub mod host;
mod lex;
pub mod message;
pub mod name;
pub mod name_addr;
pub mod params;
pub mod splice;
pub mod uri;
pub mod via;
pub mod writer;

pub use cseq::CSeq;
pub use error::ParseError;
pub use framing::{Frame, Framer, Unframed};
pub use host::Host;
pub use message::{
    parse, Element, Header, HeaderIndex, Message, Method, Span, StartLine, MAX_HEADERS,
};
pub use name::HeaderName;
pub use name_addr::NameAddr;
pub use params::Params;
pub use splice::Splicer;
pub use uri::{Scheme, Uri};
pub use via::{Rport, Via};
pub use writer::Writer;
