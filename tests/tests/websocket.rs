//! SIP over WebSocket (RFC 7118): a client on python3-websockets over a
//! plain `ws:` listener, calling a SIPp server through the edge — its
//! requests go to the pool like any other, and the answers and the far
//! end's BYE come back over its WebSocket (the edge's Record-Route names
//! the client's flow); the `sip` subprotocol required; ping and pong; a
//! message over `max_message` closes the connection.

use e2e::admin::AdminApi;
use e2e::config::SECRET;
use e2e::sip;
use e2e::websocket::python_client;
use e2e::{free_port, require_private_netns, Sipedge, SippUas};

/// An edge listening on UDP and on WebSocket at 127.0.0.1:`ws`, in
/// front of a server at `server`.
fn config(udp: u16, ws: u16, admin: u16, server: u16) -> String {
    format!(
        "[node]\nid = \"ws\"\nsecret = \"{SECRET}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [connections]\nmax_message = 3000\n\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{udp}\", \"ws:127.0.0.1:{ws}\"]\n\
         flags = [\"ping-replies\"]\n\n[[edge.destination]]\nuri = \"sip:127.0.0.1:{server}\"\n\
         [edge.probe]\nenabled = false\n"
    )
}

#[test]
fn websocket_clients_call_through_the_edge_and_get_the_far_ends_bye() {
    require_private_netns();
    let (udp, ws, admin, server) = (free_port(), free_port(), free_port(), free_port());
    let edge = Sipedge::start(&config(udp, ws, admin, server));
    let url = format!("ws://127.0.0.1:{ws}");

    // The client hangs up.
    let uas = SippUas::start("uas.xml", server, &[]);
    let run = python_client(&url, "call");
    let uas = uas.stop();
    assert_eq!(run.status, Some(0), "{run:?}\n{}", edge.stderr_text());
    assert_eq!(run.get("subprotocol").and_then(|v| v.as_str()), Some("sip"));
    assert_eq!(
        run.get("bye").and_then(|v| v.as_str()),
        Some("SIP/2.0 200 OK"),
        "{run:?}"
    );
    let rr = run.get("record_route").expect("a Record-Route").to_string();
    assert!(
        sip::untokened(&rr).contains(&format!(
            "<sip:127.0.0.1:{udp};lr>\",\"<sip:127.0.0.1:{ws};transport=ws;lr>"
        )),
        "{rr}"
    );
    assert_eq!(sip::tokens(&rr), 1, "the browser's flow, sealed: {rr}");
    assert_eq!(uas.count("INVITE"), 1);
    assert_eq!(uas.count("ACK"), 1);
    assert_eq!(uas.count("BYE"), 1);
    let invite = uas.requests("INVITE")[0].clone();
    let vias = invite.headers("Via");
    assert!(
        vias[1].starts_with("SIP/2.0/WS df7jal23ls0d.invalid;")
            && vias[1].contains(";received=127.0.0.1;rport="),
        "{vias:?}"
    );

    // The far end hangs up: its BYE, to the browser's made-up host,
    // reaches the client over its WebSocket.
    let uas = SippUas::start("uas-bye.xml", server, &["-d", "100"]);
    let run = python_client(&url, "hung-up");
    let uas = uas.stop();
    assert_eq!(run.status, Some(0), "{run:?}\n{}", edge.stderr_text());
    let got: Vec<String> = run.all("got").iter().map(|v| v.to_string()).collect();
    assert!(got.iter().any(|g| g.starts_with("\"BYE ")), "{got:?}");
    assert_eq!(
        run.get("request_uri_host").and_then(|v| v.as_str()),
        Some("sip:alice@df7jal23ls0d.invalid;transport=ws")
    );
    let answered = uas
        .received()
        .filter(|m| m.text.starts_with("SIP/2.0 200") && m.text.contains(" BYE\r\n"))
        .count();
    assert_eq!(
        answered, 1,
        "the client's 200 to the BYE reached the server"
    );

    let api = AdminApi::local(admin);
    let c = api.get("/api/connections").json();
    assert!(
        c.get("accepted").and_then(|v| v.as_u64()) >= Some(2),
        "{c:?}"
    );
}

