//! The caller: starts calls, retransmits, matches responses to calls by
//! the slot number in their branch, and sends ACK and BYE along the route
//! set of the 200 OK. Sans-IO: time comes in as an argument, datagrams go
//! out through an [`Outbox`].

use crate::hist::Histogram;
use crate::msg::{self, Txn, UacText};
use crate::timers::{Kind, QueueId, Timer, Timers};
use crate::Outbox;
use sip::Message;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// RFC 3261 T1: the first retransmission interval.
pub const T1: Duration = Duration::from_millis(500);
/// Retransmission intervals double from T1 up to T2 = 4 s (for the INVITE
/// too, which RFC 3261 would let grow further: with the default 8 s timeout
/// the difference never shows).
const INTERVALS: usize = 4;

/// How the UAC runs.
#[derive(Clone, Debug)]
pub struct UacConfig {
    /// Index of its socket in the [`Outbox`].
    pub sock: usize,
    /// Its socket's address (Via, From, Contact).
    pub local: SocketAddr,
    /// Where INVITEs go.
    pub proxy: SocketAddr,
    /// The only addresses ACK and BYE may be sent to (the proxy and the
    /// UAS addresses given on the command line); a 200 OK that routes
    /// elsewhere fails its call.
    pub allowed: Vec<SocketAddr>,
    /// User part of the INVITE's Request-URI.
    pub service: String,
    /// How long a transaction may wait for its final response.
    pub timeout: Duration,
    /// Time between the ACK and the BYE (SIPp's `-d`).
    pub hold: Duration,
    /// This run's random tag.
    pub run: u32,
    /// The transport's name in Via and Contact (`UDP`, `TCP`).
    pub transport: &'static str,
    /// Each "call" is one REGISTER and its 2xx (`--flow register`)
    /// instead of INVITE, ACK and BYE.
    pub register: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// INVITE (or REGISTER) sent, no response yet: retransmitting.
    Inviting,
    /// A provisional response came: waiting for the final one.
    Proceeding,
    /// ACK sent, waiting for the hold time before the BYE.
    Holding,
    /// BYE sent, retransmitting until its response.
    Byeing,
}

#[derive(Debug)]
struct Call {
    gen: u32,
    state: State,
    call: u64,
    /// When the INVITE was first sent.
    started: u64,
    /// Retransmission timer token: a timer whose token differs is stale.
    rtok: u32,
    /// Retransmissions of the current request so far.
    retrans: u8,
    /// ACK in `buf[..ack_len]`, BYE in `buf[ack_len..]`.
    ack_len: usize,
    buf: Vec<u8>,
    next_hop: SocketAddr,
}

/// What happened to the calls.
#[derive(Clone, Debug, Default)]
pub struct UacStats {
    /// Calls whose INVITE was sent.
    pub started: u64,
    /// Calls that got a 2xx to their BYE.
    pub ok: u64,
    /// No final response to the INVITE (or REGISTER) in time.
    pub timeout_invite: u64,
    /// No final response to the BYE in time.
    pub timeout_bye: u64,
    /// A non-2xx final response to the INVITE, BYE or REGISTER.
    pub non2xx: u64,
    /// A 2xx the call could not go on from (no Contact, a route to an
    /// address not given on the command line...).
    pub unexpected: u64,
    /// Still running when the run's time was up.
    pub unfinished: u64,
    /// INVITE (or REGISTER) retransmissions sent.
    pub retrans_invite: u64,
    /// BYE retransmissions sent.
    pub retrans_bye: u64,
    /// ACKs sent again for a retransmitted 200 OK.
    pub acks_resent: u64,
    /// Provisional responses received.
    pub provisional: u64,
    /// Responses matching no live call (late retransmissions).
    pub stray: u64,
    /// Messages that are not responses to us, or that do not parse.
    pub junk: u64,
    /// Non-2xx final status codes, counted.
    pub codes: BTreeMap<u16, u64>,
    /// When the last call was started (ns on the run's clock, whose 0 is
    /// where the schedule begins).
    pub last_start: u64,
}

