//! The rules engine end to end: a real daemon with a rules file (watched) and
//! API rules; events from the echo connector's heartbeat trigger; jobs,
//! runs and traces read back over the API.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Daemon, Db, Fixture};
use crate::on_both_databases;

/// A daemon watching `rules.yaml` in its data dir, with an echo connection
/// `ticker` that beats every `beat_ms`.
async fn rules_daemon(
    db: Db,
    rules: &str,
    beat_ms: u64,
) -> (Fixture, Daemon, String, std::path::PathBuf) {
    let fixture = Fixture::new(db).await;
    let file = fixture.data_dir().join("rules.yaml");
    std::fs::write(&file, "rules: []\n").unwrap();
    let mut fixture = fixture.with_env("SWITCHBOARD_RULES__FILE", file.to_str().unwrap());
    let daemon = fixture.start().await;
    let ticker = daemon
        .create_connection(json!({
            "connector": "echo", "label": "ticker",
            "settings": { "heartbeat_ms": beat_ms, "greeting": "echo:" }
        }))
        .await;
    daemon.wait_status(&ticker, "connected").await;
    write_rules(&daemon, &file, rules).await;
    (fixture, daemon, ticker, file)
}

/// Write the rules file and wait until the daemon has loaded exactly it.
async fn write_rules(daemon: &Daemon, file: &std::path::Path, rules: &str) {
    std::fs::write(file, rules).unwrap();
    let expected = serde_norway::from_str::<Value>(rules).unwrap()["rules"]
        .as_array()
        .map_or(0, |r| r.len());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed = daemon.get("/rules").await.body;
        let names: Vec<Value> = listed["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["source"] == "file")
            .map(|r| r["name"].clone())
            .collect();
        if names.len() == expected && listed["file_errors"].is_null() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rules not loaded: {listed}\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for<F: Fn(&Value) -> bool>(daemon: &Daemon, path: &str, what: &str, ok: F) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = daemon.get(path).await.body;
        if ok(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {body}\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(list: &Value) -> usize {
    list.as_array().map_or(0, |a| a.len())
}

const EVEN_BEATS: &str = r#"
rules:
  - name: even-beats
    on: { event: echo.heartbeat, connection: ticker }
    if: "event.payload.beat % 2 == 0"
    do:
      - action: echo.say
        connection: ticker
        params:
          message: "beat {{ event.payload.beat }}"
      - action: echo.say
        connection: ticker
        params:
          message: "times ten: {{ event.payload.beat * 10 }}"
    set:
      last_beat: "{{ event.payload.beat }}"
"#;

async fn a_rules_file_turns_events_into_ordered_jobs(db: Db) {
    let (_fixture, daemon, _ticker, _file) = rules_daemon(db, EVEN_BEATS, 150).await;
    let runs = wait_for(
        &daemon,
        "/rules/runs?rule=even-beats&state=succeeded",
        "a run succeeds",
        |r| count(r) >= 2,
    )
    .await;
    for run in runs.as_array().unwrap() {
        let event = daemon
            .get(&format!("/events/{}/trace", run["event_id"]))
            .await
            .body;
        let beat = event["event"]["payload"]["beat"].as_i64().unwrap();
        assert_eq!(beat % 2, 0, "the condition filtered odd beats: {event}");
        let jobs = event["runs"][0]["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 2, "{event}");
        assert_eq!(jobs[0]["params"]["message"], format!("beat {beat}"));
        assert_eq!(
            jobs[1]["params"]["message"],
            format!("times ten: {}", beat * 10)
        );
        assert_eq!(
            jobs[1]["result"]["message"],
            format!("echo: times ten: {}", beat * 10)
        );
        // In order: the second action starts after the first finished.
        assert!(
            jobs[1]["started_at"].as_i64() >= jobs[0]["finished_at"].as_i64(),
            "{event}"
        );
    }
    let vars = daemon.get("/rules/vars").await.body;
    assert_eq!(vars["last_beat"].as_i64().unwrap() % 2, 0, "{vars}");
    let matched = daemon.get("/events?type=rule.matched&limit=100").await.body;
    assert!(count(&matched) >= 2, "{matched}");
    assert_eq!(matched[0]["payload"]["rule"], "even-beats");
}

async fn hot_reload_applies_good_edits_and_keeps_rules_through_bad_ones(db: Db) {
    let (_fixture, daemon, _ticker, file) = rules_daemon(db, EVEN_BEATS, 150).await;
    wait_for(
        &daemon,
        "/rules/runs?rule=even-beats",
        "the first rule runs",
        |r| count(r) >= 1,
    )
    .await;

    // A new rule replaces the old one within a second.
    let edited = EVEN_BEATS
        .replace("even-beats", "all-beats")
        .replace("if: \"event.payload.beat % 2 == 0\"", "if: \"true\"");
    let began = Instant::now();
    std::fs::write(&file, &edited).unwrap();
    wait_for(
        &daemon,
        "/rules/runs?rule=all-beats",
        "the edited rule runs",
        |r| count(r) >= 1,
    )
    .await;
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );

    // A broken edit is reported (with its line) and the running rules stay.
    let broken = edited.replace("action: echo.say\n        connection: ticker\n        params:\n          message: \"beat", "action: echo.shout\n        connection: ticker\n        params:\n          message: \"beat");
    std::fs::write(&file, &broken).unwrap();
    let rejected = wait_for(
        &daemon,
        "/events?type=rules.rejected",
        "the edit is rejected",
        |e| count(e) >= 1,
    )
    .await;
    let error = &rejected[0]["payload"]["errors"][0];
    assert_eq!(error["rule"], "all-beats", "{rejected}");
    assert_eq!(error["field"], "do[0].action", "{rejected}");
    assert!(
        error["message"].as_str().unwrap().contains("echo.say"),
        "lists the known actions: {rejected}"
    );
    assert_eq!(error["line"], 7, "{rejected}");
    let listed = daemon.get("/rules").await.body;
    assert_eq!(listed["rules"][0]["name"], "all-beats", "{listed}");
    assert!(listed["file_errors"].is_array(), "{listed}");
    let before = count(
        &daemon
            .get("/rules/runs?rule=all-beats&limit=1000")
            .await
            .body,
    );
    wait_for(
        &daemon,
        "/rules/runs?rule=all-beats&limit=1000",
        "the old rule keeps running",
        |r| count(r) > before,
    )
    .await;
}

async fn bad_rules_are_refused_whole_with_rule_field_and_line(db: Db) {
    let (_fixture, daemon, _ticker, _file) = rules_daemon(db, "rules: []\n", 60_000).await;
    let cases = [
        ("do[0].params.message", "{{ event.payload.beat", "template"),
        ("do[0].action", "", "unknown action"),
        ("on.event", "", "unknown event type"),
        ("if", "", "does not compile"),
    ];
    for (field, _, expected) in cases {
        let mut rule = json!({
            "name": "broken",
            "on": {"event": "echo.heartbeat"},
            "do": [{"action": "echo.say", "params": {"message": "hi"}}]
        });
        match field {
            "do[0].params.message" => {
                rule["do"][0]["params"]["message"] = json!("{{ event.payload.beat")
            }
            "do[0].action" => rule["do"][0]["action"] = json!("echo.shout"),
            "on.event" => rule["on"]["event"] = json!("echo.heartbeet"),
            _ => rule["if"] = json!("event.payload.beat >="),
        }
        let text = serde_norway::to_string(&json!({ "rules": [rule.clone()] })).unwrap();
        let reply = daemon
            .post("/rules/validate", json!({ "text": text }))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.body
        );
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("rules[broken].{field}")),
            "{field}: {detail}"
        );
        assert!(detail.contains("line "), "{field}: {detail}");
        assert!(detail.contains(expected), "{field}: {detail}");
        // The API refuses the same rule and applies nothing.
        let reply = daemon.post("/rules", rule).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.body
        );
    }
    // A file with one good and one bad rule is refused whole.
    let text = "rules:\n  - name: good\n    on: { event: echo.heartbeat }\n    do:\n      - action: echo.say\n        params: { message: hi }\n  - name: bad\n    on: { event: nope.never }\n    do:\n      - action: echo.say\n        params: { message: hi }\n";
    let reply = daemon
        .post("/rules/validate", json!({ "text": text }))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("rules[bad].on.event (line 8, column 11)"),
        "{}",
        reply.body
    );
    assert_eq!(count(&daemon.get("/rules").await.body["rules"]), 0);
}