#[test]
fn websocket_ping_subprotocol_and_size_limit() {
    require_private_netns();
    let (udp, ws, admin) = (free_port(), free_port(), free_port());
    let _edge = Sipedge::start(&config(udp, ws, admin, 9));
    let url = format!("ws://127.0.0.1:{ws}");

    let run = python_client(&url, "ping");
    assert_eq!(run.status, Some(0), "{run:?}");
    assert_eq!(run.get("pong").and_then(|v| v.as_bool()), Some(true));
    assert_eq!(
        run.get("got").and_then(|v| v.as_str()),
        Some("SIP/2.0 200 OK"),
        "the edge answers an OPTIONS over WebSocket itself"
    );

    let run = python_client(&url, "no-sip");
    assert_eq!(
        run.get("refused").and_then(|v| v.as_bool()),
        Some(true),
        "{run:?}"
    );
    assert_eq!(run.get("status").and_then(|v| v.as_u64()), Some(400));

    // 1009: message too big (RFC 6455 §7.4.1).
    let run = python_client(&url, "too-large");
    assert_eq!(
        run.get("closed").and_then(|v| v.as_u64()),
        Some(1009),
        "{run:?}"
    );

    let c = AdminApi::local(admin).get("/api/connections").json();
    assert_eq!(
        c.get("ws_upgrade_refused").and_then(|v| v.as_u64()),
        Some(1),
        "{c:?}"
    );
    assert_eq!(
        c.get("closed_message_too_large").and_then(|v| v.as_u64()),
        Some(1),
        "{c:?}"
    );
}

/// A browser — headless Chromium running JsSIP, vendored from npm —
/// registers through the edge's `wss:` listener with a registrar in the
/// pool (SIPp), sends a MESSAGE into the pool and receives one from it:
/// the registrar reaches the browser along the Path the edge added.
#[test]
fn a_browser_registers_over_secure_websocket_and_sends_and_receives_messages() {
    require_private_netns();
    let dir = e2e::TempDir::new("wss");
    let ca = e2e::certs::Ca::new(dir.path(), "ca");
    let leaf = ca.leaf("edge", &["sip.example.com"]);
    let (udp, wss, admin, registrar) = (free_port(), free_port(), free_port(), free_port());
    let toml = format!(
        "[node]\nid = \"wss\"\nsecret = \"{SECRET}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [[edge]]\nname = \"web\"\nlisten = [\"udp:127.0.0.1:{udp}\", \"wss:127.0.0.1:{wss}\"]\n\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:{registrar}\"\n[edge.probe]\nenabled = false\n\n\
         [[edge.domain]]\nname = \"sip.example.com\"\ncert = \"{}\"\nkey = \"{}\"\n",
        leaf.cert.display(),
        leaf.key.display()
    );
    let edge = Sipedge::start(&toml);
    let pool = SippUas::start("registrar.xml", registrar, &[]);
    let page = e2e::websocket::browser(
        "jssip.html",
        &format!("wss=wss://127.0.0.1:{wss}"),
        std::time::Duration::from_secs(30),
    );
    let pool = pool.stop();
    // (SIPp ends the body it sends with a line end.)
    let last = page.states.last().map_or("", |s| s.trim_end());
    assert_eq!(
        last,
        "ok registered, sent, received: hello from the pool",
        "states: {:?}\n--- chromium\n{}\n--- sipedge\n{}",
        page.states,
        page.console,
        edge.stderr_text()
    );
    let register = pool.requests("REGISTER")[0].clone();
    let path = register.headers("Path").join(",");
    assert_eq!(
        sip::untokened(&path),
        format!("<sip:127.0.0.1:{udp};lr>"),
        "{path}"
    );
    assert_eq!(sip::tokens(&path), 1, "the browser's flow, sealed: {path}");
    assert!(
        register.headers("Via")[1].starts_with("SIP/2.0/WSS "),
        "{}",
        register.text
    );
    let message = pool.requests("MESSAGE")[0].clone();
    assert!(
        message.text.ends_with("hello from the browser"),
        "{}",
        message.text
    );
}