impl UacStats {
    /// Calls that failed, for any reason.
    pub fn failed(&self) -> u64 {
        self.timeout_invite + self.timeout_bye + self.non2xx + self.unexpected + self.unfinished
    }
}

/// The caller side.
pub struct Uac {
    cfg: UacConfig,
    text: UacText,
    calls: Vec<Call>,
    free: Vec<u32>,
    active: usize,
    next_call: u64,
    q_retrans: [QueueId; INTERVALS],
    q_timeout: QueueId,
    q_hold: QueueId,
    /// Counters.
    pub stats: UacStats,
    /// INVITE (or REGISTER) → 200 OK, µs.
    pub rtd: Histogram,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

impl Uac {
    /// A UAC whose timers live in `timers`.
    pub fn new(cfg: UacConfig, timers: &mut Timers) -> Uac {
        let t1 = ns(T1);
        let q_retrans = std::array::from_fn(|k| timers.queue(t1 << k));
        Uac {
            text: UacText::new(cfg.local, cfg.proxy, &cfg.service, cfg.run, cfg.transport),
            q_timeout: timers.queue(ns(cfg.timeout)),
            q_hold: timers.queue(ns(cfg.hold)),
            q_retrans,
            cfg,
            calls: Vec::new(),
            free: Vec::new(),
            active: 0,
            next_call: 0,
            stats: UacStats::default(),
            rtd: Histogram::new(),
        }
    }

    /// Calls in progress.
    pub fn active(&self) -> usize {
        self.active
    }

