//! Config validation: `sipedge check`, and `sipedge run` refusing a bad
//! file with the file, line and key that are wrong.

use e2e::config::single_edge;
use e2e::{free_port, require_private_netns, Sipedge};

/// 1-based line of the first line of `toml` containing `needle`.
fn line_of(toml: &str, needle: &str) -> usize {
    toml.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in config"))
        + 1
}

/// Asserts `stderr` names `sipedge.toml:LINE:` and `key`.
#[track_caller]
fn assert_points_at(stderr: &str, line: usize, key: &str) {
    let place = format!("sipedge.toml:{line}:");
    let hit = stderr
        .lines()
        .any(|l| l.contains(&place) && l.contains(key));
    assert!(
        hit,
        "expected an error line with `{place}` and `{key}`, got:\n{stderr}"
    );
}

#[test]
fn check_accepts_a_valid_config() {
    require_private_netns();
    let toml = single_edge(
        free_port(),
        "weighted-round-robin",
        &[(free_port(), 3), (free_port(), 1)],
    );
    let (ok, stderr) = Sipedge::check(&toml);
    assert!(ok, "valid config refused:\n{toml}\n{stderr}");
}

#[test]
fn check_rejects_an_unknown_algorithm_with_its_line() {
    require_private_netns();
    let toml = single_edge(free_port(), "round-robin-please", &[(free_port(), 1)]);
    let (ok, stderr) = Sipedge::check(&toml);
    assert!(!ok, "unknown algorithm accepted");
    assert_points_at(&stderr, line_of(&toml, "algorithm ="), "algorithm");
}

#[test]
fn check_rejects_a_weight_out_of_range_with_its_line() {
    require_private_netns();
    let toml = single_edge(free_port(), "first", &[(free_port(), 51)]);
    let (ok, stderr) = Sipedge::check(&toml);
    assert!(!ok, "weight 51 accepted (range is 1-50)");
    assert_points_at(&stderr, line_of(&toml, "weight = 51"), "weight");
}

#[test]
fn check_runs_each_number_rules_examples() {
    require_private_netns();
    let toml = single_edge(free_port(), "first", &[(free_port(), 1)])
        + "[[edge.peer]]\nname = \"carrier-a\"\nsources = [\"192.0.2.0/28\"]\n\
           [[edge.peer.in.number]]\ne164 = \"44\"\n\
           examples = [[\"00442079460000\", \"+442079460000\"], [\"02079460000\", \"+4402079460000\"]]\n";
    let (ok, stderr) = Sipedge::check(&toml);
    assert!(!ok, "a rule failing its example accepted");
    assert_points_at(&stderr, line_of(&toml, "examples ="), "in.number.examples");
    assert!(
        stderr.contains(
            "\"02079460000\" becomes \"+442079460000\" by this rule, not \"+4402079460000\""
        ),
        "{stderr}"
    );
    let (ok, stderr) = Sipedge::check(&toml.replace("+4402079460000", "+442079460000"));
    assert!(ok, "{stderr}");
}

#[test]
fn check_rejects_an_unknown_key_with_its_line() {
    require_private_netns();
    let toml = single_edge(free_port(), "first", &[(free_port(), 1)])
        .replace("flags = ", "algoritm = \"first\"\nflags = ");
    let (ok, stderr) = Sipedge::check(&toml);
    assert!(!ok, "misspelt key accepted");
    assert_points_at(&stderr, line_of(&toml, "algoritm ="), "algoritm");
}

#[test]
fn run_refuses_a_bad_config_before_binding() {
    require_private_netns();
    let listen = free_port();
    let toml = single_edge(listen, "round-robin-please", &[(free_port(), 1)]);
    let failure = match Sipedge::try_start(&toml, &[]) {
        Ok(_) => panic!("sipedge ran on an invalid config"),
        Err(failure) => failure,
    };
    assert_ne!(failure.exit_code, Some(0));
    assert_points_at(&failure.stderr, line_of(&toml, "algorithm ="), "algorithm");
    // It never took the port.
    assert!(std::net::UdpSocket::bind(("127.0.0.1", listen)).is_ok());
}

#[test]
fn check_accepts_every_example() {
    require_private_netns();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read the example");
        // An example serving TLS names the certificates
        // examples/make-demo-cert makes: checked as a copy beside them.
        let (ok, stderr) = if text.contains("[[edge.domain]]") {
            let copy = e2e::TempDir::new("example-tls");
            let made = std::process::Command::new(dir.join("make-demo-cert"))
                .arg(copy.join("certs"))
                .output()
                .expect("run examples/make-demo-cert");
            assert!(made.status.success(), "{made:?}");
            let name = path.file_name().expect("a file name");
            std::fs::write(copy.join(&name.to_string_lossy()), &text).expect("copy the example");
            Sipedge::check_file(&copy.join(&name.to_string_lossy()))
        } else {
            Sipedge::check_file(&path)
        };
        assert!(ok, "{} fails `sipedge check`:\n{stderr}", path.display());
        checked += 1;
    }
    assert!(checked > 0, "no example configs in {}", dir.display());
}

