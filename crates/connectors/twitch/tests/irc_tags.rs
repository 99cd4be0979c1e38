//! IRCv3 tag parsing checked against lines captured from a real IRCv3
//! server (Debian's InspIRCd with its ircv3 modules) and against Twitch's
//! documented example messages.
//!
//! Fixtures (tests/fixtures/):
//! - `inspircd_capture.txt` / `inspircd_expected.json`: raw lines InspIRCd
//!   delivered, and the lines the capture client sent, with their tags
//!   decoded per the IRCv3 message-tags spec by `capture_inspircd.py` (an
//!   implementation independent of ours, itself checked against hand-written
//!   expectations). Regenerate with `python3 tests/fixtures/capture_inspircd.py`.
//! - `twitch_examples.txt` / `twitch_examples_expected.json`: lines copied
//!   verbatim from Twitch's IRC docs, with their tags and (for PRIVMSG) the
//!   `twitch.chat.message` payload derived by hand from the docs' tag
//!   reference.
//!
//! `live_inspircd_capture` re-runs the capture against a freshly started
//! InspIRCd, so the parser is checked against a live server each run; it
//! needs `inspircd` installed (`apt-get install inspircd`, as `./test` does).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use switchboard_connector_twitch::chat::{chat_message_payload, parse_tags};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// The raw IRC lines of a fixture text file: every line that is neither
/// empty nor a `#` comment, with its 1-based line number. Lines are taken
/// verbatim (no trimming: a tag value may end in a backslash).
fn raw_lines(text: &str) -> Vec<(usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i + 1, l))
        .collect()
}

fn expected_tags(v: &Value, what: &str) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what}: 'tags' is not an object"))
        .iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("{what}: tag {k:?} is not a string"));
            (k.clone(), v.to_owned())
        })
        .collect()
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("fixture entry without string {key:?}: {v}"))
}

/// Differences between the expected and the parsed tags, one per line.
fn tag_diff(expected: &BTreeMap<String, String>, actual: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, want) in expected {
        match actual.get(k) {
            None => out.push(format!("missing tag {k:?} (expected {want:?})")),
            Some(got) if got != want => {
                out.push(format!("tag {k:?}: expected {want:?}, got {got:?}"))
            }
            Some(_) => {}
        }
    }
    for (k, got) in actual {
        if !expected.contains_key(k) {
            out.push(format!("unexpected tag {k:?} = {got:?}"));
        }
    }
    out
}

/// Checks `parse_tags(raw)` against `expected`; a failure description or None.
fn check_tags(label: &str, raw: &str, expected: &BTreeMap<String, String>) -> Option<String> {
    match parse_tags(raw) {
        Ok(actual) => {
            let diff = tag_diff(expected, &actual);
            (!diff.is_empty())
                .then(|| format!("{label}\n    line: {raw}\n    - {}", diff.join("\n    - ")))
        }
        Err(e) => Some(format!(
            "{label}\n    line: {raw}\n    - parse_tags returned Err({e:?}); expected {expected:?}"
        )),
    }
}

fn fail_if_any(what: &str, failures: &[String], checked: usize) {
    if !failures.is_empty() {
        panic!(
            "{} of {checked} {what} failed:\n\n{}\n",
            failures.len(),
            failures.join("\n\n")
        );
    }
}

