//! Every timer of RFC 3261 §17 (and RFC 6026's L and M) as a deterministic
//! test: time is an argument, nothing sleeps.

use super::*;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the timer loop below needs of a transaction of either side.
trait Timed {
    fn next_deadline(&self) -> Option<Instant>;
    fn on_timer(&mut self, t: &Timers, now: Instant) -> OnTimer;
}

impl Timed for ClientTx {
    fn next_deadline(&self) -> Option<Instant> {
        ClientTx::next_deadline(self)
    }
    fn on_timer(&mut self, t: &Timers, now: Instant) -> OnTimer {
        ClientTx::on_timer(self, t, now)
    }
}

impl Timed for ServerTx {
    fn next_deadline(&self) -> Option<Instant> {
        ServerTx::next_deadline(self)
    }
    fn on_timer(&mut self, t: &Timers, now: Instant) -> OnTimer {
        ServerTx::on_timer(self, t, now)
    }
}

/// Fires every timer of `tx` up to `until`, returning when each fired (in
/// ms from `start`) and what it said: the caller's timer loop in miniature.
fn run(tx: &mut impl Timed, t: &Timers, start: Instant, until: Duration) -> Vec<(u64, OnTimer)> {
    let mut out = Vec::new();
    while let Some(at) = tx.next_deadline() {
        if at > start + until {
            break;
        }
        let r = tx.on_timer(t, at);
        out.push(((at - start).as_millis() as u64, r));
    }
    out
}

fn retransmits(events: &[(u64, OnTimer)]) -> Vec<u64> {
    events
        .iter()
        .filter(|(_, r)| *r == OnTimer::Retransmit)
        .map(|(at, _)| *at)
        .collect()
}

#[test]
fn timer_a_doubles_and_timer_b_gives_up_after_64_t1() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ClientTx::start(Kind::Invite, &t, t0);
    let ev = run(&mut tx, &t, t0, Duration::from_secs(60));
    // A at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; B at 32 s.
    assert_eq!(retransmits(&ev), vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(ev.last(), Some(&(32_000, OnTimer::TimedOut)));
    assert!(tx.is_terminated());
    assert_eq!(tx.next_deadline(), None);
}

#[test]
fn a_provisional_stops_timers_a_and_b() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ClientTx::start(Kind::Invite, &t, t0);
    assert_eq!(tx.on_timer(&t, t0 + ms(500)), OnTimer::Retransmit);
    assert_eq!(tx.on_response(180, &t, t0 + ms(600)), OnResponse::PassUp);
    assert_eq!(tx.state(), ClientState::Proceeding);
    // Nothing more from the transaction itself: the proxy's Timer C decides.
    assert_eq!(tx.next_deadline(), None);
    assert_eq!(tx.on_response(183, &t, t0 + ms(700)), OnResponse::PassUp);
    assert!(tx.is_pending());
}

#[test]
fn a_non_2xx_final_is_acked_once_passed_up_and_its_retransmissions_acked_again() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ClientTx::start(Kind::Invite, &t, t0);
    assert_eq!(tx.on_response(100, &t, t0), OnResponse::PassUp);
    assert_eq!(
        tx.on_response(486, &t, t0 + ms(10)),
        OnResponse::PassUpAndAck
    );
    assert_eq!(tx.state(), ClientState::Completed);
    assert_eq!(tx.on_response(486, &t, t0 + ms(510)), OnResponse::Ack);
    // A late provisional or 2xx changes nothing.
    assert_eq!(tx.on_response(180, &t, t0 + ms(600)), OnResponse::Absorb);
    assert_eq!(tx.on_response(200, &t, t0 + ms(600)), OnResponse::Absorb);
    // Timer D: `linger` after the final, then terminated (not a timeout).
    assert_eq!(tx.next_deadline(), Some(t0 + ms(10) + t.linger));
    assert_eq!(tx.on_timer(&t, t0 + ms(10) + t.linger), OnTimer::Terminated);
    assert_eq!(tx.on_response(486, &t, t0 + ms(40_000)), OnResponse::Absorb);
}

#[test]
fn a_final_straight_from_calling_also_gets_its_ack() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ClientTx::start(Kind::Invite, &t, t0);
    assert_eq!(
        tx.on_response(503, &t, t0 + ms(5)),
        OnResponse::PassUpAndAck
    );
    // No more retransmissions of the INVITE.
    let ev = run(&mut tx, &t, t0, Duration::from_secs(60));
    assert_eq!(ev, vec![(5_005, OnTimer::Terminated)]);
}

#[test]
fn timer_m_keeps_passing_2xx_up_after_the_first() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ClientTx::start(Kind::Invite, &t, t0);
    assert_eq!(tx.on_response(200, &t, t0 + ms(20)), OnResponse::PassUp);
    assert_eq!(tx.state(), ClientState::Accepted);
    assert_eq!(tx.on_response(200, &t, t0 + ms(520)), OnResponse::PassUp);
    assert_eq!(tx.on_response(486, &t, t0 + ms(600)), OnResponse::Absorb);
    assert_eq!(tx.on_timer(&t, t0 + ms(20) + t.linger), OnTimer::Terminated);
}

#[test]
fn timer_e_doubles_to_t2_and_timer_f_gives_up() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ClientTx::start(Kind::NonInvite, &t, t0);
    let ev = run(&mut tx, &t, t0, Duration::from_secs(60));
    // E at 0.5, 1.5, 3.5, 7.5, then every 4 s; F at 32 s.
    assert_eq!(
        retransmits(&ev),
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(ev.last(), Some(&(32_000, OnTimer::TimedOut)));
}

