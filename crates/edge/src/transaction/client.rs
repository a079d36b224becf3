//! The client transaction (RFC 3261 §17.1, RFC 6026 §7.2), over UDP.

use std::time::{Duration, Instant};

use super::{Kind, OnTimer, Timers};

/// Where a client transaction is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, nothing heard yet (Timers A and B run).
    Calling,
    /// Non-INVITE sent, nothing heard yet (Timers E and F run).
    Trying,
    /// A provisional response came (non-INVITE: E at T2 and F still run).
    Proceeding,
    /// A final response came; absorbing its retransmissions (Timer D or K).
    Completed,
    /// An INVITE got a 2xx; later 2xx are still passed up (Timer M).
    Accepted,
    /// Over.
    Terminated,
}

/// What to do with a response the transaction matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnResponse {
    /// Hand it to the transaction user (the proxy core).
    PassUp,
    /// Hand it to the TU and send the ACK for it (first non-2xx final of an
    /// INVITE, §17.1.1.3: the ACK is hop by hop, the transaction's own).
    PassUpAndAck,
    /// A retransmitted non-2xx final: send the ACK again, tell nobody.
    Ack,
    /// Nothing to do.
    Absorb,
}

/// One client transaction: the state, the retransmission timer (A or E) and
/// the end timer (B, F, D, K or M) as deadlines.
#[derive(Clone, Debug)]
pub struct ClientTx {
    kind: Kind,
    state: ClientState,
    /// When the request is due again, while it is still retransmitted.
    retransmit_at: Option<Instant>,
    /// The interval that led to `retransmit_at`.
    interval: Duration,
    /// When the current state ends (B/F: give up; D/K/M: terminate).
    end_at: Option<Instant>,
}

impl ClientTx {
    /// A transaction whose request was just sent at `now`: Timer A (E) at
    /// T1 and Timer B (F) at 64×T1.
    pub fn start(kind: Kind, timers: &Timers, now: Instant) -> ClientTx {
        ClientTx {
            kind,
            state: match kind {
                Kind::Invite => ClientState::Calling,
                Kind::NonInvite => ClientState::Trying,
            },
            retransmit_at: Some(now + timers.t1),
            interval: timers.t1,
            end_at: Some(now + timers.long()),
        }
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// True once the transaction has ended and may be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }

    /// True while no final response has come and it has not timed out.
    pub fn is_pending(&self) -> bool {
        matches!(
            self.state,
            ClientState::Calling | ClientState::Trying | ClientState::Proceeding
        )
    }

    /// The earliest instant at which [`on_timer`](Self::on_timer) has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.retransmit_at, self.end_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Stops retransmitting the request while still waiting for (and
    /// matching) a late answer until Timer B or F: the proxy gave up on this
    /// destination and moved on (its failover timer), but a late provisional
    /// must still be cancelled and a late final still acknowledged.
    pub fn stop_retransmitting(&mut self) {
        self.retransmit_at = None;
    }

    /// A response with status `code` matched this transaction at `now`.
    pub fn on_response(&mut self, code: u16, timers: &Timers, now: Instant) -> OnResponse {
        use ClientState::*;
        let provisional = code < 200;
        let success = (200..300).contains(&code);
        match (self.kind, self.state) {
            (_, Terminated) => OnResponse::Absorb,
            // §17.1.1.2: a provisional stops Timer A (and B: the proxy's
            // Timer C takes over for INVITE).
            (Kind::Invite, Calling | Proceeding) if provisional => {
                self.state = Proceeding;
                self.retransmit_at = None;
                self.end_at = None;
                OnResponse::PassUp
            }
            // RFC 6026 §7.2: 2xx moves to Accepted for Timer M, so that
            // retransmitted 2xx (and 2xx from other forks) are still passed up.
            (Kind::Invite, Calling | Proceeding) if success => {
                self.state = Accepted;
                self.retransmit_at = None;
                self.end_at = Some(now + timers.linger); // Timer M
                OnResponse::PassUp
            }
            (Kind::Invite, Calling | Proceeding) => {
                self.state = Completed;
                self.retransmit_at = None;
                self.end_at = Some(now + timers.linger); // Timer D
                OnResponse::PassUpAndAck
            }
            (Kind::Invite, Completed) if code >= 300 => OnResponse::Ack,
            (Kind::Invite, Accepted) if success => OnResponse::PassUp,
            (Kind::Invite, _) => OnResponse::Absorb,
            // §17.1.2.2: a provisional moves to Proceeding, where Timer E
            // fires every T2.
            (Kind::NonInvite, Trying | Proceeding) if provisional => {
                if self.state == Trying {
                    self.state = Proceeding;
                }
                OnResponse::PassUp
            }
            (Kind::NonInvite, Trying | Proceeding) => {
                self.state = Completed;
                self.retransmit_at = None;
                self.end_at = Some(now + timers.t4); // Timer K
                OnResponse::PassUp
            }
            (Kind::NonInvite, _) => OnResponse::Absorb,
        }
    }

    /// Runs what is due at `now`: at most one step, the end timer first.
    /// Call again while [`next_deadline`](Self::next_deadline) is not after `now`.
    pub fn on_timer(&mut self, timers: &Timers, now: Instant) -> OnTimer {
        use ClientState::*;
        if self.end_at.is_some_and(|t| t <= now) {
            let pending = self.is_pending();
            self.state = Terminated;
            self.retransmit_at = None;
            self.end_at = None;
            return if pending {
                OnTimer::TimedOut
            } else {
                OnTimer::Terminated
            };
        }
        match self.retransmit_at {
            Some(t) if t <= now => {
                self.interval = match (self.kind, self.state) {
                    // Timer A doubles without a cap.
                    (Kind::Invite, _) => timers.backoff(self.interval, false),
                    // Timer E: doubling up to T2 while Trying, T2 once Proceeding.
                    (Kind::NonInvite, Proceeding) => timers.t2,
                    (Kind::NonInvite, _) => timers.backoff(self.interval, true),
                };
                self.retransmit_at = Some(now + self.interval);
                OnTimer::Retransmit
            }
            _ => OnTimer::Nothing,
        }
    }
}
