//! "Why did this call go there?" (`sipedge explain`, `POST /api/explain`):
//! one message through the pipeline, stage by stage, without sending.
//!
//! It runs the pipeline's own stage functions, in the pipeline's order, on
//! a *shadow* of the edge ([`Edge::shadow`]): the live destinations'
//! health and the node's bans, but transactions, limits, counters and
//! registrations of its own, so that explaining a message changes nothing
//! on a running node. The limits stage alone reads the live edge's
//! buckets (without taking from them): whether a call would be refused
//! for capacity is a question about the live node. What would be sent is
//! what [`Worker::handle`] writes on the shadow — the real splice, not a
//! description of one.

use super::checked::{Checked, Route, RouteSet};
use super::{capacity, hops, local, route, sanity, Edge, Outcome, Worker};
use crate::config;
use crate::dispatch::HealthLookup;
use crate::flow::Flow;
use crate::limits::Full;
use serde::Serialize;
use sip::Message;
use std::time::Instant;

/// What the pipeline would do with one message.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The edge it was run through.
    pub edge: String,
    /// Each stage reached, in order; the last one that did not pass is
    /// where the message stopped.
    pub stages: Vec<Verdict>,
    /// For a request the algorithm placed: every destination of the edge,
    /// in the order tried, then those not eligible.
    pub candidates: Vec<Candidate>,
    /// What would be sent, and where.
    pub sent: Vec<Sent>,
}

/// One stage's verdict.
#[derive(Debug, Serialize)]
pub struct Verdict {
    /// The stage, as the pipeline names it (`security`, `parse`, `peer`
    /// when the edge names its peers, `size`, `validate`, `sanity`, `local`, `hops`, `route`, `limits`,
    /// `dispatch`, `send`).
    pub stage: &'static str,
    /// It let the message on.
    pub pass: bool,
    /// What it found, in words.
    pub says: String,
}

/// One destination as the algorithm saw it for this message.
#[derive(Debug, Serialize)]
pub struct Candidate {
    /// Its place in the order tried (1 first), or none when it would not
    /// be tried (unusable, without room, or not allowed in this zone).
    pub rank: Option<usize>,
    /// Its index in the edge's destinations.
    pub index: usize,
    /// Its URI as configured.
    pub uri: String,
    /// Its weight.
    pub weight: u32,
    /// Its priority (`first`).
    pub priority: i32,
    /// Its zone.
    pub zone: Option<String>,
    /// Its tier for this node (1 own zone, 2 backup, 3 other), none when
    /// its `limit_zones` exclude this node.
    pub tier: Option<u8>,
    /// Health lets it take requests.
    pub usable: bool,
    /// Its own limits leave room for a new call.
    pub room: bool,
}

/// One message that would be sent.
#[derive(Debug, Serialize)]
pub struct Sent {
    /// The transport it would leave on.
    pub transport: &'static str,
    /// Where to.
    pub to: std::net::SocketAddr,
    /// The message as it would be sent.
    pub message: String,
}

impl Explanation {
    fn stage(&mut self, stage: &'static str, pass: bool, says: impl Into<String>) {
        self.stages.push(Verdict {
            stage,
            pass,
            says: says.into(),
        });
    }

    /// Where the message stopped, if a stage refused it.
    pub fn stopped_at(&self) -> Option<&Verdict> {
        self.stages.iter().find(|v| !v.pass)
    }

    /// As a NOC engineer reads it in a terminal.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut t = String::new();
        let _ = writeln!(t, "edge {}", self.edge);
        for v in &self.stages {
            let mark = if v.pass { "pass" } else { "STOP" };
            let _ = writeln!(t, "  {:<9} {mark}  {}", v.stage, v.says);
            if v.stage == "dispatch" && !self.candidates.is_empty() {
                let _ = writeln!(
                    t,
                    "      {:<4} {:<32} {:>6} {:>8} {:<10} {:<4} state",
                    "rank", "destination", "weight", "priority", "zone", "tier"
                );
                for c in &self.candidates {
                    let rank = c.rank.map_or("-".to_owned(), |r| r.to_string());
                    let tier = c.tier.map_or("-".to_owned(), |t| t.to_string());
                    let state = match (c.tier, c.usable, c.room) {
                        (None, _, _) => "not allowed in this zone (limit_zones)",
                        (_, false, _) => "unusable (health)",
                        (_, true, false) => "no room (its cps/channels)",
                        _ => "usable",
                    };
                    let _ = writeln!(
                        t,
                        "      {:<4} {:<32} {:>6} {:>8} {:<10} {:<4} {state}",
                        rank,
                        c.uri,
                        c.weight,
                        c.priority,
                        c.zone.as_deref().unwrap_or("-"),
                        tier
                    );
                }
            }
        }
        for s in &self.sent {
            let _ = writeln!(t, "--- to {}:{}", s.transport, s.to);
            t.push_str(&s.message);
            if !s.message.ends_with('\n') {
                t.push('\n');
            }
        }
        t
    }
}

