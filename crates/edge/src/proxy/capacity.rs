//! The limits stage: a new call beyond the capacity of this edge on this
//! node, or of every destination it could go to, is redirected to another
//! node with a 302 (capacity failover) or refused with 503 (or the
//! edge's `capacity_code`) and Retry-After (RFC 3261 §21.5.4).

use std::io::Write as _;
use std::time::Instant;

use super::checked::{Checked, Route};
use super::reply::reply;
use super::{Edge, Outcome, Scratch};
use crate::config::Transport;
use crate::dispatch::HealthLookup;
use crate::limits::Full;
use crate::stats::Event;
use sip::{Message, Method};
use xxhash_rust::xxh3::xxh3_64;

/// The Request-URI parameter a capacity redirect adds: the node it sends
/// the call to must not redirect it again (it answers 503 instead), so two
/// full nodes cannot bounce a call between them.
pub(crate) const REDIRECTED: &[u8] = b"sipedge-overflow";

/// Another node to send calls to when this one is full, from
/// `capacity_failover`.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The URI as given, to tell whether a new list differs.
    pub(crate) uri: String,
    /// The transport it names (`sips:` TLS, else its `transport`
    /// parameter, else UDP): a caller is redirected to another node of the
    /// cluster only on the transport it came on.
    transport: Transport,
    /// `sip:` or `sips:`.
    scheme: String,
    /// Everything after the scheme (`host:port;params`), without a user.
    rest: String,
}

impl Peer {
    /// From a configured URI (already checked by the config parser).
    pub fn new(uri: &str) -> Peer {
        let (scheme, rest) = match uri.find(':') {
            Some(i) => (&uri[..=i], &uri[i + 1..]),
            None => ("sip:", uri),
        };
        // A user in the configured URI is dropped: the caller's goes there.
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let parsed = sip::Uri::parse(uri.as_bytes()).ok();
        let named = parsed
            .as_ref()
            .and_then(|u| u.param(b"transport").flatten())
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|t| {
                Transport::ALL
                    .into_iter()
                    .find(|k| k.name().eq_ignore_ascii_case(t))
            });
        let transport = match parsed.map(|u| u.scheme) {
            Some(sip::Scheme::Sips) => Transport::Tls,
            _ => named.unwrap_or(Transport::Udp),
        };
        Peer {
            uri: uri.to_owned(),
            transport,
            scheme: scheme.to_owned(),
            rest: rest.to_owned(),
        }
    }

    /// From a URI another node published in Redis: `None` unless it is a
    /// `sip:` or `sips:` URI (no byte that could break the Contact line
    /// it goes into).
    pub fn checked(uri: &str) -> Option<Peer> {
        let u = sip::Uri::parse(uri.as_bytes()).ok()?;
        matches!(u.scheme, sip::Scheme::Sip | sip::Scheme::Sips).then(|| Peer::new(uri))
    }
}

/// A new call: an INVITE outside any dialog that is to be dispatched.
pub(crate) fn is_new_call(c: &Checked<'_>) -> bool {
    c.method == Method::Invite
        && !c.in_dialog
        && matches!(c.route, Route::Dispatch { follow_up: false })
}

/// The edge's own limits for a new call: `Err` carries the 302 or 503.
pub(crate) fn admit(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    c: &Checked<'_>,
    now: Instant,
) -> Result<(), Outcome> {
    match edge.limits.admit(now) {
        Ok(()) => Ok(()),
        Err(full) => Err(beyond(edge, s, m, c, full)),
    }
}

/// Health as dispatch sees it for a new call: a destination must also
/// have room for one more call.
pub(crate) struct WithRoom<'a> {
    pub edge: &'a Edge,
    pub now: Instant,
}

impl HealthLookup for WithRoom<'_> {
    #[inline]
    fn usable(&self, i: usize) -> bool {
        self.edge.health.usable(i) && self.edge.limits.dest_has_room(i, self.now)
    }

    #[inline]
    fn scale(&self, i: usize) -> f64 {
        self.edge.health.scale(i)
    }
}

