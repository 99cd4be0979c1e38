//! `switchboard backup` while the daemon runs, `switchboard restore` into an
//! empty data dir, the key that goes with it (or not), the PostgreSQL way
//! with `pg_dump`/`pg_restore`, and `demo --data-dir` creating its directory.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::{Daemon, Db, Fixture, Probe};

/// A real 1x1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82";
const TOKEN: &str = "backup-echo-token";

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run(fixture: &Fixture, args: &[&str]) -> Output {
    fixture.command().args(args).output().unwrap()
}

/// Everything a user keeps in a daemon: connections with secrets, a rule,
/// a variable, an archive record, a webhook delivery, an agent, media and
/// a finished job. Returns the echo connection's id.
async fn populate(fixture: &Fixture, daemon: &Daemon, probe: &Probe) -> String {
    let echo = daemon
        .create_connection(json!({
            "connector": "echo", "label": "kept",
            "settings": { "probe_url": probe.url },
            "secrets": { "token": TOKEN },
        }))
        .await;
    daemon.wait_status(&echo, "connected").await;
    let hook = daemon
        .create_connection(json!({
            "connector": "webhook", "label": "gh",
            "settings": {"name": "gh", "auth": "hmac_sha256"},
            "secrets": {"secret": "gh-hook-secret-value"}
        }))
        .await;
    daemon.wait_status(&hook, "connected").await;
    // An unsigned delivery is refused, and recorded as such.
    let refused = daemon
        .send(
            daemon
                .http
                .post(format!("{}/hooks/gh", daemon.url))
                .header("content-type", "application/json")
                .body(r#"{"unsigned":true}"#),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);

    let rule = daemon
        .post(
            "/rules",
            json!({
                "name": "kept-rule",
                "on": {"event": "echo.heartbeat"},
                "do": [{"action": "echo.say", "connection": echo, "params": {"message": "beat"}}],
            }),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.body);
    let var = daemon
        .put("/rules/vars/kept_var", json!({"value": {"count": 7}}))
        .await;
    assert!(var.status.is_success(), "{}", var.body);
    let agent = daemon
        .post(
            "/agents",
            json!({"name": "kept-agent", "connections": [echo]}),
        )
        .await;
    assert_eq!(agent.status, StatusCode::CREATED, "{}", agent.body);
    let media = daemon
        .send(
            daemon
                .http
                .post(daemon.api("/media?name=dot.png"))
                .bearer_auth(&daemon.token)
                .header("content-type", "application/octet-stream")
                .body(PNG.to_vec()),
        )
        .await;
    assert_eq!(media.status, StatusCode::CREATED, "{}", media.body);
    let job = daemon
        .submit(&echo, "echo.say", json!({"message": "before the backup"}))
        .await;
    assert_eq!(
        daemon.wait_job(job["id"].as_str().unwrap()).await["state"],
        "succeeded"
    );
    // The archive is written by connectors (Twitch); one record, the way
    // the store keeps it, stands in for them here.
    let mut conn = sqlx::SqliteConnection::connect(&fixture.database_url)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO archive_records (id, connection_id, kind, record_key, occurred_at, recorded_at, record) \
         VALUES ('rec-1', $1, 'followers', 'follow-1', 1700000000000, 1700000000001, '{\"user_login\":\"kept_follower\"}')",
    )
    .bind(&echo)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    echo
}

/// What a restore must bring back, read through the API. Status fields
/// (live state) are left out.
async fn snapshot(daemon: &Daemon, echo: &str, hook: &str) -> Value {
    let get = |path: String| async move {
        let reply = daemon.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        reply.body
    };
    let mut connections = get("/connections".into()).await;
    for c in connections.as_array_mut().unwrap() {
        let c = c.as_object_mut().unwrap();
        c.retain(|k, _| {
            [
                "id",
                "connector",
                "label",
                "enabled",
                "settings",
                "created_at",
            ]
            .contains(&k.as_str())
        });
    }
    let mut deliveries = get(format!("/webhooks/{hook}/deliveries")).await;
    assert_eq!(deliveries.as_array().unwrap().len(), 1, "{deliveries}");
    for d in deliveries.as_array_mut().unwrap() {
        d.as_object_mut().unwrap().remove("event_id");
    }
    let mut agents = get("/agents".into()).await;
    for a in agents.as_array_mut().unwrap() {
        a.as_object_mut().unwrap().remove("last_used_at");
    }
    let jobs = get("/jobs?state=succeeded".into()).await;
    let jobs: Vec<Value> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["params"]["message"] == "before the backup")
        .map(|j| json!([j["id"], j["action"], j["state"], j["result"]]))
        .collect();
    json!({
        "connections": connections,
        "rules": get("/rules".into()).await,
        "vars": get("/rules/vars".into()).await,
        "agents": agents,
        "media": get("/media".into()).await,
        "archive": get(format!("/connections/{echo}/archive/followers")).await,
        "deliveries": deliveries,
        "jobs": jobs,
    })
}

