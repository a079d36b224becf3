//! Any instance routes any packet of a call (DESIGN principle 1): two
//! sipedge processes share one address and port (SO_REUSEPORT, as
//! instances behind one anycast address share it), with different
//! destination orders. A call set up through the first goes on through the
//! second once the first is killed: the caller's ACK and in-dialog request
//! reach the call's server, and the server's BYE reaches the caller, who
//! is behind NAT (its Contact names a private address), at the address
//! its INVITE came from — all from the Record-Route's flow token alone.

use std::net::SocketAddr;

use e2e::expect::{final_response, next_arrival, ANSWER};
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, FakePool, Sipedge, Udp};

/// The phone's address behind its NAT: what its Via and Contact say.
/// Nothing is sent there (the test's namespace has only loopback); a
/// request that followed the Contact instead of the token would be lost.
const PRIVATE: &str = "192.168.1.20:5062";

fn config(port: u16, servers: [SocketAddr; 2]) -> String {
    format!(
        "[node]\nid = \"any\"\nsecret = \"one secret for every instance\"\n\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{port}\"]\nalgorithm = \"first\"\n\
         nat_test = [\"private-contact\"]\n\
         [[edge.destination]]\nuri = \"sip:{}\"\n[[edge.destination]]\nuri = \"sip:{}\"\n",
        servers[0], servers[1]
    )
}

#[test]
fn a_call_set_up_through_one_instance_completes_through_another_after_the_first_dies() {
    require_private_netns();
    let pool = FakePool::start(2);
    let port = free_port();
    let shared = SocketAddr::from((e2e::LOCALHOST, port));
    let first = Sipedge::start(&config(port, [pool.addr(0), pool.addr(1)]));
    let phone = Udp::bind();
    let uri = format!("sip:bob@127.0.0.1:{port}");

    // The phone behind NAT calls; instance 1 sends the call to server 0.
    let invite = Request::new("INVITE", &uri, phone.local_addr())
        .set(
            "Via",
            &format!("SIP/2.0/UDP {PRIVATE};branch=z9hG4bK-any-1;rport"),
        )
        .set("Contact", &format!("<sip:phone@{PRIVATE}>"));
    let call_id = invite.get("Call-ID").expect("Call-ID").to_string();
    phone.send_to(invite.build(), shared);
    let got = next_arrival(&pool, "INVITE", &call_id);
    assert_eq!(got.server, 0);
    let rr = sip::header(&got.text, "Record-Route")
        .expect("Record-Route")
        .to_string();
    let ok = sip::accepted(&got.text, &rr, &format!("sip:pool@127.0.0.1:{port}"));
    pool.send_from(0, &ok, got.from);
    let (answer, _) = final_response(&phone, &call_id, "INVITE");
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");

    // Instance 2 joins the shared address, preferring server 1; instance
    // 1 dies. Every later packet reaches instance 2, which never saw the
    // INVITE.
    let second = Sipedge::start(&config(port, [pool.addr(1), pool.addr(0)]));
    drop(first);
    let in_dialog = |method: &str, cseq: u32| {
        Request::new(
            method,
            &format!("sip:pool@127.0.0.1:{port}"),
            phone.local_addr(),
        )
        .set(
            "Via",
            &format!("SIP/2.0/UDP {PRIVATE};branch=z9hG4bK-any-{method};rport"),
        )
        .set("Call-ID", &call_id)
        .set("From", invite.get("From").expect("From"))
        .set("To", sip::header(&answer, "To").expect("To"))
        .set("CSeq", &format!("{cseq} {method}"))
        .set("Route", &rr)
    };
    phone.send_to(in_dialog("ACK", 1).build(), shared);
    assert_eq!(
        next_arrival(&pool, "ACK", &call_id).server,
        0,
        "the ACK of the 200"
    );
    phone.send_to(in_dialog("INFO", 2).build(), shared);
    let info = next_arrival(&pool, "INFO", &call_id);
    assert_eq!(info.server, 0);
    pool.send_from(0, sip::response_to(&info.text, 200, "OK"), info.from);
    let (info_answer, _) = final_response(&phone, &call_id, "INFO");
    assert_eq!(sip::status_code(&info_answer), Some(200));

    // The server hangs up toward the phone's private Contact: the token
    // takes the BYE to the NAT binding the INVITE came from.
    let bye = Request::new("BYE", &format!("sip:phone@{PRIVATE}"), pool.addr(0))
        .set("Call-ID", &call_id)
        .set("From", sip::header(&answer, "To").expect("To"))
        .set("To", invite.get("From").expect("From"))
        .set("Route", &rr);
    pool.send_from(0, bye.build(), shared);
    let (text, from) = phone
        .recv_matching(ANSWER, |t| sip::method(t) == Some("BYE"))
        .unwrap_or_else(|| panic!("the BYE did not reach the phone\n{}", second.stderr_text()));
    assert_eq!(from, shared, "from the shared address");
    assert_eq!(sip::header(&text, "Call-ID"), Some(call_id.as_str()));
    phone.send_to(sip::response_to(&text, 200, "OK"), from);
    let got = pool
        .recv_matching(ANSWER, |a| sip::status_code(&a.text) == Some(200))
        .expect("the phone's 200 for the BYE did not reach the server");
    assert_eq!(got.server, 0);
    assert_eq!(
        sip::cseq(&got.text).map(|(_, m)| m.to_string()),
        Some("BYE".into())
    );
    drop(second);
}
