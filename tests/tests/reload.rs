//! Live reload under load: while SIPp places 3,000 calls at 100 calls per
//! second (over UDP through a stateless edge, and over TCP through a
//! transactional one), the config is reloaded three times — a reweight
//! through `POST /api/reload`, a new destination through `sipedge ctl
//! reload`, a destination removed through SIGHUP — and not one call
//! fails: the new destination gets calls from its reload on, the removed
//! one gets none after its reload while the calls already on it end with
//! their BYE there, and what the prober knows of the unchanged
//! destinations carries on. An invalid file is refused with its line
//! while traffic goes on.

use std::time::Duration;

use e2e::admin::{destination, AdminApi};
use e2e::config::SECRET;
use e2e::{free_port, require_private_netns, Json, Sipedge, SippUac, SippUas};

const CALLS: u32 = 3_000;
const RATE: u32 = 100;
/// Each call lasts this long, so that hundreds are up at every reload.
const HOLD_MS: &str = "3000";
const WAIT: Duration = Duration::from_secs(20);

/// An edge on UDP and TCP at `listen` over `dests` (URI, weight).
fn config(listen: u16, admin: u16, insertion: &str, dests: &[(&str, u32)]) -> String {
    let mut toml = format!(
        "[node]\nid = \"reload\"\nsecret = \"{SECRET}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{listen}\", \"tcp:127.0.0.1:{listen}\"]\n\
         algorithm = \"weighted-round-robin\"\ninsertion = \"{insertion}\"\n\n\
         [edge.probe]\ninterval = 1\ntimeout = 0.5\n"
    );
    for (uri, weight) in dests {
        toml.push_str(&format!(
            "\n[[edge.destination]]\nuri = \"{uri}\"\nweight = {weight}\n"
        ));
    }
    toml
}

/// The destination of edge `e` with `uri` in an `/api/destinations` answer.
fn by_uri<'a>(api: &'a Json, uri: &str) -> &'a Json {
    (0..8)
        .map(|i| destination(api, "e", i))
        .find(|d| d["uri"].as_str() == Some(uri))
        .unwrap_or_else(|| panic!("no destination {uri} in {api}"))
}

fn number(d: &Json, key: &str) -> u64 {
    d[key].as_u64().unwrap_or_else(|| panic!("no {key} in {d}"))
}

fn calls_sent(api: &AdminApi, uri: &str) -> u64 {
    number(by_uri(&api.destinations(), uri), "calls_sent")
}

/// What the prober knows of `uri`: probes sent so far, and that the last
/// one was answered.
fn probes(api: &AdminApi, uri: &str) -> u64 {
    let v = api.destinations();
    let d = by_uri(&v, uri);
    assert_eq!(d["state"], "active", "{d}");
    assert_eq!(d["last_probe"]["ok"], true, "{d}");
    number(&d["probes"], "sent")
}

fn reload_during_calls(insertion: &str, caller_args: &'static [&'static str]) {
    require_private_netns();
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let b = SippUas::start("uas.xml", free_port(), &[]);
    let c = SippUas::start("uas.xml", free_port(), &[]);
    let (ua, ub, uc) = (a.uri(), b.uri(), c.uri());
    let (listen, admin) = (free_port(), free_port());
    let mut edge = Sipedge::start(&config(listen, admin, insertion, &[(&ua, 1), (&ub, 1)]));
    let api = AdminApi::local(admin);
    api.wait_for_probed("e", WAIT);
    let path = edge.config_path().to_path_buf();
    let target = format!("127.0.0.1:{listen}");
    let caller = std::thread::spawn(move || {
        let mut args = vec!["-d", HOLD_MS];
        args.extend_from_slice(caller_args);
        SippUac::run("uac.xml", &target, CALLS, RATE, &args)
    });
    // Each reload happens once calls flow and some are up.
    let until_calls = |uri: &str, n: u64| {
        api.wait_until(&format!("{n} calls sent to {uri}"), WAIT, |v| {
            number(by_uri(v, uri), "calls_sent") >= n
        });
    };
    until_calls(&ua, 300);

    // 1. Reweight, through the API: A takes three calls for each of B's.
    let probes_before = probes(&api, &ua);
    std::fs::write(
        &path,
        config(listen, admin, insertion, &[(&ua, 3), (&ub, 1)]),
    )
    .expect("write");
    let r = api.post_json("/api/reload", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(
        j["changes"][0],
        format!("edge e: destination {ua} changed"),
        "{j}"
    );
    assert_eq!(j["needs_restart"], Json::Array(vec![]), "{j}");
    assert!(probes(&api, &ua) >= probes_before, "A's health was reset");
    let (a0, b0) = (calls_sent(&api, &ua), calls_sent(&api, &ub));
    until_calls(&ua, a0 + 300);
    let (a1, b1) = (calls_sent(&api, &ua), calls_sent(&api, &ub));
    assert!(
        (a1 - a0) >= 2 * (b1 - b0),
        "after the reweight A got {} calls and B {}",
        a1 - a0,
        b1 - b0
    );

    // An invalid file is refused with its line; nothing changes.
    let bad = config(listen, admin, insertion, &[(&ua, 3), (&ub, 1)])
        .replace("weight = 1", "weight = -1");
    std::fs::write(&path, &bad).expect("write");
    let line = bad.lines().position(|l| l == "weight = -1").expect("line") + 1;
    let out = api.ctl(&["reload"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains(&format!("{}:{line}: ", path.display()))
            && out.stderr.contains("weight"),
        "{out:?}"
    );
    assert!(edge.wait_for_stderr("reload refused, the running config stays", WAIT));

    // 2. A new destination, through `sipedge ctl reload`.
    let with_c = config(listen, admin, insertion, &[(&ua, 3), (&ub, 1), (&uc, 2)]);
    std::fs::write(&path, &with_c).expect("write");
    let out = api.ctl(&["reload"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("applied: edge e: destination {uc} added")),
        "{out:?}"
    );
    until_calls(&uc, 100);

    // 3. B removed, through SIGHUP.
    let probes_before = probes(&api, &ua);
    std::fs::write(
        &path,
        config(listen, admin, insertion, &[(&ua, 3), (&uc, 2)]),
    )
    .expect("write");
    edge.signal(libc::SIGHUP);
    assert!(edge.wait_for_stderr(&format!("destination {ub} removed"), WAIT));
    // Once C got calls after it, the edge chooses by the new config:
    // whatever B got up to then is all it gets.
    let c0 = calls_sent(&api, &uc);
    until_calls(&uc, c0 + 100);
    let b_final = b.count_so_far("INVITE");
    assert!(probes(&api, &ua) >= probes_before, "A's health was reset");

    let uac = caller.join().expect("the caller thread");
    uac.assert_all_successful();
    let (a, b, c) = (a.stop(), b.stop(), c.stop());
    assert_eq!(b.count("INVITE"), b_final, "B got calls after its removal");
    for (name, s) in [("A", &a), ("B", &b), ("C", &c)] {
        assert_eq!(
            s.count("BYE"),
            s.count("INVITE"),
            "{name}: every call ends with its BYE there"
        );
    }
    assert_eq!(
        a.count("INVITE") + b.count("INVITE") + c.count("INVITE"),
        CALLS as usize
    );
}

/// UDP callers through a stateless edge.
#[test]
fn udp_calls_survive_three_reloads_on_a_stateless_edge() {
    reload_during_calls("stateless", &[]);
}

/// TCP callers (one connection) through a transactional edge.
#[test]
fn tcp_calls_survive_three_reloads_on_a_transactional_edge() {
    reload_during_calls("transactional", &["-t", "t1"]);
}
