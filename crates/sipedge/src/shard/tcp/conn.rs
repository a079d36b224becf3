//! One connection: a reader that frames what arrives (RFC 3261 §18.3,
//! `sip::Framer`), hands each message to the pipeline and answers CRLF
//! pings, and a writer that empties the connection's queue. The reader
//! closes a connection that trickles a header section past
//! `header_timeout`, carries nothing for `idle_timeout`, sends a message
//! that cannot be framed or is longer than `max_message` (those are
//! answered first), or does not read what is written to it.

use super::super::{send, Served};
use super::registry::{Closed, Handle, Slot};
use edge::flow::{Flow, Transport};
use sip::{Frame, Framer};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Room a connection's read buffer starts with.
const READ_BUF: usize = 4096;

/// A connection's queue: its handle (registered, so every shard can write
/// to it) and the receiving end its writer empties.
pub(crate) struct Queue {
    pub(crate) handle: Handle,
    pub(crate) rx: mpsc::Receiver<Vec<u8>>,
}

/// Runs the connection `stream` to `remote` on local address `local` of
/// the served edge until it ends, holding `slot`. `queue` is the one
/// registered already (a connection sipedge opened, whose first messages
/// may wait in it); an accepted connection gets its own here.
pub(crate) async fn run(
    served: Rc<Served>,
    stream: TcpStream,
    local: usize,
    remote: SocketAddr,
    mut slot: Slot,
    queue: Option<Queue>,
) {
    let registry = std::sync::Arc::clone(&served.registry);
    let Queue { handle, rx } = match queue {
        Some(q) => q,
        None => {
            let (handle, rx) = Handle::new();
            registry.register(
                &mut slot,
                served.edge,
                Transport::Tcp,
                remote,
                handle.clone(),
            );
            Queue { handle, rx }
        }
    };
    let flow = Flow {
        transport: Transport::Tcp,
        local,
        remote,
        conn: slot.id(),
    };
    let (mut read, write) = stream.into_split();
    let writer = tokio::task::spawn_local(write_all(write, rx));
    let limits = &registry.limits;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
    let mut framer = Framer::default();
    let mut since = Instant::now();
    let why = 'read: loop {
        // A message begun must be framed within header_timeout of its
        // first byte; between messages the connection may idle.
        let limit = if buf.is_empty() {
            limits.idle_timeout
        } else {
            limits.header_timeout
        };
        let wait = limit
            .saturating_sub(since.elapsed())
            .max(Duration::from_millis(1));
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_BUF);
        }
        let was_empty = buf.is_empty();
        let got = tokio::select! {
            r = tokio::time::timeout(wait, read.read_buf(&mut buf)) => r,
            () = handle.close.notified() => break Some(Closed::Stuck),
        };
        match got {
            Ok(Ok(0)) | Ok(Err(_)) => break None,
            Ok(Ok(_)) => {}
            Err(_) if was_empty => break Some(Closed::Idle),
            Err(_) => break Some(Closed::HeaderTimeout),
        }
        if was_empty {
            since = Instant::now();
        }
        loop {
            match framer.next(&buf, limits.max_message) {
                Frame::NeedMore => break,
                Frame::Ping => {
                    handle.push(b"\r\n".to_vec(), &registry);
                    buf.drain(..4);
                }
                Frame::KeepAlive => {
                    buf.drain(..2);
                }
                Frame::Message(n) => {
                    send::handle(&served, &buf[..n], flow);
                    buf.drain(..n);
                    since = Instant::now();
                    if buf.is_empty() && buf.capacity() > 4 * READ_BUF {
                        // One large message does not keep an idle
                        // connection's memory.
                        buf = Vec::with_capacity(READ_BUF);
                    }
                }
                Frame::Unframed { why, head } => {
                    if let Some(h) = head {
                        send::unframed(&served, &buf[..h], why, flow);
                    }
                    break 'read Some(match why {
                        sip::Unframed::TooLarge => Closed::TooLarge,
                        _ => Closed::Unframed,
                    });
                }
            }
        }
    };
    if let Some(why) = why {
        registry.count(why);
    }
    // Unregistered: no new message finds it; the writer sends what is
    // queued (the answer to the last message, say) and closes — given a
    // moment, since a peer that does not read would hold it forever.
    drop(slot);
    drop(handle);
    drop(buf);
    let mut writer = writer;
    if tokio::time::timeout(CLOSING, &mut writer).await.is_err() {
        writer.abort();
    }
}

/// How long a closing connection's writer may take to send what is left.
const CLOSING: Duration = Duration::from_secs(2);

/// Writes every queued message in order until the queue closes (every
/// handle dropped: the connection unregistered) or the peer is gone.
async fn write_all(mut write: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(m) = rx.recv().await {
        if write.write_all(&m).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}
