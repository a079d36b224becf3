//! Topology hiding (`topology_hiding = true`): what the edge sends toward
//! the outside names no server of the pool, and what comes back is
//! restored from the message alone — by any instance, as the flow tokens
//! are (DESIGN principle 1). Kamailio's `topoh` and OpenSIPS's
//! `topology_hiding` do the same job, with state or per-message masks.
//!
//! - **Contact.** A pool server's Contact, in a request or an answer
//!   going out, becomes `<sip:BLOB@EDGE>`: its URI sealed (a `contact`
//!   blob, see [`crate::token`]). An in-dialog request from outside to
//!   that Request-URI gets the server's Contact back.
//! - **Via.** The Vias of a request from the pool are taken off and
//!   sealed into a `th` parameter of the edge's own Via; the answer
//!   repeats that Via (RFC 3261 §8.2.6.2) and gets them back in its
//!   place. In both modes: nothing of it is kept in memory.
//! - **Record-Route.** The pool's entries are sealed into a `thr`
//!   parameter of the edge's own entry: those above it in an answer from
//!   the pool, those below it in a dialog-creating request from the pool.
//!   An in-dialog request from outside gets them back as Route headers
//!   after the edge's; an answer from outside to the pool's request gets
//!   them back in its Record-Route. Sealed nearest-to-the-edge first,
//!   which is the order both uses want.
//!
//! Not hidden: the SDP (media addresses are an RTP proxy's to anchor),
//! the Call-ID and tags the pool chose, and what headers name (a policy
//! of `[edge.peer.out]` removes those); nor the Contact of a REGISTER
//! the pool sends out (the registrar outside must reach that server, and
//! a request to a sealed Contact outside a dialog would be dispatched).

use super::addresses::Local;
use super::checked::Checked;
use super::route::is_here;
use super::Edge;
use crate::flow::Transport;
use sip::{Element, HeaderName, Message, NameAddr, Params, Splicer, Uri, Via};

/// What a blob holds, bound into its seal.
const CONTACT: &[u8] = b"hidden contact";
const VIAS: &[u8] = b"hidden vias";
const ROUTES: &[u8] = b"hidden routes";

/// Between the Vias or route entries of a blob: a byte no header value
/// holds, so a quoted parameter with a comma stays whole.
const SEP: u8 = 0;

/// The Via parameter with the pool's Vias.
const VIA_PARAM: &[u8] = b"th";
/// The Record-Route (and Route) URI parameter with the pool's entries.
const ROUTE_PARAM: &[u8] = b"thr";

/// Appends `plain` sealed as a `label` blob.
fn seal(edge: &Edge, label: &[u8], plain: &[u8], w: &mut Vec<u8>) -> bool {
    edge.keys
        .sealing()
        .seal_blob(label, edge.name.as_bytes(), plain, w)
}

/// A `label` blob opened, if it is one of this edge's.
fn open(edge: &Edge, label: &[u8], text: &[u8]) -> Option<Vec<u8>> {
    crate::token::open_blob(edge.keys.opening(), label, text, edge.name.as_bytes())
}

/// The `thr` parameter of route entry URI `u`.
fn route_param<'a>(u: &Uri<'a>) -> Option<&'a [u8]> {
    sip::params::uri_param(u.params, ROUTE_PARAM).flatten()
}

/// The value of parameter `name` in `params` (`;a=b;c`), if given one.
fn param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let at = params.iter().position(|&b| b == b';')?;
    Params::find(&params[at..], name).flatten()
}

// ---- requests -------------------------------------------------------

/// `;th=BLOB`: the Vias of request `m` (checked as `c`) sealed, the top
/// one with the received/rport the send stage would have written. Empty
/// when they do not fit a blob: then they are not hidden.
pub(crate) fn sealed_vias(edge: &Edge, m: &Message<'_>, c: &Checked<'_>) -> Vec<u8> {
    let top = &c.origin.top;
    let mut fix = Splicer::new();
    super::splices::fix_top_via(&mut fix, top, &c.origin.via, &c.origin.from);
    let mut plain = Vec::with_capacity(256);
    fix.write_range(m.buf(), top.span.range(), &mut plain);
    for e in m.elements(HeaderName::Via).skip(1) {
        plain.push(SEP);
        plain.extend_from_slice(e.text);
    }
    let mut w = Vec::with_capacity(plain.len() * 4 / 3 + 32);
    w.extend_from_slice(b";th=");
    if !seal(edge, VIAS, &plain, &mut w) {
        w.clear();
    }
    w
}

