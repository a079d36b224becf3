//! A crafted message per failure reason, and the messages that must pass.

use super::*;
use sip::HeaderIndex;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

/// A valid INVITE with SDP; `edit` rewrites its text first.
fn invite(edit: impl Fn(String) -> String) -> String {
    edit(format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: a84b4c76e66710@192.0.2.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@192.0.2.1>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    ))
}

fn response(code: u16, extra: &str) -> String {
    format!(
        "SIP/2.0 {code} Whatever\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
         From: <sip:alice@example.com>;tag=1\r\n\
         To: <sip:bob@example.com>;tag=2\r\n\
         Call-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn all() -> Rules {
    Rules::new(&[
        Check::Basic,
        Check::Sdp,
        Check::Headers,
        Check::RequestUri,
        Check::From,
        Check::To,
        Check::Contact,
    ])
}

fn run(text: &str, rules: Rules, transport: Transport) -> Result<(), Failure> {
    let mut idx = HeaderIndex::new();
    let m = sip::parse(text.as_bytes(), &mut idx).expect("the test message parses");
    check(&m, rules, transport)
}

#[track_caller]
fn fails(text: &str, want: Failure) {
    assert_eq!(run(text, all(), Transport::Udp), Err(want), "{text}");
}

fn without(header: &str) -> impl Fn(String) -> String + '_ {
    move |s: String| {
        s.lines()
            .filter(|l| !l.starts_with(&format!("{header}:")))
            .map(|l| format!("{l}\r\n"))
            .collect::<String>()
            .replacen("\r\n\r\n\r\n", "\r\n\r\n", 1)
    }
}

#[test]
fn a_valid_invite_passes_every_check() {
    assert_eq!(run(&invite(|s| s), all(), Transport::Udp), Ok(()));
    assert_eq!(
        run(
            &response(200, "Contact: <sip:b@192.0.2.2>\r\n"),
            all(),
            Transport::Udp
        ),
        Ok(())
    );
    // No rules: nothing is looked at.
    assert_eq!(
        run(
            &invite(without("Call-ID")),
            Rules::default(),
            Transport::Udp
        ),
        Ok(())
    );
}

#[test]
fn one_message_per_missing_header() {
    fails(&invite(without("Call-ID")), Failure::NoCallId);
    fails(&invite(without("CSeq")), Failure::NoCSeq);
    fails(&invite(without("From")), Failure::NoFrom);
    fails(&invite(without("To")), Failure::NoTo);
    fails(&invite(without("Via")), Failure::NoVia);
    fails(&invite(without("Max-Forwards")), Failure::NoMaxForwards);
    fails(&invite(without("Contact")), Failure::NoContact);
    fails(&invite(without("Content-Type")), Failure::NoContentType);
    // "Don't check Max-Forwards".
    let rules = Rules::new(&[Check::Basic, Check::NoMaxForwards]);
    assert_eq!(
        run(&invite(without("Max-Forwards")), rules, Transport::Udp),
        Ok(())
    );
}

#[test]
fn framing() {
    // No Content-Length: fine over UDP, not over a stream transport.
    let no_cl = invite(without("Content-Length"));
    assert_eq!(run(&no_cl, all(), Transport::Udp), Ok(()));
    assert_eq!(
        run(&no_cl, all(), Transport::Tcp),
        Err(Failure::NoContentLength)
    );
    // A shorter Content-Length ends the body (RFC 4475 §3.1.1.8), but the
    // body left is then not SDP.
    let short = invite(|s| {
        s.replace(
            &format!("Content-Length: {}", SDP.len()),
            "Content-Length: 10",
        )
    });
    fails(&short, Failure::SdpParse);
}

#[test]
fn path_belongs_to_register_only() {
    fails(
        &invite(|s| {
            s.replace(
                "Max-Forwards: 70\r\n",
                "Max-Forwards: 70\r\nPath: <sip:p@192.0.2.9;lr>\r\n",
            )
        }),
        Failure::PathNotRegister,
    );
    let register = invite(|s| {
        s.replace("INVITE sip:bob@example.com", "REGISTER sip:example.com")
            .replace("CSeq: 1 INVITE", "CSeq: 1 REGISTER")
            .replace(
                "Max-Forwards: 70\r\n",
                "Max-Forwards: 70\r\nPath: <sip:p@192.0.2.9;lr>\r\n",
            )
    });
    assert_eq!(run(&register, all(), Transport::Udp), Ok(()));
}

#[test]
fn replies_carry_what_their_code_promises() {
    for (code, needs, want) in [
        (405, "Allow: INVITE, ACK\r\n", Failure::NoAllow),
        (423, "Min-Expires: 3600\r\n", Failure::NoMinExpires),
        (
            407,
            "Proxy-Authenticate: Digest realm=\"x\", nonce=\"n\"\r\n",
            Failure::NoProxyAuthenticate,
        ),
        (420, "Unsupported: foo\r\n", Failure::NoUnsupported),
        (
            401,
            "WWW-Authenticate: Digest realm=\"x\", nonce=\"n\"\r\n",
            Failure::NoWwwAuthenticate,
        ),
    ] {
        fails(&response(code, ""), want);
        assert_eq!(
            run(&response(code, needs), all(), Transport::Udp),
            Ok(()),
            "{code}"
        );
    }
    // A 2xx to an INVITE needs a Contact.
    fails(&response(200, ""), Failure::NoContact);
}

#[test]
fn uris_and_hosts() {
    fails(
        &invite(|s| s.replace("INVITE sip:bob@example.com", "INVITE sip:bob@exa_mple.com")),
        Failure::RequestUriHost,
    );
    fails(
        &invite(|s| s.replace("INVITE sip:bob@example.com", "INVITE sip:bob@[::1")),
        Failure::RequestUriParse,
    );
    fails(
        &invite(|s| {
            s.replace(
                "From: <sip:alice@example.com>",
                "From: <sip:alice@-bad.example.com>",
            )
        }),
        Failure::FromHost,
    );
    fails(
        &invite(|s| {
            s.replace(
                "From: <sip:alice@example.com>;tag=1",
                "From: <sip:alice@example.com;tag=1",
            )
        }),
        Failure::HeaderParse,
    );
    fails(
        &invite(|s| s.replace("To: <sip:bob@example.com>", "To: <sip:bob@example..com>")),
        Failure::ToHost,
    );
    fails(
        &invite(|s| {
            s.replace(
                "Contact: <sip:alice@192.0.2.1>",
                "Contact: <sip:alice@192.0.2.1",
            )
        }),
        Failure::HeaderParse,
    );
    // Only one header's check: a header that does not parse is that
    // check's error.
    for (check, from, to, failure) in [
        (
            Check::From,
            "From: <sip:alice@example.com>;tag=1",
            "From: <sip:alice@example.com;tag=1",
            Failure::FromParse,
        ),
        (
            Check::To,
            "To: <sip:bob@example.com>",
            "To: \"unterminated <sip:bob@example.com>",
            Failure::ToParse,
        ),
        (
            Check::Contact,
            "Contact: <sip:alice@192.0.2.1>",
            "Contact: <sip:alice@192.0.2.1",
            Failure::ContactParse,
        ),
    ] {
        let bad = invite(|s| s.replace(from, to));
        assert_eq!(
            run(&bad, Rules::new(&[check]), Transport::Udp),
            Err(failure)
        );
    }
    // A URI needs a scheme: `user@host` in <> is not one, nor is a scheme
    // with a byte no scheme may hold.
    for (check, from, to, failure) in [
        (
            Check::From,
            "From: <sip:alice@example.com>",
            "From: <alice@127.0.0.3:5680>",
            Failure::FromParse,
        ),
        (
            Check::To,
            "To: <sip:bob@example.com>",
            "To: <bob@example.com>",
            Failure::ToParse,
        ),
        (
            Check::Contact,
            "Contact: <sip:alice@192.0.2.1>",
            "Contact: <alice@192.0.2.1>",
            Failure::ContactParse,
        ),
        (
            Check::From,
            "From: <sip:alice@example.com>",
            "From: <s\u{a4}p:alice@example.com>",
            Failure::FromParse,
        ),
        (
            Check::To,
            "To: <sip:bob@example.com>",
            "To: <:bob@example.com>",
            Failure::ToParse,
        ),
    ] {
        let bad = invite(|s| s.replace(from, to));
        let rules = Rules::new(&[check]);
        assert_eq!(run(&bad, rules, Transport::Udp), Err(failure), "{to}");
    }
    let raw = invite(|s| s).into_bytes();
    let at = memchr::memmem::find(&raw, b"<sip:alice").expect("From") + 2;
    let mut latin1 = raw.clone();
    latin1[at] = 0xa4;
    let mut idx = HeaderIndex::new();
    let m = sip::parse(&latin1, &mut idx).expect("parses");
    let rules = Rules::new(&[Check::From]);
    assert_eq!(check(&m, rules, Transport::Udp), Err(Failure::FromParse));
    // Non-SIP URIs have no host to check (RFC 4475 §3.3.4).
    let tel = invite(|s| s.replace("To: <sip:bob@example.com>", "To: <tel:+1-201-555-0123>"));
    assert_eq!(run(&tel, all(), Transport::Udp), Ok(()));
}

#[test]
fn header_grammar() {
    for broken in [
        "Max-Forwards: 300\r\n",
        "Expires: soon\r\n",
        "Content-Type: sdp\r\n",
        "Supported: timer,,100rel\r\n",
        "Record-Route: <sip:p@192.0.2.9;lr\r\n",
    ] {
        let text = invite(|s| {
            s.replace(
                "Max-Forwards: 70\r\n",
                &format!("Max-Forwards: 70\r\n{broken}"),
            )
        });
        // Put the broken header after the good one it may shadow.
        let rules = Rules::new(&[Check::Headers]);
        assert_eq!(
            run(&text, rules, Transport::Udp),
            Err(Failure::HeaderParse),
            "{broken}"
        );
    }
}

#[test]
fn sdp_integrity() {
    fails(
        &invite(|s| s.replace("v=0\r\n", "v=1\r\n")),
        Failure::SdpParse,
    );
    fails(
        &invite(|s| s.replace("c=IN IP4 192.0.2.1", "c=IN IPX 192.0.2.1")),
        Failure::SdpParse,
    );
    // Not SDP: not checked as SDP.
    let text = invite(|s| {
        s.replace("application/sdp", "text/plain")
            .replace("v=0\r\n", "v=1\r\n")
    });
    assert_eq!(run(&text, all(), Transport::Udp), Ok(()));
}

#[test]
fn names_and_tokens_are_unique() {
    let mut tokens: Vec<&str> = Failure::ALL.iter().map(|f| f.token()).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), Failure::ALL.len());
    for c in Check::ALL {
        assert_eq!(Check::from_name(c.name()), Some(c));
    }
    assert_eq!(Check::from_name("everything"), None);
}

