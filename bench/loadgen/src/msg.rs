//! Message text: the identifiers sipload writes into Via branches,
//! Call-IDs and To tags — so that a message leads straight to its call's
//! slot — and the builders of every message of the call flow (the same
//! messages as SIPp's `uac.xml` / `uas.xml` scenarios in `tests/scenarios`).

use sip::{HeaderName, Message, NameAddr, Uri, Writer};
use std::net::SocketAddr;

/// The RFC 3261 §8.1.1.7 magic cookie every branch starts with.
pub const COOKIE: &[u8] = b"z9hG4bK";

/// Most Record-Route entries a 200 OK may carry.
pub const MAX_ROUTES: usize = 16;

/// Which UAC transaction a branch belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Txn {
    /// The INVITE (and the ACK of a non-2xx final response, RFC 3261 §17.1.1.3).
    Invite,
    /// The ACK of a 2xx, a transaction of its own (§13.2.2.4).
    Ack,
    /// The BYE.
    Bye,
    /// A REGISTER (`--flow register`).
    Register,
}

impl Txn {
    fn letter(self) -> u8 {
        match self {
            Txn::Invite => b'I',
            Txn::Ack => b'A',
            Txn::Bye => b'B',
            Txn::Register => b'R',
        }
    }

    fn from_letter(c: u8) -> Option<Txn> {
        match c {
            b'I' => Some(Txn::Invite),
            b'A' => Some(Txn::Ack),
            b'B' => Some(Txn::Bye),
            b'R' => Some(Txn::Register),
            _ => None,
        }
    }
}

/// What a UAC branch says: `z9hG4bK-{run}-{slot}-{call}.{I|A|B|R}` (hex).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BranchId {
    /// The run's random tag, so stale responses of an earlier run are strays.
    pub run: u32,
    /// Slot of the call in the UAC's table.
    pub slot: u32,
    /// The call's number in this run.
    pub call: u64,
    /// Which transaction.
    pub txn: Txn,
}

/// Writes `v` in lower-case hex.
pub fn write_hex(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Parses 1 to 16 lower-case hex digits.
pub fn parse_hex(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(d))
    })
}

/// Splits `a-b-c` into three hex numbers.
fn three_hex(b: &[u8]) -> Option<[u64; 3]> {
    let mut it = b.split(|&c| c == b'-');
    let r = [
        parse_hex(it.next()?)?,
        parse_hex(it.next()?)?,
        parse_hex(it.next()?)?,
    ];
    it.next().is_none().then_some(r)
}

/// Writes a UAC branch (see [`BranchId`]).
pub fn write_branch(out: &mut Vec<u8>, run: u32, slot: u32, call: u64, txn: Txn) {
    out.extend_from_slice(COOKIE);
    out.push(b'-');
    write_hex(out, run.into());
    out.push(b'-');
    write_hex(out, slot.into());
    out.push(b'-');
    write_hex(out, call);
    out.push(b'.');
    out.push(txn.letter());
}

/// Reads a branch written by [`write_branch`]; None for any other.
pub fn parse_branch(b: &[u8]) -> Option<BranchId> {
    let rest = b.strip_prefix(COOKIE)?.strip_prefix(b"-")?;
    let (&letter, rest) = rest.split_last()?;
    let rest = rest.strip_suffix(b".")?;
    let [run, slot, call] = three_hex(rest)?;
    Some(BranchId {
        run: u32::try_from(run).ok()?,
        slot: u32::try_from(slot).ok()?,
        call,
        txn: Txn::from_letter(letter)?,
    })
}

/// Writes a Call-ID: `{call}-{slot}-{run}@sipload` (hex).
pub fn write_call_id(out: &mut Vec<u8>, run: u32, slot: u32, call: u64) {
    write_hex(out, call);
    out.push(b'-');
    write_hex(out, slot.into());
    out.push(b'-');
    write_hex(out, run.into());
    out.extend_from_slice(b"@sipload");
}

/// Reads a Call-ID written by [`write_call_id`]: (run, slot, call).
pub fn parse_call_id(b: &[u8]) -> Option<(u32, u32, u64)> {
    let [call, slot, run] = three_hex(b.strip_suffix(b"@sipload")?)?;
    Some((u32::try_from(run).ok()?, u32::try_from(slot).ok()?, call))
}

