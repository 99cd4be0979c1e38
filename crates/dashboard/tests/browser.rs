//! The dashboard in a real browser: starts `switchboard demo` (SQLite, with
//! the X simulator) and runs `tests/browser/dashboard.mjs`, which drives
//! Debian's chromium with npm `playwright-core` as a person would. The
//! script's assertions are the specification; read it for what is checked.
//!
//! Needs `/usr/bin/chromium` (`apt-get install chromium`), Node, and
//! `npm ci` in `crates/dashboard/tests/browser` (`./test` does both). When
//! one is missing the test fails and says which: it never passes silently.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The `switchboard` binary in this test's own target directory. It is not
/// built from here (a nested cargo would wait on the build lock of the
/// cargo running this test): `cargo test --workspace` builds it, or run
/// `cargo build -p switchboard` first.
fn switchboard_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/browser-<hash> → target/<profile>/switchboard
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .join("switchboard");
    assert!(
        binary.exists(),
        "the switchboard binary is missing at {}: run `cargo build -p switchboard` (or `cargo test --workspace`) first",
        binary.display()
    );
    binary
}

fn check_tools() {
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/chromium").exists() {
        missing.push("Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)");
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("Node.js (`node` on PATH)");
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        missing.push("npm playwright-core (cd crates/dashboard/tests/browser && npm ci)");
    }
    assert!(
        missing.is_empty(),
        "the dashboard's browser test cannot run; missing: {}",
        missing.join("; ")
    );
}

#[test]
fn the_dashboard_works_in_chromium() {
    check_tools();
    let binary = switchboard_binary();
    let data_dir = tempfile::Builder::new()
        .prefix("switchboard-dashboard-test-")
        .tempdir()
        .expect("a temporary data dir");
    let mut child = Command::new(&binary)
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("switchboard demo starts");
    let pid = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    let demo = Demo(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let ready = line.trim() == "demo ready";
            lines.push(line);
            if ready {
                let _ = tx.send(lines.clone());
            }
        }
    });
    let lines = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("switchboard demo printed `demo ready`");
    let find = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("the demo printed no `{prefix}` line:\n{}", lines.join("\n")))
    };
    // The login link is printed first.
    let first = lines.iter().find(|l| !l.trim().is_empty()).unwrap();
    assert!(first.starts_with("dashboard: open "), "{first}");
    let login = find("dashboard: open ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let base = find("switchboard demo is running at ");
    let token = find("token:").trim().to_owned();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot folder");
    let status = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(browser_dir())
        .env("SB_URL", &base)
        .env("SB_LOGIN", &login)
        .env("SB_TOKEN", &token)
        .env("SB_PID", pid.to_string())
        .env("SB_SCREENSHOTS", &shots)
        .status()
        .expect("node runs");
    drop(demo);
    assert!(
        status.success(),
        "the browser script failed (see its output above)"
    );
}
