//! SIP over TCP (RFC 3261 §18): SIPp callers over one connection (`-t t1`)
//! and a connection per call (`-t tn`) through the edge to servers over
//! UDP and over TCP, in both insertion modes; stream framing as a client
//! sees it (several messages in one segment, a message split anywhere,
//! CRLF ping and pong, a message without Content-Length); the protection
//! on connections (a client trickling its header section, a source over
//! its cap) while calls from another source go on; and a caller whose
//! connection closed mid-call getting its BYE over a new one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

use e2e::admin::AdminApi;
use e2e::config::SECRET;
use e2e::expect::{next_arrival, ANSWER, SILENCE};
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, FakePool, Sipedge, SippUac, SippUas};

/// An edge listening on UDP and TCP at 127.0.0.1:`listen`, dispatching to
/// `destinations` (URIs), with an admin API on `admin` and `extra` lines
/// appended (a `[connections]` table, say).
fn config(
    listen: u16,
    admin: u16,
    destinations: &[String],
    insertion: &str,
    extra: &str,
) -> String {
    let mut toml = format!(
        "[node]\nid = \"tcp\"\nsecret = \"{SECRET}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         {extra}\n\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{listen}\", \"tcp:127.0.0.1:{listen}\"]\n\
         algorithm = \"hash-call-id\"\ninsertion = \"{insertion}\"\nflags = [\"ping-replies\"]\n"
    );
    for uri in destinations {
        toml.push_str(&format!("\n[[edge.destination]]\nuri = \"{uri}\"\n"));
    }
    toml
}

fn target(listen: u16) -> String {
    format!("127.0.0.1:{listen}")
}

