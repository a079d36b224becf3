//! One request handled statefully: its server transaction toward the
//! caller, the client transactions of the destinations tried in turn
//! (serial failover), the best answer so far and the CANCEL state — the
//! "response context" of RFC 3261 §16.

use std::time::Instant;

use super::best::{upstream_status, Best};
use super::messages::{self, OurVia};
use super::Env;
use crate::branch::MAX_ATTEMPTS;
use crate::flow::Flow;
use crate::proxy::checked::{self, Checked};
use crate::proxy::forward::{count_forwarded, splice, too_large_for_udp};
use crate::proxy::pipeline::checks;
use crate::proxy::reply::{reply_address, write_reply};
use crate::proxy::DestRef;
use crate::stats::Event;
use crate::transaction::{ClientTx, Kind, OnRequest, OnResponse, OnTimer, ServerTx};
use sip::Message;

/// Where one attempt goes: an address, and which destination of the pool
/// it is (`None` for a hop outside the pool, such as a customer's address
/// in a request a server sends outward). The destination is named so
/// that the snapshot of a later reload still finds it (or knows it gone).
#[derive(Clone, Copy, Debug)]
pub(super) struct Hop {
    pub to: checked::Hop,
    pub dest: Option<DestRef>,
}

impl Hop {
    /// The hop's destination in the snapshot `env` runs with: `None` for a
    /// hop outside the pool, or for a destination a reload removed.
    fn dest(&self, env: &Env<'_, '_, '_>) -> Option<usize> {
        self.dest.and_then(|r| env.edge.resolve(r))
    }
}

/// What never changes after the request arrived.
#[derive(Debug)]
struct Stored {
    /// The request exactly as received: every message of the context is
    /// written from it again when needed (retransmission, next attempt,
    /// ACK, CANCEL), so nothing else of it is kept.
    bytes: Box<[u8]>,
    /// The flow it arrived on.
    from: Flow,
    kind: Kind,
    /// Where responses go (RFC 3261 §18.2.2, RFC 3581): back on that flow.
    upstream: Flow,
    /// The destinations to try, in order.
    plan: Vec<Hop>,
    /// The one next hop the request's Route or Request-URI names (an
    /// in-dialog request, one from the pool going out): nothing to fail
    /// over to, so it waits for Timer B or F rather than the failover timer.
    fixed: bool,
    /// A new call: each destination tried counts it against its limits,
    /// and its 2xx opens a channel.
    new_call: bool,
}

/// One destination tried: a client transaction and its proxy timers.
#[derive(Debug)]
struct Branch {
    hop: Hop,
    /// The flow its requests leave on.
    out: Flow,
    client: ClientTx,
    /// A provisional response came (so it may be cancelled, §9.1).
    provisional: bool,
    /// No provisional by then: give up on it and try the next.
    failover_at: Option<Instant>,
    /// Timer C (§16.6 step 11): ringing with no final answer until then.
    timer_c: Option<Instant>,
    /// The branch was given up on (its failure already counted).
    abandoned: bool,
    /// Cancel it as soon as a provisional makes that possible.
    cancel_wanted: bool,
    /// The CANCEL's own client transaction, once sent.
    cancel: Option<ClientTx>,
}

/// What changes as the request is handled.
#[derive(Debug)]
struct State {
    server: ServerTx,
    /// The last response sent upstream, for retransmissions.
    last: Vec<u8>,
    /// The next plan entry to try.
    next: usize,
    branches: Vec<Branch>,
    /// The branch whose answer decides what happens next.
    current: Option<usize>,
    best: Option<Best>,
    cancelled: bool,
}

/// One request handled statefully (see the module documentation).
#[derive(Debug)]
pub(super) struct Context {
    /// The transaction MAC, compared in full on every lookup.
    pub mac: u64,
    /// The loop hash of its branches: a response whose branch carries
    /// another one was not sent for this transaction.
    pub loop_hash: u32,
    /// The earliest heap entry still queued for this context (table.rs).
    pub scheduled: Option<Instant>,
    req: Stored,
    st: State,
}