/// Answers a call beyond capacity: 302 to one of the `capacity_failover`
/// nodes — those configured, then with `"cluster"` the other live nodes —
/// chosen by Call-ID, so a retransmission gets the same one, unless the
/// call was redirected here already; otherwise 503 (or `capacity_code`)
/// with Retry-After.
pub(crate) fn beyond(
    edge: &Edge,
    s: &mut Scratch<'_>,
    m: &Message<'_>,
    c: &Checked<'_>,
    full: Full,
) -> Outcome {
    *s.refusal = Some(match full {
        Full::Cps(_) => ("cps", ""),
        Full::Channels => ("channels", ""),
        Full::Destinations => ("destination-limits", ""),
    });
    let redirected = c.request_uri().param(REDIRECTED).is_some();
    let others = edge.failover_cluster.then(|| edge.other_nodes.load());
    let arrived = c.origin.from.transport;
    let candidates = || {
        let cluster = others.iter().flat_map(|o| o.iter());
        let cluster = cluster.filter(move |p| p.transport == arrived);
        edge.capacity_failover.iter().chain(cluster)
    };
    let count = candidates().count();
    let peer = (count > 0 && !redirected)
        .then(|| candidates().nth((xxh3_64(c.call_id()) % count as u64) as usize))
        .flatten();
    if let Some(peer) = peer {
        let mut buf = [0u8; 1024];
        let mut w = &mut buf[..];
        let user = c.request_uri().user.unwrap_or_default();
        let written = (|| {
            w.write_all(b"<")?;
            w.write_all(peer.scheme.as_bytes())?;
            if !user.is_empty() {
                w.write_all(user)?;
                w.write_all(b"@")?;
            }
            w.write_all(peer.rest.as_bytes())?;
            w.write_all(b";")?;
            w.write_all(REDIRECTED)?;
            w.write_all(b">")
        })();
        let len = 1024 - w.len();
        if written.is_ok() {
            s.stats.count(Event::CapacityRedirected);
            if let Some((why, _)) = *s.refusal {
                *s.refusal = Some(("redirected", why));
            }
            return reply(
                edge,
                s,
                m,
                &c.origin,
                302,
                "Moved Temporarily",
                &[("Contact", &buf[..len])],
            );
        }
    }
    s.stats.count(Event::CapacityRefused);
    let mut secs = [0u8; 20];
    let n = {
        let mut w = &mut secs[..];
        let _ = write!(w, "{}", full.retry_after_secs());
        20 - w.len()
    };
    let (code, phrase) = edge.capacity_code;
    let retry_after: &[(&str, &[u8])] = if crate::reason::takes_retry_after(code) {
        &[("Retry-After", &secs[..n])]
    } else {
        &[]
    };
    reply(edge, s, m, &c.origin, code, phrase, retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::proxy::Worker;
    use sip::{HeaderIndex, HeaderName};
    use std::net::SocketAddr;
    use std::time::Duration;

    const A: &str = "127.0.0.1:5070";
    const B: &str = "127.0.0.1:5071";
    const CALLER: &str = "127.0.0.1:6000";

    fn edge(extra: &str, dest_a: &str) -> Edge {
        let text = format!(
            "[node]\nid = \"n\"\nsecret = \"unit-test-secret-0123456789\"\n[[edge]]\n\
             listen = [\"udp:127.0.0.1:5060\"]\nalgorithm = \"first\"\n{extra}\n\
             [[edge.destination]]\nuri = \"sip:{A}\"\n{dest_a}\n\
             [[edge.destination]]\nuri = \"sip:{B}\"\npriority = 1\n"
        );
        let cfg = config::parse(&text, "t.toml").expect("config");
        Edge::new(
            &cfg.edges[0],
            &cfg.node,
            &crate::keyring::KeyRing::single(b"unit-test-secret-0123456789"),
        )
    }

    fn request(method: &str, uri: &str, call: &str, to_tag: &str) -> Vec<u8> {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK{call}{method}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=f\r\n\
             To: <sip:b@example.com>{to_tag}\r\nCall-ID: {call}\r\nCSeq: 1 {method}\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn invite(call: &str) -> Vec<u8> {
        request("INVITE", "sip:+4930123@127.0.0.1:5060", call, "")
    }

    /// Where the edge sent the message, and the message.
    fn run(
        e: &Edge,
        w: &mut Worker,
        msg: &[u8],
        from: &str,
        at: Duration,
    ) -> (SocketAddr, Vec<u8>) {
        match w.handle(
            e,
            msg,
            crate::flow::Flow::udp(0, from.parse().unwrap()),
            e.epoch() + at,
        ) {
            Outcome::Send(crate::flow::Flow { remote: to, .. }) => (to, w.output().to_vec()),
            other => panic!("{other:?}"),
        }
    }

    fn status_and(msg: &[u8], name: HeaderName) -> (u16, String) {
        let mut idx = HeaderIndex::new();
        let m = sip::parse(msg, &mut idx).unwrap();
        let v = m.first_value(name).unwrap_or_default();
        (
            m.status().unwrap_or(0),
            String::from_utf8_lossy(v).into_owned(),
        )
    }

    #[test]
    fn beyond_the_edge_cps_a_call_gets_503_with_retry_after() {
        let e = edge("cps = 2", "");
        let mut w = e.worker();
        let t = Duration::from_secs(1);
        for call in ["c1", "c2"] {
            assert_eq!(
                run(&e, &mut w, &invite(call), CALLER, t).0,
                A.parse().unwrap()
            );
        }
        let (to, out) = run(&e, &mut w, &invite("c3"), CALLER, t);
        assert_eq!(to, CALLER.parse().unwrap());
        assert_eq!(status_and(&out, HeaderName::RetryAfter), (503, "1".into()));
        assert_eq!(w.stats.get(Event::CapacityRefused), 1);
        // Its ACK (with the To tag of our 503) ends here: the pool never
        // saw the INVITE.
        let tag = status_and(&out, HeaderName::To).1;
        let tag = tag.split(";tag=").nth(1).unwrap().to_owned();
        let ack = String::from_utf8(request(
            "ACK",
            "sip:+4930123@127.0.0.1:5060",
            "c3",
            &format!(";tag={tag}"),
        ))
        .unwrap()
        .replace("c3ACK", "c3INVITE");
        let o = w.handle(
            &e,
            ack.as_bytes(),
            crate::flow::Flow::udp(0, CALLER.parse().unwrap()),
            e.epoch() + t,
        );
        assert_eq!(o, Outcome::Drop(Event::Absorbed));
        // In-dialog requests and CANCELs are not calls: never limited.
        let bye = request("BYE", &format!("sip:b@{A}"), "c1", ";tag=t");
        assert_eq!(run(&e, &mut w, &bye, CALLER, t).0, A.parse().unwrap());
        // Half a second later one more call conforms.
        let later = t + Duration::from_millis(500);
        assert_eq!(
            run(&e, &mut w, &invite("c4"), CALLER, later).0,
            A.parse().unwrap()
        );
    }

    #[test]
    fn capacity_code_answers_with_retry_after_only_where_it_may() {
        let t = Duration::from_secs(1);
        for (code, retry_after) in [(486, "1"), (403, "")] {
            let e = edge(&format!("cps = 1\ncapacity_code = {code}"), "");
            let mut w = e.worker();
            run(&e, &mut w, &invite("c1"), CALLER, t);
            let (_, out) = run(&e, &mut w, &invite("c2"), CALLER, t);
            assert_eq!(
                status_and(&out, HeaderName::RetryAfter),
                (code, retry_after.to_owned())
            );
            assert_eq!(w.stats.get(Event::CapacityRefused), 1);
        }
    }

    #[test]
    fn with_capacity_failover_a_call_is_redirected_once() {
        let e = edge(
            "cps = 1\ncapacity_failover = [\"sip:192.0.2.7:5090\", \"sip:user@192.0.2.8:5090;transport=udp\"]",
            "",
        );
        let mut w = e.worker();
        let t = Duration::from_secs(1);
        run(&e, &mut w, &invite("c1"), CALLER, t);
        let (to, out) = run(&e, &mut w, &invite("c2"), CALLER, t);
        assert_eq!(to, CALLER.parse().unwrap());
        let (code, contact) = status_and(&out, HeaderName::Contact);
        assert_eq!(code, 302);
        assert!(
            contact == "<sip:+4930123@192.0.2.7:5090;sipedge-overflow>"
                || contact == "<sip:+4930123@192.0.2.8:5090;transport=udp;sipedge-overflow>",
            "{contact}"
        );
        // The same call again gets the same node.
        let (_, again) = run(&e, &mut w, &invite("c2"), CALLER, t);
        assert_eq!(status_and(&again, HeaderName::Contact).1, contact);
        assert_eq!(w.stats.get(Event::CapacityRedirected), 2);
        // A call redirected here already is refused, not bounced on.
        let redirected = request(
            "INVITE",
            "sip:+4930123@127.0.0.1:5060;sipedge-overflow",
            "c3",
            "",
        );
        let (_, out) = run(&e, &mut w, &redirected, CALLER, t);
        assert_eq!(status_and(&out, HeaderName::RetryAfter).0, 503);
    }

    #[test]
    fn with_the_cluster_as_failover_a_call_goes_to_another_live_node() {
        let text = format!(
            "[node]\nid = \"n\"\nsecret = \"unit-test-secret-0123456789\"\n\
             public_address = \"198.51.100.1\"\n[cluster]\nredis = \"redis://127.0.0.1:6379\"\n\
             [[edge]]\nlisten = [\"udp:127.0.0.1:5060\"]\ncps = 1\n\
             capacity_failover = [\"cluster\"]\n[[edge.destination]]\nuri = \"sip:{A}\"\n"
        );
        let cfg = config::parse(&text, "t.toml").expect("config");
        let keys = crate::keyring::KeyRing::single(b"unit-test-secret-0123456789");
        let e = Edge::new(&cfg.edges[0], &cfg.node, &keys);
        assert_eq!(
            cfg.edges[0].own_uris(&cfg.node),
            [(Transport::Udp, "sip:198.51.100.1:5060".to_owned())]
        );
        let mut w = e.worker();
        let t = Duration::from_secs(1);
        run(&e, &mut w, &invite("c1"), CALLER, t);
        // No other node known yet: refused.
        let (_, out) = run(&e, &mut w, &invite("c2"), CALLER, t);
        assert_eq!(status_and(&out, HeaderName::RetryAfter).0, 503);
        // A node on TCP only is no place for a caller on UDP; what could
        // break the Contact line is left out.
        e.set_other_nodes(&[
            "sip:198.51.100.2:5062;transport=tcp",
            "sips:198.51.100.2:5063",
            "sip:198.51.100.9\r\nX-Evil: 1",
        ]);
        let (_, out) = run(&e, &mut w, &invite("c3"), CALLER, t);
        assert_eq!(status_and(&out, HeaderName::RetryAfter).0, 503);
        e.set_other_nodes(&[
            "sip:198.51.100.2:5062;transport=tcp",
            "sip:198.51.100.3:5060",
        ]);
        // A reload keeps what the cluster said.
        let e = e.reloaded(&cfg.edges[0], &cfg.node, &keys, e.epoch() + t);
        let (_, out) = run(&e, &mut w, &invite("c5"), CALLER, t);
        assert_eq!(
            status_and(&out, HeaderName::Contact),
            (
                302,
                "<sip:+4930123@198.51.100.3:5060;sipedge-overflow>".into()
            )
        );
        // The node is gone: refused again.
        e.set_other_nodes(&[]);
        let (_, out) = run(&e, &mut w, &invite("c6"), CALLER, t);
        assert_eq!(status_and(&out, HeaderName::RetryAfter).0, 503);
    }

    #[test]
    fn a_destination_at_its_cps_passes_calls_to_the_next() {
        let e = edge("", "cps = 1");
        let mut w = e.worker();
        let t = Duration::from_secs(1);
        assert_eq!(
            run(&e, &mut w, &invite("c1"), CALLER, t).0,
            A.parse().unwrap()
        );
        assert_eq!(
            run(&e, &mut w, &invite("c2"), CALLER, t).0,
            B.parse().unwrap()
        );
        // A CANCEL of the first call (the INVITE's branch) still reaches A.
        let cancel = String::from_utf8(request("CANCEL", "sip:+4930123@127.0.0.1:5060", "c1", ""))
            .unwrap()
            .replace("c1CANCEL", "c1INVITE");
        assert_eq!(
            run(&e, &mut w, cancel.as_bytes(), CALLER, t).0,
            A.parse().unwrap()
        );
        let t2 = t + Duration::from_secs(1);
        assert_eq!(
            run(&e, &mut w, &invite("c3"), CALLER, t2).0,
            A.parse().unwrap()
        );
    }

    #[test]
    fn every_destination_full_is_capacity_not_a_dead_pool() {
        let text = "[node]\nid = \"n\"\n[[edge]]\nlisten = [\"udp:127.0.0.1:5060\"]\n\
                    capacity_failover = [\"sip:192.0.2.7:5090\"]\n\
                    [[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\ncps = 1\n";
        let cfg = config::parse(text, "t.toml").unwrap();
        let e = Edge::new(
            &cfg.edges[0],
            &cfg.node,
            &crate::keyring::KeyRing::single(b"unit-test-secret-0123456789"),
        );
        let mut w = e.worker();
        let t = Duration::from_secs(1);
        assert_eq!(
            run(&e, &mut w, &invite("c1"), CALLER, t).0,
            A.parse().unwrap()
        );
        let (_, out) = run(&e, &mut w, &invite("c2"), CALLER, t);
        assert_eq!(status_and(&out, HeaderName::Contact).0, 302);
    }

    #[test]
    fn channels_open_on_2xx_and_close_on_bye() {
        let e = edge("", "channels = 1");
        let mut w = e.worker();
        let t = Duration::from_secs(1);
        let (_, fwd) = run(&e, &mut w, &invite("c1"), CALLER, t);
        // A answers 200: one channel of A in use.
        let ok = answer_200(&fwd);
        let (to, _) = run(&e, &mut w, &ok, A, t);
        assert_eq!(to, CALLER.parse().unwrap());
        assert_eq!(e.limits().channels_in_use(), (1, vec![1, 0]));
        assert_eq!(
            run(&e, &mut w, &invite("c2"), CALLER, t).0,
            B.parse().unwrap()
        );
        // The BYE frees it.
        let bye = request("BYE", &format!("sip:b@{A}"), "c1", ";tag=t");
        run(&e, &mut w, &bye, CALLER, t);
        assert_eq!(e.limits().channels_in_use().0, 0);
        assert_eq!(
            run(&e, &mut w, &invite("c3"), CALLER, t).0,
            A.parse().unwrap()
        );
    }

    /// The 200 a server sends for a forwarded INVITE.
    fn answer_200(fwd: &[u8]) -> Vec<u8> {
        let mut idx = HeaderIndex::new();
        let m = sip::parse(fwd, &mut idx).unwrap();
        let mut out = String::from("SIP/2.0 200 OK\r\n");
        for h in m.headers() {
            let line = String::from_utf8_lossy(&m.buf()[h.line.range()]);
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    out += &line
                }
                HeaderName::To => out += &line.replace("\r\n", ";tag=srv\r\n"),
                _ => {}
            }
        }
        out += "Content-Length: 0\r\n\r\n";
        out.into_bytes()
    }
}
