//! The CLI verbs against a running daemon, and `switchboard demo`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{BIN, Db, Fixture};

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
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env_remove("SWITCHBOARD_DATA_DIR")
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .env("SWITCHBOARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
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
