//! Tests of the config parser: the model it builds, its defaults, and that
//! every kind of error names the right line and key.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::dispatch::Algorithm;

const FILE: &str = "test.toml";

/// The example of the brief, line numbers matter to the tests below.
const EXAMPLE: &str = r#"[node]
id = "edge-1"
zone = "lon"
secret = "a-long-shared-cluster-secret"

[admin]
listen = "127.0.0.1:8080"

[[edge]]
name = "customer-a"
listen = ["udp:127.0.0.1:5060", "udp:[::1]:5060"]
algorithm = "hash-call-id"
insertion = "stateless"
flags = ["ping-replies"]

[[edge.destination]]
uri = "sip:127.0.0.1:5070"
weight = 3
priority = 1
zone = "lon"
limit_zones = ["lon", "ams"]
backup_zones = ["ams"]
"#;

/// A minimal valid file; tests append to or edit it.
const MINIMAL: &str = r#"[node]
id = "n"

[[edge]]
listen = ["udp:127.0.0.1:5060"]

[[edge.destination]]
uri = "sip:127.0.0.1:5070"
"#;

fn ok(text: &str) -> Config {
    match parse(text, FILE) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got: {e}\n{text}"),
    }
}

fn err(text: &str) -> ConfigError {
    match parse(text, FILE) {
        Ok(c) => panic!("expected an error, got {c:?}\n{text}"),
        Err(e) => e,
    }
}

/// Asserts the error's line and key, and that its message contains `needle`.
fn assert_err(text: &str, line: usize, key: &str, needle: &str) {
    let e = err(text);
    assert_eq!(
        (e.line, e.key.as_str()),
        (line, key),
        "wrong place for: {e}\n{text}"
    );
    assert!(
        e.message.contains(needle),
        "message {:?} lacks {needle:?}",
        e.message
    );
    assert_eq!(e.file, FILE);
}

/// MINIMAL with `extra` inserted as the line after `[[edge.destination]]` (line 8).
fn destination_with(extra: &str) -> String {
    MINIMAL.replace(
        "uri = \"sip:127.0.0.1:5070\"\n",
        &format!("{extra}\nuri = \"sip:127.0.0.1:5070\"\n"),
    )
}

/// MINIMAL with `extra` as the line after `[[edge]]` (line 5).
fn edge_with(extra: &str) -> String {
    MINIMAL.replace("[[edge]]\n", &format!("[[edge]]\n{extra}\n"))
}

/// MINIMAL with an `[edge.probe]` table (line 9) holding `lines` (from line 10).
fn probe_with(lines: &str) -> String {
    format!("{MINIMAL}[edge.probe]\n{lines}\n")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn example_parses_to_expected_model() {
    let expected = Config {
        node: Node {
            id: "edge-1".into(),
            zone: Some("lon".into()),
            secret: Some("a-long-shared-cluster-secret".into()),
            previous_secrets: Vec::new(),
            public_address: None,
            workers: None,
            dns: Vec::new(),
        },
        admin: Some(Admin {
            listen: sa("127.0.0.1:8080"),
            token_file: None,
            basic: None,
        }),
        connections: Default::default(),
        edges: vec![Edge {
            name: "customer-a".into(),
            listen: vec![
                Listen {
                    transport: Transport::Udp,
                    addr: sa("127.0.0.1:5060"),
                    line: 11,
                },
                Listen {
                    transport: Transport::Udp,
                    addr: sa("[::1]:5060"),
                    line: 11,
                },
            ],
            advertise: None,
            stun: None,
            algorithm: Algorithm::HashCallId,
            insertion: Insertion::Stateless,
            ping_replies: true,
            primary_attempts: 1,
            secondary_attempts: 1,
            destinations: vec![Destination {
                uri: "sip:127.0.0.1:5070".into(),
                addr: sa("127.0.0.1:5070"),
                transport: Transport::Udp,
                weight: 3,
                priority: 1,
                zone: Some("lon".into()),
                limit_zones: vec!["lon".into(), "ams".into()],
                backup_zones: vec!["ams".into()],
                cps: None,
                channels: None,
                tls: None,
                large: None,
                named_by: None,
                rank: 0,
                line: 16,
            }],
            probe: Probe::default(),
            transaction: Transaction::default(),
            capacity: Capacity::default(),
            compress_in: Coding::default(),
            compress_out: Coding::default(),
            compact_keep: Vec::new(),
            validate: Vec::new(),
            on_invalid: OnInvalid::Reject,
            foreign_next_hop: ForeignNextHop::Dispatch,
            domains: Vec::new(),
            tls_ca: None,
            client_cert_header: None,
            outbound_from: Vec::new(),
            nat_test: crate::nat::NatTests::default(),
            nat_sdp: false,
            topology_hiding: false,
            registrar: None,
            hygiene: Default::default(),
            hep: true,
            hep_sample: 10_000,
            records: true,
            peers: Vec::new(),
            line: 9,
        }],
        cluster: None,
        apiban: None,
        hep: None,
        records: None,
    };
    assert_eq!(ok(EXAMPLE), expected);
}

#[test]
fn defaults() {
    let c = ok(MINIMAL);
    assert_eq!(c.node.zone, None);
    assert_eq!(c.node.secret, None);
    assert_eq!(c.node.workers, None);
    assert_eq!(c.admin, None);
    let e = &c.edges[0];
    assert_eq!(e.name, "edge-1");
    assert_eq!(e.algorithm, Algorithm::WeightedRoundRobin);
    assert_eq!(e.insertion, Insertion::Stateless);
    assert!(!e.ping_replies);
    assert_eq!((e.primary_attempts, e.secondary_attempts), (1, 1));
    assert_eq!(e.advertise, None);
    let d = &e.destinations[0];
    assert_eq!((d.weight, d.priority), (1, 0));
    assert_eq!(d.transport, Transport::Udp);
    assert_eq!(d.zone, None);
    assert!(d.limit_zones.is_empty() && d.backup_zones.is_empty());
}

#[test]
fn second_edge_gets_default_name_by_position() {
    let text = format!(
        "{MINIMAL}\n[[edge]]\nlisten = [\"udp:127.0.0.1:5062\"]\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:5071\"\n"
    );
    let c = ok(&text);
    let names: Vec<_> = c.edges.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["edge-1", "edge-2"]);
    assert_eq!(c.edges[1].line, 10);
}

#[test]
fn all_optional_keys() {
    let text = r#"[node]
id = "n"
public_address = "[2001:db8::1]:5060"
workers = 4

[[edge]]
listen = ["udp:0.0.0.0:5060"]
advertise = "[2001:db8::1]:5060"
primary_attempts = 3
secondary_attempts = 16

[[edge.destination]]
uri = "sip:gw@10.0.0.1:5080;transport=udp"
priority = -5
"#;
    let c = ok(text);
    assert_eq!(c.node.public_address.as_deref(), Some("[2001:db8::1]:5060"));
    assert_eq!(c.node.workers, Some(4));
    let e = &c.edges[0];
    let adv = e.advertise.as_ref().unwrap();
    assert_eq!((adv.host.as_str(), adv.port), ("2001:db8::1", Some(5060)));
    assert_eq!(adv.to_string(), "[2001:db8::1]:5060");
    assert_eq!((e.primary_attempts, e.secondary_attempts), (3, 16));
    let d = &e.destinations[0];
    assert_eq!(d.uri, "sip:gw@10.0.0.1:5080;transport=udp");
    assert_eq!(d.addr, sa("10.0.0.1:5080"));
    assert_eq!(d.transport, Transport::Udp);
    assert_eq!(d.priority, -5);
}

#[test]
fn host_port_display() {
    let hp = |host: &str, port| HostPort {
        host: host.into(),
        port,
    };
    assert_eq!(hp("::1", Some(5060)).to_string(), "[::1]:5060");
    assert_eq!(hp("1.2.3.4", None).to_string(), "1.2.3.4");
    assert_eq!(
        hp("example.com", Some(5070)).to_string(),
        "example.com:5070"
    );
}

#[test]
fn display_format() {
    let e = err(&destination_with("weight = 0"));
    assert_eq!(
        e.to_string(),
        "test.toml:8: weight: must be a whole number from 1 to 50, found integer 0"
    );
    let io = ConfigError::new("x.toml", 0, "", "cannot read: gone");
    assert_eq!(io.to_string(), "x.toml: cannot read: gone");
}

#[test]
fn weight_out_of_range_or_not_a_whole_number() {
    assert_err(&destination_with("weight = 0"), 8, "weight", "1 to 50");
    assert_err(
        &destination_with("weight = 51"),
        8,
        "weight",
        "found integer 51",
    );
    assert_err(&destination_with("weight = -1"), 8, "weight", "1 to 50");
    assert_err(&destination_with("weight = 2.5"), 8, "weight", "float 2.5");
    assert_err(
        &destination_with("weight = \"x\""),
        8,
        "weight",
        "string \"x\"",
    );
    assert_eq!(
        ok(&destination_with("weight = 50")).edges[0].destinations[0].weight,
        50
    );
}

#[test]
fn unknown_key_at_top_level() {
    let text = format!("colour = \"blue\"\n{MINIMAL}");
    assert_err(
        &text,
        1,
        "colour",
        "unknown key (expected one of: node, admin, connections, edge, cluster, apiban, hep, records)",
    );
}

#[test]
fn unknown_key_in_node() {
    let text = MINIMAL.replace("id = \"n\"", "id = \"n\"\nzones = \"lon\"");
    assert_err(
        &text,
        3,
        "zones",
        "expected one of: id, zone, secret, previous_secrets, public_address, workers",
    );
}

#[test]
fn unknown_key_in_edge() {
    assert_err(
        &edge_with("algoritm = \"first\""),
        5,
        "algoritm",
        "unknown key",
    );
}

#[test]
fn unknown_key_in_destination() {
    assert_err(
        &destination_with("wieght = 3"),
        8,
        "wieght",
        "unknown key (expected one of: uri, weight, priority, zone, limit_zones, backup_zones, cps, \
         channels, transports, ca, server_name, client_cert, client_key)",
    );
}

#[test]
fn unknown_key_suggests_spelling() {
    assert_err(
        &destination_with("limit-zones = [\"lon\"]"),
        8,
        "limit-zones",
        "did you mean limit_zones?",
    );
}

#[test]
fn unknown_sub_table_in_edge() {
    let text = format!("{MINIMAL}[edge.extra]\nx = 1\n");
    assert_err(&text, 9, "extra", "unknown key");
}

#[test]
fn bad_algorithm_lists_the_names() {
    let e = err(&edge_with("algorithm = \"round-robin\""));
    assert_eq!((e.line, e.key.as_str()), (5, "algorithm"));
    for a in Algorithm::ALL {
        assert!(
            e.message.contains(a.name()),
            "{} not listed in {e}",
            a.name()
        );
    }
}