/// Runs `f` on the stored request parsed and checked again; `None` if it
/// no longer parses (it always does: it was checked when it arrived).
fn reparse<R>(
    req: &Stored,
    env: &mut Env<'_, '_, '_>,
    f: impl FnOnce(&mut Env<'_, '_, '_>, &Message<'_>, &Checked<'_>) -> R,
) -> Option<R> {
    let mut index = std::mem::take(env.s.spare);
    let r = match sip::parse(&req.bytes, &mut index) {
        Ok(m) => match checks(env.edge, env.s, &m, req.from, env.now) {
            Ok(c) => Some(f(env, &m, &c)),
            Err(_) => None,
        },
        Err(_) => None,
    };
    *env.s.spare = index;
    r
}

impl Context {
    /// Takes over a new request `m` (checked as `c`) that is to go to the
    /// destinations of `plan` in turn: answers 100 Trying to an INVITE and
    /// sends the first attempt.
    pub fn start(
        env: &mut Env<'_, '_, '_>,
        m: &Message<'_>,
        c: &Checked<'_>,
        plan: Vec<Hop>,
        fixed: bool,
        new_call: bool,
    ) -> Context {
        let kind = if c.method == sip::Method::Invite {
            Kind::Invite
        } else {
            Kind::NonInvite
        };
        let origin = &c.origin;
        let mut ctx = Context {
            mac: c.mac,
            loop_hash: c.loop_hash,
            scheduled: None,
            req: Stored {
                bytes: m.buf()[..m.end()].into(),
                from: origin.from,
                kind,
                upstream: Flow {
                    remote: reply_address(&origin.via, &origin.from),
                    ..origin.from
                },
                plan,
                fixed,
                new_call,
            },
            st: State {
                server: ServerTx::start(kind),
                last: Vec::new(),
                next: 0,
                branches: Vec::new(),
                current: None,
                best: None,
                cancelled: false,
            },
        };
        if kind == Kind::Invite {
            // §16.2 / §17.2.1: 100 Trying at once, so the caller stops
            // retransmitting while destinations are tried.
            write_reply(env.s, m, origin, 100, "Trying", &[]);
            ctx.st.last.clone_from(env.s.out);
            ctx.upstream(env);
        }
        ctx.st.try_next(&ctx.req, env, m, c);
        ctx
    }

    /// When the next timer of this context is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d = self.st.server.next_deadline();
        let mut take = |t: Option<Instant>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |d| d.min(t)));
            }
        };
        for b in &self.st.branches {
            take(b.client.next_deadline());
            take(b.cancel.as_ref().and_then(ClientTx::next_deadline));
            take(b.failover_at);
            take(b.timer_c);
        }
        d
    }

    /// True once every transaction of the context has ended.
    pub fn is_done(&self) -> bool {
        self.st.server.is_terminated()
            && self.st.branches.iter().all(|b| {
                b.client.is_terminated() && b.cancel.as_ref().is_none_or(ClientTx::is_terminated)
            })
    }

    /// The request arrived again: answer from the transaction.
    pub fn on_retransmission(&mut self, env: &mut Env<'_, '_, '_>) {
        if self.st.server.on_retransmission() == OnRequest::Resend && !self.st.last.is_empty() {
            self.upstream_last(env);
        }
    }

    /// An ACK with this transaction's identity arrived. `true` when it was
    /// the ACK of our non-2xx final (absorbed: the destination already got
    /// its own ACK hop by hop); `false` when it must be forwarded.
    pub fn on_ack(&mut self, env: &Env<'_, '_, '_>) -> bool {
        self.st.server.on_ack(&env.cfg.timers, env.now)
    }

    /// The caller cancelled (§16.10): no new destination is tried, and every
    /// branch still waiting is cancelled (at once if it has sent a
    /// provisional, else as soon as it does; §9.1). Returns whether the
    /// request was still unanswered.
    pub fn on_cancel(&mut self, env: &mut Env<'_, '_, '_>) -> bool {
        if self.st.server.is_final() || self.req.kind != Kind::Invite {
            return false;
        }
        self.st.cancelled = true;
        self.st.cancel_pending(&self.req, env);
        true
    }

    /// A response matched branch `attempt` (a response to its CANCEL when
    /// `to_cancel`). Matched by branch and CSeq method alone (RFC 3261
    /// §17.1.3), not by source address: a server may answer from another
    /// socket, and the branch, a keyed MAC, cannot be guessed.
    pub fn on_response(
        &mut self,
        env: &mut Env<'_, '_, '_>,
        attempt: usize,
        m: &Message<'_>,
        to_cancel: bool,
    ) -> bool {
        let Some(code) = m.status() else {
            return false;
        };
        let Context { req, st, .. } = self;
        let Some(b) = st.branches.get_mut(attempt) else {
            return false;
        };
        if to_cancel {
            if let Some(c) = &mut b.cancel {
                c.on_response(code, &env.cfg.timers, env.now);
            }
            return true;
        }
        let action = b.client.on_response(code, &env.cfg.timers, env.now);
        if matches!(action, OnResponse::PassUp | OnResponse::PassUpAndAck) {
            if let Some(i) = b.hop.dest(env) {
                env.s.counters.answered(i, code);
            }
        }
        if matches!(action, OnResponse::Ack | OnResponse::PassUpAndAck) {
            st.send_ack(req, env, attempt, m);
        }
        if matches!(action, OnResponse::PassUp | OnResponse::PassUpAndAck) {
            st.passed_up(req, env, attempt, m, code);
        }
        true
    }

    /// Runs every timer due at `env.now`.
    pub fn on_timer(&mut self, env: &mut Env<'_, '_, '_>) {
        let Context { req, st, .. } = self;
        let (timers, now) = (env.cfg.timers, env.now);
        while st.server.next_deadline().is_some_and(|t| t <= now) {
            match st.server.on_timer(&timers, now) {
                OnTimer::Retransmit => {
                    env.s.sends.push(&st.last, req.upstream);
                }
                OnTimer::Nothing => break,
                OnTimer::TimedOut | OnTimer::Terminated => {}
            }
        }
        for k in 0..st.branches.len() {
            let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
            if due(st.branches[k].client.next_deadline()) {
                match st.branches[k].client.on_timer(&timers, now) {
                    OnTimer::Retransmit => st.resend(req, env, k),
                    OnTimer::TimedOut => st.branch_failed(req, env, k),
                    OnTimer::Terminated | OnTimer::Nothing => {}
                }
            }
            let cancel = st.branches[k].cancel.as_mut();
            if let Some(c) = cancel.filter(|c| due(c.next_deadline())) {
                if c.on_timer(&timers, now) == OnTimer::Retransmit {
                    st.send_cancel(req, env, k);
                }
            }
            let b = &mut st.branches[k];
            if due(b.failover_at) {
                b.failover_at = None;
                if !b.provisional && b.client.is_pending() {
                    b.client.stop_retransmitting();
                    st.branch_failed(req, env, k);
                }
            }
            let b = &mut st.branches[k];
            if due(b.timer_c) {
                b.timer_c = None;
                if b.client.is_pending() {
                    // §16.8: ringing too long — cancel it, and for the rest
                    // of the proxy it is as if it had answered 408.
                    b.cancel_wanted = true;
                    st.send_cancel(req, env, k);
                    st.branch_failed(req, env, k);
                }
            }
        }
    }

    /// Sends the last response upstream again.
    fn upstream_last(&self, env: &mut Env<'_, '_, '_>) {
        env.s.sends.push(&self.st.last, self.req.upstream);
    }

    /// Sends `env.s.out` upstream.
    fn upstream(&self, env: &mut Env<'_, '_, '_>) {
        env.s.sends.push(env.s.out, self.req.upstream);
    }
}

