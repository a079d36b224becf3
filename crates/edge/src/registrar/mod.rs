//! The built-in registrar (`flags = ["registrations"]`, the seeds'
//! "Registrations to AnyReg"): the edge answers REGISTER itself, RFC 3261
//! §10.3, keeps each contact with the flow its REGISTER came on, routes
//! what the pool sends to an address of record to its best contact, and
//! keeps the phones' NAT bindings open with keepalives.
//!
//! Sans-IO like the rest of the core: REGISTER in, verdict and Contact
//! list out ([`Registrar::register`]); which contact a request goes to
//! ([`Registrar::best`]); which keepalives are due
//! ([`Registrar::keepalives`]). The bindings live in a [`BindingStore`],
//! in memory on one node ([`Memory`]).
//!
//! **One contact per request, the highest q.** A stateless edge keeps no
//! transaction to gather the answers of parallel branches (RFC 3261
//! §16.7), so a request goes to the contact with the highest q-value, the
//! most recently registered among equals; the others are the phone's
//! fallbacks for when it re-registers.
//!
//! **Who may register.** The registrar does not authenticate: it takes
//! REGISTERs only from the networks `[edge.registrar] allow` names (403
//! for others). Digest authentication belongs to the pool's servers; an
//! operator who needs it there uses the registration proxy instead (the
//! flag off: REGISTER goes to the pool with a Path).

pub mod shared;
pub mod store;

pub use shared::{Outbox, Record};
pub use store::{Binding, BindingStore, Keep, Memory};

use crate::config;
use crate::token::Outside;
use sip::{HeaderName, Message, NameAddr, Scheme, Uri};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// The most Contact entries one REGISTER may carry; more is refused (400)
/// before anything is stored.
const MAX_CONTACTS_PER_REQUEST: usize = 16;

/// The built-in registrar of one edge: its settings and its bindings.
/// A reload builds a new one that keeps the bindings and the clock.
#[derive(Debug)]
pub struct Registrar {
    cfg: config::Registrar,
    store: Arc<dyn BindingStore>,
    /// What REGISTERs changed here, for the cluster (kept across reloads).
    outbox: Arc<Outbox>,
    epoch: Instant,
}

/// What a REGISTER gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 200 OK: the Contact header value (the bindings now held, each with
    /// the seconds it has left) is in the caller's buffer; empty when none.
    Bound,
    /// 423 Interval Too Brief, with this Min-Expires (§10.3 step 7).
    TooBrief(u32),
    /// Refused: code and reason phrase.
    Refused(u16, &'static str),
}

/// One Contact entry of a REGISTER.
struct Entry<'a> {
    uri: Uri<'a>,
    text: &'a [u8],
    expires: u32,
    q: u16,
}

