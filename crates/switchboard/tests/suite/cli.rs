//! The CLI verbs against a running daemon, and `switchboard demo`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_sim::obs::{ObsSim, ObsSimConfig};
use switchboard_sim::twitch::{TwitchSim, TwitchSimConfig};
use switchboard_sim::x::{XSim, XSimConfig};

use crate::common::{Db, Fixture, Probe};

fn run(fixture: &Fixture, url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let output = fixture
        .command()
        .env("SWITCHBOARD_URL", url)
        .env("SWITCHBOARD_TOKEN", token)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_verbs_work_against_a_running_daemon() {
    let mut fixture = Fixture::new(Db::Sqlite).await;
    let daemon = fixture.start().await;
    let (url, token) = (daemon.url.clone(), daemon.token.clone());
    let secret_file = fixture.data_dir().join("token.txt");
    std::fs::write(&secret_file, "cli-secret\n").unwrap();
    let secret_arg = format!("token=file:{}", secret_file.display());

    let (ok, out, err) = run(
        &fixture,
        &url,
        &token,
        &[
            "--json",
            "connections",
            "add",
            "echo",
            "--label",
            "from-cli",
            "--set",
            "greeting=hey",
            "--secret",
            &secret_arg,
        ],
    );
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["settings"]["greeting"], "hey");
    assert_eq!(created["secrets_set"][0], "token");
    daemon.wait_status(&id, "connected").await;

    let (ok, out, _) = run(&fixture, &url, &token, &["connections", "list"]);
    assert!(ok);
    assert!(
        out.contains("from-cli") && out.contains("connected"),
        "{out}"
    );

    let (ok, out, err) = run(
        &fixture,
        &url,
        &token,
        &[
            "--json",
            "jobs",
            "submit",
            &id,
            "echo.say",
            "--params",
            r#"{"message":"cli"}"#,
        ],
    );
    assert!(ok, "{err}");
    let job: Value = serde_json::from_str(&out).unwrap();
    let job_id = job["id"].as_str().unwrap().to_owned();
    let done = daemon.wait_job(&job_id).await;
    assert_eq!(done["result"]["message"], "hey cli");

    let (ok, out, _) = run(&fixture, &url, &token, &["jobs", "show", &job_id]);
    assert!(ok);
    assert!(
        out.contains("succeeded") && out.contains("hey cli"),
        "{out}"
    );
    let (ok, out, _) = run(&fixture, &url, &token, &["jobs", "list"]);
    assert!(ok && out.contains("echo.say"), "{out}");

    let (ok, out, _) = run(
        &fixture,
        &url,
        &token,
        &["--json", "events", "tail", "--no-follow", "--type", "job."],
    );
    assert!(ok);
    let kinds: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["job.queued", "job.finished"]);

    // Errors are clear and exit non-zero.
    let (ok, _, err) = run(
        &fixture,
        &url,
        &token,
        &[
            "connections",
            "add",
            "echo",
            "--label",
            "bad",
            "--set",
            "work_ms=\"slow\"",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("422") && err.contains("settings.work_ms"),
        "{err}"
    );
    let (ok, _, err) = run(&fixture, &url, "sb_wrong", &["connections", "list"]);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = run(
        &fixture,
        &url,
        &token,
        &[
            "connections",
            "add",
            "echo",
            "--label",
            "x",
            "--secret",
            "token=plain-value",
        ],
    );
    assert!(!ok && err.contains("shell history"), "{err}");

    let (ok, out, _) = run(&fixture, &url, &token, &["connections", "remove", &id]);
    assert!(ok && out.contains("removed"), "{out}");
    let (ok, out, _) = run(&fixture, &url, &token, &["--json", "connections", "list"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!([])
    );
    assert!(!fixture.output().contains("cli-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_starts_with_sample_connections_jobs_and_a_working_x_flow() {
    let mut child = crate::common::demo_command(None).spawn().unwrap();
    let rx = crate::common::stdout_lines(&mut child);
    let (mut url, mut token, mut authorize_url) = (String::new(), String::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if let Some(rest) = line.split("running at ").nth(1) {
            url = rest.trim().to_owned();
        }
        if let Some(rest) = line
            .split("token:")
            .nth(1)
            .filter(|_| line.trim_start().starts_with("token:"))
        {
            token = rest.trim().to_owned();
        }
        if line.contains("/i/oauth2/authorize?") {
            authorize_url = line.trim().to_owned();
        }
        if line.contains("demo ready") {
            break;
        }
    }
    assert!(
        url.starts_with("http://") && token.starts_with("sb_"),
        "url {url:?} token {token:?}"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let mut jobs_done = 0;
    for _ in 0..100 {
        let jobs: Value = http
            .get(format!("{url}/api/v1/jobs?state=succeeded"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jobs_done = jobs.as_array().unwrap().len();
        if jobs_done == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        jobs_done, 4,
        "the demo's sample jobs (3 echo, 1 X post) ran"
    );
    let list_connections = || async {
        http.get(format!("{url}/api/v1/connections"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let connections = list_connections().await;
    let status_of = |connections: &Value, label: &str| {
        connections
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["label"] == label)
            .unwrap_or_else(|| panic!("no {label} in {connections}"))["status"]["status"]
            .clone()
    };
    for label in ["demo-echo", "demo-x", "demo-x-friend"] {
        assert_eq!(status_of(&connections, label), "connected", "{label}");
    }
    assert_eq!(status_of(&connections, "demo-x-oauth2"), "needs_reauth");
    // The printed link runs the OAuth 2.0 flow against the X simulator; the
    // connection goes live with no restart.
    assert!(authorize_url.starts_with("http://"), "{authorize_url:?}");
    let page = http
        .get(format!("{authorize_url}&auto_approve=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "{}", page.text().await.unwrap());
    let mut connected = false;
    for _ in 0..100 {
        let connections = list_connections().await;
        if status_of(&connections, "demo-x-oauth2") == "connected" {
            connected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(connected, "the OAuth 2.0 demo account connected");

    // The sample rule answers a mention: the friend account mentions the
    // demo account, the mention poller sees it, the rule replies.
    let connections = list_connections().await;
    let id_of = |label: &str| {
        connections
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["label"] == label)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mention = http
        .post(format!("{url}/api/v1/jobs"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "connection_id": id_of("demo-x-friend"),
            "action": "x.post",
            "params": {"text": "hey @switchboard_demo, switchboard works"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(mention.status(), 201);
    // The first succeeded run of a sample rule (waiting up to 30 s).
    let first_run = |rule: &'static str| {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            for _ in 0..300 {
                let runs: Value = http
                    .get(format!(
                        "{url}/api/v1/rules/runs?rule={rule}&state=succeeded"
                    ))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if runs.as_array().is_some_and(|r| !r.is_empty()) {
                    return runs[0].clone();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Value::Null
        }
    };
    let replied = first_run("reply-to-mentions").await;
    assert_eq!(
        replied["actions"][0]["params"]["text"], "Thanks for the mention! (reply #1)",
        "the sample rule replied to the mention: {replied}"
    );
    // Twitch: the demo account is live with pasted tokens, a scripted
    // chatter says `!hello` and the sample rule answers in chat.
    assert_eq!(status_of(&connections, "demo-twitch"), "connected");
    let greeted = first_run("hello-chat").await;
    assert!(
        greeted["actions"][0]["params"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Hi ")),
        "the sample rule answered !hello in Twitch chat: {greeted}"
    );
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "demo stops cleanly on Ctrl-C: {status}");
}

/// Like [`run`], and no verb may panic.
fn run_env(fixture: &Fixture, url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let (ok, out, err) = run(fixture, url, token, args);
    assert!(
        !err.contains("panicked"),
        "the CLI panicked on {args:?}: {err}"
    );
    (ok, out, err)
}

/// Every verb that takes a connection takes its label too; `connections
/// set` merges settings and restarts in place; `connections test` runs each
/// connector's own check against the simulators.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_named_by_label_changed_with_set_and_checked_with_test() {
    let x = XSim::start(XSimConfig::default()).await.unwrap();
    let twitch = TwitchSim::start(TwitchSimConfig::default()).await.unwrap();
    let obs = ObsSim::start(ObsSimConfig::default()).await.unwrap();
    let probe = Probe::start(&["good-token"]).await;
    let mut fixture = Fixture::new(Db::Sqlite)
        .await
        .with_env("SWITCHBOARD_SERVICES__X_API", x.base_url())
        .with_env("SWITCHBOARD_SERVICES__TWITCH_ID", twitch.base_url())
        .with_env("SWITCHBOARD_SERVICES__TWITCH_HELIX", &twitch.helix_url())
        .with_env("SWITCHBOARD_SERVICES__TWITCH_IRC", &twitch.irc_url())
        .with_env(
            "SWITCHBOARD_SERVICES__TWITCH_EVENTSUB",
            &twitch.eventsub_url(),
        );
    let daemon = fixture.start().await;
    let (url, token) = (daemon.url.clone(), daemon.token.clone());
    let cli = |args: &[&str]| run_env(&fixture, &url, &token, args);

    let greeter = daemon
        .create_connection(json!({
            "connector": "echo", "label": "greeter",
            "settings": { "greeting": "hi", "probe_url": probe.url },
            "secrets": { "token": "good-token" }
        }))
        .await;
    daemon.wait_status(&greeter, "connected").await;

    // A label names the connection wherever an id does.
    for verb in ["status", "show"] {
        let (ok, out, err) = cli(&["connections", verb, "greeter"]);
        assert!(ok && out.contains(&greeter), "{verb}: {out}{err}");
    }
    let (ok, out, err) = cli(&[
        "--json",
        "jobs",
        "submit",
        "greeter",
        "echo.say",
        "--params",
        r#"{"message":"there"}"#,
    ]);
    assert!(ok, "{err}");
    let job: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(job["connection_id"], greeter.as_str());
    assert_eq!(
        daemon.wait_job(job["id"].as_str().unwrap()).await["result"]["message"],
        "hi there"
    );
    let (ok, out, _) = cli(&["--json", "jobs", "list", "--connection", "greeter"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // `set` merges, parses JSON values, and restarts in place.
    let (ok, out, err) = cli(&[
        "--json",
        "connections",
        "set",
        "greeter",
        "greeting=hello there",
        "work_ms=5",
    ]);
    assert!(ok, "{err}");
    let updated: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(updated["settings"]["greeting"], "hello there");
    assert_eq!(updated["settings"]["work_ms"], 5);
    assert_eq!(
        updated["settings"]["probe_url"],
        probe.url.as_str(),
        "merged, not replaced"
    );
    daemon.wait_status(&greeter, "connected").await;
    let done = daemon
        .submit(&greeter, "echo.say", json!({ "message": "again" }))
        .await;
    let done = daemon.wait_job(done["id"].as_str().unwrap()).await;
    assert_eq!(done["result"]["message"], "hello there again");
    // Checked whole by the daemon: a bad value changes nothing.
    let (ok, _, err) = cli(&["connections", "set", "greeter", "work_ms=\"slow\""]);
    assert!(
        !ok && err.contains("422") && err.contains("settings.work_ms"),
        "{err}"
    );
    // `null` removes a key.
    let (ok, out, err) = cli(&[
        "--json",
        "connections",
        "set",
        greeter.as_str(),
        "greeting=null",
    ]);
    assert!(ok, "{err}");
    let updated: Value = serde_json::from_str(&out).unwrap();
    assert!(updated["settings"].get("greeting").is_none(), "{updated}");
    assert_eq!(updated["settings"]["work_ms"], 5);
    daemon.wait_status(&greeter, "connected").await;

    // `test`: echo calls its probe with the current token.
    let probes_before = probe.seen.lock().unwrap().len();
    let (ok, out, err) = cli(&["connections", "test", "greeter"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("ok:") && out.contains("status: 200"),
        "{out}"
    );
    assert_eq!(
        probe.seen.lock().unwrap().len(),
        probes_before + 1,
        "the probe was called"
    );
    // A rejected token: the connection needs re-authorization, and `test`
    // says so rather than checking.
    let bad = fixture.data_dir().join("bad-token");
    std::fs::write(&bad, "bad-token").unwrap();
    let (ok, _, err) = cli(&[
        "connections",
        "set-secret",
        "greeter",
        &format!("token=file:{}", bad.display()),
    ]);
    assert!(ok, "{err}");
    daemon.wait_status(&greeter, "needs_reauth").await;
    let (ok, out, _) = cli(&["--json", "connections", "test", "greeter"]);
    assert!(!ok, "a failed test exits non-zero");
    let check: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(check["ok"], false);
    assert_eq!(check["status"], "needs_reauth");
    assert!(
        check["detail"].as_str().unwrap().contains("not checked"),
        "{check}"
    );

    // X: `users/me`.
    let x_id = daemon
        .create_connection(json!({
            "connector": "x", "label": "x-main",
            "settings": { "auth": "oauth1" },
            "secrets": {
                "api_key": "sim-consumer-key",
                "api_secret": "sim-consumer-secret",
                "access_token": "sim-demo-oauth1-token",
                "access_token_secret": "sim-demo-oauth1-secret",
            }
        }))
        .await;
    daemon.wait_status(&x_id, "connected").await;
    let (ok, out, err) = cli(&["--json", "connections", "test", "x-main"]);
    assert!(ok, "{out}{err}");
    let check: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(check["ok"], true, "{check}");
    assert!(
        check["result"]["username"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "{check}"
    );
    assert!(x.requests().iter().any(|r| r.path == "/2/users/me"));

    // OBS: `GetVersion`.
    let obs_id = daemon
        .create_connection(json!({
            "connector": "obs", "label": "studio",
            "settings": { "host": "127.0.0.1", "port": obs.port() }
        }))
        .await;
    daemon.wait_status(&obs_id, "connected").await;
    let (ok, out, err) = cli(&["connections", "test", "studio"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("obs_version: 30.2.3") && out.contains("obs_websocket_version: 5.5.2"),
        "{out}"
    );

    // Twitch: token validation.
    let twitch_id = daemon
        .create_connection(json!({
            "connector": "twitch", "label": "stream",
            "settings": { "client_id": "sim-twitch-client", "chat": { "enabled": false } },
            "secrets": {
                "client_secret": "sim-twitch-secret",
                "access_token": "sim-demo-twitch-access",
                "refresh_token": "sim-demo-twitch-refresh",
            }
        }))
        .await;
    daemon.wait_status(&twitch_id, "connected").await;
    let (ok, out, err) = cli(&["--json", "connections", "test", "stream"]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["result"]["login"],
        "simstreamer"
    );

    // A disabled connection is not checked; the answer says why.
    daemon
        .create_connection(json!({ "connector": "echo", "label": "resting", "enabled": false }))
        .await;
    let (ok, out, _) = cli(&["connections", "test", "resting"]);
    assert!(
        !ok && out.starts_with("FAILED: not checked") && out.contains("disconnected"),
        "{out}"
    );

    // A label two connections share (of different connectors), or none
    // has, is refused with a hint.
    daemon
        .create_connection(json!({
            "connector": "webhook", "label": "resting", "enabled": false,
            "settings": { "name": "resting", "auth": "none" }
        }))
        .await;
    let (ok, _, err) = cli(&["connections", "restart", "resting"]);
    assert!(
        !ok && err.contains("2 connections are labelled `resting`"),
        "{err}"
    );
    let (ok, _, err) = cli(&["connections", "remove", "nobody"]);
    assert!(
        !ok && err.contains("no connection with id or label `nobody`"),
        "{err}"
    );
    let (ok, out, err) = cli(&["connections", "remove", "x-main"]);
    assert!(ok && out.contains(&x_id), "{err}");
    assert_eq!(
        daemon.get(&format!("/connections/{x_id}")).await.status,
        404
    );
}

/// What came from the daemon is escaped on a terminal: a webhook body or
/// a job result with control and bidi characters cannot fake lines or
/// clear the screen; `--json` stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_from_the_daemon_is_escaped_on_the_terminal() {
    let mut fixture = Fixture::new(Db::Sqlite).await;
    let daemon = fixture.start().await;
    let (url, token) = (daemon.url.clone(), daemon.token.clone());
    let cli = |args: &[&str]| run_env(&fixture, &url, &token, args);
    let hook = daemon
        .create_connection(json!({
            "connector": "webhook", "label": "inbox",
            "settings": { "name": "inbox", "auth": "none" }
        }))
        .await;
    daemon.wait_status(&hook, "connected").await;
    let crafted = "line one\n#999 fake event\u{1b}[2J\u{202e}txt.exe\u{7}";
    let delivered = daemon
        .http
        .post(format!("{}/hooks/inbox", daemon.url))
        .header("content-type", "text/plain")
        .body(crafted)
        .send()
        .await
        .unwrap();
    assert!(delivered.status().is_success(), "{}", delivered.status());
    let (ok, out, err) = cli(&["events", "tail", "--no-follow", "--type", "webhook."]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "one event, one line: {out}");
    assert!(
        !out.contains(['\u{1b}', '\u{202e}', '\u{7}']),
        "raw control characters printed: {out:?}"
    );
    assert!(out.contains(r"\u{202e}txt.exe"), "{out}");
    // --json is the exact JSON.
    let (ok, out, _) = cli(&[
        "--json",
        "events",
        "tail",
        "--no-follow",
        "--type",
        "webhook.",
    ]);
    assert!(ok);
    let event: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(event["payload"]["body"], crafted);

    let echo = daemon
        .create_connection(json!({ "connector": "echo", "label": "echo" }))
        .await;
    daemon.wait_status(&echo, "connected").await;
    let job = daemon
        .submit(&echo, "echo.say", json!({ "message": crafted }))
        .await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    daemon.wait_job(&job_id).await;
    let (ok, out, _) = cli(&["jobs", "show", &job_id]);
    assert!(ok);
    assert!(!out.contains(['\u{1b}', '\u{202e}', '\u{7}']), "{out:?}");
    assert!(out.contains(r"\u{202e}txt.exe"), "{out}");
}

/// `switchboard connections list | head -1`: the reader leaves early and the
/// CLI ends quietly, without a panic or a backtrace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_cli_quietly() {
    let mut fixture = Fixture::new(Db::Sqlite).await;
    let daemon = fixture.start().await;
    for i in 0..3 {
        daemon
            .create_connection(
                json!({ "connector": "echo", "label": format!("echo-{i}"), "enabled": false }),
            )
            .await;
    }
    let mut child = fixture
        .command()
        .env("SWITCHBOARD_URL", &daemon.url)
        .env("SWITCHBOARD_TOKEN", &daemon.token)
        .env("RUST_BACKTRACE", "1")
        .args(["events", "tail", "--no-follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read nothing and close the pipe: every write the CLI makes fails.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe") && stderr.is_empty(),
        "stderr: {stderr}"
    );
    let mut child = fixture
        .command()
        .env("SWITCHBOARD_URL", &daemon.url)
        .env("SWITCHBOARD_TOKEN", &daemon.token)
        .env("RUST_BACKTRACE", "1")
        .args(["connections", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "stderr: {stderr}");
}
