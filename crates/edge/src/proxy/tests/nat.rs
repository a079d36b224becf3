//! The NAT stage: requests from outside are tested (`nat_test`) and
//! counted per test; requests from the pool are not.

use super::*;
use crate::nat::NatTest;

fn behind_nat(via: &str, contact: &str) -> String {
    invite("n1", "z9hG4bKnat1")
        .replace(
            &format!("Via: SIP/2.0/UDP {CALLER};"),
            &format!("Via: SIP/2.0/UDP {via};"),
        )
        .replace(
            &format!("Contact: <sip:alice@{CALLER}>"),
            &format!("Contact: <sip:alice@{contact}>"),
        )
}

#[test]
fn requests_from_outside_are_tested_and_counted_per_test() {
    let e = edge_with_keys("weighted-round-robin", "", "nat_test = 19");
    let mut w = e.worker();
    // A phone behind a NAT that rewrites nothing, seen from 127.0.0.1:6000.
    let (o, _) = run(
        &e,
        &mut w,
        behind_nat("192.168.1.20:5062", "192.168.1.20:5062").as_bytes(),
        CALLER,
    );
    assert!(matches!(o, Outcome::Send(_)), "forwarded as ever: {o:?}");
    let (n, per_test) = e.nat_counts();
    assert_eq!(n, 1);
    assert_eq!(
        per_test,
        [
            (NatTest::PrivateContact, 1),
            (NatTest::Received, 1),
            (NatTest::ViaPort, 1)
        ]
    );
    // From where it says it is: nothing found.
    let (o, _) = run(&e, &mut w, invite("n2", "z9hG4bKnat2").as_bytes(), CALLER);
    assert!(matches!(o, Outcome::Send(_)));
    assert_eq!(e.nat_counts().0, 1);
    // The pool is not tested.
    let from_pool = behind_nat("192.168.1.20:5062", "192.168.1.20:5062")
        .replace("Call-ID: n1", "Call-ID: n3")
        .replace("z9hG4bKnat1", "z9hG4bKnat3");
    let _ = run(&e, &mut w, from_pool.as_bytes(), DEST_A);
    assert_eq!(e.nat_counts().0, 1);
    // Without nat_test nothing runs.
    let plain = edge();
    let _ = run(
        &plain,
        &mut plain.worker(),
        behind_nat("10.0.0.1:5060", "10.0.0.1:5060").as_bytes(),
        CALLER,
    );
    assert_eq!(plain.nat_counts(), (0, Vec::new()));
}
