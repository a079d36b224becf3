//! SIP traces to a HEP capture server (issue 18 §3): every message of
//! SIPp calls through the edge reaches a HEPv3 receiver, decoded strictly
//! and compared with what SIPp itself sent and received; a sampled edge
//! traces whole calls; a capture server that stops reading never holds up
//! a call, and the dropped traces are counted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use e2e::config::admin;
use e2e::hep::{Receiver, Stuck};
use e2e::prometheus::Scrape;
use e2e::{
    free_port, require_private_netns, AdminApi, Direction, Sipedge, SippUac, SippUas, TracedMessage,
};

/// A stateless edge on `listen` in front of `pool`, tracing to `server`.
fn config(listen: u16, pool: u16, server: &str, hep: &str, edge: &str) -> String {
    format!(
        "[node]\nid = \"hep\"\nsecret = \"{}\"\n\n[hep]\nserver = \"{server}\"\n{hep}\n\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{listen}\"]\n{edge}\n\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:{pool}\"\n",
        e2e::config::SECRET
    )
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("a clock after 1970")
}

/// The texts of `messages` that went in `direction`, probes and their
/// answers left out (they do not pass the edge), counted.
fn texts(messages: &[TracedMessage], direction: Direction) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in messages.iter().filter(|m| {
        m.direction == direction && !m.call_id().is_some_and(|id| id.starts_with("probe."))
    }) {
        *out.entry(m.text.clone()).or_insert(0) += 1;
    }
    out
}

/// The payloads of `packets` that match `keep`, counted.
fn payloads(
    packets: &[e2e::hep::Packet],
    keep: impl Fn(&e2e::hep::Packet) -> bool,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in packets.iter().filter(|p| keep(p)) {
        *out.entry(p.payload.clone()).or_insert(0) += 1;
    }
    out
}

#[test]
fn every_message_of_sipp_calls_reaches_the_capture_server_as_sent() {
    require_private_netns();
    let receiver = Receiver::udp();
    let uas = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let edge_addr = SocketAddr::from(([127, 0, 0, 1], listen));
    let text = config(
        listen,
        uas.port(),
        &receiver.server(),
        "capture_id = 2001\npassword = \"homer\"",
        "",
    );
    let _edge = Sipedge::start(&text);
    let started = since_epoch();
    let server_addr = SocketAddr::from(([127, 0, 0, 1], uas.port()));
    let uac = SippUac::run("uac.xml", &edge_addr.to_string(), 5, 5, &[]);
    let uas = uas.stop();
    uac.assert_all_successful();
    let ended = since_epoch();

    // What the edge read is what the caller and the server sent; what it
    // sent is what they received.
    let caller_sent = texts(uac.messages(), Direction::Sent);
    let caller_got = texts(uac.messages(), Direction::Received);
    let server_sent = texts(uas.messages(), Direction::Sent);
    let server_got = texts(uas.messages(), Direction::Received);
    let total: usize = [&caller_sent, &caller_got, &server_sent, &server_got]
        .iter()
        .map(|m| m.values().sum::<usize>())
        .sum();
    assert!(
        receiver.wait_for(total, Duration::from_secs(10)),
        "fewer than {total} traces"
    );
    let packets = receiver.packets();
    assert_eq!(packets.len(), total);
    let caller_addr = packets
        .iter()
        .find(|p| p.dst == edge_addr && p.src != server_addr)
        .map(|p| p.src)
        .expect("a message from the caller");
    assert_eq!(
        payloads(&packets, |p| p.src == caller_addr && p.dst == edge_addr),
        caller_sent
    );
    assert_eq!(
        payloads(&packets, |p| p.src == edge_addr && p.dst == caller_addr),
        caller_got
    );
    assert_eq!(
        payloads(&packets, |p| p.src == server_addr && p.dst == edge_addr),
        server_sent
    );
    assert_eq!(
        payloads(&packets, |p| p.src == edge_addr && p.dst == server_addr),
        server_got
    );
    for p in &packets {
        assert_eq!((p.protocol, p.capture_id), (17, 2001), "{p:?}");
        assert_eq!(p.password.as_deref(), Some("homer"));
        assert_eq!(
            p.correlation.as_deref(),
            e2e::sip::header(&p.payload, "Call-ID"),
            "{p:?}"
        );
        // Whole seconds: the clock the microseconds count from.
        assert!(
            p.at.as_secs() >= started.as_secs() && p.at <= ended,
            "{:?} outside {started:?}..{ended:?}",
            p.at
        );
    }
}

