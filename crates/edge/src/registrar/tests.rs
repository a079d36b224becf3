//! RFC 3261 §10.3 on the registrar alone: expiry and Min-Expires, several
//! contacts, `*`, q-values, Call-ID/CSeq order, refresh, keepalives.

use super::*;
use crate::flow::Transport;
use std::net::SocketAddr;
use std::time::Duration;

fn settings() -> config::Registrar {
    config::Registrar {
        allow: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        domains: Vec::new(),
        min_expires: 60,
        max_expires: 3600,
        default_expires: 1800,
        max_contacts: 3,
        keepalive_interval: 30,
        keepalive: config::Keepalive::Options,
        keepalive_failures: 2,
        line: 0,
    }
}

fn flow(port: u16) -> Outside {
    Outside {
        transport: Transport::Udp,
        local: 0,
        remote: SocketAddr::from(([10, 1, 1, 1], port)),
        conn: None,
    }
}

/// A REGISTER for alice with `headers` (Contact, Expires lines).
fn register(call_id: &str, cseq: u32, headers: &str) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK{cseq}\r\n\
         From: <sip:alice@example.com>;tag=a\r\n\
         To: <sip:alice@EXAMPLE.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         {headers}Content-Length: 0\r\n\r\n"
    )
}

struct Run {
    r: Registrar,
    t0: Instant,
}

