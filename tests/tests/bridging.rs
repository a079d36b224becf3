//! Transport bridging (RFC 5658): calls from callers over UDP, TCP (SIPp),
//! TLS (SIPp behind Kamailio's tls module) and WebSocket (python3-
//! websockets) to servers over UDP, TCP (SIPp) and TLS (Kamailio in front
//! of SIPp) — every pair — complete with their in-dialog requests, and
//! the edge's Record-Route names each side's transport (one entry when
//! both sides are the same, two otherwise). And RFC 3261 §18.1.1: a 3 KB
//! INVITE to a server that takes UDP and TCP leaves over TCP while the
//! call's small requests go over UDP.

use e2e::certs::Ca;
use e2e::config::SECRET;
use e2e::kamailio::{Back, Front, Kamailio};
use e2e::sip;
use e2e::websocket::python_client;
use e2e::{free_port, require_private_netns, Sipedge, SippUac, SippUas, TempDir, TracedMessage};

/// One edge's ports: UDP and TCP share one, TLS and WebSocket have theirs.
#[derive(Clone, Copy)]
struct Ports {
    plain: u16,
    tls: u16,
    ws: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            plain: free_port(),
            tls: free_port(),
            ws: free_port(),
        }
    }

    /// The edge's Record-Route entry for the side of `transport`, its flow
    /// token taken out.
    fn entry(&self, transport: &str) -> String {
        match transport {
            "udp" => format!("<sip:127.0.0.1:{};lr>", self.plain),
            "tcp" => format!("<sip:127.0.0.1:{};transport=tcp;lr>", self.plain),
            "tls" => format!("<sip:127.0.0.1:{};transport=tls;lr>", self.tls),
            _ => format!("<sip:127.0.0.1:{};transport=ws;lr>", self.ws),
        }
    }
}

/// An edge named `name` on `ports`, dispatching to `destination` (a table
/// body), with the test's certificate.
fn edge(name: &str, p: Ports, destination: &str, domain: &str) -> String {
    format!(
        "\n[[edge]]\nname = \"{name}\"\n\
         listen = [\"udp:127.0.0.1:{plain}\", \"tcp:127.0.0.1:{plain}\", \"tls:127.0.0.1:{tls}\", \
         \"ws:127.0.0.1:{ws}\"]\n\
         [[edge.destination]]\n{destination}\n[edge.probe]\nenabled = false\n{domain}",
        plain = p.plain,
        tls = p.tls,
        ws = p.ws
    )
}

/// The last INVITE `server` received.
fn last_invite(server: &SippUas) -> TracedMessage {
    server
        .messages_so_far()
        .into_iter()
        .rfind(|m| m.text.starts_with("INVITE "))
        .expect("an INVITE")
}

