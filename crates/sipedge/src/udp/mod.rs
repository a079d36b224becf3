//! UDP sockets: one per worker per listen address, all bound with
//! SO_REUSEPORT so the kernel spreads flows over the workers, read and
//! written in batches (`sysio::batch`).

use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Room per datagram: the largest UDP payload. The pages of a slot are
/// only touched (and so only resident) when a datagram that large arrives.
pub const SLOT: usize = 65_536;

/// Receive buffer asked for, so bursts are queued rather than dropped.
const RECV_BUFFER: usize = 4 << 20;
/// Send buffer asked for.
const SEND_BUFFER: usize = 4 << 20;

/// Binds a blocking UDP socket that shares its address with the other
/// workers' sockets. IPv6 sockets are v6-only so that v4 and v6 listen
/// addresses on the same port do not collide.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    // Larger buffers are a wish, not a requirement (limited by rmem_max).
    let _ = s.set_recv_buffer_size(RECV_BUFFER);
    let _ = s.set_send_buffer_size(SEND_BUFFER);
    s.bind(&addr.into())?;
    Ok(s.into())
}
