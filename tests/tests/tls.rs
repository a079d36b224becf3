//! TLS per SIP domain (RFC 3261 §26.2, RFC 5630) against a real client,
//! `openssl s_client`: versions, suites and groups as each domain allows
//! them, the certificate chosen by SNI (exact, wildcard, then the edge's
//! first domain, also for no SNI), client certificates required or
//! verified; `sipedge check` on certificates that would fail their
//! clients; and certificates reloaded with the config while connections
//! carry on. Every handshake is followed by an OPTIONS the edge answers
//! over it, so "passes" means SIP works over it.
//!
//! Certificates are made by the test (`e2e::certs`).

use std::net::SocketAddr;
use std::path::Path;

use e2e::admin::AdminApi;
use e2e::certs::{Ca, Leaf, Validity};
use e2e::config::SECRET;
use e2e::kamailio::{Back, Front, Kamailio};
use e2e::openssl::{self, Session};
use e2e::sip;
use e2e::{free_port, require_private_netns, Sipedge, SippUac, SippUas, TempDir};

/// One `[[edge.domain]]` with the given name, certificate and keys.
fn domain(name: &str, leaf: &Leaf, keys: &str) -> String {
    format!(
        "\n[[edge.domain]]\nname = \"{name}\"\ncert = \"{}\"\nkey = \"{}\"\n{keys}\n",
        leaf.cert.display(),
        leaf.key.display()
    )
}

/// An edge listening on UDP and TLS at 127.0.0.1:`udp` and `tls`,
/// answering OPTIONS itself, with an admin API on `admin` and `domains`.
fn config(udp: u16, tls: u16, admin: u16, domains: &str) -> String {
    format!(
        "[node]\nid = \"tls\"\nsecret = \"{SECRET}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{udp}\", \"tls:127.0.0.1:{tls}\"]\n\
         flags = [\"ping-replies\"]\n\n[[edge.destination]]\nuri = \"sip:127.0.0.1:9\"\n\
         [edge.probe]\nenabled = false\n{domains}"
    )
}

/// The common name `s_client` reports for the server's certificate.
fn peer_cn(r: &openssl::Report) -> String {
    let peer = r.field("Peer certificate").unwrap_or("").to_owned();
    peer.split(", ")
        .find_map(|p| p.strip_prefix("CN = "))
        .unwrap_or("")
        .to_owned()
}

/// Asserts a handshake with `args` passed (SIP answered over it) and
/// returns its report.
fn passes(addr: SocketAddr, args: &[&str]) -> openssl::Report {
    let r = openssl::options(addr, args);
    assert_eq!(
        r.answers(),
        vec!["SIP/2.0 200 OK"],
        "{args:?} should pass:\n{}",
        r.text()
    );
    r
}

