//! Self-checks of the harness and the SIPp scenarios, without sipedge.
//!
//! The scenario pairs run directly (caller → server) and through a toy
//! stateless proxy written here, which adds a Via and a Record-Route and
//! routes in-dialog requests by Route / Request-URI the way sipedge must.
//! If these pass, a failing sipedge test points at sipedge, not at the
//! scenarios, the trace parser or the call counting.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use e2e::sip::{self, Request};
use e2e::{
    calls_on_one_server, free_port, require_private_netns, InjectionFile, SippUac, SippUas, Udp,
};

#[test]
fn harness_basic_calls_direct() {
    require_private_netns();
    let uas = SippUas::start("uas.xml", free_port(), &[]);
    let port = uas.port();
    let target = uas.addr().to_string();
    let uac = SippUac::run("uac.xml", &target, 200, 200, &[]);
    let server = uas.stop();

    uac.assert_all_successful();
    assert_eq!(uac.successful(), 200);
    assert_eq!(server.count("INVITE"), 200, "{}", server.summary());
    assert_eq!(server.count("ACK"), 200, "{}", server.summary());
    assert_eq!(server.count("BYE"), 200, "{}", server.summary());
    assert_eq!(
        calls_on_one_server(&[&server], &["INVITE", "ACK", "BYE"]),
        Ok(200)
    );
    assert_eq!(server.failed(), 0, "{}", server.summary());
    // Without a proxy there is no route set: ACK and BYE carry no Route.
    let bye = server.requests("BYE")[0];
    assert!(bye.headers("Route").is_empty(), "{}", bye.text);
    // The caller learned the server's Contact and addressed the BYE to it.
    let contact = format!("sip:127.0.0.1:{port};transport=UDP");
    assert_eq!(bye.request_uri(), Some(contact.as_str()));
    let invite = server.requests("INVITE")[0];
    assert_eq!(invite.header("Max-Forwards"), Some("70"));
    assert!(sip::body(&invite.text).starts_with("v=0"));
}

#[test]
fn harness_auth_usernames_direct() {
    require_private_netns();
    let users = InjectionFile::sequential(&["alice", "bob"]);
    let uas = SippUas::start("uas.xml", free_port(), &[]);
    let target = uas.addr().to_string();
    let uac = SippUac::run(
        "uac-auth.xml",
        &target,
        20,
        100,
        &["-inf", users.path_str()],
    );
    let server = uas.stop();

    uac.assert_all_successful();
    let mut alice = 0;
    for invite in server.requests("INVITE") {
        let auth = invite
            .header("Proxy-Authorization")
            .unwrap_or_else(|| panic!("INVITE without credentials:\n{}", invite.text));
        if auth.contains("username=\"alice\"") {
            alice += 1;
        } else {
            assert!(auth.contains("username=\"bob\""), "{auth}");
        }
    }
    assert_eq!(alice, 10);
    assert_eq!(server.count("INVITE"), 20);
}

#[test]
fn harness_cancel_direct() {
    require_private_netns();
    let uas = SippUas::start("uas-ring.xml", free_port(), &[]);
    let target = uas.addr().to_string();
    let uac = SippUac::run("uac-cancel.xml", &target, 50, 100, &[]);
    let server = uas.stop();

    uac.assert_all_successful();
    assert_eq!(uac.responses(487).len(), 50, "{}", uac.summary());
    for method in ["INVITE", "CANCEL", "ACK"] {
        assert_eq!(server.count(method), 50, "{method}\n{}", server.summary());
    }
    assert_eq!(server.count("BYE"), 0);
    assert_eq!(server.failed(), 0, "{}", server.summary());
    // CANCEL and ACK of the 487 carry the INVITE's branch.
    let invite = server.requests("INVITE")[0];
    let call = invite.call_id().unwrap();
    let branch = sip::top_via_branch(&invite.text).unwrap();
    for method in ["CANCEL", "ACK"] {
        let m = server
            .requests(method)
            .into_iter()
            .find(|m| m.call_id() == Some(call))
            .unwrap();
        assert_eq!(sip::top_via_branch(&m.text), Some(branch), "{}", m.text);
    }
}

