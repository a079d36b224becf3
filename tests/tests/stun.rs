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

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use e2e::coturn::Coturn;
use e2e::hosts::{self, Host};
use e2e::{free_port, require_private_netns, sip, Sipedge, SippUac, SippUas};

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