#[test]
fn bad_listen_entries() {
    let bad = |entry: &str| MINIMAL.replace("udp:127.0.0.1:5060", entry);
    assert_err(
        &bad("udp:localhost"),
        5,
        "listen",
        "not an IP address (with port)",
    );
    assert_err(
        &bad("sctp:127.0.0.1:5060"),
        5,
        "listen",
        "unknown transport",
    );
    assert_err(&bad("127.0.0.1:5060"), 5, "listen", "transport:address");
    assert_err(
        &bad("udp:::1:5060"),
        5,
        "listen",
        "not an IP address (with port)",
    );
    assert_err(
        &MINIMAL.replace("[\"udp:127.0.0.1:5060\"]", "\"udp:127.0.0.1:5060\""),
        5,
        "listen",
        "expected an array of strings",
    );
    assert_err(
        &MINIMAL.replace("[\"udp:127.0.0.1:5060\"]", "[]"),
        5,
        "listen",
        "at least one",
    );
}

#[test]
fn listen_entry_line_is_its_own_line() {
    let text = MINIMAL.replace(
        "[\"udp:127.0.0.1:5060\"]",
        "[\n  \"udp:127.0.0.1:5060\",\n  \"udp:127.0.0.1\",\n]",
    );
    assert_err(&text, 7, "listen", "udp:127.0.0.1");
}

#[test]
fn missing_listen_points_at_edge_header() {
    let text = MINIMAL.replace("listen = [\"udp:127.0.0.1:5060\"]\n", "");
    assert_err(&text, 4, "listen", "missing");
}

#[test]
fn wildcard_listen_requires_advertise() {
    let text = MINIMAL.replace("udp:127.0.0.1:5060", "udp:0.0.0.0:5060");
    assert_err(&text, 5, "advertise", "wildcard");
    let text6 = MINIMAL.replace("udp:127.0.0.1:5060", "udp:[::]:5060");
    assert_err(&text6, 5, "advertise", "wildcard");
    let fixed = text.replace("[[edge]]\n", "[[edge]]\nadvertise = \"sip.example.com\"\n");
    let adv = ok(&fixed).edges[0].advertise.clone();
    assert_eq!(
        adv,
        Some(HostPort {
            host: "sip.example.com".into(),
            port: None
        })
    );
}

#[test]
fn stun_servers_stand_in_for_advertise() {
    // A wildcard listen address is fine when STUN says the address.
    let text = MINIMAL
        .replace("udp:127.0.0.1:5060", "udp:0.0.0.0:5060")
        .replace(
            "[[edge]]\n",
            "[[edge]]\nstun = [\"stun.example.net\", \"192.0.2.9:3479\"]\n",
        );
    let e = &ok(&text).edges[0];
    let s = e.stun.as_ref().expect("stun");
    let servers: Vec<String> = s.servers.iter().map(|h| h.to_string()).collect();
    assert_eq!(servers, ["stun.example.net", "192.0.2.9:3479"]);
    assert_eq!(s.interval, std::time::Duration::from_secs(60));
    assert_eq!(s.line, 5);
    assert_eq!(e.advertise, None);
    let every = ok(&edge_with("stun = [\"192.0.2.9\"]\nstun_interval = 5")).edges[0]
        .stun
        .clone();
    assert_eq!(every.map(|s| s.interval.as_secs()), Some(5));
}

#[test]
fn bad_stun() {
    assert_err(&edge_with("stun = []"), 5, "stun", "at least one");
    assert_err(&edge_with("stun = [\"0.0.0.0\"]"), 5, "stun", "wildcard");
    assert_err(&edge_with("stun = \"192.0.2.9\""), 5, "stun", "array");
    assert_err(
        &edge_with("stun_interval = 30"),
        5,
        "stun_interval",
        "only used",
    );
    assert_err(
        &edge_with("stun = [\"192.0.2.9\"]\nstun_interval = 0"),
        6,
        "stun_interval",
        "",
    );
    let tcp_only = edge_with("stun = [\"192.0.2.9\"]").replace("udp:127", "tcp:127");
    assert_err(&tcp_only, 5, "stun", "udp: listen address");
}

#[test]
fn bad_advertise() {
    assert_err(
        &edge_with("advertise = \"0.0.0.0:5060\""),
        5,
        "advertise",
        "wildcard",
    );
    assert_err(
        &edge_with("advertise = \"host:0\""),
        5,
        "advertise",
        "not a port",
    );
    assert_err(
        &edge_with("advertise = \"bad host\""),
        5,
        "advertise",
        "host[:port]",
    );
}

/// MINIMAL with a TLS listener and one domain; tests append domain keys.
fn tls_edge(domain_keys: &str) -> String {
    format!(
        r#"[node]
id = "n"

[[edge]]
listen = ["udp:127.0.0.1:5060", "tls:127.0.0.1"]

[[edge.destination]]
uri = "sip:127.0.0.1:5070"

[[edge.domain]]
name = "SIP.Example.com"
cert = "certs/sip.pem"
key = "/etc/sipedge/sip.key"
{domain_keys}
"#
    )
}

#[test]
fn tls_listens_on_5061_by_default_with_its_domains() {
    let c = ok(&tls_edge(""));
    let e = &c.edges[0];
    assert_eq!(e.listen[1].transport, Transport::Tls);
    assert_eq!(e.listen[1].addr, sa("127.0.0.1:5061"));
    let d = &e.domains[0];
    assert_eq!(d.name, "sip.example.com");
    // Relative to the config file's folder.
    assert_eq!(d.cert, std::path::Path::new("certs/sip.pem"));
    let c = parse(&tls_edge(""), "/etc/sipedge/sipedge.toml").unwrap();
    assert_eq!(
        c.edges[0].domains[0].cert,
        std::path::Path::new("/etc/sipedge/certs/sip.pem")
    );
    assert_eq!(d.key, std::path::Path::new("/etc/sipedge/sip.key"));
    assert_eq!(d.versions, TlsVersion::ALL.to_vec());
    assert!(d.ciphers.is_empty() && d.curves.is_empty());
    assert!(!d.verify_client && !d.require_client);
    assert_eq!(d.line, 10);
    let c = ok(&MINIMAL.replace("udp:127.0.0.1", "tcp:127.0.0.1"));
    assert_eq!(c.edges[0].listen[0].transport, Transport::Tcp);
}

#[test]
fn a_tls_listener_needs_a_domain_and_a_tls_destination_a_tls_listener() {
    assert_err(
        &MINIMAL.replace("udp:127.0.0.1:5060", "tls:127.0.0.1:5061"),
        5,
        "listen",
        "needs at least one [[edge.domain]]",
    );
    assert_err(
        &MINIMAL.replace("sip:127.0.0.1:5070", "sips:127.0.0.1:5071"),
        7,
        "uri",
        "needs a tls: listen address",
    );
    let c = ok(&tls_edge("").replace("sip:127.0.0.1:5070", "sips:127.0.0.1"));
    let d = &c.edges[0].destinations[0];
    assert_eq!(d.transport, Transport::Tls);
    assert_eq!(d.addr, sa("127.0.0.1:5061"));
    let t = d.tls.as_ref().expect("TLS settings");
    assert_eq!((t.ca.as_ref(), t.server_name.as_str()), (None, "127.0.0.1"));
    let c = ok(&tls_edge("")
        .replace("sip:127.0.0.1:5070\"", "sip:127.0.0.1;transport=tls\"\nca = \"ca.pem\"\nserver_name = \"Pool.Example.net\"\nclient_cert = \"c.pem\"\nclient_key = \"c.key\""));
    let t = c.edges[0].destinations[0]
        .tls
        .clone()
        .expect("TLS settings");
    assert_eq!(t.server_name, "pool.example.net");
    assert_eq!(t.ca, Some("ca.pem".into()));
    assert_eq!(t.client_cert, Some(("c.pem".into(), "c.key".into())));
    assert_err(
        &tls_edge("").replace(
            "sip:127.0.0.1:5070\"",
            "sip:127.0.0.1:5070\"\nca = \"ca.pem\"",
        ),
        9,
        "ca",
        "only for a TLS destination",
    );
    assert_err(
        &tls_edge("").replace(
            "sip:127.0.0.1:5070\"",
            "sips:127.0.0.1\"\nclient_cert = \"c.pem\"",
        ),
        9,
        "client_cert",
        "go together",
    );
}