/// Checks one capture (a capture text plus its expectations JSON): the two
/// files agree line for line, and `parse_tags` gives the expected tags for
/// every delivered line and every sent line. Returns (failures, checked).
fn check_inspircd_capture(capture_path: &Path, expected_path: &Path) -> (Vec<String>, usize) {
    let capture = read(capture_path);
    let expected = read_json(expected_path);
    let cap_name = capture_path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let lines: BTreeMap<usize, &str> = raw_lines(&capture).into_iter().collect();
    let entries = expected["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no 'entries' array", expected_path.display()));
    assert!(
        !entries.is_empty(),
        "{}: no entries",
        expected_path.display()
    );

    let mut failures = Vec::new();
    let mut covered = Vec::new();
    for entry in entries {
        let case = str_field(entry, "case");
        let direction = str_field(entry, "direction");
        let raw = str_field(entry, "raw");
        let label = match entry["capture_line"].as_u64() {
            Some(n) => {
                let n = n as usize;
                covered.push(n);
                // The JSON must describe exactly the line the capture holds.
                assert_eq!(
                    lines.get(&n).copied(),
                    Some(raw),
                    "{cap_name}:{n} and {} disagree about the raw line",
                    expected_path.display()
                );
                format!("{cap_name}:{n} ({direction}, case {case:?})")
            }
            None => format!("line the capture client sent (case {case:?})"),
        };
        let want = expected_tags(&entry["tags"], &label);
        if let Some(f) = check_tags(&label, raw, &want) {
            failures.push(f);
        }
    }
    let uncovered: Vec<_> = lines.keys().filter(|n| !covered.contains(n)).collect();
    assert!(
        uncovered.is_empty(),
        "{cap_name}: lines {uncovered:?} have no expectation in {}",
        expected_path.display()
    );
    (failures, entries.len())
}

#[test]
fn inspircd_captured_lines_decode_per_spec() {
    let dir = fixtures_dir();
    let (failures, checked) = check_inspircd_capture(
        &dir.join("inspircd_capture.txt"),
        &dir.join("inspircd_expected.json"),
    );
    fail_if_any("InspIRCd-captured/sent lines", &failures, checked);
}

struct TwitchExample<'a> {
    line_no: usize,
    entry: &'a Value,
}

fn twitch_examples(text: &str, expected: &Value) -> Vec<(usize, Value)> {
    let lines = raw_lines(text);
    let entries = expected["entries"]
        .as_array()
        .expect("twitch_examples_expected.json: no 'entries' array");
    assert_eq!(
        lines.len(),
        entries.len(),
        "twitch_examples.txt has {} lines, twitch_examples_expected.json {} entries",
        lines.len(),
        entries.len()
    );
    lines
        .iter()
        .zip(entries)
        .map(|((n, raw), entry)| {
            assert_eq!(
                str_field(entry, "raw"),
                *raw,
                "twitch_examples.txt:{n} differs from its entry in twitch_examples_expected.json"
            );
            (*n, entry.clone())
        })
        .collect()
}

fn load_twitch() -> (Vec<(usize, Value)>, Value) {
    let dir = fixtures_dir();
    let text = read(&dir.join("twitch_examples.txt"));
    let expected = read_json(&dir.join("twitch_examples_expected.json"));
    (twitch_examples(&text, &expected), expected)
}

impl TwitchExample<'_> {
    fn label(&self) -> String {
        format!(
            "twitch_examples.txt:{} ({})",
            self.line_no,
            str_field(self.entry, "name")
        )
    }
}

#[test]
fn twitch_documented_examples_tags() {
    let (examples, _) = load_twitch();
    let mut failures = Vec::new();
    for (line_no, entry) in &examples {
        let ex = TwitchExample {
            line_no: *line_no,
            entry,
        };
        let want = expected_tags(&entry["tags"], &ex.label());
        if let Some(f) = check_tags(&ex.label(), str_field(entry, "raw"), &want) {
            failures.push(f);
        }
    }
    fail_if_any(
        "Twitch documented lines (parse_tags)",
        &failures,
        examples.len(),
    );
}

fn pretty(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
}

/// Compares a payload value against the contract: objects must have every
/// expected key with a matching value (keys beyond the contract are only
/// collected into `extra`), arrays must match element by element, anything
/// else must be equal.
fn json_diff(
    path: &str,
    want: &Value,
    got: &Value,
    diff: &mut Vec<String>,
    extra: &mut Vec<String>,
) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let p = format!("{path}.{k}");
                match g.get(k) {
                    None => diff.push(format!("missing key {p:?} (expected {})", pretty(wv))),
                    Some(gv) => json_diff(&p, wv, gv, diff, extra),
                }
            }
            extra.extend(
                g.keys()
                    .filter(|k| !w.contains_key(*k))
                    .map(|k| format!("{path}.{k}")),
            );
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                json_diff(&format!("{path}[{i}]"), wv, gv, diff, extra);
            }
        }
        _ if want == got => {}
        _ => diff.push(format!(
            "{path:?}: expected {}, got {}",
            pretty(want),
            pretty(got)
        )),
    }
}

