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

/// A pool of one, a port for the edge, a caller and the URI it calls.
struct Setup {
    pool: FakePool,
    listen: u16,
    edge_addr: SocketAddr,
    caller: Udp,
    uri: String,
}

impl Setup {
    fn new() -> Setup {
        require_private_netns();
        let listen = free_port();
        Setup {
            pool: FakePool::start(1),
            listen,
            edge_addr: SocketAddr::from((e2e::LOCALHOST, listen)),
            caller: Udp::bind(),
            uri: format!("sip:bob@127.0.0.1:{listen}"),
        }
    }
}

/// The INVITE's 200 is signed (its Via branch) by the instance that
/// forwarded the INVITE, under the old secret. An instance that signs with
/// the new secret relays it while the old one is a previous secret, and
/// the BYE that follows goes through too; an instance that knows only the
/// new secret drops the same 200.
#[test]
fn a_call_begun_under_the_old_secret_ends_after_the_rotation() {
    let Setup {
        pool,
        listen,
        edge_addr,
        caller,
        uri,
    } = Setup::new();

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

    hang_up(&caller, &pool, &invite, &answer, edge_addr);
    drop(rotated);
}

/// The caller's BYE of the call `invite` set up (answered by `answer`),
/// through the edge to the pool and its 200 back.
fn hang_up(caller: &Udp, pool: &FakePool, invite: &Request, answer: &str, edge: SocketAddr) {
    let call_id = invite.get("Call-ID").expect("Call-ID");
    let bye = Request::new("BYE", invite.uri(), caller.local_addr())
        .set("Call-ID", call_id)
        .set("From", invite.get("From").expect("From"))
        .set("To", sip::header(answer, "To").expect("To"))
        .set("CSeq", "2 BYE");
    caller.send_to(bye.build(), edge);
    let forwarded_bye = next_arrival(pool, "BYE", call_id);
    pool.send_from(0, sip::response_to(&forwarded_bye.text, 200, "OK"), edge);
    let (bye_answer, _) = final_response(caller, call_id, "BYE");
    assert_eq!(sip::status_code(&bye_answer), Some(200), "{bye_answer}");
}

/// The same rotation without a restart: the config is rewritten and
/// reloaded (SIGHUP) while the INVITE's 200 is outstanding. Reloaded to
/// the new secret alone, the node drops the 200; reloaded to the new
/// secret with the old one kept, it relays the 200 and the BYE.
#[test]
fn a_reload_rotates_the_secret_without_breaking_a_call_in_progress() {
    let Setup {
        pool,
        listen,
        edge_addr,
        caller,
        uri,
    } = Setup::new();
    let mut edge = Sipedge::start(&config(listen, &pool, &format!("secret = \"{OLD}\"")));
    let reload = |edge: &mut Sipedge, secrets: &str, previous: usize| {
        std::fs::write(edge.config_path(), config(listen, &pool, secrets)).expect("write");
        edge.signal(libc::SIGHUP);
        let logged = format!("new key ring ({previous} previous secret(s) still verify)");
        assert!(
            edge.wait_for_stderr(&logged, ANSWER),
            "{}",
            edge.stderr_text()
        );
    };

    let invite = Request::new("INVITE", &uri, caller.local_addr());
    let call_id = invite.get("Call-ID").expect("Call-ID").to_string();
    caller.send_to(invite.build(), edge_addr);
    let forwarded = next_arrival(&pool, "INVITE", &call_id);
    let ok = sip::response_to(&forwarded.text, 200, "OK");

    reload(&mut edge, &format!("secret = \"{NEW}\""), 0);
    pool.send_from(0, &ok, edge_addr);
    assert!(
        caller.recv_text_timeout(SILENCE).is_none(),
        "a 200 signed under a secret no longer known was relayed"
    );

    reload(
        &mut edge,
        &format!("secret = \"{NEW}\"\nprevious_secrets = [\"{OLD}\"]"),
        1,
    );
    pool.send_from(0, &ok, edge_addr);
    let (answer, _) = final_response(&caller, &call_id, "INVITE");
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");
    hang_up(&caller, &pool, &invite, &answer, edge_addr);
}
