//! The whole proxy on arbitrary datagrams and TCP streams: parse,
//! validate, route, splice and send, on a stateless and a transactional
//! edge, from a caller and from a destination, with the transaction
//! timers running. No panic, and
//! whatever sipedge sends is a SIP message that parses again.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::pipeline(data));