/// Writes a UAS To tag: `{run}-{slot}-{gen}` (hex).
pub fn write_tag(out: &mut Vec<u8>, run: u32, slot: u32, gen: u32) {
    write_hex(out, run.into());
    out.push(b'-');
    write_hex(out, slot.into());
    out.push(b'-');
    write_hex(out, gen.into());
}

/// Reads a tag written by [`write_tag`]: (run, slot, gen).
pub fn parse_tag(b: &[u8]) -> Option<(u32, u32, u32)> {
    let [run, slot, gen] = three_hex(b)?;
    Some((
        u32::try_from(run).ok()?,
        u32::try_from(slot).ok()?,
        u32::try_from(gen).ok()?,
    ))
}

/// FNV-1a, 64 bits: the key of a Call-ID in the UAS's table.
pub fn hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The SDP offer/answer both sides send (SIPp's default body).
pub fn sdp(addr: SocketAddr) -> Vec<u8> {
    let (v, ip) = match addr {
        SocketAddr::V4(a) => ("IP4", a.ip().to_string()),
        SocketAddr::V6(a) => ("IP6", a.ip().to_string()),
    };
    format!(
        "v=0\r\no=user1 53655765 2353687637 IN {v} {ip}\r\ns=-\r\nc=IN {v} {ip}\r\n\
         t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    .into_bytes()
}

/// The UAC's fixed text, rendered once.
#[derive(Debug)]
pub struct UacText {
    run: u32,
    /// `sip:service@proxy`: Request-URI of the INVITE.
    ruri: Vec<u8>,
    /// `SIP/2.0/UDP local`: the Via before `;branch=`.
    via: Vec<u8>,
    /// From value before the tag's number.
    from: Vec<u8>,
    /// The To value of the INVITE.
    to: Vec<u8>,
    contact: Vec<u8>,
    sdp: Vec<u8>,
    /// `sip:proxy`: Request-URI of a REGISTER.
    registrar: Vec<u8>,
    /// `ip:port` of the UAC, for a REGISTER's Contact.
    local: Vec<u8>,
}

/// What a UAC needs from a 2xx to the INVITE to send ACK and BYE
/// (RFC 3261 §12.1.2, §12.2.1.1).
#[derive(Clone, Copy, Debug)]
pub struct DialogText<'a> {
    /// Request-URI of ACK and BYE.
    pub ruri: &'a [u8],
    /// Route values, in order (the Record-Route set reversed; for a strict
    /// first hop without its first entry).
    pub routes: [&'a [u8]; MAX_ROUTES],
    /// How many of `routes` are used.
    pub n_routes: usize,
    /// With a strict-routing first hop: the remote target, which goes last
    /// in Route (§12.2.1.1).
    pub strict_target: Option<&'a [u8]>,
    /// The To value of the 2xx (with the UAS's tag).
    pub to: &'a [u8],
    /// Where to send: the first Route's URI, or the remote target.
    pub next_hop: SocketAddr,
}

/// The address a URI names: an IP literal and port (5060 by default).
/// Host names are refused: sipload resolves nothing.
pub fn uri_addr(uri: &[u8]) -> Result<SocketAddr, &'static str> {
    let u = Uri::parse(uri).map_err(|_| "unparseable URI")?;
    let ip = u.host.ip().ok_or("URI host is not an IP address")?;
    Ok(SocketAddr::new(ip, u.port.unwrap_or(5060)))
}

/// Reads the dialog a 2xx to our INVITE establishes.
pub fn dialog_from_2xx<'a>(msg: &Message<'a>) -> Result<DialogText<'a>, &'static str> {
    let to = msg.first_value(HeaderName::To).ok_or("2xx without To")?;
    let contact = msg
        .elements(HeaderName::Contact)
        .next()
        .ok_or("2xx without Contact")?;
    let target = NameAddr::parse(contact.text)
        .map_err(|_| "bad Contact")?
        .uri;
    let mut rr: [&[u8]; MAX_ROUTES] = [b""; MAX_ROUTES];
    let mut n = 0;
    for e in msg.elements(HeaderName::RecordRoute) {
        if n == MAX_ROUTES {
            return Err("too many Record-Route entries");
        }
        rr[n] = e.text;
        n += 1;
    }
    // §12.1.2: the route set is the Record-Route list in reverse order.
    rr[..n].reverse();
    let mut d = DialogText {
        ruri: target,
        routes: rr,
        n_routes: n,
        strict_target: None,
        to,
        next_hop: uri_addr(target)?,
    };
    if n > 0 {
        let first = NameAddr::parse(rr[0]).map_err(|_| "bad Record-Route")?;
        let first_uri = first.parse_uri().map_err(|_| "bad Record-Route URI")?;
        d.next_hop = uri_addr(first.uri)?;
        if !first_uri.is_loose() {
            // §12.2.1.1 strict routing: the first route becomes the
            // Request-URI and the remote target goes last in Route.
            d.ruri = first.uri;
            d.routes.copy_within(1..n, 0);
            d.n_routes = n - 1;
            d.strict_target = Some(target);
        }
    }
    Ok(d)
}