impl State {
    /// Sends the request to the next destination of the plan that is still
    /// usable (§16.6), or answers the caller when none is left.
    fn try_next(
        &mut self,
        req: &Stored,
        env: &mut Env<'_, '_, '_>,
        m: &Message<'_>,
        c: &Checked<'_>,
    ) {
        while let Some(&hop) = req.plan.get(self.next) {
            self.next += 1;
            if self.branches.len() >= MAX_ATTEMPTS {
                break;
            }
            let dest = hop.dest(env);
            if hop.dest.is_some() && dest.is_none() {
                // Removed by a reload since the plan was made: no new
                // attempts go there.
                continue;
            }
            // The first hop was just chosen among usable ones; later ones
            // may have gone down (or filled up) since.
            if let (false, Some(i)) = (self.branches.is_empty(), dest) {
                let room = !req.new_call || env.edge.limits().dest_has_room(i, env.now);
                if !env.edge.health.usable(i) || !room {
                    continue;
                }
            }
            let Some(mut out) = env
                .edge
                .flow_to(hop.to.transport, hop.to.addr, req.from.local)
            else {
                continue;
            };
            crate::proxy::route::pin(env.edge, c, &mut out);
            let attempt = self.branches.len() as u8;
            splice(env.edge, env.s, m, c, &out, attempt);
            let out = too_large_for_udp(env.edge, env.s, m, c, out, dest, attempt);
            env.s.sends.push(env.s.out, out);
            count_forwarded(env.s, c, dest);
            if let (true, Some(i)) = (req.new_call, dest) {
                env.edge.limits().dest_take(i, env.now);
            }
            if attempt > 0 {
                env.s.stats.count(Event::Failover);
            }
            let mut client = ClientTx::start(req.kind, &env.cfg.timers, env.now);
            if out.is_stream() {
                // Timers A and E are for unreliable transports only (RFC
                // 3261 §17.1.1.2, §17.1.2.2): the connection delivers.
                client.stop_retransmitting();
            }
            self.branches.push(Branch {
                hop,
                out,
                client,
                provisional: false,
                failover_at: (!req.fixed).then(|| env.now + env.cfg.failover_timeout),
                timer_c: None,
                abandoned: false,
                cancel_wanted: false,
                cancel: None,
            });
            self.current = Some(self.branches.len() - 1);
            return;
        }
        self.finish(req, env, Some((m, c)));
    }