impl Run {
    fn new() -> Run {
        let t0 = Instant::now();
        Run {
            r: Registrar::new(&settings(), None, t0),
            t0,
        }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    /// Sends `text` at `secs` from port `port`; the verdict and the 200's
    /// Contact value.
    fn send(&self, text: &str, secs: u64, port: u16) -> (Verdict, String) {
        let mut index = sip::HeaderIndex::new();
        let m = sip::parse(text.as_bytes(), &mut index).unwrap();
        let call_id = m.call_id().unwrap();
        let cseq = m.cseq().unwrap().number;
        let mut out = Vec::new();
        let v = self
            .r
            .register(&m, call_id, cseq, flow(port), self.at(secs), &mut out);
        (v, String::from_utf8(out).unwrap())
    }

    fn best(&self, secs: u64) -> Option<(String, u16)> {
        let mut c = Vec::new();
        let f = self.r.best(b"alice@example.com", self.at(secs), &mut c)?;
        Some((String::from_utf8(c).unwrap(), f.remote.port()))
    }
}

#[test]
fn binds_refreshes_and_unregisters() {
    let run = Run::new();
    let (v, c) = run.send(
        &register(
            "c1",
            1,
            "Contact: <sip:alice@192.168.1.2:5060>\r\nExpires: 600\r\n",
        ),
        0,
        4000,
    );
    assert_eq!(
        (v, c.as_str()),
        (Verdict::Bound, "<sip:alice@192.168.1.2:5060>;expires=600")
    );
    // The AOR's host case does not matter; its flow is where it came from.
    assert_eq!(
        run.best(10),
        Some(("sip:alice@192.168.1.2:5060".into(), 4000))
    );
    // A refresh from a new NAT port moves the flow; the expiry counts down.
    let (v, c) = run.send(
        &register(
            "c1",
            2,
            "Contact: <sip:alice@192.168.1.2:5060>;expires=300\r\n",
        ),
        100,
        4001,
    );
    assert_eq!(
        (v, c.as_str()),
        (Verdict::Bound, "<sip:alice@192.168.1.2:5060>;expires=300")
    );
    assert_eq!(run.best(101).map(|b| b.1), Some(4001));
    // A query (no Contact) lists what is held with the time left.
    let (v, c) = run.send(&register("c1", 3, ""), 200, 4001);
    assert_eq!(
        (v, c.as_str()),
        (Verdict::Bound, "<sip:alice@192.168.1.2:5060>;expires=200")
    );
    // Expiry: gone after its time.
    assert_eq!(
        run.best(399),
        Some(("sip:alice@192.168.1.2:5060".into(), 4001))
    );
    assert_eq!(run.best(400), None);
    // expires=0 removes it.
    run.send(
        &register("c1", 4, "Contact: <sip:alice@192.168.1.2:5060>\r\n"),
        500,
        4001,
    );
    assert!(run.best(501).is_some());
    let (v, c) = run.send(
        &register(
            "c1",
            5,
            "Contact: <sip:alice@192.168.1.2:5060>;expires=0\r\n",
        ),
        502,
        4001,
    );
    assert_eq!((v, c.as_str()), (Verdict::Bound, ""));
    assert_eq!(run.best(503), None);
    assert_eq!(run.r.store().count(), (0, 0));
}

#[test]
fn expiry_limits_and_defaults() {
    let run = Run::new();
    // Below min_expires: 423 with Min-Expires, nothing stored.
    let (v, _) = run.send(
        &register("c1", 1, "Contact: <sip:a@10.0.0.1>;expires=30\r\n"),
        0,
        1,
    );
    assert_eq!(v, Verdict::TooBrief(60));
    assert_eq!(run.r.store().count(), (0, 0));
    // Above max_expires: shortened. No expiry at all: default_expires.
    let (_, c) = run.send(
        &register("c1", 2, "Contact: <sip:a@10.0.0.1>;expires=99999\r\n"),
        0,
        1,
    );
    assert_eq!(c, "<sip:a@10.0.0.1>;expires=3600");
    let (_, c) = run.send(&register("c2", 1, "Contact: <sip:b@10.0.0.1>\r\n"), 0, 1);
    assert_eq!(
        c,
        "<sip:a@10.0.0.1>;expires=3600, <sip:b@10.0.0.1>;expires=1800"
    );
    // The Expires header is the default of contacts without a parameter.
    let (_, c) = run.send(
        &register("c3", 1, "Contact: <sip:c@10.0.0.1>\r\nExpires: 120\r\n"),
        0,
        1,
    );
    assert!(c.ends_with("<sip:c@10.0.0.1>;expires=120"), "{c}");
}

#[test]
fn several_contacts_q_values_and_the_limit() {
    let run = Run::new();
    let (v, c) = run.send(
        &register(
            "c1",
            1,
            "Contact: <sip:desk@10.0.0.1>;q=0.5, <sip:mobile@10.0.0.2>;q=0.9\r\n",
        ),
        0,
        1,
    );
    assert_eq!(v, Verdict::Bound);
    assert_eq!(
        c,
        "<sip:desk@10.0.0.1>;expires=1800;q=0.500, <sip:mobile@10.0.0.2>;expires=1800;q=0.900"
    );
    // The highest q wins; among equals, the newest.
    assert_eq!(run.best(1).unwrap().0, "sip:mobile@10.0.0.2");
    run.send(
        &register("c2", 1, "Contact: <sip:soft@10.0.0.3>;q=0.9\r\n"),
        5,
        2,
    );
    assert_eq!(run.best(6).unwrap().0, "sip:soft@10.0.0.3");
    // A contact named twice in one request counts, and is stored, once.
    let (v, _) = run.send(
        &register(
            "c9",
            1,
            "Contact: <sip:desk@10.0.0.1>;expires=0, <sip:desk@10.0.0.1>;expires=60\r\n",
        ),
        6,
        1,
    );
    assert_eq!(v, Verdict::Bound);
    assert_eq!(
        run.r.store().count(),
        (1, 2),
        "the first of the two: removed"
    );
    run.send(
        &register("c1", 2, "Contact: <sip:desk@10.0.0.1>;q=0.5\r\n"),
        6,
        1,
    );
    // max_contacts (3): a fourth is refused, and the request changes nothing.
    let (v, _) = run.send(
        &register(
            "c3",
            1,
            "Contact: <sip:x@10.0.0.4>, <sip:desk@10.0.0.1>;expires=0\r\n",
        ),
        7,
        3,
    );
    assert_eq!(v, Verdict::Bound, "one in, one out: still three");
    let (v, _) = run.send(&register("c4", 1, "Contact: <sip:y@10.0.0.5>\r\n"), 8, 3);
    assert_eq!(v, Verdict::Refused(403, "Too Many Contacts"));
    assert_eq!(run.r.store().count(), (1, 3));
    // Bad q-values and contacts are 400.
    let (v, _) = run.send(
        &register("c5", 1, "Contact: <sip:z@10.0.0.6>;q=1.5\r\n"),
        9,
        3,
    );
    assert_eq!(v, Verdict::Refused(400, "Bad q-value"));
    let (v, _) = run.send(&register("c5", 2, "Contact: <tel:+4420>\r\n"), 9, 3);
    assert_eq!(v, Verdict::Refused(400, "Bad Contact"));
}

#[test]
fn call_id_and_cseq_order() {
    let run = Run::new();
    run.send(&register("c1", 5, "Contact: <sip:a@10.0.0.1>\r\n"), 0, 1);
    // The same REGISTER again (its 200 lost): answered, nothing changed.
    let (v, c) = run.send(&register("c1", 5, "Contact: <sip:a@10.0.0.1>\r\n"), 1, 1);
    assert_eq!(
        (v, c.as_str()),
        (Verdict::Bound, "<sip:a@10.0.0.1>;expires=1799")
    );
    // The same Call-ID with a lower CSeq: refused, nothing changed.
    let (v, _) = run.send(
        &register("c1", 4, "Contact: <sip:a@10.0.0.1>;expires=0\r\n"),
        1,
        1,
    );
    assert_eq!(v, Verdict::Refused(500, "Out of Order Request"));
    assert!(run.best(2).is_some());
    // Another Call-ID (the phone rebooted) replaces it whatever its CSeq.
    let (v, _) = run.send(
        &register("c2", 1, "Contact: <sip:a@10.0.0.1>;expires=0\r\n"),
        3,
        1,
    );
    assert_eq!(v, Verdict::Bound);
    assert_eq!(run.best(4), None);
}

#[test]
fn wildcard_removes_all_and_is_checked() {
    let run = Run::new();
    run.send(
        &register("c1", 1, "Contact: <sip:a@10.0.0.1>, <sip:b@10.0.0.2>\r\n"),
        0,
        1,
    );
    let (v, _) = run.send(&register("c1", 2, "Contact: *\r\n"), 1, 1);
    assert_eq!(
        v,
        Verdict::Refused(400, "Invalid Wildcard"),
        "* needs Expires: 0"
    );
    let (v, _) = run.send(
        &register("c1", 2, "Contact: *, <sip:a@10.0.0.1>\r\nExpires: 0\r\n"),
        1,
        1,
    );
    assert_eq!(v, Verdict::Refused(400, "Invalid Wildcard"));
    let (v, _) = run.send(&register("c0", 1, "Contact: <sip:c@10.0.0.3>\r\n"), 1, 1);
    assert_eq!(v, Verdict::Bound);
    let (v, _) = run.send(&register("c0", 0, "Contact: *\r\nExpires: 0\r\n"), 1, 1);
    assert_eq!(v, Verdict::Refused(500, "Out of Order Request"));
    let (v, c) = run.send(&register("c1", 2, "Contact: *\r\nExpires: 0\r\n"), 1, 1);
    assert_eq!((v, c.as_str()), (Verdict::Bound, ""));
    assert_eq!(run.r.store().count(), (0, 0));
}

#[test]
fn only_allowed_sources_and_sip_aors() {
    let run = Run::new();
    let mut index = sip::HeaderIndex::new();
    let text = register("c1", 1, "Contact: <sip:a@10.0.0.1>\r\n");
    let m = sip::parse(text.as_bytes(), &mut index).unwrap();
    let mut out = Vec::new();
    let elsewhere = Outside {
        remote: SocketAddr::from(([192, 0, 2, 1], 1)),
        ..flow(1)
    };
    let v = run.r.register(&m, b"c1", 1, elsewhere, run.t0, &mut out);
    assert_eq!(v, Verdict::Refused(403, "Forbidden"));
    assert!(
        run.r.allows("::ffff:10.9.9.9".parse().unwrap()),
        "IPv4-mapped"
    );
    let tel = text.replace("To: <sip:alice@EXAMPLE.com>", "To: <tel:+442079460000>");
    let (v, _) = run.send(&tel, 0, 1);
    assert_eq!(v, Verdict::Refused(404, "Not Found"));
}

#[test]
fn keepalives_fall_due_and_silent_phones_are_removed() {
    let run = Run::new();
    run.send(&register("c1", 1, "Contact: <sip:a@10.0.0.1>\r\n"), 0, 1);
    let due = |secs| {
        let mut seen = Vec::new();
        let lost = run.r.keepalives(run.at(secs), &mut |aor, b| {
            seen.push((String::from_utf8_lossy(aor).into_owned(), b.unanswered));
        });
        (seen, lost)
    };
    assert_eq!(due(29), (vec![], 0), "not before the interval");
    assert_eq!(due(30), (vec![("alice@example.com".into(), 1)], 0));
    assert_eq!(due(31), (vec![], 0), "once per interval");
    // An answer starts the count over.
    // An answer to the keepalive outstanding (due next at 60), from where
    // it went, starts the count over; another contact, an older one, or
    // one from elsewhere does not.
    let phone = flow(1).remote;
    let aor = b"alice@example.com";
    assert!(!run.r.answered(aor, b"sip:b@10.0.0.1", 60, phone));
    assert!(!run.r.answered(aor, b"sip:a@10.0.0.1", 30, phone));
    let elsewhere = SocketAddr::from(([203, 0, 113, 10], 1));
    assert!(!run.r.answered(aor, b"sip:a@10.0.0.1", 60, elsewhere));
    assert!(run.r.answered(aor, b"sip:a@10.0.0.1", 60, phone));
    assert_eq!(due(60), (vec![("alice@example.com".into(), 1)], 0));
    assert_eq!(due(90), (vec![("alice@example.com".into(), 2)], 0));
    // Two unanswered in a row (keepalive_failures = 2): removed.
    assert_eq!(due(120), (vec![], 1));
    assert_eq!(run.best(121), None);
    // Interval 0: none at all.
    let mut quiet = settings();
    quiet.keepalive_interval = 0;
    let r = Registrar::new(&quiet, None, run.t0);
    let mut index = sip::HeaderIndex::new();
    let text = register("c1", 1, "Contact: <sip:a@10.0.0.1>\r\n");
    let m = sip::parse(text.as_bytes(), &mut index).unwrap();
    r.register(&m, b"c1", 1, flow(1), run.t0, &mut Vec::new());
    let mut n = 0;
    r.keepalives(run.t0 + Duration::from_secs(1000), &mut |_, _| n += 1);
    assert_eq!(n, 0);
    assert_eq!(r.store().count(), (1, 1));
}

#[test]
fn a_reload_keeps_the_bindings() {
    let run = Run::new();
    run.send(&register("c1", 1, "Contact: <sip:a@10.0.0.1>\r\n"), 0, 1);
    let next = Registrar::new(&settings(), Some(&run.r), Instant::now());
    let mut c = Vec::new();
    assert!(next.best(b"alice@example.com", run.at(1), &mut c).is_some());
}

#[test]
fn q_values_parse() {
    assert_eq!(q_value(b"0"), Some(0));
    assert_eq!(q_value(b"0.5"), Some(500));
    assert_eq!(q_value(b"0.123"), Some(123));
    assert_eq!(q_value(b"1"), Some(1000));
    assert_eq!(q_value(b"1.000"), Some(1000));
    assert_eq!(q_value(b"1.001"), None);
    assert_eq!(q_value(b"0.1234"), None);
    assert_eq!(q_value(b"2"), None);
    assert_eq!(q_value(b""), None);
    assert_eq!(number(b" 3600 "), Some(3600));
    assert_eq!(number(b"99999999999999"), Some(u32::MAX));
    assert_eq!(number(b"-1"), None);
}

#[test]
fn only_the_configured_domains() {
    let mut cfg = settings();
    cfg.domains = vec!["example.com".into()];
    let t0 = Instant::now();
    let run = Run {
        r: Registrar::new(&cfg, None, t0),
        t0,
    };
    // alice@EXAMPLE.com: the host's case does not matter.
    let (v, _) = run.send(&register("c1", 1, "Contact: <sip:a@10.0.0.1>\r\n"), 0, 1);
    assert_eq!(v, Verdict::Bound);
    let carrier = register("c2", 1, "Contact: <sip:a@10.0.0.1>\r\n").replace(
        "To: <sip:alice@EXAMPLE.com>",
        "To: <sip:+15550100@carrier.example>",
    );
    let (v, _) = run.send(&carrier, 0, 1);
    assert_eq!(v, Verdict::Refused(404, "Not Found"));
    let uri = |s: &'static str| Uri::parse(s.as_bytes()).unwrap();
    assert!(run.r.serves(&uri("sip:bob@Example.Com")));
    assert!(!run.r.serves(&uri("sip:+15550100@carrier.example")));
}
