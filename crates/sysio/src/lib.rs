//! The kernel interfaces std does not offer, for the daemon, the load
//! generator and the tests: batched datagram I/O with recvmmsg(2) and
//! sendmmsg(2) ([`batch`]), socket buffer sizes, ppoll(2) with a
//! nanosecond timeout, CPU time, signals ([`calls`]), a socket registered
//! with the tokio runtime for readability only ([`watch`]), and a counting
//! allocator for the tests that prove the hot path allocates nothing
//! ([`counting`]).
//!
//! This is the one crate of sipedge where `unsafe` is allowed; every other
//! crate forbids it. Every `unsafe` block says why it is sound. The
//! structures handed to the kernel are libc's plain-old-data types (all
//! zero bytes is a valid value for each), and every pointer in them points
//! into heap memory the batch owns, set or rebuilt right before the call.

#![warn(missing_docs)]

pub mod batch;
pub mod calls;
pub mod counting;
mod sockaddr;
pub mod watch;

pub use batch::{RecvBatch, SendBatch};
