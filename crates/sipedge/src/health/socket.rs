//! The probe sockets of one edge: one UDP socket per address family its
//! destinations use, bound to port 0 on the edge's own IP of that family,
//! so that a destination sees probes come from the address it sees calls
//! come from (and an ACL there admits both).

use edge::config;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::UdpSocket;

/// An edge's probe sockets, at most one per address family.
pub struct Sockets {
    /// For IPv4 destinations.
    pub v4: Option<UdpSocket>,
    /// For IPv6 destinations.
    pub v6: Option<UdpSocket>,
}

impl Sockets {
    /// Binds a socket for each address family the edge's destinations use.
    pub async fn bind(edge: &config::Edge, node: &config::Node) -> io::Result<Sockets> {
        let uses = |v4: bool| edge.destinations.iter().any(|d| d.addr.is_ipv4() == v4);
        let v4 = match uses(true) {
            true => Some(bind_family(edge, node, true).await?),
            false => None,
        };
        let v6 = match uses(false) {
            true => Some(bind_family(edge, node, false).await?),
            false => None,
        };
        Ok(Sockets { v4, v6 })
    }

    /// The bound local addresses, what the prober writes into its Via.
    pub fn locals(&self) -> Vec<SocketAddr> {
        [&self.v4, &self.v6]
            .into_iter()
            .flatten()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The socket to send to `to` from.
    pub fn for_addr(&self, to: SocketAddr) -> Option<&UdpSocket> {
        match to {
            SocketAddr::V4(_) => self.v4.as_ref(),
            SocketAddr::V6(_) => self.v6.as_ref(),
        }
    }
}

/// Binds the socket of one family on [`local_ip`]. When that IP is
/// `[node] public_address` and it is not an address of this host (a cloud
/// public IP is often NATed to the host), it falls back to the wildcard.
async fn bind_family(edge: &config::Edge, node: &config::Node, v4: bool) -> io::Result<UdpSocket> {
    let ip = local_ip(edge, node, v4);
    match UdpSocket::bind(SocketAddr::new(ip, 0)).await {
        Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable && !ip.is_unspecified() => {
            tracing::info!(
                edge = %edge.name,
                "probe socket: {ip} is not an address of this host ({e}); probing from the wildcard address"
            );
            UdpSocket::bind(SocketAddr::new(wildcard(v4), 0)).await
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("bind {ip}: {e}"))),
        ok => ok,
    }
}

/// The IP the probe socket of a family binds to: the edge's first listen
/// address of that family; when that is a wildcard (or there is none),
/// `[node] public_address` if it is an IP literal of that family; else the
/// wildcard.
pub fn local_ip(edge: &config::Edge, node: &config::Node, v4: bool) -> IpAddr {
    let listen = edge
        .listen
        .iter()
        .map(|l| l.addr.ip())
        .find(|ip| ip.is_ipv4() == v4);
    match listen {
        Some(ip) if !ip.is_unspecified() => ip,
        _ => node
            .public_address
            .as_deref()
            .and_then(ip_literal)
            .filter(|ip| ip.is_ipv4() == v4)
            .unwrap_or(wildcard(v4)),
    }
}

/// The IP of a `host[:port]` when the host is an IP literal: `1.2.3.4`,
/// `1.2.3.4:5060`, `::1`, `[::1]`, `[::1]:5060`.
pub(crate) fn ip_literal(host_port: &str) -> Option<IpAddr> {
    if let Ok(sa) = host_port.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    if let Ok(ip) = host_port.parse::<IpAddr>() {
        return Some(ip);
    }
    host_port
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

fn wildcard(v4: bool) -> IpAddr {
    match v4 {
        true => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        false => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, public: Option<&str>) -> edge::config::Config {
        let public = public.map_or(String::new(), |p| format!("public_address = \"{p}\"\n"));
        let text = format!(
            "[node]\nid = \"n1\"\n{public}\n[[edge]]\nlisten = [\"udp:{listen}\"]\nadvertise = \"192.0.2.1\"\n\
             [[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n"
        );
        match edge::config::parse(&text, "test.toml") {
            Ok(c) => c,
            Err(e) => panic!("test config does not parse: {e}\n{text}"),
        }
    }

    #[test]
    fn binds_on_the_listen_ip_of_the_family() {
        let c = config("127.0.0.2:5060", Some("192.0.2.9"));
        assert_eq!(
            local_ip(&c.edges[0], &c.node, true),
            "127.0.0.2".parse::<IpAddr>().unwrap()
        );
        // No IPv6 listen address and no IPv6 public address: the wildcard.
        assert_eq!(
            local_ip(&c.edges[0], &c.node, false),
            "::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_wildcard_listen_falls_back_to_the_public_address() {
        let c = config("0.0.0.0:5060", Some("192.0.2.9:5060"));
        assert_eq!(
            local_ip(&c.edges[0], &c.node, true),
            "192.0.2.9".parse::<IpAddr>().unwrap()
        );
        let c = config("0.0.0.0:5060", Some("sip.example.com"));
        assert_eq!(
            local_ip(&c.edges[0], &c.node, true),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
        let c = config("0.0.0.0:5060", None);
        assert_eq!(
            local_ip(&c.edges[0], &c.node, true),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ip_literals_in_every_spelling() {
        for (text, ip) in [
            ("1.2.3.4", "1.2.3.4"),
            ("1.2.3.4:5060", "1.2.3.4"),
            ("::1", "::1"),
            ("[::1]", "::1"),
            ("[::1]:5060", "::1"),
        ] {
            assert_eq!(ip_literal(text), Some(ip.parse().unwrap()), "{text}");
        }
        assert_eq!(ip_literal("sip.example.com:5060"), None);
        assert_eq!(ip_literal("[sip.example.com]"), None);
    }
}
