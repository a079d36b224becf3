//! One connection: a reader that frames what arrives (RFC 3261 §18.3,
//! `sip::Framer`), hands each message to the pipeline and answers CRLF
//! pings, and a writer that sends what the shard's tasks appended to the
//! connection's output (see `local.rs`) and what other shards queued, as
//! few writes as it can. The reader
//! closes a connection that trickles a header section past
//! `header_timeout`, carries nothing for `idle_timeout`, sends a message
//! that cannot be framed or is longer than `max_message` (those are
//! answered first), or does not read what is written to it.

use super::super::{send, Served};
use super::local::Output;
use super::registry::{Closed, Handle, Slot, QUEUE_BYTES};
use edge::flow::{Flow, Transport};
use edge::proxy::ClientTagger;
use sip::{Frame, Framer};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// An open connection, before it is split into reader and writer.
pub(crate) enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// TLS, accepted, with the subject of the client's certificate if it
    /// presented one.
    TlsIn(
        Box<tokio_rustls::server::TlsStream<TcpStream>>,
        Option<String>,
    ),
    /// TLS, opened by sipedge.
    TlsOut(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream::Tcp(s)
    }
}

/// Room a connection's read buffer grows by.
const READ_BUF: usize = 4096;

/// Room it starts with: enough for keep-alives and a short message, so a
/// connection that stays idle (a phone's, between registrations) holds
/// little; the first larger read grows it by [`READ_BUF`].
const FIRST_READ_BUF: usize = 1024;

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
    stream: Stream,
    local: usize,
    remote: SocketAddr,
    slot: Slot,
    queue: Option<Queue>,
) {
    // A TCP stream splits into two owned halves with no lock between
    // them; a TLS stream's halves share its session.
    let ends = |client| Ends {
        local,
        remote,
        slot,
        queue,
        client,
    };
    match stream {
        Stream::Tcp(s) => {
            let (read, write) = s.into_split();
            serve(served, Transport::Tcp, read, write, ends(None)).await
        }
        Stream::TlsIn(s, subject) => {
            let client = Client {
                subject,
                tagger: ClientTagger::default(),
            };
            serve_tls(served, *s, ends(Some(client))).await
        }
        // A TLS connection sipedge opened carries requests too (from a
        // caller it reached again, say): no certificate was checked, so a
        // certificate header on them is removed.
        Stream::TlsOut(s) => {
            let client = Client {
                subject: None,
                tagger: ClientTagger::default(),
            };
            serve_tls(served, *s, ends(Some(client))).await
        }
    }
}

/// A TLS client of an accepted connection: the subject of its
/// certificate, written into its requests in the edge's
/// `client_cert_header` (see `edge::proxy::ClientTagger`).
struct Client {
    subject: Option<String>,
    tagger: ClientTagger,
}

/// Where a connection runs: its local address, its peer, its place under
/// the caps, for one sipedge opened its queue, and for one accepted over
/// TLS its client.
struct Ends {
    local: usize,
    remote: SocketAddr,
    slot: Slot,
    queue: Option<Queue>,
    /// On a connection accepted over TLS, its client.
    client: Option<Client>,
}

/// [`serve`] for a TLS stream, split into halves that share its session.
async fn serve_tls<S>(served: Rc<Served>, stream: S, ends: Ends)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (read, write) = tokio::io::split(stream);
    serve(served, Transport::Tls, read, write, ends).await
}

