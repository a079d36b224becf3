//! T1, T2, T4 and the timers derived from them (RFC 3261 Table 4).

use std::time::Duration;

/// The three base values every transaction timer derives from. Configurable
/// per edge (`[edge.transaction]`): networks with long round trips raise T1;
/// tests lower it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate: first retransmission interval (Timers A, E, G).
    pub t1: Duration,
    /// Longest retransmission interval for non-INVITE requests and INVITE
    /// responses.
    pub t2: Duration,
    /// Longest time a message stays in the network (Timers I and K).
    pub t4: Duration,
    /// How long a transaction that has its final answer is kept to absorb
    /// retransmissions: Timers D, J, L and M. RFC 3261 and RFC 6026 say
    /// 64×T1 (32 s) over UDP; a proxy that keeps every finished request that
    /// long holds about 64 transactions per call per second of load — at
    /// 1,500 calls/s, 100,000 — for retransmissions that, once the proxy's
    /// own 100 Trying has gone out, only follow a lost datagram. Like
    /// Kamailio's tm (its wait timer), the default is 5 s; 32 gives the
    /// RFC's values. A retransmission arriving later still reaches the
    /// server, which absorbs it.
    pub linger: Duration,
}

impl Default for Timers {
    /// RFC 3261's values: T1 = 500 ms, T2 = 4 s, T4 = 5 s; a finished
    /// transaction lingers 5 s (see [`Timers::linger`]).
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            linger: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64×T1: Timers B, F and H (how long to wait for an answer).
    pub fn long(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// The next interval of a doubling retransmission timer: twice the
    /// last, capped at T2 when `capped` (Timers E and G; Timer A is not).
    pub fn backoff(&self, last: Duration, capped: bool) -> Duration {
        let next = last.saturating_mul(2);
        if capped {
            next.min(self.t2)
        } else {
            next
        }
    }
}