/// The validate stage in the pipeline: reject and tag.
mod in_the_pipeline {
    use crate::config;
    use crate::proxy::{Edge, Outcome};
    use crate::stats::Event;
    use crate::validate::Failure;
    use std::net::SocketAddr;

    const CALLER: &str = "192.0.2.10:5060";
    const DEST: &str = "127.0.0.1:5070";

    fn edge(extra: &str) -> Edge {
        let text = format!(
            "[node]\nid = \"n\"\n[[edge]]\nlisten = [\"udp:127.0.0.1:5060\"]\n{extra}\n\
             [[edge.destination]]\nuri = \"sip:{DEST}\"\n"
        );
        let cfg = config::parse(&text, "t.toml").unwrap();
        Edge::new(
            &cfg.edges[0],
            &cfg.node,
            &crate::keyring::KeyRing::single(b"unit-test-secret-0123456789"),
        )
    }

    fn no_max_forwards() -> Vec<u8> {
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
          Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKv1\r\n\
          From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n\
          Call-ID: v1@192.0.2.10\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            .to_vec()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Hands the request without Max-Forwards from the caller to `e` and
    /// checks that something is sent to `to`.
    #[track_caller]
    fn assert_sent_to(e: &Edge, w: &mut crate::proxy::Worker, to: &str) {
        let o = w.handle(
            e,
            &no_max_forwards(),
            crate::flow::Flow::udp(0, addr(CALLER)),
            e.epoch(),
        );
        assert!(
            matches!(o, Outcome::Send(crate::flow::Flow { remote: got, .. }) if got == addr(to)),
            "{o:?}"
        );
    }

    #[test]
    fn reject_answers_400_naming_the_check_and_counts_it() {
        let e = edge("validate = [\"basic\"]");
        let mut w = e.worker();
        assert_sent_to(&e, &mut w, CALLER);
        let out = String::from_utf8_lossy(w.output()).into_owned();
        assert!(
            out.starts_with("SIP/2.0 400 No Max-Forwards Header\r\n"),
            "{out}"
        );
        assert_eq!(e.invalid_counts(), [(Failure::NoMaxForwards, 1)]);
        // Without the check, the same request goes on.
        let e = edge("validate = [\"basic\", \"no-max-forwards\"]");
        let mut w = e.worker();
        assert_sent_to(&e, &mut w, DEST);
    }

    #[test]
    fn responses_and_acks_that_fail_are_dropped_never_answered() {
        let e = edge("validate = [\"basic\"]");
        let mut w = e.worker();
        let ack = String::from_utf8(no_max_forwards())
            .unwrap()
            .replace("OPTIONS", "ACK");
        let o = w.handle(
            &e,
            ack.as_bytes(),
            crate::flow::Flow::udp(0, addr(CALLER)),
            e.epoch(),
        );
        assert_eq!(o, Outcome::Drop(Event::Invalid));
        let resp = b"SIP/2.0 405 Method Not Allowed\r\n\
                     Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsEx\r\n\
                     From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n\
                     Call-ID: r1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let o = w.handle(&e, resp, crate::flow::Flow::udp(0, addr(DEST)), e.epoch());
        assert_eq!(o, Outcome::Drop(Event::Invalid));
        assert_eq!(w.stats.get(Event::Invalid), 2);
    }

    #[test]
    fn tag_forwards_with_x_validate_fail() {
        let e = edge("validate = [\"basic\"]\non_invalid = \"tag\"");
        let mut w = e.worker();
        assert_sent_to(&e, &mut w, DEST);
        let out = String::from_utf8_lossy(w.output()).into_owned();
        assert!(
            out.contains("\r\nX-Validate-Fail: no-max-forwards\r\n"),
            "{out}"
        );
        assert!(
            out.starts_with("OPTIONS sip:bob@example.com SIP/2.0\r\n"),
            "{out}"
        );
    }

    #[test]
    fn tag_on_a_transactional_edge_marks_the_request_not_the_100() {
        let e = edge("validate = [\"basic\"]\non_invalid = \"tag\"\ninsertion = \"transactional\"");
        let mut w = e.worker();
        let invite = String::from_utf8(no_max_forwards())
            .unwrap()
            .replace("OPTIONS", "INVITE")
            .replace(
                "Content-Length: 0",
                "Contact: <sip:alice@192.0.2.10>\r\nContent-Length: 0",
            );
        let o = w.handle(
            &e,
            invite.as_bytes(),
            crate::flow::Flow::udp(0, addr(CALLER)),
            e.epoch(),
        );
        assert_eq!(o, Outcome::Queued);
        let sent: Vec<(String, SocketAddr)> = w
            .sends()
            .iter()
            .map(|(b, to)| (String::from_utf8_lossy(b).into_owned(), to.remote))
            .collect();
        assert_eq!(sent.len(), 2);
        for (text, to) in sent {
            let tagged = text.contains("X-Validate-Fail: no-max-forwards");
            assert_eq!(tagged, to == addr(DEST), "{text}");
        }
    }
}

/// Every message of the conformance corpus that the manifest says a proxy
/// forwards passes every check (with `no-max-forwards`, which RFC 2543
/// peers need): the checks hold the bar of RFC 3261 and RFC 4475, not
/// stricter.
#[test]
fn the_corpus_messages_to_forward_pass_every_check() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance");
    let rules = Rules::new(&[
        Check::Basic,
        Check::Sdp,
        Check::Headers,
        Check::RequestUri,
        Check::From,
        Check::To,
        Check::Contact,
        Check::NoMaxForwards,
    ]);
    let mut checked = 0;
    let mut failed = Vec::new();
    for set in ["torture", "realworld"] {
        let manifest =
            std::fs::read_to_string(root.join(set).join("MANIFEST.tsv")).expect("manifest");
        for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let c: Vec<&str> = line.split('\t').collect();
            if c[5] != "forward" {
                continue;
            }
            let bytes = std::fs::read(root.join(set).join(c[0])).expect("corpus file");
            let mut idx = HeaderIndex::new();
            let Ok(m) = sip::parse(&bytes, &mut idx) else {
                continue;
            };
            checked += 1;
            if let Err(f) = check(&m, rules, Transport::Udp) {
                failed.push(format!("{}: {f}", c[0]));
            }
        }
    }
    assert!(checked > 30, "{checked}");
    assert!(failed.is_empty(), "{failed:#?}");
}
