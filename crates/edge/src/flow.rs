//! Flows: where a message came from and where one goes, for every
//! transport (RFC 5626 §3: a flow is a transport, a local and a remote
//! address, and on a connection transport the connection itself).
//!
//! The core takes the flow a message arrived on and says which flow to
//! send on: back on the one a request came in on (its answers), or toward
//! an address over a transport (a destination, the next Via, a Route),
//! which the runtime maps onto a socket, an open connection to that
//! address, or a new connection.

pub use crate::config::Transport;
use std::net::SocketAddr;

/// A connection as the runtime numbers it: unique on this node for as
/// long as the connection lives, never reused soon after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// One flow: a transport between one of the edge's local addresses and a
/// remote address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The transport.
    pub transport: Transport,
    /// Which of the edge's local addresses ([`crate::proxy::Edge::locals`]).
    pub local: usize,
    /// The remote address: the sender of what arrived, where to send.
    pub remote: SocketAddr,
    /// On a connection transport, the connection a message arrived on, or
    /// the one to answer on; `None` to send over any open connection to
    /// `remote`, or a new one.
    pub conn: Option<ConnId>,
    /// On a connection transport, the port to open a new connection to
    /// when none is open to `remote`, if not `remote`'s: a response whose
    /// request came on a connection that has closed goes to the Via's
    /// `received` address and sent-by port (RFC 3261 §18.2.2), while the
    /// connection it came on is found by `received` and `rport`.
    pub reconnect: Option<u16>,
    /// On a connection transport, a flow a flow token named (RFC 5626
    /// §5.3): the message goes over `conn` (or the connection open to
    /// `remote`) and nothing else — never a new connection, which could
    /// not reach a phone behind NAT or a browser. When it is gone the
    /// runtime hands the message back ([`crate::proxy::Worker::flow_failed`]).
    pub pinned: bool,
    /// Of a pinned flow, the node holding its connection when that is
    /// another node (its `[cluster] listen` address, from the token): the
    /// runtime relays the message there.
    pub owner: Option<SocketAddr>,
}

impl Flow {
    /// A datagram flow from or to `remote` on local address `local`.
    pub fn udp(local: usize, remote: SocketAddr) -> Flow {
        Flow {
            transport: Transport::Udp,
            local,
            remote,
            conn: None,
            reconnect: None,
            pinned: false,
            owner: None,
        }
    }

    /// Where a new connection for this flow goes.
    pub fn reconnect_to(&self) -> SocketAddr {
        SocketAddr::new(
            self.remote.ip(),
            self.reconnect.unwrap_or(self.remote.port()),
        )
    }

    /// True on a connection transport (TCP, TLS, WebSocket): answers go
    /// back on the connection.
    pub fn is_stream(&self) -> bool {
        self.transport != Transport::Udp
    }

    /// True where a message's end is found by its Content-Length (TCP,
    /// TLS; RFC 3261 §18.3), rather than by the datagram or the WebSocket
    /// message that carries it (RFC 7118 §5.1).
    pub fn frames_by_content_length(&self) -> bool {
        matches!(self.transport, Transport::Tcp | Transport::Tls)
    }
}

impl Transport {
    /// The transport as one byte, as flow tokens and the node-to-node link
    /// write it (0 UDP, 1 TCP, 2 TLS, 3 WS, 4 WSS).
    pub fn code(self) -> u8 {
        match self {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
            Transport::Ws => 3,
            Transport::Wss => 4,
        }
    }

    /// The transport [`Transport::code`] wrote.
    pub fn from_code(code: u8) -> Option<Transport> {
        Some(match code {
            0 => Transport::Udp,
            1 => Transport::Tcp,
            2 => Transport::Tls,
            3 => Transport::Ws,
            4 => Transport::Wss,
            _ => return None,
        })
    }

    /// The name Via writes (`SIP/2.0/UDP`, RFC 3261 §20.42).
    pub fn via_name(&self) -> &'static [u8] {
        match self {
            Transport::Udp => b"UDP",
            Transport::Tcp => b"TCP",
            Transport::Tls => b"TLS",
            Transport::Ws => b"WS",
            Transport::Wss => b"WSS",
        }
    }

    /// The transport a URI asks for: its `transport` parameter, else TLS
    /// for `sips:`, else UDP (RFC 3263 §4.1 without DNS).
    pub fn of_uri(uri: &sip::Uri<'_>) -> Transport {
        match uri
            .param(b"transport")
            .flatten()
            .and_then(Transport::from_name)
        {
            Some(t) => t,
            None if uri.scheme == sip::Scheme::Sips => Transport::Tls,
            None => Transport::Udp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_by_via_and_uri() {
        assert_eq!(Transport::from_name(b"tcp"), Some(Transport::Tcp));
        assert_eq!(Transport::from_name(b"SCTP"), None);
        let t = |u: &str| Transport::of_uri(&sip::Uri::parse(u.as_bytes()).unwrap());
        assert_eq!(t("sip:a@10.0.0.1;transport=TCP"), Transport::Tcp);
        assert_eq!(t("sip:a@10.0.0.1;lr"), Transport::Udp);
        assert_eq!(t("sips:a@10.0.0.1"), Transport::Tls);
        assert_eq!(t("sip:a@10.0.0.1;transport=sctp"), Transport::Udp);
        assert!(!Flow::udp(0, "127.0.0.1:5060".parse().unwrap()).is_stream());
    }
}
