//! The live dashboard (issue 18 §2) in a real browser, and the admin
//! API's optional credentials.
//!
//! Headless Chromium loads `/` while SIPp calls flow: the DOM shows the
//! edge's CPS graph fed with traffic and each destination's state; a
//! destination set inactive through the API shows so at the next load. A
//! screenshot is kept under `target/e2e-artefacts/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::config::{admin, single_edge};
use e2e::{browser, free_port, require_private_netns, AdminApi, Sipedge, SippUac, SippUas};

/// Virtual time the page's scripts get before the DOM is read: its first
/// poll (every fetch is waited for) and a few more.
const BUDGET: Duration = Duration::from_secs(3);

/// The `<article>` of edge `name` in `dom`.
#[track_caller]
fn card<'a>(dom: &'a str, name: &str) -> &'a str {
    let open = format!("data-edge=\"{name}\"");
    let at = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no card for edge {name} in:\n{dom}"));
    let end = dom[at..].find("</article>").map_or(dom.len(), |e| at + e);
    &dom[at..end]
}

/// The number in the element of class `class` in `html`.
#[track_caller]
fn number(html: &str, class: &str) -> u64 {
    let open = format!("class=\"{class}\">");
    let at = html
        .find(&open)
        .unwrap_or_else(|| panic!("no {class} in:\n{html}"))
        + open.len();
    let digits: String = html[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{class} is not a number in:\n{html}"))
}

/// The `data-state` of the destinations table's row for `uri`.
#[track_caller]
fn row_state<'a>(html: &'a str, uri: &str) -> &'a str {
    let open = format!("data-destination=\"{uri}\" data-state=\"");
    let at = html
        .find(&open)
        .unwrap_or_else(|| panic!("no row for {uri} in:\n{html}"))
        + open.len();
    let end = html[at..].find('"').map_or(html.len(), |e| at + e);
    &html[at..end]
}

/// Where test artefacts go: `target/e2e-artefacts/` of the workspace.
fn artefacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let dir = target.join("e2e-artefacts");
    std::fs::create_dir_all(&dir).expect("create the artefacts folder");
    dir
}

#[test]
fn the_dashboard_shows_traffic_and_destination_states_in_a_browser() {
    require_private_netns();
    let a = SippUas::start("uas.xml", free_port(), &[]);
    let b = SippUas::start("uas.xml", free_port(), &[]);
    let (uri_a, uri_b) = (a.uri(), b.uri());
    let (listen, api_port) = (free_port(), free_port());
    let config = single_edge(
        listen,
        "weighted-round-robin",
        &[(a.port(), 1), (b.port(), 1)],
    )
    .replace("flags = ", "channels = 1000\nflags = ")
        + &admin(api_port);
    let _edge = Sipedge::start(&config);
    let api = AdminApi::local(api_port);
    let target = format!("127.0.0.1:{listen}");
    let caller = std::thread::spawn(move || SippUac::run("uac.xml", &target, 120, 10, &[]));
    // The graphs' history has a second with calls in it.
    let start = Instant::now();
    loop {
        let series = api.get("/api/series").json();
        let busy = series["edges"][0]["points"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p[1].as_u64().is_some_and(|n| n > 0)));
        if busy {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no calls in /api/series: {series}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("http://127.0.0.1:{api_port}/");
    let dom = browser::dom(&url, BUDGET);
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page never polled:\n{dom}"
    );
    let edge = card(&dom, "e");
    assert!(
        number(edge, "cps-peak") > 0,
        "the CPS graph has no traffic:\n{edge}"
    );
    assert!(number(edge, "cps-now") <= 20, "{edge}");
    assert_eq!(row_state(edge, &uri_a), "active");
    assert_eq!(row_state(edge, &uri_b), "active");

    // Drain the second server by hand: the next look shows it.
    let r = api.set_state("e", "1", "inactive");
    assert_eq!(r.status, 200, "{}", r.body);
    let dom = browser::dom(&url, BUDGET);
    let edge = card(&dom, "e");
    assert_eq!(row_state(edge, &uri_a), "active");
    assert_eq!(row_state(edge, &uri_b), "inactive");
    assert!(edge.contains("inactive (held)"), "{edge}");

    let png = artefacts().join("dashboard.png");
    browser::screenshot(&url, BUDGET, &png, 1280, 900);
    eprintln!("dashboard screenshot: {}", png.display());
    // The calls only feed the graphs: none may fail, but under load SIPp
    // may end its run before it counts the last ones.
    let uac = caller.join().expect("the caller");
    assert!(
        uac.failed() == 0 && uac.successful() > 0,
        "{}",
        uac.summary()
    );
}

