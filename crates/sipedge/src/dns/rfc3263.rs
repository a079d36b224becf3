//! Locating a SIP server by DNS (RFC 3263 §4): NAPTR, then SRV, then
//! A/AAAA, through hickory-resolver (its cache answers repeated
//! questions until their TTL).

use edge::flow::Transport;
use edge::outbound::{Answer, Target};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use std::net::SocketAddr;
use std::time::Instant;
use xxhash_rust::xxh3::xxh3_64;

/// How long a failed lookup is remembered before it is tried again.
const FAILED_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// What a query names: the parts of its URI that choose the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// The host name.
    pub host: String,
    /// Given port: A/AAAA only.
    pub port: Option<u16>,
    /// Given transport: no NAPTR.
    pub transport: Option<Transport>,
    /// `sips:`: TLS only.
    pub secure: bool,
}

impl Wanted {
    /// The query a key written by `edge::outbound::Query::write_key`
    /// stands for; `None` for anything else.
    pub fn from_key(key: &str) -> Option<Wanted> {
        let uri = sip::Uri::parse(key.as_bytes()).ok()?;
        let q = edge::outbound::Query::of(&uri)?;
        Some(Wanted {
            host: std::str::from_utf8(q.host).ok()?.to_ascii_lowercase(),
            port: q.port,
            transport: q.transport,
            secure: q.secure,
        })
    }

    /// The transports this query may use, in the order tried without
    /// NAPTR: TLS only for `sips:`; never WebSocket (sipedge does not
    /// dial it).
    fn transports(&self) -> Vec<Transport> {
        match (self.transport, self.secure) {
            (Some(Transport::Ws | Transport::Wss), _) | (Some(Transport::Udp), true) => Vec::new(),
            (Some(Transport::Tcp | Transport::Tls), true) | (None, true) => vec![Transport::Tls],
            (Some(t), _) => vec![t],
            (None, false) => vec![Transport::Udp, Transport::Tcp, Transport::Tls],
        }
    }
}

/// Looks `w` up; the answer and how long it holds.
pub async fn locate(dns: &TokioResolver, w: &Wanted) -> (Answer, Instant) {
    let mut until = None;
    let result = find(dns, w, &mut until).await;
    let failed_until = Instant::now() + FAILED_FOR;
    match result {
        Ok(targets) if !targets.is_empty() => {
            (Answer::Targets(targets), until.unwrap_or(failed_until))
        }
        Ok(_) => (Answer::NoSuchName, until.unwrap_or(failed_until)),
        Err(_) => (Answer::Failed, failed_until),
    }
}

/// Keeps the earliest expiry of the records used.
fn hold(until: &mut Option<Instant>, t: Instant) {
    *until = Some(until.map_or(t, |u| u.min(t)));
}

/// The targets; `Err` when nothing was found and some lookup failed
/// other than by the name having no such records. A NAPTR or SRV lookup
/// the name server answers with an error (servers and firewalls that
/// mishandle those types are common) moves on to the next step, as if
/// there were none; one it does not answer at all ends the search.
async fn find(
    dns: &TokioResolver,
    w: &Wanted,
    until: &mut Option<Instant>,
) -> Result<Vec<Target>, Failure> {
    let allowed = w.transports();
    if allowed.is_empty() {
        return Ok(Vec::new());
    }
    // §4.2: a port in the URI means A/AAAA only.
    if let Some(port) = w.port {
        return addresses(dns, &w.host, port, allowed[0], 0, 1, until).await;
    }
    let mut failed = false;
    let mut step = |r: Result<Vec<Target>, Failure>| match r {
        Ok(targets) if !targets.is_empty() => Some(Ok(targets)),
        Ok(_) => None,
        Err(Failure::Silent) => Some(Err(Failure::Silent)),
        Err(Failure::Answered) => {
            failed = true;
            None
        }
    };
    // §4.1: NAPTR only when no transport was given.
    if w.transport.is_none() {
        let pointers = match naptr(dns, &w.host, w.secure, until).await {
            Ok(p) => p,
            Err(f) => {
                if let Some(done) = step(Err(f)) {
                    return done;
                }
                Vec::new()
            }
        };
        for (transport, srv_name) in pointers {
            if let Some(done) = step(srv(dns, &srv_name, transport, until).await) {
                return done;
            }
        }
    }
    for &t in &allowed {
        let name = format!("{}.{}", srv_prefix(t), w.host);
        if let Some(done) = step(srv(dns, &name, t, until).await) {
            return done;
        }
    }
    let t = allowed[0];
    match addresses(dns, &w.host, t.default_port(), t, 0, 1, until).await {
        Ok(targets) if targets.is_empty() && failed => Err(Failure::Answered),
        other => other,
    }
}

fn srv_prefix(t: Transport) -> &'static str {
    match t {
        Transport::Tls | Transport::Wss => "_sips._tcp",
        Transport::Tcp | Transport::Ws => "_sip._tcp",
        Transport::Udp => "_sip._udp",
    }
}