impl UacText {
    /// Renders the fixed parts for a UAC at `local` calling `service` at
    /// `proxy` over `transport` (`UDP`, `TCP`).
    pub fn new(
        local: SocketAddr,
        proxy: SocketAddr,
        service: &str,
        run: u32,
        transport: &str,
    ) -> UacText {
        UacText {
            run,
            ruri: format!("sip:{service}@{proxy}").into_bytes(),
            via: format!("SIP/2.0/{transport} {local}").into_bytes(),
            from: format!("sipload <sip:sipload@{local}>;tag=").into_bytes(),
            to: format!("{service} <sip:{service}@{proxy}>").into_bytes(),
            contact: format!("<sip:sipload@{local};transport={transport}>").into_bytes(),
            sdp: sdp(local),
            registrar: format!("sip:{proxy}").into_bytes(),
            local: local.to_string().into_bytes(),
        }
    }

    fn via(&self, w: &mut Writer<'_>, slot: u32, call: u64, txn: Txn) {
        w.header_with(b"Via", |o| {
            o.extend_from_slice(&self.via);
            o.extend_from_slice(b";branch=");
            write_branch(o, self.run, slot, call, txn);
            o.extend_from_slice(b";rport");
        });
    }

    fn from(&self, w: &mut Writer<'_>, call: u64) {
        w.header_with(b"From", |o| {
            o.extend_from_slice(&self.from);
            write_hex(o, self.run.into());
            o.push(b'-');
            write_hex(o, call);
        });
    }

    fn call_id(&self, w: &mut Writer<'_>, slot: u32, call: u64) {
        w.header_with(b"Call-ID", |o| write_call_id(o, self.run, slot, call));
    }

    /// The INVITE of call `call` in slot `slot`.
    pub fn invite(&self, out: &mut Vec<u8>, slot: u32, call: u64) {
        let mut w = Writer::request(out, b"INVITE", &self.ruri);
        self.via(&mut w, slot, call, Txn::Invite);
        self.from(&mut w, call);
        w.header(b"To", &self.to);
        self.call_id(&mut w, slot, call);
        w.header(b"CSeq", b"1 INVITE")
            .header(b"Contact", &self.contact)
            .header(b"Max-Forwards", b"70")
            .header(b"Subject", b"sipload")
            .header(b"Content-Type", b"application/sdp");
        w.finish(&self.sdp);
    }

    /// The REGISTER of call `call`: a phone of its own (address of record
    /// `sip:u{run}-{call}@example.com`, in hex) binding its Contact for an
    /// hour, as `bench/scenarios/register.xml` does for SIPp.
    pub fn register(&self, out: &mut Vec<u8>, slot: u32, call: u64) {
        let mut w = Writer::request(out, b"REGISTER", &self.registrar);
        self.via(&mut w, slot, call, Txn::Register);
        let aor = |o: &mut Vec<u8>| {
            o.extend_from_slice(b"<sip:u");
            write_hex(o, self.run.into());
            o.push(b'-');
            write_hex(o, call);
            o.extend_from_slice(b"@example.com>");
        };
        w.header_with(b"From", |o| {
            aor(o);
            o.extend_from_slice(b";tag=r");
            write_hex(o, call);
        });
        w.header_with(b"To", aor);
        self.call_id(&mut w, slot, call);
        w.header(b"CSeq", b"1 REGISTER");
        w.header_with(b"Contact", |o| {
            o.extend_from_slice(b"<sip:u");
            write_hex(o, call);
            o.push(b'@');
            o.extend_from_slice(&self.local);
            o.extend_from_slice(b">;expires=3600");
        });
        w.header(b"Max-Forwards", b"70");
        w.finish(b"");
    }

