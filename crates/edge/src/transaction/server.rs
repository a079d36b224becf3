//! The server transaction (RFC 3261 §17.2, RFC 6026 §7.1), over UDP.

use std::time::{Duration, Instant};

use super::{Kind, OnTimer, Timers};

/// Where a server transaction is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE received, nothing sent yet: retransmissions are absorbed.
    Trying,
    /// A provisional was sent (an INVITE's 100 Trying at once):
    /// retransmissions get the last provisional again.
    Proceeding,
    /// A final response was sent (non-2xx for INVITE): retransmissions get
    /// it again; INVITE: Timer G resends it until the ACK, Timer H gives up;
    /// non-INVITE: Timer J.
    Completed,
    /// INVITE: the ACK came; later ACKs are absorbed until Timer I.
    Confirmed,
    /// INVITE: a 2xx was sent; retransmitted INVITEs are absorbed until
    /// Timer L (the 2xx itself is retransmitted end to end, not by us).
    Accepted,
    /// Over.
    Terminated,
}

/// What to do with a request that matched the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRequest {
    /// Send the last response again.
    Resend,
    /// Nothing to do.
    Absorb,
}

/// One server transaction: the state and its timers as deadlines.
#[derive(Clone, Debug)]
pub struct ServerTx {
    kind: Kind,
    state: ServerState,
    /// Timer G: when the final response is due again (INVITE, Completed).
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// H, I, J or L: when the current state ends.
    end_at: Option<Instant>,
}

impl ServerTx {
    /// A transaction for a request just received. An INVITE starts in
    /// Proceeding: the proxy sends 100 Trying at once (§16.2, §17.2.1), so
    /// the caller stops retransmitting.
    pub fn start(kind: Kind) -> ServerTx {
        ServerTx {
            kind,
            state: match kind {
                Kind::Invite => ServerState::Proceeding,
                Kind::NonInvite => ServerState::Trying,
            },
            retransmit_at: None,
            interval: Duration::ZERO,
            end_at: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// True once a final response has been sent (or the transaction ended).
    pub fn is_final(&self) -> bool {
        !matches!(self.state, ServerState::Trying | ServerState::Proceeding)
    }

    /// True once the transaction has ended and may be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    /// The earliest instant at which [`on_timer`](Self::on_timer) has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.retransmit_at, self.end_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The request arrived again (not an ACK).
    pub fn on_retransmission(&self) -> OnRequest {
        match self.state {
            ServerState::Proceeding | ServerState::Completed => OnRequest::Resend,
            _ => OnRequest::Absorb,
        }
    }

    /// An ACK matched this (INVITE) transaction: in Completed it confirms
    /// the final response and starts Timer I. Returns whether it did, so
    /// the caller knows the ACK was the hop-by-hop one and goes no further.
    pub fn on_ack(&mut self, timers: &Timers, now: Instant) -> bool {
        match self.state {
            ServerState::Completed if self.kind == Kind::Invite => {
                self.state = ServerState::Confirmed;
                self.retransmit_at = None;
                self.end_at = Some(now + timers.t4);
                true
            }
            ServerState::Confirmed => true,
            _ => false,
        }
    }

    /// The TU sent a provisional response.
    pub fn sent_provisional(&mut self) {
        if self.state == ServerState::Trying {
            self.state = ServerState::Proceeding;
        }
    }

    /// The TU sent a final response with status `code` at `now`.
    pub fn sent_final(&mut self, code: u16, timers: &Timers, now: Instant) {
        if self.is_final() {
            return;
        }
        match self.kind {
            Kind::Invite if (200..300).contains(&code) => {
                self.state = ServerState::Accepted;
                self.end_at = Some(now + timers.linger); // Timer L
            }
            Kind::Invite => {
                self.state = ServerState::Completed;
                self.interval = timers.t1;
                self.retransmit_at = Some(now + timers.t1); // Timer G
                self.end_at = Some(now + timers.long()); // Timer H
            }
            Kind::NonInvite => {
                self.state = ServerState::Completed;
                self.end_at = Some(now + timers.linger); // Timer J
            }
        }
    }

    /// Ends the transaction at once, answered or not: for a request the
    /// transaction user can no longer answer, so it does not linger.
    pub fn abandon(&mut self) {
        self.state = ServerState::Terminated;
        self.retransmit_at = None;
        self.end_at = None;
    }

    /// Runs what is due at `now`: at most one step, the end timer first.
    pub fn on_timer(&mut self, timers: &Timers, now: Instant) -> OnTimer {
        if self.end_at.is_some_and(|t| t <= now) {
            let no_ack = self.kind == Kind::Invite && self.state == ServerState::Completed;
            self.state = ServerState::Terminated;
            self.retransmit_at = None;
            self.end_at = None;
            return if no_ack {
                OnTimer::TimedOut
            } else {
                OnTimer::Terminated
            };
        }
        match self.retransmit_at {
            Some(t) if t <= now => {
                self.interval = timers.backoff(self.interval, true);
                self.retransmit_at = Some(now + self.interval);
                OnTimer::Retransmit
            }
            _ => OnTimer::Nothing,
        }
    }
}