fn id_of(snapshot: &Value, label: &str) -> String {
    snapshot["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == label)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Back up a busy daemon (with the key), restore into a new data dir,
/// start there: everything is back, and the secrets still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_running_then_restore_brings_everything_back() {
    let probe = Probe::start(&[TOKEN]).await;
    let mut source = Fixture::new(Db::Sqlite).await;
    let daemon = source.start().await;
    let echo = populate(&source, &daemon, &probe).await;
    let hook_id = daemon
        .get("/connections")
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == "gh")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = snapshot(&daemon, &echo, &hook_id).await;
    assert_eq!(before["archive"].as_array().unwrap().len(), 1, "{before}");
    assert_eq!(before["jobs"].as_array().unwrap().len(), 1, "{before}");

    // The daemon keeps working while the backup is taken: jobs go in
    // before, during and after, and all of them finish.
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("switchboard.backup");
    let mut pending = Vec::new();
    for i in 0..5 {
        pending.push(
            daemon
                .submit(&echo, "echo.say", json!({"message": format!("during {i}")}))
                .await,
        );
    }
    let output = run(&source, &["backup", file.to_str().unwrap(), "--with-key"]);
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("contains the master key") && stderr.contains("every secret"),
        "--with-key warns: {stderr}"
    );
    pending.push(
        daemon
            .submit(&echo, "echo.say", json!({"message": "after"}))
            .await,
    );
    for job in &pending {
        assert_eq!(
            daemon.wait_job(job["id"].as_str().unwrap()).await["state"],
            "succeeded"
        );
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "a backup holds sealed secrets and here the key"
        );
    }
    // A backup never overwrites a file.
    let again = run(&source, &["backup", file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));

    // `serve` would prefer a SWITCHBOARD_MASTER_KEY that does not open
    // the backup to the key inside it: refused before anything is written.
    let elsewhere = Fixture::new(Db::Sqlite).await;
    let refused = elsewhere
        .command()
        .args(["restore", file.to_str().unwrap()])
        .env(
            "SWITCHBOARD_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("does not open this vault"),
        "{}",
        text(&refused)
    );
    assert_eq!(std::fs::read_dir(elsewhere.data_dir()).unwrap().count(), 0);

    // Restore into a new, empty data dir; start; compare.
    let mut target = Fixture::new(Db::Sqlite).await;
    let output = run(&target, &["restore", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let restored_key = target.data_dir().join("master.key");
    assert_eq!(
        std::fs::read_to_string(&restored_key).unwrap(),
        std::fs::read_to_string(source.data_dir().join("master.key")).unwrap()
    );
    probe.seen.lock().unwrap().clear();
    target.token = Some(daemon.token.clone());
    let restored = target.start().await;
    assert!(
        !restored.output().contains("store it now"),
        "the restored admin token is kept, no new one is made"
    );
    restored.wait_status(&echo, "connected").await;
    assert!(
        probe
            .seen
            .lock()
            .unwrap()
            .contains(&format!("Bearer {TOKEN}")),
        "the restored secret opened and was used"
    );
    let after = snapshot(&restored, &echo, &hook_id).await;
    assert_eq!(after, before);
    assert_eq!(id_of(&after, "kept"), echo);
    // Media bytes came along, and the restored daemon works.
    let id = after["media"][0]["id"].as_str().unwrap();
    let bytes = restored
        .http
        .get(restored.api(&format!("/media/{id}/content")))
        .bearer_auth(&restored.token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), PNG);
    let job = restored
        .submit(&echo, "echo.say", json!({"message": "restored"}))
        .await;
    assert_eq!(
        restored.wait_job(job["id"].as_str().unwrap()).await["state"],
        "succeeded"
    );
    restored.stop();
    daemon.stop();
}