#[test]
fn domain_versions_ciphers_and_curves_are_names_users_know() {
    let c = ok(&tls_edge(
        r#"tls_versions = ["1.3", "TLSv1.2"]
ciphers = ["TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]
curves = ["X25519MLKEM768", "prime256v1"]"#,
    ));
    let d = &c.edges[0].domains[0];
    assert_eq!(d.versions, vec![TlsVersion::V1_3, TlsVersion::V1_2]);
    assert_eq!(
        d.ciphers,
        vec![
            Cipher::TLS_AES_256_GCM_SHA384,
            Cipher::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        ]
    );
    assert_eq!(d.curves, vec![Curve::X25519MlKem768, Curve::Secp256r1]);
    for (keys, key, needle) in [
        (
            "tls_versions = [\"1.1\"]",
            "domain.tls_versions",
            "refused by design",
        ),
        (
            "tls_versions = [\"TLSv1\"]",
            "domain.tls_versions",
            "RFC 8996",
        ),
        (
            "tls_versions = [\"2.0\"]",
            "domain.tls_versions",
            "not a TLS version",
        ),
        ("tls_versions = []", "domain.tls_versions", "at least one"),
        (
            "ciphers = [\"TLS_RSA_WITH_AES_128_CBC_SHA\"]",
            "domain.ciphers",
            "only AEAD suites with forward secrecy",
        ),
        (
            "ciphers = [\"TLS_FOO\"]",
            "domain.ciphers",
            "not a cipher suite sipedge knows",
        ),
        (
            "tls_versions = [\"1.3\"]\nciphers = [\"ECDHE-RSA-AES128-GCM-SHA256\"]",
            "domain.ciphers",
            "no suite for TLS 1.3",
        ),
        (
            "curves = [\"brainpool\"]",
            "domain.curves",
            "unknown key-exchange group",
        ),
        (
            "curves = [\"x25519mlkem768\"]",
            "domain.curves",
            "TLS 1.2 has no post-quantum",
        ),
        (
            "verify_client = true",
            "domain.verify_client",
            "needs client_ca",
        ),
        (
            "require_client = true",
            "domain.require_client",
            "needs client_ca",
        ),
        ("sni = true", "domain.sni", "unknown key"),
    ] {
        let text = tls_edge(keys);
        let e = err(&text);
        assert_eq!(e.key, key, "{keys}: {e}");
        assert!(e.line >= 10, "{keys}: {e}");
        assert!(e.message.contains(needle), "{keys}: {e}");
    }
    // A TLS 1.3-only domain may offer the post-quantum group alone.
    ok(&tls_edge(
        "tls_versions = [\"1.3\"]\ncurves = [\"x25519mlkem768\"]",
    ));
    let c = ok(&tls_edge("require_client = true\nclient_ca = \"ca.pem\""));
    assert!(c.edges[0].domains[0].verify_client);
}

#[test]
fn domain_names_are_checked_and_unique() {
    assert_err(
        &tls_edge("").replace("SIP.Example.com", "sip.*.com"),
        11,
        "domain.name",
        "not a domain name",
    );
    let two = format!(
        "{}[[edge.domain]]\nname = \"sip.example.com\"\ncert = \"a\"\nkey = \"b\"\n",
        tls_edge("")
    );
    assert_err(&two, 15, "domain.name", "already listed at line 10");
    let c = ok(&two.replace(
        "name = \"sip.example.com\"\ncert = \"a\"",
        "name = \"*.example.com\"\ncert = \"a\"",
    ));
    assert!(c.edges[0].domains[1].covers("x.example.com"));
    assert_err(
        &tls_edge("").replace("cert = \"certs/sip.pem\"\n", ""),
        10,
        "cert",
        "missing",
    );
}

#[test]
fn connections_take_their_defaults_and_check_their_ranges() {
    assert_eq!(ok(MINIMAL).connections, Connections::default());
    let text = format!(
        "{MINIMAL}
[connections]
max_per_source = 2
header_timeout = 0.5
"
    );
    let c = ok(&text).connections;
    assert_eq!(c.max_per_source, 2);
    assert_eq!(c.header_timeout, std::time::Duration::from_millis(500));
    assert_eq!(c.max, Connections::default().max);
    let text = format!(
        "{MINIMAL}
[connections]
max_message = 10
"
    );
    let e = err(&text);
    assert_eq!((e.line, e.key.as_str()), (11, "max_message"), "{e}");
    let text = format!(
        "{MINIMAL}
[connections]
idle = 5
"
    );
    assert_eq!(err(&text).key, "idle");
}

#[test]
fn nat_test_takes_names_or_an_opensips_bitmask() {
    use crate::nat::{NatTest, NatTests};
    let by_flags = ok(&edge_with("nat_test = 19")).edges[0].nat_test;
    let by_names = ok(&edge_with(
        "nat_test = [\"private-contact\", \"received\", \"via-port\"]",
    ))
    .edges[0]
        .nat_test;
    assert_eq!(by_flags, by_names);
    assert_eq!(
        by_names,
        NatTests::of(&[NatTest::PrivateContact, NatTest::Received, NatTest::ViaPort])
    );
    assert!(ok(&edge_with("")).edges[0].nat_test.is_empty());
    assert_err(
        &edge_with("nat_test = [\"received\", \"stun\"]"),
        5,
        "nat_test",
        "unknown test \"stun\" (known: private-contact, received,",
    );
    assert_err(&edge_with("nat_test = 128"), 5, "nat_test", "");
}

#[test]
fn contract_keys_not_supported() {
    assert!(ok(&edge_with("topology_hiding = true")).edges[0].topology_hiding);
    assert!(!ok(&edge_with("")).edges[0].topology_hiding);
    assert_err(
        &edge_with("topology_hiding = 1"),
        5,
        "topology_hiding",
        "true or false",
    );
    let wss = MINIMAL.replace("udp:127.0.0.1:5060", "wss:127.0.0.1");
    assert_err(
        &wss,
        5,
        "listen",
        "wss:127.0.0.1:443 needs at least one [[edge.domain]]",
    );
    let ws = ok(&MINIMAL.replace("udp:127.0.0.1:5060", "ws:127.0.0.1:8088"));
    assert_eq!(ws.edges[0].listen[0].transport, Transport::Ws);
}

#[test]
fn insertion_names_checked() {
    assert_eq!(
        ok(&edge_with("insertion = \"transactional\"")).edges[0].insertion,
        Insertion::Transactional
    );
    assert_err(
        &edge_with("insertion = \"stateful\""),
        5,
        "insertion",
        "stateless or transactional",
    );
}

#[test]
fn unknown_flag_lists_known_ones() {
    let e = err(&edge_with("flags = [\"ping-replies\", \"pong\"]"));
    assert_eq!((e.line, e.key.as_str()), (5, "flags"));
    assert!(e.message.contains("\"pong\""), "{e}");
    assert!(e.message.contains("ping-replies"), "{e}");
    assert!(e.message.contains("registrations"), "{e}");
}

/// MINIMAL with the built-in registrar on and `[edge.registrar]` (line 10)
/// holding `lines` (from line 11).
fn registrar_with(lines: &str) -> String {
    format!(
        "{}[edge.registrar]\n{lines}\n",
        edge_with("flags = [\"registrations\"]")
    )
}

#[test]
fn registrar_needs_allow_and_takes_its_keys() {
    // The flag alone: who may register must be said.
    assert_err(
        &edge_with("flags = [\"registrations\"]"),
        5,
        "flags",
        "[edge.registrar] allow",
    );
    assert_err(&registrar_with(""), 10, "registrar.allow", "required");
    let r = ok(&registrar_with("allow = [\"10.0.0.0/8\", \"192.0.2.7\"]")).edges[0]
        .registrar
        .clone()
        .unwrap();
    let nets: Vec<String> = r.allow.iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32"]);
    assert_eq!(
        (
            r.min_expires,
            r.max_expires,
            r.default_expires,
            r.max_contacts
        ),
        (60, 3600, 3600, 10)
    );
    assert_eq!(
        (r.keepalive_interval, r.keepalive, r.keepalive_failures),
        (30, crate::config::Keepalive::Options, 3)
    );
    let r = ok(&registrar_with(
        "allow = [\"0.0.0.0/0\"]\nmin_expires = 10\nmax_expires = 120\n\
         default_expires = 60\nmax_contacts = 2\nkeepalive_interval = 0\n\
         keepalive = \"crlf\"\nkeepalive_failures = 5",
    ))
    .edges[0]
        .registrar
        .clone()
        .unwrap();
    assert_eq!(
        (r.min_expires, r.max_expires, r.default_expires),
        (10, 120, 60)
    );
    assert_eq!((r.max_contacts, r.keepalive_interval), (2, 0));
    assert_eq!(
        (r.keepalive, r.keepalive_failures),
        (crate::config::Keepalive::Crlf, 5)
    );
    let allow = "allow = [\"0.0.0.0/0\"]\n";
    assert_err(
        &registrar_with("allow = [\"10.0.0.0/33\"]"),
        11,
        "registrar.allow",
        "not a network",
    );
    assert_err(
        &registrar_with(&format!("{allow}min_expires = 600\nmax_expires = 60")),
        13,
        "registrar.max_expires",
        "shorter than min_expires",
    );
    assert_err(
        &registrar_with(&format!("{allow}default_expires = 10")),
        12,
        "registrar.default_expires",
        "between",
    );
    assert_err(
        &registrar_with(&format!("{allow}keepalive = \"stun\"")),
        12,
        "registrar.keepalive",
        "options or crlf",
    );
    assert_err(
        &registrar_with(&format!("{allow}ttl = 3")),
        12,
        "registrar.ttl",
        "unknown",
    );
    let r = ok(&registrar_with(&format!(
        "{allow}domains = [\"Example.COM\", \"[2001:db8::1]\"]"
    )))
    .edges[0]
        .registrar
        .clone()
        .unwrap();
    assert_eq!(r.domains, ["example.com", "[2001:db8::1]"]);
    assert!(ok(&registrar_with(allow)).edges[0]
        .registrar
        .as_ref()
        .unwrap()
        .domains
        .is_empty());
    for bad in ["alice@example.com", "example.com:5060", "", "2001:db8::1"] {
        assert_err(
            &registrar_with(&format!("{allow}domains = [\"{bad}\"]")),
            12,
            "registrar.domains",
            "is not a domain",
        );
    }
    // The table without the flag does nothing: an error, not a surprise.
    assert_err(
        &format!("{MINIMAL}[edge.registrar]\n{allow}"),
        9,
        "registrar",
        "only used with flags",
    );
}

#[test]
fn missing_node() {
    let text = MINIMAL.replace("[node]\nid = \"n\"\n", "");
    assert_err(&text, 1, "node", "missing required table [node]");
    assert_err("", 1, "node", "[node]");
}

#[test]
fn missing_node_id_points_at_node_header() {
    let text = MINIMAL.replace("id = \"n\"", "zone = \"lon\"");
    assert_err(&text, 1, "id", "missing");
    assert_err(
        &MINIMAL.replace("id = \"n\"", "id = \"\""),
        2,
        "id",
        "non-empty",
    );
    assert_err(
        &MINIMAL.replace("id = \"n\"", "id = 7"),
        2,
        "id",
        "expected a string, found integer 7",
    );
}

#[test]
fn missing_edges() {
    assert_err("[node]\nid = \"n\"\n", 1, "edge", "at least one [[edge]]");
    let single = MINIMAL
        .replace("[[edge]]", "[edge]")
        .replace("[[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n", "");
    assert_err(&single, 4, "edge", "double brackets");
}

#[test]
fn no_destinations() {
    let text = MINIMAL.replace("[[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n", "");
    assert_err(&text, 4, "destination", "at least one [[edge.destination]]");
}

#[test]
fn destination_without_uri() {
    let text = MINIMAL.replace("uri = \"sip:127.0.0.1:5070\"", "weight = 2");
    assert_err(&text, 7, "uri", "missing");
}

#[test]
fn bad_destination_uris() {
    let bad = |uri: &str| MINIMAL.replace("sip:127.0.0.1:5070", uri);
    assert_err(&bad("http://10.0.0.1"), 8, "uri", "not sip or sips");
    assert_err(&bad("10.0.0.1:5060"), 8, "uri", "sip");
    assert_err(&bad("sip:gw@"), 8, "uri", "no host");
    assert_err(&bad("sip:10.0.0.1:99999"), 8, "uri", "not a port");
    assert_err(&bad("sip:10.0.0.1;transport=sctp"), 8, "uri", "transport");
    assert_err(&bad("sip:no-such-host.invalid"), 8, "uri", "resolve");
}

#[test]
fn duplicate_listen_across_edges() {
    let text = format!(
        "{MINIMAL}\n[[edge]]\nname = \"b\"\nlisten = [\"udp:127.0.0.1:5060\"]\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:5071\"\n"
    );
    let e = err(&text);
    assert_eq!((e.line, e.key.as_str()), (12, "listen"));
    assert!(e.message.contains("already used"), "{e}");
    assert!(e.message.contains("\"edge-1\" (line 5)"), "{e}");
}

#[test]
fn wildcard_overlap_across_edges() {
    let text = format!(
        "{MINIMAL}\n[[edge]]\nlisten = [\"udp:0.0.0.0:5060\"]\nadvertise = \"192.0.2.1\"\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:5071\"\n"
    );
    assert_err(&text, 11, "listen", "overlaps");
    // Same address on another port, or another family, is fine.
    ok(&text.replace("0.0.0.0:5060", "0.0.0.0:5062"));
    ok(&text.replace("0.0.0.0:5060", "[::]:5060"));
}

#[test]
fn duplicate_listen_within_an_edge() {
    let text = MINIMAL.replace(
        "[\"udp:127.0.0.1:5060\"]",
        "[\"udp:127.0.0.1:5060\", \"udp:127.0.0.1:5060\"]",
    );
    assert_err(&text, 5, "listen", "already used");
}

#[test]
fn duplicate_edge_names() {
    let text = format!(
        "{MINIMAL}\n[[edge]]\nname = \"edge-1\"\nlisten = [\"udp:127.0.0.1:5062\"]\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:5071\"\n"
    );
    assert_err(&text, 10, "name", "already used by the edge at line 4");
}

#[test]
fn secret_too_short() {
    let text = MINIMAL.replace("id = \"n\"", "id = \"n\"\nsecret = \"short-secret\"");
    let e = err(&text);
    assert_eq!((e.line, e.key.as_str()), (3, "secret"));
    assert!(e.message.contains("at least 16 bytes"), "{e}");
    assert!(!e.message.contains("short-secret"), "secret leaked: {e}");
    let sixteen = MINIMAL.replace("id = \"n\"", "id = \"n\"\nsecret = \"0123456789abcdef\"");
    assert_eq!(
        ok(&sixteen).node.secret.as_deref(),
        Some("0123456789abcdef")
    );
}

#[test]
fn node_workers_and_public_address_checked() {
    let with = |line: &str| MINIMAL.replace("id = \"n\"", &format!("id = \"n\"\n{line}"));
    assert_err(&with("workers = 0"), 3, "workers", "1 to 256");
    assert_err(&with("workers = 257"), 3, "workers", "1 to 256");
    assert_err(
        &with("public_address = \"a b\""),
        3,
        "public_address",
        "host[:port]",
    );
    assert_eq!(
        ok(&with("public_address = \"edge1.example.com:5060\""))
            .node
            .public_address
            .as_deref(),
        Some("edge1.example.com:5060")
    );
}

#[test]
fn attempts_range() {
    assert_err(
        &edge_with("primary_attempts = 0"),
        5,
        "primary_attempts",
        "1 to 16",
    );
    assert_err(
        &edge_with("secondary_attempts = 17"),
        5,
        "secondary_attempts",
        "1 to 16",
    );
}

#[test]
fn admin_listen_checked() {
    let text = format!("{MINIMAL}[admin]\nlisten = \"localhost:8080\"\n");
    assert_err(&text, 10, "listen", "not an IP address with port");
    let text = format!("{MINIMAL}[admin]\n");
    assert_err(&text, 9, "listen", "missing");
}

#[test]
fn admin_authentication_files_are_relative_to_the_config() {
    let text = format!(
        "{MINIMAL}[admin]\nlisten = \"127.0.0.1:8080\"\ntoken_file = \"admin.token\"\n\
         user = \"noc\"\npassword_file = \"/etc/sipedge/noc.password\"\n"
    );
    let a = ok(&text).admin.expect("[admin]");
    let dir = std::path::Path::new(FILE).parent().expect("a folder");
    assert_eq!(a.token_file, Some(dir.join("admin.token")));
    assert_eq!(
        a.basic,
        Some(("noc".into(), "/etc/sipedge/noc.password".into()))
    );
    let text = format!("{MINIMAL}[admin]\nlisten = \"127.0.0.1:8080\"\nuser = \"noc\"\n");
    assert_err(&text, 11, "user", "go together");
    let text = format!(
        "{MINIMAL}[admin]\nlisten = \"127.0.0.1:8080\"\nuser = \"a:b\"\npassword_file = \"p\"\n"
    );
    assert_err(&text, 11, "user", "without ':'");
    let text = format!("{MINIMAL}[admin]\nlisten = \"127.0.0.1:8080\"\ntoken_file = \"\"\n");
    assert_err(&text, 11, "token_file", "must be");
}

#[test]
fn ipv6_destination() {
    let c = ok(&MINIMAL.replace("sip:127.0.0.1:5070", "sip:[::1]:5070"));
    let d = &c.edges[0].destinations[0];
    assert_eq!(d.addr, sa("[::1]:5070"));
    assert_eq!(d.uri, "sip:[::1]:5070");
    let c = ok(&MINIMAL.replace("sip:127.0.0.1:5070", "sip:[2001:db8::5]"));
    assert_eq!(c.edges[0].destinations[0].addr, sa("[2001:db8::5]:5060"));
}

#[test]
fn websocket_destinations_are_refused_at_their_line_and_tcp_ones_taken() {
    // Never quietly sent over UDP instead.
    for (uri, transport) in [
        ("sip:10.0.0.1;transport=ws", "ws"),
        ("sips:10.0.0.1;transport=WSS", "wss"),
    ] {
        let e = err(&MINIMAL.replace("sip:127.0.0.1:5070", uri));
        assert_eq!((e.line, e.key.as_str()), (8, "uri"), "{uri}");
        assert!(
            e.message
                .starts_with(&format!("{transport}: not supported by this version")),
            "{uri}: {e}"
        );
    }
    let c = ok(&MINIMAL.replace("sip:127.0.0.1:5070", "sip:10.0.0.1"));
    assert_eq!(c.edges[0].destinations[0].addr, sa("10.0.0.1:5060"));
    let c = ok(&MINIMAL.replace("sip:127.0.0.1:5070", "sip:10.0.0.1;transport=TCP"));
    assert_eq!(c.edges[0].destinations[0].transport, Transport::Tcp);
}

#[test]
fn user_part_is_ignored_for_addr() {
    let c = ok(&MINIMAL.replace("sip:127.0.0.1:5070", "sip:gw@10.0.0.1:5080"));
    assert_eq!(c.edges[0].destinations[0].addr, sa("10.0.0.1:5080"));
}

#[test]
fn host_names_go_to_the_resolver_given() {
    struct Fixed;
    impl Resolve for Fixed {
        fn resolve(&self, host: &str) -> std::result::Result<std::net::IpAddr, String> {
            match host {
                "pbx.example.com" => Ok([10, 0, 0, 7].into()),
                _ => Err(format!("no {host}")),
            }
        }
    }
    let text = MINIMAL.replace("sip:127.0.0.1:5070", "sip:pbx.example.com:5070");
    let c = parse_with(&text, "t.toml", &Fixed).expect("resolves");
    let d = &c.edges[0].destinations[0];
    assert_eq!(d.addr, sa("10.0.0.7:5070"));
    assert_eq!(d.uri, "sip:pbx.example.com:5070");
    let e = parse_with(
        &MINIMAL.replace("127.0.0.1:5070", "other.example.com"),
        "t.toml",
        &Fixed,
    )
    .expect_err("unknown name");
    assert_eq!((e.line, e.key.as_str()), (8, "uri"), "{e}");
    assert!(e.message.contains("no other.example.com"), "{e}");
    // Without a resolver, names are refused rather than looked up.
    let e = parse(&text, "t.toml").expect_err("no resolver");
    assert!(e.message.contains("needs a resolver"), "{e}");
}

/// A resolver whose `locate` answers from a table: the servers of each
/// query key (none for a key not in it).
struct Located(fn(&str) -> Vec<crate::outbound::Target>);

impl Resolve for Located {
    fn resolve(&self, host: &str) -> std::result::Result<std::net::IpAddr, String> {
        Err(format!("no {host}"))
    }
    fn locate(
        &self,
        key: &str,
        _host: &str,
        _port: u16,
        _transport: Transport,
    ) -> std::result::Result<Vec<crate::outbound::Target>, String> {
        Ok((self.0)(key))
    }
}

/// One server a DNS lookup found.
fn server(
    host: &str,
    addr: &str,
    priority: u16,
    weight: u16,
    transport: Transport,
) -> crate::outbound::Target {
    crate::outbound::Target {
        priority,
        weight,
        id: 0,
        host: Box::from(host),
        transport,
        addr: sa(addr),
    }
}

#[test]
fn a_name_with_several_servers_becomes_one_destination_each() {
    let srv = Located(|key| {
        assert_eq!(key, "sip:pool.example.com");
        vec![
            server("a.example.com", "10.0.0.1:5070", 10, 10, Transport::Udp),
            server("b.example.com", "10.0.0.2:5070", 10, 30, Transport::Udp),
            server("c.example.com", "10.0.0.3:5070", 20, 5, Transport::Tcp),
            server("c.example.com", "10.0.0.4:5070", 20, 5, Transport::Tcp),
        ]
    });
    let text = MINIMAL
        .replace(
            "uri = \"sip:127.0.0.1:5070\"",
            "uri = \"sip:pool.example.com\"\ncps = 7",
        )
        .replace(
            "[\"udp:127.0.0.1:5060\"]",
            "[\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]",
        );
    let c = parse_with(&text, "t.toml", &srv).expect("resolves");
    let got: Vec<(&str, u32, u8, Transport, Option<u32>)> = c.edges[0]
        .destinations
        .iter()
        .map(|d| (d.uri.as_str(), d.weight, d.rank, d.transport, d.cps))
        .collect();
    assert_eq!(
        got,
        [
            ("sip:a.example.com:5070", 17, 0, Transport::Udp, Some(7)),
            ("sip:b.example.com:5070", 50, 0, Transport::Udp, Some(7)),
            (
                "sip:10.0.0.3:5070;transport=tcp",
                50,
                1,
                Transport::Tcp,
                Some(7)
            ),
            (
                "sip:10.0.0.4:5070;transport=tcp",
                50,
                1,
                Transport::Tcp,
                Some(7)
            ),
        ]
    );
    for d in &c.edges[0].destinations {
        assert_eq!(d.named_by.as_deref(), Some("sip:pool.example.com"));
        assert_eq!(d.line, 7);
    }
}

#[test]
fn servers_the_edge_cannot_send_to_are_left_out() {
    let mixed = Located(|key| match key {
        "sip:pool.example.com" => vec![
            server("v4.example.com", "10.0.0.1:5060", 10, 1, Transport::Udp),
            server(
                "v6.example.com",
                "[2001:db8::1]:5060",
                10,
                1,
                Transport::Udp,
            ),
            server("tls.example.com", "10.0.0.2:5061", 10, 1, Transport::Tls),
        ],
        _ => vec![server(
            "tls.example.com",
            "10.0.0.2:5061",
            10,
            1,
            Transport::Tls,
        )],
    });
    let text = MINIMAL.replace("sip:127.0.0.1:5070", "sip:pool.example.com");
    let c = parse_with(&text, "t.toml", &mixed).expect("parses");
    let uris: Vec<&str> = c.edges[0]
        .destinations
        .iter()
        .map(|d| d.uri.as_str())
        .collect();
    assert_eq!(
        uris,
        ["sip:v4.example.com:5060"],
        "IPv4 UDP only on this edge"
    );
    let text = MINIMAL.replace("sip:127.0.0.1:5070", "sip:tls-only.example.com");
    let e = parse_with(&text, "t.toml", &mixed).expect_err("nothing reachable");
    assert_eq!((e.line, e.key.as_str()), (7, "uri"), "{e}");
    assert!(e.message.contains("cannot send to"), "{e}");
}

#[test]
fn toml_syntax_error_names_line_and_key() {
    let text = MINIMAL.replace("id = \"n\"", "id = \"n");
    assert_err(&text, 2, "id", "invalid TOML");
    let dup = MINIMAL.replace("id = \"n\"", "id = \"n\"\nid = \"m\"");
    assert_err(&dup, 3, "id", "duplicate key");
}

#[test]
fn empty_zone_names_rejected() {
    assert_err(
        &destination_with("zone = \"\""),
        8,
        "zone",
        "must not be empty",
    );
    assert_err(
        &destination_with("backup_zones = [\"ams\", \"\"]"),
        8,
        "backup_zones",
        "must not be empty",
    );
    assert_err(
        &destination_with("limit_zones = \"lon\""),
        8,
        "limit_zones",
        "array of strings",
    );
}

/// An example file, read and parsed (the daemon reads files; the parser
/// takes text).
fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).expect("example file");
    parse(&text, &path.display().to_string())
}

