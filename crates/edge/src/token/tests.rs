use super::*;
use proptest::prelude::*;

const EDGE: &[u8] = b"customers";

fn key(secret: &str) -> TokenKey {
    TokenKey::from_secret(secret.as_bytes())
}

fn udp_caller() -> Token {
    Token {
        outside: Outside {
            transport: Transport::Udp,
            local: 0,
            remote: "203.0.113.7:41234".parse().unwrap(),
            conn: None,
        },
        sticky: true,
        pool: Some((Transport::Udp, "10.1.2.3:5060".parse().unwrap())),
    }
}

fn sealed(k: &TokenKey, t: &Token, edge: &[u8]) -> Vec<u8> {
    let mut w = Vec::new();
    assert!(k.seal(t, edge, &mut w));
    w
}

#[test]
fn every_shape_opens_to_what_was_sealed() {
    let k = key("the cluster secret");
    let tcp = Token {
        outside: Outside {
            transport: Transport::Wss,
            local: 3,
            remote: "[2001:db8::7]:50000".parse().unwrap(),
            conn: Some(Conn {
                id: ConnId(u64::MAX - 5),
                owner: Some("[2001:db8::1]:5070".parse().unwrap()),
            }),
        },
        sticky: true,
        pool: Some((Transport::Tls, "[2001:db8::9]:5061".parse().unwrap())),
    };
    let no_owner = Token {
        outside: Outside {
            conn: Some(Conn {
                id: ConnId(7),
                owner: None,
            }),
            transport: Transport::Tcp,
            ..udp_caller().outside
        },
        sticky: false,
        pool: None,
    };
    for t in [udp_caller(), tcp, no_owner] {
        let text = sealed(&k, &t, EDGE);
        assert!(text.len() <= MAX_TEXT);
        assert!(
            text.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_".contains(c)),
            "a URI user part takes it unescaped"
        );
        assert_eq!(open(std::slice::from_ref(&k), &text, EDGE), Some(t));
    }
}

#[test]
fn an_ipv4_caller_and_server_take_43_characters() {
    let text = sealed(&key("s"), &udp_caller(), EDGE);
    assert_eq!(text.len(), 43, "{}", String::from_utf8_lossy(&text));
}

