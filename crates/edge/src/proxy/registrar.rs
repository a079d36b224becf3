//! The built-in registrar in the pipeline (`flags = ["registrations"]`):
//! the local stage answers REGISTERs from outside ([`answer`]); the route
//! stage sends what the pool addresses to a registered address of record
//! to its best contact, at the flow its REGISTER came on ([`reach`]); the
//! keepalives that hold the phones' NAT bindings open, and their answers
//! ([`Worker::keepalives`], [`answered`]).

use super::checked::{Facts, Origin, RouteSet};
use super::reply::reply;
use super::{Edge, Outcome, Scratch, Worker};
use crate::flow::Flow;
use crate::registrar::{self, Binding, Verdict};
use crate::stats::Event;
use crate::token::{Conn, Outside};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sip::{HeaderName, Message, Method, NameAddr, Uri};
use std::time::Instant;

/// The Call-ID prefix of the edge's OPTIONS keepalives: their answers are
/// told apart from everything else by it.
const KEEPALIVE: &[u8] = b"ka.";
/// The branch prefix of the keepalives (RFC 3261 cookie, then `ka`: no
/// branch of a forwarded request starts so).
const KEEPALIVE_BRANCH: &[u8] = b"z9hG4bKka";

/// The local stage's part: a REGISTER from outside the pool, on an edge
/// with the built-in registrar, is answered here. `Ok` for everything
/// else.
#[inline]
pub(crate) fn answer(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    origin: &Origin<'_>,
    facts: &Facts<'_>,
    routes: &RouteSet<'_>,
    now: Instant,
) -> Result<(), Outcome> {
    let Some(r) = &edge.registrar else {
        return Ok(());
    };
    // Only what is for this edge: not a REGISTER passing through it along
    // a Route (from the pool, or to the outbound proxy), nor one in dialog.
    if m.method() != Method::Register
        || routes.len > routes.ours
        || facts.to_tag.is_some()
        || edge.destination_of(&origin.from).is_some()
    {
        return Ok(());
    }
    let from = origin.from;
    let flow = Outside {
        transport: from.transport,
        local: u8::try_from(from.local).unwrap_or(u8::MAX),
        remote: from.remote,
        conn: from.conn.map(|id| Conn {
            id,
            owner: edge.relay(),
        }),
    };
    let verdict = r.register(m, facts.call_id, facts.cseq, flow, now, s.target);
    // The answer is written while the Contact list is out of the worker
    // (`reply` borrows it whole), then the buffer goes back.
    let contacts = std::mem::take(s.target);
    let outcome = match verdict {
        Verdict::Bound => {
            s.stats.count(Event::Registered);
            let listed = [("Contact", &contacts[..])];
            let extra: &[(&str, &[u8])] = if contacts.is_empty() { &[] } else { &listed };
            reply(edge, s, m, origin, 200, "OK", extra)
        }
        Verdict::TooBrief(min) => {
            s.stats.count(Event::RegisterRefused);
            let mut v = Vec::new();
            sip::splice::write_num(&mut v, min);
            reply(
                edge,
                s,
                m,
                origin,
                423,
                "Interval Too Brief",
                &[("Min-Expires", &v)],
            )
        }
        Verdict::Refused(code, reason) => {
            s.stats.count(Event::RegisterRefused);
            reply(edge, s, m, origin, code, reason, &[])
        }
    };
    *s.target = contacts;
    Err(outcome)
}

/// The route stage's part: a new request from the pool whose
/// Request-URI is an address of record registered here goes to its best
/// contact (its URI, the new Request-URI, is left in `s.target`) at the
/// flow the contact registered from. `None` when the edge has no
/// registrar or the address of record no binding.
pub(crate) fn reach(edge: &Edge, s: &mut Scratch<'_>, uri: &Uri<'_>, now: Instant) -> Option<Flow> {
    let r = edge.registrar.as_ref().filter(|r| r.serves(uri))?;
    registrar::aor(uri, s.lookup_key);
    let found = r.best(s.lookup_key, now, s.target)?;
    flow_of(edge, &found)
}

/// Whether `m`, a response, answers one of the edge's OPTIONS keepalives;
/// if it does, the binding's count of unanswered ones starts over.
pub(crate) fn answered(edge: &Edge, m: &Message<'_>, from: &Flow) -> Option<Outcome> {
    let r = edge.registrar.as_ref()?;
    // The Call-ID first: it rules out every other response cheaply.
    let rest = m.call_id()?.strip_prefix(KEEPALIVE)?;
    let top = m.elements(HeaderName::Via).next()?;
    let via = sip::Via::parse(top.text).ok()?;
    if !via.branch?.starts_with(KEEPALIVE_BRANCH) {
        return None;
    }
    let counted = |e| Some(Outcome::Drop(e));
    let (mac, aor) = match rest.iter().position(|&c| c == b'.') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => return counted(Event::ResponseNotOurs),
    };
    // The address of record, then the keepalive's number.
    let mut parts = aor.split(|&c| c == b'.');
    let aor = URL_SAFE_NO_PAD
        .decode(parts.next().unwrap_or_default())
        .ok();
    let n = parts
        .next()
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| n.parse::<u32>().ok());
    let contact = m
        .first_value(HeaderName::To)
        .and_then(|v| NameAddr::parse(v).ok())
        .map(|n| n.uri);
    let (Some(aor), Some(contact), Some(n)) = (aor, contact, n) else {
        return counted(Event::ResponseNotOurs);
    };
    let genuine = edge.keys().link().iter().any(|k| {
        let mut expected = Vec::with_capacity(32);
        write_hex(
            &mut expected,
            &k.mac(&[b"keepalive", &len(&aor), &aor, &n.to_be_bytes(), contact]),
        );
        expected == mac
    });
    if genuine && r.answered(&aor, contact, n, from.remote) {
        counted(Event::KeepaliveAnswered)
    } else {
        counted(Event::ResponseNotOurs)
    }
}

