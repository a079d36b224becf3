//! Flow tokens with the real binary: the Record-Route of a call carries a
//! token sealed under the cluster secret; a token the cluster did not seal
//! for this edge — tampered, truncated, from another edge, under another
//! secret — gets 403 from either side and nothing is forwarded; a token
//! sealed before a secret rotation still routes after it, while the old
//! secret is kept.

use std::net::SocketAddr;

use e2e::expect::{final_response, next_arrival, pool_silent, ANSWER, SILENCE};
use e2e::sip::{self, Request};
use e2e::{free_port, require_private_netns, FakePool, Sipedge, Udp};

const SECRET: &str = "the secret the token tests seal under";

/// `[node]` with `secrets`, and one edge per `(name, port, servers)`:
/// the pool servers it dispatches to, in order, algorithm `first`.
fn config(secrets: &str, edges: &[(&str, u16, &[SocketAddr])]) -> String {
    let mut c = format!("[node]\nid = \"tokens\"\n{secrets}\n");
    for (name, port, servers) in edges {
        c.push_str(&format!(
            "\n[[edge]]\nname = \"{name}\"\nlisten = [\"udp:127.0.0.1:{port}\"]\n\
             algorithm = \"first\"\n"
        ));
        for s in servers.iter() {
            c.push_str(&format!("[[edge.destination]]\nuri = \"sip:{s}\"\n"));
        }
    }
    c
}

fn edge_addr(port: u16) -> SocketAddr {
    SocketAddr::from((e2e::LOCALHOST, port))
}

/// A call from `caller` through the edge at `port`, answered 200 by the
/// pool server it reaches, whose Contact names the edge (as a server
/// behind topology hiding does: only the token says where it is). Returns
/// the INVITE and the 200 as the caller got them, the Record-Route and
/// the server.
fn call(caller: &Udp, pool: &FakePool, port: u16) -> (Request, String, String, usize) {
    let invite = Request::new(
        "INVITE",
        &format!("sip:bob@127.0.0.1:{port}"),
        caller.local_addr(),
    );
    let call_id = invite.get("Call-ID").expect("Call-ID").to_string();
    caller.send_to(invite.build(), edge_addr(port));
    let got = next_arrival(pool, "INVITE", &call_id);
    let rr = sip::header(&got.text, "Record-Route")
        .expect("a Record-Route")
        .to_string();
    assert_eq!(sip::tokens(&rr), 1, "{rr}");
    let ok = sip::accepted(&got.text, &rr, &format!("sip:pool@127.0.0.1:{port}"));
    pool.send_from(got.server, ok, got.from);
    let (answer, _) = final_response(caller, &call_id, "INVITE");
    assert_eq!(sip::status_code(&answer), Some(200), "{answer}");
    (invite, answer, rr, got.server)
}

/// The caller's in-dialog `method` of the call, to the pool's Contact
/// (the edge) along `route`.
fn in_dialog(
    method: &str,
    caller: &Udp,
    invite: &Request,
    answer: &str,
    route: &str,
    port: u16,
) -> Request {
    Request::new(
        method,
        &format!("sip:pool@127.0.0.1:{port}"),
        caller.local_addr(),
    )
    .set("Call-ID", invite.get("Call-ID").expect("Call-ID"))
    .set("From", invite.get("From").expect("From"))
    .set("To", sip::header(answer, "To").expect("To"))
    .set("CSeq", &format!("2 {method}"))
    .set("Route", route)
}

/// `route` with its token's character at `at` (from the token's start)
/// changed.
fn tampered(route: &str, at: usize) -> String {
    let i = "<sip:".len() + at;
    let c = if &route[i..i + 1] == "A" { "B" } else { "A" };
    format!("{}{c}{}", &route[..i], &route[i + 1..])
}

/// `route`'s entry moved to the edge at `port` (a token minted elsewhere,
/// presented to this edge).
fn moved_to(route: &str, from: u16, port: u16) -> String {
    route.replace(
        &format!("@127.0.0.1:{from};"),
        &format!("@127.0.0.1:{port};"),
    )
}