#[test]
fn twitch_documented_privmsg_payloads() {
    let (examples, expected) = load_twitch();
    let keys: Vec<&str> = expected["payload_keys"]
        .as_array()
        .expect("twitch_examples_expected.json: no 'payload_keys'")
        .iter()
        .map(|k| k.as_str().expect("payload key is a string"))
        .collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (line_no, entry) in &examples {
        let ex = TwitchExample {
            line_no: *line_no,
            entry,
        };
        let raw = str_field(entry, "raw");
        match str_field(entry, "payload_check") {
            "payload" => {
                checked += 1;
                let want = &entry["payload"];
                match chat_message_payload(raw) {
                    Err(e) => failures.push(format!(
                        "{}\n    line: {raw}\n    - chat_message_payload returned Err({e:?})",
                        ex.label()
                    )),
                    Ok(got) => {
                        let mut diff = Vec::new();
                        let mut extra = Vec::new();
                        if !got.is_object() {
                            diff.push(format!("payload is not an object: {}", pretty(&got)));
                        }
                        for k in &keys {
                            match got.get(*k) {
                                None => diff.push(format!(
                                    "missing key {k:?} (expected {})",
                                    pretty(&want[*k])
                                )),
                                Some(g) => json_diff(k, &want[*k], g, &mut diff, &mut extra),
                            }
                        }
                        if !diff.is_empty() {
                            if let Some(o) = got.as_object() {
                                extra.extend(
                                    o.keys()
                                        .filter(|k| !keys.contains(&k.as_str()))
                                        .map(|k| k.to_string()),
                                );
                            }
                            if !extra.is_empty() {
                                diff.push(format!(
                                    "(keys beyond the contract, not checked: {})",
                                    extra.join(", ")
                                ));
                            }
                            failures.push(format!(
                                "{}\n    line: {raw}\n    - {}",
                                ex.label(),
                                diff.join("\n    - ")
                            ));
                        }
                    }
                }
            }
            "error" => {
                checked += 1;
                if let Ok(got) = chat_message_payload(raw) {
                    failures.push(format!(
                        "{}\n    line: {raw}\n    - not a PRIVMSG, yet chat_message_payload returned Ok({})",
                        ex.label(),
                        pretty(&got)
                    ));
                }
            }
            "skip" => {}
            other => panic!("{}: unknown payload_check {other:?}", ex.label()),
        }
    }
    assert!(
        checked > 0,
        "no payload checks in twitch_examples_expected.json"
    );
    fail_if_any(
        "Twitch documented lines (chat_message_payload)",
        &failures,
        checked,
    );
}

fn find_inspircd() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("inspircd"))
            .find(|p| p.is_file())
    });
    from_path.or_else(|| {
        let p = PathBuf::from("/usr/sbin/inspircd");
        p.is_file().then_some(p)
    })
}

/// A fresh capture from a live InspIRCd, checked the same way as the
/// committed one. Fails (rather than skips) without inspircd, so a CI that
/// lost the install step cannot pass silently.
#[test]
fn live_inspircd_capture() {
    let Some(inspircd) = find_inspircd() else {
        panic!(
            "the inspircd binary is not installed, so IRC tag parsing cannot be checked \
             against a live IRCv3 server: install it with `apt-get install inspircd` \
             (Debian; ./test installs it when missing)"
        );
    };
    let out = std::env::temp_dir().join(format!(
        "switchboard-irc-tags-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&out).expect("create a temp dir for the capture");
    let script = fixtures_dir().join("capture_inspircd.py");
    let result = Command::new("python3")
        .arg(&script)
        .arg("--out")
        .arg(&out)
        .arg("--inspircd")
        .arg(&inspircd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    if !result.status.success() {
        let _ = std::fs::remove_dir_all(&out);
        panic!(
            "capture against live {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            inspircd.display(),
            result.status,
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }
    let (failures, checked) = check_inspircd_capture(
        &out.join("inspircd_capture.txt"),
        &out.join("inspircd_expected.json"),
    );
    let _ = std::fs::remove_dir_all(&out);
    fail_if_any("freshly captured InspIRCd lines", &failures, checked);
}
