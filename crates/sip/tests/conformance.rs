//! Every message of the conformance corpus (RFC 4475, RFC 5118 and
//! real-world samples) through the parser: never a panic, and every message
//! the manifests call valid parses with all the headers a proxy reads.

use sip::{parse, HeaderIndex, HeaderName, Message, NameAddr, Scheme, Uri, Via};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    std::env::var_os("SIPEDGE_CONFORMANCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
        })
}

struct Case {
    file: PathBuf,
    class: String,
    expect: String,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for set in ["torture", "realworld"] {
        let dir = corpus_dir().join(set);
        let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let cols: Vec<&str> = line.split('\t').collect();
            out.push(Case {
                file: dir.join(cols[0]),
                class: cols[4].to_string(),
                expect: cols[5].to_string(),
            });
        }
    }
    out
}

/// Everything a forwarding proxy reads from a message.
fn read_all(m: &Message<'_>) -> Result<(), String> {
    let (_, via) = m.top_via().map_err(|e| format!("top Via: {e}"))?;
    let _ = via.branch;
    for e in m.elements(HeaderName::Via) {
        Via::parse(e.text)
            .map_err(|err| format!("Via {:?}: {err}", String::from_utf8_lossy(e.text)))?;
    }
    m.cseq().map_err(|e| format!("CSeq: {e}"))?;
    m.call_id().ok_or("no Call-ID")?;
    m.max_forwards().map_err(|e| format!("Max-Forwards: {e}"))?;
    for name in [HeaderName::From, HeaderName::To] {
        let v = m.first_value(name).ok_or(format!("no {name:?}"))?;
        NameAddr::parse(v).map_err(|e| format!("{name:?}: {e}"))?;
    }
    for name in [
        HeaderName::Contact,
        HeaderName::Route,
        HeaderName::RecordRoute,
    ] {
        for e in m.elements(name) {
            if e.text == b"*" {
                continue;
            }
            let na = NameAddr::parse(e.text).map_err(|err| format!("{name:?}: {err}"))?;
            if matches!(Scheme::of(na.uri), Scheme::Sip | Scheme::Sips) {
                na.parse_uri()
                    .map_err(|err| format!("{name:?} URI: {err}"))?;
            }
        }
    }
    if m.is_request()
        && matches!(
            Scheme::of(m.uri()),
            Scheme::Sip | Scheme::Sips | Scheme::Tel
        )
    {
        Uri::parse(m.uri()).map_err(|e| format!("Request-URI: {e}"))?;
    }
    Ok(())
}

#[test]
fn corpus_parses_as_the_manifests_say() {
    let cases = cases();
    assert!(cases.len() >= 69, "corpus has {} messages", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let bytes = std::fs::read(&c.file).unwrap_or_else(|e| panic!("{}: {e}", c.file.display()));
        let mut idx = HeaderIndex::new();
        let result = parse(&bytes, &mut idx);
        // Touch every accessor on whatever parsed, valid or not: no panics.
        if let Ok(m) = &result {
            let _ = read_all(m);
        }
        if c.class == "valid" {
            match &result {
                Ok(m) => {
                    if let Err(e) = read_all(m) {
                        failures.push(format!("{}: {e}", c.file.display()));
                    }
                }
                Err(e) => failures.push(format!("{}: {e}", c.file.display())),
            }
        }
        if c.expect == "forward" && c.class != "valid" {
            // Semantic oddities a proxy forwards must still parse.
            if let Err(e) = &result {
                failures.push(format!("{} (forward): {e}", c.file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join("torture").join(name)).expect("corpus file")
}

#[test]
fn tortuous_invite_reads_right() {
    let b = load("wsinv.sip");
    let mut idx = HeaderIndex::new();
    let m = parse(&b, &mut idx).unwrap();
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    let c = m.cseq().unwrap();
    assert_eq!((c.number, c.method), (9, &b"INVITE"[..]));
    let to = NameAddr::parse(m.first_value(HeaderName::To).unwrap()).unwrap();
    assert_eq!(to.tag(), Some(&b"1918181833n"[..]));
    let vias: Vec<_> = m
        .elements(HeaderName::Via)
        .map(|e| Via::parse(e.text).unwrap())
        .collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[2].branch, Some(&b"z9hG4bK30239"[..]));
    assert_eq!(m.body().len(), 150);
    assert_eq!(m.count(HeaderName::Contact), 1);
}

#[test]
fn extra_datagram_octets_are_not_part_of_the_message() {
    let b = load("dblreq.sip");
    let mut idx = HeaderIndex::new();
    let m = parse(&b, &mut idx).unwrap();
    assert_eq!(m.method_bytes(), b"REGISTER");
    assert!(m.end() < b.len());
    assert!(m.body().is_empty());
}

#[test]
fn framing_errors_are_errors() {
    for (f, want) in [
        ("clerr.sip", sip::ParseError::ContentLengthTooLarge),
        ("ncl.sip", sip::ParseError::BadContentLength),
        ("mcl01.sip", sip::ParseError::MultipleContentLength),
        ("badvers.sip", sip::ParseError::VersionNotSupported),
        ("bigcode.sip", sip::ParseError::BadStatusCode),
        ("lwsstart.sip", sip::ParseError::BadRequestLine),
        ("trws.sip", sip::ParseError::BadRequestLine),
        ("lwsruri.sip", sip::ParseError::BadRequestLine),
    ] {
        let b = load(f);
        let mut idx = HeaderIndex::new();
        assert_eq!(parse(&b, &mut idx).err(), Some(want), "{f}");
    }
}

#[test]
fn a_datagram_cut_inside_its_headers_is_truncated() {
    let whole =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: x\r\n\r\n";
    let mut idx = HeaderIndex::new();
    assert!(parse(whole, &mut idx).is_ok());
    for cut in [whole.len() - 2, whole.len() - 3, whole.len() - 10, 30] {
        let mut idx = HeaderIndex::new();
        assert_eq!(
            parse(&whole[..cut], &mut idx).err(),
            Some(sip::ParseError::Truncated),
            "cut at {cut}"
        );
    }
}

#[test]
fn binary_body_is_framed_by_content_length() {
    let b = load("mpart01.sip");
    let mut idx = HeaderIndex::new();
    let m = parse(&b, &mut idx).unwrap();
    assert_eq!(Some(m.body().len()), m.content_length());
    assert!(m.body().contains(&0));
}
