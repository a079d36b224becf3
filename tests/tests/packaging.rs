//! Packaging (issue 18 §7): the systemd unit passes `systemd-analyze
//! verify` with its sandboxing, and the Debian package (`cargo deb -p
//! sipedge`, which .ci/run builds before the suite and scripts/test when
//! it is missing) holds the binary, the config as a conffile, the unit
//! and the README, and runs from a scratch root.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{require_private_netns, TempDir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_systemd_unit_verifies_with_its_sandboxing() {
    require_private_netns();
    let unit = std::fs::read_to_string(repo().join("packaging/sipedge.service"))
        .expect("packaging/sipedge.service");
    for must in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(must), "the unit lacks {must}");
    }
    // Verified where the binary is (verify checks that each command is
    // executable); unknown or misspelt keys are warnings on stderr.
    let dir = TempDir::new("unit");
    let bin = e2e::sipedge::binary();
    let file = dir.path().join("sipedge.service");
    std::fs::write(
        &file,
        unit.replace("/usr/bin/sipedge", &bin.display().to_string()),
    )
    .expect("write the unit");
    let (ok, out, err) = run(Command::new("systemd-analyze").arg("verify").arg(&file));
    assert!(
        ok && err.trim().is_empty(),
        "systemd-analyze verify:\n{out}{err}"
    );
}

/// The newest `target/debian/sipedge_*.deb`.
fn deb() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    let dir = target.join("debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    debs.retain(|p| {
        p.file_name().is_some_and(|n| {
            n.to_string_lossy().starts_with("sipedge_") && p.extension().is_some_and(|e| e == "deb")
        })
    });
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop().unwrap_or_else(|| {
        panic!(
            "no sipedge_*.deb in {}: `cargo deb -p sipedge` builds it (scripts/test does when it is missing)",
            dir.display()
        )
    })
}

#[test]
fn the_debian_package_holds_what_it_should_and_runs_from_a_scratch_root() {
    require_private_netns();
    let deb = deb();
    let (ok, list, err) = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    assert!(ok, "{err}");
    for path in [
        "./usr/bin/sipedge",
        "./etc/sipedge/sipedge.toml",
        "./lib/systemd/system/sipedge.service",
        "./usr/share/doc/sipedge/README.md",
    ] {
        assert!(
            list.lines().any(|l| l.ends_with(path)),
            "{path} not in the package:\n{list}"
        );
    }
    let field = |name: &str| run(Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name)).1;
    assert_eq!(field("Package").trim(), "sipedge");
    assert!(
        field("Depends").contains("libc6"),
        "Depends: {}",
        field("Depends")
    );
    let control = TempDir::new("deb-control");
    let (ok, _, err) = run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(control.path()));
    assert!(ok, "{err}");
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap_or_default();
    assert!(
        conffiles.contains("/etc/sipedge/sipedge.toml"),
        "conffiles: {conffiles:?}"
    );
    // Installed into a scratch root, the binary runs and checks the
    // config it came with.
    let root = TempDir::new("deb-root");
    let (ok, _, err) = run(Command::new("dpkg-deb")
        .arg("--extract")
        .arg(&deb)
        .arg(root.path()));
    assert!(ok, "{err}");
    let bin = root.path().join("usr/bin/sipedge");
    let config = root.path().join("etc/sipedge/sipedge.toml");
    let (ok, out, err) = run(Command::new(&bin).arg("check").arg("--config").arg(&config));
    assert!(ok, "{out}{err}");
    assert!(out.contains(": ok ("), "{out}");
    let (ok, version, _) = run(Command::new(&bin).arg("--version"));
    assert!(ok && version.starts_with("sipedge "), "{version}");
    let unit = root.path().join("lib/systemd/system/sipedge.service");
    assert!(Path::new(&unit).is_file());
}
