//! The RFC 3261 §17 transaction layer as sans-IO state machines.
//!
//! A [`ClientTx`] or [`ServerTx`] knows nothing of bytes, sockets or clocks:
//! it is told what happened (a response with this code arrived, a request
//! was retransmitted, it is now this instant) and answers with what to do
//! (forward it, send the ACK, retransmit, give up). Its timers are plain
//! deadlines the caller reads with `next_deadline` and fires by calling
//! `on_timer` with the time (the shape of quinn-proto), so every timer case
//! of §17 is a deterministic unit test without sleeping.
//!
//! Timers follow §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2 and RFC 6026 (the
//! Accepted states, Timers L and M). Timers B, F and H last 64×T1; D, J, L
//! and M — how long a finished transaction absorbs retransmissions — last
//! [`Timers::linger`] (5 s by default, like Kamailio's tm; the RFCs' 32 s
//! when set so).

mod client;
mod server;
mod timers;

pub use client::{ClientState, ClientTx, OnResponse};
pub use server::{OnRequest, ServerState, ServerTx};
pub use timers::Timers;

/// Whether a transaction carries an INVITE: the two kinds run different
/// state machines (§17.1.1 vs §17.1.2, §17.2.1 vs §17.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// INVITE: three-way handshake, ACK for non-2xx finals, Timer A/B/D.
    Invite,
    /// Every other method but ACK (which never forms a transaction).
    NonInvite,
}

/// What a timer said when it fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnTimer {
    /// Nothing was due (a stale wake-up).
    Nothing,
    /// Send the request (client) or the last response (server) again.
    Retransmit,
    /// The transaction gave up waiting: Timer B or F (client: no final
    /// response, the TU acts as if a 408 came) or H (server: no ACK).
    TimedOut,
    /// The transaction is over; it may be forgotten.
    Terminated,
}

#[cfg(test)]
mod tests;