#[test]
fn every_example_file_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = load(&path) {
                panic!("{e}");
            }
            seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(
        seen.iter().any(|f| f == "single-edge.toml"),
        "found only {seen:?}"
    );
}

#[test]
fn single_edge_example_is_the_documented_demo() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let c = load(&dir.join("single-edge.toml")).unwrap();
    assert_eq!(c.node.id, "demo");
    assert!(c.node.secret.is_some());
    let e = &c.edges[0];
    assert_eq!(e.listen[0].addr, sa("127.0.0.1:5060"));
    assert_eq!(e.algorithm, Algorithm::WeightedRoundRobin);
    assert!(e.ping_replies);
    let d: Vec<_> = e.destinations.iter().map(|d| (d.addr, d.weight)).collect();
    assert_eq!(d, [(sa("127.0.0.1:5070"), 3), (sa("127.0.0.1:5071"), 1)]);
}

#[test]
fn probe_defaults_without_a_table() {
    let p = &ok(MINIMAL).edges[0].probe;
    assert_eq!(p, &Probe::default());
    assert!(p.enabled);
    assert_eq!((p.interval, p.timeout), (ms(10_000), ms(2_000)));
    assert_eq!((p.inactive_threshold, p.active_threshold), (3, 1));
    assert!(p.alive_codes.is_empty());
    assert_eq!(p.line, 0);
}