/// Runs `datagram`, received on `from`, through `edge` (a shadow of
/// `live`, the running edge: see the module doc; on the command line both
/// are the same fresh edge) as configured by `cfg`.
pub fn explain(
    edge: &Edge,
    cfg: &config::Edge,
    live: &Edge,
    datagram: &[u8],
    from: Flow,
    now: Instant,
) -> Explanation {
    let mut x = Explanation {
        edge: edge.name.clone(),
        stages: Vec::new(),
        candidates: Vec::new(),
        sent: Vec::new(),
    };
    let mut w = edge.worker();
    let outcome = match stages(edge, cfg, live, &mut w, &mut x, datagram, from, now) {
        // The live limits refuse what the shadow's fresh ones would let
        // through: that refusal is what the node would send.
        Some(refusal) => refusal,
        // Otherwise the whole pipeline, on a worker as fresh as the one
        // the stages read with (the same round-robin position), writes
        // what would go out — the answer of a stage that refused, or the
        // forwarded request.
        None => {
            w = edge.worker();
            w.handle(edge, datagram, from, now)
        }
    };
    sent(&mut x, &w, outcome);
    x
}

/// The verdicts up to the send stage; `Some` with the answer when the live
/// limits refuse a new call (written into `w`).
#[allow(clippy::too_many_arguments)]
fn stages(
    edge: &Edge,
    cfg: &config::Edge,
    live: &Edge,
    w: &mut Worker,
    x: &mut Explanation,
    datagram: &[u8],
    from: Flow,
    now: Instant,
) -> Option<Outcome> {
    let source = format!("{}:{}", from.transport.name(), from.remote);
    if let Some(b) = edge.blocks(&from) {
        let says = format!("{source} is blocked ({})", b.name());
        x.stage("security", false, says);
        return None;
    }
    // Bans, and the flood count (of the shadow's own sketch: this one
    // message), as the pipeline checks them before the parse.
    let suspect = edge.suspect(&from, datagram, now);
    let (index, mut s) = w.split();
    s.out.clear();
    let parsed = sip::parse(datagram, index);
    let refused = match &parsed {
        Ok(m) => match suspect.filter(|&why| !edge.excuses(m, why)) {
            Some(why) => Some(format!("{source} is banned ({})", why.name())),
            None => edge
                .ignores(m)
                .then(|| "its User-Agent is blocked (user_agent)".to_owned()),
        },
        Err(_) => suspect.map(|why| format!("{source} is banned ({})", why.name())),
    };
    match refused {
        Some(says) => {
            x.stage("security", false, says);
            return None;
        }
        None => x.stage(
            "security",
            true,
            format!("{source}: not denied, restricted or banned"),
        ),
    }
    let m = match parsed {
        Ok(m) => m,
        Err(e) => {
            x.stage("parse", false, format!("malformed: {}", e.reason()));
            return None;
        }
    };
    x.stage("parse", true, first_line(datagram));
    if !edge.peers().is_empty() {
        let peers = edge.peers();
        let says = match peers.of(&from, &m) {
            Some(i) => {
                let name = peers.name(i).map_or("", |n| &**n);
                // What the send stage then shows rewritten.
                match peers.rewrites_of(i, false) {
                    Some(r) => format!(
                        "from peer {name}; its [in] rewrites apply: {} number rules{}{}",
                        r.numbers.0.len(),
                        if r.tel.is_some() {
                            ", the URI form"
                        } else {
                            ""
                        },
                        if r.headers.is_empty() {
                            ""
                        } else {
                            ", a header policy"
                        },
                    ),
                    None => format!("from peer {name}"),
                }
            }
            None => format!("none of the {} peers matches", peers.len()),
        };
        x.stage("peer", true, says);
    }
    if m.is_request() && datagram.len() > edge.room {
        let says = format!("{} bytes, room for {}: 513", datagram.len(), edge.room);
        x.stage("size", false, says);
        return None;
    }
    match crate::validate::check(&m, edge.rules, from.transport) {
        _ if edge.rules.is_empty() => x.stage("validate", true, "no checks configured"),
        Ok(()) => x.stage("validate", true, "every check passed"),
        Err(f) => match edge.on_invalid {
            config::OnInvalid::Reject => {
                x.stage(
                    "validate",
                    false,
                    format!("failed {} (on_invalid = reject)", f.token()),
                );
                return None;
            }
            config::OnInvalid::Tag => {
                let says = format!("failed {}: forwarded with X-Validate-Fail", f.token());
                x.stage("validate", true, says);
            }
        },
    }
    if !m.is_request() {
        x.stage("route", true, "a response: back along its Via");
        return None;
    }
    // A stage that refused has said so; its answer is what `handle` writes.
    let c = checks(edge, &mut s, x, &m, from, now)?;
    if capacity::is_new_call(&c) {
        let (cps, channels) = live.limits.configured();
        let limits = match (cps, channels) {
            (None, None) => "no edge limits".to_owned(),
            _ => format!(
                "edge cps {}, channels {}",
                cps.map_or("-".to_owned(), |n| n.to_string()),
                channels.map_or("-".to_owned(), |n| n.to_string())
            ),
        };
        match live.limits.would_admit(now) {
            Ok(()) => x.stage("limits", true, format!("a new call, admitted ({limits})")),
            Err(full) => {
                let why = match full {
                    Full::Cps(_) => "the calls-per-second budget is spent",
                    Full::Channels => "every channel is in use",
                    Full::Destinations => "every destination is at its limit",
                };
                x.stage("limits", false, format!("{why} ({limits})"));
                return Some(capacity::beyond(edge, &mut s, &m, &c, full));
            }
        }
    } else {
        x.stage("limits", true, "not a new call: no limits apply");
    }
    match c.route {
        Route::Dispatch { follow_up } => {
            let input = route::dispatch_input(edge, &m, &c, follow_up, edge.secs(now));
            let new_call = capacity::is_new_call(&c);
            let room = capacity::WithRoom { edge, now };
            let health: &dyn HealthLookup = if new_call { &room } else { &*edge.health };
            let mut order = Vec::new();
            match edge.stateful() {
                Some(st) => edge.selector.attempts(
                    &input,
                    s.dispatch,
                    st.per_tier(),
                    crate::branch::MAX_ATTEMPTS,
                    health,
                    &mut order,
                ),
                None => {
                    edge.selector
                        .ranked(&input, s.dispatch, edge.configured, health, &mut order)
                }
            }
            x.candidates = candidates(live, cfg, &order, now);
            let how = match (edge.stateful(), follow_up) {
                (_, true) => "follows its INVITE's pick",
                (Some(_), false) => "tried in this order (transactional: serial failover)",
                (None, false) => "the first in this order gets it (stateless: no failover)",
            };
            let says = format!("{}: {how}", edge.algorithm().name());
            x.stage("dispatch", !order.is_empty(), says);
        }
        Route::To(hop, dest) => {
            let whom = match dest {
                Some(i) => format!("destination {}", edge.destinations[i].uri),
                None => "outside the pool".to_owned(),
            };
            let says = format!("to {}:{} ({whom})", hop.transport.name(), hop.addr);
            x.stage("dispatch", true, says);
        }
        Route::Named => x.stage("dispatch", true, "to a host name, by DNS (RFC 3263)"),
        Route::Reach => x.stage("dispatch", true, "to a contact registered here"),
    }
    None
}

