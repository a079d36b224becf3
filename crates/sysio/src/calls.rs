//! Single kernel calls std does not offer: socket buffer sizes beyond the
//! defaults, ppoll(2) with a nanosecond timeout, the process's CPU time,
//! and sending a signal.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

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

/// Sends `signal` to process `pid`. Returns false when there is no such
/// process (or it may not be signalled). The caller makes sure `pid`
/// still names the process it means (a child not yet reaped).
pub fn kill(pid: u32, signal: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_readable_socket_wakes_the_wait_and_a_quiet_one_times_out() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fds = [b.as_raw_fd()];
        assert!(!wait_readable(&fds, Duration::from_millis(1)).unwrap());
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        assert!(wait_readable(&fds, Duration::from_secs(5)).unwrap());
    }

    #[test]
    fn buffers_cpu_time_and_signals() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(set_buffers(s.as_raw_fd(), 1 << 20) > 0);
        let start = std::time::Instant::now();
        let mut x = 1u64;
        while start.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let (user, system) = cpu_time();
        assert!(user + system > Duration::ZERO);
        // Signal 0 checks the process exists without signalling it.
        assert!(kill(std::process::id(), 0));
    }
}
