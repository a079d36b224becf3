//! Call records (issue 18 §4): a SIPp run through a transactional edge
//! whose first server refuses every call (failover) and whose CPS limit
//! refuses some (breaches); the records match the run call for call.
//! Then rotation by size and reopening on SIGUSR1.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::config::{admin, single_edge, transactional};
use e2e::json::Json;
use e2e::prometheus::Scrape;
use e2e::{free_port, require_private_netns, AdminApi, Sipedge, SippUac, SippUas, TempDir};

/// How long the writer may take to write what passed (it writes within a
/// quarter of a second).
const WRITTEN: Duration = Duration::from_secs(10);

/// Every JSON line in `files`.
fn lines_of(files: &[PathBuf]) -> Vec<Json> {
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
        .map(|l| e2e::json::parse(&l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The records file and what rotation made of it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    f.retain(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("calls.jsonl"))
    });
    f.sort();
    f
}

/// Waits until `files` hold `attempts` attempt lines and `ends` end lines.
fn wait_for_lines(dir: &Path, attempts: usize, ends: usize) -> Vec<Json> {
    let start = Instant::now();
    loop {
        let lines = lines_of(&files(dir));
        let count = |t: &str| lines.iter().filter(|l| l["type"] == t).count();
        if count("attempt") >= attempts && count("end") >= ends {
            return lines;
        }
        assert!(
            start.elapsed() < WRITTEN,
            "{} attempt and {} end lines, wanted {attempts} and {ends}: {lines:?}",
            count("attempt"),
            count("end")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn records_of_a_run_with_failover_and_breaches_match_it() {
    require_private_netns();
    let broken = SippUas::start("uas-503.xml", free_port(), &[]);
    let good = SippUas::start("uas.xml", free_port(), &[]);
    let dir = TempDir::new("records");
    let (listen, api_port) = (free_port(), free_port());
    let config = transactional(
        &single_edge(listen, "first", &[(broken.port(), 1), (good.port(), 1)]),
        "",
    )
    .replace("flags = ", "cps = 5\nflags = ")
        + &admin(api_port)
        + &format!(
            "\n[records]\nfile = \"{}/calls.jsonl\"\n",
            dir.path().display()
        );
    let _edge = Sipedge::start(&config);
    let calls = 20;
    let uac = SippUac::run(
        "uac-or-503.xml",
        &format!("127.0.0.1:{listen}"),
        calls,
        10,
        &[],
    );
    uac.assert_all_successful();
    let (broken, good) = (broken.stop(), good.stop());
    let refused: BTreeSet<String> = uac
        .responses(503)
        .iter()
        .filter_map(|m| m.call_id().map(str::to_owned))
        .collect();
    let answered = good.call_ids("INVITE");
    assert!(!refused.is_empty(), "cps = 5 refused nothing");
    assert_eq!(refused.len() + answered.len(), calls as usize);

    let lines = wait_for_lines(dir.path(), calls as usize, answered.len());
    let attempts: Vec<&Json> = lines.iter().filter(|l| l["type"] == "attempt").collect();
    let ends: Vec<&Json> = lines.iter().filter(|l| l["type"] == "end").collect();
    // One attempt line per call, none twice.
    let ids: BTreeSet<String> = attempts
        .iter()
        .filter_map(|l| l["call_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(attempts.len(), calls as usize, "{attempts:?}");
    assert_eq!(ids, &refused | &answered);
    let broken_uri = format!("sip:127.0.0.1:{}", broken_port(&config, 0));
    let good_uri = format!("sip:127.0.0.1:{}", broken_port(&config, 1));
    for a in &attempts {
        let id = a["call_id"].as_str().unwrap_or_default();
        assert_eq!(a["node"], "test");
        assert_eq!(a["edge"], "e");
        assert_eq!(a["from"], "sipp");
        assert!(
            a["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("udp:127.0.0.1:")),
            "{a}"
        );
        assert!(a["setup_ms"].as_u64().is_some(), "{a}");
        let tried = a["tried"].as_array().expect("tried");
        if refused.contains(id) {
            // Refused by the edge's CPS limit: nothing tried.
            assert_eq!(a["code"], 503, "{a}");
            assert_eq!(a["refused"], "cps", "{a}");
            assert!(tried.is_empty(), "{a}");
        } else {
            // The first server's 503, then the second's 200.
            assert_eq!(a["code"], 200, "{a}");
            assert_eq!(a["refused"], Json::Null, "{a}");
            let seen: Vec<(&str, u64)> = tried
                .iter()
                .map(|t| {
                    (
                        t["destination"].as_str().unwrap_or(""),
                        t["code"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            assert_eq!(
                seen,
                [(broken_uri.as_str(), 503), (good_uri.as_str(), 200)],
                "{a}"
            );
            assert!(tried.iter().all(|t| t["ms"].as_u64().is_some()), "{a}");
        }
    }
    // Every INVITE the first server got is in the records, once.
    assert_eq!(broken.count("INVITE"), answered.len());
    // One end line per answered call, its BYE from the caller, with a
    // duration.
    let ended: BTreeSet<String> = ends
        .iter()
        .filter_map(|l| l["call_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ended, answered);
    for e in &ends {
        assert_eq!(e["by"], "caller", "{e}");
        assert!(e["duration_s"].as_f64().is_some_and(|d| d >= 0.0), "{e}");
        assert_eq!(e["from"], "sipp", "{e}");
    }
    // The breaches the records show are the ones /metrics counts.
    let m = Scrape::of(&AdminApi::local(api_port).get("/metrics").body);
    assert_eq!(
        m.count("sipedge_cps_breaches_total", &[("edge", "e")]),
        refused.len() as u64
    );
    assert_eq!(
        m.count("sipedge_call_records_total", &[("result", "written")]),
        (attempts.len() + ends.len()) as u64
    );
    assert_eq!(
        m.count("sipedge_call_records_total", &[("result", "queue_full")]),
        0
    );
}

/// The port of destination `i` in a config made by `single_edge`.
fn broken_port(config: &str, i: usize) -> u16 {
    config
        .lines()
        .filter_map(|l| l.strip_prefix("uri = \"sip:127.0.0.1:"))
        .nth(i)
        .and_then(|p| p.trim_end_matches('"').parse().ok())
        .expect("a destination port")
}

#[test]
fn the_records_file_rotates_by_size_and_reopens_on_sigusr1() {
    require_private_netns();
    let good = SippUas::start("uas.xml", free_port(), &[]);
    let dir = TempDir::new("records-rotate");
    let listen = free_port();
    let config = single_edge(listen, "first", &[(good.port(), 1)])
        + &format!(
            "\n[records]\nfile = \"{}/calls.jsonl\"\nrotate_size = 4096\n",
            dir.path().display()
        );
    let mut edge = Sipedge::start(&config);
    let target = format!("127.0.0.1:{listen}");
    let uac = SippUac::run("uac.xml", &target, 30, 30, &[]);
    uac.assert_all_successful();
    let lines = wait_for_lines(dir.path(), 30, 30);
    assert_eq!(lines.len(), 60, "a line lost or written twice");
    let rotated = files(dir.path());
    assert!(
        rotated.len() >= 3,
        "30 calls (~20 KB) in 4 KB files: {rotated:?}"
    );
    for f in &rotated {
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        // Rotated after the write that crossed 4 KB: never much more.
        assert!(size < 4096 + 2048, "{f:?} is {size} bytes");
    }
    // logrotate's way: move the file away, then SIGUSR1.
    let current = dir.path().join("calls.jsonl");
    let moved = dir.path().join("moved.jsonl");
    std::fs::rename(&current, &moved).expect("move the file away");
    edge.signal(libc::SIGUSR1);
    assert!(edge.wait_for_stderr("SIGUSR1", Duration::from_secs(5)));
    let uac = SippUac::run("uac.xml", &target, 1, 1, &[]);
    uac.assert_all_successful();
    assert!(edge.is_running(), "SIGUSR1 ended sipedge");
    // Stopped at once: what was queued is written before it exits, into
    // the reopened file; the moved one kept what came before.
    assert_eq!(edge.stop(Duration::from_secs(5)), Some(0));
    let last = lines_of(std::slice::from_ref(&current));
    let kinds: Vec<&str> = last.iter().filter_map(|l| l["type"].as_str()).collect();
    assert_eq!(kinds, ["attempt", "end"], "{last:?}");
    assert!(!lines_of(&[moved]).is_empty());
    drop(good);
}

/// Two carriers, each from its own loopback address: every attempt line
/// names the `[[edge.peer]]` it came from (issue 19's peers, as the
/// records show them), and /metrics counts each one's calls.
#[test]
fn records_name_the_peer_each_call_came_from() {
    require_private_netns();
    let good = SippUas::start("uas.xml", free_port(), &[]);
    let dir = TempDir::new("records-peers");
    let (listen, api_port) = (free_port(), free_port());
    let config = single_edge(listen, "first", &[(good.port(), 1)])
        + &admin(api_port)
        + "\n[[edge.peer]]\nname = \"carrier-a\"\nsources = [\"127.0.0.2\"]\n\
           \n[[edge.peer]]\nname = \"carrier-b\"\nsources = [\"127.0.0.3/32\"]\n"
        + &format!(
            "\n[records]\nfile = \"{}/calls.jsonl\"\n",
            dir.path().display()
        );
    let _edge = Sipedge::start(&config);
    let target = format!("127.0.0.1:{listen}");
    for source in ["127.0.0.2", "127.0.0.3"] {
        SippUac::run("uac.xml", &target, 3, 10, &["-i", source]).assert_all_successful();
    }
    let lines = wait_for_lines(dir.path(), 6, 6);
    let mut seen: Vec<(String, String)> = lines
        .iter()
        .filter(|l| l["type"] == "attempt")
        .map(|l| {
            let source = l["source"].as_str().unwrap_or("");
            let ip = source
                .trim_start_matches("udp:")
                .rsplit_once(':')
                .map_or("", |(ip, _)| ip);
            (ip.to_owned(), l["peer"].as_str().unwrap_or("-").to_owned())
        })
        .collect();
    seen.sort();
    let want = |ip: &str, peer: &str| (ip.to_owned(), peer.to_owned());
    assert_eq!(
        seen,
        [
            want("127.0.0.2", "carrier-a"),
            want("127.0.0.2", "carrier-a"),
            want("127.0.0.2", "carrier-a"),
            want("127.0.0.3", "carrier-b"),
            want("127.0.0.3", "carrier-b"),
            want("127.0.0.3", "carrier-b"),
        ]
    );
    // And /metrics counts the calls per peer.
    let m = Scrape::of(&AdminApi::local(api_port).get("/metrics").body);
    for peer in ["carrier-a", "carrier-b"] {
        assert_eq!(
            m.count("sipedge_peer_calls_total", &[("edge", "e"), ("peer", peer)]),
            3,
            "{peer}"
        );
    }
    drop(good);
}