/// A cluster node whose peers could not work with it: valid, but `check`
/// says why.
#[test]
fn check_warns_of_a_cluster_without_a_shared_secret_or_advertised_address() {
    require_private_netns();
    let cluster = "[node]\nid = \"n1\"\n[cluster]\nlisten = \"10.0.0.1:5070\"\n\
                   peers = [\"10.0.0.2:5070\"]\n[[edge]]\nname = \"e\"\n\
                   listen = [\"udp:127.0.0.1:5060\"]\n[[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n";
    let (ok, stderr) = Sipedge::check(cluster);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: [cluster], but no [node] secret"),
        "{stderr}"
    );
    assert!(stderr.contains("edge e has no advertise"), "{stderr}");
    let fixed = cluster
        .replace(
            "id = \"n1\"\n",
            "id = \"n1\"\nsecret = \"a shared cluster secret\"\n",
        )
        .replace(
            "name = \"e\"\n",
            "name = \"e\"\nadvertise = \"198.51.100.10\"\n",
        );
    let (ok, stderr) = Sipedge::check(&fixed);
    assert!(ok && !stderr.contains("warning"), "{stderr}");
}

/// Nodes sharing a Redis need a shared secret too; an APIBAN key file
/// that cannot be read is said at once.
#[test]
fn check_warns_of_a_redis_cluster_without_a_secret_and_of_a_missing_apiban_key() {
    require_private_netns();
    let text = "[node]\nid = \"n1\"\n[cluster]\nredis = \"redis://127.0.0.1:6379\"\n\
                [apiban]\nkey_file = \"/nonexistent/apiban.key\"\n\
                [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:5060\"]\n\
                [[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n";
    let (ok, stderr) = Sipedge::check(text);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: [cluster], but no [node] secret"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: [apiban] key_file /nonexistent/apiban.key: cannot read it"),
        "{stderr}"
    );
}

/// `capacity_failover = ["cluster"]` needs Redis and this node's own
/// address (errors at the entry's line), and `check` says when the edge
/// does not listen on the address it offers the other nodes.
#[test]
fn check_of_capacity_failover_to_the_cluster() {
    require_private_netns();
    let text = "[node]\nid = \"n1\"\nsecret = \"a shared cluster secret\"\n\
                public_address = \"198.51.100.1\"\n[cluster]\nredis = \"redis://127.0.0.1:6379\"\n\
                [[edge]]\nname = \"e\"\nlisten = [\"udp:127.0.0.1:5060\"]\n\
                capacity_failover = [\"cluster\"]\n\
                [[edge.destination]]\nuri = \"sip:127.0.0.1:5070\"\n";
    let (ok, stderr) = Sipedge::check(text);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(
            "warning: edge e: capacity_failover = [\"cluster\"] offers the other nodes \
             sip:198.51.100.1:5060, but its udp: listener there is bound to 127.0.0.1, not \
             198.51.100.1"
        ),
        "{stderr}"
    );
    let wildcard = text.replace(
        "listen = [\"udp:127.0.0.1:5060\"]",
        "listen = [\"udp:0.0.0.0:5060\"]\nadvertise = \"198.51.100.9\"",
    );
    let (ok, stderr) = Sipedge::check(&wildcard);
    assert!(ok && !stderr.contains("warning"), "{stderr}");
    let (ok, stderr) = Sipedge::check(&text.replace("public_address = \"198.51.100.1\"\n", ""));
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(":9: capacity_failover: \"cluster\" needs [node] public_address"),
        "{stderr}"
    );
}

/// An admin API listening beyond loopback without credentials is said;
/// with a token it is not; an unreadable token file is an error (the node
/// would otherwise run open or locked).
#[test]
fn check_warns_of_an_open_admin_api_on_the_network_and_refuses_a_missing_token() {
    require_private_netns();
    let edge = single_edge(free_port(), "weighted-round-robin", &[(free_port(), 1)]);
    let open = format!("{edge}\n[admin]\nlisten = \"0.0.0.0:{}\"\n", free_port());
    let (ok, stderr) = Sipedge::check(&open);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: [admin] listen 0.0.0.0:")
            && stderr.contains("asks for no credentials"),
        "{stderr}"
    );
    let dir = e2e::TempDir::new("token");
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "s3cret\n").expect("write the token");
    let closed = format!("{open}token_file = \"{}\"\n", token.display());
    let (ok, stderr) = Sipedge::check(&closed);
    assert!(ok && !stderr.contains("warning"), "{stderr}");
    let missing = format!("{open}token_file = \"/nonexistent/admin.token\"\n");
    let (ok, stderr) = Sipedge::check(&missing);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("[admin] token_file /nonexistent/admin.token: cannot read it"),
        "{stderr}"
    );
}

/// `sipedge completions bash` writes a script bash accepts and that
/// registers completion for `sipedge`, with its subcommands.
#[test]
fn completions_register_in_bash() {
    require_private_netns();
    let bin = e2e::sipedge::binary();
    let out = std::process::Command::new(&bin)
        .args(["completions", "bash"])
        .output()
        .expect("sipedge completions");
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    for word in [
        "run",
        "check",
        "ctl",
        "completions",
        "--log-format",
        "--config",
    ] {
        assert!(
            script.contains(word),
            "{word} missing from the completion script"
        );
    }
    let dir = e2e::TempDir::new("completions");
    let file = dir.path().join("sipedge.bash");
    std::fs::write(&file, &script).expect("write the script");
    let checked = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p sipedge", file.display()))
        .output()
        .expect("bash");
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success() && said.contains("sipedge"),
        "{said}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}