    /// The ACK of a non-2xx final response: same branch and Request-URI as
    /// the INVITE, the response's To (RFC 3261 §17.1.1.3).
    pub fn ack_non2xx(&self, out: &mut Vec<u8>, slot: u32, call: u64, to: &[u8]) {
        let mut w = Writer::request(out, b"ACK", &self.ruri);
        self.via(&mut w, slot, call, Txn::Invite);
        self.from(&mut w, call);
        w.header(b"To", to);
        self.call_id(&mut w, slot, call);
        w.header(b"CSeq", b"1 ACK").header(b"Max-Forwards", b"70");
        w.finish(b"");
    }

    /// ACK (`txn` = Ack, CSeq 1) or BYE (`txn` = Bye, CSeq 2) inside the
    /// dialog `d`, built like SIPp's `[routes]` / `[next_url]`.
    pub fn in_dialog(&self, out: &mut Vec<u8>, txn: Txn, slot: u32, call: u64, d: &DialogText) {
        let (method, cseq): (&[u8], &[u8]) = match txn {
            Txn::Bye => (b"BYE", b"2 BYE"),
            _ => (b"ACK", b"1 ACK"),
        };
        let mut w = Writer::request(out, method, d.ruri);
        self.via(&mut w, slot, call, txn);
        if d.n_routes > 0 || d.strict_target.is_some() {
            w.header_with(b"Route", |o| {
                for (i, r) in d.routes[..d.n_routes].iter().enumerate() {
                    if i > 0 {
                        o.extend_from_slice(b", ");
                    }
                    o.extend_from_slice(r);
                }
                if let Some(t) = d.strict_target {
                    if d.n_routes > 0 {
                        o.extend_from_slice(b", ");
                    }
                    o.push(b'<');
                    o.extend_from_slice(t);
                    o.push(b'>');
                }
            });
        }
        self.from(&mut w, call);
        w.header(b"To", d.to);
        self.call_id(&mut w, slot, call);
        w.header(b"CSeq", cseq)
            .header(b"Contact", &self.contact)
            .header(b"Max-Forwards", b"70");
        w.finish(b"");
    }
}

/// A UAS's To tag: (run, slot, generation).
pub type Tag = (u32, u32, u32);

