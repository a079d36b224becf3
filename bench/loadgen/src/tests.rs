//! The UAC and the UAS against each other in memory, with simulated time:
//! directly, through a minimal stateless proxy (its own Via, a
//! Record-Route, routing by Route / Request-URI), and with lost messages.

use super::*;
use std::collections::VecDeque;

const U: &str = "127.0.0.1:5062";
const P: &str = "127.0.0.1:5060";
const A0: &str = "127.0.0.1:5070";
const A1: &str = "127.0.0.1:5071";
/// "Socket" of datagrams the fake proxy sends.
const FROM_PROXY: usize = usize::MAX;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[derive(Default)]
struct Mem {
    q: VecDeque<(usize, SocketAddr, Vec<u8>)>,
}

impl Outbox for Mem {
    fn send(&mut self, sock: usize, to: SocketAddr, build: impl FnOnce(&mut Vec<u8>)) {
        let mut v = Vec::new();
        build(&mut v);
        self.q.push_back((sock, to, v));
    }
}

type Filter = Box<dyn FnMut(&str) -> bool>;

struct World {
    uac: Uac,
    uas: Uas,
    timers: Timers,
    out: Mem,
    now: u64,
    /// Route through the fake proxy at P (else the UAC calls A0 directly).
    proxied: bool,
    /// Says which datagrams are lost.
    lose: Filter,
    /// What the proxy forwarded, first lines.
    proxy_log: Vec<String>,
    /// When set, the proxy answers initial INVITEs with this status.
    reject: Option<u16>,
    calls_seen: u64,
}

impl World {
    fn new(proxied: bool, hold_ms: u64) -> World {
        let mut timers = Timers::new();
        let uac = Uac::new(
            UacConfig {
                sock: 0,
                local: a(U),
                proxy: if proxied { a(P) } else { a(A0) },
                allowed: vec![a(P), a(A0), a(A1)],
                service: "service".into(),
                timeout: Duration::from_secs(8),
                hold: Duration::from_millis(hold_ms),
                run: 77,
                transport: "UDP",
                register: false,
            },
            &mut timers,
        );
        let uas = Uas::new(
            UasConfig {
                socks: vec![(1, a(A0)), (2, a(A1))],
                ack_timeout: Duration::from_secs(8),
                bye_timeout: Duration::from_secs(8) + Duration::from_millis(hold_ms),
                run: 99,
                transport: "UDP",
            },
            &mut timers,
        );
        World {
            uac,
            uas,
            timers,
            out: Mem::default(),
            now: 0,
            proxied,
            lose: Box::new(|_| false),
            proxy_log: Vec::new(),
            reject: None,
            calls_seen: 0,
        }
    }

    fn addr_of(sock: usize) -> SocketAddr {
        match sock {
            0 => a(U),
            1 => a(A0),
            2 => a(A1),
            _ => a(P),
        }
    }

    /// Delivers every queued datagram (and whatever that produces).
    fn deliver(&mut self) {
        let mut index = HeaderIndex::new();
        while let Some((sock, to, bytes)) = self.out.q.pop_front() {
            let text = String::from_utf8(bytes.clone()).unwrap();
            if (self.lose)(&text) {
                continue;
            }
            let from = Self::addr_of(sock);
            if self.proxied && to == a(P) && sock != FROM_PROXY {
                self.proxy(&text, from);
                continue;
            }
            let m = sip::parse(&bytes, &mut index).unwrap();
            if to == a(U) {
                self.uac
                    .on_message(self.now, &m, &mut self.timers, &mut self.out);
            } else if to == a(A0) || to == a(A1) {
                let ep = usize::from(to == a(A1));
                self.uas
                    .on_message(self.now, ep, &m, from, &mut self.timers, &mut self.out);
            } else {
                panic!("datagram to {to}");
            }
        }
    }