#[test]
fn probe_empty_table_is_the_defaults_with_its_line() {
    let p = &ok(&probe_with("")).edges[0].probe;
    assert_eq!(
        p,
        &Probe {
            line: 9,
            ..Probe::default()
        }
    );
}

#[test]
fn probe_every_key() {
    let p = ok(&probe_with(
        "enabled = false\ninterval = 0.5\ntimeout = 0.3\ninactive_threshold = 5\n\
         active_threshold = 2\nalive_codes = [\"2xx\", \"404\", 486]",
    ))
    .edges
    .remove(0)
    .probe;
    assert_eq!(
        p,
        Probe {
            enabled: false,
            interval: ms(500),
            timeout: ms(300),
            inactive_threshold: 5,
            active_threshold: 2,
            alive_codes: vec![
                CodeRange { lo: 200, hi: 299 },
                CodeRange { lo: 404, hi: 404 },
                CodeRange { lo: 486, hi: 486 },
            ],
            line: 9,
        }
    );
}

#[test]
fn probe_inline_table_and_whole_seconds() {
    let text = MINIMAL.replace(
        "[[edge.destination]]",
        "probe = { interval = 30, timeout = 1 }\n[[edge.destination]]",
    );
    let p = &ok(&text).edges[0].probe;
    assert_eq!((p.interval, p.timeout), (ms(30_000), ms(1_000)));
    assert_eq!(p.line, 7);
}

#[test]
fn probe_seconds_boundaries_are_inclusive() {
    let p = &ok(&probe_with("interval = 0.1\ntimeout = 0.05")).edges[0].probe;
    assert_eq!((p.interval, p.timeout), (ms(100), ms(50)));
    let p = &ok(&probe_with("interval = 3600\ntimeout = 60")).edges[0].probe;
    assert_eq!((p.interval, p.timeout), (ms(3_600_000), ms(60_000)));
    let p = &ok(&probe_with("interval = 1e1\ntimeout = 2.5")).edges[0].probe;
    assert_eq!((p.interval, p.timeout), (ms(10_000), ms(2_500)));
}

#[test]
fn probe_interval_out_of_range_or_not_a_number() {
    let key = "probe.interval";
    assert_err(
        &probe_with("interval = 0.09"),
        10,
        key,
        "0.1 to 3600, found float 0.09",
    );
    assert_err(
        &probe_with("interval = 3601"),
        10,
        key,
        "found integer 3601",
    );
    assert_err(&probe_with("interval = 0"), 10, key, "0.1 to 3600");
    assert_err(&probe_with("interval = -5"), 10, key, "0.1 to 3600");
    assert_err(&probe_with("interval = nan"), 10, key, "0.1 to 3600");
    assert_err(&probe_with("interval = inf"), 10, key, "0.1 to 3600");
    assert_err(&probe_with("interval = \"10s\""), 10, key, "string \"10s\"");
}

#[test]
fn probe_timeout_out_of_range() {
    let key = "probe.timeout";
    assert_err(&probe_with("timeout = 0.04"), 10, key, "0.05 to 60");
    assert_err(
        &probe_with("interval = 100\ntimeout = 61"),
        11,
        key,
        "0.05 to 60, found integer 61",
    );
    assert_err(&probe_with("timeout = true"), 10, key, "boolean true");
}

#[test]
fn probe_timeout_must_not_exceed_interval() {
    let e = err(&probe_with("interval = 1\ntimeout = 1.5"));
    assert_eq!(
        e.to_string(),
        "test.toml:11: probe.timeout: 1.5 s is longer than probe.interval (1 s); \
         it must not exceed it"
    );
    // The default timeout (2 s) against a short interval: point at the interval.
    assert_err(
        &probe_with("interval = 1"),
        10,
        "probe.interval",
        "shorter than probe.timeout (2 s by default)",
    );
    let p = &ok(&probe_with("interval = 1\ntimeout = 1")).edges[0].probe;
    assert_eq!(p.timeout, p.interval);
}

#[test]
fn probe_thresholds_range() {
    for key in ["inactive_threshold", "active_threshold"] {
        let full = format!("probe.{key}");
        assert_err(&probe_with(&format!("{key} = 0")), 10, &full, "1 to 100");
        assert_err(&probe_with(&format!("{key} = 101")), 10, &full, "1 to 100");
        assert_err(&probe_with(&format!("{key} = 2.5")), 10, &full, "float 2.5");
        let p = ok(&probe_with(&format!("{key} = 100")))
            .edges
            .remove(0)
            .probe;
        let n = if key == "inactive_threshold" {
            p.inactive_threshold
        } else {
            p.active_threshold
        };
        assert_eq!(n, 100);
    }
}

#[test]
fn probe_enabled_must_be_a_boolean() {
    assert_err(
        &probe_with("enabled = \"yes\""),
        10,
        "probe.enabled",
        "expected true or false, found string \"yes\"",
    );
}

#[test]
fn probe_bad_alive_codes() {
    let key = "probe.alive_codes";
    let bad = |codes: &str| probe_with(&format!("alive_codes = {codes}"));
    assert_err(&bad("[\"2x\"]"), 10, key, "\"2x\" is not a status code");
    assert_err(
        &bad("[\"700\"]"),
        10,
        key,
        "\"700\" is not a SIP status code",
    );
    assert_err(&bad("[\"abc\"]"), 10, key, "\"abc\" is not a status code");
    assert_err(
        &bad("[\"2xx\", \"20x\"]"),
        10,
        key,
        "\"20x\" is not a status code",
    );
    assert_err(&bad("[\"\"]"), 10, key, "\"\" is not a status code");
    assert_err(&bad("[\"1xx\"]"), 10, key, "provisional");
    assert_err(&bad("[\"180\"]"), 10, key, "provisional");
    assert_err(&bad("[99]"), 10, key, "\"99\" is not a status code");
    assert_err(&bad("[\"099\"]"), 10, key, "not a SIP status code");
    assert_err(&bad("[true]"), 10, key, "found boolean true");
    assert_err(&bad("\"2xx\""), 10, key, "expected an array");
    // The entry's own line, in a multi-line array.
    assert_err(&bad("[\n  \"200\",\n  \"9xx\",\n]"), 12, key, "\"9xx\"");
}

#[test]
fn probe_alive_code_spellings() {
    let p = ok(&probe_with("alive_codes = [\"6XX\", \"200\", 404]"))
        .edges
        .remove(0)
        .probe;
    assert_eq!(
        p.alive_codes,
        [
            CodeRange { lo: 600, hi: 699 },
            CodeRange { lo: 200, hi: 200 },
            CodeRange { lo: 404, hi: 404 },
        ]
    );
    let shown: Vec<String> = p.alive_codes.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["6xx", "200", "404"]);
    assert_eq!(CodeRange { lo: 200, hi: 250 }.to_string(), "200-250");
}

#[test]
fn probe_unknown_keys() {
    assert_err(
        &probe_with("intervall = 5"),
        10,
        "probe.intervall",
        "unknown key (expected one of: enabled, interval, timeout, inactive_threshold, \
         active_threshold, alive_codes)",
    );
    assert_err(
        &probe_with("alive-codes = [\"200\"]"),
        10,
        "probe.alive-codes",
        "did you mean alive_codes?",
    );
    assert_err(
        &probe_with("[edge.probe.extra]\nx = 1"),
        10,
        "probe.extra",
        "unknown key",
    );
}

#[test]
fn probe_must_be_a_table() {
    assert_err(
        &edge_with("probe = true"),
        5,
        "probe",
        "expected a table [edge.probe], found boolean true",
    );
    let text = format!("{MINIMAL}[[edge.probe]]\ninterval = 5\n");
    assert_err(&text, 9, "probe", "found an array");
}

#[test]
fn probe_per_edge() {
    let text = format!(
        "{MINIMAL}[edge.probe]\ninterval = 5\n\n[[edge]]\nlisten = [\"udp:127.0.0.1:5062\"]\n\
         [[edge.destination]]\nuri = \"sip:127.0.0.1:5071\"\n"
    );
    let c = ok(&text);
    assert_eq!(c.edges[0].probe.interval, ms(5_000));
    assert_eq!(c.edges[1].probe, Probe::default());
}

#[test]
fn is_alive_any_final_by_default() {
    let p = Probe::default();
    for code in [200, 302, 404, 486, 503, 699] {
        assert!(p.is_alive(code), "{code}");
    }
    for code in [0, 100, 180, 199, 700, 999] {
        assert!(!p.is_alive(code), "{code}");
    }
}

#[test]
fn is_alive_by_alive_codes() {
    let p = Probe {
        alive_codes: vec![
            CodeRange { lo: 200, hi: 299 },
            CodeRange { lo: 404, hi: 404 },
        ],
        ..Probe::default()
    };
    for (code, alive) in [
        (200, true),
        (299, true),
        (404, true),
        (180, false),
        (300, false),
        (403, false),
        (405, false),
        (503, false),
    ] {
        assert_eq!(p.is_alive(code), alive, "{code}");
    }
    // A provisional code is never alive, even inside a listed range.
    let odd = Probe {
        alive_codes: vec![CodeRange { lo: 100, hi: 299 }],
        ..Probe::default()
    };
    assert!(!odd.is_alive(180));
}

