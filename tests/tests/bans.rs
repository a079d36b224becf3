//! Bans: a source that floods an edge is banned (and dropped unanswered)
//! while a caller's calls go on; the operator lists, adds and lifts bans
//! with `sipedge ctl bans`, and a banned phone's established call still
//! ends properly; the APIBAN feed, served by a local HTTP server that
//! answers like the real API (pages of 250, "no new bans" with status
//! 400), bans what it lists.
//!
//! Sources are loopback addresses of the test's namespace: the caller at
//! 127.0.0.1, the flooder at 127.0.0.2, a phone at 127.0.0.3, addresses
//! the feed lists at 127.0.0.6 and 127.0.1.x.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::admin::AdminApi;
use e2e::expect::{final_response, next_arrival};
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, FakePool, Sipedge, SippUac, SippUas, Udp};

/// A bound for an answer that should come: the test fails if it does not.
const ANSWER: Duration = Duration::from_secs(5);

/// An OPTIONS ping to the edge itself from `from`.
fn ping(from: &Udp, edge: &str) {
    let req = Request::new("OPTIONS", &format!("sip:{edge}"), from.local_addr());
    from.send_to(req.build(), edge);
}

/// True when `from`'s ping is answered (within [`ANSWER`]).
fn answered(from: &Udp, edge: &str) -> bool {
    ping(from, edge);
    from.recv_text_timeout(ANSWER)
        .is_some_and(|(a, _)| sip::status_code(&a) == Some(200))
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Polls `GET /api/bans` until `done` holds, at most 10 s.
#[track_caller]
fn wait_for_bans(api: &AdminApi, what: &str, done: impl Fn(&e2e::Json) -> bool) -> e2e::Json {
    let start = Instant::now();
    loop {
        let v = api.get("/api/bans").json();
        if done(&v) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not within 10 s: {what}\n{v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_flooding_source_is_banned_while_the_callers_calls_complete() {
    require_private_netns();
    const THRESHOLD: usize = 400;
    const FLOOD: usize = 20_000;
    let (edge_port, admin) = (free_port(), free_port());
    let pool = SippUas::start("uas.xml", free_port(), &[]);
    let edge = Sipedge::start(&format!(
        "[node]\nid = \"flood\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [[edge]]\nname = \"guarded\"\nlisten = [\"udp:127.0.0.1:{edge_port}\"]\n\
         flags = [\"ping-replies\"]\n\
         flood_threshold = {THRESHOLD}\nflood_window = 1\nban_time = 120\n\
         [[edge.destination]]\nuri = \"{}\"\n",
        pool.uri()
    ));
    let api = AdminApi::local(admin);
    let to_edge = format!("127.0.0.1:{edge_port}");
    let rss_before = rss_kib(edge.pid());

    // The flood: OPTIONS to the edge (each answered while under the
    // threshold), 20,000 over about two seconds, while the caller runs.
    let flooder = Arc::new(Udp::bind_ip("127.0.0.2"));
    let flood = {
        let (flooder, to_edge) = (Arc::clone(&flooder), to_edge.clone());
        std::thread::spawn(move || {
            let msg =
                Request::new("OPTIONS", &format!("sip:{to_edge}"), flooder.local_addr()).build();
            for burst in 0..FLOOD / 500 {
                for _ in 0..500 {
                    flooder.send_to(msg.as_bytes(), to_edge.as_str());
                }
                if burst % 4 == 3 {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
    };
    // 200 calls at 50 a second: 150 requests a second from the caller,
    // under the threshold.
    let calls = SippUac::run("uac.xml", &to_edge, 200, 50, &["-s", "pool"]);
    flood.join().expect("the flood thread");
    calls.assert_all_successful();

    let bans = wait_for_bans(&api, "the flooder banned", |v| {
        v["counts"]["flood"].as_u64() == Some(1)
    });
    let ban = &bans["bans"][0];
    assert_eq!(ban["address"], "127.0.0.2", "{bans}");
    assert_eq!(ban["reason"], "flood", "{bans}");
    assert_eq!(ban["edge"], "guarded", "{bans}");
    assert!(
        ban["expires_in"]
            .as_u64()
            .is_some_and(|s| s > 100 && s <= 120),
        "{bans}"
    );

    // Its answers: at most the threshold in each of the (at most two)
    // windows before the ban applied (fewer arrive when its own receive
    // buffer overflowed while it sent).
    let mut answers = 0;
    while flooder.recv_timeout(Duration::from_millis(300)).is_some() {
        answers += 1;
    }
    assert!(
        answers <= 2 * THRESHOLD,
        "the flooder got {answers} answers"
    );
    // Most of the flood was dropped by the edge (some of it by the
    // kernel, when the edge's receive buffer was full).
    let blocked = &api.destinations()["edges"][0]["blocked"];
    assert!(
        blocked["flood"]
            .as_u64()
            .is_some_and(|n| n as usize >= FLOOD / 10),
        "{blocked}"
    );
    // The ban holds after the flood: a ping gets nothing; the caller's does.
    assert!(
        !answered(&flooder, &to_edge),
        "a banned source was answered"
    );
    assert!(answered(&Udp::bind(), &to_edge));
    // Memory did not grow with the flood.
    let grown = rss_kib(edge.pid()).saturating_sub(rss_before);
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} KiB during the flood"
    );
    assert!(
        edge.wait_for_stderr("flood: source banned", ANSWER),
        "the ban is logged\n{}",
        edge.stderr_text()
    );
}

#[test]
fn the_operator_bans_and_lifts_and_a_banned_phone_still_ends_its_call() {
    require_private_netns();
    let (edge_port, admin) = (free_port(), free_port());
    let pool = FakePool::start(1);
    let edge = Sipedge::start(&format!(
        "[node]\nid = \"ctl-bans\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{edge_port}\"]\n\
         flags = [\"ping-replies\"]\n\
         [[edge.destination]]\nuri = \"sip:{}\"\n",
        pool.addr(0)
    ));
    let api = AdminApi::local(admin);
    let to_edge = format!("127.0.0.1:{edge_port}");
    let phone = Udp::bind_ip("127.0.0.3");

    // The phone's call is set up.
    let invite = Request::new("INVITE", &format!("sip:bob@{to_edge}"), phone.local_addr());
    let call_id = invite.get("Call-ID").expect("Call-ID").to_string();
    phone.send_to(invite.build(), to_edge.as_str());
    let got = next_arrival(&pool, "INVITE", &call_id);
    let rr = sip::header(&got.text, "Record-Route")
        .expect("Record-Route")
        .to_string();
    let ok = sip::accepted(&got.text, &rr, &format!("sip:bob@{}", pool.addr(0)));
    pool.send_from(0, &ok, got.from);
    let (answer, _) = final_response(&phone, &call_id, "INVITE");
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");

    // The operator bans it.
    let out = api.ctl(&["bans", "add", "127.0.0.3", "10m"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), "127.0.0.3 banned for 600 s", "{out}");
    let out = api.ctl(&["bans"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("127.0.0.3  admin"), "{out}");
    assert!(
        out.stdout
            .contains("0 banned for flooding, 1 by the operator"),
        "{out}"
    );

    // A new request from it gets nothing; its call's ACK and BYE, along
    // the edge's Record-Route, go through, and so does the answer.
    assert!(
        !answered(&phone, &to_edge),
        "a banned phone's ping was answered"
    );
    let again = Request::new("INVITE", &format!("sip:bob@{to_edge}"), phone.local_addr());
    phone.send_to(again.build(), to_edge.as_str());
    let in_dialog = |method: &str, cseq: u32| {
        Request::new(
            method,
            &format!("sip:bob@{}", pool.addr(0)),
            phone.local_addr(),
        )
        .set("Call-ID", &call_id)
        .set("From", invite.get("From").expect("From"))
        .set("To", sip::header(&answer, "To").expect("To"))
        .set("CSeq", &format!("{cseq} {method}"))
        .set("Route", &rr)
    };
    phone.send_to(in_dialog("ACK", 1).build(), to_edge.as_str());
    next_arrival(&pool, "ACK", &call_id);
    phone.send_to(in_dialog("BYE", 2).build(), to_edge.as_str());
    let bye = next_arrival(&pool, "BYE", &call_id);
    pool.send_from(0, sip::response_to(&bye.text, 200, "OK"), bye.from);
    let (bye_answer, _) = final_response(&phone, &call_id, "BYE");
    assert_eq!(sip::status_code(&bye_answer), Some(200), "{bye_answer}");
    // The second INVITE, sent before the ACK, never reached the pool.
    let again_id = again.get("Call-ID").expect("Call-ID");
    assert!(
        pool.recv_matching(Duration::ZERO, |a| a.text.contains(again_id))
            .is_none(),
        "a banned phone's new call reached the pool"
    );
    let blocked = &api.destinations()["edges"][0]["blocked"];
    assert_eq!(blocked["ban"].as_u64(), Some(2), "{blocked}");

    // Lifted, it is served again; lifting twice is an error.
    let out = api.ctl(&["bans", "remove", "127.0.0.3"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(answered(&phone, &to_edge), "served once the ban is lifted");
    let out = api.ctl(&["bans", "remove", "127.0.0.3"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("not banned"), "{out}");
    let out = api.ctl(&["bans", "add", "127.0.0.3", "soon"]);
    assert_eq!(out.code, Some(1), "{out}");
    drop(edge);
}

/// A local server answering like the APIBAN API: the oldest page without
/// an ID, then page by page, then "no new bans" (status 400) — until
/// `more` holds addresses, which come as one more page. Every path asked
/// is recorded.
struct FakeApiban {
    port: u16,
    asked: Arc<Mutex<Vec<String>>>,
    more: Arc<Mutex<Vec<String>>>,
}

impl FakeApiban {
    fn start() -> FakeApiban {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let more: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let (log, extra) = (Arc::clone(&asked), Arc::clone(&more));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // The rest of the head.
                let mut h = String::new();
                while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                    h.clear();
                }
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                log.lock().expect("lock").push(path.clone());
                let page = |ips: Vec<String>, id: &str| {
                    let list: Vec<String> = ips.iter().map(|i| format!("\"{i}\"")).collect();
                    (
                        200,
                        format!("{{\"ipaddress\":[{}],\"ID\":\"{id}\"}}", list.join(",")),
                    )
                };
                let none = (
                    400,
                    r#"{"ipaddress":["no new bans"], "ID":"none"}"#.to_owned(),
                );
                let (status, body) = match path.as_str() {
                    "/api/TESTKEY/banned" => {
                        page((1..=250).map(|i| format!("127.0.1.{i}")).collect(), "1001")
                    }
                    "/api/TESTKEY/banned/1001" => {
                        page(vec!["127.0.0.6".into(), "2001:db8::66".into()], "1002")
                    }
                    "/api/TESTKEY/banned/1002" => {
                        let more = std::mem::take(&mut *extra.lock().expect("lock"));
                        if more.is_empty() {
                            none
                        } else {
                            page(more, "1003")
                        }
                    }
                    "/api/TESTKEY/banned/1003" => none,
                    _ => (
                        403,
                        r#"{"ipaddress":"none", "ID":"unauthorized"}"#.to_owned(),
                    ),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeApiban { port, asked, more }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("lock").clone()
    }
}

#[test]
fn the_apiban_feed_is_followed_page_by_page_and_its_addresses_dropped() {
    require_private_netns();
    let feed = FakeApiban::start();
    let dir = e2e::TempDir::new("apiban");
    let key = dir.path().join("apiban.key");
    std::fs::write(&key, "TESTKEY\n").expect("write the key");
    let (edge_port, admin) = (free_port(), free_port());
    let edge = Sipedge::start(&format!(
        "[node]\nid = \"apiban\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [apiban]\nkey_file = \"{}\"\nurl = \"http://127.0.0.1:{}/api\"\ninterval = 1\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{edge_port}\"]\n\
         flags = [\"ping-replies\"]\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:9\"\n",
        key.display(),
        feed.port
    ));
    let api = AdminApi::local(admin);
    let to_edge = format!("127.0.0.1:{edge_port}");
    wait_for_bans(&api, "the first two pages", |v| {
        v["counts"]["apiban"].as_u64() == Some(252)
    });
    for listed in ["127.0.0.6", "127.0.1.17"] {
        assert!(
            !answered(&Udp::bind_ip(listed), &to_edge),
            "{listed} answered"
        );
    }
    assert!(answered(&Udp::bind(), &to_edge), "an unlisted caller");

    // A later poll brings one more address.
    feed.more.lock().expect("lock").push("127.0.0.7".into());
    wait_for_bans(&api, "the new page", |v| {
        v["counts"]["apiban"].as_u64() == Some(253)
    });
    assert!(!answered(&Udp::bind_ip("127.0.0.7"), &to_edge));
    let blocked = &api.destinations()["edges"][0]["blocked"];
    assert_eq!(blocked["apiban"].as_u64(), Some(3), "{blocked}");

    let asked = feed.asked();
    assert_eq!(
        &asked[..3],
        [
            "/api/TESTKEY/banned",
            "/api/TESTKEY/banned/1001",
            "/api/TESTKEY/banned/1002"
        ],
        "{asked:?}"
    );
    assert!(
        asked.iter().any(|p| p == "/api/TESTKEY/banned/1003"),
        "{asked:?}"
    );
    // `ctl bans` leaves the feed's addresses out unless asked.
    let out = api.ctl(&["bans"]);
    assert!(!out.stdout.contains("127.0.0.6"), "{out}");
    assert!(out.stdout.contains("253 listed by APIBAN"), "{out}");
    let out = api.ctl(&["bans", "--all"]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("127.0.0.6 ") && l.contains(" apiban")),
        "{out}"
    );
    drop(edge);
}
