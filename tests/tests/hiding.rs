//! Topology hiding (issue 19 §4): a SIPp party outside (127.0.0.2) calls
//! a SIPp server of the pool (127.0.0.5) through an edge with
//! `topology_hiding = true`. Nothing the outside party receives names the
//! pool's address in its SIP headers — the 200's Contact and
//! Record-Route, the pool's re-INVITE, its ACK and its BYE — and the
//! call set up through one instance completes through another that
//! never saw the INVITE (the first is stopped while the call waits):
//! the Contact, Vias and routes come back from the messages alone. Then
//! calls the caller hangs up, through a transactional edge.
//!
//! Only the SIP header section is read: the SDP is not the edge's to
//! hide (README, "Topology hiding").

use std::time::Duration;

use e2e::config::{edge_at, transactional};
use e2e::{free_port, require_private_netns, Direction, Sipedge, SippUac, SippUas, TracedMessage};

const POOL: &str = "127.0.0.5";
const OUTSIDE: &str = "127.0.0.2";

fn hiding_edge(listen: u16, pool_port: u16) -> String {
    edge_at(
        &format!("udp:127.0.0.1:{listen}"),
        "first",
        &[(&format!("sip:{POOL}:{pool_port}"), 1)],
    )
    .replacen(
        "flags = [\"ping-replies\"]\n",
        "flags = [\"ping-replies\"]\ntopology_hiding = true\n",
        1,
    )
}

/// The header sections of what the outside party received that name the
/// pool's address.
fn leaks(messages: &[TracedMessage]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.direction == Direction::Received)
        .map(|m| m.text.split("\r\n\r\n").next().unwrap_or("").to_owned())
        .filter(|head| head.contains(POOL))
        .collect()
}

fn received<'a>(messages: &'a [TracedMessage], method: &str) -> Vec<&'a TracedMessage> {
    messages
        .iter()
        .filter(|m| m.direction == Direction::Received && m.method() == Some(method))
        .collect()
}

#[test]
fn the_outside_sees_no_pool_address_and_another_instance_completes_the_call() {
    require_private_netns();
    let pool_port = free_port();
    // The server waits 4 s after the ACK: the window in which the test
    // hands the call to the second instance.
    let pool = SippUas::start(
        "hiding-uas.xml",
        pool_port,
        &["-i", POOL, "-mi", "127.0.0.9", "-d", "4000"],
    );
    let listen = free_port();
    let config = hiding_edge(listen, pool_port);
    let first = Sipedge::start(&config);
    let target = format!("127.0.0.1:{listen}");
    let caller =
        std::thread::spawn(move || SippUac::run("hiding-uac.xml", &target, 1, 1, &["-i", OUTSIDE]));
    assert!(
        pool.wait_for_request("ACK", Duration::from_secs(10)),
        "the call was not set up"
    );
    // The second instance joins the address (SO_REUSEPORT), the first
    // stops: everything after the ACK goes through the second.
    let second = Sipedge::start(&config);
    drop(first);
    let early = pool
        .messages_so_far()
        .iter()
        .any(|m| m.direction == Direction::Sent && m.method() == Some("INVITE"));
    assert!(
        !early,
        "the server's re-INVITE left before the first instance stopped: the window is too short"
    );
    let calls = caller.join().expect("caller thread");
    calls.assert_all_successful();
    let server = pool.stop();
    assert!(
        server.failed() == 0 && server.successful() >= 1,
        "{}",
        server.summary()
    );
    let seen = calls.messages();
    for method in ["INVITE", "ACK", "BYE"] {
        assert_eq!(received(seen, method).len(), 1, "{method} from the pool");
    }
    let ok = seen
        .iter()
        .find(|m| m.direction == Direction::Received && m.text.starts_with("SIP/2.0 200"))
        .expect("the 200");
    // The server's Contact is the edge's address, the server's sealed in
    // its user part.
    assert!(
        ok.text.contains(&format!("@127.0.0.1:{listen}>")),
        "{}",
        ok.text
    );
    let leaked = leaks(seen);
    assert!(
        leaked.is_empty(),
        "the outside saw the pool:\n{}",
        leaked.join("\n---\n")
    );
    drop(second);
}

#[test]
fn calls_the_caller_hangs_up_show_no_pool_address_through_a_transactional_edge() {
    require_private_netns();
    let pool_port = free_port();
    let pool = SippUas::start("uas.xml", pool_port, &["-i", POOL]);
    let listen = free_port();
    let _edge = Sipedge::start(&transactional(&hiding_edge(listen, pool_port), ""));
    let calls = SippUac::run(
        "uac.xml",
        &format!("127.0.0.1:{listen}"),
        3,
        10,
        &["-i", OUTSIDE],
    );
    calls.assert_all_successful();
    let server = pool.stop();
    assert_eq!(server.count("BYE"), 3, "{}", server.summary());
    let seen = calls.messages();
    assert!(
        seen.iter()
            .filter(|m| m.direction == Direction::Received)
            .count()
            >= 6,
        "the 200s to the INVITEs and BYEs"
    );
    let leaked = leaks(seen);
    assert!(
        leaked.is_empty(),
        "the outside saw the pool:\n{}",
        leaked.join("\n---\n")
    );
}
