//! The media store over HTTP (upload, dedupe, metadata, content, refusals)
//! and actions sent to several connections at once (`POST /actions/{action}`),
//! plus their CLI verbs.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Daemon, Db, Fixture, Reply};
use crate::on_both_databases;

on_both_databases!(
    media_round_trips_and_bad_uploads_are_refused,
    an_action_fans_out_to_the_enabled_connections
);

/// A real 1x1 PNG: signature, IHDR, IDAT, IEND.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82";

const LIMIT: usize = 4096;

async fn upload(daemon: &Daemon, query: &str, bytes: Vec<u8>) -> Reply {
    daemon
        .send(
            daemon
                .http
                .post(daemon.api(&format!("/media{query}")))
                .bearer_auth(&daemon.token)
                .header("content-type", "application/octet-stream")
                .body(bytes),
        )
        .await
}

fn fields(reply: &Reply) -> Vec<String> {
    reply.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

fn assert_problem(reply: &Reply, status: u16, field: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert_eq!(
        reply.content_type, "application/problem+json",
        "{}",
        reply.body
    );
    assert!(
        fields(reply).iter().any(|f| f == field),
        "expected field `{field}` in {}",
        reply.body
    );
}

/// Names in the media directory (files and leftovers alike).
fn media_files(fixture: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture.data_dir().join("media"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn media_round_trips_and_bad_uploads_are_refused(db: Db) {
    let mut fixture = Fixture::new(db)
        .await
        .with_env("SWITCHBOARD_LIMITS__MEDIA_BYTES", &LIMIT.to_string());
    let daemon = fixture.start().await;

    let first = upload(&daemon, "?name=dot.png", PNG.to_vec()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let id = first.body["id"].as_str().unwrap().to_owned();
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{id}"
    );
    assert_eq!(first.body["mime_type"], "image/png");
    assert_eq!(first.body["size"], PNG.len());
    assert_eq!(first.body["name"], "dot.png");
    assert!(first.body["created_at"].as_i64().unwrap() > 0);

    let again = upload(&daemon, "", PNG.to_vec()).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.body, first.body, "the same bytes are the same file");

    let shown = daemon.get(&format!("/media/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body, first.body);
    let listed = daemon.get("/media").await;
    assert_eq!(listed.body, json!([first.body]));

    let content = daemon
        .http
        .get(daemon.api(&format!("/media/{id}/content")))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), StatusCode::OK);
    assert_eq!(content.headers()["content-type"], "image/png");
    assert_eq!(content.bytes().await.unwrap().as_ref(), PNG);

    // Refusals leave nothing behind.
    let text = upload(
        &daemon,
        "?name=notes.txt",
        b"just some notes, not a picture".to_vec(),
    )
    .await;
    assert_problem(&text, 415, "body");
    assert!(
        text.body["detail"]
            .as_str()
            .unwrap()
            .contains("JPEG, PNG, WEBP, GIF, MP4, MOV"),
        "{}",
        text.body
    );
    let mut big = PNG.to_vec();
    big.resize(LIMIT + 1, 0);
    let too_large = upload(&daemon, "", big).await;
    assert_problem(&too_large, 413, "body");
    assert!(
        too_large.body["detail"]
            .as_str()
            .unwrap()
            .contains(&LIMIT.to_string()),
        "says the limit: {}",
        too_large.body
    );
    assert_eq!(daemon.get("/media").await.body.as_array().unwrap().len(), 1);
    assert_eq!(
        media_files(&fixture),
        vec![id.clone(), format!("{id}.json")],
        "no partial or temporary files"
    );

    for malformed in [
        "not-an-id",
        "0123456789ABCDEF0123456789ABCDEF",
        "..%2F..%2Fmaster.key",
    ] {
        assert_problem(&daemon.get(&format!("/media/{malformed}")).await, 422, "id");
        assert_problem(
            &daemon.get(&format!("/media/{malformed}/content")).await,
            422,
            "id",
        );
        assert_problem(
            &daemon.delete(&format!("/media/{malformed}")).await,
            422,
            "id",
        );
    }
    let unknown = "0123456789abcdef0123456789abcdef";
    assert_eq!(daemon.get(&format!("/media/{unknown}")).await.status, 404);
    assert_eq!(
        daemon
            .get(&format!("/media/{unknown}/content"))
            .await
            .status,
        404
    );
    assert_eq!(
        daemon.delete(&format!("/media/{unknown}")).await.status,
        404
    );

    let removed = daemon.delete(&format!("/media/{id}")).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    assert_eq!(daemon.get(&format!("/media/{id}")).await.status, 404);
    assert_eq!(daemon.get("/media").await.body, json!([]));
    assert!(media_files(&fixture).is_empty());
}

fn run_cli(fixture: &Fixture, daemon: &Daemon, args: &[&str]) -> (bool, String, String) {
    let output = fixture
        .command()
        .env("SWITCHBOARD_URL", &daemon.url)
        .env("SWITCHBOARD_TOKEN", &daemon.token)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn jobs_in(daemon: &Daemon) -> usize {
    daemon
        .get("/jobs?limit=1000")
        .await
        .body
        .as_array()
        .unwrap()
        .len()
}

async fn an_action_fans_out_to_the_enabled_connections(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let say = json!({ "params": { "message": "to all" } });

    // No echo connection at all, then only a disabled one: a 409 that says
    // what to do.
    let none = daemon.post("/actions/echo.say", say.clone()).await;
    assert_eq!(none.status, StatusCode::CONFLICT, "{}", none.body);
    assert!(
        none.body["detail"].as_str().unwrap().contains("add one"),
        "{}",
        none.body
    );
    let off = daemon
        .create_connection(json!({ "connector": "echo", "label": "off", "enabled": false }))
        .await;
    let none = daemon.post("/actions/echo.say", say.clone()).await;
    assert_eq!(none.status, StatusCode::CONFLICT, "{}", none.body);
    assert!(
        none.body["detail"].as_str().unwrap().contains("enable one"),
        "{}",
        none.body
    );

    let a = daemon
        .create_connection(json!({ "connector": "echo", "label": "a" }))
        .await;
    let b = daemon
        .create_connection(json!({ "connector": "echo", "label": "b" }))
        .await;

    let sent = daemon.post("/actions/echo.say", say.clone()).await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.body);
    let entries = sent.body["jobs"].as_array().unwrap();
    let mut picked: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            assert!(e["error"].is_null(), "{e}");
            assert_eq!(e["job"]["connection_id"], e["connection_id"]);
            (
                e["label"].as_str().unwrap().to_owned(),
                e["connection_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    picked.sort();
    assert_eq!(
        picked,
        vec![("a".to_owned(), a.clone()), ("b".to_owned(), b.clone())],
        "every enabled echo connection, not the disabled one"
    );
    for entry in entries {
        let done = daemon.wait_job(entry["job"]["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["result"]["message"], "to all");
    }

    // Named connections: only those.
    let one = daemon
        .post(
            "/actions/echo.say",
            json!({ "params": { "message": "just b" }, "connections": [b] }),
        )
        .await;
    assert_eq!(one.status, StatusCode::CREATED, "{}", one.body);
    assert_eq!(one.body["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(one.body["jobs"][0]["connection_id"], b.as_str());
    assert_eq!(one.body["jobs"][0]["label"], "b");

    // An idempotency key returns the same jobs on a repeat.
    let keyed = json!({ "params": { "message": "once" }, "idempotency_key": "launch-1" });
    let first = daemon.post("/actions/echo.say", keyed.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let repeat = daemon.post("/actions/echo.say", keyed).await;
    assert_eq!(repeat.status, StatusCode::OK, "{}", repeat.body);
    let ids = |reply: &Reply| {
        let mut ids: Vec<String> = reply.body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["job"]["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&first), ids(&repeat));

    // Bad input is refused whole, each field named, and nothing is written.
    let written = jobs_in(&daemon).await;
    let x_connection = daemon
        .post(
            "/actions/x.post",
            json!({ "params": { "text": "hello" }, "connections": [a] }),
        )
        .await;
    assert_problem(&x_connection, 422, "connections[0]");
    let unknown = daemon
        .post(
            "/actions/echo.say",
            json!({ "params": { "message": "hi" }, "connections": [a, "no-such-connection"] }),
        )
        .await;
    assert_problem(&unknown, 422, "connections[1]");
    let bad_params = daemon
        .post(
            "/actions/echo.say",
            json!({ "params": { "mesage": "typo" } }),
        )
        .await;
    assert_problem(&bad_params, 422, "params.message");
    let no_connector = daemon.post("/actions/myspace.post", say.clone()).await;
    assert_problem(&no_connector, 422, "action");
    assert_eq!(jobs_in(&daemon).await, written, "nothing was written");
    let _ = off;

    // The media limit is its own, not the 1 MiB of JSON bodies.
    let mut big = PNG.to_vec();
    big.resize(2 * 1024 * 1024, 0);
    let big = upload(&daemon, "?name=big.png", big).await;
    assert_eq!(big.status, StatusCode::CREATED, "{}", big.body);

    // The CLI: media verbs, and `post` (which needs X connections).
    let file = fixture.data_dir().join("dot.png");
    std::fs::write(&file, PNG).unwrap();
    let (ok, out, err) = run_cli(
        &fixture,
        &daemon,
        &["--json", "media", "upload", file.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    let stored: Value = serde_json::from_str(&out).unwrap();
    let id = stored["id"].as_str().unwrap().to_owned();
    assert_eq!(stored["name"], "dot.png");
    let (ok, out, err) = run_cli(
        &fixture,
        &daemon,
        &["media", "upload", file.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), id, "prints the id alone");
    let (ok, out, _) = run_cli(&fixture, &daemon, &["media", "list"]);
    assert!(
        ok && out.contains(&id) && out.contains("image/png"),
        "{out}"
    );
    let (ok, out, _) = run_cli(&fixture, &daemon, &["media", "show", &id]);
    assert!(ok && out.contains("dot.png"), "{out}");
    let (ok, out, _) = run_cli(&fixture, &daemon, &["media", "rm", &id]);
    assert!(ok && out.contains(&id), "{out}");
    let (ok, _, err) = run_cli(&fixture, &daemon, &["media", "show", &id]);
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, _, err) = run_cli(
        &fixture,
        &daemon,
        &["post", "hello", "--media", "no-such-file.png"],
    );
    assert!(!ok && err.contains("no-such-file.png"), "{err}");
    let (ok, _, err) = run_cli(&fixture, &daemon, &["post", "hello"]);
    assert!(!ok && err.contains("`x`"), "no X account yet: {err}");
}