    /// A minimal stateless proxy at P.
    fn proxy(&mut self, text: &str, from: SocketAddr) {
        let (first, rest) = text.split_once("\r\n").unwrap();
        if first.starts_with("SIP/2.0") {
            // Response: pop our Via, send to the next one's sent-by.
            let (top, rest) = rest.split_once("\r\n").unwrap();
            assert!(top.contains(P), "top Via is not the proxy's: {top}");
            let next = rest
                .lines()
                .find(|l| l.starts_with("Via:"))
                .expect("a Via for the UAC");
            let mut idx = HeaderIndex::new();
            let fake = format!("OPTIONS sip:x SIP/2.0\r\n{next}\r\n\r\n");
            let m = sip::parse(fake.as_bytes(), &mut idx).unwrap();
            let via = m.top_via().unwrap().1;
            let dest = SocketAddr::new(via.host.ip().unwrap(), via.port.unwrap());
            self.out
                .q
                .push_back((FROM_PROXY, dest, format!("{first}\r\n{rest}").into_bytes()));
            return;
        }
        self.proxy_log.push(first.to_string());
        let via = "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKproxy\r\n";
        if let Some(route) = rest.lines().find(|l| l.starts_with("Route:")) {
            // In-dialog: our Route goes, the Request-URI says where to.
            assert!(route.contains(P), "{route}");
            let uri = first.split(' ').nth(1).unwrap();
            let dest = msg::uri_addr(uri.as_bytes()).unwrap();
            let rest: String = rest
                .split_inclusive("\r\n")
                .filter(|l| !l.starts_with("Route:"))
                .collect();
            self.out.q.push_back((
                FROM_PROXY,
                dest,
                format!("{first}\r\n{via}{rest}").into_bytes(),
            ));
            return;
        }
        if let Some(code) = self.reject {
            if first.starts_with("INVITE") {
                let mut idx = HeaderIndex::new();
                let m = sip::parse(text.as_bytes(), &mut idx).unwrap();
                let mut out = Vec::new();
                msg::response(
                    &mut out,
                    code,
                    b"Nope",
                    &m,
                    Some((1, 1, 1)),
                    false,
                    None,
                    None,
                );
                self.out.q.push_back((FROM_PROXY, from, out));
            }
            return;
        }
        // Initial request: alternate between the two servers, Record-Route.
        let dest = if self.calls_seen.is_multiple_of(2) {
            a(A0)
        } else {
            a(A1)
        };
        self.calls_seen += 1;
        let rr = "Record-Route: <sip:127.0.0.1:5060;lr;tok=x>\r\n";
        self.out.q.push_back((
            FROM_PROXY,
            dest,
            format!("{first}\r\n{via}{rr}{rest}").into_bytes(),
        ));
    }

    /// Runs until `until` ns: deliver, then jump to the next timer.
    fn run(&mut self, until: u64) {
        loop {
            self.deliver();
            match self.timers.pop_due(self.now) {
                Some(t) => {
                    if matches!(
                        t.kind,
                        Kind::UacRetransmit
                            | Kind::UacInviteTimeout
                            | Kind::UacByeTimeout
                            | Kind::UacHangUp
                    ) {
                        self.uac
                            .on_timer(self.now, t, &mut self.timers, &mut self.out);
                    } else {
                        self.uas
                            .on_timer(self.now, t, &mut self.timers, &mut self.out);
                    }
                }
                None => match self.timers.next_deadline() {
                    Some(at) if at <= until => self.now = at,
                    _ => {
                        self.now = until;
                        return;
                    }
                },
            }
        }
    }

    fn start(&mut self, n: usize) {
        for _ in 0..n {
            self.uac
                .start_call(self.now, &mut self.timers, &mut self.out);
            self.now += 1_000;
        }
    }
}

const SEC: u64 = 1_000_000_000;

#[test]
fn direct_calls_complete() {
    let mut w = World::new(false, 0);
    w.start(10);
    w.run(20 * SEC);
    assert_eq!(w.uac.stats.ok, 10, "{:?}", w.uac.stats);
    assert_eq!(w.uac.stats.failed(), 0);
    assert_eq!(w.uac.active(), 0);
    assert_eq!(w.uac.stats.provisional, 20);
    assert_eq!(w.uas.stats.completed, 10, "{:?}", w.uas.stats);
    assert_eq!(w.uas.stats.failed(), 0);
    assert_eq!(w.uas.stats.per_endpoint, [10, 0]);
    assert_eq!(w.uac.rtd.count(), 10);
    // Nothing was retransmitted and every timer has run out.
    assert_eq!(w.uac.stats.retrans_invite + w.uac.stats.retrans_bye, 0);
    assert_eq!(w.uas.stats.retrans_200, 0);
    assert_eq!(w.timers.len(), 0);
    assert_eq!(w.uas.active(), 0);
}

