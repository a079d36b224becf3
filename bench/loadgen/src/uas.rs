//! The callee: one or more endpoints (sockets) sharing one dialog table.
//! Answers an INVITE with 100, 180 and 200 (SDP) at once, retransmits the
//! 200 until the ACK, answers the BYE with 200, and checks that ACK and BYE
//! come in time. Sans-IO like the UAC.
//!
//! ACK and BYE find their dialog by the slot number in the To tag the UAS
//! chose; an INVITE (which has no To tag yet) by a hash of its Call-ID, so
//! that a retransmitted INVITE is answered again instead of starting a
//! second dialog.

use crate::msg::{self, Tag};
use crate::timers::{Kind, QueueId, Timer, Timers};
use crate::uac::T1;
use crate::Outbox;
use sip::{HeaderName, Message, Method, NameAddr};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

/// How long a finished dialog is kept to absorb retransmissions.
const TIME_WAIT: Duration = Duration::from_secs(1);
const INTERVALS: usize = 4;

/// How the UAS runs.
#[derive(Clone, Debug)]
pub struct UasConfig {
    /// Its endpoints: index of the socket in the [`Outbox`], and address
    /// (for Contact and SDP).
    pub socks: Vec<(usize, SocketAddr)>,
    /// How long the 200 OK waits for its ACK.
    pub ack_timeout: Duration,
    /// How long the dialog waits for the BYE after the ACK.
    pub bye_timeout: Duration,
    /// This run's random tag.
    pub run: u32,
    /// The transport's name in Contact (`UDP`, `TCP`).
    pub transport: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// 200 OK sent, retransmitting until the ACK.
    WaitAck,
    /// ACK received, waiting for the BYE.
    WaitBye,
    /// BYE answered; kept for [`TIME_WAIT`].
    Done,
}

#[derive(Debug)]
struct Dialog {
    gen: u32,
    state: State,
    /// Hash of the Call-ID.
    key: u64,
    /// Which endpoint (index into `UasConfig::socks`).
    ep: usize,
    /// Where the INVITE came from: where responses go.
    peer: SocketAddr,
    rtok: u32,
    retrans: u8,
    /// The 200 OK, for retransmission.
    ok: Vec<u8>,
}

/// What happened at the UAS.
#[derive(Clone, Debug, Default)]
pub struct UasStats {
    /// New INVITEs (dialogs started).
    pub invites: u64,
    /// Dialogs that ended with a BYE after their ACK.
    pub completed: u64,
    /// No ACK in time (or a BYE came first).
    pub no_ack: u64,
    /// No BYE in time after the ACK.
    pub no_bye: u64,
    /// Dialogs still waiting when the run's time was up.
    pub unfinished: u64,
    /// 200 OK retransmissions sent (Timer G).
    pub retrans_200: u64,
    /// Retransmitted INVITEs received (absorbed: last response re-sent).
    pub invite_retrans: u64,
    /// Retransmitted BYEs received (answered again).
    pub bye_retrans: u64,
    /// ACKs and BYEs that match no dialog.
    pub stray: u64,
    /// OPTIONS answered (health probes).
    pub options: u64,
    /// Anything else: responses, other methods, unparseable.
    pub junk: u64,
    /// New dialogs per endpoint.
    pub per_endpoint: Vec<u64>,
}

impl UasStats {
    /// Dialogs that failed.
    pub fn failed(&self) -> u64 {
        self.no_ack + self.no_bye + self.unfinished
    }
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The callee side.
pub struct Uas {
    cfg: UasConfig,
    contacts: Vec<Vec<u8>>,
    sdps: Vec<Vec<u8>>,
    dialogs: Vec<Dialog>,
    free: Vec<u32>,
    by_call_id: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    active: usize,
    q_retrans: [QueueId; INTERVALS],
    q_ack: QueueId,
    q_bye: QueueId,
    q_wait: QueueId,
    /// Counters.
    pub stats: UasStats,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

impl Uas {
    /// A UAS whose timers live in `timers`.
    pub fn new(cfg: UasConfig, timers: &mut Timers) -> Uas {
        let t1 = ns(T1);
        let q_retrans = std::array::from_fn(|k| timers.queue(t1 << k));
        Uas {
            contacts: cfg
                .socks
                .iter()
                .map(|(_, a)| format!("<sip:{a};transport={}>", cfg.transport).into_bytes())
                .collect(),
            sdps: cfg.socks.iter().map(|(_, a)| msg::sdp(*a)).collect(),
            stats: UasStats {
                per_endpoint: vec![0; cfg.socks.len()],
                ..UasStats::default()
            },
            q_ack: timers.queue(ns(cfg.ack_timeout)),
            q_bye: timers.queue(ns(cfg.bye_timeout)),
            q_wait: timers.queue(ns(TIME_WAIT)),
            q_retrans,
            cfg,
            dialogs: Vec::new(),
            free: Vec::new(),
            by_call_id: HashMap::default(),
            active: 0,
        }
    }