/// The connection counters of the admin API.
fn connections(api: &AdminApi) -> e2e::Json {
    let r = api.get("/api/connections");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn count(j: &e2e::Json, key: &str) -> u64 {
    j.get(key)
        .and_then(e2e::Json::as_u64)
        .unwrap_or_else(|| panic!("no {key} in {j:?}"))
}

/// SIPp callers over TCP — one connection for all calls, and one per
/// call — through the edge to two SIPp servers over UDP: every call
/// completes, each stays on one server, and the servers see the edge's
/// Via over UDP with two Record-Routes (one per side, RFC 5658).
#[test]
fn tcp_callers_reach_udp_servers_in_both_insertion_modes() {
    require_private_netns();
    for insertion in ["stateless", "transactional"] {
        let a = SippUas::start("uas.xml", free_port(), &[]);
        let b = SippUas::start("uas.xml", free_port(), &[]);
        let (listen, admin) = (free_port(), free_port());
        let dests = [a.uri(), b.uri()];
        let _edge = Sipedge::start(&config(listen, admin, &dests, insertion, ""));
        let one = SippUac::run("uac.xml", &target(listen), 60, 60, &["-t", "t1"]);
        let each = SippUac::run(
            "uac.xml",
            &target(listen),
            30,
            30,
            &["-t", "tn", "-max_socket", "100"],
        );
        let (a, b) = (a.stop(), b.stop());
        one.assert_all_successful();
        each.assert_all_successful();
        assert_eq!(
            e2e::calls_on_one_server(&[&a, &b], &["INVITE", "ACK", "BYE"]),
            Ok(90),
            "{insertion}"
        );
        let invite = a
            .requests("INVITE")
            .into_iter()
            .chain(b.requests("INVITE"))
            .next()
            .expect("an INVITE");
        let vias = invite.headers("Via");
        assert!(
            vias[0].starts_with(&format!("SIP/2.0/UDP 127.0.0.1:{listen};")),
            "{}",
            invite.text
        );
        assert!(vias.join(",").contains("SIP/2.0/TCP"), "{}", invite.text);
        let rr = sip::untokened(&invite.headers("Record-Route").join(","));
        assert!(
            rr.contains(&format!("<sip:127.0.0.1:{listen};lr>"))
                && rr.contains(&format!("<sip:127.0.0.1:{listen};transport=tcp;lr>")),
            "{insertion}: {rr}"
        );
        let api = AdminApi::local(admin);
        let c = connections(&api);
        assert!(count(&c, "accepted") >= 31, "{insertion}: {c:?}");
    }
}

/// Servers reached over TCP (`;transport=tcp`): SIPp callers over UDP and
/// over TCP complete every call, the edge reuses its connections to the
/// servers rather than opening one per call, and the servers' requests
/// (from ephemeral ports) are the pool's.
#[test]
fn tcp_servers_behind_the_edge_get_every_call_over_reused_connections() {
    require_private_netns();
    let pa = free_port();
    let pb = free_port();
    let a = SippUas::start("uas.xml", pa, &["-t", "t1"]);
    let b = SippUas::start("uas.xml", pb, &["-t", "t1"]);
    let (listen, admin) = (free_port(), free_port());
    let dests = [
        format!("sip:127.0.0.1:{pa};transport=tcp"),
        format!("sip:127.0.0.1:{pb};transport=tcp"),
    ];
    let _edge = Sipedge::start(&config(listen, admin, &dests, "stateless", ""));
    // Probed over TCP too: both answer.
    AdminApi::local(admin).wait_until("both servers answered a probe", ANSWER, |v| {
        (0..2)
            .all(|i| e2e::admin::destination(v, "e", i)["last_probe"]["ok"].as_bool() == Some(true))
    });
    let udp = SippUac::run("uac.xml", &target(listen), 40, 40, &[]);
    let tcp = SippUac::run("uac.xml", &target(listen), 40, 40, &["-t", "t1"]);
    let (a, b) = (a.stop(), b.stop());
    udp.assert_all_successful();
    tcp.assert_all_successful();
    assert_eq!(
        e2e::calls_on_one_server(&[&a, &b], &["INVITE", "ACK", "BYE"]),
        Ok(80)
    );
    let invite = a.requests("INVITE")[0];
    assert!(
        invite.headers("Via")[0].starts_with(&format!("SIP/2.0/TCP 127.0.0.1:{listen};")),
        "{}",
        invite.text
    );
    let probe = a.requests("OPTIONS")[0];
    assert!(
        probe.headers("Via")[0].starts_with("SIP/2.0/TCP "),
        "{}",
        probe.text
    );
    let c = connections(&AdminApi::local(admin));
    // One connection per server and shard at most, not one per call.
    assert!(count(&c, "opened") <= 4, "{c:?}");
    assert_eq!(count(&c, "connect_failed"), 0, "{c:?}");
}

/// A raw client's view of framing: two pings in one segment and one split
/// at every byte are all answered; a CRLF ping gets a CRLF pong; a message
/// without Content-Length gets 400 and the connection closes.
#[test]
fn tcp_framing_as_a_client_sees_it() {
    require_private_netns();
    let (listen, admin) = (free_port(), free_port());
    let _edge = Sipedge::start(&config(
        listen,
        admin,
        &["sip:127.0.0.1:9".to_owned()],
        "stateless",
        "",
    ));
    let ping = |n: u32, cl: bool| {
        let via = format!("SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-frame{n}");
        let mut r = Request::new(
            "OPTIONS",
            &format!("sip:127.0.0.1:{listen}"),
            "127.0.0.1:9".parse().unwrap(),
        )
        .set("Via", &via)
        .set("Call-ID", &format!("frame-{n}"))
        .build();
        if !cl {
            r = r.replace("Content-Length: 0\r\n", "");
        }
        r
    };
    let mut conn = TcpStream::connect(("127.0.0.1", listen)).expect("connect");
    conn.set_read_timeout(Some(ANSWER)).unwrap();
    conn.write_all(format!("{}{}", ping(1, true), ping(2, true)).as_bytes())
        .unwrap();
    let mut got = read_messages(&mut conn, 2);
    let split = ping(3, true);
    for b in split.as_bytes() {
        conn.write_all(&[*b]).unwrap();
    }
    got.extend(read_messages(&mut conn, 1));
    for (n, m) in got.iter().enumerate() {
        assert_eq!(sip::status_code(m), Some(200), "{m}");
        assert_eq!(
            sip::header(m, "Call-ID"),
            Some(format!("frame-{}", n + 1).as_str())
        );
    }
    conn.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    conn.read_exact(&mut pong).expect("pong");
    assert_eq!(&pong, b"\r\n");

    conn.write_all(ping(4, false).as_bytes()).unwrap();
    let answer = read_messages(&mut conn, 1).remove(0);
    assert!(
        answer.starts_with("SIP/2.0 400 Missing Content-Length\r\n"),
        "{answer}"
    );
    let mut rest = Vec::new();
    let closed = conn.read_to_end(&mut rest);
    assert!(
        closed.is_ok(),
        "the connection closes after the 400: {closed:?}"
    );
    let c = connections(&AdminApi::local(admin));
    assert_eq!(count(&c, "closed_unframed"), 1, "{c:?}");
}

/// Waits (bounded) until the node holds `n` connections.
fn wait_open(api: &AdminApi, n: u64) {
    let deadline = Instant::now() + ANSWER;
    while count(&connections(api), "open") != n {
        assert!(Instant::now() < deadline, "never {n} connections open");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Reads `n` messages (framed by Content-Length) from `conn`.
fn read_messages(conn: &mut TcpStream, n: usize) -> Vec<String> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut framer = ::sip::Framer::default();
    while out.len() < n {
        match framer.next(&buf, 65_535) {
            ::sip::Frame::Message(len) => {
                out.push(String::from_utf8_lossy(&buf[..len]).into_owned());
                buf.drain(..len);
            }
            ::sip::Frame::NeedMore => {
                let mut chunk = [0u8; 4096];
                let got = conn.read(&mut chunk).expect("an answer");
                assert!(got > 0, "connection closed after {} messages", out.len());
                buf.extend_from_slice(&chunk[..got]);
            }
            other => panic!(
                "unexpected {other:?} in {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    out
}

/// A client that trickles its header section is closed after
/// `header_timeout`; a source over `max_per_source` is refused at once;
/// meanwhile SIPp calls over TCP from another source all complete.
#[test]
fn tcp_slowloris_and_a_source_over_its_cap_are_closed_while_calls_go_on() {
    require_private_netns();
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let (listen, admin) = (free_port(), free_port());
    let limits = "[connections]\nmax_per_source = 2\nheader_timeout = 0.5\n";
    let _edge = Sipedge::start(&config(listen, admin, &[a.uri()], "stateless", limits));
    let from_abuser = |port: u16| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 3], 0)).into())
            .unwrap();
        s.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        let c: TcpStream = s.into();
        c.set_read_timeout(Some(ANSWER)).unwrap();
        c
    };
    // One at a time, each accepted before the next (the shards accept
    // in parallel): the third is the one over the cap.
    let api = AdminApi::local(admin);
    let mut slow = from_abuser(listen);
    wait_open(&api, 1);
    slow.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.3")
        .unwrap();
    let _second = from_abuser(listen);
    wait_open(&api, 2);
    let mut third = from_abuser(listen);
    let mut byte = [0u8; 1];
    assert_eq!(
        third.read(&mut byte).ok(),
        Some(0),
        "the third connection from one source is closed"
    );

    let started = Instant::now();
    let calls = SippUac::run("uac.xml", &target(listen), 30, 30, &["-t", "t1"]);
    calls.assert_all_successful();
    // The trickling client is gone by now (0.5 s), whatever it sends.
    let _ = slow.write_all(b":5060;branch=z9hG4bK-slow\r\n");
    let r = slow.read(&mut byte);
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "slowloris still open after {:?}: {r:?}",
        started.elapsed()
    );
    // A connection that never says anything is closed as soon (from
    // another source: 127.0.0.3 is at its cap).
    let silent = TcpStream::connect(("127.0.0.1", listen)).expect("connect");
    silent.set_read_timeout(Some(ANSWER)).unwrap();
    let r = (&silent).read(&mut byte);
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "a silent connection stays open: {r:?}"
    );
    let c = connections(&AdminApi::local(admin));
    assert_eq!(count(&c, "refused_over_max_per_source"), 1, "{c:?}");
    // The trickling one, the silent one, and the abuser's second (which
    // never spoke either).
    assert_eq!(count(&c, "closed_header_timeout"), 3, "{c:?}");
    drop(a.stop());
}