#[test]
fn calls_between_every_pair_of_transports_keep_their_in_dialog_requests_on_the_right_one() {
    require_private_netns();
    let dir = TempDir::new("bridging");
    let ca = Ca::new(dir.path(), "ca");
    let edge_leaf = ca.leaf("edge", &["sip.example.com"]);
    let kam_leaf = ca.leaf("kamailio", &["127.0.0.1", "127.0.0.2"]);
    let domain = format!(
        "\n[[edge.domain]]\nname = \"sip.example.com\"\ncert = \"{}\"\nkey = \"{}\"\n",
        edge_leaf.cert.display(),
        edge_leaf.key.display()
    );
    let [udp_server, tcp_server, kam_server, kam_front, kam_back, kam_back_tls] =
        [(); 6].map(|()| free_port());
    let (to_udp, to_tcp, to_tls) = (Ports::new(), Ports::new(), Ports::new());
    let large = free_port();
    let toml = format!(
        "[node]\nid = \"bridge\"\nsecret = \"{SECRET}\"\n{}{}{}\n\
         [[edge]]\nname = \"large\"\nlisten = [\"udp:127.0.0.1:{large}\", \"tcp:127.0.0.1:{large}\"]\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.2:{kam_back}\"\ntransports = [\"udp\", \"tcp\"]\n\
         [edge.probe]\nenabled = false\n",
        edge(
            "to-udp",
            to_udp,
            &format!("uri = \"sip:127.0.0.1:{udp_server}\""),
            &domain
        ),
        edge(
            "to-tcp",
            to_tcp,
            &format!("uri = \"sip:127.0.0.1:{tcp_server};transport=tcp\""),
            &domain
        ),
        edge(
            "to-tls",
            to_tls,
            &format!(
                "uri = \"sip:127.0.0.2:{kam_back_tls};transport=tls\"\nca = \"{}\"",
                ca.cert().display()
            ),
            &domain
        ),
    );
    let sipedge = Sipedge::start(&toml);
    let tls_uri = |p: Ports| format!("sip:127.0.0.1:{};transport=tls", p.tls);
    let front = Front {
        to_udp: tls_uri(to_udp),
        to_tcp: tls_uri(to_tcp),
        to_tls: tls_uri(to_tls),
        default: tls_uri(to_udp),
    };
    // Two Kamailios: one in front of the edge, one behind it on another
    // address (one alone would be both a caller and a server of the edge,
    // which knows a server on a connection by its address).
    let kamailio = Kamailio::relay(
        kam_front,
        &Back {
            ip: "127.0.0.1",
            port: free_port(),
            tls_port: free_port(),
            to: kam_server,
        },
        &front,
        &ca,
        &kam_leaf,
    );
    let _behind = Kamailio::relay(
        free_port(),
        &Back {
            ip: "127.0.0.2",
            port: kam_back,
            tls_port: kam_back_tls,
            to: kam_server,
        },
        &front,
        &ca,
        &kam_leaf,
    );
    let udp_uas = SippUas::start("uas.xml", udp_server, &[]);
    let tcp_uas = SippUas::start("uas.xml", tcp_server, &["-t", "t1"]);
    let kam_uas = SippUas::start("uas.xml", kam_server, &[]);

    for (out, ports, server) in [
        ("udp", to_udp, &udp_uas),
        ("tcp", to_tcp, &tcp_uas),
        ("tls", to_tls, &kam_uas),
    ] {
        for caller in ["udp", "tcp", "tls", "ws"] {
            let pair = format!("{caller} in, {out} out");
            let before = server.count_so_far("BYE");
            let calls = match caller {
                "ws" => {
                    let run = python_client(&format!("ws://127.0.0.1:{}", ports.ws), "call");
                    assert_eq!(run.status, Some(0), "{pair}: {run:?}");
                    1
                }
                _ => {
                    let (to, args): (String, Vec<&str>) = match caller {
                        "udp" => (format!("127.0.0.1:{}", ports.plain), vec![]),
                        "tcp" => (format!("127.0.0.1:{}", ports.plain), vec!["-t", "t1"]),
                        _ => (
                            format!("127.0.0.1:{kam_front}"),
                            vec![
                                "-s",
                                match out {
                                    "udp" => "to-udp",
                                    "tcp" => "to-tcp",
                                    _ => "to-tls",
                                },
                            ],
                        ),
                    };
                    let run = SippUac::run("uac.xml", &to, 3, 3, &args);
                    assert_eq!(
                        (run.successful(), run.failed()),
                        (3, 0),
                        "{pair}: {}\n--- sipedge\n{}\n--- kamailio\n{}",
                        run.summary(),
                        sipedge.stderr_text(),
                        kamailio.stderr_text()
                    );
                    3
                }
            };
            assert!(
                server.wait_for_count("BYE", before + calls, std::time::Duration::from_secs(5)),
                "{pair}: every BYE reached the server"
            );
            let invite = last_invite(server);
            let rr = sip::untokened(&invite.headers("Record-Route").join(","));
            let (caller_side, out_side) = (ports.entry(caller), ports.entry(out));
            assert!(rr.contains(&out_side), "{pair}: {rr}");
            let ours = rr.matches(&format!("127.0.0.1:{}", ports.plain)).count()
                + rr.matches(&format!("127.0.0.1:{};", ports.tls)).count()
                + rr.matches(&format!("127.0.0.1:{};", ports.ws)).count();
            if caller == out {
                assert_eq!(ours, 1, "{pair}: one entry: {rr}");
            } else {
                assert!(rr.contains(&caller_side), "{pair}: {rr}");
                assert_eq!(ours, 2, "{pair}: two entries: {rr}");
            }
        }
    }

    // A 3 KB INVITE over TCP to a server taking UDP and TCP: over TCP;
    // the ACK and BYE, small, over UDP.
    let before = kam_uas.count_so_far("BYE");
    let run = SippUac::run(
        "uac-large.xml",
        &format!("127.0.0.1:{large}"),
        2,
        2,
        &["-t", "t1"],
    );
    assert_eq!(
        (run.successful(), run.failed()),
        (2, 0),
        "{}",
        run.summary()
    );
    assert!(kam_uas.wait_for_count("BYE", before + 2, std::time::Duration::from_secs(5)));
    let messages = kam_uas.messages_so_far();
    let edge_via = |m: &TracedMessage| {
        m.headers("Via")
            .into_iter()
            .find(|v| v.contains(&format!("127.0.0.1:{large};")))
            .map(|v| v.split(' ').next().unwrap_or("").to_owned())
    };
    let invite = messages
        .iter()
        .rfind(|m| m.text.starts_with("INVITE ") && m.text.len() > 3000)
        .expect("the large INVITE");
    assert_eq!(
        edge_via(invite).as_deref(),
        Some("SIP/2.0/TCP"),
        "{}",
        invite.text
    );
    let bye = messages
        .iter()
        .rfind(|m| m.text.starts_with("BYE "))
        .expect("its BYE");
    assert_eq!(
        edge_via(bye).as_deref(),
        Some("SIP/2.0/UDP"),
        "{}",
        bye.text
    );
    drop((udp_uas.stop(), tcp_uas.stop(), kam_uas.stop()));
}
