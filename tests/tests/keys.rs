//! The cluster's key ring (`[node] secret` and `previous_secrets`): a call
//! set up while the cluster signed with one secret completes after the
//! cluster moved on to another, as long as the old one is kept as a
//! previous secret — and not once it is dropped.

use std::net::SocketAddr;

use e2e::expect::{final_response, next_arrival, ANSWER, SILENCE};
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, FakePool, Sipedge, Udp};

const OLD: &str = "the secret the call began under";
const NEW: &str = "the secret the cluster moved to";

fn config(listen: u16, pool: &FakePool, secrets: &str) -> String {
    format!(
        "[node]\nid = \"keys\"\n{secrets}\n\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{listen}\"]\n\
         [[edge.destination]]\nuri = \"sip:{}\"\n",
        pool.addr(0)
    )
}

/// The INVITE's 200 is signed (its Via branch) by the instance that
/// forwarded the INVITE, under the old secret. An instance that signs with
/// the new secret relays it while the old one is a previous secret, and
/// the BYE that follows goes through too; an instance that knows only the
/// new secret drops the same 200.
#[test]
fn a_call_begun_under_the_old_secret_ends_after_the_rotation() {
    require_private_netns();
    let pool = FakePool::start(1);
    let listen = free_port();
    let edge_addr = SocketAddr::from((e2e::LOCALHOST, listen));
    let caller = Udp::bind();
    let uri = format!("sip:bob@127.0.0.1:{listen}");

    let before = Sipedge::start(&config(listen, &pool, &format!("secret = \"{OLD}\"")));
    let invite = Request::new("INVITE", &uri, caller.local_addr());
    let call_id = invite.get("Call-ID").expect("Call-ID").to_string();
    caller.send_to(invite.build(), edge_addr);
    let forwarded = next_arrival(&pool, "INVITE", &call_id);
    before.stop(ANSWER);

    // The rotation: every node now signs with NEW.
    let forgot = Sipedge::start(&config(listen, &pool, &format!("secret = \"{NEW}\"")));
    let ok = sip::response_to(&forwarded.text, 200, "OK");
    pool.send_from(0, &ok, edge_addr);
    assert!(
        caller.recv_text_timeout(SILENCE).is_none(),
        "a 200 signed under a secret no longer known was relayed"
    );
    forgot.stop(ANSWER);

    let rotated = Sipedge::start(&config(
        listen,
        &pool,
        &format!("secret = \"{NEW}\"\nprevious_secrets = [\"{OLD}\"]"),
    ));
    pool.send_from(0, &ok, edge_addr);
    let (answer, _) = final_response(&caller, &call_id, "INVITE");
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");

    let to = sip::header(&answer, "To").expect("To");
    let bye = Request::new("BYE", &uri, caller.local_addr())
        .set("Call-ID", &call_id)
        .set("From", invite.get("From").expect("From"))
        .set("To", to)
        .set("CSeq", "2 BYE");
    caller.send_to(bye.build(), edge_addr);
    let forwarded_bye = next_arrival(&pool, "BYE", &call_id);
    pool.send_from(
        0,
        sip::response_to(&forwarded_bye.text, 200, "OK"),
        edge_addr,
    );
    let (bye_answer, _) = final_response(&caller, &call_id, "BYE");
    assert_eq!(sip::status_code(&bye_answer), Some(200), "{bye_answer}");
    drop(rotated);
}
