//! An edge behind a real NAT learns its public address from a real STUN
//! server (coturn) and names it in Via and Record-Route; when the NAT's
//! address changes, the edge follows without a restart.
//!
//! Hosts (network namespaces made by the test): the edge, its callers at
//! 10.10.0.2, behind a router (10.10.0.1 inside, 10.20.0.1 outside) that
//! masquerades what leaves toward 10.20.0.0/24, where the test's own
//! namespace (10.20.0.2) runs coturn and the pool's SIPp server. The edge
//! listens on a wildcard address with no `advertise`: STUN alone says
//! what it is called outside.
//!
//! The edge also answers the STUN keepalives phones send to its SIP port
//! (RFC 5626), on loopback.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use e2e::coturn::Coturn;
use e2e::hosts::{self, Host};
use e2e::{free_port, require_private_netns, sip, Sipedge, SippUac, SippUas, Udp};

/// The edge's host, inside the NAT.
const INSIDE: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
/// The test's own namespace, outside: coturn and the pool.
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 2);
/// What the NAT makes of the edge's packets, first.
const NAT_PUBLIC: &str = "10.20.0.1";
/// The NAT's outside address after the test renumbers it.
const NAT_RENUMBERED: &str = "10.20.0.3";

/// How long the edge may take to notice a new address at `stun_interval = 1`.
const FOLLOW: Duration = Duration::from_secs(15);

#[test]
fn an_edge_behind_nat_learns_its_address_by_stun_and_follows_it_when_it_changes() {
    require_private_netns();
    let (phone, router) = hosts::phone_behind_nat(&OUTSIDE.to_string());
    let stun = Coturn::start(SocketAddr::from((OUTSIDE, free_port())));
    let (edge_port, pool_port) = (free_port(), free_port());
    let pool = hosts::here_at(OUTSIDE, || SippUas::start("uas.xml", pool_port, &[]));

    let edge = hosts::within(&phone, INSIDE, || {
        Sipedge::start(&format!(
            "[node]\nid = \"behind-nat\"\nsecret = \"the STUN test's cluster secret\"\n\
             [[edge]]\nname = \"natted\"\nlisten = [\"udp:0.0.0.0:{edge_port}\"]\n\
             stun = [\"{OUTSIDE}:{}\"]\nstun_interval = 1\n\
             [[edge.destination]]\nuri = \"sip:{OUTSIDE}:{pool_port}\"\n",
            stun.addr().port()
        ))
    });
    // Ready means the first round is over: the address is known by then.
    let learnt = format!("now={NAT_PUBLIC}");
    assert!(
        edge.stderr_text().contains(&learnt),
        "no address learnt before ready\n{}\n--- coturn ---\n{}",
        edge.stderr_text(),
        stun.log()
    );
    call_names(&phone, edge_port, &pool, NAT_PUBLIC, 1);

    // The NAT gets another outside address (an ISP renumbering it): its
    // old mappings go with the old address, and the edge's next STUN
    // round sees the new one. (The old one goes first: deleting a
    // primary address takes its secondaries with it.)
    let outside_if = interface_of(&router, NAT_PUBLIC);
    router.run(&[
        "ip",
        "addr",
        "del",
        &format!("{NAT_PUBLIC}/24"),
        "dev",
        &outside_if,
    ]);
    router.run(&[
        "ip",
        "addr",
        "add",
        &format!("{NAT_RENUMBERED}/24"),
        "dev",
        &outside_if,
    ]);
    assert!(
        edge.wait_for_stderr(&format!("now={NAT_RENUMBERED}"), FOLLOW),
        "the edge did not follow the NAT's new address\n{}",
        edge.stderr_text()
    );
    call_names(&phone, edge_port, &pool, NAT_RENUMBERED, 2);

    let pool = pool.stop();
    assert_eq!(
        (pool.count("INVITE"), pool.count("ACK"), pool.count("BYE")),
        (2, 2, 2),
        "both calls went through, in-dialog requests too\n{}",
        edge.stderr_text()
    );
}

/// A call from the edge's host through the edge to the pool; the pool's
/// `n`th INVITE names `public` (and not the edge's own address) in the
/// edge's Via and Record-Route.
fn call_names(phone: &Host, edge_port: u16, pool: &SippUas, public: &str, n: usize) {
    let to_edge = format!("{INSIDE}:{edge_port}");
    let call = hosts::within(phone, INSIDE, || {
        SippUac::run("uac.xml", &to_edge, 1, 1, &["-s", "pool"])
    });
    call.assert_all_successful();
    let invites: Vec<_> = pool
        .messages_so_far()
        .into_iter()
        .filter(|m| m.method() == Some("INVITE"))
        .collect();
    assert_eq!(invites.len(), n, "INVITEs at the pool");
    let invite = &invites[n - 1].text;
    let via = sip::header(invite, "Via").expect("a Via");
    assert!(
        via.starts_with(&format!("SIP/2.0/UDP {public}:{edge_port};")),
        "the edge's Via names {public}:\n{invite}"
    );
    let rr = sip::header(invite, "Record-Route").expect("a Record-Route");
    assert!(
        rr.starts_with("<sip:") && rr.contains(&format!("@{public}:{edge_port};lr>")),
        "the edge's Record-Route names {public}:\n{invite}"
    );
}

