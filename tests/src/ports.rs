//! Free ports for tests that run in parallel threads of one process.
//!
//! Ports come from 20000–32767, below Linux's ephemeral range
//! (32768–60999 by default), so a socket some process binds to port 0 can
//! never take a port a test was promised. Each port is handed out at most
//! once per process, and only if it can be bound right now on 127.0.0.1
//! for both UDP and TCP. Inside the private network namespace nothing else
//! runs, so a port that was free stays free until the test binds it.

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

use crate::netns::require_private_netns;

const FIRST: u16 = 20_000;
const LAST: u16 = 32_767;

struct Allocator {
    next: u16,
    given: BTreeSet<u16>,
}

static ALLOCATOR: Mutex<Allocator> = Mutex::new(Allocator {
    next: FIRST,
    given: BTreeSet::new(),
});

/// One free port on 127.0.0.1 (UDP and TCP), distinct from every other
/// port this process was given.
pub fn free_port() -> u16 {
    free_port_block(1)
}

/// `n` distinct free ports, not necessarily adjacent.
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

/// The first of `n` adjacent free ports (`p`, `p+1`, … `p+n-1`).
///
/// For programs that take one port and use the next ones too, such as
/// SIPp's media port (`-mp p` binds `p` and `p+2`).
pub fn free_port_block(n: usize) -> u16 {
    require_private_netns();
    assert!((1..=64).contains(&n), "port blocks are 1 to 64 ports long");
    let n = n as u16;
    let mut alloc = ALLOCATOR.lock().unwrap_or_else(|p| p.into_inner());
    // Bounded: at most one pass over the range, plus the wrap-around.
    let span = u32::from(LAST - FIRST) + 1;
    let mut tried = 0u32;
    while tried < span {
        let base = alloc.next;
        alloc.next = if base + n > LAST { FIRST } else { base + n };
        tried += u32::from(n);
        if base + n - 1 > LAST {
            continue;
        }
        let block = base..base + n;
        if block
            .clone()
            .all(|p| !alloc.given.contains(&p) && bindable(p))
        {
            alloc.given.extend(block);
            return base;
        }
    }
    panic!("no block of {n} free ports left in {FIRST}..={LAST}");
}

fn bindable(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_blocks_adjacent() {
        let mut all = BTreeSet::new();
        for p in free_ports(20) {
            assert!(all.insert(p), "port {p} handed out twice");
        }
        let base = free_port_block(4);
        for p in base..base + 4 {
            assert!(all.insert(p), "block port {p} handed out twice");
            assert!(UdpSocket::bind(("127.0.0.1", p)).is_ok());
        }
    }
}
