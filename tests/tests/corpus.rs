//! Every message of the shared conformance corpus (RFC 4475, RFC 5118 and
//! real-world samples) sent to the running proxy, handled as its
//! MANIFEST.tsv says: forwarded to the pool, rejected with the preferred
//! code, answered, or absorbed.
//!
//! Each message is sent from a socket bound to the port its top Via names
//! (5060 when none), so sipedge's answer — which goes to the source address
//! and the Via port, RFC 3261 §18.2.2 — comes back to the test. The
//! messages name 192.0.2.x and other foreign hosts; inside the private
//! network namespace nothing can reach them.

use std::net::SocketAddr;

use e2e::config::single_edge;
use e2e::corpus;
use e2e::{free_port, require_private_netns, FakePool, Sipedge};

/// Issue 6: all 69 corpus messages through the running proxy.
#[test]
fn corpus_every_message_handled_as_the_manifest_says() {
    require_private_netns();
    let pool = FakePool::start(1);
    let listen = free_port();
    let config =
        single_edge(listen, "first", &[(pool.ports()[0], 1)]) + "\n[edge.probe]\nenabled = false\n";
    let _edge = Sipedge::start(&config);
    let edge = SocketAddr::from((e2e::LOCALHOST, listen));
    let cases = corpus::load();
    let got = corpus::drive(&cases, &pool, edge, "sipedge");
    let failures: Vec<String> = cases
        .iter()
        .zip(&got)
        .filter(|(c, g)| !c.handled_right(g))
        .map(|(c, g)| format!("{}: expected {} ({:?}), got {g}", c.file, c.expect, c.code))
        .collect();
    assert_eq!(cases.len(), 69);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