/// Without `--with-key`, the key stays out of the file; a restore checks
/// the key it is given (`--key-file`, or SWITCHBOARD_MASTER_KEY) the way a
/// start does, and a start with the wrong key is refused as always.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_without_the_key_needs_the_right_one() {
    let probe = Probe::start(&[TOKEN]).await;
    let mut source = Fixture::new(Db::Sqlite).await;
    let daemon = source.start().await;
    let echo = populate(&source, &daemon, &probe).await;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("nokey.tar");
    let output = run(&source, &["backup", file.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["manifest"]["master_key"], false, "{report}");
    assert_eq!(
        report["manifest"]["media_files"], 2,
        "a file and its index entry: {report}"
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("warning"));
    let key = std::fs::read_to_string(source.data_dir().join("master.key")).unwrap();
    let archive = std::fs::read(&file).unwrap();
    assert!(
        !archive
            .windows(key.trim().len())
            .any(|w| w == key.trim().as_bytes()),
        "the key is not in the file"
    );
    daemon.stop();

    // A wrong key file: refused like a start with the wrong key, nothing restored.
    let mut target = Fixture::new(Db::Sqlite).await;
    let wrong = out.path().join("wrong.key");
    std::fs::write(&wrong, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let refused = run(
        &target,
        &[
            "restore",
            file.to_str().unwrap(),
            "--key-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("does not open this vault"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        std::fs::read_dir(target.data_dir()).unwrap().count(),
        0,
        "nothing restored"
    );
    let refused = target
        .command()
        .args(["restore", file.to_str().unwrap()])
        .env(
            "SWITCHBOARD_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("does not open this vault"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        std::fs::read_dir(target.data_dir()).unwrap().count(),
        0,
        "nothing restored"
    );

    // No key at all: restored, and the start says what is missing; with a
    // wrong key the start is refused; with the right one every secret opens.
    let output = run(&target, &["restore", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("not in the backup"),
        "{}",
        text(&output)
    );
    target.token = Some(daemon_token(&source));
    let missing = target.try_start().await.err().expect("no key, no start");
    assert!(
        missing.contains("master key file") && missing.contains("is missing"),
        "{missing}"
    );
    target.env.push((
        "SWITCHBOARD_MASTER_KEY".into(),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
    ));
    let wrong_start = target
        .try_start()
        .await
        .err()
        .expect("a wrong key is refused");
    assert!(
        wrong_start.contains("does not open this vault"),
        "{wrong_start}"
    );
    target.env.pop();
    let refused = run(&target, &["restore", file.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains(&format!(
            "refusing to restore into {}",
            target.data_dir().display()
        )),
        "a non-empty dir is refused by name: {}",
        text(&refused)
    );
    std::fs::copy(
        source.data_dir().join("master.key"),
        target.data_dir().join("master.key"),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            target.data_dir().join("master.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    probe.seen.lock().unwrap().clear();
    let restored = target.start().await;
    restored.wait_status(&echo, "connected").await;
    assert!(
        probe
            .seen
            .lock()
            .unwrap()
            .contains(&format!("Bearer {TOKEN}"))
    );
    restored.stop();
}

fn daemon_token(fixture: &Fixture) -> String {
    fixture.token.clone().expect("the fixture started once")
}

/// `backup` and `restore` refuse what they must not touch, by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_refuse_wrong_places_and_files() {
    let empty = Fixture::new(Db::Sqlite).await;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("b.tar");
    let output = run(&empty, &["backup", file.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("no switchboard vault"),
        "{}",
        text(&output)
    );
    assert!(text(&output).contains(&empty.data_dir().display().to_string()));
    assert!(!file.exists());
    assert_eq!(std::fs::read_dir(empty.data_dir()).unwrap().count(), 0);

    let bogus = out.path().join("bogus.tar");
    std::fs::write(&bogus, b"not a tar file at all").unwrap();
    let output = run(&empty, &["restore", bogus.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("is not a switchboard backup"),
        "{}",
        text(&output)
    );
    assert_eq!(std::fs::read_dir(empty.data_dir()).unwrap().count(), 0);
}

/// PostgreSQL: `pg_dump` and `pg_restore` (as the README says) plus the
/// master key bring everything back. Skipped where pg_dump is not installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_round_trip_with_pg_dump_and_pg_restore() {
    if Command::new("pg_dump").arg("--version").output().is_err() {
        eprintln!("pg_dump is not installed: skipping");
        return;
    }
    let probe = Probe::start(&[TOKEN]).await;
    let mut source = Fixture::new(Db::Postgres).await;
    let daemon = source.start().await;
    let echo = daemon
        .create_connection(json!({
            "connector": "echo", "label": "kept",
            "settings": { "probe_url": probe.url },
            "secrets": { "token": TOKEN },
        }))
        .await;
    daemon.wait_status(&echo, "connected").await;
    let rule = daemon
        .post(
            "/rules",
            json!({"name": "kept-rule", "on": {"event": "echo.heartbeat"},
                   "do": [{"action": "echo.say", "connection": echo, "params": {"message": "beat"}}]}),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.body);
    let rules_before = daemon.get("/rules").await.body;

    // While the daemon runs: pg_dump takes a consistent snapshot.
    let out = tempfile::tempdir().unwrap();
    let dump = out.path().join("switchboard.pgdump");
    let status = Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(&dump)
        .arg(&source.database_url)
        .status()
        .unwrap();
    assert!(status.success());
    daemon.stop();

    let mut target = Fixture::new(Db::Postgres).await;
    let status = Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(&target.database_url)
        .arg(&dump)
        .status()
        .unwrap();
    assert!(status.success());
    copy_key(source.data_dir(), target.data_dir());
    target.token = Some(daemon_token(&source));
    probe.seen.lock().unwrap().clear();
    let restored = target.start().await;
    restored.wait_status(&echo, "connected").await;
    assert!(
        probe
            .seen
            .lock()
            .unwrap()
            .contains(&format!("Bearer {TOKEN}"))
    );
    assert_eq!(restored.get("/rules").await.body, rules_before);
    restored.stop();

    // The same dump with another key is refused at start.
    let mut wrong = Fixture::new(Db::Postgres).await;
    let status = Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(&wrong.database_url)
        .arg(&dump)
        .status()
        .unwrap();
    assert!(status.success());
    wrong.env.push((
        "SWITCHBOARD_MASTER_KEY".into(),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
    ));
    wrong.token = Some(daemon_token(&source));
    let refused = wrong
        .try_start()
        .await
        .err()
        .expect("a wrong key is refused");
    assert!(refused.contains("does not open this vault"), "{refused}");
}

fn copy_key(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from.join("master.key"), to.join("master.key")).unwrap();
    std::fs::set_permissions(
        to.join("master.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

/// `demo --data-dir DIR` creates DIR (mode 0700) when it does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_creates_a_data_dir_that_does_not_exist() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("new").join("demo-data");
    let mut child = crate::common::demo_command(Some(&dir))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = crate::common::stdout_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = false;
    while Instant::now() < deadline && !ready {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            ready = line.contains("demo ready");
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("demo exited with {status}: {err}");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "the demo came up");
    assert!(dir.is_dir());
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(dir.join("switchboard.db").is_file());
    assert!(dir.join("rules.yaml").is_file());
}
