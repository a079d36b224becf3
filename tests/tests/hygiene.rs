//! Traffic hygiene: sources in `deny`, sources outside `allow` with
//! `restrict = true`, and scanners known by their User-Agent (real ones:
//! SIPVicious's `svmap` and `svwar`, Debian `sipvicious`) get no answer at all, each
//! counted by reason, while the allowed caller's calls and the pool's
//! answers (the pool is not in `allow`) go through.
//!
//! Sources are loopback addresses of the test's namespace: the caller at
//! 127.0.0.1, a denied host at 127.0.0.2, an unlisted one at 127.0.0.3,
//! the pool's SIPp server at 127.0.0.4, a pool-side network
//! (`outbound_from`) at 127.0.0.5.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use e2e::admin::AdminApi;
use e2e::hosts;
use e2e::{free_port, require_private_netns, sip, Sipedge, SippUac, SippUas, Udp};

const POOL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
/// A bound for an answer that should come: the test fails if it does not.
const ANSWER: Duration = Duration::from_secs(5);

/// An OPTIONS ping to the edge itself from `from`.
fn ping(from: &Udp, edge: &str) {
    let req = sip::Request::new("OPTIONS", &format!("sip:{edge}"), from.local_addr());
    from.send_to(req.build(), edge);
}

/// Runs SIPVicious's `tool` (Debian `sipvicious`) against the edge on
/// loopback port `port`, bounded at 30 s; returns what it printed.
fn sipvicious(tool: &str, args: &[&str], port: u16) -> String {
    let port = port.to_string();
    let out = Command::new("timeout")
        .args(["30", tool])
        .args(args)
        .args(["-p", &port, "-t", "0.05", "127.0.0.1"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} (apt-get install sipvicious): {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn denied_unlisted_and_scanning_sources_get_nothing_and_are_counted() {
    require_private_netns();
    let (edge_port, admin) = (free_port(), free_port());
    let pool = hosts::here_at(POOL, || SippUas::start("uas.xml", free_port(), &[]));
    let edge = Sipedge::start(&format!(
        "[node]\nid = \"hygiene\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [[edge]]\nname = \"guarded\"\nlisten = [\"udp:127.0.0.1:{edge_port}\"]\n\
         flags = [\"ping-replies\"]\nallow = [\"127.0.0.1/32\"]\ndeny = [\"127.0.0.2/32\"]\n\
         restrict = true\noutbound_from = [\"127.0.0.5/32\"]\n\
         [[edge.destination]]\nuri = \"sip:{POOL}:{}\"\n",
        pool.port()
    ));
    let api = AdminApi::local(admin);
    let to_edge = format!("127.0.0.1:{edge_port}");

    let denied = Udp::bind_ip("127.0.0.2");
    let unlisted = Udp::bind_ip("127.0.0.3");
    let caller = Udp::bind();
    ping(&denied, &to_edge);
    // Nor is a STUN keepalive from it answered.
    let mut binding = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    binding.extend_from_slice(b"denied-stun!");
    denied.send_to(&binding, to_edge.as_str());
    ping(&unlisted, &to_edge);
    // The allowed caller's ping, sent after theirs, is answered: by then
    // theirs were handled.
    ping(&caller, &to_edge);
    let (answer, _) = caller
        .recv_text_timeout(ANSWER)
        .unwrap_or_else(|| panic!("no answer to the caller\n{}", edge.stderr_text()));
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");
    assert!(
        denied.already_received().is_none(),
        "a denied source got an answer"
    );
    assert!(
        unlisted.already_received().is_none(),
        "an unlisted source got an answer"
    );
    // A pool-side network (`outbound_from`) is served under `restrict`.
    let pool_side = Udp::bind_ip("127.0.0.5");
    ping(&pool_side, &to_edge);
    let (answer, _) = pool_side
        .recv_text_timeout(ANSWER)
        .unwrap_or_else(|| panic!("no answer to outbound_from\n{}", edge.stderr_text()));
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");

    // A real scanner from the allowed address: svmap sends OPTIONS with
    // its own User-Agent, and finds nothing.
    let said = sipvicious("svmap", &[], edge_port);
    assert!(
        !said.contains(&format!("127.0.0.1:{edge_port}")),
        "svmap found the edge:\n{said}"
    );
    let blocked = &api.destinations()["edges"][0]["blocked"];
    let after_svmap = blocked["user_agent"].as_u64().unwrap_or(0);
    assert!(after_svmap >= 1, "svmap's OPTIONS counted: {blocked}");
    // And SIPVicious's extension scanner, svwar: REGISTERs for 100-104,
    // none answered, so it finds no extension.
    let said = sipvicious("svwar", &["-e100-104"], edge_port);
    for found in ["reqauth", "noauth", "weird"] {
        assert!(!said.contains(found), "svwar found an extension:\n{said}");
    }
    let blocked = &api.destinations()["edges"][0]["blocked"];
    assert!(
        blocked["user_agent"].as_u64().unwrap_or(0) > after_svmap,
        "svwar's REGISTERs counted: {blocked}"
    );

    // The allowed caller's call reaches the pool, whose answers come from
    // outside `allow` but from a destination.
    let call = SippUac::run("uac.xml", &to_edge, 1, 1, &["-s", "pool"]);
    call.assert_all_successful();
    let pool = pool.stop();
    assert_eq!(pool.count("INVITE"), 1);

    let blocked = &api.destinations()["edges"][0]["blocked"];
    assert_eq!(blocked["deny"].as_u64(), Some(2), "{blocked}");
    assert_eq!(blocked["restrict"].as_u64(), Some(1), "{blocked}");
    assert!(
        blocked["user_agent"].as_u64().is_some_and(|n| n >= 1),
        "svmap's OPTIONS counted: {blocked}"
    );
}

/// Over TCP, a denied source's connection is closed as soon as it is
/// accepted (before it takes a slot or a handshake), and counted; the
/// allowed caller's is served.
#[test]
fn a_denied_sources_connections_are_closed_as_soon_as_accepted() {
    require_private_netns();
    let (port, admin) = (free_port(), free_port());
    let pool = SippUas::start("uas.xml", free_port(), &[]);
    let _edge = Sipedge::start(&format!(
        "[node]\nid = \"hygiene-tcp\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [[edge]]\nname = \"guarded\"\nlisten = [\"tcp:127.0.0.1:{port}\"]\n\
         flags = [\"ping-replies\"]\ndeny = [\"127.0.0.2/32\"]\n\
         [[edge.destination]]\nuri = \"{}\"\n",
        pool.uri()
    ));
    let connect = |from: [u8; 4]| -> TcpStream {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.bind(&SocketAddr::from((from, 0)).into()).expect("bind");
        s.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .expect("the kernel completes the handshake before accept");
        let c: TcpStream = s.into();
        c.set_read_timeout(Some(ANSWER)).expect("timeout");
        c
    };
    let mut buf = [0u8; 4096];
    let mut denied = connect([127, 0, 0, 2]);
    let got = denied.read(&mut buf);
    assert!(
        matches!(got, Ok(0))
            || matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the denied source's connection stays open: {got:?}"
    );

    let mut caller = connect([127, 0, 0, 1]);
    let local = caller.local_addr().expect("bound");
    let req = sip::Request::new("OPTIONS", &format!("sip:127.0.0.1:{port}"), local).set(
        "Via",
        &format!("SIP/2.0/TCP {local};branch=z9hG4bK-hygiene-tcp"),
    );
    caller.write_all(req.build().as_bytes()).expect("send");
    let n = caller.read(&mut buf).expect("an answer");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");
    let blocked = &AdminApi::local(admin).destinations()["edges"][0]["blocked"];
    assert_eq!(blocked["deny"].as_u64(), Some(1), "{blocked}");
}
