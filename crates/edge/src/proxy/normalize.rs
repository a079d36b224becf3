//! The normalize stage: a peer's rewrites (`[edge.peer.in]` on what it
//! sends toward the pool, `[edge.peer.out]` on what goes to it) as
//! splicer edits of the request being forwarded — numbers in the
//! Request-URI, From, To and P-Asserted-Identity users, their `tel:` or
//! `sip:` form, then the header policy. Responses get the header policy
//! only: their From and To are the request's, as the caller sent them.
//!
//! It is decided after security and before the route is sent on (the
//! request is known clean and its next hop known, which names the peer a
//! request from the pool goes to), and written by the send stage with the
//! proxy's own edits. An edge whose peers rewrite nothing never gets
//! here; a peer's rules allocate only when one rewrites a number.
//!
//! Dialogs are told apart by Call-ID and tags (RFC 3261 §12), so a
//! rewritten From or To is not restored in responses; the rules being
//! deterministic, a CANCEL or an ACK gets the same Request-URI as its
//! INVITE. The Request-URI of a request inside a dialog is the remote
//! target (a Contact), not a number dialled, and is left alone.

use super::checked::{Checked, Route};
use super::Edge;
use crate::config::Rewrites;
use crate::flow::{Flow, Transport};
use crate::header_policy::HeaderPolicy;
use crate::numbers::{Field, UriForm};
use sip::splice::write_ip;
use sip::{HeaderName, Message, NameAddr, Scheme, Splicer, Uri};
use std::net::{IpAddr, SocketAddr};

/// The rewrites for request `m` (checked as `c`) sent on `out`: those of
/// the peer it comes from when it goes into the pool, of the peer it goes
/// to when it goes out.
pub(crate) fn rewrites_for<'e>(
    edge: &'e Edge,
    m: &Message<'_>,
    c: &Checked<'_>,
    out: &Flow,
) -> Option<&'e Rewrites> {
    let peers = edge.peers();
    let peer = if c.outward {
        peers.at(out.transport, out.remote.ip())
    } else {
        peers.of(&c.origin.from, m)
    };
    peer.and_then(|i| peers.rewrites_of(i, c.outward))
}

/// Writes the rewrites of request `m` (checked as `c`) sent on `out` into
/// `sp`, whose host for a `sip:` form of a number is `host` (the edge's
/// address toward the next hop).
pub(crate) fn request(
    edge: &Edge,
    sp: &mut Splicer,
    m: &Message<'_>,
    c: &Checked<'_>,
    out: &Flow,
    host: &[u8],
) {
    let Some(r) = rewrites_for(edge, m, c, out) else {
        return;
    };
    if !r.numbers.is_empty() || r.tel.is_some() {
        // The number dialled: of a request outside a dialog, and of the
        // ACK of a non-2xx answer, which repeats its INVITE's (RFC 3261
        // §17.1.1.3). To a registered contact the whole Request-URI is
        // replaced.
        let acks_failure =
            matches!(c.route, Route::Dispatch { follow_up: true }) && c.method == sip::Method::Ack;
        if (!c.in_dialog || acks_failure) && !matches!(c.route, Route::Reach) {
            uri(
                sp,
                m,
                m.uri(),
                Field::Ruri,
                r,
                Host::Next(out.remote),
                false,
            );
        }
        for (name, field) in [(HeaderName::From, Field::From), (HeaderName::To, Field::To)] {
            if let Some(h) = m.first(name) {
                name_addr(sp, m, m.value(h), field, r, host);
            }
        }
        for h in m.headers().iter().filter(|h| is_pai(m, h)) {
            for e in m.elements_of(h) {
                name_addr(sp, m, e.text, Field::Pai, r, host);
            }
        }
    }
    r.headers.apply(sp, m);
}

/// The header policy of a response that came from `from` (`from_pool`: a
/// server of the pool sent it) and goes on `to`: the policy toward the
/// peer it goes to when it leaves the pool, of the peer it comes from
/// otherwise. Its callers ask [`crate::peers::Peers::rewrites`] first.
pub(crate) fn response_policy<'e>(
    edge: &'e Edge,
    from_pool: bool,
    from: (Transport, IpAddr),
    to: &Flow,
) -> Option<&'e HeaderPolicy> {
    let peers = edge.peers();
    let peer = if from_pool {
        peers.at(to.transport, to.remote.ip())
    } else {
        peers.at(from.0, from.1)
    }?;
    peers
        .rewrites_of(peer, from_pool)
        .map(|r| &r.headers)
        .filter(|h| !h.is_empty())
}

