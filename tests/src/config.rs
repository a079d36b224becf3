//! sipedge config files for tests.
//!
//! Most tests need one edge in front of a few servers; building that text
//! in one place keeps the tests short and puts the config syntax the tests
//! rely on in one spot.

use std::fmt::Write as _;

/// The cluster secret every test node uses (tokens signed by one sipedge
/// verify on another started with the same secret).
pub const SECRET: &str = "e2e-test-secret-0123456789";

/// A config with one `[[edge]]` named `e` listening on UDP
/// 127.0.0.1:`listen`, dispatching with `algorithm` (e.g.
/// `"hash-call-id"`) to `sip:127.0.0.1:PORT` destinations with the given
/// weights, and replying to OPTIONS pings itself.
pub fn single_edge(listen: u16, algorithm: &str, destinations: &[(u16, u32)]) -> String {
    let mut toml = format!(
        "[node]\nid = \"test\"\nsecret = \"{SECRET}\"\n\n\
         [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:{listen}\"]\n\
         algorithm = \"{algorithm}\"\nflags = [\"ping-replies\"]\n"
    );
    for (port, weight) in destinations {
        let _ = write!(
            toml,
            "\n[[edge.destination]]\nuri = \"sip:127.0.0.1:{port}\"\nweight = {weight}\n"
        );
    }
    toml
}

/// A config with one `[[edge]]` named `e` listening on `listen` (a listen
/// spec such as `"udp:[::1]:5060"`), dispatching with `algorithm` to the
/// destination URIs with the given weights (e.g. `("sip:[::1]:5070", 3)`),
/// and replying to OPTIONS pings itself. [`single_edge`] for any address
/// family.
pub fn edge_at(listen: &str, algorithm: &str, destinations: &[(&str, u32)]) -> String {
    let mut toml = format!(
        "[node]\nid = \"test\"\nsecret = \"{SECRET}\"\n\n\
         [[edge]]\nname = \"e\"\nlisten = [\"{listen}\"]\n\
         algorithm = \"{algorithm}\"\nflags = [\"ping-replies\"]\n"
    );
    for (uri, weight) in destinations {
        let _ = write!(
            toml,
            "\n[[edge.destination]]\nuri = \"{uri}\"\nweight = {weight}\n"
        );
    }
    toml
}

/// An `[edge.probe]` table for the edge defined last: OPTIONS every
/// `interval` seconds, `timeout` seconds to answer, `inactive` failed
/// probes in a row take a destination out, `active` good ones bring it
/// back. Append it to a config from [`single_edge`] or [`edge_at`].
///
/// Tests use sub-second values so that failover happens in about a second.
pub fn probe(interval: f64, timeout: f64, inactive: u32, active: u32) -> String {
    format!(
        "\n[edge.probe]\ninterval = {interval:?}\ntimeout = {timeout:?}\n\
         inactive_threshold = {inactive}\nactive_threshold = {active}\n"
    )
}

/// An `[admin]` table: the admin HTTP API on 127.0.0.1:`port`.
pub fn admin(port: u16) -> String {
    format!("\n[admin]\nlisten = \"127.0.0.1:{port}\"\n")
}

/// Makes the edge defined last in `toml` (from [`single_edge`] or
/// [`edge_at`]) transactional, with `table` as the lines of its
/// `[edge.transaction]` (may be empty), and turns its health probes off so
/// every call meets the failing servers the test set up rather than being
/// steered around them.
pub fn transactional(toml: &str, table: &str) -> String {
    let at = toml.rfind("flags = [").expect("an edge with flags");
    let mut out = toml.to_owned();
    out.insert_str(at, "insertion = \"transactional\"\n");
    out + &format!("\n[edge.transaction]\n{table}\n\n[edge.probe]\nenabled = false\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_listener_algorithm_and_destinations() {
        let toml = single_edge(15060, "first", &[(15070, 3), (15071, 1)]);
        assert!(toml.contains("listen = [\"udp:127.0.0.1:15060\"]"));
        assert!(toml.contains("algorithm = \"first\""));
        assert!(toml.contains("uri = \"sip:127.0.0.1:15070\"\nweight = 3"));
        assert!(toml.contains("uri = \"sip:127.0.0.1:15071\"\nweight = 1"));
        assert_eq!(toml.matches("[[edge.destination]]").count(), 2);
    }

    #[test]
    fn edge_at_takes_any_listen_spec_and_uri() {
        let toml = edge_at("udp:[::1]:15060", "random", &[("sip:[::1]:15070", 2)]);
        assert!(toml.contains("listen = [\"udp:[::1]:15060\"]"));
        assert!(toml.contains("uri = \"sip:[::1]:15070\"\nweight = 2"));
        assert_eq!(
            edge_at(
                "udp:127.0.0.1:15060",
                "first",
                &[("sip:127.0.0.1:15070", 3)]
            ),
            single_edge(15060, "first", &[(15070, 3)])
        );
    }

    #[test]
    fn transactional_marks_the_last_edge_only() {
        let two = single_edge(15060, "first", &[(15070, 1)])
            + &single_edge(15061, "first", &[(15071, 1)]).replace("[node]\nid = \"test\"\n", "");
        let toml = transactional(&two, "t1 = 0.1");
        assert_eq!(toml.matches("insertion = \"transactional\"").count(), 1);
        let second = toml.rfind("[[edge]]").unwrap();
        assert!(toml[second..].contains("insertion = \"transactional\""));
        assert!(toml.ends_with("[edge.transaction]\nt1 = 0.1\n\n[edge.probe]\nenabled = false\n"));
    }

    #[test]
    fn probe_and_admin_tables_append_to_an_edge() {
        let toml =
            single_edge(15060, "first", &[(15070, 1)]) + &probe(0.5, 0.3, 2, 1) + &admin(18080);
        assert!(toml.contains("\n[edge.probe]\ninterval = 0.5\ntimeout = 0.3\n"));
        assert!(toml.contains("inactive_threshold = 2\nactive_threshold = 1\n"));
        assert!(toml.contains("\n[admin]\nlisten = \"127.0.0.1:18080\"\n"));
        // Whole seconds stay numbers TOML reads as floats.
        assert!(probe(10.0, 2.0, 3, 1).contains("interval = 10.0\ntimeout = 2.0\n"));
    }
}
