//! The config parser on arbitrary text: an error with file, line and key,
//! never a panic.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::config(data));