/// `P-Asserted-Identity` (RFC 3325), which has no compact form.
fn is_pai(m: &Message<'_>, h: &sip::Header) -> bool {
    h.name == HeaderName::Other
        && m.buf()[h.name_span.range()].eq_ignore_ascii_case(b"P-Asserted-Identity")
}

/// The host a `sip:` form of a number names.
enum Host<'a> {
    /// The next hop (for the Request-URI).
    Next(SocketAddr),
    /// The edge (for From, To, P-Asserted-Identity).
    Edge(&'a [u8]),
}

/// The number in the URI of a name-addr value (From, To, an element of
/// P-Asserted-Identity).
fn name_addr(sp: &mut Splicer, m: &Message<'_>, v: &[u8], field: Field, r: &Rewrites, host: &[u8]) {
    if let Ok(na) = NameAddr::parse(v) {
        uri(sp, m, na.uri, field, r, Host::Edge(host), !na.bracketed);
    }
}

/// Rewrites the number of URI `text` (a slice of `m`) for `field`: its
/// user by the rules, the URI around it when the form changes — in angle
/// brackets when `bracket` (a name-addr written without them, whose
/// parameters after the URI are the header's, not the new URI's).
fn uri(
    sp: &mut Splicer,
    m: &Message<'_>,
    text: &[u8],
    field: Field,
    r: &Rewrites,
    host: Host<'_>,
    bracket: bool,
) {
    let Ok(u) = Uri::parse(text) else {
        return;
    };
    let Some(user) = u.user else {
        return;
    };
    if u.scheme == Scheme::Sips {
        return;
    }
    let number = r.numbers.normalize(field, user);
    let now = number.as_deref().unwrap_or(user);
    let form = r.tel.filter(|f| match f {
        UriForm::Tel => u.scheme == Scheme::Sip && is_global(now),
        UriForm::Sip => u.scheme == Scheme::Tel,
    });
    match form {
        None => {
            if let Some(n) = &number {
                let at = m.offset_of(user);
                sp.replace(at..at + user.len(), n);
            }
        }
        Some(UriForm::Tel) => {
            let at = m.offset_of(text);
            sp.replace_with(at..at + text.len(), |w| {
                w.extend_from_slice(if bracket { b"<tel:" } else { b"tel:" });
                w.extend_from_slice(now);
                if bracket {
                    w.push(b'>');
                }
            });
        }
        Some(UriForm::Sip) => {
            let at = m.offset_of(text);
            sp.replace_with(at..at + text.len(), |w| {
                w.extend_from_slice(if bracket { b"<sip:" } else { b"sip:" });
                w.extend_from_slice(now);
                // A tel URI's parameters belong to the number (§19.1.6).
                if !u.params.is_empty() {
                    w.push(b';');
                    w.extend_from_slice(u.params);
                }
                w.push(b'@');
                match host {
                    Host::Next(a) => {
                        write_ip(w, a.ip(), true);
                        w.push(b':');
                        sip::splice::write_num(w, a.port());
                    }
                    Host::Edge(h) => w.extend_from_slice(h),
                }
                w.extend_from_slice(b";user=phone");
                if bracket {
                    w.push(b'>');
                }
            });
        }
    }
}

/// A global number (RFC 3966 §5.1.4): `+`, then digits and visual
/// separators, then perhaps parameters — what `tel:` can carry without a
/// phone-context.
fn is_global(n: &[u8]) -> bool {
    let digits = n.split(|&b| b == b';').next().unwrap_or(n);
    digits.len() > 1
        && digits[0] == b'+'
        && digits[1..]
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'(' | b')'))
}

#[cfg(test)]
mod tests {
    use super::is_global;

    #[test]
    fn only_global_numbers_take_the_tel_form() {
        assert!(is_global(b"+442079460000"));
        assert!(is_global(b"+1-212-555-0100;npdi"));
        assert!(!is_global(b"02079460000"));
        assert!(!is_global(b"+"));
        assert!(!is_global(b"+44alice"));
    }
}
