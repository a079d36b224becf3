//! Who we are and who the destinations are, as addresses a message can
//! name: our own sent-by / Route / Request-URI, and the pool's.

use crate::config;
use crate::flow::{Flow, Transport};
use sip::Host;
use std::net::{IpAddr, SocketAddr};
use xxhash_rust::xxh3::xxh3_64;

/// A host as configured (owned), compared against hosts in messages.
#[derive(Clone, Debug, PartialEq, Eq)]
enum OwnHost {
    Ip(IpAddr),
    Name(String),
}

impl OwnHost {
    fn from_text(s: &str) -> OwnHost {
        let bare = s.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => OwnHost::Ip(ip),
            Err(_) => OwnHost::Name(bare.to_ascii_lowercase()),
        }
    }

    fn matches(&self, h: &Host<'_>) -> bool {
        match (self, h) {
            (OwnHost::Name(n), Host::Name(m)) => n.as_bytes().eq_ignore_ascii_case(m),
            (OwnHost::Ip(ip), h) => h.ip() == Some(*ip),
            _ => false,
        }
    }
}

/// One local address of an edge: the transport and socket address it
/// listens on and the sent-by it writes into Via and Record-Route.
#[derive(Clone, Debug)]
pub struct Local {
    /// The transport it listens for.
    pub transport: Transport,
    /// The address the socket is bound to.
    pub addr: SocketAddr,
    /// `host[:port]` for Via sent-by and Record-Route.
    pub sent_by: String,
    host: OwnHost,
    port: u16,
}

impl Local {
    /// The local address, advertised as `advertise` when set (wildcard
    /// binds, 1:1 NAT, anycast service addresses).
    pub fn new(
        transport: Transport,
        addr: SocketAddr,
        advertise: Option<&config::HostPort>,
    ) -> Local {
        match advertise {
            Some(a) => {
                let port = a.port.unwrap_or(addr.port());
                let host = OwnHost::from_text(&a.host);
                let bracketed = if a.host.contains(':') {
                    format!("[{}]", a.host)
                } else {
                    a.host.clone()
                };
                Local {
                    transport,
                    addr,
                    sent_by: format!("{bracketed}:{port}"),
                    host,
                    port,
                }
            }
            None => Local {
                transport,
                addr,
                sent_by: addr.to_string(),
                host: OwnHost::Ip(addr.ip()),
                port: addr.port(),
            },
        }
    }

    /// True when `host:port` (port defaulting to 5060) names this address.
    pub fn is(&self, host: &Host<'_>, port: Option<u16>) -> bool {
        port.unwrap_or(self.transport.default_port()) == self.port
            && (self.host.matches(host) || host.ip() == Some(self.addr.ip()))
    }
}

/// One destination of the pool, as an address to send to and to recognise.
#[derive(Clone, Debug)]
pub struct Destination {
    /// Its identity across reloads: the hash of its URI.
    pub(crate) id: u64,
    /// Where requests for it are sent.
    pub addr: SocketAddr,
    /// The transport they are sent over.
    pub transport: Transport,
    /// The stream transport a request too large for a datagram goes
    /// over instead, if the destination takes one.
    pub large: Option<Transport>,
    /// The URI as configured.
    pub uri: String,
    host: OwnHost,
    port: u16,
    /// For a server DNS found for a destination's name, that name and its
    /// port as written: a message naming the pool by it names this server
    /// (the first such server, for the route stage).
    alias: Option<(OwnHost, u16)>,
}

impl Destination {
    /// From the config.
    pub fn new(d: &config::Destination) -> Destination {
        let host = sip::Uri::parse(d.uri.as_bytes())
            .ok()
            .and_then(|u| {
                std::str::from_utf8(u.host_text)
                    .ok()
                    .map(OwnHost::from_text)
            })
            .unwrap_or(OwnHost::Ip(d.addr.ip()));
        let alias = d.named_by.as_deref().and_then(|written| {
            let u = sip::Uri::parse(written.as_bytes()).ok()?;
            let host = OwnHost::from_text(std::str::from_utf8(u.host_text).ok()?);
            Some((host, u.port.unwrap_or(Transport::of_uri(&u).default_port())))
        });
        Destination {
            alias,
            id: xxh3_64(d.uri.as_bytes()),
            addr: d.addr,
            transport: d.transport,
            large: d.large,
            uri: d.uri.clone(),
            host,
            port: d.addr.port(),
        }
    }

    /// Where requests for it go.
    pub(crate) fn hop(&self) -> super::checked::Hop {
        super::checked::Hop {
            transport: self.transport,
            addr: self.addr,
        }
    }

    /// True when `flow` is this destination's: on UDP its exact address
    /// and port; on a connection transport its address and transport, from
    /// any port (a server connects to the edge from an ephemeral port).
    pub fn is_flow(&self, flow: &Flow) -> bool {
        if flow.transport == Transport::Udp {
            self.transport == Transport::Udp && flow.remote == self.addr
        } else {
            (flow.transport == self.transport || Some(flow.transport) == self.large)
                && flow.remote.ip() == self.addr.ip()
        }
    }

    /// True when a URI's `host:port` names this destination.
    pub fn is(&self, host: &Host<'_>, port: Option<u16>) -> bool {
        let port = port.unwrap_or(self.transport.default_port());
        (port == self.port && (self.host.matches(host) || host.ip() == Some(self.addr.ip())))
            || self
                .alias
                .as_ref()
                .is_some_and(|(h, p)| *p == port && h.matches(host))
    }
}

/// A destination as something that outlives one snapshot remembers it (a
/// transaction's plan): its index in the snapshot that chose it, and its
/// identity, by which a later snapshot finds it again after a reload
/// moved it, or knows it removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DestRef {
    pub(crate) index: u32,
    pub(crate) id: u64,
}
