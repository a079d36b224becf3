//! `sipedge explain --config FILE < message.sip`: "why did this call go
//! there?" on the command line — the edge built from the file, fresh (all
//! destinations usable, limits full); `POST /api/explain` asks a running
//! node, which sees its live health and limits ([`live`]).

use edge::config::Config;
use edge::keyring::KeyRing;
use edge::proxy::explain::{arrival, explain, Explanation};
use edge::proxy::Edge;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// The options of `sipedge explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The TOML configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The edge the message arrives at (default: the first).
    #[arg(long)]
    pub edge: Option<String>,
    /// The address the message comes from, as ADDR:PORT (default: its top
    /// Via's sent-by when that is an address, else 198.51.100.10:5060, a
    /// caller outside the pool). Give a destination's address to explain
    /// a request from the pool.
    #[arg(long)]
    pub from: Option<SocketAddr>,
    /// Print the explanation as JSON (the shape `POST /api/explain`
    /// answers with).
    #[arg(long)]
    pub json: bool,
}

/// Exit codes: 0 when the message would be sent on, 1 when a stage stops
/// it (the edge answers or drops it), 2 for a config that does not load
/// or an unknown edge.
pub fn run(args: &Args) -> ExitCode {
    let parsed = match crate::config_file::load(&args.config, None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut message = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut message) {
        eprintln!("reading the message from stdin: {e}");
        return ExitCode::from(2);
    }
    let message = as_sent(&message);
    let keys = crate::secret::key_ring(&parsed.cfg.node);
    let x = match fresh(
        &parsed.cfg,
        &keys,
        args.edge.as_deref(),
        args.from,
        &message,
    ) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&x) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("{e}"),
        }
    } else {
        print!("{}", x.to_text());
    }
    match x.stopped_at() {
        None => ExitCode::SUCCESS,
        Some(_) => ExitCode::from(1),
    }
}

/// A message as a file holds it: written by an editor, its lines may end
/// in a bare LF, which SIP does not take (RFC 3261 §7). The header
/// section of such a file gets CRLFs; the body is kept as it is (its
/// Content-Length counts its bytes).
fn as_sent(text: &[u8]) -> Vec<u8> {
    let find = |needle: &[u8]| text.windows(needle.len()).position(|w| w == needle);
    if find(b"\r\n").is_some() {
        return text.to_vec();
    }
    let (head, body) = match find(b"\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text.strip_suffix(b"\n").unwrap_or(text), &b""[..]),
    };
    let mut out = Vec::with_capacity(text.len() + 64);
    for line in head.split(|&b| b == b'\n') {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The explanation on a fresh edge of `cfg`.
fn fresh(
    cfg: &Config,
    keys: &KeyRing,
    name: Option<&str>,
    from: Option<SocketAddr>,
    message: &[u8],
) -> Result<Explanation, String> {
    let i = edge_index(cfg, name)?;
    let e = &cfg.edges[i];
    let built = Edge::new(e, &cfg.node, keys);
    let flow = arrival(&built, message, from);
    Ok(explain(&built, e, &built, message, flow, Instant::now()))
}

/// The explanation on a shadow of the running edge `live`, configured by
/// `e` (the config it was built from).
pub fn live(
    e: &edge::config::Edge,
    node: &edge::config::Node,
    keys: &KeyRing,
    live: &Edge,
    from: Option<SocketAddr>,
    message: &[u8],
) -> Result<Explanation, String> {
    let now = Instant::now();
    let shadow = live.shadow(e, node, keys, now);
    let message = as_sent(message);
    let flow = arrival(&shadow, &message, from);
    Ok(explain(&shadow, e, live, &message, flow, now))
}

/// The config index of the edge named `name`, or the first.
pub fn edge_index(cfg: &Config, name: Option<&str>) -> Result<usize, String> {
    match name {
        None if cfg.edges.is_empty() => Err("the config has no edge".to_owned()),
        None => Ok(0),
        Some(n) => cfg.edges.iter().position(|e| e.name == n).ok_or_else(|| {
            let names: Vec<&str> = cfg.edges.iter().map(|e| e.name.as_str()).collect();
            format!("no edge named {n:?} (edges: {})", names.join(", "))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::as_sent;

    #[test]
    fn a_file_with_bare_newlines_becomes_crlf_with_its_body_intact() {
        let file = b"OPTIONS sip:a@b SIP/2.0\nContent-Length: 3\n\nabc\n";
        assert_eq!(
            as_sent(file),
            b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabc\n".to_vec()
        );
        let crlf = b"OPTIONS sip:a@b SIP/2.0\r\n\r\n";
        assert_eq!(as_sent(crlf), crlf.to_vec());
    }
}