impl Registrar {
    /// The registrar of an edge configured with `cfg`, its clock counting
    /// from `epoch`; `previous` is the one a reload replaces (its bindings
    /// and clock are kept).
    pub fn new(cfg: &config::Registrar, previous: Option<&Registrar>, epoch: Instant) -> Registrar {
        Registrar {
            cfg: cfg.clone(),
            store: previous.map_or_else(
                || Arc::new(Memory::default()) as Arc<dyn BindingStore>,
                |p| Arc::clone(&p.store),
            ),
            outbox: previous.map_or_else(Arc::default, |p| Arc::clone(&p.outbox)),
            epoch: previous.map_or(epoch, |p| p.epoch),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &config::Registrar {
        &self.cfg
    }

    /// The bindings.
    pub fn store(&self) -> &dyn BindingStore {
        &*self.store
    }

    /// `now` on the registrar's clock, in whole seconds.
    pub fn secs(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX)
    }

    /// Whether REGISTERs from `source` are taken (`allow`).
    pub fn allows(&self, source: IpAddr) -> bool {
        let source = match source {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(source, IpAddr::V4),
            v4 => v4,
        };
        self.cfg.allow.iter().any(|n| n.contains(&source))
    }

    /// Whether the domain of `u` is one the registrar keeps addresses of
    /// record for (`domains`; any when none is configured).
    pub fn serves(&self, u: &Uri<'_>) -> bool {
        self.cfg.domains.is_empty()
            || self
                .cfg
                .domains
                .iter()
                .any(|d| d.as_bytes().eq_ignore_ascii_case(u.host_text))
    }

    /// Handles a REGISTER (RFC 3261 §10.3) with Call-ID `call_id` and CSeq
    /// number `cseq` that came on `flow`: checks it, applies
    /// all its changes or none, and on success writes the Contact value of
    /// the 200 into `contacts`.
    pub fn register(
        &self,
        m: &Message<'_>,
        call_id: &[u8],
        cseq: u32,
        flow: Outside,
        now: Instant,
        contacts: &mut Vec<u8>,
    ) -> Verdict {
        contacts.clear();
        if !self.allows(flow.remote.ip()) {
            return Verdict::Refused(403, "Forbidden");
        }
        let mut key = Vec::new();
        match to_uri(m) {
            Some(u) if matches!(u.scheme, Scheme::Sip | Scheme::Sips) && self.serves(&u) => {
                aor(&u, &mut key)
            }
            Some(_) => return Verdict::Refused(404, "Not Found"),
            None => return Verdict::Refused(400, "Bad To"),
        }
        let header_expires = m.first_value(HeaderName::Expires).map(number);
        let (star, entries) = match self.contacts(m, header_expires) {
            Ok(x) => x,
            Err(v) => return v,
        };
        if star && header_expires != Some(Some(0)) {
            return Verdict::Refused(400, "Invalid Wildcard");
        }
        // 423 before anything changes: the request is refused whole.
        if entries
            .iter()
            .any(|e| e.expires != 0 && e.expires < self.cfg.min_expires)
        {
            return Verdict::TooBrief(self.cfg.min_expires);
        }
        let now_s = self.secs(now);
        let call_id = Binding::call_id_hash(call_id);
        let mut verdict = Verdict::Bound;
        self.store.update(&key, &mut |list| {
            list.retain(|b| b.expires > now_s);
            verdict = self.apply(list, star, &entries, call_id, cseq, flow, now_s);
            if verdict == Verdict::Bound {
                write_contacts(list, now_s, contacts);
            }
        });
        if verdict == Verdict::Bound {
            self.outbox.note(&key);
        }
        verdict
    }

    /// The addresses of record REGISTERs changed here, for the cluster.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// What to add to a time on this registrar's clock to make it Unix
    /// seconds, given that the Unix time at `now` is `unix_s`.
    pub fn to_unix(&self, now: Instant, unix_s: u64) -> i64 {
        i64::try_from(unix_s).unwrap_or(i64::MAX) - i64::from(self.secs(now))
    }

    /// The live bindings of `aor` as the cluster stores them.
    pub fn export(&self, aor: &[u8], now: Instant, to_unix: i64) -> Vec<Record> {
        let now = self.secs(now);
        let mut out = Vec::new();
        self.store.read(aor, &mut |list| {
            out = list
                .iter()
                .filter(|b| b.expires > now)
                .filter_map(|b| Record::of(b, to_unix))
                .collect();
        });
        out
    }

    /// Replaces the bindings of `aor` with what another node of the
    /// cluster stored (none: the address of record is gone).
    pub fn import(&self, aor: &[u8], records: &[Record], to_unix: i64) {
        self.store.update(aor, &mut |list| {
            *list = records.iter().filter_map(|r| r.binding(to_unix)).collect();
        });
    }

    /// The Contact entries of `m` (`true` for `*`), each with the expiry
    /// it asks for capped at `max_expires`.
    fn contacts<'a>(
        &self,
        m: &Message<'a>,
        header_expires: Option<Option<u32>>,
    ) -> Result<(bool, Vec<Entry<'a>>), Verdict> {
        let mut star = false;
        let mut entries = Vec::new();
        for e in m.elements(HeaderName::Contact) {
            if e.text == b"*" {
                star = true;
                continue;
            }
            if entries.len() == MAX_CONTACTS_PER_REQUEST {
                return Err(Verdict::Refused(400, "Too Many Contacts"));
            }
            let bad = Verdict::Refused(400, "Bad Contact");
            let n = NameAddr::parse(e.text).map_err(|_| bad)?;
            let uri = Uri::parse(n.uri).map_err(|_| bad)?;
            if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) {
                return Err(bad);
            }
            let expires = match n.param(b"expires") {
                Some(v) => number(v.unwrap_or_default()),
                None => header_expires.flatten(),
            };
            let q = match n.param(b"q") {
                Some(v) => {
                    q_value(v.unwrap_or_default()).ok_or(Verdict::Refused(400, "Bad q-value"))?
                }
                None => 1000,
            };
            entries.push(Entry {
                uri,
                text: n.uri,
                expires: expires
                    .unwrap_or(self.cfg.default_expires)
                    .min(self.cfg.max_expires),
                q,
            });
        }
        if star && !entries.is_empty() {
            return Err(Verdict::Refused(400, "Invalid Wildcard"));
        }
        Ok((star, entries))
    }

    /// §10.3 steps 6 to 8 on the live bindings of one address of record:
    /// checks every change first (CSeq order, the contact limit), then
    /// makes them all.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        list: &mut Vec<Binding>,
        star: bool,
        entries: &[Entry<'_>],
        call_id: u64,
        cseq: u32,
        flow: Outside,
        now: u32,
    ) -> Verdict {
        // The same REGISTER again (its 200 was lost: the edge keeps no
        // transaction to absorb it): it was applied whole, so it is
        // answered again with what is held, and changes nothing.
        if list.iter().any(|b| b.call_id == call_id && b.cseq == cseq) {
            return Verdict::Bound;
        }
        let stale = |b: &Binding| b.call_id == call_id && cseq < b.cseq;
        let out_of_order = Verdict::Refused(500, "Out of Order Request");
        if star {
            if list.iter().any(stale) {
                return out_of_order;
            }
            list.clear();
            return Verdict::Bound;
        }
        let mut held = list.len();
        for (i, e) in entries.iter().enumerate() {
            // A contact named twice in one request counts once.
            if entries[..i].iter().any(|p| same_uri(&p.uri, &e.uri)) {
                continue;
            }
            match list.iter().find(|b| same_contact(b, &e.uri)) {
                Some(b) if stale(b) => return out_of_order,
                Some(_) if e.expires == 0 => held -= 1,
                Some(_) => {}
                None if e.expires != 0 => held += 1,
                None => {}
            }
        }
        if held > self.cfg.max_contacts {
            return Verdict::Refused(403, "Too Many Contacts");
        }
        let interval = self.cfg.keepalive_interval;
        for (i, e) in entries.iter().enumerate() {
            if entries[..i].iter().any(|p| same_uri(&p.uri, &e.uri)) {
                continue;
            }
            let binding = Binding {
                contact: e.text.into(),
                flow,
                expires: now.saturating_add(e.expires),
                registered: now,
                q: e.q,
                call_id,
                cseq,
                next_keepalive: now.saturating_add(interval),
                unanswered: 0,
                owned: true,
            };
            match list.iter().position(|b| same_contact(b, &e.uri)) {
                Some(i) if e.expires == 0 => {
                    list.remove(i);
                }
                // A refresh keeps its first registration time: the choice
                // among equal q stays put while the phones refresh.
                Some(i) => {
                    list[i] = Binding {
                        registered: list[i].registered,
                        ..binding
                    }
                }
                None if e.expires != 0 => list.push(binding),
                None => {}
            }
        }
        Verdict::Bound
    }

    /// The contact a request for address of record `aor` goes to: the
    /// highest q, the most recently registered among equals. Its URI is
    /// written into `contact`.
    pub fn best(&self, aor: &[u8], now: Instant, contact: &mut Vec<u8>) -> Option<Outside> {
        let now = self.secs(now);
        let mut found = None;
        self.store.read(aor, &mut |list| {
            let best = list
                .iter()
                .filter(|b| b.expires > now)
                .max_by_key(|b| (b.q, b.registered));
            if let Some(b) = best {
                contact.clear();
                // Headers of a Contact URI (`?…`) are no part of a
                // Request-URI (RFC 3261 §19.1.1).
                let end = memchr::memchr(b'?', &b.contact).unwrap_or(b.contact.len());
                contact.extend_from_slice(&b.contact[..end]);
                found = Some(b.flow);
            }
        });
        found
    }

    /// Removes expired bindings and hands each binding whose keepalive is
    /// due to `due`, with its address of record; a binding whose phone
    /// left `keepalive_failures` OPTIONS in a row unanswered is removed
    /// instead. Returns how many were removed for that.
    pub fn keepalives(&self, now: Instant, due: &mut dyn FnMut(&[u8], &Binding)) -> usize {
        let now = self.secs(now);
        let interval = self.cfg.keepalive_interval;
        let options = self.cfg.keepalive == config::Keepalive::Options;
        let limit = self.cfg.keepalive_failures;
        let mut lost = 0;
        self.store.sweep(&mut |aor, b| {
            if b.expires <= now {
                return Keep::No;
            }
            // Another node keeps the bindings it took alive.
            if interval == 0 || b.next_keepalive > now || !b.owned {
                return Keep::Yes;
            }
            if options && u32::from(b.unanswered) >= limit {
                lost += 1;
                return Keep::No;
            }
            if options {
                b.unanswered = b.unanswered.saturating_add(1);
            }
            b.next_keepalive = now.saturating_add(interval);
            due(aor, b);
            Keep::Yes
        });
        lost
    }

    /// The phone at `contact` of `aor` answered keepalive number `n` (its
    /// due time) from `source`: its count of unanswered ones starts over
    /// — if that is the keepalive outstanding and the address it was sent
    /// to (an old answer replayed, or one from elsewhere, counts for
    /// nothing). False when no such binding is held.
    pub fn answered(
        &self,
        aor: &[u8],
        contact: &[u8],
        n: u32,
        source: std::net::SocketAddr,
    ) -> bool {
        let Ok(uri) = Uri::parse(contact) else {
            return false;
        };
        let mut found = false;
        self.store.update(aor, &mut |list| {
            let outstanding = |b: &Binding| {
                b.next_keepalive == n && b.flow.remote == source && same_contact(b, &uri)
            };
            if let Some(b) = list.iter_mut().find(|b| outstanding(b)) {
                b.unanswered = 0;
                found = true;
            }
        });
        found
    }
}