/// Writes a response to `req` the way SIPp's `uas.xml` does: every Via
/// line exactly as received and in order, the Record-Route lines when
/// `record_route`, From, To (with `tag` added when given), Call-ID and
/// CSeq, then Contact and the body when given.
#[allow(clippy::too_many_arguments)]
pub fn response(
    out: &mut Vec<u8>,
    code: u16,
    reason: &[u8],
    req: &Message<'_>,
    tag: Option<Tag>,
    record_route: bool,
    contact: Option<&[u8]>,
    body: Option<&[u8]>,
) {
    let buf = req.buf();
    let mut w = Writer::response(out, code, reason);
    for h in req.headers() {
        match h.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                w.raw_line(&buf[h.line.range()]);
            }
            HeaderName::RecordRoute if record_route => {
                w.raw_line(&buf[h.line.range()]);
            }
            HeaderName::To => match tag {
                Some((run, slot, gen)) => {
                    w.header_with(b"To", |o| {
                        o.extend_from_slice(req.value(h));
                        o.extend_from_slice(b";tag=");
                        write_tag(o, run, slot, gen);
                    });
                }
                None => {
                    w.raw_line(&buf[h.line.range()]);
                }
            },
            _ => {}
        }
    }
    if let Some(c) = contact {
        w.header(b"Contact", c);
    }
    match body {
        Some(b) => {
            w.header(b"Content-Type", b"application/sdp");
            w.finish(b);
        }
        None => w.finish(b""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip::{parse, HeaderIndex};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn identifiers_round_trip() {
        let mut b = Vec::new();
        for txn in [Txn::Invite, Txn::Ack, Txn::Bye, Txn::Register] {
            b.clear();
            write_branch(&mut b, 0xdead_beef, 17, 0xabcdef0123, txn);
            assert!(b.starts_with(COOKIE));
            assert_eq!(
                parse_branch(&b),
                Some(BranchId {
                    run: 0xdead_beef,
                    slot: 17,
                    call: 0xabcdef0123,
                    txn
                })
            );
        }
        b.clear();
        write_call_id(&mut b, 7, 0, u64::MAX);
        assert_eq!(parse_call_id(&b), Some((7, 0, u64::MAX)));
        b.clear();
        write_tag(&mut b, 1, 2, 3);
        assert_eq!(b, b"1-2-3");
        assert_eq!(parse_tag(&b), Some((1, 2, 3)));
        for bad in [
            &b"z9hG4bK-1-2-3"[..],
            b"z9hG4bK-1-2-3.X",
            b"z9hG4bK-1-2.I",
            b"z9hG4bK-1-2-3-4.I",
            b"z9hG4bK-1--3.I",
            b"z9hG4bK-1-2-G.I",
            b"z9hG4bKabc",
            b"",
        ] {
            assert_eq!(parse_branch(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_call_id(b"1-2-3@elsewhere"), None);
        assert_eq!(parse_tag(b"100000000-1-1"), None);
    }

    #[test]
    fn invite_parses_with_the_workspace_parser() {
        let t = UacText::new(
            addr("127.0.0.1:5062"),
            addr("127.0.0.1:5060"),
            "service",
            9,
            "UDP",
        );
        let mut out = Vec::new();
        t.invite(&mut out, 3, 42);
        let mut idx = HeaderIndex::new();
        let m = parse(&out, &mut idx).unwrap();
        assert_eq!(m.method(), sip::Method::Invite);
        assert_eq!(m.uri(), b"sip:service@127.0.0.1:5060");
        let (_, via) = m.top_via().unwrap();
        assert_eq!(via.rport, sip::Rport::Requested);
        assert_eq!(via.port, Some(5062));
        let b = parse_branch(via.branch.unwrap()).unwrap();
        assert_eq!((b.run, b.slot, b.call, b.txn), (9, 3, 42, Txn::Invite));
        assert_eq!(parse_call_id(m.call_id().unwrap()), Some((9, 3, 42)));
        assert_eq!(m.max_forwards().unwrap(), Some(70));
        assert_eq!(m.cseq().unwrap().method, b"INVITE");
        assert!(m.body().starts_with(b"v=0\r\n"));
        assert_eq!(m.content_length(), Some(m.body().len()));
        let from = NameAddr::parse(m.first_value(HeaderName::From).unwrap()).unwrap();
        assert!(from.tag().is_some());
        let c = NameAddr::parse(m.first_value(HeaderName::Contact).unwrap()).unwrap();
        assert_eq!(uri_addr(c.uri), Ok(addr("127.0.0.1:5062")));
    }

    /// An INVITE as a proxy forwards it: its own Via on top, two
    /// Record-Routes (an outer and an inner proxy).
    fn proxied_invite() -> Vec<u8> {
        let t = UacText::new(
            addr("127.0.0.1:5062"),
            addr("127.0.0.1:5060"),
            "service",
            9,
            "UDP",
        );
        let mut inv = Vec::new();
        t.invite(&mut inv, 3, 42);
        let text = String::from_utf8(inv).unwrap();
        let (first, rest) = text.split_once("\r\n").unwrap();
        format!(
            "{first}\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKproxy1\r\n\
             Record-Route: <sip:127.0.0.1:5060;lr;tok=abc>\r\n\
             Record-Route: <sip:127.0.0.2:5060;lr>\r\n{rest}"
        )
        .into_bytes()
    }

    #[test]
    fn uas_answer_echoes_vias_and_record_route() {
        let inv = proxied_invite();
        let mut idx = HeaderIndex::new();
        let req = parse(&inv, &mut idx).unwrap();
        let mut out = Vec::new();
        let sdp = sdp(addr("127.0.0.1:5070"));
        response(
            &mut out,
            200,
            b"OK",
            &req,
            Some((5, 6, 7)),
            true,
            Some(b"<sip:127.0.0.1:5070;transport=UDP>"),
            Some(&sdp),
        );
        let mut idx2 = HeaderIndex::new();
        let res = parse(&out, &mut idx2).unwrap();
        assert_eq!(res.status(), Some(200));
        let vias: Vec<&[u8]> = res.elements(HeaderName::Via).map(|e| e.text).collect();
        let sent: Vec<&[u8]> = req.elements(HeaderName::Via).map(|e| e.text).collect();
        assert_eq!(vias, sent);
        assert_eq!(vias.len(), 2);
        assert_eq!(res.count(HeaderName::RecordRoute), 2);
        let to = NameAddr::parse(res.first_value(HeaderName::To).unwrap()).unwrap();
        assert_eq!(to.tag().and_then(parse_tag), Some((5, 6, 7)));
        assert_eq!(res.call_id(), req.call_id());
        assert_eq!(res.body(), &sdp[..]);

        // The UAC's view of that 200: route set reversed, next hop the
        // inner proxy (the last Record-Route), target the UAS.
        let d = dialog_from_2xx(&res).unwrap();
        assert_eq!(d.ruri, b"sip:127.0.0.1:5070;transport=UDP");
        assert_eq!(
            &d.routes[..d.n_routes],
            &[
                &b"<sip:127.0.0.2:5060;lr>"[..],
                b"<sip:127.0.0.1:5060;lr;tok=abc>"
            ]
        );
        assert_eq!(d.next_hop, addr("127.0.0.2:5060"));
        let t = UacText::new(
            addr("127.0.0.1:5062"),
            addr("127.0.0.1:5060"),
            "service",
            9,
            "UDP",
        );
        let mut bye = Vec::new();
        t.in_dialog(&mut bye, Txn::Bye, 3, 42, &d);
        let mut idx3 = HeaderIndex::new();
        let m = parse(&bye, &mut idx3).unwrap();
        assert_eq!(m.method(), sip::Method::Bye);
        assert_eq!(m.uri(), b"sip:127.0.0.1:5070;transport=UDP");
        let routes: Vec<&[u8]> = m.elements(HeaderName::Route).map(|e| e.text).collect();
        assert_eq!(routes, &d.routes[..2]);
        assert_eq!(m.cseq().unwrap().number, 2);
        let to = NameAddr::parse(m.first_value(HeaderName::To).unwrap()).unwrap();
        assert_eq!(to.tag().and_then(parse_tag), Some((5, 6, 7)));
        let b = parse_branch(m.top_via().unwrap().1.branch.unwrap()).unwrap();
        assert_eq!(b.txn, Txn::Bye);

        // 100 Trying: no tag, no Record-Route, no Contact.
        out.clear();
        response(&mut out, 100, b"Trying", &req, None, false, None, None);
        let mut idx4 = HeaderIndex::new();
        let m = parse(&out, &mut idx4).unwrap();
        assert_eq!(m.status(), Some(100));
        assert_eq!(m.count(HeaderName::RecordRoute), 0);
        assert_eq!(m.count(HeaderName::Via), 2);
        assert_eq!(m.content_length(), Some(0));
    }

    #[test]
    fn dialog_without_record_route_goes_to_the_contact_and_strict_routes_work() {
        let direct =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1-2-3.I\r\n\
            To: <sip:service@127.0.0.1:5070>;tag=x\r\nCall-ID: 3-2-1@sipload\r\nCSeq: 1 INVITE\r\n\
            Contact: <sip:127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n";
        let mut idx = HeaderIndex::new();
        let m = parse(direct, &mut idx).unwrap();
        let d = dialog_from_2xx(&m).unwrap();
        assert_eq!(d.n_routes, 0);
        assert_eq!(d.next_hop, addr("127.0.0.1:5070"));
        assert_eq!(d.ruri, b"sip:127.0.0.1:5070");

        let strict =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1-2-3.I\r\n\
            Record-Route: <sip:127.0.0.1:5060>\r\n\
            To: <sip:service@127.0.0.1:5070>;tag=x\r\nCall-ID: 3-2-1@sipload\r\nCSeq: 1 INVITE\r\n\
            Contact: <sip:127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n";
        let m = parse(strict, &mut idx).unwrap();
        let d = dialog_from_2xx(&m).unwrap();
        assert_eq!(d.ruri, b"sip:127.0.0.1:5060");
        assert_eq!(d.n_routes, 0);
        assert_eq!(d.strict_target, Some(&b"sip:127.0.0.1:5070"[..]));
        assert_eq!(d.next_hop, addr("127.0.0.1:5060"));

        let named = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1-2-3.I\r\n\
            To: <sip:service@example.com>;tag=x\r\nCall-ID: 3-2-1@sipload\r\nCSeq: 1 INVITE\r\n\
            Contact: <sip:uas@example.com>\r\nContent-Length: 0\r\n\r\n";
        let m = parse(named, &mut idx).unwrap();
        assert!(dialog_from_2xx(&m).is_err());
    }
}