/// Takes every `name` line of `m` off (the Vias and Record-Route entries
/// of a request from the pool, sealed into the edge's own).
pub(crate) fn remove(sp: &mut Splicer, m: &Message<'_>, name: HeaderName) {
    for h in m.all(name) {
        sp.remove(h.line.range());
    }
}

/// `;thr=BLOB` for the Record-Route entries of a dialog-creating request
/// from the pool (all of them are the pool's, nearest to the edge first
/// as written); empty when it has none. [`remove`] takes them off.
pub(crate) fn request_routes(edge: &Edge, m: &Message<'_>) -> Vec<u8> {
    let entries: Vec<&[u8]> = m
        .elements(HeaderName::RecordRoute)
        .map(|e| e.text)
        .collect();
    sealed_routes(edge, &entries)
}

/// `;thr=BLOB` of `entries`, or empty.
fn sealed_routes(edge: &Edge, entries: &[&[u8]]) -> Vec<u8> {
    if entries.is_empty() {
        return Vec::new();
    }
    let plain = entries.join(&[SEP][..]);
    let mut w = Vec::with_capacity(plain.len() * 4 / 3 + 32);
    w.extend_from_slice(b";thr=");
    if !seal(edge, ROUTES, &plain, &mut w) {
        w.clear();
    }
    w
}

/// Every Contact of `m` (from the pool, going out on `local`) replaced by
/// the edge's address with the URI sealed in its user part.
pub(crate) fn hide_contacts(edge: &Edge, sp: &mut Splicer, m: &Message<'_>, local: &Local) {
    for e in m.elements(HeaderName::Contact) {
        let Ok(na) = NameAddr::parse(e.text) else {
            continue;
        };
        if na.uri == b"*" || na.uri.is_empty() {
            continue;
        }
        let at = m.offset_of(na.uri);
        let bracket = !na.bracketed;
        sp.replace_with(at..at + na.uri.len(), |w| {
            if bracket {
                w.push(b'<');
            }
            w.extend_from_slice(b"sip:");
            let mark = w.len();
            if seal(edge, CONTACT, na.uri, w) {
                w.push(b'@');
            } else {
                w.truncate(mark);
            }
            w.extend_from_slice(local.sent_by.as_bytes());
            if local.transport != Transport::Udp {
                w.extend_from_slice(b";transport=");
                w.extend_from_slice(local.transport.name().as_bytes());
            }
            if bracket {
                w.push(b'>');
            }
        });
    }
}

/// An in-dialog request from outside: its Request-URI, when it is one of
/// the edge's sealed Contacts, back to the pool server's, and the pool's
/// route entries sealed in the edge's own Route entries back as Route
/// headers after them.
pub(crate) fn restore_request(edge: &Edge, sp: &mut Splicer, m: &Message<'_>, c: &Checked<'_>) {
    let uri = &c.facts.uri;
    if let (Some(user), true) = (uri.user, is_here(edge, uri)) {
        if let Some(contact) = open(edge, CONTACT, user) {
            sp.replace(m.uri_span().range(), &contact);
        }
    }
    let routes = &c.routes;
    let mut restored: Option<Vec<u8>> = None;
    for u in c.facts.route_uris.iter().take(routes.ours).flatten() {
        if let Some(blob) = route_param(u) {
            restored = open(edge, ROUTES, blob);
            break;
        }
    }
    let (Some(entries), Some(Some(last))) =
        (restored, routes.entries.get(routes.ours.wrapping_sub(1)))
    else {
        return;
    };
    sp.insert_with(last.header.line.end as usize, |w| {
        w.extend_from_slice(b"Route: ");
        write_list(w, &entries);
        w.extend_from_slice(b"\r\n");
    });
}