#[test]
fn harness_calls_through_toy_proxy_stick_to_one_server() {
    require_private_netns();
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let b = SippUas::start("uas.xml", free_port(), &[]);
    let proxy = ToyProxy::start(vec![a.addr(), b.addr()]);
    let uac = SippUac::run("uac.xml", &proxy.addr.to_string(), 200, 200, &[]);
    drop(proxy);
    let (a, b) = (a.stop(), b.stop());

    uac.assert_all_successful();
    assert_eq!(
        calls_on_one_server(&[&a, &b], &["INVITE", "ACK", "BYE"]),
        Ok(200)
    );
    assert_eq!(a.count("INVITE") + b.count("INVITE"), 200);
    assert!(a.count("INVITE") > 0 && b.count("INVITE") > 0);
    // The server saw the proxy's Via above the caller's, and the proxy's
    // Record-Route; the caller learned it and sent the BYE with a Route.
    let invite = a.requests("INVITE")[0];
    assert_eq!(invite.headers("Via").len(), 2, "{}", invite.text);
    assert!(invite.header("Record-Route").is_some(), "{}", invite.text);
    let bye_from_caller = uac
        .messages()
        .iter()
        .find(|m| m.method() == Some("BYE"))
        .unwrap();
    assert!(
        bye_from_caller.header("Route").is_some(),
        "{}",
        bye_from_caller.text
    );
}

#[test]
fn harness_cancel_through_toy_proxy_follows_invite() {
    require_private_netns();
    let a = SippUas::start("uas-ring.xml", free_port(), &[]);
    let b = SippUas::start("uas-ring.xml", free_port(), &[]);
    let proxy = ToyProxy::start(vec![a.addr(), b.addr()]);
    let uac = SippUac::run("uac-cancel.xml", &proxy.addr.to_string(), 100, 200, &[]);
    drop(proxy);
    let (a, b) = (a.stop(), b.stop());

    uac.assert_all_successful();
    assert_eq!(
        calls_on_one_server(&[&a, &b], &["INVITE", "CANCEL", "ACK"]),
        Ok(100)
    );
    assert!(a.count("INVITE") > 0 && b.count("INVITE") > 0);
}

#[test]
fn harness_detects_failed_calls() {
    require_private_netns();
    // Nobody listens on the target: every call must fail, quickly.
    let target = format!("127.0.0.1:{}", free_port());
    let uac = SippUac::run("uac.xml", &target, 3, 10, &["-recv_timeout", "500ms"]);
    assert_eq!(uac.successful(), 0, "{}", uac.summary());
    assert_ne!(uac.exit_code(), Some(0), "{}", uac.summary());
    let problem = calls_on_one_server(&[], &["INVITE"]);
    assert_eq!(problem, Ok(0));
}

#[test]
fn harness_split_calls_are_reported() {
    require_private_netns();
    // INVITE+ACK+BYE to one server, then the same call's requests to
    // another: calls_on_one_server must say so.
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let b = SippUas::start("uas.xml", free_port(), &[]);
    let ta = a.addr().to_string();
    let tb = b.addr().to_string();
    let fixed_ids = ["-cid_str", "split-%u"];
    let ua = SippUac::run("uac.xml", &ta, 2, 10, &fixed_ids);
    let ub = SippUac::run("uac.xml", &tb, 2, 10, &fixed_ids);
    let (a, b) = (a.stop(), b.stop());
    ua.assert_all_successful();
    ub.assert_all_successful();
    let err = calls_on_one_server(&[&a, &b], &["INVITE", "ACK", "BYE"]).unwrap_err();
    assert!(err.contains("split"), "{err}");
}

