//! Flow token opening on arbitrary text, and sealing round trips of
//! tokens built from the input.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::token(data));