#[test]
fn tokens_not_sealed_by_the_cluster_for_this_edge_get_403_and_nothing_is_forwarded() {
    require_private_netns();
    let pool = FakePool::start(2);
    let (customers, carriers, stranger_port) = (free_port(), free_port(), free_port());
    let servers = [pool.addr(0), pool.addr(1)];
    let edges = [
        ("customers", customers, &servers[..]),
        ("carriers", carriers, &servers[1..]),
    ];
    let edge = Sipedge::start(&config(&format!("secret = \"{SECRET}\""), &edges));
    let caller = Udp::bind();
    let (invite, answer, route, server) = call(&caller, &pool, customers);
    assert_eq!(server, 0);

    // Tokens from elsewhere: the other edge of this node, and an edge of
    // the same name in a cluster with another secret.
    let (_, _, other_edge, _) = call(&caller, &pool, carriers);
    let stranger = Sipedge::start(&config(
        "secret = \"another cluster's secret entirely\"",
        &[("customers", stranger_port, &servers[..])],
    ));
    let (_, _, foreign, _) = call(&caller, &pool, stranger_port);
    drop(stranger);

    let token_len = route.find('@').expect("a token") - "<sip:".len();
    let cut = format!(
        "<sip:{}{}",
        &route[5..5 + token_len / 2],
        &route[5 + token_len..]
    );
    let cases = [
        ("tampered at the end", tampered(&route, token_len - 1)),
        ("tampered at the start", tampered(&route, 1)),
        ("truncated", cut),
        ("another edge's", moved_to(&other_edge, carriers, customers)),
        (
            "another secret's",
            moved_to(&foreign, stranger_port, customers),
        ),
    ];
    for (what, bad) in &cases {
        let info = in_dialog("INFO", &caller, &invite, &answer, bad, customers);
        caller.send_to(info.build(), edge_addr(customers));
        let call_id = info.get("Call-ID").expect("Call-ID");
        let (refusal, _) = final_response(&caller, call_id, "INFO");
        assert!(
            refusal.starts_with("SIP/2.0 403 Invalid Flow Token\r\n"),
            "{what}: {refusal}"
        );
        pool_silent(&pool, &format!("{what} token forwarded"));

        // The same from the pool toward the caller.
        let bye = Request::new(
            "BYE",
            &format!("sip:e2e@{}", caller.local_addr()),
            pool.addr(0),
        )
        .set("Call-ID", call_id)
        .set("Route", bad);
        pool.send_from(0, bye.build(), edge_addr(customers));
        let back = pool
            .recv_matching(ANSWER, |a| sip::status_code(&a.text).is_some())
            .unwrap_or_else(|| panic!("{what}: no answer to the pool's BYE"));
        assert!(
            back.text.starts_with("SIP/2.0 403 Invalid Flow Token\r\n"),
            "{what}: {}",
            back.text
        );
        assert!(
            caller.recv_text_timeout(SILENCE).is_none(),
            "{what}: the pool's BYE reached the caller"
        );
    }

    // The genuine token routes the caller's BYE to the call's server.
    let bye = in_dialog("BYE", &caller, &invite, &answer, &route, customers);
    caller.send_to(bye.build(), edge_addr(customers));
    let got = next_arrival(&pool, "BYE", invite.get("Call-ID").expect("Call-ID"));
    assert_eq!(got.server, 0);
    drop(edge);
}

/// The call is set up on server 1 (listed first then); the rotation's
/// reload lists server 0 first, so only the token can take the BYE to 1.
#[test]
fn a_token_sealed_before_a_secret_rotation_routes_after_it_until_the_old_secret_is_dropped() {
    require_private_netns();
    let pool = FakePool::start(2);
    let port = free_port();
    let (first, second) = ([pool.addr(1), pool.addr(0)], [pool.addr(0), pool.addr(1)]);
    let old = "secret = \"the secret before the rotation\"";
    let rotated = "secret = \"the secret after the rotation!\"\n\
                   previous_secrets = [\"the secret before the rotation\"]";
    let dropped = "secret = \"the secret after the rotation!\"";
    let mut edge = Sipedge::start(&config(old, &[("e", port, &first[..])]));
    let caller = Udp::bind();
    let (invite, answer, route, server) = call(&caller, &pool, port);
    assert_eq!(server, 1);
    let mut reload = |secrets: &str, previous: usize| {
        std::fs::write(
            edge.config_path(),
            config(secrets, &[("e", port, &second[..])]),
        )
        .expect("write");
        edge.signal(libc::SIGHUP);
        let logged = format!("new key ring ({previous} previous secret(s) still verify)");
        assert!(
            edge.wait_for_stderr(&logged, ANSWER),
            "{}",
            edge.stderr_text()
        );
    };
    let call_id = invite.get("Call-ID").expect("Call-ID").to_string();

    reload(rotated, 1);
    let info = in_dialog("INFO", &caller, &invite, &answer, &route, port);
    caller.send_to(info.build(), edge_addr(port));
    let got = next_arrival(&pool, "INFO", &call_id);
    assert_eq!(got.server, 1, "the old token routes to the call's server");

    reload(dropped, 0);
    let bye = in_dialog("BYE", &caller, &invite, &answer, &route, port);
    caller.send_to(bye.build(), edge_addr(port));
    let (refusal, _) = final_response(&caller, &call_id, "BYE");
    assert_eq!(sip::status_code(&refusal), Some(403), "{refusal}");
    pool_silent(&pool, "a token under a dropped secret was followed");
}