    /// Dialogs waiting for their ACK or BYE.
    pub fn active(&self) -> usize {
        self.active
    }

    /// Handles a message received by endpoint `ep` from `from`.
    pub fn on_message(
        &mut self,
        now: u64,
        ep: usize,
        msg: &Message<'_>,
        from: SocketAddr,
        timers: &mut Timers,
        out: &mut impl Outbox,
    ) {
        let sock = self.cfg.socks[ep].0;
        match msg.method() {
            _ if !msg.is_request() => self.stats.junk += 1,
            Method::Invite => self.on_invite(now, ep, msg, from, timers, out),
            Method::Ack => {
                let Some(slot) = self.find(msg) else {
                    self.stats.stray += 1;
                    return;
                };
                let d = &mut self.dialogs[slot as usize];
                if d.state == State::WaitAck {
                    d.state = State::WaitBye;
                    d.rtok = d.rtok.wrapping_add(1);
                    timers.schedule(self.q_bye, now, slot, d.gen, 0, Kind::UasByeTimeout);
                }
                // Otherwise a retransmitted ACK (for a retransmitted 200).
            }
            Method::Bye => {
                out.send(sock, from, |o| {
                    msg::response(o, 200, b"OK", msg, None, false, None, None)
                });
                let Some(slot) = self.find(msg) else {
                    self.stats.stray += 1;
                    return;
                };
                let d = &mut self.dialogs[slot as usize];
                match d.state {
                    State::WaitBye => self.stats.completed += 1,
                    // SIPp's uas.xml fails a call whose BYE comes before
                    // its ACK; so does this.
                    State::WaitAck => self.stats.no_ack += 1,
                    State::Done => {
                        self.stats.bye_retrans += 1;
                        return;
                    }
                    State::Free => return,
                }
                d.state = State::Done;
                d.rtok = d.rtok.wrapping_add(1);
                self.active -= 1;
                timers.schedule(self.q_wait, now, slot, d.gen, 0, Kind::UasTimeWait);
            }
            Method::Options => {
                self.stats.options += 1;
                let contact = &self.contacts[ep];
                out.send(sock, from, |o| {
                    msg::response(o, 200, b"OK", msg, None, false, Some(contact), None)
                });
            }
            _ => {
                self.stats.junk += 1;
                out.send(sock, from, |o| {
                    msg::response(o, 501, b"Not Implemented", msg, None, false, None, None)
                });
            }
        }
    }

    /// The dialog an ACK or BYE belongs to: by the slot in our To tag,
    /// checked against the Call-ID.
    fn find(&self, msg: &Message<'_>) -> Option<u32> {
        let key = msg::hash(msg.call_id()?);
        let to = msg.first_value(HeaderName::To)?;
        let tag = NameAddr::parse(to).ok()?.tag()?;
        let (run, slot, gen) = msg::parse_tag(tag)?;
        let d = self.dialogs.get(slot as usize)?;
        (run == self.cfg.run && d.gen == gen && d.key == key && d.state != State::Free)
            .then_some(slot)
    }

