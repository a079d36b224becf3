//! The built-in registrar (`flags = ["registrations"]`): the edge answers
//! the phones' REGISTERs itself, sends what the pool addresses to them to
//! the flow they registered from — through a real NAT — and keeps their
//! NAT bindings open with OPTIONS keepalives, removing a phone that stops
//! answering them.

use std::net::Ipv4Addr;
use std::time::Duration;

use e2e::admin::AdminApi;
use e2e::hosts;
use e2e::{free_port, require_private_netns, Sipedge, SippUac, SippUas};

/// An edge on `listen` with the built-in registrar (taking REGISTERs from
/// `allow`), keepalives every `interval` seconds, and one destination:
/// the pool's SIPp at 127.0.0.1:`pool`.
fn registrar_edge(listen: &str, admin: u16, allow: &str, interval: u32, pool: u16) -> Sipedge {
    Sipedge::start(&format!(
        "[node]\nid = \"reg\"\nsecret = \"the registrar test's cluster secret\"\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [[edge]]\nname = \"phones\"\nlisten = [\"udp:{listen}\"]\n\
         flags = [\"registrations\"]\n\
         [edge.registrar]\nallow = [\"{allow}\"]\nmin_expires = 1\n\
         keepalive_interval = {interval}\nkeepalive_failures = 2\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:{pool}\"\n"
    ))
}

/// The edge's registrar counts: (addresses of record, bindings).
fn held(api: &AdminApi) -> (u64, u64) {
    let r = &api.destinations()["edges"][0]["registrations"];
    (
        r["aors"].as_u64().unwrap_or(u64::MAX),
        r["bindings"].as_u64().unwrap_or(u64::MAX),
    )
}

fn wait_held(api: &AdminApi, want: (u64, u64), what: &str) {
    api.wait_until(what, Duration::from_secs(20), |v| {
        let r = &v["edges"][0]["registrations"];
        (r["aors"].as_u64(), r["bindings"].as_u64()) == (Some(want.0), Some(want.1))
    });
}

/// Seconds between keepalives in the keepalive test.
const INTERVAL: u32 = 1;

#[test]
fn keepalives_reach_a_registered_phone_and_a_silent_one_is_removed() {
    require_private_netns();
    let (edge_port, admin, pool) = (free_port(), free_port(), free_port());
    let edge = registrar_edge(
        &format!("127.0.0.1:{edge_port}"),
        admin,
        "127.0.0.0/8",
        INTERVAL,
        pool,
    );
    let api = AdminApi::local(admin);
    let to_edge = format!("127.0.0.1:{edge_port}");
    assert_eq!(held(&api), (0, 0));

    // Two phones register from their own ports, then one listens there
    // (SIPp's server answers OPTIONS) and the other is gone.
    let (alive, silent) = (free_port(), free_port());
    for (user, port) in [("alice", alive), ("bob", silent)] {
        SippUac::run(
            "phone-register.xml",
            &to_edge,
            1,
            1,
            &["-s", user, "-p", &port.to_string()],
        )
        .assert_all_successful();
    }
    let phone = SippUas::start("uas.xml", alive, &[]);
    assert_eq!(held(&api), (2, 2), "{}", edge.stderr_text());

    // Alice's phone gets a keepalive each second and answers it; Bob's
    // gets two unanswered ones and is removed.
    assert!(
        phone.wait_for_count("OPTIONS", 4, Duration::from_secs(20)),
        "alice's phone got {} keepalives\n{}",
        phone.count_so_far("OPTIONS"),
        edge.stderr_text()
    );
    wait_held(&api, (1, 1), "bob's binding removed, alice's kept");
    let phone = phone.stop();
    let options = phone.requests("OPTIONS");
    // Each keepalive's CSeq is the second it fell due on the edge's
    // clock: an interval apart at least.
    let due: Vec<u64> = options
        .iter()
        .map(|m| {
            let line = m
                .text
                .lines()
                .find(|l| l.starts_with("CSeq:"))
                .expect("CSeq");
            line[5..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .expect("a number")
        })
        .collect();
    assert!(
        due.windows(2).all(|w| w[1] >= w[0] + u64::from(INTERVAL)),
        "{due:?}"
    );
    assert!(
        options[0]
            .text
            .starts_with(&format!("OPTIONS sip:alice@127.0.0.1:{alive};")),
        "to the contact she registered:\n{}",
        options[0].text
    );

    // Alice stops answering too: her binding goes as well.
    wait_held(&api, (0, 0), "alice's binding removed once she is silent");
}

const PHONE: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
const EDGE: &str = "10.20.0.2";
const PHONE_PORT: u16 = 5062;

#[test]
fn a_phone_behind_nat_registers_with_the_edge_and_the_pools_call_reaches_it() {
    require_private_netns();
    let (phone, _router) = hosts::phone_behind_nat(EDGE);
    let (edge_port, admin, pool) = (free_port(), free_port(), free_port());
    let edge = registrar_edge(
        &format!("{EDGE}:{edge_port}"),
        admin,
        "10.20.0.0/24",
        1,
        pool,
    );
    let api = AdminApi::local(admin);
    let to_edge = format!("{EDGE}:{edge_port}");

    let port = PHONE_PORT.to_string();
    hosts::within(&phone, PHONE, || {
        SippUac::run(
            "phone-register.xml",
            &to_edge,
            1,
            1,
            &["-s", "alice", "-p", &port],
        )
    })
    .assert_all_successful();
    assert_eq!(held(&api), (1, 1));

    // Her phone listens on the port it registered from; the keepalives
    // reach it through the NAT.
    let phone_uas = hosts::within(&phone, PHONE, || SippUas::start("uas.xml", PHONE_PORT, &[]));
    assert!(
        phone_uas.wait_for_count("OPTIONS", 1, Duration::from_secs(20)),
        "no keepalive through the NAT\n{}",
        edge.stderr_text()
    );
    // The pool (a destination of the edge) calls her address of record:
    // the edge sends the INVITE to her NAT binding with her Contact as
    // Request-URI; ACK and BYE follow the Record-Route's token.
    let from_pool = SippUac::run(
        "uac.xml",
        &to_edge,
        1,
        1,
        &["-s", "alice", "-p", &pool.to_string()],
    );
    from_pool.assert_all_successful();
    let phone_uas = phone_uas.stop();
    let invite = phone_uas.requests("INVITE");
    assert_eq!(invite.len(), 1, "{}", edge.stderr_text());
    assert!(
        invite[0]
            .text
            .starts_with(&format!("INVITE sip:alice@{PHONE}:{PHONE_PORT};")),
        "{}",
        invite[0].text
    );
    assert_eq!((phone_uas.count("ACK"), phone_uas.count("BYE")), (1, 1));
    assert_eq!(held(&api), (1, 1), "answering keepalives keeps her");

    // Someone never registered, at the edge's address: 480.
    let nobody = SippUac::run(
        "uac.xml",
        &to_edge,
        1,
        1,
        &["-s", "nobody", "-p", &pool.to_string()],
    );
    assert_eq!(nobody.responses(480).len(), 1, "{}", nobody.summary());
}
