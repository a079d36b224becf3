//! Work handed from the forwarding threads to a thread of its own (the
//! HEP sender, the call-record writer): a bounded queue they only ever
//! *try* to fill, so a slow consumer costs dropped items, counted, never
//! a stalled call.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// What became of the items offered (`/metrics`).
#[derive(Debug, Default)]
pub struct Counts {
    /// Done by the consumer (traces sent, record lines written).
    pub done: AtomicU64,
    /// Dropped because the queue was full.
    pub queue_full: AtomicU64,
    /// Dropped because the consumer could not do them (or is gone).
    pub failed: AtomicU64,
}

impl Counts {
    /// Done, queue full, failed.
    pub fn read(&self) -> [u64; 3] {
        [
            self.done.load(Relaxed),
            self.queue_full.load(Relaxed),
            self.failed.load(Relaxed),
        ]
    }
}

/// The producers' end.
#[derive(Debug)]
pub struct Queue<T> {
    queue: SyncSender<T>,
    counts: Arc<Counts>,
}

impl<T> Queue<T> {
    /// A queue of `capacity` items; the consumer's end and the counts
    /// both ends share.
    pub fn new(capacity: usize) -> (Queue<T>, Receiver<T>, Arc<Counts>) {
        let (queue, rx) = sync_channel(capacity);
        let counts = Arc::new(Counts::default());
        let q = Queue {
            queue,
            counts: Arc::clone(&counts),
        };
        (q, rx, counts)
    }

    /// Queues `item`, or drops it and counts why.
    pub fn offer(&self, item: T) {
        match self.queue.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counts.queue_full.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counts.failed.fetch_add(1, Relaxed);
            }
        }
    }
}