    fn on_invite(
        &mut self,
        now: u64,
        ep: usize,
        msg: &Message<'_>,
        from: SocketAddr,
        timers: &mut Timers,
        out: &mut impl Outbox,
    ) {
        let sock = self.cfg.socks[ep].0;
        let Some(call_id) = msg.call_id() else {
            self.stats.junk += 1;
            return;
        };
        let key = msg::hash(call_id);
        if let Some(&slot) = self.by_call_id.get(&key) {
            // A retransmission: answer with the last response again while
            // the 200 is unacknowledged, absorb it afterwards.
            self.stats.invite_retrans += 1;
            let d = &self.dialogs[slot as usize];
            if d.state == State::WaitAck {
                let ok = &d.ok;
                out.send(sock, from, |o| o.extend_from_slice(ok));
            }
            return;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.dialogs.push(Dialog {
                    gen: 0,
                    state: State::Free,
                    key: 0,
                    ep: 0,
                    peer: from,
                    rtok: 0,
                    retrans: 0,
                    ok: Vec::new(),
                });
                (self.dialogs.len() - 1) as u32
            }
        };
        self.by_call_id.insert(key, slot);
        self.active += 1;
        self.stats.invites += 1;
        self.stats.per_endpoint[ep] += 1;
        let d = &mut self.dialogs[slot as usize];
        d.gen = d.gen.wrapping_add(1);
        d.state = State::WaitAck;
        d.key = key;
        d.ep = ep;
        d.peer = from;
        d.rtok = d.rtok.wrapping_add(1);
        d.retrans = 0;
        let tag: Tag = (self.cfg.run, slot, d.gen);
        let contact = &self.contacts[ep][..];
        d.ok.clear();
        msg::response(
            &mut d.ok,
            200,
            b"OK",
            msg,
            Some(tag),
            true,
            Some(contact),
            Some(&self.sdps[ep]),
        );
        out.send(sock, from, |o| {
            msg::response(o, 100, b"Trying", msg, None, false, None, None)
        });
        out.send(sock, from, |o| {
            msg::response(
                o,
                180,
                b"Ringing",
                msg,
                Some(tag),
                true,
                Some(contact),
                None,
            )
        });
        let ok = &d.ok;
        out.send(sock, from, |o| o.extend_from_slice(ok));
        timers.schedule(
            self.q_retrans[0],
            now,
            slot,
            d.gen,
            d.rtok,
            Kind::UasRetransmit,
        );
        timers.schedule(self.q_ack, now, slot, d.gen, 0, Kind::UasAckTimeout);
    }

    fn release(&mut self, slot: u32) {
        let d = &mut self.dialogs[slot as usize];
        if d.state != State::Done {
            self.active -= 1;
        }
        d.state = State::Free;
        d.rtok = d.rtok.wrapping_add(1);
        if self.by_call_id.get(&d.key) == Some(&slot) {
            self.by_call_id.remove(&d.key);
        }
        self.free.push(slot);
    }

    /// Handles one of the UAS's timers.
    pub fn on_timer(&mut self, now: u64, t: Timer, timers: &mut Timers, out: &mut impl Outbox) {
        let Some(d) = self.dialogs.get_mut(t.slot as usize) else {
            return;
        };
        if d.gen != t.gen || d.state == State::Free {
            return;
        }
        match t.kind {
            Kind::UasRetransmit if d.state == State::WaitAck && d.rtok == t.token => {
                let ok = &d.ok;
                out.send(self.cfg.socks[d.ep].0, d.peer, |o| o.extend_from_slice(ok));
                self.stats.retrans_200 += 1;
                d.retrans = d.retrans.saturating_add(1);
                d.rtok = d.rtok.wrapping_add(1);
                let q = self.q_retrans[usize::from(d.retrans).min(INTERVALS - 1)];
                timers.schedule(q, now, t.slot, d.gen, d.rtok, Kind::UasRetransmit);
            }
            Kind::UasAckTimeout if d.state == State::WaitAck => {
                self.stats.no_ack += 1;
                self.release(t.slot);
            }
            Kind::UasByeTimeout if d.state == State::WaitBye => {
                self.stats.no_bye += 1;
                self.release(t.slot);
            }
            Kind::UasTimeWait if d.state == State::Done => self.release(t.slot),
            _ => {}
        }
    }

    /// Ends the run: dialogs still waiting for ACK or BYE count as
    /// unfinished.
    pub fn finish(&mut self) {
        self.stats.unfinished += self.active as u64;
        for slot in 0..self.dialogs.len() {
            if self.dialogs[slot].state != State::Free {
                self.release(slot as u32);
            }
        }
    }
}