async fn cooldowns_queues_and_api_rules(db: Db) {
    let (_fixture, daemon, ticker, _file) = rules_daemon(db, "rules: []\n", 100).await;
    // A cooldown: one run per 60 s, however many beats.
    let reply = daemon
        .post(
            "/rules",
            json!({
                "name": "cool",
                "on": {"event": "echo.heartbeat"},
                "do": [{"action": "echo.say", "connection": ticker, "params": {"message": "cool {{ event.payload.beat }}"}}],
                "cooldown": {"secs": 60}
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    wait_for(
        &daemon,
        "/events?type=rule.skipped",
        "a beat is skipped for the cooldown",
        |e| {
            e.as_array()
                .unwrap()
                .iter()
                .any(|e| e["payload"]["reason"] == "cooldown")
        },
    )
    .await;
    assert_eq!(count(&daemon.get("/rules/runs?rule=cool").await.body), 1);
    let reply = daemon.post("/rules/cool/disable", json!({})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["enabled"], false);

    // A blocking queue: one run at a time, in order; pausing holds the rest.
    let reply = daemon
        .put(
            "/rules/queued",
            json!({
                "name": "queued",
                "on": {"event": "echo.heartbeat"},
                "do": [{"action": "echo.say", "connection": "ticker", "params": {"message": "slow", "work_ms": 250}}],
                "queue": {"name": "alerts"}
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    wait_for(
        &daemon,
        "/rules/runs?rule=queued&state=succeeded",
        "queued runs finish",
        |r| count(r) >= 3,
    )
    .await;
    let reply = daemon.post("/rules/queues/alerts/pause", json!({})).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let queues = daemon.get("/rules/queues").await.body;
    let alerts = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "alerts")
        .unwrap()
        .clone();
    assert_eq!(alerts["paused"], true, "{queues}");
    assert_eq!(
        alerts["running"], 0,
        "the running run finished, none started: {queues}"
    );
    assert!(alerts["waiting"].as_i64().unwrap() > 0, "{queues}");
    daemon.post("/rules/queued/disable", json!({})).await;
    daemon.post("/rules/queues/alerts/resume", json!({})).await;
    wait_for(&daemon, "/rules/queues", "the queue drains", |q| {
        q.as_array()
            .unwrap()
            .iter()
            .all(|q| q["name"] != "alerts" || (q["waiting"] == 0 && q["running"] == 0))
    })
    .await;
    // Never two at once: each job started after the previous one finished.
    let mut jobs: Vec<Value> = daemon
        .get("/jobs?limit=1000")
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["params"]["message"] == "slow")
        .cloned()
        .collect();
    jobs.sort_by_key(|j| j["started_at"].as_i64());
    assert!(jobs.len() >= 3);
    for pair in jobs.windows(2) {
        assert!(
            pair[1]["started_at"].as_i64() >= pair[0]["finished_at"].as_i64(),
            "overlapping queue runs: {pair:?}"
        );
    }
}

/// `switchboard demo` writes and loads its sample rules file once; the
/// watcher must not reload it again and again by itself afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_rules_file_stays_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = crate::common::demo_command(Some(dir.path()))
        .spawn()
        .unwrap();
    let rx = crate::common::stdout_lines(&mut child);
    let (mut url, mut token, mut ready) = (String::new(), String::new(), false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if let Some(rest) = line.split("running at ").nth(1) {
            url = rest.trim().to_owned();
        }
        if line.trim_start().starts_with("token:") {
            token = line.split("token:").nth(1).unwrap().trim().to_owned();
        }
        ready = line.contains("demo ready");
    }
    assert!(ready, "the demo did not start: url {url:?}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let reloads = || async {
        let mut n = 0;
        for kind in ["rules.reloaded", "rules.rejected"] {
            let list: Value = http
                .get(format!("{url}/api/v1/events?type={kind}&limit=1000"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            n += list.as_array().map_or(0, |a| a.len());
        }
        n
    };
    // The demo loads its rules once (the watcher may see the demo's write
    // too); a reload loop would add about five a second.
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let n = reloads().await;
        assert!(n <= 2, "{n} reloads of an unchanged rules file");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `rules.reloaded` / `rules.rejected` events after event `after`.
async fn reload_events(daemon: &Daemon, after: i64) -> Vec<Value> {
    let mut out = Vec::new();
    for kind in ["rules.reloaded", "rules.rejected"] {
        let list = daemon
            .get(&format!("/events?type={kind}&after={after}&limit=1000"))
            .await
            .body;
        out.extend(list.as_array().cloned().unwrap_or_default());
    }
    out
}

/// Watch the event log for 10 s: no reload event may appear after `after`.
async fn assert_quiet(daemon: &Daemon, after: i64, what: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let events = reload_events(daemon, after).await;
        assert!(
            events.is_empty(),
            "{what}: the rules file was reloaded again: {events:?}\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One edit, one reload: the watcher ignores its own reads (and saves of
/// the same text), so the file stays quiet afterwards; an invalid edit is
/// rejected once, with one ERROR line, then quiet too.
async fn an_edited_rules_file_is_reloaded_once_then_stays_quiet(db: Db) {
    let (_fixture, daemon, _ticker, file) = rules_daemon(db, EVEN_BEATS, 60_000).await;
    let reloaded = wait_for(
        &daemon,
        "/events?type=rules.reloaded",
        "the edit is loaded",
        |e| count(e) >= 1,
    )
    .await;
    let first = reloaded[0]["id"].as_i64().unwrap();
    // The edit was applied by the first event; anything after it is a repeat.
    assert_quiet(&daemon, first, "after one edit").await;

    // Saving the same text again changes nothing.
    std::fs::write(&file, EVEN_BEATS).unwrap();
    assert_quiet(&daemon, first, "after a save without changes").await;

    // An invalid edit: rejected once, then quiet.
    std::fs::write(&file, EVEN_BEATS.replace("echo.say", "echo.sya")).unwrap();
    let rejected = wait_for(
        &daemon,
        &format!("/events?type=rules.rejected&after={first}"),
        "the invalid edit is rejected",
        |e| count(e) >= 1,
    )
    .await;
    let rejected_id = rejected[0]["id"].as_i64().unwrap();
    assert_quiet(&daemon, rejected_id, "after an invalid edit").await;
    assert_eq!(
        daemon
            .output()
            .matches("the edited rules file is invalid")
            .count(),
        1,
        "one ERROR line for one invalid edit"
    );
}

on_both_databases!(
    an_edited_rules_file_is_reloaded_once_then_stays_quiet,
    a_rules_file_turns_events_into_ordered_jobs,
    hot_reload_applies_good_edits_and_keeps_rules_through_bad_ones,
    bad_rules_are_refused_whole_with_rule_field_and_line,
    cooldowns_queues_and_api_rules,
);

/// `switchboard rules validate` and `rules test` (the dry run) from the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_validates_and_dry_runs_a_rules_file() {
    let (fixture, daemon, ticker, _file) = rules_daemon(Db::Sqlite, "rules: []\n", 60_000).await;
    let dir = fixture.data_dir();
    let rules = dir.join("try.yaml");
    std::fs::write(&rules, EVEN_BEATS).unwrap();
    let event = dir.join("event.json");
    let event_json = |beat: u32| {
        json!({"type": "echo.heartbeat", "connection_id": ticker, "payload": {"beat": beat}})
            .to_string()
    };
    std::fs::write(&event, event_json(4)).unwrap();
    let run = |args: &[&str]| {
        fixture
            .command()
            .env("SWITCHBOARD_URL", &daemon.url)
            .env("SWITCHBOARD_TOKEN", &daemon.token)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["rules", "validate", rules.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid: 1 rule"));

    let out = run(&[
        "rules",
        "test",
        rules.to_str().unwrap(),
        "--event",
        event.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("MATCH  even-beats"), "{stdout}");
    assert!(stdout.contains("times ten: 40"), "{stdout}");

    std::fs::write(&event, event_json(3)).unwrap();
    let out = run(&[
        "rules",
        "test",
        rules.to_str().unwrap(),
        "--event",
        event.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("the condition is false"));
    // Nothing ran for real.
    assert_eq!(count(&daemon.get("/jobs").await.body), 0);

    std::fs::write(&rules, EVEN_BEATS.replace("echo.say", "echo.sya")).unwrap();
    let out = run(&["rules", "validate", rules.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("rules[even-beats].do[0].action (line 7, column 9)"),
        "{stderr}"
    );

    // The line of the field at fault, not the rule's first line: a bad
    // template in the second action's `params.message`, line 14.
    std::fs::write(
        &rules,
        EVEN_BEATS.replace(
            "{{ event.payload.beat * 10 }}",
            "{{ event.payload.beat * }}",
        ),
    )
    .unwrap();
    let out = run(&["rules", "validate", rules.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("rules[even-beats].do[1].params.message (line 14, column 11)"),
        "{stderr}"
    );
    // The same in TOML.
    let toml_rules = dir.join("try.toml");
    std::fs::write(
        &toml_rules,
        r#"[[rules]]
name = "even-beats"
on = { event = "echo.heartbeat", connection = "ticker" }

[[rules.do]]
action = "echo.say"
params = { message = "beat {{ event.payload.beat }}" }

[[rules.do]]
action = "echo.say"
params = { message = "times ten: {{ event.payload.beat * }}" }
"#,
    )
    .unwrap();
    let out = run(&["rules", "validate", toml_rules.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("rules[even-beats].do[1].params.message (line 11, column 12)"),
        "{stderr}"
    );
}

/// `rules test --event` takes an event exactly as `events tail --json`
/// prints it (and as `rules trace --json` shows it), ids and times included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_test_takes_an_event_copied_from_the_event_log() {
    let (fixture, daemon, _ticker, _file) = rules_daemon(Db::Sqlite, "rules: []\n", 100).await;
    wait_for(
        &daemon,
        "/events?type=echo.heartbeat",
        "a heartbeat is logged",
        |e| count(e) >= 1,
    )
    .await;
    let dir = fixture.data_dir();
    let rules = dir.join("try.yaml");
    std::fs::write(
        &rules,
        EVEN_BEATS.replace(
            "if: \"event.payload.beat % 2 == 0\"",
            "if: \"event.id > 0\"",
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        fixture
            .command()
            .env("SWITCHBOARD_URL", &daemon.url)
            .env("SWITCHBOARD_TOKEN", &daemon.token)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--json",
        "events",
        "tail",
        "--no-follow",
        "--type",
        "echo.heartbeat",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout.lines().next().unwrap().to_owned();
    let logged: Value = serde_json::from_str(&line).unwrap();
    assert!(logged["id"].is_i64() && logged["at"].is_i64(), "{line}");
    let beat = logged["payload"]["beat"].as_i64().unwrap();
    let event = dir.join("event.json");
    let test = |event_text: &str| {
        std::fs::write(&event, event_text).unwrap();
        run(&[
            "rules",
            "test",
            rules.to_str().unwrap(),
            "--event",
            event.to_str().unwrap(),
        ])
    };
    for text in [
        format!("{line}\n"),
        // `rules trace --json` wraps it in `event`.
        json!({ "event": logged, "runs": [] }).to_string(),
    ] {
        let out = test(&text);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("MATCH  even-beats"), "{stdout}");
        assert!(
            stdout.contains(&format!("times ten: {}", beat * 10)),
            "{stdout}"
        );
    }
    // The whole tail is several events: say so.
    let out = test(&stdout);
    if stdout.lines().count() > 1 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("keep the one to test"), "{stderr}");
    }
    // A field the event log does not print is still refused, by name.
    let out = test(&json!({"type": "echo.heartbeat", "payload": {}, "bogus": 1}).to_string());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bogus"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The acceptance story: a signed webhook arrives, the condition filters,
/// two templated actions run (one of them an HTTP request to a service on
/// this machine), and the chain is visible through the API.
async fn a_signed_webhook_runs_a_rule_end_to_end(db: Db) {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink_log = received.clone();
    let app = axum::Router::new().route(
        "/thanks",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let log = sink_log.clone();
            async move {
                log.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = format!("http://{}/thanks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (_fixture, daemon, _ticker, file) = rules_daemon(db, "rules: []\n", 60_000).await;
    const SECRET: &str = "donation-service-secret";
    let hook = daemon
        .create_connection(json!({
            "connector": "webhook", "label": "donations",
            "settings": {"name": "donations", "auth": "hmac_sha256"},
            "secrets": {"secret": SECRET}
        }))
        .await;
    let machine = daemon
        .create_connection(json!({
            "connector": "system", "label": "machine",
            "settings": {"http_allow": ["127.0.0.1"]}
        }))
        .await;
    daemon.wait_status(&hook, "connected").await;
    daemon.wait_status(&machine, "connected").await;
    let rules = format!(
        r#"
rules:
  - name: donation-thanks
    on: {{ event: webhook.received, connection: donations }}
    if: "event.payload.body.amount >= 5"
    do:
      - action: echo.say
        connection: ticker
        params:
          message: "Thanks {{{{ event.payload.body.name }}}} for {{{{ event.payload.body.amount }}}}!"
      - action: system.http_request
        connection: machine
        params:
          method: POST
          url: "{sink}"
          json:
            name: "{{{{ event.payload.body.name }}}}"
            amount: "{{{{ event.payload.body.amount }}}}"
"#
    );
    write_rules(&daemon, &file, &rules).await;

    let send = |body: Value| {
        let body = body.to_string();
        let signature = switchboard_connector_system::auth::sign_hmac_sha256(
            SECRET.as_bytes(),
            body.as_bytes(),
        );
        daemon.send(
            daemon
                .http
                .post(format!("{}/hooks/donations", daemon.url))
                .header("content-type", "application/json")
                .header("X-Hub-Signature-256", signature)
                .body(body),
        )
    };
    let small = send(json!({"name": "Bo", "amount": 2})).await;
    assert_eq!(small.status, StatusCode::ACCEPTED, "{}", small.body);
    let big = send(json!({"name": "Ada", "amount": 10})).await;
    assert_eq!(big.status, StatusCode::ACCEPTED, "{}", big.body);

    let runs = wait_for(
        &daemon,
        "/rules/runs?rule=donation-thanks&state=succeeded",
        "the rule run succeeds",
        |r| count(r) == 1,
    )
    .await;
    let trace = daemon
        .get(&format!("/events/{}/trace", runs[0]["event_id"]))
        .await
        .body;
    assert_eq!(trace["event"]["type"], "webhook.received");
    assert_eq!(trace["event"]["payload"]["body"]["name"], "Ada");
    let jobs = trace["runs"][0]["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{trace}");
    assert_eq!(jobs[0]["result"]["message"], "echo: Thanks Ada for 10!");
    assert_eq!(
        jobs[1]["params"]["json"],
        json!({"name": "Ada", "amount": 10})
    );
    assert_eq!(jobs[1]["result"]["status"], 200, "{trace}");
    assert_eq!(
        *received.lock().unwrap(),
        vec![json!({"name": "Ada", "amount": 10})]
    );
    // The small donation was filtered by the condition: no run at all.
    assert_eq!(
        count(&daemon.get("/rules/runs?rule=donation-thanks").await.body),
        1
    );
}

on_both_databases!(a_signed_webhook_runs_a_rule_end_to_end);