/// The stages up to the route decision ([`super::pipeline::checks`]), one
/// verdict each; `None` when one refused.
fn checks<'a>(
    edge: &Edge,
    s: &mut super::Scratch<'_>,
    x: &mut Explanation,
    m: &Message<'a>,
    from: Flow,
    now: Instant,
) -> Option<Checked<'a>> {
    let origin = match sanity::origin(edge, s, m, from) {
        Ok(o) => o,
        Err(o) => return refused(x, "sanity", s.out, o),
    };
    let facts = match sanity::facts(edge, s, m, &origin) {
        Ok(f) => f,
        Err(o) => return refused(x, "sanity", s.out, o),
    };
    x.stage("sanity", true, "required headers present and well formed");
    let routes = RouteSet::read(edge, m, &facts);
    if let Err(o) = local::answer(edge, s, m, &origin, &facts, &routes, now) {
        return refused(x, "local", s.out, o);
    }
    x.stage("local", true, "not for the edge itself");
    let h = match hops::check(edge, s, m, &origin, &facts) {
        Ok(h) => h,
        Err(o) => return refused(x, "hops", s.out, o),
    };
    let side = match h.from_pool {
        Some(i) => format!("from destination {}", edge.destinations[i].uri),
        None => "from outside the pool".to_owned(),
    };
    x.stage("hops", true, format!("no loop, hops left; {side}"));
    let c = match super::pipeline::routed(edge, s, m, origin, facts, routes, h, now) {
        Ok(c) => c,
        Err(o) => return refused(x, "route", s.out, o),
    };
    let says = match (c.route, c.in_dialog) {
        (Route::Dispatch { follow_up: true }, _) => "a follow-up: to its INVITE's destination",
        (Route::Dispatch { .. }, false) => "a new request: into the pool by the algorithm",
        (Route::Dispatch { .. }, true) => "in dialog without a route: into the pool",
        (Route::To(..), true) => "in dialog: along its route set",
        (Route::To(..), false) => "to the next hop it names",
        (Route::Named, _) => "out through the outbound proxy",
        (Route::Reach, _) => "to a registered contact",
    };
    x.stage("route", true, says);
    Some(c)
}

