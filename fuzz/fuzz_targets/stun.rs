//! STUN datagrams on the SIP port: answered or dropped, never a panic,
//! and never an answer to an answer.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::stun(data));