/// A length before a MAC's variable part, so that no two (aor, contact)
/// pairs run together into the same bytes.
fn len(aor: &[u8]) -> [u8; 4] {
    u32::try_from(aor.len()).unwrap_or(u32::MAX).to_be_bytes()
}

fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

impl Worker {
    /// Sends the built-in registrar's keepalives due at `now` (the daemon
    /// calls it about every second): an OPTIONS or a CRLF pair to each
    /// contact whose interval has passed, on the flow it registered from,
    /// left in [`sends`](Self::sends); bindings whose phone stopped
    /// answering are removed. Returns how many keepalives were queued.
    /// Does nothing on an edge without the registrar.
    pub fn keepalives(&mut self, edge: &Edge, now: Instant) -> usize {
        let Some(r) = &edge.registrar else {
            return 0;
        };
        let (_, s) = self.split();
        // What is due is copied out under the store's locks (held for one
        // shard of it at a time); the messages are written after.
        let mut due: Vec<(Box<[u8]>, Binding)> = Vec::new();
        let lost = r.keepalives(now, &mut |aor, b| {
            // A connection another node holds is that node's to keep.
            if super::route::outside_owner(edge, &b.flow).is_none() {
                due.push((aor.into(), b.clone()));
            }
        });
        let options = r.settings().keepalive == crate::config::Keepalive::Options;
        let mut buf = Vec::new();
        let mut sent = 0;
        for (aor, b) in &due {
            let Some(flow) = flow_of(edge, &b.flow) else {
                continue;
            };
            buf.clear();
            if options {
                write_options(edge, &mut buf, aor, b, &flow);
            } else {
                buf.extend_from_slice(b"\r\n\r\n");
            }
            s.sends.push(&buf, flow);
            s.stats.count(Event::KeepaliveSent);
            sent += 1;
        }
        for _ in 0..lost {
            s.stats.count(Event::BindingLost);
        }
        self.trace_sends(edge);
        sent
    }
}

/// The flow a registered contact is reached at: the local address it
/// registered to, on a connection that connection only (pinned), relayed
/// when another node holds it.
fn flow_of(edge: &Edge, o: &Outside) -> Option<Flow> {
    let local = match super::route::outside_local(edge, o) {
        Some(l) => l,
        None => edge.local_for(o.transport, o.remote, 0)?,
    };
    Some(Flow {
        transport: o.transport,
        local,
        remote: o.remote,
        conn: o.conn.map(|c| c.id),
        reconnect: None,
        pinned: o.transport != crate::flow::Transport::Udp,
        owner: super::route::outside_owner(edge, o),
    })
}

/// An OPTIONS keepalive to binding `b` of `aor`: its Call-ID carries a MAC
/// over the address of record, the keepalive's number (its due time) and
/// the contact (which the answer's To repeats), the address of record and
/// the number, so any answer is matched to its binding without state and
/// cannot be forged without the cluster secret.
fn write_options(edge: &Edge, w: &mut Vec<u8>, aor: &[u8], b: &Binding, flow: &Flow) {
    let local = &edge.locals[flow.local];
    let sent_by = local.sent_by.as_bytes();
    let mac = edge
        .keys()
        .link()
        .first()
        .map(|k| {
            let n = b.next_keepalive.to_be_bytes();
            k.mac(&[b"keepalive", &len(aor), aor, &n, &b.contact])
        })
        .unwrap_or_default();
    w.extend_from_slice(b"OPTIONS ");
    w.extend_from_slice(&b.contact);
    w.extend_from_slice(b" SIP/2.0\r\nVia: SIP/2.0/");
    w.extend_from_slice(flow.transport.via_name());
    w.push(b' ');
    w.extend_from_slice(sent_by);
    w.extend_from_slice(b";branch=");
    w.extend_from_slice(KEEPALIVE_BRANCH);
    write_hex(w, &mac[..6]);
    w.push(b'.');
    sip::splice::write_num(w, b.next_keepalive);
    w.extend_from_slice(b";rport\r\nMax-Forwards: 70\r\nFrom: <sip:keepalive@");
    w.extend_from_slice(sent_by);
    w.extend_from_slice(b">;tag=");
    write_hex(w, &mac[6..10]);
    w.extend_from_slice(b"\r\nTo: <");
    w.extend_from_slice(&b.contact);
    w.extend_from_slice(b">\r\nCall-ID: ");
    w.extend_from_slice(KEEPALIVE);
    write_hex(w, &mac);
    w.push(b'.');
    w.extend_from_slice(URL_SAFE_NO_PAD.encode(aor).as_bytes());
    // A new Call-ID each time: a phone may take a repeated one for the
    // finished transaction it saw before, and stay silent.
    w.push(b'.');
    sip::splice::write_num(w, b.next_keepalive);
    w.extend_from_slice(b"\r\nCSeq: ");
    sip::splice::write_num(w, b.next_keepalive);
    w.extend_from_slice(b" OPTIONS\r\nContent-Length: 0\r\n\r\n");
}