/// `hep_sample = 0.5`: some calls are traced and some not, and a traced
/// call is traced whole (all its messages, both ways).
#[test]
fn a_sampled_edge_traces_whole_calls() {
    require_private_netns();
    let receiver = Receiver::udp();
    let uas = SippUas::start("uas.xml", free_port(), &[]);
    let listen = free_port();
    let _edge = Sipedge::start(&config(
        listen,
        uas.port(),
        &receiver.server(),
        "",
        "hep_sample = 0.5",
    ));
    let calls = 20;
    let uac = SippUac::run("uac.xml", &format!("127.0.0.1:{listen}"), calls, 20, &[]);
    uac.assert_all_successful();
    let _ = uas.stop();
    // Each traced call: INVITE, 100, 180, 200, ACK, BYE, 200, read and
    // sent (the server answers 100 itself: 14 or more per call).
    let mut per_call: BTreeMap<String, usize> = BTreeMap::new();
    let settled = |r: &Receiver| r.packets().len();
    let mut last = usize::MAX;
    // Wait for the count to settle (the receiver gets them as they come).
    while settled(&receiver) != last {
        last = settled(&receiver);
        std::thread::sleep(Duration::from_millis(300));
    }
    for p in receiver.packets() {
        let id = p.correlation.clone().expect("a correlation id");
        *per_call.entry(id).or_insert(0) += 1;
    }
    let traced = per_call.len();
    assert!(
        traced > 0 && traced < calls as usize,
        "{traced} of {calls} calls traced"
    );
    let first = per_call.values().next().copied().unwrap_or(0);
    assert!(first >= 14, "{per_call:?}");
    assert!(
        per_call.values().all(|&n| n == first),
        "not whole calls: {per_call:?}"
    );
}

/// A capture server that stops reading (TCP, its buffers full): calls go
/// on, every one completes, and the traces that could not wait are
/// dropped and counted in `/metrics`. (Loopback's large segments let the
/// kernel buffer a few megabytes first: 600 calls trace about six.)
#[test]
fn a_stuck_capture_server_never_holds_up_a_call() {
    require_private_netns();
    let stuck = Stuck::tcp();
    let uas = SippUas::start("uas.xml", free_port(), &[]);
    let (listen, api_port) = (free_port(), free_port());
    let text = config(listen, uas.port(), &stuck.server(), "queue = 10", "") + &admin(api_port);
    let _edge = Sipedge::start(&text);
    let calls = 600;
    let uac = SippUac::run("uac.xml", &format!("127.0.0.1:{listen}"), calls, 200, &[]);
    let _ = uas.stop();
    uac.assert_all_successful();
    let m = Scrape::of(&AdminApi::local(api_port).get("/metrics").body);
    let dropped = m.count("sipedge_hep_messages_total", &[("result", "queue_full")])
        + m.count("sipedge_hep_messages_total", &[("result", "failed")]);
    let sent = m.count("sipedge_hep_messages_total", &[("result", "sent")]);
    assert!(dropped > 0, "nothing dropped ({sent} sent)");
    assert!(
        // (Up to the queue's 10 and a batch being written, 64, still wait.)
        sent + dropped + 74 >= u64::from(calls) * 14,
        "{sent} sent + {dropped} dropped"
    );
    assert!(
        stuck.connected(),
        "sipedge never connected to the capture server"
    );
}

/// A real HEP consumer, sngrep (`-L udp:…`, what many NOCs run before
/// they have a Homer): it sees every dialog of SIPp calls through the
/// edge, and the packets it writes out hold each message both ways.
#[test]
fn sngrep_listening_for_hep_sees_every_call() {
    require_private_netns();
    let dir = e2e::TempDir::new("sngrep");
    let (hep_port, listen) = (free_port(), free_port());
    let pcap = dir.path().join("hep.pcap");
    let out = dir.path().join("sngrep.out");
    let mut sngrep = std::process::Command::new("sngrep")
        .args(["-N", "-L", &format!("udp:127.0.0.1:{hep_port}"), "-O"])
        .arg(&pcap)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).expect("sngrep's output file"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start sngrep (apt-get install sngrep): {e}"));
    let said = || std::fs::read_to_string(&out).unwrap_or_default();
    let wait = |what: &str, done: &dyn Fn(&str) -> bool| {
        let start = std::time::Instant::now();
        while !done(&said()) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sngrep: no {what}: {}",
                said()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("start", &|s| s.contains("Dialog count"));
    let uas = SippUas::start("uas.xml", free_port(), &[]);
    let _edge = Sipedge::start(&config(
        listen,
        uas.port(),
        &format!("udp:127.0.0.1:{hep_port}"),
        "",
        "",
    ));
    let calls = 3;
    let uac = SippUac::run("uac.xml", &format!("127.0.0.1:{listen}"), calls, 5, &[]);
    uac.assert_all_successful();
    wait("3 dialogs", &|s| s.ends_with("Dialog count: 3"));
    // SIGTERM: sngrep closes its capture file.
    let killed = std::process::Command::new("kill")
        .arg(sngrep.id().to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let _ = sngrep.wait();
    let _ = uas.stop();
    let bytes = std::fs::read(&pcap).expect("sngrep's capture file");
    let count = |needle: &[u8]| bytes.windows(needle.len()).filter(|w| *w == needle).count();
    // Each message twice: read by the edge, and sent on.
    assert_eq!(count(b"INVITE sip:"), 2 * calls as usize);
    assert_eq!(count(b"ACK sip:"), 2 * calls as usize);
    assert_eq!(count(b"BYE sip:"), 2 * calls as usize);
    assert_eq!(count(b"SIP/2.0 200 OK"), 4 * calls as usize);
}