/// A stage's refusal: the answer it wrote, or why it dropped.
fn refused<T>(x: &mut Explanation, stage: &'static str, out: &[u8], o: Outcome) -> Option<T> {
    let says = match o {
        Outcome::Send(_) => format!(
            "answered {}",
            first_line(out).trim_start_matches("SIP/2.0 ")
        ),
        Outcome::Queued => "answered".to_owned(),
        Outcome::Drop(e) => format!("dropped ({})", e.name()),
        Outcome::Resolve => "waits for a DNS answer".to_owned(),
    };
    x.stage(stage, false, says);
    None
}

/// Every destination, as the live edge sees it: those in `order` by
/// rank, then the rest.
fn candidates(live: &Edge, cfg: &config::Edge, order: &[usize], now: Instant) -> Vec<Candidate> {
    let edge = live;
    let one = |i: usize, rank: Option<usize>| {
        let d = &cfg.destinations[i];
        Candidate {
            rank,
            index: i,
            uri: d.uri.clone(),
            weight: d.weight,
            priority: d.priority,
            zone: d.zone.clone(),
            tier: edge.tier(i),
            usable: edge.health.usable(i),
            room: edge.limits.dest_has_room(i, now),
        }
    };
    let configured = cfg.destinations.len().min(edge.configured);
    let mut all: Vec<Candidate> = order
        .iter()
        .enumerate()
        .filter(|&(_, &i)| i < configured)
        .map(|(r, &i)| one(i, Some(r + 1)))
        .collect();
    all.extend(
        (0..configured)
            .filter(|i| !order.contains(i))
            .map(|i| one(i, None)),
    );
    all
}

/// The send stage: what the worker wrote for `outcome`.
fn sent(x: &mut Explanation, w: &Worker, outcome: Outcome) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match outcome {
        Outcome::Send(to) => {
            x.stage(
                "send",
                true,
                format!(
                    "{} to {}:{}",
                    first_line(w.output()),
                    to.transport.name(),
                    to.remote
                ),
            );
            x.sent.push(Sent {
                transport: to.transport.name(),
                to: to.remote,
                message: text(w.output()),
            });
        }
        Outcome::Queued => {
            for (bytes, to) in w.sends().iter() {
                x.stage(
                    "send",
                    true,
                    format!(
                        "{} to {}:{}",
                        first_line(bytes),
                        to.transport.name(),
                        to.remote
                    ),
                );
                x.sent.push(Sent {
                    transport: to.transport.name(),
                    to: to.remote,
                    message: text(bytes),
                });
            }
        }
        Outcome::Drop(e) => x.stage("send", false, format!("nothing sent ({})", e.name())),
        Outcome::Resolve => {
            x.stage(
                "send",
                false,
                format!("first looks up {} in DNS", w.lookup()),
            );
        }
    }
}

/// The first line of a message, for a verdict.
fn first_line(b: &[u8]) -> String {
    let end = memchr::memchr(b'\n', b).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim_end().to_owned()
}

/// Where a message to explain arrived from, when the operator does not
/// say (`from`): the transport and sent-by of its top Via when that is an
/// address (a message copied from a trace then arrives as it did), else a
/// caller outside the pool at 198.51.100.10:5060 (TEST-NET-2, RFC 5737)
/// over UDP. It arrives on the edge's first local address of that
/// transport.
pub fn arrival(edge: &Edge, datagram: &[u8], from: Option<std::net::SocketAddr>) -> Flow {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    let mut index = sip::HeaderIndex::new();
    let via = sip::parse(datagram, &mut index)
        .ok()
        .and_then(|m| m.top_via().ok().map(|(_, v)| v))
        .and_then(|v| {
            let ip = match v.host {
                sip::Host::Ipv4(a) => IpAddr::V4(a),
                sip::Host::Ipv6(a) => IpAddr::V6(a),
                sip::Host::Name(_) => return None,
            };
            let transport = crate::flow::Transport::from_name(v.transport)?;
            let port = v.port.unwrap_or(transport.default_port());
            Some((transport, SocketAddr::new(ip, port)))
        });
    let outside = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)), 5060);
    let (transport, remote) = match (via, from) {
        (Some((t, _)), Some(a)) => (t, a),
        (Some(v), None) => v,
        (None, a) => (crate::flow::Transport::Udp, a.unwrap_or(outside)),
    };
    let locals = edge.locals();
    let local = locals
        .iter()
        .position(|l| l.transport == transport)
        .unwrap_or(0);
    let transport = locals.get(local).map_or(transport, |l| l.transport);
    Flow {
        transport,
        ..Flow::udp(local, remote)
    }
}