/// With `[admin] token_file`, the API and `/metrics` ask for the token
/// (401 with a bearer challenge) while `/health` and the dashboard's page
/// stay open; `sipedge ctl --config` sends the token it finds there. With
/// `user` and `password_file` the page asks too, as a browser understands
/// (a basic challenge).
#[test]
fn the_admin_api_asks_for_its_credentials_and_ctl_sends_them() {
    require_private_netns();
    let dir = e2e::TempDir::new("admin-auth");
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "s3cret-token\n").expect("write the token");
    let password = dir.path().join("noc.password");
    std::fs::write(&password, "pass word\n").expect("write the password");
    let api_port = free_port();
    let config = single_edge(free_port(), "weighted-round-robin", &[(free_port(), 1)])
        + &admin(api_port)
        + &format!("token_file = \"{}\"\n", token.display());
    let edge = Sipedge::start(&config);
    let api = AdminApi::local(api_port);
    for path in ["/api/destinations", "/metrics", "/api/series", "/api/bans"] {
        let r = api.get(path);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        assert_eq!(
            r.challenge.as_deref(),
            Some("Bearer realm=\"sipedge\""),
            "{path}"
        );
    }
    assert_eq!(api.get("/health").status, 200);
    assert_eq!(api.get("/").status, 200);
    let wrong = api.authorized("Bearer s3cret-tokem");
    assert_eq!(wrong.get("/api/destinations").status, 401);
    let right = api.authorized("Bearer s3cret-token");
    assert_eq!(right.get("/api/destinations").status, 200);
    assert_eq!(right.get("/metrics").status, 200);
    // ctl: refused without the token, served with the config's.
    let out = api.ctl(&["destinations"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("401"), "{out}");
    let file = edge.config_path().display().to_string();
    let out = e2e::admin::ctl(&["--config", &file, "destinations"]);
    assert_eq!(out.code, Some(0), "{out}");
    let out = api.ctl(&["--token-file", &token.display().to_string(), "destinations"]);
    assert_eq!(out.code, Some(0), "{out}");
    drop(edge);

    // Basic authentication: the page asks too, so that the browser does.
    let api_port = free_port();
    let config = single_edge(free_port(), "weighted-round-robin", &[(free_port(), 1)])
        + &admin(api_port)
        + &format!(
            "user = \"noc\"\npassword_file = \"{}\"\n",
            password.display()
        );
    let edge = Sipedge::start(&config);
    let api = AdminApi::local(api_port);
    let r = api.get("/");
    assert_eq!(r.status, 401);
    assert!(
        r.challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Basic realm=\"sipedge\"")),
        "{:?}",
        r.challenge
    );
    assert_eq!(api.get("/health").status, 200);
    // noc:pass word
    let noc = api.authorized("Basic bm9jOnBhc3Mgd29yZA==");
    assert_eq!(noc.get("/").status, 200);
    assert_eq!(noc.get("/api/destinations").status, 200);
    let file = edge.config_path().display().to_string();
    let out = e2e::admin::ctl(&["--config", &file, "destinations"]);
    assert_eq!(out.code, Some(0), "{out}");
}