    /// Starts one call: sends its INVITE.
    pub fn start_call(&mut self, now: u64, timers: &mut Timers, out: &mut impl Outbox) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.calls.push(Call {
                    gen: 0,
                    state: State::Free,
                    call: 0,
                    started: 0,
                    rtok: 0,
                    retrans: 0,
                    ack_len: 0,
                    buf: Vec::new(),
                    next_hop: self.cfg.proxy,
                });
                (self.calls.len() - 1) as u32
            }
        };
        let number = self.next_call;
        self.next_call += 1;
        let c = &mut self.calls[slot as usize];
        c.gen = c.gen.wrapping_add(1);
        c.state = State::Inviting;
        c.call = number;
        c.started = now;
        c.rtok = c.rtok.wrapping_add(1);
        c.retrans = 0;
        self.active += 1;
        self.stats.started += 1;
        self.stats.last_start = now;
        let (gen, rtok) = (c.gen, c.rtok);
        self.send_first(slot, number, out);
        timers.schedule(self.q_retrans[0], now, slot, gen, rtok, Kind::UacRetransmit);
        timers.schedule(self.q_timeout, now, slot, gen, 0, Kind::UacInviteTimeout);
    }

    /// Sends (again) the request that starts call `call` in `slot`.
    fn send_first(&self, slot: u32, call: u64, out: &mut impl Outbox) {
        let (text, register) = (&self.text, self.cfg.register);
        out.send(self.cfg.sock, self.cfg.proxy, |o| {
            if register {
                text.register(o, slot, call)
            } else {
                text.invite(o, slot, call)
            }
        });
    }

    fn release(&mut self, slot: u32) {
        let c = &mut self.calls[slot as usize];
        c.state = State::Free;
        c.rtok = c.rtok.wrapping_add(1);
        self.active -= 1;
        self.free.push(slot);
    }

    /// Sends the BYE of the call in `slot` (its text is ready in the
    /// call's buffer) and starts Timer E and the timeout.
    fn send_bye(&mut self, now: u64, slot: u32, timers: &mut Timers, out: &mut impl Outbox) {
        let c = &mut self.calls[slot as usize];
        c.state = State::Byeing;
        c.rtok = c.rtok.wrapping_add(1);
        c.retrans = 0;
        let bye = &c.buf[c.ack_len..];
        out.send(self.cfg.sock, c.next_hop, |o| o.extend_from_slice(bye));
        timers.schedule(
            self.q_retrans[0],
            now,
            slot,
            c.gen,
            c.rtok,
            Kind::UacRetransmit,
        );
        timers.schedule(self.q_timeout, now, slot, c.gen, 0, Kind::UacByeTimeout);
    }

    /// Handles a message received on the UAC's socket.
    pub fn on_message(
        &mut self,
        now: u64,
        msg: &Message<'_>,
        timers: &mut Timers,
        out: &mut impl Outbox,
    ) {
        let Some(code) = msg.status() else {
            self.stats.junk += 1;
            return;
        };
        let id = match msg.top_via().ok().and_then(|(_, v)| v.branch) {
            Some(b) => msg::parse_branch(b),
            None => None,
        };
        let Some(id) = id.filter(|id| id.run == self.cfg.run) else {
            self.stats.junk += 1;
            return;
        };
        let live = self
            .calls
            .get(id.slot as usize)
            .is_some_and(|c| c.state != State::Free && c.call == id.call);
        if !live {
            self.stats.stray += 1;
            return;
        }
        // The Call-ID must name the same call as the branch.
        let same_call = msg
            .call_id()
            .and_then(msg::parse_call_id)
            .is_some_and(|(run, slot, call)| (run, slot, call) == (id.run, id.slot, id.call));
        if !same_call {
            self.stats.junk += 1;
            return;
        }
        let slot = id.slot;
        let state = self.calls[slot as usize].state;
        match (id.txn, code) {
            (Txn::Invite, 100..=199) => {
                self.stats.provisional += 1;
                if state == State::Inviting {
                    // RFC 3261 §17.1.1.2: a provisional response stops Timer A.
                    let c = &mut self.calls[slot as usize];
                    c.state = State::Proceeding;
                    c.rtok = c.rtok.wrapping_add(1);
                }
            }
            (Txn::Invite, 200..=299) => match state {
                State::Inviting | State::Proceeding => self.on_2xx(now, slot, msg, timers, out),
                State::Holding | State::Byeing => {
                    // A retransmitted 200: it is ACKed again (§13.2.2.4).
                    let c = &self.calls[slot as usize];
                    let ack = &c.buf[..c.ack_len];
                    out.send(self.cfg.sock, c.next_hop, |o| o.extend_from_slice(ack));
                    self.stats.acks_resent += 1;
                }
                State::Free => {}
            },
            (Txn::Invite, _) => {
                if matches!(state, State::Inviting | State::Proceeding) {
                    let to = msg.first_value(sip::HeaderName::To).unwrap_or(b"");
                    let text = &self.text;
                    let call = id.call;
                    out.send(self.cfg.sock, self.cfg.proxy, |o| {
                        text.ack_non2xx(o, slot, call, to)
                    });
                    self.fail_non2xx(slot, code);
                } else {
                    self.stats.stray += 1;
                }
            }
            (Txn::Bye, 100..=199) => self.stats.provisional += 1,
            (Txn::Bye, _) if state == State::Byeing => {
                if (200..300).contains(&code) {
                    self.stats.ok += 1;
                    self.release(slot);
                } else {
                    self.fail_non2xx(slot, code);
                }
            }
            (Txn::Bye, _) => self.stats.stray += 1,
            (Txn::Register, 100..=199) => {
                self.stats.provisional += 1;
                if state == State::Inviting {
                    // §17.1.2.2: a provisional response makes Timer E
                    // wait T2; sipload simply stops retransmitting.
                    let c = &mut self.calls[slot as usize];
                    c.state = State::Proceeding;
                    c.rtok = c.rtok.wrapping_add(1);
                }
            }
            (Txn::Register, _) if matches!(state, State::Inviting | State::Proceeding) => {
                if (200..300).contains(&code) {
                    let c = &self.calls[slot as usize];
                    self.rtd.record(now.saturating_sub(c.started) / 1_000);
                    self.stats.ok += 1;
                    self.release(slot);
                } else {
                    self.fail_non2xx(slot, code);
                }
            }
            (Txn::Register, _) => self.stats.stray += 1,
            (Txn::Ack, _) => self.stats.junk += 1,
        }
    }

    fn fail_non2xx(&mut self, slot: u32, code: u16) {
        self.stats.non2xx += 1;
        *self.stats.codes.entry(code).or_default() += 1;
        self.release(slot);
    }

    /// The first 2xx to the INVITE: record the response time, build ACK
    /// and BYE from the dialog it establishes, send the ACK, then the BYE
    /// (now, or after the hold time).
    fn on_2xx(
        &mut self,
        now: u64,
        slot: u32,
        msg: &Message<'_>,
        timers: &mut Timers,
        out: &mut impl Outbox,
    ) {
        let c = &mut self.calls[slot as usize];
        self.rtd.record(now.saturating_sub(c.started) / 1_000);
        let dialog = msg::dialog_from_2xx(msg)
            .and_then(|d| {
                if self.cfg.allowed.contains(&d.next_hop) {
                    Ok(d)
                } else {
                    Err("in-dialog next hop is not an address from the command line")
                }
            })
            .ok();
        let Some(d) = dialog else {
            self.stats.unexpected += 1;
            self.release(slot);
            return;
        };
        c.buf.clear();
        self.text.in_dialog(&mut c.buf, Txn::Ack, slot, c.call, &d);
        c.ack_len = c.buf.len();
        self.text.in_dialog(&mut c.buf, Txn::Bye, slot, c.call, &d);
        c.next_hop = d.next_hop;
        c.rtok = c.rtok.wrapping_add(1);
        let ack = &c.buf[..c.ack_len];
        out.send(self.cfg.sock, c.next_hop, |o| o.extend_from_slice(ack));
        if self.cfg.hold.is_zero() {
            self.send_bye(now, slot, timers, out);
        } else {
            c.state = State::Holding;
            timers.schedule(self.q_hold, now, slot, c.gen, 0, Kind::UacHangUp);
        }
    }

    /// Handles one of the UAC's timers.
    pub fn on_timer(&mut self, now: u64, t: Timer, timers: &mut Timers, out: &mut impl Outbox) {
        let Some(c) = self.calls.get_mut(t.slot as usize) else {
            return;
        };
        if c.gen != t.gen || c.state == State::Free {
            return;
        }
        match t.kind {
            Kind::UacRetransmit => {
                if t.token != c.rtok {
                    return;
                }
                match c.state {
                    State::Inviting => {
                        let call = c.call;
                        self.send_first(t.slot, call, out);
                        self.stats.retrans_invite += 1;
                    }
                    State::Byeing => {
                        let bye = &c.buf[c.ack_len..];
                        out.send(self.cfg.sock, c.next_hop, |o| o.extend_from_slice(bye));
                        self.stats.retrans_bye += 1;
                    }
                    _ => return,
                }
                let c = &mut self.calls[t.slot as usize];
                c.retrans = c.retrans.saturating_add(1);
                c.rtok = c.rtok.wrapping_add(1);
                let q = self.q_retrans[usize::from(c.retrans).min(INTERVALS - 1)];
                timers.schedule(q, now, t.slot, c.gen, c.rtok, Kind::UacRetransmit);
            }
            Kind::UacInviteTimeout if matches!(c.state, State::Inviting | State::Proceeding) => {
                self.stats.timeout_invite += 1;
                self.release(t.slot);
            }
            Kind::UacByeTimeout if c.state == State::Byeing => {
                self.stats.timeout_bye += 1;
                self.release(t.slot);
            }
            Kind::UacHangUp if c.state == State::Holding => {
                self.send_bye(now, t.slot, timers, out);
            }
            _ => {}
        }
    }

    /// Ends the run: every call still in progress counts as unfinished.
    pub fn finish(&mut self) {
        self.stats.unfinished += self.active as u64;
        for slot in 0..self.calls.len() {
            if self.calls[slot].state != State::Free {
                self.release(slot as u32);
            }
        }
    }
}
