//! "Why did this call go there?" (issue 18 §5): `sipedge explain` on a
//! config file, and `POST /api/explain` on a running node, which sees the
//! live destination states and sends nothing.

use e2e::config::{admin, single_edge};
use e2e::json::Json;
use e2e::{free_port, require_private_netns, AdminApi, Sipedge, TempDir, Udp};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn invite(call_id: &str, max_forwards: u8) -> String {
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: {max_forwards}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@127.0.0.1:6000>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// `sipedge explain --config FILE [args] < message`: exit code and stdout.
fn explain_cli(toml: &str, message: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = TempDir::new("explain");
    let file = dir.path().join("sipedge.toml");
    std::fs::write(&file, toml).expect("write the config");
    let mut child = Command::new(e2e::sipedge::binary())
        .arg("explain")
        .arg("--config")
        .arg(&file)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sipedge explain");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message.as_bytes())
        .expect("write the message");
    let out = child.wait_with_output().expect("sipedge explain");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code(),
        text + &String::from_utf8_lossy(&out.stderr),
    )
}

fn stage<'a>(x: &'a Json, name: &str) -> &'a Json {
    x["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|v| v["stage"] == name))
        .unwrap_or_else(|| panic!("no {name} stage in {x}"))
}

#[test]
fn explain_on_the_command_line_shows_every_stage_and_the_ranking() {
    require_private_netns();
    let (a, b) = (free_port(), free_port());
    let toml = single_edge(free_port(), "hash-call-id", &[(a, 1), (b, 3)]);
    let (code, out) = explain_cli(&toml, &invite("cli-1", 70), &["--json"]);
    assert_eq!(code, Some(0), "{out}");
    let x = e2e::json::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let names: Vec<&str> = x["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter_map(|v| v["stage"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "security", "parse", "validate", "sanity", "local", "hops", "route", "limits",
            "dispatch", "send"
        ]
    );
    let ranked = x["candidates"].as_array().expect("candidates");
    assert_eq!(ranked.len(), 2);
    assert_eq!(ranked[0]["rank"], 1);
    assert_eq!(ranked[1]["rank"], 2);
    let weights: Vec<_> = ranked.iter().map(|c| c["weight"].as_u64()).collect();
    assert!(weights.contains(&Some(3)) && weights.contains(&Some(1)));
    // The request goes to rank 1, with our Record-Route, Max-Forwards
    // less one.
    let first = ranked[0]["uri"].as_str().expect("uri");
    let sent = &x["sent"][0];
    assert_eq!(
        format!("sip:{}", sent["to"].as_str().expect("to")),
        first,
        "{x}"
    );
    let message = sent["message"].as_str().expect("message");
    assert!(message.contains("Max-Forwards: 69"), "{message}");
    assert!(message.contains("Record-Route: <sip:"), "{message}");
    // The text form says the same for a person; a message a stage refuses
    // exits 1 and names the stage.
    let (code, text) = explain_cli(&toml, &invite("cli-1", 70), &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("dispatch  pass  hash-call-id"), "{text}");
    assert!(
        text.contains(&format!("--- to udp:{}", &first[4..])),
        "{text}"
    );
    let (code, text) = explain_cli(&toml, &invite("cli-2", 0), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("hops      STOP  answered 483"), "{text}");
    assert!(
        text.contains("--- to udp:127.0.0.1:6000\r\nSIP/2.0 483")
            || text.contains("--- to udp:127.0.0.1:6000\nSIP/2.0 483"),
        "{text}"
    );
    // An edge that does not exist is an error, not a guess.
    let (code, text) = explain_cli(&toml, &invite("cli-3", 70), &["--edge", "nope"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("no edge named \"nope\""), "{text}");
}

#[test]
fn the_api_explains_with_the_live_states_and_sends_nothing() {
    require_private_netns();
    let servers = [Udp::bind(), Udp::bind()];
    let admin_port = free_port();
    let listen = free_port();
    let toml = single_edge(
        listen,
        "weighted-round-robin",
        &[(servers[0].port(), 1), (servers[1].port(), 1)],
    ) + &admin(admin_port);
    let node = Sipedge::start(&toml);
    let api = AdminApi::local(admin_port);
    let set = api.set_state("e", "0", "inactive");
    assert_eq!(set.status, 200, "{}", set.body);
    let asked = api.post_json("/api/explain?edge=e", &invite("api-explained", 70));
    assert_eq!(asked.status, 200, "{}", asked.body);
    let x = asked.json();
    let down = x["candidates"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["index"] == 0))
        .expect("destination 0 listed");
    assert_eq!(down["usable"], false, "{x}");
    assert_eq!(down["rank"], Json::Null, "{x}");
    assert!(stage(&x, "dispatch")["pass"] == true, "{x}");
    let to = x["sent"][0]["to"].as_str().expect("sent to");
    assert_eq!(to, format!("127.0.0.1:{}", servers[1].port()));
    // A bad address and an unknown edge are refused with a reason.
    let bad = api.post_json("/api/explain?from=nowhere", &invite("x", 70));
    assert_eq!(bad.status, 400, "{}", bad.body);
    let unknown = api.post_json("/api/explain?edge=nope", &invite("x", 70));
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    // Nothing was sent: the live counters saw no request, and the server
    // that was named receives the next real call, not the explained one.
    let dests = api.destinations();
    let sent: Vec<_> = (0..2)
        .map(|i| e2e::admin::destination(&dests, "e", i)["requests_sent"].as_u64())
        .collect();
    assert_eq!(sent, [Some(0), Some(0)], "{dests}");
    let caller = Udp::bind();
    caller.send_to(invite("api-real", 70), ("127.0.0.1", listen));
    let (got, _) = servers[1]
        .recv_matching(Duration::from_secs(5), |text| text.starts_with("INVITE"))
        .expect("the real call reaches the server");
    assert!(got.contains("Call-ID: api-real"), "{got}");
    drop(node);
}
