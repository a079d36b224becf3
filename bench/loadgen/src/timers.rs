//! Timers as FIFO queues, one per distinct delay.
//!
//! Every timer of the call flow is "this long from now" with one of a few
//! fixed delays (500 ms, 1 s, 2 s, 4 s retransmission intervals, the
//! timeout, the hold time, the time-wait). Timers pushed into the queue of
//! one delay therefore expire in the order they were pushed, and a queue
//! per delay is a priority queue with O(1) push and pop. Cancelling is
//! lazy: a timer carries the call's slot, generation and a token, and the
//! owner ignores it when they no longer match.

use std::collections::VecDeque;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// UAC: retransmit the INVITE (Timer A) or the BYE (Timer E).
    UacRetransmit,
    /// UAC: no final response to the INVITE in time.
    UacInviteTimeout,
    /// UAC: no final response to the BYE in time.
    UacByeTimeout,
    /// UAC: the hold time after the ACK is over: send the BYE.
    UacHangUp,
    /// UAS: retransmit the 200 OK (Timer G) until the ACK comes.
    UasRetransmit,
    /// UAS: no ACK in time.
    UasAckTimeout,
    /// UAS: no BYE in time after the ACK.
    UasByeTimeout,
    /// UAS: end of the time-wait after the BYE (absorbs retransmissions).
    UasTimeWait,
}

/// One pending timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    /// Deadline, nanoseconds on the run's clock.
    pub at: u64,
    /// Call or dialog slot.
    pub slot: u32,
    /// Generation of the slot when the timer was set.
    pub gen: u32,
    /// Owner-defined token (which retransmission this is).
    pub token: u32,
    /// What it is for.
    pub kind: Kind,
}

/// Index of one delay's queue, from [`Timers::queue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueId(usize);

/// All timers of a run.
#[derive(Debug, Default)]
pub struct Timers {
    queues: Vec<(u64, VecDeque<Timer>)>,
}

impl Timers {
    /// No queues yet.
    pub fn new() -> Timers {
        Timers::default()
    }

    /// The queue for timers of `delay_ns`, created on first use.
    pub fn queue(&mut self, delay_ns: u64) -> QueueId {
        if let Some(i) = self.queues.iter().position(|(d, _)| *d == delay_ns) {
            return QueueId(i);
        }
        self.queues.push((delay_ns, VecDeque::with_capacity(1024)));
        QueueId(self.queues.len() - 1)
    }

    /// Sets a timer for `now` + the queue's delay.
    pub fn schedule(&mut self, q: QueueId, now: u64, slot: u32, gen: u32, token: u32, kind: Kind) {
        let (delay, queue) = &mut self.queues[q.0];
        queue.push_back(Timer {
            at: now + *delay,
            slot,
            gen,
            token,
            kind,
        });
    }

    /// The earliest timer due at `now`, removed.
    pub fn pop_due(&mut self, now: u64) -> Option<Timer> {
        let mut best: Option<(usize, u64)> = None;
        for (i, (_, q)) in self.queues.iter().enumerate() {
            if let Some(t) = q.front() {
                if t.at <= now && best.is_none_or(|(_, at)| t.at < at) {
                    best = Some((i, t.at));
                }
            }
        }
        best.and_then(|(i, _)| self.queues[i].1.pop_front())
    }

    /// When the next timer is due, if any is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        self.queues
            .iter()
            .filter_map(|(_, q)| q.front().map(|t| t.at))
            .min()
    }

    /// Timers pending (including ones that will be ignored).
    pub fn len(&self) -> usize {
        self.queues.iter().map(|(_, q)| q.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_come_out_in_deadline_order_across_queues() {
        let mut t = Timers::new();
        let short = t.queue(500);
        let long = t.queue(2_000);
        assert_eq!(t.queue(500), short);
        t.schedule(long, 0, 1, 0, 0, Kind::UacInviteTimeout); // at 2000
        t.schedule(short, 100, 2, 0, 0, Kind::UacRetransmit); // at 600
        t.schedule(short, 1_600, 3, 0, 0, Kind::UacRetransmit); // at 2100
        assert_eq!(t.next_deadline(), Some(600));
        assert_eq!(t.pop_due(599), None);
        assert_eq!(t.pop_due(5_000).map(|x| x.slot), Some(2));
        assert_eq!(t.pop_due(5_000).map(|x| x.slot), Some(1));
        assert_eq!(t.pop_due(2_099), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(2_100).map(|x| x.slot), Some(3));
        assert_eq!(t.next_deadline(), None);
    }
}