    /// [`try_next`](Self::try_next) from the stored request.
    fn try_next_stored(&mut self, req: &Stored, env: &mut Env<'_, '_, '_>) {
        reparse(req, env, |env, m, c| self.try_next(req, env, m, c));
    }

    /// Branch `k` failed without a final response from it (timeout of the
    /// failover timer, Timer B/F or Timer C): counted against its
    /// destination once, then, if it was the one waited on, the next
    /// destination is tried (a local 408 for §16.7's choice).
    fn branch_failed(&mut self, req: &Stored, env: &mut Env<'_, '_, '_>, k: usize) {
        let b = &mut self.branches[k];
        b.failover_at = None;
        b.timer_c = None;
        if !b.abandoned {
            b.abandoned = true;
            if let Some(i) = b.hop.dest(env) {
                env.s.counters.timed_out(i);
            }
        }
        if self.current != Some(k) {
            return;
        }
        self.current = None;
        if self.best.is_none() {
            self.best = Some(Best {
                code: 408,
                bytes: None,
            });
        }
        if self.cancelled || !env.cfg.fails_over(408) {
            self.finish_stored(req, env);
        } else {
            self.try_next_stored(req, env);
        }
    }

    /// Branch `k`'s transaction passed a response up (§16.7).
    fn passed_up(
        &mut self,
        req: &Stored,
        env: &mut Env<'_, '_, '_>,
        k: usize,
        m: &Message<'_>,
        code: u16,
    ) {
        let current = self.current == Some(k);
        // An answer from outside the pool (the outbound proxy's callee)
        // found behind NAT gets its SDP fixed with `nat_sdp`.
        let hop = &self.branches[k].hop;
        let behind_nat = hop.dest(env).is_none()
            && m.elements(sip::HeaderName::Via)
                .next()
                .and_then(|v| sip::Via::parse(v.text).ok())
                .is_some_and(|top| {
                    crate::proxy::nat_sdp::answer_behind_nat(env.edge, m, &top, hop.to.addr)
                });
        let nat_sdp = behind_nat.then(|| hop.to.addr.ip());
        let hiding = env.edge.hiding().then(|| crate::proxy::hiding::Answer {
            edge: env.edge,
            local: &env.edge.locals[req.upstream.local],
            from_pool: hop.dest(env).is_some(),
        });
        let policy = if env.edge.peers().rewrites() {
            let came = (hop.to.transport, hop.to.addr.ip());
            let from_pool = hop.dest(env).is_some();
            crate::proxy::normalize::response_policy(env.edge, from_pool, came, &req.upstream)
        } else {
            None
        };
        let b = &mut self.branches[k];
        if code < 200 {
            b.provisional = true;
            b.failover_at = None;
            if req.kind == Kind::Invite && b.client.is_pending() {
                b.timer_c = Some(env.now + env.cfg.invite_timeout);
            }
            // A provisional from a branch no longer waited on (given up, or
            // the caller has its answer) or one the caller cancelled.
            if b.cancel_wanted || !current {
                b.cancel_wanted = true;
                if b.cancel.is_none() {
                    self.send_cancel(req, env, k);
                }
                return;
            }
            // 100 is hop by hop (§16.7 step 3); the others go upstream while
            // the caller still waits.
            if code > 100
                && current
                && !self.server.is_final()
                && messages::relay(env.s.splicer, env.s.out, m, None, nat_sdp, policy, hiding)
            {
                self.last.clone_from(env.s.out);
                env.s.sends.push(env.s.out, req.upstream);
                env.s.stats.count(Event::ResponseForwarded);
                self.server.sent_provisional();
            }
            return;
        }
        b.failover_at = None;
        b.timer_c = None;
        if code < 300 {
            // Every 2xx to an INVITE goes upstream at once, even after a
            // final (§16.7 step 10): the caller's UA sorts out extra
            // dialogs. A non-INVITE has one final answer.
            let wanted = req.kind == Kind::Invite || !self.server.is_final();
            if let (Kind::Invite, Some(i)) = (req.kind, b.hop.dest(env)) {
                // A call in progress, for the channel limits.
                env.edge
                    .limits()
                    .call_answered(m.call_id().unwrap_or_default(), i, env.now);
            }
            if wanted && messages::relay(env.s.splicer, env.s.out, m, None, nat_sdp, policy, hiding)
            {
                env.s.sends.push(env.s.out, req.upstream);
                env.s.stats.count(Event::ResponseForwarded);
                if !self.server.is_final() {
                    self.server.sent_final(code, &env.cfg.timers, env.now);
                    self.best = None;
                    if req.kind == Kind::Invite {
                        // Accepted: INVITE retransmissions are absorbed,
                        // not answered, so the copy is not needed.
                        self.last = Vec::new();
                    } else {
                        self.last.clone_from(env.s.out);
                    }
                }
            }
            if current {
                self.current = None;
            }
            self.cancel_pending(req, env);
            return;
        }
        if !self.server.is_final() && Best::replaces(self.best.as_ref(), code) {
            let mut bytes = Vec::new();
            if messages::relay(
                env.s.splicer,
                &mut bytes,
                m,
                upstream_status(code),
                nat_sdp,
                policy,
                hiding,
            ) {
                self.best = Some(Best {
                    code,
                    bytes: Some(bytes),
                });
            }
        }
        if !current {
            return;
        }
        self.current = None;
        let fail_over = !self.cancelled && code < 600 && env.cfg.fails_over(code);
        if fail_over {
            self.try_next_stored(req, env);
        } else {
            self.finish_stored(req, env);
        }
    }