/// [`run`] once the stream is split: `read` and `write` carry `transport`.
async fn serve<R, W>(served: Rc<Served>, transport: Transport, mut read: R, write: W, ends: Ends)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + 'static,
{
    let Ends {
        local,
        remote,
        mut slot,
        queue,
        mut client,
    } = ends;
    let registry = Arc::clone(&served.registry);
    let Queue { handle, rx } = match queue {
        Some(q) => q,
        None => {
            let (handle, rx) = Handle::new();
            registry.register(&mut slot, served.index, transport, remote, handle.clone());
            Queue { handle, rx }
        }
    };
    let flow = Flow {
        transport,
        local,
        remote,
        conn: slot.id(),
        reconnect: None,
        pinned: false,
        owner: None,
    };
    // What was queued before the connection was up goes first; from now
    // on this shard appends to the output directly.
    let mut rx = rx;
    let out = Rc::new(Output::default());
    while let Ok(m) = rx.try_recv() {
        handle.queued.fetch_sub(m.len(), Ordering::AcqRel);
        out.buf.borrow_mut().extend_from_slice(&m);
    }
    if let Some(id) = flow.conn {
        served.locals.add(id, served.index, transport, remote, &out);
    }
    let writer = tokio::task::spawn_local(write_all(
        write,
        rx,
        Rc::clone(&out),
        Arc::clone(&handle.queued),
        Arc::clone(&handle.close),
    ));
    let limits = &registry.limits;
    let mut buf: Vec<u8> = Vec::with_capacity(FIRST_READ_BUF);
    let mut framer = Framer::default();
    // Until its first complete header section a connection has
    // header_timeout, like a message begun; then idle_timeout between
    // messages (a lone CRLF keep-alive is not a message begun). One timer
    // per connection, moved only when the deadline comes earlier; when it
    // fires early (the deadline moved later meanwhile) it is set again:
    // a read costs no timer operation.
    let mut since = Instant::now();
    let mut spoken = false;
    let timer = tokio::time::sleep(limits.header_timeout);
    tokio::pin!(timer);
    let close = Arc::clone(&handle.close);
    let closed = close.notified();
    tokio::pin!(closed);
    let why = 'read: loop {
        let between = spoken && (buf.is_empty() || buf == b"\r\n");
        let limit = if between {
            limits.idle_timeout
        } else {
            limits.header_timeout
        };
        let deadline = tokio::time::Instant::from_std(since + limit);
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        if buf.capacity() - buf.len() < FIRST_READ_BUF / 2 {
            buf.reserve(READ_BUF);
        }
        let got = tokio::select! {
            r = read.read_buf(&mut buf) => Some(r),
            () = &mut timer => None,
            () = &mut closed => break Some(Closed::Stuck),
        };
        match got {
            Some(Ok(0)) => {
                tracing::debug!(to = %remote, "connection: end of stream");
                break None;
            }
            Some(Err(e)) => {
                tracing::debug!(to = %remote, "connection: {e}");
                break None;
            }
            Some(Ok(_)) => {}
            None if tokio::time::Instant::now() < deadline => {
                timer.as_mut().reset(deadline);
                continue;
            }
            None if between => break Some(Closed::Idle),
            None => break Some(Closed::HeaderTimeout),
        }
        if between {
            since = Instant::now();
        }
        // Frames are taken off the front by offset, and the buffer
        // compacted once per read: a segment of many small frames costs
        // one move, not one per frame.
        let mut at = 0;
        let verdict = loop {
            let rest = &buf[at..];
            match framer.next(rest, limits.max_message) {
                Frame::NeedMore => break None,
                Frame::Ping => {
                    if !out.push(b"\r\n", QUEUE_BYTES) {
                        registry.dropped_one();
                    }
                    at += 4;
                }
                Frame::KeepAlive => at += 2,
                Frame::Message(n) => {
                    let message = &rest[..n];
                    // Only a TLS connection is looked at (and
                    // the edge's setting read, which a reload may change).
                    // (A guard, not a counted reference: no shared counter
                    // touched per message.)
                    let edge = client.as_ref().map(|_| served.slot.load());
                    let name = edge.as_ref().and_then(|e| e.client_cert_header());
                    match (client.as_mut(), name) {
                        (Some(c), Some(name)) => {
                            let tagged = c.tagger.tag(message, name, c.subject.as_deref());
                            send::handle(&served, tagged, flow);
                        }
                        _ => send::handle(&served, message, flow),
                    }
                    at += n;
                    spoken = true;
                    since = Instant::now();
                }
                Frame::Unframed { why, head } => {
                    if let Some(h) = head {
                        send::unframed(&served, &rest[..h], why, flow);
                    }
                    break Some(match why {
                        sip::Unframed::TooLarge => Closed::TooLarge,
                        _ => Closed::Unframed,
                    });
                }
            }
        };
        buf.drain(..at);
        if let Some(why) = verdict {
            break 'read Some(why);
        }
        if buf.is_empty() && buf.capacity() > 4 * READ_BUF {
            // One large message does not keep an idle connection's memory.
            buf = Vec::with_capacity(READ_BUF);
        }
    };
    drop(buf);
    finish(&served, why, slot, flow.conn, handle, writer).await;
}