/// `name`'s records of type `rtype`, their expiry kept in `until`;
/// `None` when it has none, `Err` when the lookup failed.
async fn records(
    dns: &TokioResolver,
    name: &str,
    rtype: RecordType,
    until: &mut Option<Instant>,
) -> Result<Option<hickory_resolver::lookup::Lookup>, Failure> {
    match dns.lookup(name, rtype).await {
        Ok(l) => {
            hold(until, l.valid_until());
            Ok(Some(l))
        }
        Err(e) if e.is_no_records_found() => Ok(None),
        Err(e) => {
            tracing::debug!(name, ?rtype, "lookup failed: {e}");
            Err(failure(&e))
        }
    }
}

/// Why a lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The name server answered with an error (REFUSED, SERVFAIL…): other
    /// record types may still be answered.
    Answered,
    /// No answer (timeout, unreachable): asking more is only slower.
    Silent,
}

fn failure(e: &hickory_resolver::net::NetError) -> Failure {
    match e {
        hickory_resolver::net::NetError::Dns(_) => Failure::Answered,
        _ => Failure::Silent,
    }
}

/// The SRV names the domain's NAPTR records point at, for the services
/// sipedge speaks, in order and preference (RFC 3263 §4.1, RFC 3403).
async fn naptr(
    dns: &TokioResolver,
    host: &str,
    secure: bool,
    until: &mut Option<Instant>,
) -> Result<Vec<(Transport, String)>, Failure> {
    let Some(lookup) = records(dns, host, RecordType::NAPTR, until).await? else {
        return Ok(Vec::new());
    };
    let mut found: Vec<(u16, u16, Transport, String)> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::NAPTR(n) if n.flags.eq_ignore_ascii_case(b"s") => {
                let t = match n.services.to_ascii_uppercase().as_slice() {
                    b"SIP+D2U" if !secure => Transport::Udp,
                    b"SIP+D2T" if !secure => Transport::Tcp,
                    b"SIPS+D2T" => Transport::Tls,
                    _ => return None,
                };
                Some((n.order, n.preference, t, n.replacement.to_ascii()))
            }
            _ => None,
        })
        .collect();
    found.sort_by_key(|&(order, pref, ..)| (order, pref));
    Ok(found.into_iter().map(|(_, _, t, name)| (t, name)).collect())
}

/// The targets of one SRV name, each address with its record's priority
/// and weight (a target "." says the service is not offered there).
async fn srv(
    dns: &TokioResolver,
    name: &str,
    transport: Transport,
    until: &mut Option<Instant>,
) -> Result<Vec<Target>, Failure> {
    let Some(lookup) = records(dns, name, RecordType::SRV, until).await? else {
        return Ok(Vec::new());
    };
    let records: Vec<_> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) if !s.target.is_root() => Some(s.clone()),
            _ => None,
        })
        .collect();
    let mut targets = Vec::new();
    for s in records {
        let host = s.target.to_ascii();
        // A target that does not resolve is left out; the others serve.
        match addresses(dns, &host, s.port, transport, s.priority, s.weight, until).await {
            Ok(mut t) => targets.append(&mut t),
            Err(Failure::Silent) => return Err(Failure::Silent),
            Err(Failure::Answered) => {}
        }
    }
    Ok(targets)
}

/// The A/AAAA addresses of `host`, as targets of one priority and weight.
async fn addresses(
    dns: &TokioResolver,
    host: &str,
    port: u16,
    transport: Transport,
    priority: u16,
    weight: u16,
    until: &mut Option<Instant>,
) -> Result<Vec<Target>, Failure> {
    let lookup = match dns.lookup_ip(host).await {
        Ok(l) => l,
        Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
        Err(e) => {
            tracing::debug!(host, "address lookup failed: {e}");
            return Err(failure(&e));
        }
    };
    hold(until, lookup.valid_until());
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    Ok(lookup
        .iter()
        .map(|ip| {
            let addr = SocketAddr::new(ip, port);
            Target {
                priority,
                weight,
                id: xxh3_64(format!("{name}:{port}/{addr}").as_bytes()),
                host: name.as_str().into(),
                transport,
                addr,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_into_queries() {
        let w = Wanted::from_key("sips:example.com:5071;transport=tcp").unwrap();
        assert_eq!(w.host, "example.com");
        assert_eq!(
            (w.port, w.transport, w.secure),
            (Some(5071), Some(Transport::Tcp), true)
        );
        assert_eq!(w.transports(), vec![Transport::Tls]);
        let w = Wanted::from_key("sip:example.com").unwrap();
        assert_eq!(
            w.transports(),
            vec![Transport::Udp, Transport::Tcp, Transport::Tls]
        );
        let w = Wanted::from_key("sip:example.com;transport=ws").unwrap();
        assert!(w.transports().is_empty(), "sipedge never dials WebSocket");
        let w = Wanted::from_key("sips:example.com;transport=udp").unwrap();
        assert!(w.transports().is_empty(), "sips: is TLS on every hop");
        assert!(Wanted::from_key("sip:10.0.0.1").is_none());
        assert!(Wanted::from_key("garbage").is_none());
    }
}
