//! SIP over WebSocket (RFC 7118), over TCP (`ws:`) or TLS (`wss:`): the
//! HTTP upgrade with the `sip` subprotocol, then one SIP message per
//! WebSocket message each way. The framing, masking, ping/pong and close
//! handshake are tungstenite's; what is ours is the same as on a TCP
//! connection — the registry slot and caps, the shard's output buffer,
//! the idle timeout, and the pipeline.
//!
//! sipedge never opens a WebSocket connection: a browser cannot be dialled.
//! What goes to a WebSocket client goes over the connection it opened, or
//! nowhere.

use super::super::{send, Served};
use super::local::Output;
use super::registry::{Closed, Handle, Slot};
use edge::flow::{Flow, Transport};
use futures_util::{SinkExt, StreamExt};
use sip::{Frame, Framer};
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// Accepts the WebSocket upgrade on `stream` (within `header_timeout`)
/// and runs the connection until it ends, holding `slot`.
pub(crate) async fn run<S>(
    served: Rc<Served>,
    stream: S,
    transport: Transport,
    local: usize,
    remote: SocketAddr,
    mut slot: Slot,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let registry = Arc::clone(&served.registry);
    let limits = &registry.limits;
    // A small read buffer (tungstenite's default is 128 KiB, allocated at
    // once: too much for thousands of idle phones), and every frame
    // written as it is sent.
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 4096;
    config.write_buffer_size = 0;
    config.max_message_size = Some(limits.max_message);
    config.max_frame_size = Some(limits.max_message);
    let upgrade =
        tokio_tungstenite::accept_hdr_async_with_config(stream, sip_subprotocol, Some(config));
    let ws: WebSocketStream<S> = match tokio::time::timeout(limits.header_timeout, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(edge = %served.name, from = %remote, "WebSocket upgrade: {e}");
            registry.count(Closed::Upgrade);
            return;
        }
        Err(_) => {
            registry.count(Closed::HeaderTimeout);
            return;
        }
    };
    let (handle, rx) = Handle::new();
    registry.register(&mut slot, served.index, transport, remote, handle.clone());
    let flow = Flow {
        transport,
        local,
        remote,
        conn: slot.id(),
        reconnect: None,
        pinned: false,
        owner: None,
    };
    let out = Rc::new(Output::default());
    if let Some(id) = flow.conn {
        served.locals.add(id, served.index, transport, remote, &out);
    }
    let (sink, mut messages) = ws.split();
    // The status the writer's Close frame gives (RFC 6455 §7.4.1).
    let status = Rc::new(Cell::new(CloseCode::Normal));
    let writer = tokio::task::spawn_local(write_frames(
        sink,
        rx,
        Rc::clone(&out),
        Arc::clone(&handle.queued),
        Arc::clone(&handle.close),
        Rc::clone(&status),
    ));
    // One timer, moved only when it fires early (see conn.rs).
    let mut since = Instant::now();
    let timer = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(timer);
    let close = Arc::clone(&handle.close);
    let closed = close.notified();
    tokio::pin!(closed);
    let why = loop {
        let got = tokio::select! {
            m = messages.next() => m,
            () = &mut timer => {
                let deadline = since + limits.idle_timeout;
                if Instant::now() < deadline {
                    timer.as_mut().reset(tokio::time::Instant::from_std(deadline));
                    continue;
                }
                break Some(Closed::Idle);
            }
            () = &mut closed => break Some(Closed::Stuck),
        };
        since = Instant::now();
        match got {
            // RFC 7118 §5.1: each message is one whole SIP message, text
            // or binary.
            Some(Ok(Message::Text(t))) => send::handle(&served, t.as_bytes(), flow),
            Some(Ok(Message::Binary(b))) => send::handle(&served, &b, flow),
            // tungstenite answers a ping itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(_))) | None => break None,
            Some(Err(Error::Capacity(_))) => {
                status.set(CloseCode::Size);
                break Some(Closed::TooLarge);
            }
            Some(Err(_)) => {
                status.set(CloseCode::Protocol);
                break Some(Closed::Unframed);
            }
        }
    };
    super::conn::finish(&served, why, slot, flow.conn, handle, writer).await;
}

/// The upgrade's check: the client must offer the `sip` subprotocol,
/// which the answer names (RFC 7118 §4.1).
#[allow(clippy::result_large_err)]
fn sip_subprotocol(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"));
    if !offered {
        let mut refused = ErrorResponse::new(Some(
            "the sip WebSocket subprotocol is required (RFC 7118)".to_owned(),
        ));
        *refused.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refused);
    }
    response
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    Ok(response)
}

/// How long one batch may take to be written.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes what the shard appended to `out` and what other shards queued,
/// one WebSocket message per SIP message (the output holds whole
/// messages, cut apart again by their Content-Length), until the queue
/// closes or the peer stops reading — then tells the reader to close.
async fn write_frames<S>(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    out: Rc<Output>,
    queued: Arc<AtomicUsize>,
    close: Arc<tokio::sync::Notify>,
    status: Rc<Cell<CloseCode>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch: Vec<u8> = Vec::new();
    let mut open = true;
    while open {
        open = super::conn::next_batch(&mut rx, &out, &queued, &mut batch).await;
        if batch.is_empty() {
            continue;
        }
        let sent = tokio::time::timeout(WRITE_TIMEOUT, async {
            let mut framer = Framer::default();
            let mut at = 0;
            while at < batch.len() {
                let rest = &batch[at..];
                let n = match framer.next(rest, usize::MAX) {
                    Frame::Message(n) => n,
                    // Never written by sipedge: drop what cannot be cut.
                    _ => break,
                };
                sink.feed(frame(&rest[..n])).await?;
                at += n;
            }
            sink.flush().await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            out.closed.set(true);
            close.notify_one();
            return;
        }
    }
    out.closed.set(true);
    let bye = CloseFrame {
        code: status.get(),
        reason: Utf8Bytes::from_static(""),
    };
    let _ = sink.send(Message::Close(Some(bye))).await;
    let _ = sink.close().await;
}

/// One SIP message as a WebSocket message: text when it is UTF-8 (what
/// browsers' SIP stacks expect), else binary.
fn frame(message: &[u8]) -> Message {
    match std::str::from_utf8(message) {
        Ok(text) => Message::Text(Utf8Bytes::from(text)),
        Err(_) => Message::Binary(Bytes::copy_from_slice(message)),
    }
}