#[test]
fn proxied_calls_follow_the_record_route() {
    let mut w = World::new(true, 0);
    w.start(10);
    w.run(20 * SEC);
    assert_eq!(w.uac.stats.ok, 10, "{:?}", w.uac.stats);
    assert_eq!(w.uas.stats.completed, 10, "{:?}", w.uas.stats);
    assert_eq!(w.uas.stats.per_endpoint, [5, 5]);
    // INVITE, ACK and BYE of every call went through the proxy, ACK and
    // BYE addressed to the UAS that answered.
    let count = |p: &str| w.proxy_log.iter().filter(|l| l.starts_with(p)).count();
    assert_eq!(count("INVITE sip:service@127.0.0.1:5060 "), 10);
    assert_eq!(count("ACK sip:127.0.0.1:507"), 10);
    assert_eq!(count("BYE sip:127.0.0.1:507"), 10);
    assert_eq!(w.uac.stats.stray + w.uac.stats.junk, 0);
    assert_eq!(w.uas.stats.stray + w.uas.stats.junk, 0);
}

/// Loses the first datagram whose text starts with `prefix` and contains
/// `also`.
fn lose_first(prefix: &'static str, also: &'static str) -> Filter {
    let mut done = false;
    Box::new(move |t: &str| {
        if !done && t.starts_with(prefix) && t.contains(also) {
            done = true;
            return true;
        }
        false
    })
}

#[test]
fn a_lost_invite_is_retransmitted_after_500_ms() {
    let mut w = World::new(true, 0);
    w.lose = lose_first("INVITE", "");
    w.start(1);
    w.run(20 * SEC);
    assert_eq!(w.uac.stats.ok, 1);
    assert_eq!(w.uac.stats.retrans_invite, 1);
    let rtd = w.uac.rtd.max();
    assert!((500_000..=510_000).contains(&rtd), "{rtd}");
}

#[test]
fn a_lost_200_is_retransmitted_by_the_uas_and_acked_again() {
    let mut w = World::new(true, 0);
    w.lose = lose_first("SIP/2.0 200", "INVITE");
    w.start(1);
    w.run(20 * SEC);
    assert_eq!(w.uac.stats.ok, 1, "{:?}", w.uac.stats);
    assert_eq!(w.uas.stats.retrans_200, 1);
    assert_eq!(w.uas.stats.failed(), 0);
}

#[test]
fn a_lost_bye_is_retransmitted_and_its_retransmission_answered() {
    let mut w = World::new(true, 0);
    w.lose = lose_first("SIP/2.0 200", "BYE");
    w.start(1);
    w.run(20 * SEC);
    assert_eq!(w.uac.stats.ok, 1);
    assert_eq!(w.uac.stats.retrans_bye, 1);
    assert_eq!(w.uas.stats.bye_retrans, 1);
    assert_eq!(w.uas.stats.completed, 1);
}

#[test]
fn a_lost_ack_during_a_hold_is_recovered_by_the_200_retransmission() {
    let mut w = World::new(true, 2_000);
    w.lose = lose_first("ACK", "");
    w.start(1);
    w.run(20 * SEC);
    assert_eq!(w.uac.stats.acks_resent, 1);
    assert_eq!(w.uac.stats.ok, 1, "{:?}", w.uac.stats);
    assert_eq!(w.uas.stats.completed, 1, "{:?}", w.uas.stats);
}

#[test]
fn a_bye_before_the_ack_fails_at_the_uas() {
    let mut w = World::new(true, 0);
    w.lose = lose_first("ACK", "");
    w.start(1);
    w.run(20 * SEC);
    assert_eq!(w.uac.stats.ok, 1);
    assert_eq!(w.uas.stats.no_ack, 1);
    assert_eq!(w.uas.stats.failed(), 1);
}

#[test]
fn no_answer_times_out_after_four_retransmissions() {
    let mut w = World::new(true, 0);
    w.lose = Box::new(|t: &str| t.starts_with("INVITE"));
    w.start(3);
    w.run(7 * SEC);
    assert_eq!(w.uac.stats.retrans_invite, 3 * 3); // 0.5, 1.5, 3.5 s
    assert_eq!(w.uac.active(), 3);
    w.run(20 * SEC);
    assert_eq!(w.uac.stats.retrans_invite, 3 * 4); // and 7.5 s
    assert_eq!(w.uac.stats.timeout_invite, 3);
    assert_eq!(w.uac.stats.failed(), 3);
    assert_eq!(w.uac.active(), 0);
}