#[test]
fn timer_e_runs_at_t2_once_proceeding() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ClientTx::start(Kind::NonInvite, &t, t0);
    assert_eq!(tx.on_response(100, &t, t0 + ms(100)), OnResponse::PassUp);
    assert_eq!(tx.state(), ClientState::Proceeding);
    let ev = run(&mut tx, &t, t0, Duration::from_secs(10));
    // The first E (0.5 s) was set before the 100; after it, every T2.
    assert_eq!(retransmits(&ev), vec![500, 4500, 8500]);
}

#[test]
fn timer_k_absorbs_final_retransmissions_for_t4() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ClientTx::start(Kind::NonInvite, &t, t0);
    assert_eq!(tx.on_response(200, &t, t0 + ms(30)), OnResponse::PassUp);
    assert_eq!(tx.state(), ClientState::Completed);
    assert_eq!(tx.on_response(200, &t, t0 + ms(530)), OnResponse::Absorb);
    let ev = run(&mut tx, &t, t0, Duration::from_secs(60));
    assert_eq!(ev, vec![(5030, OnTimer::Terminated)]);
}

#[test]
fn a_client_that_stopped_retransmitting_still_times_out_and_matches() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ClientTx::start(Kind::Invite, &t, t0);
    tx.stop_retransmitting();
    assert_eq!(tx.next_deadline(), Some(t0 + t.long()));
    assert_eq!(tx.on_response(180, &t, t0 + ms(3000)), OnResponse::PassUp);
}

#[test]
fn invite_server_resends_the_last_provisional_then_timer_g_and_h() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ServerTx::start(Kind::Invite);
    assert_eq!(tx.state(), ServerState::Proceeding);
    assert_eq!(tx.on_retransmission(), OnRequest::Resend);
    tx.sent_final(486, &t, t0);
    assert_eq!(tx.state(), ServerState::Completed);
    assert_eq!(tx.on_retransmission(), OnRequest::Resend);
    let ev = run(&mut tx, &t, t0, Duration::from_secs(60));
    // G at 0.5, 1.5, 3.5, 7.5, then every T2; H at 32 s with no ACK.
    assert_eq!(
        retransmits(&ev),
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(ev.last(), Some(&(32_000, OnTimer::TimedOut)));
}

#[test]
fn the_ack_confirms_and_timer_i_ends_the_invite_server() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ServerTx::start(Kind::Invite);
    tx.sent_final(404, &t, t0);
    assert!(tx.on_ack(&t, t0 + ms(50)));
    assert_eq!(tx.state(), ServerState::Confirmed);
    // No more retransmissions of the 404; more ACKs are absorbed.
    assert!(tx.on_ack(&t, t0 + ms(60)));
    assert_eq!(tx.on_retransmission(), OnRequest::Absorb);
    let ev = run(&mut tx, &t, t0, Duration::from_secs(60));
    assert_eq!(ev, vec![(5050, OnTimer::Terminated)]);
}

#[test]
fn timer_l_absorbs_invite_retransmissions_after_a_2xx() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ServerTx::start(Kind::Invite);
    tx.sent_final(200, &t, t0);
    assert_eq!(tx.state(), ServerState::Accepted);
    assert_eq!(tx.on_retransmission(), OnRequest::Absorb);
    // The ACK of a 2xx is end to end: not ours to absorb.
    assert!(!tx.on_ack(&t, t0 + ms(10)));
    let ev = run(&mut tx, &t, t0, Duration::from_secs(60));
    assert_eq!(ev, vec![(5_000, OnTimer::Terminated)]);
}

#[test]
fn non_invite_server_absorbs_until_it_answers_then_timer_j() {
    let t = Timers::default();
    let t0 = Instant::now();
    let mut tx = ServerTx::start(Kind::NonInvite);
    assert_eq!(tx.state(), ServerState::Trying);
    assert_eq!(tx.on_retransmission(), OnRequest::Absorb);
    tx.sent_provisional();
    assert_eq!(tx.on_retransmission(), OnRequest::Resend);
    tx.sent_final(200, &t, t0);
    assert_eq!(tx.state(), ServerState::Completed);
    assert_eq!(tx.on_retransmission(), OnRequest::Resend);
    // A second final is ignored: the first one stands.
    tx.sent_final(500, &t, t0 + ms(1));
    let ev = run(&mut tx, &t, t0, Duration::from_secs(60));
    assert_eq!(ev, vec![(5_000, OnTimer::Terminated)]);
    assert!(tx.is_terminated());
}

#[test]
fn configured_timers_scale_every_interval() {
    let t = Timers {
        t1: ms(50),
        t2: ms(400),
        t4: ms(500),
        linger: ms(700),
    };
    let t0 = Instant::now();
    let mut tx = ClientTx::start(Kind::NonInvite, &t, t0);
    let ev = run(&mut tx, &t, t0, Duration::from_secs(10));
    assert_eq!(&retransmits(&ev)[..5], &[50, 150, 350, 750, 1150]);
    assert_eq!(ev.last(), Some(&(3200, OnTimer::TimedOut)));
}

#[test]
fn linger_set_to_64_t1_gives_the_rfc_timers() {
    let t = Timers {
        linger: Timers::default().long(),
        ..Timers::default()
    };
    let t0 = Instant::now();
    let mut server = ServerTx::start(Kind::NonInvite);
    server.sent_final(200, &t, t0);
    assert_eq!(
        run(&mut server, &t, t0, Duration::from_secs(60)),
        vec![(32_000, OnTimer::Terminated)]
    );
    let mut client = ClientTx::start(Kind::Invite, &t, t0);
    client.on_response(200, &t, t0);
    assert_eq!(
        run(&mut client, &t, t0, Duration::from_secs(60)),
        vec![(32_000, OnTimer::Terminated)]
    );
}