#[test]
fn altered_truncated_or_extended_tokens_do_not_open() {
    let k = key("the cluster secret");
    let keys = std::slice::from_ref(&k);
    let text = sealed(&k, &udp_caller(), EDGE);
    for i in 0..text.len() {
        let mut t = text.clone();
        t[i] = if t[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(open(keys, &t, EDGE), None, "byte {i} changed");
    }
    for n in 0..text.len() {
        assert_eq!(open(keys, &text[..n], EDGE), None, "cut to {n}");
    }
    let mut longer = text.clone();
    longer.extend_from_slice(b"AAAA");
    assert_eq!(open(keys, &longer, EDGE), None);
    assert_eq!(open(keys, b"not base64!", EDGE), None);
    assert_eq!(open(keys, &[b'A'; MAX_TEXT + 4], EDGE), None);
}

#[test]
fn another_edge_or_a_foreign_key_cannot_open_it() {
    let k = key("the cluster secret");
    let text = sealed(&k, &udp_caller(), EDGE);
    assert_eq!(open(std::slice::from_ref(&k), &text, b"carriers"), None);
    assert_eq!(open(&[key("someone else's")], &text, EDGE), None);
}

#[test]
fn a_token_sealed_before_rotation_opens_under_the_ring_after_it() {
    let old = key("the old secret");
    let text = sealed(&old, &udp_caller(), EDGE);
    let ring = [key("the new secret"), key("the old secret")];
    assert_eq!(open(&ring, &text, EDGE), Some(udp_caller()));
    assert_eq!(open(&ring[..1], &text, EDGE), None, "once dropped, refused");
}

#[test]
fn plaintexts_with_unused_bits_or_trailing_bytes_do_not_decode() {
    let mut p = [0u8; MAX_PLAIN];
    let n = encode(&udp_caller(), &mut p);
    assert_eq!(decode(&p[..n]), Some(udp_caller()));
    assert_eq!(decode(&p[..n - 1]), None);
    let mut extra = p;
    assert_eq!(decode(&extra[..n + 1]), None);
    extra[1] |= 1 << 7;
    assert_eq!(decode(&extra[..n]), None);
    let mut bad_transport = p;
    bad_transport[0] = (bad_transport[0] & !0b111) | 7;
    assert_eq!(decode(&bad_transport[..n]), None);
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(o, p)| SocketAddr::from((o, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(o, p)| SocketAddr::from((o, p))),
    ]
}

fn arb_transport() -> impl Strategy<Value = Transport> {
    (0u8..5).prop_map(|c| Transport::from_code(c).unwrap())
}

fn arb_token() -> impl Strategy<Value = Token> {
    (
        arb_transport(),
        any::<u8>(),
        arb_addr(),
        proptest::option::of((any::<u64>(), proptest::option::of(arb_addr()))),
        any::<bool>(),
        proptest::option::of((arb_transport(), arb_addr())),
    )
        .prop_map(|(transport, local, remote, conn, sticky, pool)| Token {
            outside: Outside {
                transport,
                local,
                remote,
                conn: conn.map(|(id, owner)| Conn {
                    id: ConnId(id),
                    owner,
                }),
            },
            sticky,
            pool,
        })
}

/// The ways an address could show through: its bytes with the port, and
/// its text.
fn shows(text: &[u8], a: SocketAddr) -> bool {
    let mut raw = match a.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    raw.extend_from_slice(&a.port().to_be_bytes());
    let decoded = URL_SAFE_NO_PAD.decode(text).unwrap();
    let within = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    within(&decoded, &raw)
        || within(text, a.ip().to_string().as_bytes())
        || within(text, URL_SAFE_NO_PAD.encode(&raw).as_bytes())
}

proptest! {
    #[test]
    fn no_token_reveals_an_address_it_holds(t in arb_token()) {
        let k = key("the cluster secret");
        let text = sealed(&k, &t, EDGE);
        prop_assert_eq!(open(std::slice::from_ref(&k), &text, EDGE), Some(t));
        let mut held = vec![t.outside.remote];
        held.extend(t.outside.conn.and_then(|c| c.owner));
        held.extend(t.pool.map(|(_, a)| a));
        for a in held {
            prop_assert!(!shows(&text, a), "{} shows in {}", a, String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn any_text_opens_or_not_without_panicking(text in proptest::collection::vec(any::<u8>(), 0..140)) {
        let k = key("the cluster secret");
        let _ = open(std::slice::from_ref(&k), &text, EDGE);
    }
}

#[test]
fn blobs_open_only_under_their_label_edge_and_keys() {
    let key = TokenKey::from_secret(b"one secret");
    let mut text = Vec::new();
    assert!(key.seal_blob(
        b"via",
        b"e",
        b"SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1",
        &mut text
    ));
    assert!(text
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
    let keys = [key.clone()];
    assert_eq!(
        open_blob(&keys, b"via", &text, b"e").as_deref(),
        Some(&b"SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1"[..])
    );
    assert_eq!(open_blob(&keys, b"contact", &text, b"e"), None);
    assert_eq!(open_blob(&keys, b"via", &text, b"other"), None);
    let stranger = [TokenKey::from_secret(b"another secret")];
    assert_eq!(open_blob(&stranger, b"via", &text, b"e"), None);
    let mut altered = text.clone();
    altered[5] = if altered[5] == b'A' { b'B' } else { b'A' };
    assert_eq!(open_blob(&keys, b"via", &altered, b"e"), None);
    // What could not be opened is not sealed.
    let mut long = Vec::new();
    assert!(!key.seal_blob(b"via", b"e", &[b'v'; MAX_BLOB_TEXT], &mut long));
    assert!(long.is_empty());
    for junk in [&b""[..], b"!!", b"AAAA", &[b'A'; MAX_BLOB_TEXT + 1]] {
        assert_eq!(open_blob(&keys, b"via", junk, b"e"), None);
    }
}