#[test]
fn a_rejected_call_fails_and_is_acked() {
    let mut w = World::new(true, 0);
    w.reject = Some(503);
    w.start(2);
    w.run(20 * SEC);
    assert_eq!(w.uac.stats.non2xx, 2);
    assert_eq!(w.uac.stats.codes.get(&503), Some(&2));
    let acks = w.proxy_log.iter().filter(|l| l.starts_with("ACK ")).count();
    assert_eq!(acks, 2);
}

#[test]
fn usage_is_checked() {
    let parse = |args: &[&str]| {
        let mut v = vec!["sipload"];
        v.extend(args);
        Args::try_parse_from(v)
            .map_err(|e| e.to_string())
            .and_then(plan)
    };
    assert!(parse(&["--role", "uac"]).is_err()); // no --proxy
    assert!(parse(&["--proxy", "127.0.0.1:5060", "--rate", "0"]).is_err());
    assert!(parse(&["--proxy", "127.0.0.1:5060", "--calls", "0"]).is_err());
    assert!(parse(&["--proxy", "localhost:5060"]).is_err());
    assert!(parse(&[
        "--proxy",
        "127.0.0.1:5060",
        "--uas",
        "127.0.0.1:5070",
        "--uas",
        "127.0.0.1:5070"
    ])
    .is_err());
    assert!(parse(&["--proxy", "127.0.0.1:5060", "--service", "a b"]).is_err());
    let p = parse(&[
        "--proxy",
        "127.0.0.1:5060",
        "--rate",
        "100",
        "--calls",
        "1000",
    ])
    .unwrap();
    assert_eq!(p.uas.len(), 2);
    assert_eq!(p.duration, Duration::from_secs(36));
    let p = parse(&["--role", "uas", "--uas", "127.0.0.1:6000"]).unwrap();
    assert_eq!(p.uas, [a("127.0.0.1:6000")]);
    assert!(p.proxy.is_none());
}

#[test]
fn registrations_are_retransmitted_and_counted_on_their_2xx() {
    let mut timers = Timers::new();
    let mut uac = Uac::new(
        UacConfig {
            sock: 0,
            local: a(U),
            proxy: a(P),
            allowed: vec![a(P)],
            service: "service".into(),
            timeout: Duration::from_secs(8),
            hold: Duration::ZERO,
            run: 77,
            transport: "UDP",
            register: true,
        },
        &mut timers,
    );
    let mut out = Mem::default();
    uac.start_call(0, &mut timers, &mut out);
    uac.start_call(0, &mut timers, &mut out);
    // The first REGISTER is lost; Timer E sends it again at T1.
    let (_, to, lost) = out.q.pop_front().unwrap();
    assert_eq!(to, a(P));
    assert!(lost.starts_with(b"REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"));
    let half_second = uac::T1.as_nanos() as u64;
    while let Some(t) = timers.pop_due(half_second) {
        uac.on_timer(half_second, t, &mut timers, &mut out);
    }
    // Neither has been answered by then: both go again.
    assert_eq!(uac.stats.retrans_invite, 2);
    let mut index = HeaderIndex::new();
    let mut aors = Vec::new();
    let mut codes = [200, 403].into_iter();
    while let Some((_, _, bytes)) = out.q.pop_front() {
        let req = sip::parse(&bytes, &mut index).unwrap();
        assert_eq!(req.method_bytes(), b"REGISTER");
        assert_eq!(req.uri(), b"sip:127.0.0.1:5060");
        let to = req.first_value(sip::HeaderName::To).unwrap().to_vec();
        let contact = req.first_value(sip::HeaderName::Contact).unwrap();
        assert!(contact.ends_with(b"@127.0.0.1:5062>;expires=3600"));
        aors.push(to);
        let mut answer = Vec::new();
        let code = codes.next().unwrap_or(500);
        msg::response(&mut answer, code, b"X", &req, None, false, None, None);
        let mut answer_index = HeaderIndex::new();
        let m = sip::parse(&answer, &mut answer_index).unwrap();
        uac.on_message(half_second, &m, &mut timers, &mut out);
    }
    assert_ne!(
        aors[0], aors[1],
        "each REGISTER is another address of record"
    );
    // The second's 200, the first's 403, and a 500 to the second's
    // retransmission, after it was done.
    assert_eq!(aors.len(), 3);
    assert_eq!((uac.stats.ok, uac.stats.non2xx, uac.active()), (1, 1, 0));
    assert_eq!(uac.stats.stray, 1);
    assert_eq!(uac.stats.codes.get(&403), Some(&1));
}
