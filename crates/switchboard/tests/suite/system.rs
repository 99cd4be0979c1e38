//! The `system` and `webhook` connectors end to end: signed webhooks from
//! independent signers (Python's `standardwebhooks`, a GitHub-style HMAC in
//! Python's standard library), refused deliveries recorded with the reason,
//! cron schedules firing and catching up across a restart without double
//! fires, file watches, and `system.http_request` held to its allowlist.
//!
//! Needs `python3` with `standardwebhooks` (`./test` installs it into `.venv`).

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection as _;
use switchboard_core::time::now_ms;

use crate::common::{Daemon, Db, Fixture};
use crate::on_both_databases;

on_both_databases!(
    webhooks_are_verified_recorded_and_published,
    bad_settings_are_refused_whole,
    schedules_fire_once_per_slot_across_restarts,
    file_watches_and_http_requests
);

/// Run a Python snippet with arguments; its stdout, trimmed.
fn python(script: &str, args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is needed for the webhook tests");
    assert!(
        output.status.success(),
        "python failed (python3 -m pip install standardwebhooks):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Standard Webhooks headers for `body`, signed by the reference library.
fn standard_webhooks_headers(secret: &str, id: &str, timestamp_secs: i64, body: &str) -> Value {
    let signature = python(
        "import sys
from datetime import datetime, timezone
from standardwebhooks.webhooks import Webhook
secret, msg_id, ts, body = sys.argv[1:5]
print(Webhook(secret).sign(msg_id, datetime.fromtimestamp(int(ts), tz=timezone.utc), body))",
        &[secret, id, &timestamp_secs.to_string(), body],
    );
    json!({
        "webhook-id": id,
        "webhook-timestamp": timestamp_secs.to_string(),
        "webhook-signature": signature,
    })
}

/// `sha256=<hex>` as GitHub computes it, with Python's standard library.
fn github_signature(secret: &str, body: &str) -> String {
    python(
        "import hmac, hashlib, sys
print('sha256=' + hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
        &[secret, body],
    )
}

async fn deliver(daemon: &Daemon, hook: &str, headers: &Value, body: &str) -> crate::common::Reply {
    let mut request = daemon
        .http
        .post(format!("{}/hooks/{hook}", daemon.url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers.as_object().unwrap() {
        request = request.header(name.as_str(), value.as_str().unwrap());
    }
    daemon.send(request).await
}

async fn events(daemon: &Daemon, query: &str) -> Vec<Value> {
    let reply = daemon.get(&format!("/events?limit=1000&{query}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body.as_array().unwrap().clone()
}

/// Wait until the events matching `query` satisfy `done`; return them.
async fn wait_events(
    daemon: &Daemon,
    query: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..200 {
        let found = events(daemon, query).await;
        if done(&found) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "never saw {what} ({query}); last: {:?}\n{}",
        events(daemon, query).await,
        daemon.output()
    );
}

fn assert_refused(reply: &crate::common::Reply, code: &str, field: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["code"], code, "{}", reply.body);
    assert_eq!(reply.body["errors"][0]["field"], field, "{}", reply.body);
}

const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const GH_SECRET: &str = "gh-hook-secret-value";
const SHARED_SECRET: &str = "shared-secret-value-42";

async fn webhooks_are_verified_recorded_and_published(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let sw = daemon
        .create_connection(json!({
            "connector": "webhook", "label": "sw",
            "settings": {"name": "sw", "auth": "standard_webhooks"},
            "secrets": {"secret": SW_SECRET}
        }))
        .await;
    let gh = daemon
        .create_connection(json!({
            "connector": "webhook", "label": "gh",
            "settings": {"name": "gh", "auth": "hmac_sha256"},
            "secrets": {"secret": GH_SECRET}
        }))
        .await;
    let shared = daemon
        .create_connection(json!({
            "connector": "webhook", "label": "shared",
            "settings": {"name": "shared", "auth": "shared_secret", "header": "X-Token", "max_body_bytes": 64},
            "secrets": {"secret": SHARED_SECRET}
        }))
        .await;
    for id in [&sw, &gh, &shared] {
        daemon.wait_status(id, "connected").await;
    }

    // Standard Webhooks, signed by the reference library: accepted,
    // published, recorded.
    let body = r#"{"type":"invoice.paid","amount":42}"#;
    let now = now_ms() / 1000;
    let signed = standard_webhooks_headers(SW_SECRET, "msg_001", now, body);
    let reply = deliver(&daemon, "sw", &signed, body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(reply.body["delivery_id"], "msg_001");
    let event_id = reply.body["event_id"].as_i64().unwrap();
    let received = events(&daemon, "type=webhook.received").await;
    let event = received.iter().find(|e| e["id"] == event_id).unwrap();
    assert_eq!(event["connection_id"], sw.as_str());
    assert_eq!(event["payload"]["hook"], "sw");
    assert_eq!(event["payload"]["delivery_id"], "msg_001");
    assert_eq!(
        event["payload"]["body"]["amount"], 42,
        "a JSON body is JSON"
    );
    assert_eq!(event["payload"]["headers"]["webhook-id"], "msg_001");

    // The same delivery again: a replay. A stale one, a tampered one.
    assert_refused(
        &deliver(&daemon, "sw", &signed, body).await,
        "replayed_delivery",
        "webhook-id",
    );
    let stale = standard_webhooks_headers(SW_SECRET, "msg_002", now - 3600, body);
    assert_refused(
        &deliver(&daemon, "sw", &stale, body).await,
        "stale_timestamp",
        "webhook-timestamp",
    );
    let fresh = standard_webhooks_headers(SW_SECRET, "msg_003", now, body);
    assert_refused(
        &deliver(
            &daemon,
            "sw",
            &fresh,
            r#"{"type":"invoice.paid","amount":4200}"#,
        )
        .await,
        "bad_signature",
        "webhook-signature",
    );
    assert_refused(
        &deliver(&daemon, "sw", &json!({}), body).await,
        "missing_header",
        "webhook-id",
    );
    // A refused attempt does not use up its id: the real msg_003 still gets in.
    let reply = deliver(&daemon, "sw", &fresh, body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);

    // GitHub style.
    let push = r#"{"ref":"refs/heads/main"}"#;
    let headers = json!({
        "X-Hub-Signature-256": github_signature(GH_SECRET, push),
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-GitHub-Event": "push",
    });
    let reply = deliver(&daemon, "gh", &headers, push).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_refused(
        &deliver(&daemon, "gh", &headers, push).await,
        "replayed_delivery",
        "x-github-delivery",
    );
    let wrong = json!({
        "X-Hub-Signature-256": github_signature("not-the-secret", push),
        "X-GitHub-Delivery": "another",
    });
    assert_refused(
        &deliver(&daemon, "gh", &wrong, push).await,
        "bad_signature",
        "X-Hub-Signature-256",
    );

    // A shared secret: checked, and never recorded or published.
    let reply = deliver(
        &daemon,
        "shared",
        &json!({"X-Token": SHARED_SECRET}),
        "plain text",
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let reply = deliver(&daemon, "shared", &json!({"X-Token": "guess"}), "x").await;
    assert_refused(&reply, "bad_signature", "X-Token");
    assert!(!reply.body.to_string().contains(SHARED_SECRET));
    let too_large = deliver(
        &daemon,
        "shared",
        &json!({"X-Token": SHARED_SECRET}),
        &"x".repeat(65),
    )
    .await;
    assert_eq!(
        too_large.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        too_large.body
    );
    assert_eq!(too_large.body["code"], "body_too_large");
    let unknown = deliver(&daemon, "nope", &json!({}), "{}").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    assert_eq!(unknown.body["code"], "unknown_hook");

    // The history: every delivery, newest first, with verdict and reason.
    let history = daemon.get(&format!("/webhooks/{sw}/deliveries")).await;
    assert_eq!(history.status, 200, "{}", history.body);
    let verdicts: Vec<(String, Option<String>)> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["verdict"].as_str().unwrap().to_owned(),
                d["failed_check"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let expect = |v: &str, c: Option<&str>| (v.to_owned(), c.map(str::to_owned));
    assert_eq!(
        verdicts,
        [
            expect("accepted", None),
            expect("rejected", Some("header")),
            expect("rejected", Some("signature")),
            expect("rejected", Some("timestamp")),
            expect("rejected", Some("replay")),
            expect("accepted", None),
        ]
    );
    let refused = daemon
        .get(&format!(
            "/webhooks/{sw}/deliveries?verdict=rejected&limit=2"
        ))
        .await
        .body;
    assert_eq!(refused.as_array().unwrap().len(), 2);
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("webhook-id")
    );
    assert!(refused[0].get("body").is_none(), "lists carry no bodies");
    let oldest = history.body[5]["id"].as_str().unwrap();
    let one = daemon
        .get(&format!("/webhooks/{sw}/deliveries/{oldest}"))
        .await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body["body"]["type"], "invoice.paid");
    assert_eq!(one.body["body_encoding"], "json");
    assert_eq!(one.body["event_id"], event_id);
    let bad_filter = daemon
        .get(&format!("/webhooks/{sw}/deliveries?verdict=maybe"))
        .await;
    assert_eq!(bad_filter.status, 422);
    assert_eq!(bad_filter.body["errors"][0]["field"], "verdict");
    assert_eq!(
        daemon
            .get(&format!("/webhooks/{sw}/deliveries/missing"))
            .await
            .status,
        404
    );
    let shared_history = daemon
        .get(&format!("/webhooks/{shared}/deliveries"))
        .await
        .body;
    assert_eq!(shared_history[0]["failed_check"], "body_size");
    assert_eq!(shared_history[2]["verdict"], "accepted");
    let accepted = daemon
        .get(&format!(
            "/webhooks/{shared}/deliveries/{}",
            shared_history[2]["id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(accepted["body"], "plain text");
    assert!(accepted["headers"].get("x-token").is_none(), "{accepted}");
    // Not a hook: 404.
    let echo = daemon
        .create_connection(json!({"connector": "echo", "label": "e"}))
        .await;
    assert_eq!(
        daemon
            .get(&format!("/webhooks/{echo}/deliveries"))
            .await
            .status,
        404
    );

    // A second hook cannot take a name in use.
    let taken = daemon
        .post(
            "/connections",
            json!({"connector": "webhook", "label": "again", "settings": {"name": "sw", "auth": "none"}}),
        )
        .await;
    assert_eq!(taken.status, 422, "{}", taken.body);
    assert_eq!(taken.body["errors"][0]["field"], "settings.name");

    // No secret anywhere in plain text: the events, the history, the database.
    let all_events = events(&daemon, "").await;
    for secret in [SHARED_SECRET, GH_SECRET, SW_SECRET] {
        assert!(!serde_json::to_string(&all_events).unwrap().contains(secret));
    }
    drop(daemon);
    let bytes = fixture.database_bytes().await;
    for secret in [SHARED_SECRET, GH_SECRET, SW_SECRET] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is in the database"
        );
    }
}

async fn bad_settings_are_refused_whole(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let reply = daemon
        .post(
            "/connections",
            json!({
                "connector": "system", "label": "bad",
                "settings": {
                    "schedules": [
                        {"name": "typo", "cron": "61 * * * *"},
                        {"name": "zone", "cron": "@daily", "timezone": "Mars/Olympus"}
                    ],
                    "watches": [{"name": "w", "path": "relative/dir", "glob": "[a-"}],
                    "http_allow": ["https://example.com"]
                }
            }),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    let fields: Vec<&str> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "settings.schedules[0].cron",
            "settings.schedules[1].timezone",
            "settings.watches[0].path",
            "settings.watches[0].glob",
            "settings.http_allow[0]"
        ]
    );
    let reason = reply.body["errors"][0]["message"].as_str().unwrap();
    assert!(
        reason.contains("61"),
        "the reason names the problem: {reason}"
    );
    assert_eq!(
        daemon.get("/connections").await.body,
        json!([]),
        "nothing was created"
    );

    // The same on a change: the old settings stay.
    let good = json!({"schedules": [{"name": "daily", "cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin"}]});
    let id = daemon
        .create_connection(json!({"connector": "system", "label": "ok", "settings": good}))
        .await;
    let reply = daemon
        .put(
            &format!("/connections/{id}/settings"),
            json!({"schedules": [{"name": "daily", "cron": "* * *"}]}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(
        reply.body["errors"][0]["field"],
        "settings.schedules[0].cron"
    );
    assert_eq!(
        daemon.get(&format!("/connections/{id}")).await.body["settings"],
        good
    );
}

/// Overwrite one connector state value while the daemon is stopped.
async fn set_state(fixture: &Fixture, connection: &str, key: &str, value: Value) {
    let sql = "UPDATE connector_state SET value = $1 WHERE connection_id = $2 AND key = $3";
    let changed = match fixture.db {
        Db::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&fixture.database_url)
                .await
                .unwrap();
            sqlx::query(sql)
                .bind(value.to_string())
                .bind(connection)
                .bind(key)
                .execute(&mut conn)
                .await
                .unwrap()
                .rows_affected()
        }
        Db::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&fixture.database_url)
                .await
                .unwrap();
            sqlx::query(sql)
                .bind(value.to_string())
                .bind(connection)
                .bind(key)
                .execute(&mut conn)
                .await
                .unwrap()
                .rows_affected()
        }
    };
    assert_eq!(changed, 1, "state {key} of {connection}");
}

fn fired(events: &[Value], schedule: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["payload"]["schedule"] == schedule)
        .map(|e| e["payload"].clone())
        .collect()
}

async fn schedules_fire_once_per_slot_across_restarts(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = daemon
        .create_connection(json!({
            "connector": "system", "label": "clock",
            "settings": {
                "schedules": [
                    {"name": "tick", "cron": "* * * * * *"},
                    {"name": "minutely", "cron": "0 * * * * *", "timezone": "America/New_York"}
                ],
                "catch_up_secs": 3600
            }
        }))
        .await;
    daemon.wait_status(&id, "connected").await;
    // Six fields, every second.
    let ticks = wait_events(&daemon, "type=cron.fired", "three ticks", |e| {
        fired(e, "tick").len() >= 3
    })
    .await;
    let first = &fired(&ticks, "tick")[0];
    assert_eq!(first["cron"], "* * * * * *");
    assert_eq!(first["late"], false);
    assert!(first["fired_at"].as_i64().unwrap() >= first["scheduled_at"].as_i64().unwrap());
    let before_rewind = events(&daemon, "")
        .await
        .last()
        .map(|e| e["id"].as_i64().unwrap())
        .unwrap_or(0);
    daemon.stop();

    // As if the daemon had been down for ten minutes: ten `minutely` slots
    // were missed; the latest fires once, late, and no backlog follows.
    let stopped_at = now_ms();
    set_state(
        &fixture,
        &id,
        "cron.minutely",
        json!({ "last": stopped_at - 600_000 }),
    )
    .await;
    let daemon = fixture.start().await;
    let all = wait_events(&daemon, "type=cron.fired", "the catch-up", |e| {
        !fired(e, "minutely").is_empty()
    })
    .await;
    let minutely = fired(&all, "minutely");
    let caught_up = &minutely[0];
    assert_eq!(caught_up["late"], true, "{caught_up}");
    let slot = caught_up["scheduled_at"].as_i64().unwrap();
    assert_eq!(slot % 60_000, 0, "a minute's slot");
    assert!(
        slot <= stopped_at + 60_000 && stopped_at - slot < 60_000 + 5_000,
        "the latest missed slot, not an older one: {caught_up}"
    );
    assert!(
        caught_up["scheduled_local"]
            .as_str()
            .unwrap()
            .ends_with(":00-04:00")
            || caught_up["scheduled_local"]
                .as_str()
                .unwrap()
                .ends_with(":00-05:00")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemon.stop();
    let daemon = fixture.start().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // Across both restarts, no slot fired twice (`minutely` counted from
    // the rewind, which made its slots due again on purpose).
    let all = events(&daemon, "type=cron.fired").await;
    let rewound = events(&daemon, &format!("type=cron.fired&after={before_rewind}")).await;
    for (schedule, all) in [("tick", &all), ("minutely", &rewound)] {
        let mut slots: Vec<i64> = fired(all, schedule)
            .iter()
            .map(|p| p["scheduled_at"].as_i64().unwrap())
            .collect();
        let count = slots.len();
        slots.sort();
        slots.dedup();
        assert_eq!(slots.len(), count, "{schedule} fired a slot twice: {all:?}");
    }
    assert!(
        fired(&rewound, "minutely").len() <= 2,
        "one catch-up (and at most one minute passing): {rewound:?}"
    );
}

async fn file_watches_and_http_requests(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let watched = fixture.data_dir().join("inbox");
    std::fs::create_dir(&watched).unwrap();

    // A sink standing in for a service on this machine.
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: String| async move { axum::Json(json!({ "received": body })) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let own = daemon.url.trim_start_matches("http://").to_owned();

    let settings = json!({
        "watches": [{"name": "inbox", "path": watched.to_str().unwrap(), "glob": "*.txt", "debounce_ms": 100}],
        "http_allow": ["127.0.0.1"]
    });
    let id = daemon
        .create_connection(json!({"connector": "system", "label": "machine", "settings": settings}))
        .await;
    daemon.wait_status(&id, "connected").await;

    std::fs::write(watched.join("note.txt"), "hello").unwrap();
    std::fs::write(watched.join("ignored.bin"), "x").unwrap();
    let created = wait_events(&daemon, "type=file.", "file.created", |e| {
        e.iter().any(|e| e["type"] == "file.created")
    })
    .await;
    let event = created
        .iter()
        .find(|e| e["type"] == "file.created")
        .unwrap();
    assert_eq!(event["payload"]["watch"], "inbox");
    assert_eq!(event["payload"]["relative_path"], "note.txt");
    assert_eq!(event["payload"]["size"], 5);
    std::fs::remove_file(watched.join("note.txt")).unwrap();
    let changes = wait_events(&daemon, "type=file.", "file.removed", |e| {
        e.iter().any(|e| e["type"] == "file.removed")
    })
    .await;
    assert!(
        changes
            .iter()
            .all(|e| e["payload"]["relative_path"] == "note.txt"),
        "the glob keeps other files out: {changes:?}"
    );

    // The watched folder disappears: degraded, not crashed; back: connected.
    std::fs::remove_dir_all(&watched).unwrap();
    let status = daemon.wait_status(&id, "degraded").await;
    assert!(
        status["reason"].as_str().unwrap().contains("inbox"),
        "{status}"
    );
    std::fs::create_dir(&watched).unwrap();
    daemon.wait_status(&id, "connected").await;
    std::fs::write(watched.join("again.txt"), "hi").unwrap();
    wait_events(
        &daemon,
        "type=file.created",
        "a file after the return",
        |e| {
            e.iter()
                .any(|e| e["payload"]["relative_path"] == "again.txt")
        },
    )
    .await;

    // HTTP to an allowed host.
    let job = daemon
        .submit(
            &id,
            "system.http_request",
            json!({"method": "POST", "url": format!("http://{sink}/echo"), "body": "ping"}),
        )
        .await;
    let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["status"], 200);
    assert_eq!(done["result"]["body"]["received"], "ping");

    // The metadata address and the daemon itself are refused, and no
    // request goes out.
    for (url, says) in [
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "metadata",
        ),
        (format!("http://{own}/api/v1/health"), "this daemon itself"),
    ] {
        let job = daemon
            .submit(&id, "system.http_request", json!({ "url": url }))
            .await;
        let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "failed", "{done}");
        assert_eq!(done["attempts"], 1, "not retried: {done}");
        assert_eq!(done["error"]["code"], "invalid_params");
        assert!(
            done["error"]["message"].as_str().unwrap().contains(says),
            "{done}"
        );
    }
    // Unless allowed by name.
    let reply = daemon
        .put(
            &format!("/connections/{id}/settings"),
            json!({"http_allow": ["127.0.0.1", own]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    daemon.wait_status(&id, "connected").await;
    let job = daemon
        .submit(
            &id,
            "system.http_request",
            json!({"url": format!("http://{own}/api/v1/health")}),
        )
        .await;
    let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["body"]["status"], "ok");

    // Bad parameters never become a job.
    let reply = daemon
        .post(
            "/jobs",
            json!({"connection_id": id, "action": "system.http_request", "params": {"url": "http://x", "body": "a", "json": {}}}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.body["errors"][0]["field"], "params.json");

    // The small actions.
    let job = daemon
        .submit(
            &id,
            "system.log",
            json!({"message": "hello from a test", "level": "warn"}),
        )
        .await;
    assert_eq!(
        daemon.wait_job(job["id"].as_str().unwrap()).await["state"],
        "succeeded"
    );
    let job = daemon.submit(&id, "system.delay", json!({"ms": 200})).await;
    let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(done["result"]["waited_ms"], 200);
    assert!(daemon.output().contains("hello from a test"));
}
