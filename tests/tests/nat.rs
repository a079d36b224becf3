//! NAT detection (`nat_test`): a request from a phone behind a NAT that
//! rewrites nothing is still forwarded, and the admin API counts it per
//! test that fired; one from where it says it is counts nothing.

use e2e::config::{admin, probe, single_edge};
use e2e::{free_port, require_private_netns, sip, AdminApi, FakePool, Sipedge, Udp};
use std::time::Duration;

#[test]
fn a_phone_behind_nat_is_detected_by_the_configured_tests_and_counted() {
    require_private_netns();
    let pool = FakePool::start(1);
    let (port, admin_port) = (free_port(), free_port());
    let config = single_edge(port, "weighted-round-robin", &[(pool.addr(0).port(), 1)])
        .replace(
            "flags = [\"ping-replies\"]\n",
            "flags = [\"ping-replies\"]\nnat_test = [\"private-contact\", \"received\", \"via-port\", \"contact-port\"]\n",
        )
        + &probe(0.5, 0.5, 3, 1)
        + &admin(admin_port);
    let _edge = Sipedge::start(&config);
    let api = AdminApi::local(admin_port);
    let phone = Udp::bind();
    // What a phone at 192.168.1.20:5062 behind a NAT writes; the edge sees
    // the NAT's address and port (here the test's socket).
    let natted = sip::Request::new("INVITE", "sip:svc@example.com", phone.local_addr())
        .set(
            "Via",
            "SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK-nat-1;rport",
        )
        .set("Contact", "<sip:alice@192.168.1.20:5062>");
    phone.send_to(natted.build(), ("127.0.0.1", port));
    let arrived = pool.recv(Duration::from_secs(5)).expect("forwarded");
    assert!(arrived.text.starts_with("INVITE "), "{}", arrived.text);
    let plain = sip::Request::new("INVITE", "sip:svc@example.com", phone.local_addr());
    phone.send_to(plain.build(), ("127.0.0.1", port));
    pool.recv(Duration::from_secs(5)).expect("forwarded");
    let nat = &api.destinations()["edges"][0]["nat"];
    assert_eq!(nat["behind_nat"].as_u64(), Some(1), "{nat}");
    assert_eq!(
        nat["tests"],
        serde_json::json!({
            "private-contact": 1,
            "received": 1,
            "via-port": 1,
            "contact-port": 1
        }),
        "{nat}"
    );
}
