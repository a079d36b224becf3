//! `bench/corpus`: the conformance corpus (RFC 4475, RFC 5118, real-world
//! samples) through sipedge and through Kamailio on the benchmark's
//! stateless dispatcher config, side by side: what each did with every
//! message, and how many each handled as MANIFEST.tsv says.
//!
//! A comparison, not a test: sipedge's own result is asserted by the
//! corpus test. Runs only inside a private network namespace (the
//! messages name foreign hosts).
//!
//!   corpus-compare [KAMAILIO_CFG]

use std::net::SocketAddr;
use std::path::PathBuf;

use e2e::config::single_edge;
use e2e::corpus;
use e2e::kamailio::Kamailio;
use e2e::{free_port, FakePool, Sipedge};

fn main() {
    let cfg = std::env::args_os().nth(1).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../bench/kamailio/kamailio-stateless.cfg")
        },
        PathBuf::from,
    );
    let cases = corpus::load();
    let pool = FakePool::start(1);
    let dest = pool.ports()[0];

    let through = |port: u16, server: &str| {
        corpus::drive(
            &cases,
            &pool,
            SocketAddr::from((e2e::LOCALHOST, port)),
            server,
        )
    };
    let listen = free_port();
    let config = single_edge(listen, "first", &[(dest, 1)]) + "\n[edge.probe]\nenabled = false\n";
    let edge = Sipedge::start(&config);
    let ours = through(listen, "sipedge");
    drop(edge);

    let port = free_port();
    let kamailio = Kamailio::start(&cfg, port, &[dest]);
    let theirs = through(port, "kamailio");
    drop(kamailio);

    let mark = |c: &corpus::Case, got: &str| {
        if c.handled_right(got) {
            got.to_string()
        } else {
            format!("{got} (WRONG)")
        }
    };
    println!(
        "{:<44} {:<16} {:<22} {:<22}",
        "message", "MANIFEST", "sipedge", "kamailio"
    );
    for ((c, s), k) in cases.iter().zip(&ours).zip(&theirs) {
        let want = match (c.code, c.also.as_str()) {
            (Some(code), "-") => format!("{} {code}", c.expect),
            (Some(code), also) => format!("{} {code}|{also}", c.expect),
            (None, "-") => c.expect.clone(),
            (None, also) => format!("{}|{also}", c.expect),
        };
        println!(
            "{:<44} {:<16} {:<22} {:<22}",
            c.file,
            want,
            mark(c, s),
            mark(c, k)
        );
    }
    let right = |got: &[String]| {
        cases
            .iter()
            .zip(got)
            .filter(|(c, g)| c.handled_right(g))
            .count()
    };
    println!(
        "\nhandled as MANIFEST.tsv says: sipedge {}/{}, kamailio {}/{} ({})",
        right(&ours),
        cases.len(),
        right(&theirs),
        cases.len(),
        cfg.display()
    );
}