/// Ends a connection that stopped for `why`: counted, unregistered (no
/// new message finds it), then its writer sends what is queued (the
/// answer to the last message, say) and closes — given a moment, since a
/// peer that does not read would hold it forever. The slot (the
/// connection's place under the caps) is freed only then.
pub(super) async fn finish(
    served: &Served,
    why: Option<Closed>,
    mut slot: Slot,
    conn: Option<edge::flow::ConnId>,
    handle: Handle,
    mut writer: tokio::task::JoinHandle<()>,
) {
    if let Some(why) = why {
        served.registry.count(why);
    }
    slot.unregister();
    if let Some(id) = conn {
        served.locals.remove(id);
    }
    drop(handle);
    if tokio::time::timeout(CLOSING, &mut writer).await.is_err() {
        writer.abort();
    }
    drop(slot);
}

/// How long a closing connection's writer may take to send what is left.
const CLOSING: Duration = Duration::from_secs(2);

/// The most bytes gathered into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// How long one message may take to be written: a peer that stops
/// reading is found out even if it keeps sending.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits for something to write — appended to `out` by this shard, or
/// queued by another — and moves what there is (up to [`WRITE_BATCH`]
/// bytes of queued messages on top) into `batch`, emptied first. False
/// once the queue has closed (every handle dropped: the connection
/// unregistered); `batch` then holds what was left.
pub(super) async fn next_batch(
    rx: &mut mpsc::Receiver<Vec<u8>>,
    out: &Output,
    queued: &AtomicUsize,
    batch: &mut Vec<u8>,
) -> bool {
    let mut open = true;
    if out.buf.borrow().is_empty() {
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => {
                    queued.fetch_sub(m.len(), Ordering::AcqRel);
                    out.buf.borrow_mut().extend_from_slice(&m);
                }
                None => open = false,
            },
            () = out.ready.notified() => {}
        }
    }
    while open && out.buf.borrow().len() < WRITE_BATCH {
        match rx.try_recv() {
            Ok(m) => {
                queued.fetch_sub(m.len(), Ordering::AcqRel);
                out.buf.borrow_mut().extend_from_slice(&m);
            }
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => open = false,
        }
    }
    batch.clear();
    std::mem::swap(batch, &mut *out.buf.borrow_mut());
    open
}

/// Writes what the shard appended to `out` and what other shards queued,
/// in order, until the queue closes (every handle dropped: the connection
/// unregistered), the peer is gone, or it stops reading — then tells the
/// reader to close the connection.
async fn write_all(
    mut write: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Vec<u8>>,
    out: Rc<Output>,
    queued: Arc<AtomicUsize>,
    close: Arc<tokio::sync::Notify>,
) {
    // Everything appended while the writer waited goes out in one write
    // (up to WRITE_BATCH bytes of queued messages on top): a busy trunk
    // costs both ends a system call per batch, not per message.
    let mut batch: Vec<u8> = Vec::new();
    let mut open = true;
    while open {
        open = next_batch(&mut rx, &out, &queued, &mut batch).await;
        if batch.is_empty() {
            continue;
        }
        // A TLS stream buffers what is written until it is flushed; a TCP
        // stream's flush does nothing.
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            write.write_all(&batch).await?;
            write.flush().await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            out.closed.set(true);
            close.notify_one();
            return;
        }
        if batch.capacity() > 4 * WRITE_BATCH {
            batch = Vec::new();
        }
    }
    out.closed.set(true);
    let _ = write.shutdown().await;
}