/// A transactional MINIMAL with an `[edge.transaction]` table (line 10)
/// holding `lines` (from line 11).
fn transaction_with(lines: &str) -> String {
    format!(
        "{}[edge.transaction]\n{lines}\n",
        edge_with("insertion = \"transactional\"")
    )
}

#[test]
fn transaction_defaults_are_rfc_3261s() {
    let t = &ok(&edge_with("insertion = \"transactional\"")).edges[0].transaction;
    assert_eq!(t, &Transaction::default());
    assert_eq!(
        (t.timers.t1, t.timers.t2, t.timers.t4),
        (ms(500), ms(4000), ms(5000))
    );
    assert_eq!(t.failover_timeout, ms(2000));
    assert_eq!(t.invite_timeout, ms(180_000));
    for code in [408, 480, 500, 502, 503, 504] {
        assert!(t.fails_over(code), "{code}");
    }
    for code in [200, 302, 404, 486, 487, 501, 600, 603] {
        assert!(!t.fails_over(code), "{code}");
    }
}

#[test]
fn transaction_every_key() {
    let t = ok(&transaction_with(
        "t1 = 0.05\nt2 = 0.4\nt4 = 0.5\nlinger = 32\nfailover_codes = [\"5xx\", 408, \"486\"]\n\
         failover_timeout = 0.3\ninvite_timeout = 60\nmax_transactions = 1000",
    ))
    .edges[0]
        .transaction
        .clone();
    assert_eq!(
        (t.timers.t1, t.timers.t2, t.timers.t4),
        (ms(50), ms(400), ms(500))
    );
    assert!(t.fails_over(500) && t.fails_over(599) && t.fails_over(408) && t.fails_over(486));
    assert!(!t.fails_over(480) && !t.fails_over(404));
    assert_eq!(t.failover_timeout, ms(300));
    assert_eq!(t.invite_timeout, ms(60_000));
    assert_eq!(t.max_transactions, 1000);
    assert_eq!(t.line, 10);
}

#[test]
fn transaction_errors_name_line_and_key() {
    assert_err(
        &transaction_with("failover_codes = [\"603\"]"),
        11,
        "transaction.failover_codes",
        "global failure",
    );
    assert_err(
        &transaction_with("failover_codes = [\"6xx\"]"),
        11,
        "transaction.failover_codes",
        "§16.7",
    );
    assert_err(
        &transaction_with("failover_codes = [200]"),
        11,
        "transaction.failover_codes",
        "not a failure",
    );
    assert_err(
        &transaction_with("t1 = 2\nt2 = 1"),
        12,
        "transaction.t2",
        "must not be shorter than t1",
    );
    assert_err(
        &transaction_with("t1 = 0"),
        11,
        "transaction.t1",
        "from 0.01 to 10",
    );
    assert_err(
        &transaction_with("max_transactions = 0"),
        11,
        "transaction.max_transactions",
        "whole number",
    );
    assert_err(
        &transaction_with("t3 = 1"),
        11,
        "transaction.t3",
        "unknown key",
    );
    // The table on a stateless edge would be silently ignored: refused.
    assert_err(
        &format!("{MINIMAL}[edge.transaction]\nt1 = 1\n"),
        9,
        "transaction",
        "only used with insertion = \"transactional\"",
    );
}

#[test]
fn capacity_keys() {
    let c = ok(&edge_with(
        "cps = 100\nchannels = 500\ncapacity_failover = [\"sip:10.0.0.2:5060\", \"sips:node3.example.com\"]\n\
         max_call_duration = 7200",
    ));
    let cap = &c.edges[0].capacity;
    assert_eq!((cap.cps, cap.channels), (Some(100), Some(500)));
    assert_eq!(
        cap.failover,
        ["sip:10.0.0.2:5060", "sips:node3.example.com"]
    );
    assert_eq!(cap.max_call_duration, Duration::from_secs(7200));
    assert_eq!(ok(MINIMAL).edges[0].capacity, Capacity::default());
    let d = &ok(&destination_with("cps = 10\nchannels = 20")).edges[0].destinations[0];
    assert_eq!((d.cps, d.channels), (Some(10), Some(20)));

    assert_err(&edge_with("cps = 0"), 5, "cps", "whole number from 1");
    assert_err(&edge_with("cps = 2.5"), 5, "cps", "whole number");
    assert_err(&edge_with("channels = -1"), 5, "channels", "whole number");
    assert_err(
        &edge_with("capacity_failover = [\"10.0.0.2\"]"),
        5,
        "capacity_failover",
        "another node's SIP URI",
    );
    assert_err(
        &edge_with("max_call_duration = 10"),
        5,
        "max_call_duration",
        "from 60",
    );
    assert_err(
        &destination_with("channels = 0"),
        8,
        "channels",
        "whole number",
    );
}

#[test]
fn capacity_code() {
    assert_eq!(ok(MINIMAL).edges[0].capacity.code, 503);
    assert_eq!(
        ok(&edge_with("capacity_code = 486")).edges[0].capacity.code,
        486
    );
    assert_eq!(
        ok(&edge_with("capacity_code = 603")).edges[0].capacity.code,
        603
    );
    for bad in ["405", "407", "481", "499"] {
        assert_err(
            &edge_with(&format!("capacity_code = {bad}")),
            5,
            "capacity_code",
            &format!("{bad} does not say \"no room now\": expected one of 403, 404"),
        );
    }
    for bad in ["302", "700"] {
        assert_err(
            &edge_with(&format!("capacity_code = {bad}")),
            5,
            "capacity_code",
            "from 400",
        );
    }
}

#[test]
fn capacity_failover_to_the_cluster() {
    let cluster = |node: &str, listen: &str| {
        edge_with("capacity_failover = [\"sip:10.0.0.2:5060\", \"cluster\"]")
            .replace("id = \"n\"\n", &format!("id = \"n\"\n{node}\n"))
            .replace(
                "[[edge]]",
                "[cluster]\nredis = \"redis://127.0.0.1:6379\"\n[[edge]]",
            )
            .replace("\"udp:127.0.0.1:5060\"", listen)
    };
    let uris = |c: &Config| -> Vec<String> {
        let own = c.edges[0].own_uris(&c.node);
        own.into_iter().map(|(_, u)| u).collect()
    };
    // One URI per transport; the listener of the public address's family.
    let c = ok(&cluster(
        "public_address = \"198.51.100.1:5999\"",
        "\"udp:[::1]:5090\", \"udp:127.0.0.1:5070\", \"tcp:127.0.0.1:5071\"",
    ));
    assert_eq!(c.edges[0].capacity.failover, ["sip:10.0.0.2:5060"]);
    assert_eq!(c.edges[0].capacity.failover_cluster, Some(8));
    assert_eq!(
        uris(&c),
        [
            "sip:198.51.100.1:5070",
            "sip:198.51.100.1:5071;transport=tcp"
        ]
    );
    // No WebSocket: a browser does not follow a redirect to another node.
    let tcp = ok(&cluster(
        "public_address = \"2001:db8::1\"",
        "\"ws:[::1]:8080\", \"tcp:[::1]:5060\"",
    ));
    assert_eq!(uris(&tcp), ["sip:[2001:db8::1]:5060;transport=tcp"]);
    assert_err(
        &cluster("", "\"udp:127.0.0.1:5060\""),
        8,
        "capacity_failover",
        "needs [node] public_address",
    );
    assert_err(
        &edge_with("capacity_failover = [\"cluster\"]"),
        5,
        "capacity_failover",
        "needs [cluster] redis or redis_cluster",
    );
}

#[test]
fn compression_keys() {
    let c = ok(&edge_with(
        "compress_in = [\"compact\", \"deflate\"]\ncompress_out = [\"decompress\"]\n\
         compact_keep = [\"Call-ID\", \"via\"]",
    ));
    let e = &c.edges[0];
    assert_eq!(
        e.compress_in,
        Coding {
            compact: true,
            body: BodyCoding::Deflate
        }
    );
    assert_eq!(
        e.compress_out,
        Coding {
            compact: false,
            body: BodyCoding::Decompress
        }
    );
    assert_eq!(
        e.compact_keep,
        [sip::HeaderName::CallId, sip::HeaderName::Via]
    );
    assert!(ok(MINIMAL).edges[0].compress_in.is_identity());
    assert_err(
        &edge_with("compress_in = [\"zip\"]"),
        5,
        "compress_in",
        "expected any of: compact, deflate, gzip, decompress",
    );
    assert_err(
        &edge_with("compress_out = [\"gzip\", \"decompress\"]"),
        5,
        "compress_out",
        "either compresses",
    );
    assert_err(
        &edge_with("compact_keep = [\"Max-Forwards\"]"),
        5,
        "compact_keep",
        "has no compact form",
    );
}

#[test]
fn validation_keys() {
    use crate::validate::Check;
    let c = ok(&edge_with(
        "validate = [\"basic\", \"sdp\", \"no-max-forwards\"]\non_invalid = \"tag\"",
    ));
    assert_eq!(
        c.edges[0].validate,
        [Check::Basic, Check::Sdp, Check::NoMaxForwards]
    );
    assert_eq!(c.edges[0].on_invalid, OnInvalid::Tag);
    assert_err(
        &edge_with("validate = [\"strict\"]"),
        5,
        "validate",
        "unknown check \"strict\"",
    );
    assert_err(
        &edge_with("on_invalid = \"drop\""),
        5,
        "on_invalid",
        "reject or tag",
    );
}

#[test]
fn foreign_next_hop_dispatches_by_default_or_refuses() {
    assert_eq!(
        ok(&edge_with("")).edges[0].foreign_next_hop,
        ForeignNextHop::Dispatch
    );
    assert_eq!(
        ok(&edge_with("foreign_next_hop = \"refuse\"")).edges[0].foreign_next_hop,
        ForeignNextHop::Refuse
    );
    assert_err(
        &edge_with("foreign_next_hop = \"relay\""),
        5,
        "foreign_next_hop",
        "dispatch or refuse",
    );
}

#[test]
fn previous_secrets_rotate_the_cluster_key() {
    let with = |lines: &str| MINIMAL.replace("id = \"n\"", &format!("id = \"n\"\n{lines}"));
    let text =
        with("secret = \"the new secret, 16+\"\nprevious_secrets = [\"the old secret, 16+\"]");
    let node = ok(&text).node;
    assert_eq!(node.secret.as_deref(), Some("the new secret, 16+"));
    assert_eq!(node.previous_secrets, ["the old secret, 16+"]);

    // Each one long enough, named at its own line, never echoed.
    let text = with(
        "secret = \"the new secret, 16+\"\nprevious_secrets = [\n  \"the old secret, 16+\",\n  \"short-one\",\n]",
    );
    let e = err(&text);
    assert_eq!((e.line, e.key.as_str()), (6, "previous_secrets"));
    assert!(e.message.contains("at least 16 bytes"), "{e}");
    assert!(!e.message.contains("short-one"), "secret leaked: {e}");

    // Without a secret to sign with, previous ones mean nothing.
    let e = err(&with("previous_secrets = [\"the old secret, 16+\"]"));
    assert_eq!((e.line, e.key.as_str()), (3, "previous_secrets"));
    assert!(e.message.contains("needs `secret`"), "{e}");
}