/// The key of an address of record: `user@host`, the host lower-cased
/// (RFC 3261 §10.3 step 5 and §19.1.4: scheme, port, parameters and the
/// host's case do not tell addresses of record apart; the user's does).
pub fn aor(u: &Uri<'_>, key: &mut Vec<u8>) {
    key.clear();
    key.extend_from_slice(u.user.unwrap_or_default());
    key.push(b'@');
    let at = key.len();
    key.extend_from_slice(u.host_text);
    key[at..].make_ascii_lowercase();
}

/// The To URI, parsed.
fn to_uri<'a>(m: &Message<'a>) -> Option<Uri<'a>> {
    let v = m.first_value(HeaderName::To)?;
    Uri::parse(NameAddr::parse(v).ok()?.uri).ok()
}

/// Whether binding `b` is for the contact `u` (see [`same_uri`]).
fn same_contact(b: &Binding, u: &Uri<'_>) -> bool {
    Uri::parse(&b.contact).is_ok_and(|c| same_uri(&c, u))
}

/// RFC 3261 §19.1.4 in the parts phones vary: scheme, host and
/// parameters compare without case, the user with; the port must match
/// as written. (Parameters compare as written, in order: a phone repeats
/// its own Contact byte for byte.)
fn same_uri(a: &Uri<'_>, b: &Uri<'_>) -> bool {
    a.scheme == b.scheme
        && a.user == b.user
        && a.port == b.port
        && a.host_text.eq_ignore_ascii_case(b.host_text)
        && a.params.eq_ignore_ascii_case(b.params)
}

/// A delta-seconds value (Expires, `expires=`); `None` when it is not
/// one. Larger than 32 bits is the largest (it is capped anyway).
fn number(v: &[u8]) -> Option<u32> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        v.iter()
            .fold(0u64, |n, &d| {
                n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            })
            .min(u64::from(u32::MAX)) as u32,
    )
}

/// A q-value (RFC 3261 §25.1: `0[.ddd]` or `1[.000]`) in thousandths.
fn q_value(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&c| c == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Writes the Contact value of a 200 to REGISTER: each binding with the
/// seconds it has left (§10.3 step 8), and its q when not 1.
fn write_contacts(list: &[Binding], now: u32, out: &mut Vec<u8>) {
    for (i, b) in list.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.push(b'<');
        out.extend_from_slice(&b.contact);
        out.extend_from_slice(b">;expires=");
        sip::splice::write_num(out, b.expires.saturating_sub(now));
        if b.q != 1000 {
            out.extend_from_slice(b";q=0.");
            let q = [b.q / 100, b.q / 10 % 10, b.q % 10];
            out.extend(q.iter().map(|&d| b'0' + d as u8));
        }
    }
}

#[cfg(test)]
mod tests;