/// Asserts a handshake with `args` failed: nothing answered over it.
fn fails(addr: SocketAddr, args: &[&str]) -> openssl::Report {
    let r = openssl::options(addr, args);
    assert!(
        r.answers().is_empty(),
        "{args:?} should fail:\n{}",
        r.text()
    );
    r
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Versions, suites and groups per domain; the certificate by SNI; client
/// certificates required or only verified.
#[test]
fn each_domain_gets_its_certificate_by_sni_and_its_own_tls_policy() {
    require_private_netns();
    let dir = TempDir::new("tls-domains");
    let ca = Ca::new(dir.path(), "ca");
    let other_ca = Ca::new(dir.path(), "other-ca");
    let default = ca.leaf("default", &["sip.example.com"]);
    let exact = ca.leaf("exact", &["sip.example.org"]);
    let wildcard = ca.leaf("wildcard", &["*.example.net"]);
    let secure = ca.leaf("secure", &["secure.example.org"]);
    let checked = ca.leaf("checked", &["checked.example.org"]);
    let client = ca.leaf("client", &["phone-1.example.com"]);
    let stranger = other_ca.leaf("stranger", &["phone-2.example.com"]);
    let client_ca = format!("client_ca = \"{}\"", ca.cert().display());
    let domains = [
        domain(
            "sip.example.com",
            &default,
            "ciphers = [\"TLS_AES_128_GCM_SHA256\", \"TLS_AES_256_GCM_SHA384\", \
             \"ECDHE-ECDSA-AES128-GCM-SHA256\"]",
        ),
        domain("sip.example.org", &exact, ""),
        domain(
            "*.example.net",
            &wildcard,
            "tls_versions = [\"1.3\"]\nciphers = [\"TLS_AES_128_GCM_SHA256\"]\n\
             curves = [\"secp384r1\"]",
        ),
        domain(
            "secure.example.org",
            &secure,
            &format!("require_client = true\n{client_ca}"),
        ),
        domain(
            "checked.example.org",
            &checked,
            &format!("verify_client = true\n{client_ca}"),
        ),
    ]
    .concat();
    let (udp, tls, admin) = (free_port(), free_port(), free_port());
    let edge = Sipedge::start(&config(udp, tls, admin, &domains));
    let addr: SocketAddr = format!("127.0.0.1:{tls}").parse().unwrap();
    let ca_file = path(ca.cert());
    let verify = ["-CAfile", ca_file, "-verify_return_error"];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        verify
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect()
    };

    // Versions: 1.3 and 1.2 by default, 1.1 never.
    let r = passes(addr, &with(&["-tls1_3"]));
    assert_eq!(r.field("Protocol version"), Some("TLSv1.3"), "{}", r.text());
    assert_eq!(r.field("Verification"), Some("OK"), "{}", r.text());
    let r = passes(addr, &with(&["-tls1_2"]));
    assert_eq!(r.field("Protocol version"), Some("TLSv1.2"), "{}", r.text());
    fails(addr, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);

    // No SNI, and an SNI no domain has: the first domain's certificate.
    assert_eq!(peer_cn(&passes(addr, &with(&[]))), "sip.example.com");
    let r = passes(addr, &with(&["-servername", "unknown.example.com"]));
    assert_eq!(peer_cn(&r), "sip.example.com");
    // An exact name, and a wildcard, on the same listener.
    let r = passes(addr, &with(&["-servername", "sip.example.org"]));
    assert_eq!(peer_cn(&r), "sip.example.org");
    let r = passes(addr, &with(&["-servername", "a.example.net"]));
    assert_eq!(peer_cn(&r), "*.example.net");

    // Suites: the default domain allows two TLS 1.3 suites and one 1.2.
    let r = passes(
        addr,
        &with(&["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"]),
    );
    assert_eq!(r.field("Ciphersuite"), Some("TLS_AES_256_GCM_SHA384"));
    fails(
        addr,
        &["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
    );
    let r = passes(
        addr,
        &with(&["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
    );
    assert_eq!(
        r.field("Ciphersuite"),
        Some("ECDHE-ECDSA-AES128-GCM-SHA256")
    );
    fails(
        addr,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
    );

    // The wildcard domain: TLS 1.3 only, one suite, P-384 only.
    let net = ["-servername", "b.example.net"];
    let r = passes(addr, &with(&[net[0], net[1], "-groups", "P-384"]));
    assert!(
        r.field("Server Temp Key")
            .is_some_and(|k| k.contains("384")),
        "{}",
        r.text()
    );
    fails(addr, &[net[0], net[1], "-groups", "X25519"]);
    fails(addr, &[net[0], net[1], "-tls1_2"]);
    fails(
        addr,
        &[net[0], net[1], "-ciphersuites", "TLS_AES_256_GCM_SHA384"],
    );
    let r = passes(
        addr,
        &with(&[net[0], net[1], "-ciphersuites", "TLS_AES_128_GCM_SHA256"]),
    );
    assert_eq!(r.field("Ciphersuite"), Some("TLS_AES_128_GCM_SHA256"));

    // require_client: none fails, one from client_ca passes, one from
    // another CA fails.
    let secure_sni = ["-servername", "secure.example.org"];
    fails(addr, &secure_sni);
    let (ccert, ckey) = (path(&client.cert), path(&client.key));
    let (scert, skey) = (path(&stranger.cert), path(&stranger.key));
    let mut args = with(&secure_sni);
    args.extend(["-cert", ccert, "-key", ckey]);
    passes(addr, &args);
    let mut args = secure_sni.to_vec();
    args.extend(["-cert", scert, "-key", skey]);
    fails(addr, &args);

    // verify_client: none passes, one from another CA fails.
    let checked_sni = ["-servername", "checked.example.org"];
    passes(addr, &with(&checked_sni));
    let mut args = checked_sni.to_vec();
    args.extend(["-cert", scert, "-key", skey]);
    fails(addr, &args);

    // The client certificate's subject is logged.
    assert!(
        edge.wait_for_stderr("CN=phone-1.example.com", std::time::Duration::from_secs(5)),
        "{}",
        edge.stderr_text()
    );
    // Failed handshakes are counted.
    let c = AdminApi::local(admin).get("/api/connections").json();
    let failed = c
        .get("tls_handshake_failed")
        .and_then(e2e::Json::as_u64)
        .unwrap_or(0);
    assert!(failed >= 8, "{c:?}");
}

/// `sipedge check` refuses a certificate that is expired, not yet valid,
/// does not cover its domain or does not match its key, each at its
/// domain's line; one expiring within 14 days is a warning.
#[test]
fn check_refuses_certificates_that_would_fail_their_clients() {
    require_private_netns();
    let dir = TempDir::new("tls-check");
    let ca = Ca::new(dir.path(), "ca");
    let good = ca.leaf("good", &["sip.example.com"]);
    let expired = ca.leaf_valid(
        "expired",
        &["sip.example.com"],
        Validity {
            from_days: -30,
            to_days: -1,
        },
    );
    let early = ca.leaf_valid(
        "early",
        &["sip.example.com"],
        Validity {
            from_days: 2,
            to_days: 30,
        },
    );
    let soon = ca.leaf_valid(
        "soon",
        &["sip.example.com"],
        Validity {
            from_days: -1,
            to_days: 7,
        },
    );
    let other_name = ca.leaf("other-name", &["voip.example.org"]);
    let wildcard = ca.leaf("wildcard", &["*.example.com"]);
    let mismatched = Leaf {
        cert: good.cert.clone(),
        key: other_name.key.clone(),
    };
    let check = |leaf: &Leaf, name: &str| {
        Sipedge::check(&config(5060, 5061, 8080, &domain(name, leaf, "")))
    };
    let (ok, out) = check(&good, "sip.example.com");
    assert!(ok && out.is_empty(), "{out}");
    let (ok, out) = check(&wildcard, "sip.example.com");
    assert!(ok, "a wildcard certificate covers one label: {out}");
    for (leaf, name, key, needle) in [
        (&expired, "sip.example.com", "domain.cert", "expired on"),
        (&early, "sip.example.com", "domain.cert", "not valid before"),
        (
            &other_name,
            "sip.example.com",
            "domain.cert",
            "does not cover \"sip.example.com\"",
        ),
        (
            &good,
            "*.example.com",
            "domain.cert",
            "does not cover \"*.example.com\"",
        ),
        (
            &mismatched,
            "sip.example.com",
            "domain.key",
            "is not the key of",
        ),
    ] {
        let (ok, out) = check(leaf, name);
        assert!(!ok, "{name} {leaf:?} should be refused");
        // The domain's table starts at line 18 of this config.
        assert!(out.contains(&format!("sipedge.toml:18: {key}: ")), "{out}");
        assert!(out.contains(needle), "{needle}: {out}");
    }
    let (ok, out) = check(&soon, "sip.example.com");
    assert!(ok, "{out}");
    assert!(
        out.starts_with("warning: ")
            && out.contains(":18: domain.cert: ")
            && out.contains("less than 14 days"),
        "{out}"
    );
    // TLS 1.2 suites name the key they sign with: ECDSA-only suites and
    // an RSA key fail every 1.2 handshake.
    let rsa = ca.leaf_rsa("rsa", &["sip.example.com"]);
    let ecdsa_only = "ciphers = [\"TLS_AES_128_GCM_SHA256\", \"ECDHE-ECDSA-AES128-GCM-SHA256\"]";
    let check_with = |keys: &str| {
        Sipedge::check(&config(
            5060,
            5061,
            8080,
            &domain("sip.example.com", &rsa, keys),
        ))
    };
    let (ok, out) = check_with(&format!(
        "tls_versions = [\"1.2\"]\n{}",
        ecdsa_only.replace("\"TLS_AES_128_GCM_SHA256\", ", "")
    ));
    assert!(
        !ok && out.contains(":18: domain.ciphers: ") && out.contains("RSA key"),
        "{out}"
    );
    let (ok, out) = check_with(ecdsa_only);
    assert!(
        ok && out.contains("warning: ") && out.contains("TLS 1.2 clients cannot connect"),
        "{out}"
    );
    let (ok, out) = check_with("");
    assert!(ok && out.is_empty(), "{out}");

    let missing = Leaf {
        cert: dir.join("nowhere.pem"),
        key: good.key.clone(),
    };
    let (ok, out) = check(&missing, "sip.example.com");
    assert!(
        !ok && out.contains(":18: domain.cert: ") && out.contains("cannot read"),
        "{out}"
    );
}

/// A reload reads the certificates again: new handshakes get the new one
/// while a connection made before carries on; a reload whose certificate
/// is expired is refused whole and the running one stays.
#[test]
fn certificates_reload_with_the_config_and_connections_carry_on() {
    require_private_netns();
    let dir = TempDir::new("tls-reload");
    let ca = Ca::new(dir.path(), "ca");
    let first = ca.leaf("first", &["sip.example.com"]);
    let second = ca.leaf("second", &["sip.example.com", "sip2.example.com"]);
    let expired = ca.leaf_valid(
        "expired",
        &["sip.example.com"],
        Validity {
            from_days: -30,
            to_days: -1,
        },
    );
    // One path whose content a renewal replaces, as certbot does.
    let live = Leaf {
        cert: dir.join("live.pem"),
        key: dir.join("live.key"),
    };
    let install = |leaf: &Leaf| {
        std::fs::copy(&leaf.cert, &live.cert).expect("copy the certificate");
        std::fs::copy(&leaf.key, &live.key).expect("copy the key");
    };
    install(&first);
    let (udp, tls, admin) = (free_port(), free_port(), free_port());
    let edge = Sipedge::start(&config(
        udp,
        tls,
        admin,
        &domain("sip.example.com", &live, ""),
    ));
    let addr: SocketAddr = format!("127.0.0.1:{tls}").parse().unwrap();
    let ca_file = path(ca.cert());
    // Only the second certificate names sip2.example.com.
    let sip2 = [
        "-CAfile",
        ca_file,
        "-verify_hostname",
        "sip2.example.com",
        "-verify_return_error",
    ];
    fails(addr, &sip2);

    let mut held = Session::open(addr, &["-CAfile", ca_file]);
    held.send(&openssl::options_to(addr, 1));
    assert!(held.wait_answers(1), "the held connection works");
    let c = AdminApi::local(admin).get("/api/connections").json();
    assert_eq!(c.get("open_tls").and_then(|v| v.as_u64()), Some(1), "{c:?}");
    assert_eq!(c.get("open_tcp").and_then(|v| v.as_u64()), Some(0), "{c:?}");

    install(&second);
    let api = AdminApi::local(admin);
    let r = api.post_json("/api/reload", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains("domain sip.example.com: certificate loaded"),
        "{}",
        r.body
    );
    let r = passes(addr, &sip2);
    assert_eq!(r.field("Verification"), Some("OK"), "{}", r.text());

    // The connection from before the reload still carries SIP.
    held.send(&openssl::options_to(addr, 2));
    assert!(
        held.wait_answers(2),
        "the held connection survives the reload"
    );

    // An expired certificate refuses the reload; the second one stays.
    install(&expired);
    let r = api.post_json("/api/reload", "");
    assert_ne!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("expired on"), "{}", r.body);
    passes(addr, &sip2);
    held.send(&openssl::options_to(addr, 3));
    assert!(held.wait_answers(3));

    // A file without the tls: listener and its domain: the listener stays
    // until a restart, so the reload is refused rather than leaving it
    // without a certificate.
    install(&second);
    let without = config(udp, tls, admin, "").replace(&format!(", \"tls:127.0.0.1:{tls}\""), "");
    std::fs::write(edge.config_path(), without).expect("rewrite the config");
    let r = api.post_json("/api/reload", "");
    assert_ne!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("needs at least one [[edge.domain]]"),
        "{}",
        r.body
    );
    passes(addr, &sip2);
    drop(held.close());
    drop(edge);
}

/// SIP over TLS with a real TLS peer, Kamailio's tls module, on each side
/// of the edge: SIPp callers over UDP reach Kamailio, which relays over
/// TLS to the edge's `tls:` listener, on to a SIPp server over UDP (TLS
/// in, UDP out); and SIPp callers over UDP reach the edge, which relays
/// over TLS to Kamailio as its destination (verified against `ca`), on to
/// a SIPp server (UDP in, TLS out). Calls complete with the BYE from
/// either end; in-dialog requests keep to the right transport through the
/// edge's two Record-Routes.
#[test]
fn calls_cross_tls_in_and_out() {
    require_private_netns();
    let dir = TempDir::new("tls-kamailio");
    let ca = Ca::new(dir.path(), "ca");
    let kam_leaf = ca.leaf("kamailio", &["127.0.0.1"]);
    let edge_leaf = ca.leaf("edge", &["sip.example.com"]);
    let [kam_udp, kam_tls, in_udp, in_tls, out_udp, out_tls, uas_in, uas_out, admin] =
        [(); 9].map(|()| free_port());
    let domain = domain("sip.example.com", &edge_leaf, "");
    let ca_file = ca.cert().display().to_string();
    let toml = format!(
        "[node]\nid = \"tls\"\nsecret = \"{SECRET}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [[edge]]\nname = \"in\"\nlisten = [\"udp:127.0.0.1:{in_udp}\", \"tls:127.0.0.1:{in_tls}\"]\n\
         tls_ca = \"{ca_file}\"\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:{uas_in}\"\n[edge.probe]\nenabled = false\n{domain}\n\
         [[edge]]\nname = \"out\"\nlisten = [\"udp:127.0.0.1:{out_udp}\", \"tls:127.0.0.1:{out_tls}\"]\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:{kam_tls};transport=tls\"\nca = \"{ca_file}\"\n\
         [edge.probe]\nenabled = false\n{domain}"
    );
    let edge = Sipedge::start(&toml);
    let edge_tls = format!("sip:127.0.0.1:{in_tls};transport=tls");
    let front = Front {
        to_udp: edge_tls.clone(),
        to_tcp: edge_tls.clone(),
        to_tls: edge_tls.clone(),
        default: edge_tls,
    };
    let kamailio = Kamailio::relay(
        kam_udp,
        &Back {
            ip: "127.0.0.1",
            port: free_port(),
            tls_port: kam_tls,
            to: uas_out,
        },
        &front,
        &ca,
        &kam_leaf,
    );

    for (name, first_hop, uas_port) in [
        ("TLS in, UDP out", kam_udp, uas_in),
        ("UDP in, TLS out", out_udp, uas_out),
    ] {
        // The caller hangs up, then the callee does.
        for (uac, uas) in [("uac.xml", "uas.xml"), ("uac-hung-up.xml", "uas-bye.xml")] {
            let server = SippUas::start(uas, uas_port, &["-d", "100"]);
            let calls = SippUac::run(uac, &format!("127.0.0.1:{first_hop}"), 10, 10, &[]);
            let server = server.stop();
            assert_eq!(
                (calls.successful(), calls.failed()),
                (10, 0),
                "{name}, {uac}: {}\n--- sipedge\n{}\n--- kamailio\n{}",
                calls.summary(),
                edge.stderr_text(),
                kamailio.stderr_text()
            );
            assert_eq!(server.count("INVITE"), 10, "{name}, {uac}");
            let invite = server.requests("INVITE")[0].clone();
            let vias = invite.headers("Via").join(" | ");
            let rr = sip::untokened(&invite.headers("Record-Route").join(","));
            if uas_port == uas_in {
                // Kamailio -> TLS -> edge -> UDP -> server.
                assert!(
                    vias.starts_with(&format!("SIP/2.0/UDP 127.0.0.1:{in_udp};"))
                        && vias.contains("SIP/2.0/TLS 127.0.0.1:"),
                    "{name}: {vias}"
                );
                assert!(
                    rr.contains(&format!("<sip:127.0.0.1:{in_udp};lr>"))
                        && rr.contains(&format!("<sip:127.0.0.1:{in_tls};transport=tls;lr>")),
                    "{name}: {rr}"
                );
            } else {
                // edge -> TLS -> Kamailio -> UDP -> server.
                assert!(
                    vias.contains(&format!("SIP/2.0/TLS 127.0.0.1:{out_tls};")),
                    "{name}: {vias}"
                );
                assert!(
                    rr.contains(&format!("<sip:127.0.0.1:{out_tls};transport=tls;lr>"))
                        && rr.contains(&format!("<sip:127.0.0.1:{out_udp};lr>")),
                    "{name}: {rr}"
                );
            }
            let byes = if uac == "uac.xml" {
                server.count("BYE")
            } else {
                server
                    .received()
                    .filter(|m| m.text.starts_with("SIP/2.0 200") && m.text.contains(" BYE\r\n"))
                    .count()
            };
            assert_eq!(byes, 10, "{name}, {uac}: BYEs through both TLS hops");
        }
    }
}

/// A MESSAGE over TLS through the edge, with a forged certificate header,
/// from `s_client` with `args`; what the pool got.
fn message_through(addr: SocketAddr, args: &[&str], pool: &e2e::FakePool, n: u32) -> String {
    let mut s = Session::open(addr, args);
    s.send(&format!(
        "MESSAGE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-m{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=m{n}\r\n\
         To: <sip:bob@example.com>\r\nCall-ID: m{n}@example.com\r\nCSeq: 1 MESSAGE\r\n\
         X-Client-Cert: CN=forged\r\nContent-Length: 0\r\n\r\n"
    ));
    let got = pool.recv_matching(std::time::Duration::from_secs(5), |a| {
        a.text.contains(&format!("Call-ID: m{n}@example.com"))
    });
    drop(s.close());
    got.map(|a| a.text).unwrap_or_default()
}

/// `client_cert_header`: the subject of a verified client certificate
/// reaches the pool in that header, and only as sipedge wrote it — a copy
/// the client sent is replaced; a TLS client without a certificate and a
/// caller over UDP have theirs removed.
#[test]
fn a_verified_client_certificate_reaches_the_pool_in_the_configured_header() {
    require_private_netns();
    let dir = TempDir::new("tls-subject");
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.leaf("server", &["sip.example.com"]);
    let phone = ca.leaf("phone", &["phone-1.example.com"]);
    let pool = e2e::FakePool::start(1);
    let (udp, tls) = (free_port(), free_port());
    let toml = format!(
        "[node]\nid = \"tls\"\nsecret = \"{SECRET}\"\n\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{udp}\", \"tls:127.0.0.1:{tls}\"]\n\
         client_cert_header = \"X-Client-Cert\"\n\
         [[edge.destination]]\nuri = \"sip:{}\"\n[edge.probe]\nenabled = false\n{}",
        pool.addr(0),
        domain(
            "sip.example.com",
            &server,
            &format!(
                "verify_client = true\nclient_ca = \"{}\"",
                ca.cert().display()
            )
        )
    );
    let _edge = Sipedge::start(&toml);
    let addr: SocketAddr = format!("127.0.0.1:{tls}").parse().unwrap();
    let (cert, key) = (path(&phone.cert), path(&phone.key));

    let got = message_through(addr, &["-cert", cert, "-key", key], &pool, 1);
    let headers = e2e::sip::headers(&got, "X-Client-Cert");
    assert_eq!(headers, ["CN=phone-1.example.com, O=sipedge test"], "{got}");

    let got = message_through(addr, &[], &pool, 2);
    assert!(!got.is_empty(), "the MESSAGE without a certificate arrived");
    assert!(e2e::sip::headers(&got, "X-Client-Cert").is_empty(), "{got}");

    let caller = e2e::Udp::bind();
    caller.send_to(
        format!(
            "MESSAGE sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP {};branch=z9hG4bK-u1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=u1\r\n\
             To: <sip:bob@example.com>\r\nCall-ID: u1@example.com\r\nCSeq: 1 MESSAGE\r\n\
             x-client-cert: CN=forged over UDP\r\nContent-Length: 0\r\n\r\n",
            caller.local_addr()
        ),
        ("127.0.0.1", udp),
    );
    let got = pool
        .recv_matching(std::time::Duration::from_secs(5), |a| {
            a.text.contains("Call-ID: u1@example.com")
        })
        .expect("the UDP MESSAGE arrived")
        .text;
    assert!(e2e::sip::headers(&got, "X-Client-Cert").is_empty(), "{got}");
}
