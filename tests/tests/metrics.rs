//! `/metrics` (issue 18 §1) against a known SIPp run: every count the
//! Prometheus scrape gives is checked against what SIPp itself sent and
//! received (its message traces), and the scrape passes `promtool check
//! metrics` (Prometheus's own linter) in the classic format and parses as
//! OpenMetrics too.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::config::{admin, probe, single_edge};
use e2e::prometheus::Scrape;
use e2e::{
    free_port, require_private_netns, AdminApi, Direction, Sipedge, SippUac, SippUas, TracedMessage,
};

/// How long the probes may take to find the dead destination.
const STATE_CHANGE: Duration = Duration::from_secs(10);

/// Requests by method and responses by class among `messages` that went
/// in `direction` (health probes and their answers left out: they go
/// between the prober and the server, not through the edge).
fn tally(messages: &[TracedMessage], direction: Direction) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in messages.iter().filter(|m| {
        m.direction == direction && !m.call_id().is_some_and(|id| id.starts_with("probe."))
    }) {
        let key = match (m.method(), m.status()) {
            (Some(method), _) => method.to_owned(),
            (None, Some(code)) => format!("{}xx", code / 100),
            (None, None) => continue,
        };
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

fn count(t: &BTreeMap<String, u64>, key: &str) -> u64 {
    t.get(key).copied().unwrap_or(0)
}

/// 20 calls at 10 per second into an edge with `cps = 5`: the calls, the
/// breaches, every method and response class the edge read, and what each
/// destination was sent and answered match SIPp's traces exactly; the
/// dead second destination shows as inactive, the live one's probes in
/// the latency histogram.
#[test]
fn metrics_match_a_sipp_run_exactly_and_pass_promtool() {
    require_private_netns();
    let uas = SippUas::start("uas.xml", free_port(), &[]);
    let live = format!("sip:127.0.0.1:{}", uas.port());
    let dead = free_port();
    let (listen, api_port) = (free_port(), free_port());
    let config = single_edge(listen, "first", &[(uas.port(), 1), (dead, 1)])
        .replace("flags = ", "cps = 5\nchannels = 100\nflags = ")
        + &probe(0.5, 0.3, 1, 1)
        + &admin(api_port);
    let _edge = Sipedge::start(&config);
    let api = AdminApi::local(api_port);
    api.wait_for_state("e", 1, "inactive", STATE_CHANGE);
    let calls = 20;
    let uac = SippUac::run(
        "uac-or-503.xml",
        &format!("127.0.0.1:{listen}"),
        calls,
        10,
        &[],
    );
    uac.assert_all_successful();
    // Every call is over (the caller saw each BYE answered): scrape while
    // the server still answers its probes, then stop it for its trace.
    let classic = api.get("/metrics");
    let om = api.get_accepting("/metrics", "application/openmetrics-text; version=1.0.0");
    let uas = uas.stop();

    let sent = tally(uac.messages(), Direction::Sent);
    let answered = tally(uac.messages(), Direction::Received);
    let served = tally(uas.messages(), Direction::Received);
    let replied = tally(uas.messages(), Direction::Sent);
    assert!(
        count(&answered, "5xx") > 0,
        "cps = 5 refused nothing: {answered:?}"
    );

    assert_eq!(classic.status, 200, "{}", classic.body);
    let kind = classic.content_type.clone().unwrap_or_default();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let m = Scrape::of(&classic.body);
    let edge = ("edge", "e");
    let gone = format!("sip:127.0.0.1:{dead}");
    let to_live = ("destination", live.as_str());

    // What the edge read: every request SIPp's caller sent, every
    // response the server sent (retransmissions included, as on the wire).
    for method in ["INVITE", "ACK", "BYE"] {
        assert_eq!(
            m.count(
                "sipedge_requests_received_total",
                &[edge, ("method", method)]
            ),
            count(&sent, method),
            "{method} read"
        );
        assert_eq!(
            m.count(
                "sipedge_destination_requests_total",
                &[edge, to_live, ("method", method)]
            ),
            count(&served, method),
            "{method} sent to the server"
        );
    }
    for class in ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"] {
        assert_eq!(
            m.count(
                "sipedge_responses_received_total",
                &[edge, ("class", class)]
            ),
            count(&replied, class),
            "{class} read"
        );
        assert_eq!(
            m.count(
                "sipedge_destination_responses_total",
                &[edge, to_live, ("class", class)]
            ),
            count(&replied, class),
            "{class} from the server"
        );
    }
    // Calls: every INVITE judged (a stateless edge judges a retransmission
    // again); the breaches are the caller's 503s; the server got the rest.
    assert_eq!(
        m.count("sipedge_calls_total", &[edge]),
        count(&sent, "INVITE")
    );
    assert_eq!(
        m.count("sipedge_events_total", &[edge, ("event", "new_call")]),
        count(&sent, "INVITE")
    );
    assert_eq!(
        m.count("sipedge_cps_breaches_total", &[edge]),
        count(&answered, "5xx")
    );
    assert_eq!(
        m.count("sipedge_destination_calls_total", &[edge, to_live]),
        count(&served, "INVITE")
    );
    assert_eq!(
        m.count(
            "sipedge_destination_calls_total",
            &[edge, ("destination", &gone)]
        ),
        0
    );
    assert_eq!(
        m.count("sipedge_calls_in_progress", &[edge]),
        0,
        "every call hung up"
    );
    assert_eq!(m.count("sipedge_channel_breaches_total", &[edge]), 0);
    // States: one gauge per state, 1 for the one it is in.
    for (dest, state) in [(live.as_str(), "active"), (gone.as_str(), "inactive")] {
        for s in ["active", "inactive", "probing"] {
            assert_eq!(
                m.count(
                    "sipedge_destination_state",
                    &[("destination", dest), ("state", s)]
                ),
                u64::from(s == state),
                "{dest} {s}"
            );
        }
    }
    assert_eq!(m.count("sipedge_edge_up", &[edge]), 1);
    // Probe round trips of the live server (at least its first probe).
    let probed = m.count("sipedge_probe_duration_seconds_count", &[to_live]);
    assert!(probed >= 1, "no probe round trip counted");
    assert_eq!(
        m.count(
            "sipedge_probe_duration_seconds_bucket",
            &[to_live, ("le", "+Inf")]
        ),
        probed
    );
    assert!(m.count("sipedge_probes_total", &[to_live]) >= probed);
    assert_eq!(m.count("sipedge_build_info", &[]), 1);

    // Bounded labels only: no address, Call-ID or tag ever becomes one.
    let allowed = [
        "edge",
        "destination",
        "method",
        "class",
        "state",
        "check",
        "test",
        "token",
        "reason",
        "transport",
        "event",
        "result",
        "version",
        "le",
    ];
    for s in &m.samples {
        for (k, v) in &s.labels {
            assert!(allowed.contains(&k.as_str()), "label {k} on {}", s.name);
            assert!(k != "destination" || v == &live || v == &gone, "{v}");
        }
    }

    // Prometheus's own linter accepts the classic format.
    promtool_accepts(&classic.body);

    // The OpenMetrics answer carries the same samples (the probe counts
    // move on between two scrapes, so those are left out).
    let kind = om.content_type.clone().unwrap_or_default();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    assert!(om.body.ends_with("# EOF\n"));
    let steady = |s: &Scrape| {
        s.samples
            .iter()
            .filter(|x| !x.name.starts_with("sipedge_probe"))
            .map(|x| format!("{} {:?} {}", x.name, x.labels, x.value))
            .collect::<Vec<_>>()
    };
    let (a, b) = (steady(&Scrape::of(&om.body)), steady(&m));
    let differ: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y).collect();
    assert!(
        a.len() == b.len() && differ.is_empty(),
        "OpenMetrics vs classic: {differ:?}"
    );
}

/// Runs `promtool check metrics` on `text`; panics with its findings.
#[track_caller]
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let started = Instant::now();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (Debian package prometheus) cannot run: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed after {:?}:\n{}{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
