//! Registering a UDP socket with the tokio runtime for readability only.
//!
//! tokio's own `UdpSocket` registers for reading and writing; with
//! edge-triggered epoll, every datagram the socket sends then wakes the
//! runtime again when the kernel frees its buffer (a write-space event
//! nobody waits for): twice the wake-ups on a forwarding path that sends
//! as much as it receives. A socket registered for reading alone wakes
//! only when datagrams arrive; a send that finds the buffer full retries
//! after a pause instead of waiting for writability.

use std::io;
use std::net::UdpSocket;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// `sock` (non-blocking) registered with the current tokio runtime for
/// readability only. Must be called within the runtime.
pub fn readable_only(sock: UdpSocket) -> io::Result<AsyncFd<UdpSocket>> {
    // SAFETY: a std UdpSocket owns its descriptor: it is open and the same
    // for as long as the socket lives, and the AsyncFd owns the socket
    // until it is dropped (or handed back by into_inner).
    unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }.map_err(|e| e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_socket_wakes_when_a_datagram_arrives() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        rt.block_on(async {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            let to = s.local_addr().unwrap();
            let fd = readable_only(s).unwrap();
            let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
            peer.send_to(b"x", to).unwrap();
            let mut guard = fd.readable().await.unwrap();
            let mut buf = [0u8; 8];
            let got = guard
                .try_io(|s| s.get_ref().recv_from(&mut buf))
                .unwrap()
                .unwrap();
            assert_eq!(&buf[..got.0], b"x");
        });
    }
}
