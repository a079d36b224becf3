//! The subject of a verified TLS client certificate, toward the pool, in
//! the header the edge names (`client_cert_header`). The runtime knows
//! which connection presented which certificate, so it writes the header
//! into every request that arrives on an accepted TLS connection
//! ([`tag_client`]: any copy the client sent is replaced, or removed when
//! it presented none); the forwarding stage removes the header from every
//! request from outside on any other flow ([`strip`]). So the pool sees
//! the header only as sipedge wrote it.

use sip::{HeaderIndex, HeaderName, Message, Splicer};

/// What one TLS connection's requests are rewritten with, kept from one
/// message to the next so that rewriting allocates nothing once warm.
#[derive(Default)]
pub struct ClientTagger {
    index: HeaderIndex,
    splicer: Splicer,
    out: Vec<u8>,
}

impl ClientTagger {
    /// `message` as the pipeline should see it: a request with every
    /// `name` header removed and, when `subject` is given, `name: subject`
    /// added after the start line; anything else (a response, what does
    /// not parse) as it is.
    pub fn tag<'a>(&'a mut self, message: &'a [u8], name: &str, subject: Option<&str>) -> &'a [u8] {
        let ClientTagger {
            index,
            splicer,
            out,
        } = self;
        if tag_client(message, name, subject, index, splicer, out) {
            out
        } else {
            message
        }
    }
}

/// [`ClientTagger::tag`] into `out`; `false` (nothing written) when the
/// message is not a request that parses.
fn tag_client(
    message: &[u8],
    name: &str,
    subject: Option<&str>,
    index: &mut HeaderIndex,
    sp: &mut Splicer,
    out: &mut Vec<u8>,
) -> bool {
    let Ok(m) = sip::parse(message, index) else {
        return false;
    };
    if !m.is_request() {
        return false;
    }
    sp.clear();
    strip(sp, &m, name);
    if let Some(subject) = subject {
        sp.insert_with(m.headers_start(), |w| {
            w.extend_from_slice(name.as_bytes());
            w.extend_from_slice(b": ");
            // A subject is the certificate's text: nothing in it may end
            // the line.
            w.extend(
                subject
                    .bytes()
                    .map(|b| if b.is_ascii_control() { b'?' } else { b }),
            );
            w.extend_from_slice(b"\r\n");
        });
    }
    out.clear();
    sp.write(message, message.len(), out);
    true
}

/// Removes every `name` header (case-insensitively) from `m`.
pub(crate) fn strip(sp: &mut Splicer, m: &Message<'_>, name: &str) {
    for h in m.headers() {
        if h.name == HeaderName::Other
            && m.buf()[h.name_span.range()].eq_ignore_ascii_case(name.as_bytes())
        {
            sp.remove(h.line.range());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = "MESSAGE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK-1\r\n\
        x-client-cert: forged\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\n\
        To: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\n\
        X-Client-Cert: forged too\r\nContent-Length: 2\r\n\r\nhi";

    #[test]
    fn the_subject_replaces_every_copy_the_client_sent() {
        let mut tagger = ClientTagger::default();
        let out = tagger.tag(
            REQUEST.as_bytes(),
            "X-Client-Cert",
            Some("CN=phone\r\nVia: evil"),
        );
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(!text.contains("forged"), "{text}");
        assert!(
            text.contains("\r\nX-Client-Cert: CN=phone??Via: evil\r\nVia: SIP/2.0/TLS"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\nhi"), "{text}");
        let mut index = HeaderIndex::new();
        let m = sip::parse(text.as_bytes(), &mut index).unwrap();
        assert_eq!(m.all(HeaderName::Via).count(), 1);

        let out = tagger.tag(REQUEST.as_bytes(), "x-client-cert", None);
        assert!(!String::from_utf8_lossy(out)
            .to_ascii_lowercase()
            .contains("x-client-cert"));
        let response = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK-1\r\n\r\n";
        assert_eq!(
            tagger.tag(response.as_bytes(), "X-Client-Cert", None),
            response.as_bytes()
        );
    }
}
