//! Batched datagram I/O with recvmmsg(2) and sendmmsg(2): one system call
//! receives every datagram already queued (up to [`BATCH`]), and one sends
//! every answer they produced.
//!
//! This is the only module of sipedge with `unsafe`: the kernel interface
//! takes raw pointers to headers, address buffers and I/O vectors. Every
//! pointer handed to the kernel points into boxed slices owned by the batch
//! and is rebuilt right before each call, so moving a batch is harmless.

#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Room per datagram: the largest UDP payload. The pages of a slot are
/// only touched (and so only resident) when a datagram that large arrives.
pub const SLOT: usize = 65_536;

/// Receive side: [`BATCH`] slots of [`SLOT`] bytes.
pub struct RecvBatch {
    bufs: Box<[u8]>,
    addrs: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    len: usize,
}

// SAFETY: the raw pointers inside `iovs` and `hdrs` only ever point into
// this batch's own boxed slices; the batch is used by one thread at a time.
unsafe impl Send for RecvBatch {}

fn zeroed<T>(n: usize) -> Box<[T]> {
    // SAFETY: only used for libc's plain-old-data structs, for which all
    // zero bytes is a valid value.
    (0..n).map(|_| unsafe { std::mem::zeroed::<T>() }).collect()
}

impl RecvBatch {
    /// Allocates the slots (zeroed, so untouched pages cost no memory).
    pub fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![0u8; BATCH * SLOT].into_boxed_slice(),
            addrs: zeroed(BATCH),
            iovs: zeroed(BATCH),
            hdrs: zeroed(BATCH),
            len: 0,
        }
    }

    /// Blocks until at least one datagram is queued on the (blocking)
    /// socket `fd`, then takes every queued one up to [`BATCH`].
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let base = self.bufs.as_mut_ptr();
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                // SAFETY: i * SLOT + SLOT <= bufs.len().
                iov_base: unsafe { base.add(i * SLOT) }.cast(),
                iov_len: SLOT,
            };
            // SAFETY: msghdr is plain data; zero is valid for every field.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            self.hdrs[i] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
        }
        // SAFETY: hdrs holds BATCH initialised headers whose pointers are
        // valid for the duration of the call (see above).
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.len = 0;
            return Err(io::Error::last_os_error());
        }
        self.len = n as usize;
        Ok(self.len)
    }

    /// Datagram `i` of the last [`RecvBatch::recv`]: its bytes and sender,
    /// or None if it was truncated (larger than a slot) or has no IP sender.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.len {
            return None;
        }
        let h = &self.hdrs[i];
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (h.msg_len as usize).min(SLOT);
        let from = to_socket_addr(&self.addrs[i])?;
        Some((&self.bufs[i * SLOT..i * SLOT + len], from))
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

