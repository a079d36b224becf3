//! The kernel interfaces std does not offer: batched datagram I/O with
//! recvmmsg(2)/sendmmsg(2), ppoll(2) with a nanosecond timeout, socket
//! buffer sizes and getrusage(2).
//!
//! This is the only module of sipload with `unsafe`. Every pointer handed to
//! the kernel points into the heap memory of vectors or boxed slices owned
//! by the batch: set once for the receive batch (boxed slices never
//! reallocate), rebuilt right before each call for the send batch (whose
//! vectors grow), so moving a batch between calls is harmless; the structures passed are libc's plain-old-data types, for
//! which all-zero bytes is a valid value.

#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::time::Duration;

/// Datagrams per system call, in both directions.
pub const BATCH: usize = 64;
/// Room per received datagram. Every message of the call flow is well
/// under 2 KB; a larger one is reported as truncated and dropped.
pub const SLOT: usize = 16 * 1024;

fn zeroed<T>(n: usize) -> Box<[T]> {
    // SAFETY: only used for libc's plain-old-data structs (see module doc).
    (0..n).map(|_| unsafe { std::mem::zeroed::<T>() }).collect()
}

/// Receive side: [`BATCH`] slots of [`SLOT`] bytes, shared by all sockets
/// (a batch is handled completely before the next receive).
pub struct RecvBatch {
    bufs: Box<[u8]>,
    addrs: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    len: usize,
}

impl RecvBatch {
    /// Allocates the slots and points the headers at them. The pointers
    /// go into the boxed slices' heap memory, which stays put when the
    /// batch itself is moved.
    pub fn new() -> RecvBatch {
        let mut b = RecvBatch {
            bufs: vec![0u8; BATCH * SLOT].into_boxed_slice(),
            addrs: zeroed(BATCH),
            iovs: zeroed(BATCH),
            hdrs: zeroed(BATCH),
            len: 0,
        };
        let base = b.bufs.as_mut_ptr();
        for i in 0..BATCH {
            b.iovs[i] = libc::iovec {
                // SAFETY: i * SLOT + SLOT <= bufs.len().
                iov_base: unsafe { base.add(i * SLOT) }.cast(),
                iov_len: SLOT,
            };
            // SAFETY: plain data, zero is valid for every field.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = (&mut b.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_iov = &mut b.iovs[i];
            h.msg_iovlen = 1;
            b.hdrs[i] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
        }
        b
    }

    /// Takes every datagram already queued on `fd` (up to [`BATCH`]) without
    /// waiting: 0 when there is none.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // The kernel overwrites the address length (an in/out field) and
        // the flags of every header it fills; reset what it reads.
        for h in self.hdrs.iter_mut() {
            h.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
        }
        self.len = 0;
        loop {
            // SAFETY: hdrs holds BATCH initialised headers whose pointers
            // stay valid for the duration of the call.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                self.len = n as usize;
                return Ok(self.len);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(0),
                io::ErrorKind::Interrupted => continue,
                // An ICMP error queued on the socket (a peer not listening):
                // it is consumed by this call; more datagrams may follow.
                io::ErrorKind::ConnectionRefused => continue,
                _ => return Err(e),
            }
        }
    }

    /// Datagram `i` of the last receive: its bytes and sender, or None if it
    /// was truncated (larger than a slot) or came from no IP address.
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

/// Send side of one socket: datagrams written straight into one buffer with
/// their destinations, sent in one call.
pub struct SendBatch {
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
    addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl SendBatch {
    /// An empty batch with room for [`BATCH`] typical datagrams.
    pub fn new() -> SendBatch {
        SendBatch {
            data: Vec::with_capacity(BATCH * 1024),
            spans: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(BATCH),
            iovs: Vec::with_capacity(BATCH),
            hdrs: Vec::with_capacity(BATCH),
        }
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Queues one datagram for `to`, written by `build` at the end of the
    /// batch's buffer (no copy, no allocation once the buffer has grown).
    pub fn push_with(&mut self, to: SocketAddr, build: impl FnOnce(&mut Vec<u8>)) {
        let start = self.data.len();
        build(&mut self.data);
        self.spans.push((start, self.data.len()));
        self.addrs.push(from_socket_addr(to));
    }

    /// Sends everything queued on `fd` (a blocking socket, so a full send
    /// buffer waits rather than drops) and empties the batch. Returns how
    /// many datagrams the kernel refused (each is skipped; the rest go).
    pub fn flush(&mut self, fd: RawFd) -> usize {
        let n = self.spans.len();
        if n == 0 {
            return 0;
        }
        self.iovs.clear();
        self.hdrs.clear();
        let base = self.data.as_mut_ptr();
        for &(s, e) in &self.spans {
            self.iovs.push(libc::iovec {
                // SAFETY: s <= e <= data.len().
                iov_base: unsafe { base.add(s) }.cast(),
                iov_len: e - s,
            });
        }
        for i in 0..n {
            // SAFETY: plain data, zero is valid for every field.
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
        let (mut failed, mut at) = (0, 0);
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
                at += r as usize;
            } else if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                failed += 1;
                at += 1;
            }
        }
        self.data.clear();
        self.spans.clear();
        self.addrs.clear();
        failed
    }
}

/// Waits until one of `fds` is readable or `timeout` passes (nanosecond
/// resolution, unlike poll(2)'s milliseconds). Returns false on timeout.
pub fn wait_readable(fds: &[RawFd], timeout: Duration) -> io::Result<bool> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 16];
    let n = fds.len().min(pfds.len());
    for (p, &fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd;
        p.events = libc::POLLIN;
    }
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(3600) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: pfds has at least n initialised entries; ts lives across the
    // call; a null signal mask means "leave it unchanged".
    let r = unsafe { libc::ppoll(pfds.as_mut_ptr(), n as libc::nfds_t, &ts, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(r > 0)
}

/// Asks for `bytes` of receive and send buffer on `fd`: first with the
/// privileged *FORCE options (beyond net.core.rmem_max, when allowed), then
/// the plain ones. A wish, not a requirement. Returns the receive buffer
/// size the kernel granted.
pub fn set_buffers(fd: RawFd, bytes: usize) -> usize {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if setsockopt_int(fd, force, v).is_err() {
            let _ = setsockopt_int(fd, plain, v);
        }
    }
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: got and len are valid for writes of their sizes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        got.max(0) as usize
    } else {
        0
    }
}

fn setsockopt_int(fd: RawFd, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: v is a c_int that lives across the call; its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// CPU time this process has used so far: (user, system).
pub fn cpu_time() -> (Duration, Duration) {
    // SAFETY: plain data, zero is valid; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is valid for writes.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    (tv(ru.ru_utime), tv(ru.ru_stime))
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
    // SAFETY: plain data, zero is valid.
    let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned
            // for every socket address type.
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

    #[test]
    fn addresses_convert_both_ways() {
        for a in ["127.0.0.1:5060", "[::1]:5061", "[2001:db8::1]:1"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(to_socket_addr(&from_socket_addr(a).0), Some(a));
        }
    }

    #[test]
    fn cpu_time_moves_forward() {
        let (u0, s0) = cpu_time();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let (u1, s1) = cpu_time();
        assert!(u1 + s1 >= u0 + s0);
    }
}
