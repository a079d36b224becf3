//! Stream framing (TCP, TLS) on arbitrary bytes split anywhere: the same
//! frames however the bytes arrive, and every message ends where its one
//! Content-Length says.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::framing(data));