/// A blob's items as a header's comma-separated list.
fn write_list(w: &mut Vec<u8>, items: &[u8]) {
    for (i, item) in items.split(|&b| b == SEP).enumerate() {
        if i > 0 {
            w.extend_from_slice(b", ");
        }
        w.extend_from_slice(item);
    }
}

// ---- answers --------------------------------------------------------

/// What a transaction relaying an answer needs to hide or restore.
#[derive(Clone, Copy)]
pub(crate) struct Answer<'e> {
    /// The edge (its keys and addresses).
    pub edge: &'e Edge,
    /// The address the answer leaves from.
    pub local: &'e Local,
    /// The answer came from the pool.
    pub from_pool: bool,
}

/// An answer from the pool going out on `local`: its Contact sealed, and
/// the pool's Record-Route entries above the edge's own folded into the
/// first of the edge's. The Contacts of an answer to a REGISTER are the
/// phone's own bindings, and those of a 3xx the targets it redirects to:
/// they are left as they are.
pub(crate) fn hide_answer(edge: &Edge, sp: &mut Splicer, m: &Message<'_>, local: &Local) {
    let register = m.cseq().is_ok_and(|c| c.method == b"REGISTER");
    let redirect = m.status().is_some_and(|s| (300..400).contains(&s));
    if !register && !redirect {
        hide_contacts(edge, sp, m, local);
    }
    let entries: Vec<Element<'_>> = m.elements(HeaderName::RecordRoute).collect();
    let first_ours = entries.iter().position(|e| {
        NameAddr::parse(e.text)
            .and_then(|na| na.parse_uri())
            .is_ok_and(|u| is_here(edge, &u))
    });
    let Some(n) = first_ours.filter(|&n| n > 0) else {
        return;
    };
    let Ok(na) = NameAddr::parse(entries[n].text) else {
        return;
    };
    // Nearest to the edge first: the entry just above its own.
    let above: Vec<&[u8]> = entries[..n].iter().rev().map(|e| e.text).collect();
    let thr = sealed_routes(edge, &above);
    super::splices::remove_leading(sp, &entries, n);
    sp.insert(m.offset_of(na.uri) + na.uri.len(), &thr);
}

/// An answer from outside whose top Via (the edge's, `top`) carries the
/// pool's Vias: those Vias, to be written in its place.
pub(crate) fn hidden_vias(edge: &Edge, top: &Element<'_>) -> Option<Vec<u8>> {
    let blob = param(top.text, VIA_PARAM)?;
    open(edge, VIAS, blob)
}

/// The first of `vias` (what [`hidden_vias`] returned), parsed: where the
/// answer goes next.
pub(crate) fn first_via(vias: &[u8]) -> Option<Via<'_>> {
    Via::parse(vias.split(|&b| b == SEP).next()?).ok()
}

/// An answer from outside going into the pool: the edge's Via (`top`)
/// replaced by the pool's `vias`, and the pool's Record-Route entries
/// sealed into the edge's entry written back after it.
pub(crate) fn restore_answer(
    edge: &Edge,
    sp: &mut Splicer,
    m: &Message<'_>,
    top: &Element<'_>,
    vias: &[u8],
) {
    sp.replace_with(top.span.range(), |w| write_list(w, vias));
    // After the last of the edge's own entries that follow the one with
    // the blob (two when the call changes transport or address).
    fn own<'a>(edge: &Edge, e: &Element<'a>) -> Option<Uri<'a>> {
        NameAddr::parse(e.text)
            .and_then(|na| na.parse_uri())
            .ok()
            .filter(|u| is_here(edge, u))
    }
    let mut entries = m.elements(HeaderName::RecordRoute).peekable();
    while let Some(e) = entries.next() {
        let Some(blob) = own(edge, &e).and_then(|u| route_param(&u)) else {
            continue;
        };
        let Some(restored) = open(edge, ROUTES, blob) else {
            return;
        };
        let mut last = e;
        while let Some(next) = entries.next_if(|n| own(edge, n).is_some()) {
            last = next;
        }
        sp.insert_with(last.span.end as usize, |w| {
            w.extend_from_slice(b", ");
            write_list(w, &restored);
        });
        return;
    }
}
