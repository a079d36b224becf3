//! Batched datagram I/O: one recvmmsg(2) takes every datagram already
//! queued on a socket (up to the batch size), one sendmmsg(2) sends every
//! datagram a batch produced.

use crate::sockaddr::{from_std, to_std};
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

fn zeroed<T>(n: usize) -> Box<[T]> {
    // SAFETY: only used for libc's plain-old-data structs (crate doc).
    (0..n).map(|_| unsafe { std::mem::zeroed::<T>() }).collect()
}

/// How [`RecvBatch::recv`] waits for the first datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Block (on a blocking socket) until one is queued, then take what
    /// is queued (`MSG_WAITFORONE`).
    ForOne,
    /// Take what is queued now, 0 when nothing is (`MSG_DONTWAIT`).
    No,
}

/// Receive side: `batch` slots of `slot` bytes each, filled by one call.
pub struct RecvBatch {
    bufs: Box<[u8]>,
    addrs: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    slot: usize,
    len: usize,
}

// SAFETY: the raw pointers inside `iovs` and `hdrs` only ever point into
// this batch's own boxed slices, whose heap memory stays put when the
// batch moves; a batch is used by one thread at a time (`&mut self`).
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Allocates the slots (zeroed: pages of a slot are only resident once
    /// a datagram that large arrives) and points the headers at them.
    pub fn new(batch: usize, slot: usize) -> RecvBatch {
        let mut b = RecvBatch {
            bufs: vec![0u8; batch * slot].into_boxed_slice(),
            addrs: zeroed(batch),
            iovs: zeroed(batch),
            hdrs: zeroed(batch),
            slot,
            len: 0,
        };
        let base = b.bufs.as_mut_ptr();
        for i in 0..batch {
            b.iovs[i] = libc::iovec {
                // SAFETY: i * slot + slot <= bufs.len().
                iov_base: unsafe { base.add(i * slot) }.cast(),
                iov_len: slot,
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

    /// Takes every datagram queued on `fd`, up to the batch size, waiting
    /// for the first as `wait` says. An ICMP error queued by an earlier
    /// send (a peer not listening) concerns that send: it is consumed and
    /// the receive goes on.
    pub fn recv(&mut self, fd: RawFd, wait: Wait) -> io::Result<usize> {
        // The kernel overwrites the address length (in/out) and the flags
        // of every header it fills: reset what it reads.
        for h in self.hdrs.iter_mut() {
            h.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
        }
        let flags = match wait {
            Wait::ForOne => libc::MSG_WAITFORONE,
            Wait::No => libc::MSG_DONTWAIT,
        };
        self.len = 0;
        loop {
            // SAFETY: hdrs holds initialised headers whose pointers stay
            // valid for the duration of the call (see `new`).
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    self.hdrs.len() as libc::c_uint,
                    flags,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                self.len = n as usize;
                return Ok(self.len);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock if wait == Wait::No => return Ok(0),
                io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused => continue,
                _ => return Err(e),
            }
        }
    }

    /// Datagram `i` of the last receive: its bytes and sender, or `None`
    /// if it was truncated (larger than a slot) or came from no IP address.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.len {
            return None;
        }
        let h = &self.hdrs[i];
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (h.msg_len as usize).min(self.slot);
        let from = to_std(&self.addrs[i])?;
        let at = i * self.slot;
        Some((&self.bufs[at..at + len], from))
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

// SAFETY: as for RecvBatch: the pointers are rebuilt before each call and
// only point into the batch's own vectors.
unsafe impl Send for SendBatch {}

/// Room a fresh datagram buffer starts with.
const BUF: usize = 2048;

impl SendBatch {
    /// An empty batch with room for `batch` datagrams.
    pub fn new(batch: usize) -> SendBatch {
        SendBatch {
            bufs: Vec::with_capacity(batch),
            spare: Vec::with_capacity(batch),
            addrs: Vec::with_capacity(batch),
            iovs: Vec::with_capacity(batch),
            hdrs: Vec::with_capacity(batch),
        }
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Queues one datagram for `to`, written by `build` into a reused
    /// buffer (no copy, no allocation once the batch has grown).
    pub fn push_with(&mut self, to: SocketAddr, build: impl FnOnce(&mut Vec<u8>)) {
        let mut b = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(BUF));
        build(&mut b);
        self.bufs.push(b);
        self.addrs.push(from_std(to));
    }

    /// Queues a copy of `bytes` for `to`.
    pub fn push(&mut self, bytes: &[u8], to: SocketAddr) {
        self.push_with(to, |b| b.extend_from_slice(bytes));
    }

    /// Queues the contents of `buf` for `to` without copying them: `buf` is
    /// swapped for an empty buffer of the batch's.
    pub fn push_swap(&mut self, buf: &mut Vec<u8>, to: SocketAddr) {
        self.push_with(to, |b| std::mem::swap(b, buf));
    }

    /// Sends everything queued on `fd` and empties the batch. A datagram
    /// the kernel refuses (unreachable network, wrong family) is skipped
    /// and reported to `refused`; the rest still go. Returns (sent,
    /// refused).
    ///
    /// On a non-blocking socket whose send buffer is full, returns
    /// `WouldBlock` with what was not sent still queued: call again once
    /// the socket is writable. (A blocking socket waits instead.)
    pub fn send(
        &mut self,
        fd: RawFd,
        mut refused: impl FnMut(Option<SocketAddr>, &io::Error),
    ) -> io::Result<(usize, usize)> {
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
                if e.kind() == io::ErrorKind::WouldBlock {
                    self.forget(at);
                    return Err(e);
                }
                // The datagram at `at` was refused: skip it.
                refused(to_std(&self.addrs[at].0), &e);
                failed += 1;
                at += 1;
            }
        }
        self.forget(n);
        Ok((sent, failed))
    }

    /// Drops the first `n` datagrams (sent or refused), keeping their
    /// buffers for reuse.
    fn forget(&mut self, n: usize) {
        for mut b in self.bufs.drain(..n) {
            b.clear();
            self.spare.push(b);
        }
        self.addrs.drain(..n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn ignore(_: Option<SocketAddr>, _: &io::Error) {}

    #[test]
    fn a_batch_round_trips_over_loopback() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = SendBatch::new(8);
        for i in 0..5u8 {
            out.push(&[i; 10], b.local_addr().unwrap());
        }
        assert_eq!(out.len(), 5);
        assert_eq!(out.send(a.as_raw_fd(), ignore).unwrap(), (5, 0));
        assert!(out.is_empty());
        let mut got = 0;
        let mut batch = RecvBatch::new(4, 64);
        while got < 5 {
            let n = batch.recv(b.as_raw_fd(), Wait::ForOne).unwrap();
            assert!(n <= 4);
            for i in 0..n {
                let (bytes, from) = batch.get(i).unwrap();
                assert_eq!(from, a.local_addr().unwrap());
                assert_eq!(bytes, &[got as u8; 10]);
                got += 1;
            }
        }
        assert!(batch.get(got).is_none());
        assert_eq!(batch.recv(b.as_raw_fd(), Wait::No).unwrap(), 0);
    }

    #[test]
    fn a_datagram_larger_than_a_slot_is_reported_truncated() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(&[7; 100], b.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(2, 64);
        assert_eq!(batch.recv(b.as_raw_fd(), Wait::ForOne).unwrap(), 1);
        assert!(batch.get(0).is_none());
    }

    #[test]
    fn swapped_buffers_are_sent_and_reused() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = b.local_addr().unwrap();
        let mut out = SendBatch::new(4);
        let mut mine = b"swapped".to_vec();
        out.push_swap(&mut mine, to);
        assert!(mine.is_empty(), "the caller gets an empty buffer back");
        out.push(b"copied", to);
        out.push_with(to, |b| b.extend_from_slice(b"built"));
        assert_eq!(out.send(a.as_raw_fd(), ignore).unwrap(), (3, 0));
        // The sent buffers wait, emptied, for the next batch.
        assert_eq!(out.spare.len(), 3);
        assert!(out.spare.iter().all(Vec::is_empty));
        let mut buf = [0u8; 64];
        for want in [&b"swapped"[..], b"copied", b"built"] {
            let (n, _) = b.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
        }
    }

    #[test]
    fn a_refused_datagram_is_skipped_and_reported() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = SendBatch::new(4);
        // An IPv6 destination from an IPv4 socket: the kernel refuses it.
        out.push(b"nowhere", "[::1]:9".parse().unwrap());
        out.push(b"here", b.local_addr().unwrap());
        let mut reported = Vec::new();
        let r = out.send(a.as_raw_fd(), |to, _| reported.push(to)).unwrap();
        assert_eq!(r, (1, 1));
        assert_eq!(reported, [Some("[::1]:9".parse().unwrap())]);
    }
}
