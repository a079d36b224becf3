//! Every input the fuzzers ever crashed on (fuzz/regressions/TARGET/*),
//! replayed through the same harness functions the fuzz targets run, under
//! plain `cargo test`: a crash once found stays fixed.

#[path = "../../../fuzz/harness.rs"]
mod harness;

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries.flatten() {
        let data = std::fs::read(entry.path()).expect("regression input");
        run(&data);
        n += 1;
    }
    n
}

#[test]
fn fuzz_regressions_stay_fixed() {
    let n = replay("parse", harness::parse)
        + replay("framing", harness::framing)
        + replay("pipeline", harness::pipeline)
        + replay("config", harness::config)
        + replay("token", harness::token);
    assert!(n > 0, "no regression inputs found under fuzz/regressions");
}