/// Send side: datagrams queued with their destinations, sent in one call.
///
/// Each datagram is a buffer of its own, so that a worker's output buffer
/// can be handed over by swapping ([`SendBatch::push_swap`]) instead of
/// copied; sent buffers are kept (emptied) for the next batch, so nothing
/// is allocated once the batch has grown to its usual size.
pub struct SendBatch {
    bufs: Vec<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: as for RecvBatch: pointers are rebuilt before each call and only
// point into the batch's own vectors.
unsafe impl Send for SendBatch {}

/// Room a fresh datagram buffer starts with.
const BUF: usize = 2048;

impl SendBatch {
    /// An empty batch with room for [`BATCH`] datagrams.
    pub fn new() -> SendBatch {
        SendBatch {
            bufs: Vec::with_capacity(BATCH),
            spare: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(BATCH),
            iovs: Vec::with_capacity(BATCH),
            hdrs: Vec::with_capacity(BATCH),
        }
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    fn spare_buf(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_else(|| Vec::with_capacity(BUF))
    }

    /// Queues a copy of `bytes` for `to`.
    pub fn push(&mut self, bytes: &[u8], to: SocketAddr) {
        let mut b = self.spare_buf();
        b.extend_from_slice(bytes);
        self.bufs.push(b);
        self.addrs.push(from_socket_addr(to));
    }

    /// Queues the contents of `buf` for `to` without copying them: `buf` is
    /// swapped for an empty buffer of the batch's.
    pub fn push_swap(&mut self, buf: &mut Vec<u8>, to: SocketAddr) {
        let mut b = self.spare_buf();
        std::mem::swap(&mut b, buf);
        self.bufs.push(b);
        self.addrs.push(from_socket_addr(to));
    }

    /// Sends everything queued on the (blocking) socket `fd` and empties
    /// the batch. A datagram the kernel refuses (unreachable network,
    /// wrong family) is skipped and counted in the return value's second
    /// half; the rest still go.
    pub fn send(&mut self, fd: RawFd) -> (usize, usize) {
        let n = self.bufs.len();
        self.iovs.clear();
        self.hdrs.clear();
        for b in &mut self.bufs {
            self.iovs.push(libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            });
        }
        for i in 0..n {
            // SAFETY: msghdr is plain data; zero is valid for every field.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = (&mut self.addrs[i].0 as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.addrs[i].1;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            self.hdrs.push(libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            });
        }
        let (mut sent, mut failed, mut at) = (0, 0, 0);
        while at < n {
            // SAFETY: hdrs[at..n] are initialised headers whose pointers
            // stay valid for the call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[at..].as_mut_ptr(),
                    (n - at) as libc::c_uint,
                    0,
                )
            };
            if r > 0 {
                sent += r as usize;
                at += r as usize;
            } else {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The datagram at `at` was refused: skip it.
                tracing::debug!(to = ?to_socket_addr(&self.addrs[at].0), "send: {e}");
                failed += 1;
                at += 1;
            }
        }
        for mut b in self.bufs.drain(..) {
            b.clear();
            self.spare.push(b);
        }
        self.addrs.clear();
        (sent, failed)
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch::new()
    }
}

fn to_socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn from_socket_addr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zero is valid.
    let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned
            // for any socket address type.
            let sin = unsafe {
                &mut *(&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above.
            let sin6 = unsafe {
                &mut *(&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (s, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_round_trips_over_loopback() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = SendBatch::new();
        for i in 0..5u8 {
            out.push(&[i; 10], b.local_addr().unwrap());
        }
        assert_eq!(out.send(a.as_raw_fd()), (5, 0));
        assert!(out.is_empty());
        let mut got = 0;
        let mut batch = RecvBatch::new();
        while got < 5 {
            let n = batch.recv(b.as_raw_fd()).unwrap();
            for i in 0..n {
                let (bytes, from) = batch.get(i).unwrap();
                assert_eq!(from, a.local_addr().unwrap());
                assert_eq!(bytes, &[got as u8; 10]);
                got += 1;
            }
        }
        assert!(batch.get(got).is_none());
    }

    #[test]
    fn swapped_buffers_are_sent_and_reused() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = b.local_addr().unwrap();
        let mut out = SendBatch::new();
        let mut mine = b"swapped".to_vec();
        out.push_swap(&mut mine, to);
        assert!(mine.is_empty(), "the caller gets an empty buffer back");
        out.push(b"copied", to);
        assert_eq!(out.send(a.as_raw_fd()), (2, 0));
        // The sent buffers wait, emptied, for the next batch.
        assert_eq!(out.spare.len(), 2);
        assert!(out.spare.iter().all(Vec::is_empty));
        let mut buf = [0u8; 64];
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"swapped");
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"copied");
    }

    #[test]
    fn addresses_convert_both_ways() {
        for a in ["127.0.0.1:5060", "[::1]:5061", "[2001:db8::1]:1"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(to_socket_addr(&from_socket_addr(a).0), Some(a));
        }
    }
}