/// A TCP caller sets up a call and closes its connection; the server's
/// BYE reaches it over a new connection the edge opens to its Contact.
#[test]
fn a_caller_whose_connection_closed_gets_its_bye_over_a_new_one() {
    require_private_netns();
    let pool = FakePool::start(1);
    let (listen, admin) = (free_port(), free_port());
    let dests = [format!("sip:{}", pool.addr(0))];
    let _edge = Sipedge::start(&config(listen, admin, &dests, "stateless", ""));
    let callee_side = TcpListener::bind("127.0.0.1:0").expect("caller's listener");
    let contact = callee_side.local_addr().unwrap();
    let mut conn = TcpStream::connect(("127.0.0.1", listen)).expect("connect");
    conn.set_read_timeout(Some(ANSWER)).unwrap();
    let invite = Request::new("INVITE", &format!("sip:bob@127.0.0.1:{listen}"), contact)
        .set(
            "Via",
            &format!("SIP/2.0/TCP {contact};branch=z9hG4bK-closing"),
        )
        .set("Contact", &format!("<sip:alice@{contact};transport=tcp>"));
    let call_id = invite.get("Call-ID").expect("Call-ID").to_owned();
    conn.write_all(invite.build().as_bytes()).unwrap();
    let forwarded = next_arrival(&pool, "INVITE", &call_id);
    let edge_addr = SocketAddr::from((e2e::LOCALHOST, listen));
    let ok = sip::response_to(&forwarded.text, 200, "OK").replace(
        "Content-Length: 0\r\n",
        &format!(
            "Contact: <sip:bob@{}>\r\nContent-Length: 0\r\n",
            pool.addr(0)
        ),
    );
    // The 200 carries the INVITE's Record-Route (the route set of both sides).
    let rr: Vec<&str> = sip::headers(&forwarded.text, "Record-Route");
    let ok = ok.replace(
        "Content-Length: 0\r\n",
        &format!("Record-Route: {}\r\nContent-Length: 0\r\n", rr.join(", ")),
    );
    pool.send_from(0, &ok, edge_addr);
    let answer = read_messages(&mut conn, 1).remove(0);
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");
    drop(conn);

    // The server hangs up: its BYE follows the route set back through the
    // edge, whose second Record-Route says TCP.
    let to_tag = sip::header(&answer, "To").expect("To").to_owned();
    let routes: Vec<String> = rr.iter().map(|r| r.to_string()).collect();
    let bye = format!(
        "BYE sip:alice@{contact};transport=tcp SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-srvbye\r\n\
         Route: {}\r\nMax-Forwards: 70\r\nFrom: {to_tag}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: 7 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        pool.addr(0),
        routes.join(", "),
        invite.get("From").expect("From"),
    );
    pool.send_from(0, &bye, edge_addr);
    callee_side.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + ANSWER;
    let (mut back, _) = loop {
        match callee_side.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("no connection for the BYE: {e}"),
        }
    };
    back.set_nonblocking(false).unwrap();
    back.set_read_timeout(Some(ANSWER)).unwrap();
    let got = read_messages(&mut back, 1).remove(0);
    assert!(
        got.starts_with(&format!("BYE sip:alice@{contact}")),
        "{got}"
    );
    assert!(
        sip::headers(&got, "Via")[0].starts_with(&format!("SIP/2.0/TCP 127.0.0.1:{listen};")),
        "{got}"
    );
    let c = connections(&AdminApi::local(admin));
    assert!(count(&c, "opened") >= 1, "{c:?}");
}

