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
}
