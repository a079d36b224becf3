//! The call-record writer (`[records]`): takes what the edges report
//! from a bounded queue, joins it into JSON lines ([`join`]) and writes
//! them to a file or stdout, from a thread of its own.
//!
//! The forwarding threads only ever try to queue: when the queue is full
//! (a disk that stalls) the record is dropped and counted. The file is
//! rotated by size or age (`rotate_size`, `rotate_interval`: renamed
//! with the time, a new one opened), and reopened on SIGUSR1 for
//! logrotate's `postrotate`.

mod file;
mod join;

use crate::offload::Queue;
use edge::records::{Record, Sink};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Set on SIGUSR1: the writer reopens its file at its next turn.
pub static REOPEN: AtomicBool = AtomicBool::new(false);

/// How often the writer takes what is queued, writes it and flushes,
/// sweeps stale attempts, rotates by age and reopens on SIGUSR1: the
/// delay of a record, and what spares the forwarding threads a wake-up
/// per record.
const TICK: Duration = Duration::from_millis(100);

/// What became of the records (`sipedge_call_records_total`): `done` is
/// lines written; `queue_full`, facts dropped; `failed`, lines that could
/// not be written (the file gone, the disk full).
pub use crate::offload::Counts;

/// The edges' sink: a bounded queue to the writer thread.
#[derive(Debug)]
pub struct Sender(Queue<Record>);

impl Sink for Sender {
    fn offer(&self, record: Record) {
        self.0.offer(record);
    }
}

/// Opens the output and starts the writer thread for `cfg` on node
/// `node`; the sink to give the edges, and the counts for `/metrics`.
pub fn start(
    cfg: &edge::config::Records,
    node: &str,
) -> Result<(Arc<Sender>, Arc<Counts>), String> {
    let out = file::Out::open(cfg).map_err(|e| format!("[records] file: {e}"))?;
    let (queue, rx, counts) = Queue::new(cfg.queue);
    let thread_counts = Arc::clone(&counts);
    let calls = join::Calls::new(node);
    let writer = std::thread::Builder::new()
        .name("sipedge-records".into())
        .spawn(move || run(rx, out, calls, &thread_counts))
        .map_err(|e| format!("[records]: cannot start the writer thread: {e}"))?;
    if let Ok(mut w) = WRITER.lock() {
        *w = Some(writer);
    }
    Ok((Arc::new(Sender(queue)), counts))
}

/// The writer thread: until every sink is gone, or [`finish`].
///
/// It never waits on the queue (a blocked receiver would make every
/// offer a wake-up, a system call on the forwarding thread): it sleeps a
/// tick, then takes everything waiting.
fn run(rx: Receiver<Record>, mut out: file::Out, mut calls: join::Calls, counts: &Counts) {
    let mut lines = Vec::with_capacity(64 * 1024);
    loop {
        let stopping = STOP.load(Relaxed);
        if !stopping {
            std::thread::sleep(TICK);
        }
        let mut gone = false;
        loop {
            match rx.try_recv() {
                Ok(r) => calls.take(r, &mut lines),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
            if lines.len() > 60 * 1024 {
                write(&mut out, &mut lines, counts);
            }
        }
        let now = SystemTime::now();
        calls.sweep(now, &mut lines);
        if gone || stopping {
            calls.flush(now, &mut lines);
        }
        // Reopened before anything more is written: what came after the
        // signal goes to the new file.
        let reopen = REOPEN.swap(false, Relaxed);
        if reopen {
            if let Err(e) = out.tick(now, true) {
                tracing::warn!("[records]: {e}");
            }
        }
        write(&mut out, &mut lines, counts);
        if let Err(e) = out.tick(now, false) {
            tracing::warn!("[records]: {e}");
        }
        if gone || stopping {
            return;
        }
    }
}

/// Writes the lines made so far.
fn write(out: &mut file::Out, lines: &mut Vec<u8>, counts: &Counts) {
    if lines.is_empty() {
        return;
    }
    let n = lines.iter().filter(|&&b| b == b'\n').count() as u64;
    match out.write(lines) {
        Ok(()) => counts.done.fetch_add(n, Relaxed),
        Err(e) => {
            tracing::warn!("[records]: cannot write call records: {e}");
            counts.failed.fetch_add(n, Relaxed)
        }
    };
    lines.clear();
}

/// Set by [`finish`]: the writer writes what is waiting and ends.
static STOP: AtomicBool = AtomicBool::new(false);

/// The writer thread, for [`finish`].
static WRITER: std::sync::Mutex<Option<std::thread::JoinHandle<()>>> = std::sync::Mutex::new(None);

/// At shutdown: has the writer write and flush everything queued, and
/// waits for it (a tick at most).
pub fn finish() {
    STOP.store(true, Relaxed);
    let writer = WRITER.lock().ok().and_then(|mut w| w.take());
    if let Some(w) = writer {
        let _ = w.join();
    }
}