/// The interface of `host` that holds `ip`.
fn interface_of(host: &Host, ip: &str) -> String {
    let out = hosts::output(host, &["ip", "-o", "-4", "addr", "show", "to", ip]);
    out.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no interface holds {ip}: {out}"))
        .to_string()
}

/// With no STUN server answering, the node still starts (after its first
/// round), and an edge on a wildcard address names the address it sends
/// from toward the server until one answers.
#[test]
fn with_no_stun_server_answering_a_wildcard_edge_names_its_local_address() {
    require_private_netns();
    let (edge_port, silent) = (free_port(), free_port());
    let pool = SippUas::start("uas.xml", free_port(), &[]);
    let edge = Sipedge::start(&format!(
        "[node]\nid = \"unanswered\"\nsecret = \"the STUN test's cluster secret\"\n\
         [[edge]]\nname = \"alone\"\nlisten = [\"udp:0.0.0.0:{edge_port}\"]\n\
         stun = [\"127.0.0.1:{silent}\"]\n\
         [[edge.destination]]\nuri = \"{}\"\n",
        pool.uri()
    ));
    let stderr = edge.stderr_text();
    assert!(
        stderr.contains("stun: no server answered") && stderr.contains("now=127.0.0.1"),
        "{stderr}"
    );
    let call = SippUac::run(
        "uac.xml",
        &format!("127.0.0.1:{edge_port}"),
        1,
        1,
        &["-s", "pool"],
    );
    call.assert_all_successful();
    let pool = pool.stop();
    let invite = &pool.requests("INVITE")[0].text;
    let via = sip::header(invite, "Via").expect("a Via");
    assert!(
        via.starts_with(&format!("SIP/2.0/UDP 127.0.0.1:{edge_port};")),
        "{invite}"
    );
}

/// A phone behind NAT that keeps its binding open with STUN on the SIP
/// port (RFC 5626 §4.4.1) gets the Binding answer from that port, saying
/// where the edge sees it; what is not a Binding request gets nothing, and
/// SIP on the same port goes on.
#[test]
fn a_phones_stun_keepalive_on_the_sip_port_is_answered() {
    require_private_netns();
    let edge_port = free_port();
    let pool = SippUas::start("uas.xml", free_port(), &[]);
    let edge = Sipedge::start(&format!(
        "[node]\nid = \"keepalives\"\nsecret = \"the STUN test's cluster secret\"\n\
         [[edge]]\nname = \"phones\"\nlisten = [\"udp:127.0.0.1:{edge_port}\"]\n\
         [[edge.destination]]\nuri = \"{}\"\n",
        pool.uri()
    ));
    let to_edge = format!("127.0.0.1:{edge_port}");
    let phone = Udp::bind();
    // A Binding request, written by hand: header only, this id.
    let id = *b"keepalive-01";
    let mut request = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&id);
    phone.send_to(&request, to_edge.as_str());
    let (got, from) = phone
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no answer\n{}", edge.stderr_text()));
    assert_eq!(from.to_string(), to_edge, "answered from the SIP port");
    assert_eq!(&got[..2], [1, 1], "a Binding success: {got:02x?}");
    assert_eq!(&got[8..20], id, "to our transaction");
    assert_eq!(
        xor_mapped(&got),
        Some(phone.local_addr()),
        "where the edge saw the phone: {got:02x?}"
    );

    // An indication, an answer, a request with an attribute that must
    // be understood (USERNAME): nothing comes back. A SIP request after
    // them is still answered.
    for (kind, attrs) in [
        ([0x00, 0x11], &[][..]),
        ([0x01, 0x01], &[][..]),
        (
            [0x00, 0x01],
            &[0x00, 0x06, 0x00, 0x04, b'a', b'l', b'i', b'c'][..],
        ),
    ] {
        let mut m = kind.to_vec();
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&id);
        m.extend_from_slice(attrs);
        phone.send_to(&m, to_edge.as_str());
    }
    let call = SippUac::run("uac.xml", &to_edge, 1, 1, &["-s", "pool"]);
    call.assert_all_successful();
    assert!(
        phone.already_received().is_none(),
        "only Binding requests are answered"
    );
    // What the STUN codec would say of odd messages stays out of the log.
    assert!(
        !edge.stderr_text().contains("stun_types"),
        "{}",
        edge.stderr_text()
    );
}

/// The XOR-MAPPED-ADDRESS (IPv4) of a STUN message, read by hand.
fn xor_mapped(msg: &[u8]) -> Option<SocketAddr> {
    let mut at = 20;
    while at + 4 <= msg.len() {
        let kind = u16::from_be_bytes([msg[at], msg[at + 1]]);
        let len = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
        let value = msg.get(at + 4..at + 4 + len)?;
        if kind == 0x0020 && len == 8 && value[1] == 1 {
            let port = u16::from_be_bytes([value[2], value[3]]) ^ 0x2112;
            let ip = Ipv4Addr::new(
                value[4] ^ 0x21,
                value[5] ^ 0x12,
                value[6] ^ 0xa4,
                value[7] ^ 0x42,
            );
            return Some(SocketAddr::from((ip, port)));
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}
