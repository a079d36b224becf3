//! A phone behind a real NAT (nftables masquerade, with random ports)
//! registers through the edge's registration proxy to a real registrar
//! (Kamailio: registrar, usrloc, path), then takes a call from the pool
//! and makes one into it; with `nat_sdp`, the pool sees the NAT's public
//! address in the phone's SDP both ways.
//!
//! Hosts (network namespaces made by the test): the phone at 10.10.0.2,
//! a router between 10.10.0.1 and 10.20.0.1 that masquerades what leaves
//! toward 10.20.0.0/24, and the edge at 10.20.0.2 in the test's own
//! namespace, with Kamailio and a SIPp server on its loopback. The edge
//! has no route to 10.10.0.0/24: the phone is reachable only through the
//! NAT binding its own packets opened, which the flow token in the Path
//! (and the calls' Record-Routes) leads to.

use std::net::Ipv4Addr;
use std::path::Path;

use e2e::admin::AdminApi;
use e2e::hosts;
use e2e::kamailio::Kamailio;
use e2e::{free_port, require_private_netns, Direction, Sipedge, SippUac, SippUas, TempDir};

const PHONE: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
const EDGE: &str = "10.20.0.2";
/// The router's address on the edge's side: what the NAT makes of hers.
const NAT_PUBLIC: &str = "10.20.0.1";
/// The phone's own SIP port, in its Contact; the NAT maps it to another.
const PHONE_PORT: u16 = 5062;

#[test]
fn a_phone_behind_nat_registers_through_the_edge_and_calls_reach_it_both_ways() {
    require_private_netns();
    let (phone, _router) = hosts::phone_behind_nat(EDGE);
    let (edge_port, admin, registrar, callee) =
        (free_port(), free_port(), free_port(), free_port());

    let callee_uas = SippUas::start("uas.xml", callee, &[]);
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("kamailio/registrar.cfg");
    let _kamailio = Kamailio::start_with(
        &cfg,
        registrar,
        &[
            format!("LISTEN=udp:127.0.0.1:{registrar}"),
            format!("CALLEE=\"sip:127.0.0.1:{callee}\""),
        ],
        TempDir::new("kamailio-registrar"),
    );
    let edge = Sipedge::start(&format!(
        "[node]\nid = \"nat\"\nsecret = \"the real NAT test's cluster secret\"\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [[edge]]\nname = \"phones\"\nlisten = [\"udp:{EDGE}:{edge_port}\"]\n\
         nat_test = [\"private-contact\", \"received\", \"private-via\", \"private-sdp\", \
         \"via-port\", \"contact-address\", \"contact-port\"]\nnat_sdp = true\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:{registrar}\"\n"
    ));
    let to_edge = format!("{EDGE}:{edge_port}");

    // The phone registers as alice, from its own port.
    let port = PHONE_PORT.to_string();
    let registered = hosts::within(&phone, PHONE, || {
        SippUac::run(
            "phone-register.xml",
            &to_edge,
            1,
            1,
            &["-s", "alice", "-p", &port],
        )
    });
    registered.assert_all_successful();

    // A call from the pool: Kamailio looks alice up and sends the INVITE
    // along her Path; the edge takes it to her NAT binding.
    let phone_uas = hosts::within(&phone, PHONE, || SippUas::start("uas.xml", PHONE_PORT, &[]));
    let from_pool = SippUac::run(
        "uac.xml",
        &format!("127.0.0.1:{registrar}"),
        1,
        1,
        &["-s", "alice"],
    );
    let phone_uas = phone_uas.stop();
    from_pool.assert_all_successful();
    // Her answer's SDP, as the pool got it: the NAT's address, not hers.
    let answer = from_pool
        .messages()
        .iter()
        .find(|m| m.direction == Direction::Received && m.status() == Some(200))
        .expect("her 200");
    assert!(
        answer.text.contains(&format!("c=IN IP4 {NAT_PUBLIC}")),
        "{}",
        answer.text
    );
    let invite = phone_uas.requests("INVITE")[0];
    assert!(
        invite
            .text
            .starts_with(&format!("INVITE sip:alice@{PHONE}:{PHONE_PORT};")),
        "to the Contact she registered, through the NAT:\n{}",
        invite.text
    );
    assert_eq!(
        (phone_uas.count("ACK"), phone_uas.count("BYE")),
        (1, 1),
        "in-dialog requests from the pool reach her too\n{}",
        edge.stderr_text()
    );

    // A call from the phone into the pool, hung up by the phone.
    let from_phone = hosts::within(&phone, PHONE, || {
        SippUac::run("uac.xml", &to_edge, 1, 1, &["-s", "callee"])
    });
    from_phone.assert_all_successful();
    let callee_uas = callee_uas.stop();
    let offer = &callee_uas.requests("INVITE")[0].text;
    assert!(offer.contains(&format!("c=IN IP4 {NAT_PUBLIC}")), "{offer}");
    assert!(!offer.contains(&format!("c=IN IP4 {PHONE}")), "{offer}");
    assert_eq!(
        (
            callee_uas.count("INVITE"),
            callee_uas.count("ACK"),
            callee_uas.count("BYE")
        ),
        (1, 1, 1)
    );

    // What the NAT tests saw: the phone's REGISTER, INVITE, ACK and BYE,
    // every one from behind the NAT (its answers to the pool's call are
    // responses, not tested); only the INVITE had SDP.
    let api = AdminApi::local(admin);
    let nat = &api.destinations()["edges"][0]["nat"];
    assert_eq!(nat["behind_nat"].as_u64(), Some(4), "{nat}");
    for (test, n) in [
        ("private-contact", 4),
        ("received", 4),
        ("private-via", 4),
        ("private-sdp", 1),
        ("via-port", 4),
        ("contact-address", 4),
        ("contact-port", 4),
    ] {
        assert_eq!(nat["tests"][test].as_u64(), Some(n), "{test}: {nat}");
    }
}
