//! One destination's health state machine: probe results in, state and a
//! human reason out. Pure: no clock, no I/O (time comes in with each result).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::config::Probe;

/// Whether a destination gets new requests, as the operator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Used: probes answer (or have not failed enough yet).
    Active,
    /// Not used: probes failed `inactive_threshold` times in a row, or the
    /// operator took it out.
    Inactive,
    /// Not used until `active_threshold` good probes in a row: the operator
    /// wants it checked before it takes traffic again.
    Probing,
}

impl State {
    /// Every state, in the order the API documents them.
    pub const ALL: [State; 3] = [State::Active, State::Inactive, State::Probing];

    /// The name in the admin API and `sipedge ctl`.
    pub fn name(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Inactive => "inactive",
            State::Probing => "probing",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text was not one of `active`, `inactive`, `probing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownState;

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown state (expected active, inactive or probing)")
    }
}

impl std::error::Error for UnknownState {}

impl FromStr for State {
    type Err = UnknownState;
    /// Parses a state name as the admin API takes it (exact, lowercase).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or(UnknownState)
    }
}

/// How one probe ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// A final response whose code counts as alive (`alive_codes`).
    Alive {
        /// The status code.
        code: u16,
        /// Time from sending the probe to the reply.
        rtt: Duration,
    },
    /// A final response whose code does not count as alive: the server
    /// answers, but not in a way that says it can take calls.
    Dead {
        /// The status code.
        code: u16,
        /// Time from sending the probe to the reply.
        rtt: Duration,
    },
    /// No final response within the timeout.
    Timeout,
    /// The probe could not be sent, or the network said the destination
    /// cannot be reached (send error, ICMP); the text says why.
    Unreachable(String),
}

impl ProbeResult {
    /// Whether the probe counts as good.
    pub fn ok(&self) -> bool {
        matches!(self, ProbeResult::Alive { .. })
    }

    /// The round-trip time, when a reply came.
    pub fn rtt(&self) -> Option<Duration> {
        match self {
            ProbeResult::Alive { rtt, .. } | ProbeResult::Dead { rtt, .. } => Some(*rtt),
            ProbeResult::Timeout | ProbeResult::Unreachable(_) => None,
        }
    }

    /// The result in words: `200 OK`, `timeout after 2 s`,
    /// `unreachable: connection refused`. `timeout` is the configured one.
    fn text(&self, timeout: Duration) -> String {
        match self {
            ProbeResult::Alive { code, .. } | ProbeResult::Dead { code, .. } => status_text(*code),
            ProbeResult::Timeout => format!("timeout after {}", human(timeout)),
            ProbeResult::Unreachable(why) => format!("unreachable: {why}"),
        }
    }
}

/// The last probe result of a destination, for the admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRecord {
    /// When the result came (reply, timeout or error).
    pub at: Instant,
    /// The result in words: `200 OK`, `timeout after 2 s`, …
    pub result: String,
    /// Whether it counted as good.
    pub ok: bool,
}

/// Weight of a new latency sample in the moving average.
const EWMA_ALPHA: f64 = 0.3;

/// One destination's health: consecutive results decide its [`State`]
/// (pingora style: state flips only after N results in a row), and the
/// operator can override it (like Kamailio's `dispatcher.set_state`).
#[derive(Clone, Debug)]
pub struct Tracker {
    state: State,
    /// Held inactive by the operator: probes do not change the state.
    manual: bool,
    reason: String,
    /// Good probes in a row.
    good: u32,
    /// Failed probes in a row.
    bad: u32,
    /// (last, moving average) round-trip time.
    latency: Option<(Duration, Duration)>,
    /// Every answered probe's round trip.
    latencies: super::Latencies,
    last_probe: Option<ProbeRecord>,
    sent: u64,
    failed: u64,
    inactive_threshold: u32,
    active_threshold: u32,
    timeout: Duration,
}

impl Tracker {
    /// A destination not probed yet: active (trusted until a probe says
    /// otherwise), with `probe`'s thresholds.
    pub fn new(probe: &Probe) -> Tracker {
        Tracker {
            state: State::Active,
            manual: false,
            reason: if probe.enabled {
                "not probed yet".to_owned()
            } else {
                "probing disabled".to_owned()
            },
            good: 0,
            bad: 0,
            latency: None,
            latencies: super::Latencies::default(),
            last_probe: None,
            sent: 0,
            failed: 0,
            inactive_threshold: probe.inactive_threshold.max(1),
            active_threshold: probe.active_threshold.max(1),
            timeout: probe.timeout,
        }
    }

    /// Takes `probe`'s thresholds and timeout (a reload), keeping state,
    /// history and an operator's hold.
    pub fn reconfigure(&mut self, probe: &Probe) {
        self.inactive_threshold = probe.inactive_threshold.max(1);
        self.active_threshold = probe.active_threshold.max(1);
        self.timeout = probe.timeout;
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the destination may get new requests: only when active.
    pub fn usable(&self) -> bool {
        self.state == State::Active
    }

    /// True while the operator holds it inactive: probes still run (latency
    /// and last probe stay current) but do not change the state.
    pub fn manual(&self) -> bool {
        self.manual
    }

    /// Why it is in its state, for humans: `probe: 200 OK in 3.1 ms`,
    /// `3 probes in a row failed (last: timeout after 2 s)`, …
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The last round-trip time and its moving average (EWMA, alpha 0.3);
    /// `None` until a reply came.
    pub fn latency(&self) -> Option<(Duration, Duration)> {
        self.latency
    }

    /// Every answered probe's round trip, bucketed.
    pub fn latencies(&self) -> &super::Latencies {
        &self.latencies
    }

    /// The last probe result, if any.
    pub fn last_probe(&self) -> Option<&ProbeRecord> {
        self.last_probe.as_ref()
    }

    /// Probes sent and probes failed since start.
    pub fn probes(&self) -> (u64, u64) {
        (self.sent, self.failed)
    }

    /// Whether the next probe should come after the timeout rather than the
    /// interval: the last probe failed but the destination is not inactive
    /// yet, so it is confirmed dead quickly rather than after several intervals.
    pub fn retry_soon(&self) -> bool {
        self.bad > 0 && self.state != State::Inactive
    }

    /// Counts a probe sent.
    pub fn note_sent(&mut self) {
        self.sent += 1;
    }

    /// Takes a probe result received at `now`; returns whether the state changed.
    pub fn record(&mut self, result: &ProbeResult, now: Instant) -> bool {
        let text = result.text(self.timeout);
        let detail = match result.rtt() {
            Some(rtt) => format!("{text} in {}", human(rtt)),
            None => text.clone(),
        };
        if let Some(rtt) = result.rtt() {
            self.latencies.observe(rtt);
            self.latency = Some(match self.latency {
                None => (rtt, rtt),
                Some((_, avg)) => {
                    let avg = avg.as_secs_f64();
                    let next = avg + EWMA_ALPHA * (rtt.as_secs_f64() - avg);
                    (rtt, Duration::from_secs_f64(next.max(0.0)))
                }
            });
        }
        let ok = result.ok();
        self.last_probe = Some(ProbeRecord {
            at: now,
            result: text,
            ok,
        });
        if ok {
            self.good = self.good.saturating_add(1);
            self.bad = 0;
        } else {
            self.failed += 1;
            self.bad = self.bad.saturating_add(1);
            self.good = 0;
        }
        if self.manual {
            return false;
        }

        let before = self.state;
        if ok {
            if self.state == State::Active || self.good >= self.active_threshold {
                self.state = State::Active;
                self.reason = format!("probe: {detail}");
            } else {
                self.reason = format!(
                    "{} of {} good probes in a row needed to come back (last: {detail})",
                    self.good, self.active_threshold
                );
            }
        } else if self.state != State::Inactive && self.bad < self.inactive_threshold {
            self.reason = format!(
                "{}; inactive after {} in a row",
                failures(self.bad, &detail),
                self.inactive_threshold
            );
        } else {
            self.state = State::Inactive;
            self.reason = failures(self.bad, &detail);
        }
        self.state != before
    }

    /// The operator sets the state: `Active` (automatic from here on),
    /// `Inactive` (held until the operator sets it again) or `Probing` (not
    /// used until `active_threshold` good probes). Streaks start over.
    /// Returns whether the state or the hold changed.
    pub fn set_state(&mut self, state: State) -> bool {
        let before = (self.state, self.manual);
        self.state = state;
        self.manual = state == State::Inactive;
        self.good = 0;
        self.bad = 0;
        self.reason = format!("set {state} by the operator");
        before != (self.state, self.manual)
    }

    /// Passive suspicion (`why`, e.g. `suspected: 8 of 10 replies were
    /// 503/500/408`) becomes the reason of an active destination until the
    /// probe it triggers answers; other states keep theirs.
    pub fn suspect(&mut self, why: &str) {
        if self.state == State::Active && !self.manual {
            self.reason = why.to_owned();
        }
    }
}

/// `probe failed: …` or `N probes in a row failed (last: …)`.
fn failures(n: u32, detail: &str) -> String {
    if n == 1 {
        format!("probe failed: {detail}")
    } else {
        format!("{n} probes in a row failed (last: {detail})")
    }
}

/// A duration for humans: `0.3 ms`, `3.1 ms`, `200 ms`, `2 s`, `2.5 s`.
fn human(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        let s = format!("{:.2}", d.as_secs_f64());
        format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// `200 OK`: the code with its RFC 3261 §21 reason phrase (the reply's own
/// phrase is outside input and not repeated), or the bare code.
fn status_text(code: u16) -> String {
    match crate::reason::phrase(code) {
        Some(p) => format!("{code} {p}"),
        None => code.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn alive(rtt_ms: u64) -> ProbeResult {
        ProbeResult::Alive {
            code: 200,
            rtt: ms(rtt_ms),
        }
    }

    /// Thresholds 3 down, 2 up, 2 s timeout.
    fn tracker() -> Tracker {
        Tracker::new(&Probe {
            inactive_threshold: 3,
            active_threshold: 2,
            ..Probe::default()
        })
    }

    #[test]
    fn starts_active_and_unprobed() {
        let t = tracker();
        assert_eq!(t.state(), State::Active);
        assert!(t.usable());
        assert!(!t.manual());
        assert_eq!(t.reason(), "not probed yet");
        assert_eq!(t.latency(), None);
        assert_eq!(t.last_probe(), None);
        assert_eq!(t.probes(), (0, 0));
        assert!(!t.retry_soon());
        let off = Tracker::new(&Probe {
            enabled: false,
            ..Probe::default()
        });
        assert_eq!(off.reason(), "probing disabled");
    }

    #[test]
    fn goes_inactive_after_threshold_failures_in_a_row() {
        let now = Instant::now();
        let mut t = tracker();
        assert!(!t.record(&ProbeResult::Timeout, now));
        assert_eq!(t.state(), State::Active);
        assert_eq!(
            t.reason(),
            "probe failed: timeout after 2 s; inactive after 3 in a row"
        );
        assert!(t.retry_soon());
        assert!(!t.record(&ProbeResult::Timeout, now));
        assert_eq!(
            t.reason(),
            "2 probes in a row failed (last: timeout after 2 s); inactive after 3 in a row"
        );
        assert!(t.record(&ProbeResult::Timeout, now));
        assert_eq!(t.state(), State::Inactive);
        assert!(!t.usable());
        assert_eq!(
            t.reason(),
            "3 probes in a row failed (last: timeout after 2 s)"
        );
        assert!(!t.retry_soon(), "inactive destinations wait the interval");
        // Further failures keep it inactive and report no change.
        assert!(!t.record(&ProbeResult::Unreachable("connection refused".into()), now));
        assert_eq!(
            t.reason(),
            "4 probes in a row failed (last: unreachable: connection refused)"
        );
        assert_eq!(t.probes().1, 4);
    }

    #[test]
    fn a_good_probe_resets_the_failure_streak() {
        let now = Instant::now();
        let mut t = tracker();
        t.record(&ProbeResult::Timeout, now);
        t.record(&ProbeResult::Timeout, now);
        t.record(&alive(1), now);
        assert!(!t.retry_soon());
        t.record(&ProbeResult::Timeout, now);
        t.record(&ProbeResult::Timeout, now);
        assert_eq!(t.state(), State::Active);
        assert!(t.record(&ProbeResult::Timeout, now));
        assert_eq!(t.state(), State::Inactive);
    }

    #[test]
    fn comes_back_after_threshold_good_probes_in_a_row() {
        let now = Instant::now();
        let mut t = tracker();
        for _ in 0..3 {
            t.record(&ProbeResult::Timeout, now);
        }
        assert!(!t.record(&alive(4), now));
        assert_eq!(t.state(), State::Inactive);
        assert_eq!(
            t.reason(),
            "1 of 2 good probes in a row needed to come back (last: 200 OK in 4.0 ms)"
        );
        // A failure in between starts the count over.
        t.record(&ProbeResult::Timeout, now);
        assert!(!t.record(&alive(4), now));
        assert!(t.record(&alive(3), now));
        assert_eq!(t.state(), State::Active);
        assert!(t.usable());
        assert_eq!(t.reason(), "probe: 200 OK in 3.0 ms");
    }

    #[test]
    fn a_dead_code_is_a_failure_with_latency() {
        let now = Instant::now();
        let mut t = tracker();
        let dead = ProbeResult::Dead {
            code: 503,
            rtt: ms(12),
        };
        assert!(!dead.ok());
        t.record(&dead, now);
        assert_eq!(
            t.reason(),
            "probe failed: 503 Service Unavailable in 12 ms; inactive after 3 in a row"
        );
        assert_eq!(t.latency(), Some((ms(12), ms(12))));
        let last = t.last_probe().expect("recorded");
        assert_eq!(last.result, "503 Service Unavailable");
        assert!(!last.ok);
        assert_eq!(last.at, now);
    }

    #[test]
    fn latency_last_and_moving_average() {
        let now = Instant::now();
        let mut t = tracker();
        t.record(&alive(10), now);
        assert_eq!(t.latency(), Some((ms(10), ms(10))));
        t.record(&alive(20), now);
        let (last, avg) = t.latency().expect("measured");
        assert_eq!(last, ms(20));
        assert!((avg.as_secs_f64() - 0.013).abs() < 1e-9, "{avg:?}");
        // A timeout has no round trip: the figures stay.
        t.record(&ProbeResult::Timeout, now);
        assert_eq!(t.latency().map(|l| l.0), Some(ms(20)));
    }

    #[test]
    fn operator_inactive_holds_against_probes() {
        let now = Instant::now();
        let mut t = tracker();
        assert!(t.set_state(State::Inactive));
        assert!(t.manual());
        assert!(!t.usable());
        assert_eq!(t.reason(), "set inactive by the operator");
        for _ in 0..5 {
            assert!(!t.record(&alive(2), now));
        }
        assert_eq!(t.state(), State::Inactive);
        assert_eq!(t.reason(), "set inactive by the operator");
        // Probes still report.
        assert_eq!(t.latency().map(|l| l.0), Some(ms(2)));
        assert!(t.last_probe().is_some_and(|p| p.ok));
        assert!(!t.retry_soon());
        // Setting it again is no change.
        assert!(!t.set_state(State::Inactive));
    }

    #[test]
    fn operator_active_is_automatic_again() {
        let now = Instant::now();
        let mut t = tracker();
        t.set_state(State::Inactive);
        assert!(t.set_state(State::Active));
        assert!(!t.manual());
        assert!(t.usable());
        assert_eq!(t.reason(), "set active by the operator");
        for _ in 0..2 {
            t.record(&ProbeResult::Timeout, now);
        }
        assert!(t.record(&ProbeResult::Timeout, now));
        assert_eq!(t.state(), State::Inactive);
        assert!(!t.manual());
    }

    #[test]
    fn operator_active_starts_the_failure_count_over() {
        let now = Instant::now();
        let mut t = tracker();
        t.record(&ProbeResult::Timeout, now);
        t.record(&ProbeResult::Timeout, now);
        assert!(!t.set_state(State::Active), "already active, not held");
        t.record(&ProbeResult::Timeout, now);
        assert_eq!(t.state(), State::Active);
    }

    #[test]
    fn operator_probing_needs_good_probes() {
        let now = Instant::now();
        let mut t = tracker();
        assert!(t.set_state(State::Probing));
        assert!(!t.usable());
        assert!(!t.manual());
        assert_eq!(t.reason(), "set probing by the operator");
        assert!(!t.record(&alive(1), now));
        assert_eq!(t.state(), State::Probing);
        assert!(t.record(&alive(1), now));
        assert_eq!(t.state(), State::Active);
    }

    #[test]
    fn probing_that_keeps_failing_goes_inactive() {
        let now = Instant::now();
        let mut t = tracker();
        t.set_state(State::Probing);
        t.record(&ProbeResult::Timeout, now);
        assert!(t.retry_soon());
        t.record(&ProbeResult::Timeout, now);
        assert_eq!(t.state(), State::Probing);
        assert!(t.record(&ProbeResult::Timeout, now));
        assert_eq!(t.state(), State::Inactive);
        assert!(!t.manual(), "automatic from here: comes back by itself");
        t.record(&alive(1), now);
        assert!(t.record(&alive(1), now));
        assert_eq!(t.state(), State::Active);
    }

    #[test]
    fn suspicion_is_the_reason_of_an_active_destination_only() {
        let now = Instant::now();
        let mut t = tracker();
        t.suspect("suspected: 12 requests, no reply");
        assert_eq!(t.reason(), "suspected: 12 requests, no reply");
        assert_eq!(t.state(), State::Active);
        t.record(&alive(1), now);
        assert_eq!(t.reason(), "probe: 200 OK in 1.0 ms");
        t.set_state(State::Inactive);
        t.suspect("suspected: 12 requests, no reply");
        assert_eq!(t.reason(), "set inactive by the operator");
    }

    #[test]
    fn sent_and_failed_counts() {
        let now = Instant::now();
        let mut t = tracker();
        for _ in 0..3 {
            t.note_sent();
        }
        t.record(&alive(1), now);
        t.record(&ProbeResult::Timeout, now);
        t.record(
            &ProbeResult::Dead {
                code: 404,
                rtt: ms(1),
            },
            now,
        );
        assert_eq!(t.probes(), (3, 2));
    }

    #[test]
    fn state_names_round_trip() {
        for s in State::ALL {
            assert_eq!(s.name().parse::<State>(), Ok(s));
            assert_eq!(s.to_string(), s.name());
        }
        assert_eq!("Active".parse::<State>(), Err(UnknownState));
        assert_eq!("".parse::<State>(), Err(UnknownState));
        assert!(UnknownState
            .to_string()
            .contains("active, inactive or probing"));
    }

    #[test]
    fn result_texts() {
        let t = Duration::from_millis(500);
        assert_eq!(alive(1).text(t), "200 OK");
        assert_eq!(
            ProbeResult::Dead {
                code: 299,
                rtt: ms(1)
            }
            .text(t),
            "299",
            "a code without a standard phrase is shown bare"
        );
        assert_eq!(ProbeResult::Timeout.text(t), "timeout after 500 ms");
        assert_eq!(
            ProbeResult::Unreachable("no route".into()).text(t),
            "unreachable: no route"
        );
        assert_eq!(ProbeResult::Timeout.rtt(), None);
        assert_eq!(alive(7).rtt(), Some(ms(7)));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_micros(310)), "0.3 ms");
        assert_eq!(human(Duration::from_micros(3140)), "3.1 ms");
        assert_eq!(human(ms(200)), "200 ms");
        assert_eq!(human(ms(2000)), "2 s");
        assert_eq!(human(ms(2500)), "2.5 s");
        assert_eq!(human(ms(60_000)), "60 s");
    }
}