    /// [`finish`](Self::finish) from the stored request.
    fn finish_stored(&mut self, req: &Stored, env: &mut Env<'_, '_, '_>) {
        if self.server.is_final() {
            return;
        }
        let done = reparse(req, env, |env, m, c| self.finish(req, env, Some((m, c))));
        if done.is_none() {
            self.finish(req, env, None);
        }
    }

    /// Sends the caller the final answer: the best response received, or a
    /// local 487 (cancelled) / 408 (nobody answered), then cancels every
    /// branch still waiting (§16.7 step 10).
    fn finish(
        &mut self,
        req: &Stored,
        env: &mut Env<'_, '_, '_>,
        request: Option<(&Message<'_>, &Checked<'_>)>,
    ) {
        if self.server.is_final() {
            return;
        }
        let code = match self.best.take() {
            Some(Best {
                code,
                bytes: Some(bytes),
            }) => {
                env.s.out.clone_from(&bytes);
                env.s.stats.count(Event::ResponseForwarded);
                code
            }
            // Only a 408 is ever kept without bytes (a branch timed out).
            _ => {
                let (code, reason) = if self.cancelled {
                    (487, "Request Terminated")
                } else {
                    (408, "Request Timeout")
                };
                let Some((m, c)) = request else {
                    // The stored request no longer reads (it always does:
                    // it was checked on arrival). Nothing can answer it.
                    self.server.abandon();
                    return;
                };
                let o = &c.origin;
                write_reply(env.s, m, o, code, reason, &[]);
                env.s.stats.count(Event::Replied);
                code
            }
        };
        self.last.clone_from(env.s.out);
        env.s.sends.push(env.s.out, req.upstream);
        self.server.sent_final(code, &env.cfg.timers, env.now);
        self.current = None;
        self.cancel_pending(req, env);
    }