#[test]
fn harness_uas_answers_options_probe() {
    require_private_netns();
    let uas = SippUas::start("uas.xml", free_port(), &[]);
    let udp = Udp::bind();
    let probe = Request::new("OPTIONS", &uas.uri(), udp.local_addr());
    udp.send_to(probe.build(), uas.addr());
    let (answer, from) = udp
        .recv_text_timeout(Duration::from_secs(5))
        .expect("an answer to OPTIONS");
    assert_eq!(from, uas.addr());
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");
    assert_eq!(sip::header(&answer, "Call-ID"), probe.get("Call-ID"));
    assert!(uas.wait_for_request("OPTIONS", Duration::from_secs(5)));
    let server = uas.stop();
    assert_eq!(server.count("OPTIONS"), 1);
    assert_eq!(server.count("INVITE"), 0);
}

/// A stateless proxy just good enough to exercise the scenarios: hashes the
/// Call-ID over its destinations for requests addressed to itself, routes
/// other requests by Request-URI, adds its Via (branch derived from the
/// incoming one, so a CANCEL gets the INVITE's) and a Record-Route on
/// INVITE, and sends responses to the next Via.
struct ToyProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ToyProxy {
    fn start(destinations: Vec<SocketAddr>) -> ToyProxy {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, _)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if let Some((out, to)) = relay(&text, addr, &destinations) {
                    let _ = sock.send_to(out.as_bytes(), to);
                }
            }
        });
        ToyProxy {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ToyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn is_header(line: &str, name: &str) -> bool {
    line.split_once(':')
        .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
}

/// `host:port` of a SIP URI or Via sent-by.
fn host_port(s: &str) -> Option<SocketAddr> {
    let s = s.trim().trim_start_matches('<');
    let s = s.strip_prefix("sip:").unwrap_or(s);
    let s = s.rsplit_once('@').map_or(s, |(_, h)| h);
    let end = s.find([';', '>', ' ', ',']).unwrap_or(s.len());
    s[..end].parse().ok()
}

fn relay(text: &str, me: SocketAddr, destinations: &[SocketAddr]) -> Option<(String, SocketAddr)> {
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines: Vec<String> = head.split("\r\n").map(str::to_string).collect();
    if sip::status_code(text).is_some() {
        // Response: pop our Via, send to the next one. SIPp's [last_Via:]
        // echoes the whole stack as one comma-separated line.
        let ours = lines.iter().position(|l| is_header(l, "Via"))?;
        let values = lines[ours].split_once(':')?.1.to_string();
        match values.split_once(',') {
            Some((_, rest)) => lines[ours] = format!("Via: {}", rest.trim()),
            None => {
                lines.remove(ours);
            }
        }
        let next = lines.iter().find(|l| is_header(l, "Via"))?;
        let sent_by = next.split_once(':')?.1.split_whitespace().nth(1)?;
        let to = host_port(sent_by)?;
        return Some((format!("{}\r\n\r\n{body}", lines.join("\r\n")), to));
    }
    let method = sip::method(text)?.to_string();
    if let Some(i) = lines.iter().position(|l| is_header(l, "Route")) {
        if host_port(lines[i].split_once(':')?.1) == Some(me) {
            lines.remove(i);
        }
    }
    let ruri_target = host_port(sip::request_uri(text)?);
    let to = match ruri_target {
        Some(addr) if addr != me => addr,
        _ => {
            let mut h = DefaultHasher::new();
            sip::header(text, "Call-ID")?.hash(&mut h);
            destinations[(h.finish() % destinations.len() as u64) as usize]
        }
    };
    let mut h = DefaultHasher::new();
    sip::top_via_branch(text)?.hash(&mut h);
    let mut insert = vec![format!(
        "Via: SIP/2.0/UDP {me};branch=z9hG4bK-toy-{:x}",
        h.finish()
    )];
    if method == "INVITE" {
        insert.push(format!("Record-Route: <sip:{me};lr>"));
    }
    lines.splice(1..1, insert);
    Some((format!("{}\r\n\r\n{body}", lines.join("\r\n")), to))
}