/// A phone behind NAT on TCP is reached over its own connection, by the
/// flow token of its registration's Path; once that connection is gone
/// the registrar's request gets 430 Flow Failed (RFC 5626 §5.3) — the
/// edge never dials a phone's NAT binding.
#[test]
fn a_natted_phone_on_tcp_is_reached_over_its_connection_and_gets_430_once_it_closed() {
    require_private_netns();
    let pool = FakePool::start(1);
    let listen = free_port();
    let _edge = Sipedge::start(&format!(
        "[node]\nid = \"tcp-nat\"\nsecret = \"{SECRET}\"\n[[edge]]\n\
         listen = [\"udp:127.0.0.1:{listen}\", \"tcp:127.0.0.1:{listen}\"]\n\
         nat_test = [\"private-contact\"]\n\
         [[edge.destination]]\nuri = \"sip:{}\"\n",
        pool.addr(0)
    ));
    let edge_addr = SocketAddr::from((e2e::LOCALHOST, listen));
    let private = "192.168.1.20:5062";
    let mut phone = TcpStream::connect(edge_addr).expect("connect");
    phone.set_read_timeout(Some(ANSWER)).unwrap();
    let register = sip::natted_register(phone.local_addr().unwrap(), private);
    let call_id = register.get("Call-ID").expect("Call-ID").to_string();
    phone.write_all(register.build().as_bytes()).unwrap();
    let got = next_arrival(&pool, "REGISTER", &call_id);
    let path = sip::header(&got.text, "Path").expect("a Path").to_string();
    pool.send_from(0, sip::response_to(&got.text, 200, "OK"), got.from);
    let ok = read_messages(&mut phone, 1).remove(0);
    assert_eq!(sip::status_code(&ok), Some(200), "{ok}");

    // The registrar's MESSAGE to her private Contact, along the Path:
    // over her connection.
    let message = |cseq: u32| sip::message_along_path(pool.addr(0), private, &path, &call_id, cseq);
    pool.send_from(0, message(1), edge_addr);
    let got = read_messages(&mut phone, 1).remove(0);
    assert!(
        got.starts_with(&format!("MESSAGE sip:alice@{private}")),
        "{got}"
    );
    phone
        .write_all(sip::response_to(&got, 200, "OK").as_bytes())
        .unwrap();
    let answered = pool.recv(ANSWER).expect("her 200");
    assert_eq!(
        sip::status_code(&answered.text),
        Some(200),
        "{}",
        answered.text
    );

    // Her connection is gone: the next one gets 430, from the edge.
    drop(phone);
    let gone = |text: &str| sip::status_code(text).is_some();
    let deadline = Instant::now() + ANSWER;
    let answer = loop {
        pool.send_from(0, message(2), edge_addr);
        if let Some(a) = pool.recv_matching(SILENCE, |a| gone(&a.text)) {
            break a;
        }
        assert!(Instant::now() < deadline, "no answer to the MESSAGE");
    };
    assert!(
        answer.text.starts_with("SIP/2.0 430 Flow Failed\r\n"),
        "{}",
        answer.text
    );
    assert_eq!(
        sip::headers(&answer.text, "Via").len(),
        1,
        "{}",
        answer.text
    );
}