#[test]
fn a_destination_may_take_large_requests_over_tcp() {
    let with = |keys: &str| {
        MINIMAL
            .replace(
                "uri = \"sip:127.0.0.1:5070\"",
                &format!("uri = \"sip:127.0.0.1:5070\"\n{keys}"),
            )
            .replace(
                "[\"udp:127.0.0.1:5060\"]",
                "[\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]",
            )
    };
    let c = ok(&with("transports = [\"udp\", \"tcp\"]"));
    let d = &c.edges[0].destinations[0];
    assert_eq!(
        (d.transport, d.large),
        (Transport::Udp, Some(Transport::Tcp))
    );
    assert_eq!(
        ok(&with("transports = [\"udp\"]")).edges[0].destinations[0].large,
        None
    );
    assert_err(
        &with("transports = [\"tcp\", \"udp\"]"),
        9,
        "transports",
        "must start with the uri's transport (udp)",
    );
    assert_err(
        &with("transports = [\"udp\", \"tls\"]"),
        9,
        "transports",
        "expected udp or tcp",
    );
    assert_err(
        &with("transports = [\"udp\", \"tcp\"]").replace(", \"tcp:127.0.0.1:5060\"", ""),
        7,
        "transports",
        "needs a tcp: listen address",
    );
    assert_err(
        &with("transports = [\"udp\", \"sctp\"]"),
        9,
        "transports",
        "expected udp or tcp",
    );
    assert_err(
        &with("transports = [\"udp\", \"tcp\"]")
            .replace("sip:127.0.0.1:5070", "sip:127.0.0.1:5070;transport=udp"),
        9,
        "transports",
        "drop ;transport=",
    );
}

#[test]
fn client_cert_header_needs_a_verifying_domain_and_a_name_of_its_own() {
    let with = |keys: &str, domain_keys: &str| {
        tls_edge(domain_keys).replace(
            "listen = [\"udp:127.0.0.1:5060\", \"tls:127.0.0.1\"]",
            &format!("listen = [\"udp:127.0.0.1:5060\", \"tls:127.0.0.1\"]\n{keys}"),
        )
    };
    let verifying = "verify_client = true\nclient_ca = \"ca.pem\"";
    let c = ok(&with("client_cert_header = \"X-Client-Cert\"", verifying));
    assert_eq!(
        c.edges[0].client_cert_header.as_deref(),
        Some("X-Client-Cert")
    );
    assert_err(
        &with("client_cert_header = \"X-Client-Cert\"", ""),
        6,
        "client_cert_header",
        "verifies client certificates",
    );
    assert_err(
        &with("client_cert_header = \"Via\"", verifying),
        6,
        "client_cert_header",
        "a header SIP defines",
    );
    assert_err(
        &with("client_cert_header = \"X Cert\"", verifying),
        6,
        "client_cert_header",
        "not a header name",
    );
}

#[test]
fn outbound_from_takes_networks_and_addresses() {
    let e = &ok(&edge_with(
        "outbound_from = [\"10.1.2.3/16\", \"192.0.2.7\", \"2001:db8::/32\"]",
    ))
    .edges[0];
    let nets: Vec<String> = e.outbound_from.iter().map(|n| n.to_string()).collect();
    // Host bits are dropped: the network is what is meant.
    assert_eq!(nets, ["10.1.0.0/16", "192.0.2.7/32", "2001:db8::/32"]);
    assert!(ok(&edge_with("")).edges[0].outbound_from.is_empty());
    assert_err(
        &edge_with("outbound_from = [\"10.0.0.0/33\"]"),
        5,
        "outbound_from",
        "not a network",
    );
}

#[test]
fn dns_names_the_name_servers_with_port_53_by_default() {
    let with = |line: &str| MINIMAL.replace("id = \"n\"", &format!("id = \"n\"\n{line}"));
    let node = ok(&with("dns = [\"127.0.0.1:5353\", \"::1\"]")).node;
    let want: Vec<std::net::SocketAddr> = vec![sa("127.0.0.1:5353"), sa("[::1]:53")];
    assert_eq!(node.dns, want);
    assert!(ok(MINIMAL).node.dns.is_empty());
    let e = err(&with("dns = [\"ns1.example.com\"]"));
    assert_eq!(e.key, "dns", "{e}");
    assert!(e.message.contains("not a name server address"), "{e}");
}

#[test]
fn cluster_names_this_nodes_link_address_and_its_peers() {
    let c = ok(&format!(
        "{MINIMAL}[cluster]\nlisten = \"10.0.0.1:5070\"\npeers = [\"10.0.0.2:5070\", \"[2001:db8::3]:5070\"]\n"
    ))
    .cluster
    .expect("a cluster");
    assert_eq!(c.listen, Some(sa("10.0.0.1:5070")));
    assert_eq!(c.redis, None);
    assert_eq!(c.peers, [sa("10.0.0.2:5070"), sa("[2001:db8::3]:5070")]);
    assert!(ok(MINIMAL).cluster.is_none());
    let wrong = |body: &str, line: usize, key: &str, msg: &str| {
        assert_err(&format!("{MINIMAL}[cluster]\n{body}"), line, key, msg);
    };
    wrong("peers = [\"10.0.0.2:5070\"]\n", 9, "listen", "missing");
    wrong(
        "listen = \"0.0.0.0:5070\"\n",
        10,
        "listen",
        "own IP address",
    );
    wrong("listen = \"10.0.0.1\"\n", 10, "listen", "with port");
    wrong(
        "listen = \"10.0.0.1:5070\"\npeers = [\"10.0.0.1:5070\"]\n",
        11,
        "peers",
        "listed twice",
    );
}

#[test]
fn hygiene_lists_and_their_defaults() {
    let open = &ok(MINIMAL).edges[0].hygiene;
    assert!(open.allow.is_empty() && open.deny.is_empty() && !open.restrict);
    assert!(open.user_agent_deny.iter().any(|u| u == "friendly-scanner"));
    let h = &ok(&edge_with(
        "allow = [\"203.0.113.0/24\", \"2001:db8::1\"]\ndeny = [\"198.51.100.7\"]\n\
         restrict = true\nuser_agent_deny = [\"BadBot\"]",
    ))
    .edges[0]
        .hygiene;
    let shown = |n: &[ipnet::IpNet]| n.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(shown(&h.allow), ["203.0.113.0/24", "2001:db8::1/128"]);
    assert_eq!(shown(&h.deny), ["198.51.100.7/32"]);
    assert!(h.restrict);
    assert_eq!(h.user_agent_deny, ["BadBot"]);
    let none = &ok(&edge_with("user_agent_deny = []")).edges[0].hygiene;
    assert!(none.user_agent_deny.is_empty(), "[] turns the defaults off");
}

#[test]
fn bad_hygiene() {
    assert_err(&edge_with("deny = [\"10.0.0.0/33\"]"), 5, "deny", "");
    assert_err(&edge_with("allow = \"10.0.0.0/8\""), 5, "allow", "array");
    assert_err(&edge_with("restrict = \"yes\""), 5, "restrict", "");
    assert_err(&edge_with("restrict = true"), 5, "restrict", "allow");
    assert_err(
        &edge_with("user_agent_deny = [\"sipcli\", \" \"]"),
        5,
        "user_agent_deny",
        "every User-Agent",
    );
}

#[test]
fn flood_protection_and_its_defaults() {
    assert_eq!(ok(MINIMAL).edges[0].hygiene.flood, None);
    let f = ok(&edge_with("flood_threshold = 30")).edges[0]
        .hygiene
        .flood;
    assert_eq!(
        f,
        Some(crate::config::Flood {
            threshold: 30,
            window: Duration::from_secs(2),
            ban_time: Duration::from_secs(300),
        })
    );
    let f = ok(&edge_with(
        "flood_threshold = 8\nflood_window = 0.5\nban_time = 3600",
    ))
    .edges[0]
        .hygiene
        .flood
        .expect("on");
    assert_eq!((f.window, f.ban_time), (ms(500), Duration::from_secs(3600)));
    assert_err(&edge_with("flood_threshold = 0"), 5, "flood_threshold", "");
    assert_err(
        &edge_with("flood_window = 2"),
        5,
        "flood_window",
        "flood_threshold",
    );
    assert_err(&edge_with("ban_time = 2"), 5, "ban_time", "flood_threshold");
    assert_err(
        &edge_with("flood_threshold = 9\nflood_window = 0"),
        6,
        "flood_window",
        "seconds",
    );
}

#[test]
fn apiban_and_its_defaults() {
    assert_eq!(ok(MINIMAL).apiban, None);
    let a = ok(&format!(
        "{MINIMAL}[apiban]\nkey_file = \"/etc/sipedge/apiban.key\"\n"
    ))
    .apiban
    .expect("on");
    assert_eq!(a.url, "https://apiban.org/api");
    assert_eq!(a.interval, Duration::from_secs(300));
    assert_eq!(a.ban_time, Duration::from_secs(7 * 86_400));
    assert_eq!(a.key_file, std::path::Path::new("/etc/sipedge/apiban.key"));
    let a = ok(&format!(
        "{MINIMAL}[apiban]\nkey_file = \"k\"\nurl = \"http://127.0.0.1:8000/api/\"\ninterval = 1\n"
    ))
    .apiban
    .expect("on");
    assert_eq!(
        a.url, "http://127.0.0.1:8000/api",
        "without the trailing slash"
    );
    assert_eq!(a.interval, Duration::from_secs(1));
    assert_err(
        &format!("{MINIMAL}[apiban]\nurl = \"https://x\"\n"),
        9,
        "key_file",
        "",
    );
    assert_err(
        &format!("{MINIMAL}[apiban]\nkey_file = \"k\"\nurl = \"ftp://x\"\n"),
        11,
        "url",
        "http",
    );
    assert_err(
        &format!("{MINIMAL}[apiban]\nkey_file = \"k\"\nkey = \"secret\"\n"),
        11,
        "key",
        "",
    );
}

