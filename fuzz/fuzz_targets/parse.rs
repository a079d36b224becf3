//! The parser and every accessor a proxy uses, on arbitrary bytes: no
//! panic, no unbounded work.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::parse(data));
