//! Carrier aggregation (issue 19): two SIPp carriers — 127.0.0.2 dialling
//! `0044…` and national numbers, 127.0.0.3 sending E.164 as `tel:` URIs
//! with headers of its own — call one SIPp server of the platform through
//! an edge that normalizes per peer. The server checks every call arrives
//! with the same E.164 numbers in the Request-URI, To, From and
//! P-Asserted-Identity and without X-Internal-… headers; each carrier
//! checks that no answer or request of the platform brings it the
//! platform's X-Internal-… header, and that the platform's BYE names the
//! caller in the form that carrier takes back. Stateless and transactional.

use e2e::config::{single_edge, transactional};
use e2e::{free_port, require_private_netns, Sipedge, SippUac, SippUas, TempDir};

/// The peers: carrier A's numbers to E.164 on the way in and back to
/// national on the way out; carrier B's `tel:` URIs to `sip:…;user=phone`
/// and its own headers dropped; nothing internal leaves toward either.
const PEERS: &str = r#"
[[edge.peer]]
name = "carrier-a"
sources = ["127.0.0.2"]
[edge.peer.in]
number = [{ e164 = "44", examples = [["00442079460000", "+442079460000"], ["02079460001", "+442079460001"]] }]
[edge.peer.out]
number = [{ match = '^\+44(\d+)$', replace = "0$1", fields = ["from", "to"] }]
remove = ["X-Internal-*"]

[[edge.peer]]
name = "carrier-b"
sources = ["127.0.0.3"]
[edge.peer.in]
tel = "sip"
remove = ["X-Internal-*", "User-Agent"]
[edge.peer.out]
allow = ["P-Asserted-Identity"]
"#;

/// Carrier `who`'s scenario, written into `dir`.
fn carrier(dir: &TempDir, who: &str) -> String {
    let template = std::fs::read_to_string(e2e::scenario_path("carrier-uac.xml"))
        .expect("read carrier-uac.xml");
    let (dialled, from, pai, extra, bye_to) = match who {
        "a" => (
            "sip:00442079460000@[remote_ip]:[remote_port]",
            "sip:02079460001@carrier-a.example",
            "sip:00442079460001@carrier-a.example",
            "",
            // The platform's +442079460001, national again.
            "sip:02079460001@",
        ),
        _ => (
            "tel:+442079460000",
            "tel:+442079460001",
            "tel:+442079460001",
            "      X-Internal-Route: b-7\n      User-Agent: b-sbc 2.1\n",
            "sip:\\+442079460001@",
        ),
    };
    let text = template
        .replace("@DIALLED@", dialled)
        .replace("@FROM@", from)
        .replace("@PAI@", pai)
        .replace("@EXTRA@\n", extra)
        .replace("@BYE_TO@", bye_to);
    let path = dir.join(&format!("carrier-{who}.xml"));
    std::fs::write(&path, text).expect("write scenario");
    path.to_str().expect("UTF-8 temp path").to_owned()
}

fn two_carriers_through(insertion: &str) {
    require_private_netns();
    let dir = TempDir::new(&format!("carriers-{insertion}"));
    let pool = SippUas::start("pool-uas-e164.xml", free_port(), &["-d", "50"]);
    let listen = free_port();
    let base = single_edge(listen, "weighted-round-robin", &[(pool.port(), 1)]);
    let config = match insertion {
        "transactional" => transactional(&base, ""),
        _ => base,
    } + PEERS;
    let _edge = Sipedge::start(&config);
    let target = format!("127.0.0.1:{listen}");
    let calls = 3;
    for (who, source) in [("a", "127.0.0.2"), ("b", "127.0.0.3")] {
        let scenario = carrier(&dir, who);
        SippUac::run(&scenario, &target, calls, 10, &["-i", source]).assert_all_successful();
    }
    let server = pool.stop();
    // Its health probes are calls of its own, answered too.
    assert!(
        server.failed() == 0 && server.successful() >= 2 * u64::from(calls),
        "every call reached the platform normalized: {}",
        server.summary()
    );
    // What the platform received from both carriers, word for word.
    let invites = server.requests("INVITE");
    assert_eq!(invites.len(), 2 * calls as usize);
    for m in &invites {
        let text = &m.text;
        assert!(!text.contains("User-Agent: b-sbc"), "{text}");
        assert!(
            text.contains("P-Asserted-Identity: <sip:+442079460001@"),
            "{text}"
        );
    }
}

#[test]
fn two_carriers_reach_the_platform_as_one_e164_form_stateless() {
    two_carriers_through("stateless");
}

#[test]
fn two_carriers_reach_the_platform_as_one_e164_form_transactional() {
    two_carriers_through("transactional");
}