#[test]
fn cluster_state_in_redis_or_a_redis_cluster() {
    let c = ok(&format!(
        "{MINIMAL}[cluster]\nredis = \"redis://127.0.0.1:6379/2\"\n"
    ))
    .cluster
    .expect("a cluster");
    assert_eq!(c.listen, None, "no link needed");
    assert_eq!(
        c.redis,
        Some(crate::config::Redis::Server(
            "redis://127.0.0.1:6379/2".into()
        ))
    );
    let c = ok(&format!(
        "{MINIMAL}[cluster]\nlisten = \"10.0.0.1:5070\"\n\
         redis_cluster = [\"redis://10.0.0.5:7000\", \"rediss://10.0.0.6:7001\"]\n"
    ))
    .cluster
    .expect("a cluster");
    assert_eq!(
        c.redis,
        Some(crate::config::Redis::Cluster(vec![
            "redis://10.0.0.5:7000".into(),
            "rediss://10.0.0.6:7001".into()
        ]))
    );
    let wrong = |body: &str, line: usize, key: &str, msg: &str| {
        assert_err(&format!("{MINIMAL}[cluster]\n{body}"), line, key, msg);
    };
    wrong(
        "redis = \"http://x\"\n",
        10,
        "redis",
        "redis:// or rediss://",
    );
    wrong("redis = \"redis://\"\n", 10, "redis", "redis://");
    wrong("redis_cluster = []\n", 10, "redis_cluster", "at least one");
    wrong(
        "redis = \"redis://a\"\nredis_cluster = [\"redis://b\"]\n",
        11,
        "redis_cluster",
        "not both",
    );
    wrong("", 9, "listen", "missing");
    wrong(
        "redis = \"redis://a\"\nredis_ca = \"ca.pem\"\n",
        11,
        "redis_ca",
        "rediss://",
    );
    let c = ok(&format!(
        "{MINIMAL}[cluster]\nredis = \"rediss://10.0.0.5:6380\"\nredis_ca = \"/etc/sipedge/redis-ca.pem\"\n"
    ))
    .cluster
    .expect("a cluster");
    assert_eq!(
        c.redis_ca.as_deref(),
        Some(std::path::Path::new("/etc/sipedge/redis-ca.pem"))
    );
}

#[test]
fn hep_server_and_per_edge_sampling() {
    let text = format!(
        "{}[hep]\nserver = \"tcp:10.0.0.9:9061\"\ncapture_id = 2001\n\
         password = \"homer\"\nqueue = 500\n",
        edge_with("hep_sample = 0.25")
    );
    let c = ok(&text);
    let h = c.hep.expect("[hep]");
    assert_eq!(
        (
            h.transport,
            h.server,
            h.capture_id,
            h.password.as_deref(),
            h.queue
        ),
        (
            Transport::Tcp,
            sa("10.0.0.9:9061"),
            2001,
            Some("homer"),
            500
        )
    );
    assert!(c.edges[0].hep);
    assert_eq!(c.edges[0].hep_sample, 2_500);
    let defaults = ok(&format!(
        "{MINIMAL}[hep]\nserver = \"udp:127.0.0.1:9060\"\n"
    ));
    let h = defaults.hep.expect("[hep]");
    assert_eq!((h.capture_id, h.queue, h.password), (1, 10_000, None));
    assert_eq!(defaults.edges[0].hep_sample, 10_000);
    assert!(!ok(&edge_with("hep = false")).edges[0].hep);
    assert_err(
        &format!("{MINIMAL}[hep]\nserver = \"10.0.0.9:9060\"\n"),
        10,
        "server",
        "udp: or tcp:",
    );
    assert_err(&format!("{MINIMAL}[hep]\n"), 9, "server", "missing");
    assert_err(
        &edge_with("hep_sample = 2"),
        5,
        "hep_sample",
        "share from 0 to 1",
    );
}

#[test]
fn records_file_rotation_and_per_edge_switch() {
    let c = ok(&format!(
        "{}[records]\nfile = \"/var/log/sipedge/calls.jsonl\"\nrotate_size = 1048576\n\
         rotate_interval = 3600\nqueue = 500\n",
        edge_with("records = false")
    ));
    let r = c.records.expect("[records]");
    assert_eq!(
        r.file.as_deref(),
        Some(std::path::Path::new("/var/log/sipedge/calls.jsonl"))
    );
    assert_eq!(
        (r.rotate_size, r.rotate_interval, r.queue),
        (
            Some(1_048_576),
            Some(std::time::Duration::from_secs(3600)),
            500
        )
    );
    assert!(!c.edges[0].records);
    let stdout = ok(&format!("{MINIMAL}[records]\nfile = \"-\"\n"));
    let r = stdout.records.expect("[records]");
    assert_eq!((r.file, r.rotate_size, r.queue), (None, None, 10_000));
    assert!(stdout.edges[0].records);
    assert_err(&format!("{MINIMAL}[records]\n"), 9, "file", "missing");
    assert_err(
        &format!("{MINIMAL}[records]\nfile = \"x\"\nrotate_size = 10\n"),
        11,
        "rotate_size",
        "4096",
    );
}

#[test]
fn peers_are_named_and_told_apart() {
    let c = ok(&format!(
        "{MINIMAL}[[edge.peer]]\nname = \"carrier-a\"\nsources = [\"192.0.2.0/24\", \"198.51.100.7\"]\n\
         [[edge.peer]]\nname = \"acme\"\nuser_agent = \"Acme SBC\"\ntransport = \"tls\"\n"
    ));
    let p = &c.edges[0].peers;
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].name, "carrier-a");
    assert_eq!(p[0].sources.len(), 2);
    assert_eq!(
        (p[1].user_agent.as_deref(), p[1].transport),
        (Some("Acme SBC"), Some(Transport::Tls))
    );
    let peer = |lines: &str| format!("{MINIMAL}[[edge.peer]]\n{lines}\n");
    assert_err(&peer("name = \"x\""), 10, "sources", "user_agent");
    assert_err(
        &peer("name = \"a b\"\nsources = [\"10.0.0.0/8\"]"),
        10,
        "name",
        "letters",
    );
    assert_err(
        &peer("name = \"x\"\nsources = [\"10.0.0.0/8\"]\ntransport = \"sctp\""),
        12,
        "transport",
        "udp, tcp",
    );
    assert_err(
        &format!(
            "{}[[edge.peer]]\nname = \"x\"\nuser_agent = \"y\"\n",
            peer("name = \"x\"\nsources = [\"10.0.0.0/8\"]")
        ),
        13,
        "name",
        "another peer",
    );
    assert_err(
        &peer("name = \"x\"\nsources = [\"nowhere\"]"),
        11,
        "sources",
        "",
    );
    assert_err(
        &peer("name = \"x\"\nuser_agent = \"y\"\ncolour = 1"),
        12,
        "colour",
        "unknown",
    );
}

#[test]
fn peer_rewrites_are_read_and_their_examples_run() {
    use crate::header_policy::Name;
    use crate::numbers::{Field, Rewrite, UriForm};
    let c = ok(&format!(
        "{MINIMAL}[[edge.peer]]\nname = \"a\"\nsources = [\"192.0.2.0/24\"]\n\
         [edge.peer.in]\ntel = \"sip\"\nremove = [\"X-*\", \"s\"]\n\
         [[edge.peer.in.number]]\ne164 = \"44\"\nexamples = [[\"0044207\", \"+44207\"], [\"0207\", \"+44207\"]]\n\
         [[edge.peer.in.number]]\nmatch = '^(\\d{{6}})$'\nadd_prefix = \"+44207\"\nfields = [\"ruri\"]\n\
         [edge.peer.out]\nnumber = [{{ match = '^\\+44(\\d+)$', replace = \"0$1\" }}]\n\
         allow = [\"Diversion\"]\nreplace = [\"User-Agent:  edge \"]\nadd = [\"X-Carrier: a\"]\n"
    ));
    let p = &c.edges[0].peers[0];
    let r = &p.from_peer;
    assert_eq!(r.tel, Some(UriForm::Sip));
    assert_eq!(r.numbers.0.len(), 2);
    assert!(matches!(&r.numbers.0[0].rewrite, Rewrite::E164 { country, .. } if country == "44"));
    assert!(r.numbers.0[1].fields.has(Field::Ruri) && !r.numbers.0[1].fields.has(Field::From));
    assert_eq!(
        r.headers.remove,
        [
            Name::Prefix((*b"x-").into()),
            Name::Known(sip::HeaderName::Subject)
        ]
    );
    let o = &p.to_peer;
    assert!(matches!(&o.numbers.0[0].rewrite, Rewrite::Replace { with, .. } if with == "0$1"));
    assert_eq!(o.headers.replace[0].1.as_ref(), b"User-Agent: edge");
    assert_eq!(o.headers.add, [Box::from(&b"X-Carrier: a"[..])]);
    assert!(o.headers.allow.is_some());

    let with = |lines: &str| {
        format!("{MINIMAL}[[edge.peer]]\nname = \"a\"\nsources = [\"10.0.0.0/8\"]\n{lines}\n")
    };
    // Line 12 is the first after the peer's own three.
    assert_err(
        &with("[[edge.peer.in.number]]\ne164 = \"44\"\nexamples = [[\"0044207\", \"+44207\"],\n [\"0207\", \"0207\"]]"),
        15,
        "in.number.examples",
        "\"0207\" becomes \"+44207\" by this rule, not \"0207\"",
    );
    assert_err(
        &with("[[edge.peer.in.number]]\nmatch = '(\\d+'\nreplace = \"x\""),
        13,
        "in.number.match",
        "unclosed group",
    );
    assert_err(
        &with("[[edge.peer.in.number]]\ne164 = \"44\"\nstrip_prefix = \"9\""),
        12,
        "in.number",
        "this one gives e164, strip_prefix",
    );
    assert_err(
        &with("[[edge.peer.out.number]]\nreplace = \"0$1\""),
        13,
        "out.number.replace",
        "needs `match`",
    );
    assert_err(
        &with("[[edge.peer.in.number]]\ne164 = \"+44\""),
        13,
        "in.number.e164",
        "digits only",
    );
    assert_err(
        &with("[[edge.peer.in.number]]\nstrip_prefix = \"9\"\nnational_prefix = \"0\""),
        14,
        "in.number.national_prefix",
        "e164 only",
    );
    assert_err(
        &with("[[edge.peer.in.number]]\nstrip_prefix = \"9\"\nfields = [\"contact\"]"),
        14,
        "in.number.fields",
        "ruri, from, to, pai",
    );
    assert_err(
        &with("[edge.peer.in]\ntel = \"uri\""),
        13,
        "in.tel",
        "\"tel\"",
    );
    assert_err(
        &with("[edge.peer.in]\ncolour = 1"),
        13,
        "in.colour",
        "unknown",
    );
    assert_err(
        &with("[edge.peer.out]\nremove = [\"X-Foo\", \"Call-ID\"]"),
        13,
        "out.remove",
        "SIP needs",
    );
    assert_err(
        &with("[edge.peer.out]\nreplace = [\"Via: x\"]"),
        13,
        "out.replace",
        "SIP needs",
    );
    assert_err(
        &with("[edge.peer.out]\nadd = [\"no colon\"]"),
        13,
        "out.add",
        "Name: value",
    );
    assert_err(
        &with("[edge.peer.out]\nremove = [\"*\"]"),
        13,
        "out.remove",
        "not a header name",
    );
    assert_err(
        &format!(
            "{MINIMAL}[[edge.peer]]\nname = \"a\"\nuser_agent = \"x\"\n[edge.peer.out]\nadd = [\"X-A: 1\"]\n"
        ),
        12,
        "out",
        "needs `sources`",
    );
}