    /// Cancels every INVITE branch still waiting: at once where a
    /// provisional came, else when one does.
    fn cancel_pending(&mut self, req: &Stored, env: &mut Env<'_, '_, '_>) {
        if req.kind != Kind::Invite {
            return;
        }
        for k in 0..self.branches.len() {
            let b = &mut self.branches[k];
            if !b.client.is_pending() || b.cancel.is_some() {
                continue;
            }
            b.cancel_wanted = true;
            if b.provisional {
                self.send_cancel(req, env, k);
            }
        }
    }

    /// Sends (or resends) the CANCEL of branch `k`.
    fn send_cancel(&mut self, req: &Stored, env: &mut Env<'_, '_, '_>, k: usize) {
        let out = self.branches[k].out;
        let sent = reparse(req, env, |env, m, c| {
            same_transaction(env, m, c, &out, k, messages::cancel);
            env.s.sends.push(env.s.out, out);
        });
        let b = &mut self.branches[k];
        if sent.is_some() && b.cancel.is_none() {
            b.cancel = Some(ClientTx::start(Kind::NonInvite, &env.cfg.timers, env.now));
        }
    }

    /// Sends the ACK of final response `resp` on branch `k`.
    fn send_ack(&mut self, req: &Stored, env: &mut Env<'_, '_, '_>, k: usize, resp: &Message<'_>) {
        let out = self.branches[k].out;
        reparse(req, env, |env, m, c| {
            same_transaction(env, m, c, &out, k, |w, sent, ours, via| {
                messages::ack(w, sent, ours, resp, via);
            });
            env.s.sends.push(env.s.out, out);
        });
    }

    /// Retransmits branch `k`'s request (Timer A or E).
    fn resend(&mut self, req: &Stored, env: &mut Env<'_, '_, '_>, k: usize) {
        let out = self.branches[k].out;
        reparse(req, env, |env, m, c| {
            splice(env.edge, env.s, m, c, &out, k as u8);
            env.s.sends.push(env.s.out, out);
        });
    }
}

/// Writes the CANCEL or the ACK of branch `k` into `env.s.out` with
/// `write`, from the INVITE `m` (checked as `c`) as it came — or, when
/// the edge's peers rewrite numbers, from the INVITE as it was sent on
/// the branch, whose Request-URI, From and To they repeat (RFC 3261
/// §9.1, §17.1.1.3).
fn same_transaction(
    env: &mut Env<'_, '_, '_>,
    m: &Message<'_>,
    c: &Checked<'_>,
    out: &Flow,
    k: usize,
    write: impl FnOnce(&mut Vec<u8>, &Message<'_>, usize, &OurVia<'_>),
) {
    let via = our_via(env, c, out, k);
    if env.edge.peers().rewrites() {
        splice(env.edge, env.s, m, c, out, k as u8);
        let spliced = env.s.out.clone();
        let mut index = sip::HeaderIndex::new();
        if let Ok(sent) = sip::parse(&spliced, &mut index) {
            write(env.s.out, &sent, 0, &via);
            return;
        }
    }
    write(env.s.out, m, c.ours(), &via);
}

/// Our Via on branch `k` of the request checked as `c`, sent on `out`.
fn our_via<'e>(env: &Env<'e, '_, '_>, c: &Checked<'_>, out: &Flow, k: usize) -> OurVia<'e> {
    let edge = env.edge;
    OurVia {
        transport: out.transport,
        sent_by: edge.locals[out.local].sent_by.as_bytes(),
        mac: c.branch_mac(edge, k as u8),
        loop_hash: c.loop_hash,
        attempt: k as u8,
    }
}
