//! The central promise: change a connection's credentials or settings and
//! its runtime restarts in place with them, no process restart, every
//! transition visible as an event.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::{Db, Fixture, Probe};
use crate::on_both_databases;

on_both_databases!(
    an_unavailable_service_is_retried_with_backoff_until_it_returns,
    in_flight_actions_finish_across_a_restart,
    secret_change_restarts_the_runtime_in_place,
    settings_change_restarts_the_runtime,
    rejected_credentials_make_jobs_wait,
    the_echo_record_file_stays_in_the_data_dir
);

/// Read `connection.status` events from an SSE stream until `until` arrives.
async fn statuses_until(
    stream: &mut (
             impl futures::Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>> + Unpin
         ),
    until: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while let Ok(Some(item)) = tokio::time::timeout_at(deadline, stream.next()).await {
        let message = item.expect("stream item");
        if message.event != "connection.status" {
            continue;
        }
        let event: Value = serde_json::from_str(&message.data).unwrap();
        assert_eq!(
            message.id,
            event["id"].to_string(),
            "SSE id is the event id"
        );
        let status = event["payload"]["status"].as_str().unwrap().to_owned();
        seen.push(status.clone());
        if status == until {
            return seen;
        }
    }
    panic!("stream ended before `{until}`; saw {seen:?}");
}

async fn secret_change_restarts_the_runtime_in_place(db: Db) {
    let probe = Probe::start(&["first-token", "second-token"]).await;
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = daemon
        .create_connection(json!({
            "connector": "echo",
            "label": "lifecycle",
            "settings": { "probe_url": probe.url },
            "secrets": { "token": "first-token" },
        }))
        .await;
    daemon.wait_status(&id, "connected").await;
    assert_eq!(probe.last_seen().as_deref(), Some("Bearer first-token"));
    let pid_before = daemon.get("/health").await.body["pid"].clone();
    assert_eq!(pid_before, json!(daemon.pid()));

    // Follow the stream from the last event logged so far (the status map
    // can answer `connected` a moment before its event is in the log).
    let mut last_id = 0;
    for _ in 0..100 {
        let events = daemon
            .get(&format!("/events?connection_id={id}"))
            .await
            .body;
        let events = events.as_array().unwrap();
        if events
            .last()
            .is_some_and(|e| e["payload"]["status"] == "connected")
        {
            last_id = events.last().unwrap()["id"].as_i64().unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(last_id > 0, "the first connect was logged");
    let response = daemon
        .http
        .get(daemon.api(&format!(
            "/events/stream?connection_id={id}&after={last_id}"
        )))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream().eventsource();

    let reply = daemon
        .put(
            &format!("/connections/{id}/secrets"),
            json!({ "token": "second-token" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["secrets_set"], json!(["token"]));
    assert!(
        !reply.body.to_string().contains("second-token"),
        "secrets are write-only"
    );

    let statuses = statuses_until(&mut stream, "connected").await;
    assert_eq!(
        statuses,
        ["connecting", "connected"],
        "the restart is visible in order"
    );
    assert_eq!(
        probe.last_seen().as_deref(),
        Some("Bearer second-token"),
        "the new runtime uses the new secret"
    );
    assert_eq!(
        daemon.get("/health").await.body["pid"],
        pid_before,
        "same process"
    );

    // The restarted runtime also runs actions with the new secret.
    let job = daemon.submit(&id, "echo.probe", json!({})).await;
    let job = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["status"], 200);
    assert_eq!(probe.last_seen().as_deref(), Some("Bearer second-token"));

    // The event log holds the same transitions, in order, for later readers.
    let events = daemon
        .get(&format!(
            "/events?type=connection.status&connection_id={id}"
        ))
        .await
        .body;
    let logged: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        logged,
        ["connecting", "connected", "connecting", "connected"]
    );
}

/// The fields a 422 problem names.
fn problem_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn the_echo_record_file_stays_in_the_data_dir(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let outside = fixture.data_dir().parent().unwrap().join("escaped.log");
    for record_file in [
        outside.to_string_lossy().into_owned(),
        "../escaped.log".into(),
    ] {
        let reply = daemon
            .post(
                "/connections",
                json!({ "connector": "echo", "label": "writer", "settings": { "record_file": record_file } }),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 422, "{record_file}: {}", reply.body);
        assert_eq!(
            problem_fields(&reply.body),
            ["settings.record_file"],
            "{}",
            reply.body
        );
    }

    // Inside the data dir's `echo/` folder it works, and a change of
    // settings is held to the same rule.
    let id = daemon
        .create_connection(json!({ "connector": "echo", "label": "writer", "settings": { "record_file": "runs/say.log" } }))
        .await;
    daemon.wait_status(&id, "connected").await;
    let job = daemon
        .submit(&id, "echo.say", json!({ "message": "hi" }))
        .await;
    daemon.wait_job(job["id"].as_str().unwrap()).await;
    let recorded = std::fs::read_to_string(fixture.data_dir().join("echo/runs/say.log")).unwrap();
    assert!(
        recorded.starts_with(job["id"].as_str().unwrap()),
        "{recorded}"
    );
    let reply = daemon
        .put(
            &format!("/connections/{id}/settings"),
            json!({ "record_file": "runs/../../../escaped.log" }),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 422, "{}", reply.body);
    assert_eq!(
        problem_fields(&reply.body),
        ["settings.record_file"],
        "{}",
        reply.body
    );
    assert!(
        !outside.exists(),
        "nothing was written outside the data dir"
    );
}

async fn settings_change_restarts_the_runtime(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = daemon
        .create_connection(
            json!({ "connector": "echo", "label": "greeter", "settings": { "greeting": "hello" } }),
        )
        .await;
    daemon.wait_status(&id, "connected").await;
    let job = daemon
        .submit(&id, "echo.say", json!({ "message": "world" }))
        .await;
    let job = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(job["result"]["message"], "hello world");

    let reply = daemon
        .put(
            &format!("/connections/{id}/settings"),
            json!({ "greeting": "bonjour" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    daemon.wait_status(&id, "connected").await;
    let job = daemon
        .submit(&id, "echo.say", json!({ "message": "world" }))
        .await;
    let job = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(
        job["result"]["message"], "bonjour world",
        "the runtime runs with the new settings"
    );

    // Disabling stops the runtime; enabling starts it again.
    let reply = daemon
        .send(
            daemon
                .http
                .patch(daemon.api(&format!("/connections/{id}")))
                .bearer_auth(&daemon.token)
                .json(&json!({ "enabled": false })),
        )
        .await;
    assert_eq!(reply.status, 200);
    let status = daemon.wait_status(&id, "disconnected").await;
    assert_eq!(status["reason"], "disabled");
    let reply = daemon
        .send(
            daemon
                .http
                .patch(daemon.api(&format!("/connections/{id}")))
                .bearer_auth(&daemon.token)
                .json(&json!({ "enabled": true })),
        )
        .await;
    assert_eq!(reply.status, 200);
    daemon.wait_status(&id, "connected").await;

    // Deleting stops the runtime and forgets the connection.
    assert_eq!(
        daemon.delete(&format!("/connections/{id}")).await.status,
        204
    );
    assert_eq!(daemon.get(&format!("/connections/{id}")).await.status, 404);
    assert_eq!(
        daemon.delete(&format!("/connections/{id}")).await.status,
        404
    );
}

async fn rejected_credentials_make_jobs_wait(db: Db) {
    let probe = Probe::start(&["good"]).await;
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = daemon
        .create_connection(json!({
            "connector": "echo",
            "label": "reauth",
            "settings": { "probe_url": probe.url },
            "secrets": { "token": "revoked" },
        }))
        .await;
    let status = daemon.wait_status(&id, "needs_reauth").await;
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("reconnect this account"),
        "{status}"
    );

    // A job submitted now waits instead of failing.
    let job = daemon
        .submit(&id, "echo.say", json!({ "message": "patience" }))
        .await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    let mut waiting = Value::Null;
    for _ in 0..100 {
        waiting = daemon.get(&format!("/jobs/{job_id}")).await.body;
        if !waiting["waiting_reason"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(waiting["state"], "queued", "{waiting}");
    assert_eq!(
        waiting["attempts"], 0,
        "waiting spends no attempt: {waiting}"
    );
    assert!(
        waiting["waiting_reason"]
            .as_str()
            .unwrap()
            .contains("needs_reauth"),
        "{waiting}"
    );

    // New credentials: the connection comes back and the job runs at once.
    daemon
        .put(
            &format!("/connections/{id}/secrets"),
            json!({ "token": "good" }),
        )
        .await;
    daemon.wait_status(&id, "connected").await;
    let done = daemon.wait_job(&job_id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1);

    // A service that rejects the credentials mid-session has the same effect.
    let job = daemon
        .submit(
            &id,
            "echo.say",
            json!({ "message": "x", "reject_credentials": true }),
        )
        .await;
    daemon.wait_status(&id, "needs_reauth").await;
    let mut waiting = Value::Null;
    for _ in 0..100 {
        waiting = daemon
            .get(&format!("/jobs/{}", job["id"].as_str().unwrap()))
            .await
            .body;
        if waiting["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(waiting["state"], "queued", "{waiting}");
    assert_eq!(waiting["attempts"], 0, "{waiting}");
    assert!(
        waiting["waiting_reason"]
            .as_str()
            .unwrap()
            .contains("re-authorization"),
        "{waiting}"
    );
}

async fn an_unavailable_service_is_retried_with_backoff_until_it_returns(db: Db) {
    let probe = Probe::start(&["t"]).await;
    probe.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = daemon
        .create_connection(json!({
            "connector": "echo", "label": "flaky-service",
            "settings": { "probe_url": probe.url },
            "secrets": { "token": "t" },
        }))
        .await;
    let status = daemon.wait_status(&id, "error").await;
    assert!(
        status["reason"].as_str().unwrap().contains("retrying in"),
        "{status}"
    );
    // Several attempts, spaced out (backoff), not a tight loop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = probe.seen.lock().unwrap().len();
    assert!(
        (2..=12).contains(&attempts),
        "{attempts} connect attempts in 1.5 s"
    );

    probe.down.store(false, std::sync::atomic::Ordering::SeqCst);
    daemon.wait_status(&id, "connected").await;
    let events = daemon
        .get(&format!(
            "/events?type=connection.status&connection_id={id}&limit=1000"
        ))
        .await
        .body;
    let reasons: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["payload"]["status"] == "connecting")
        .filter_map(|e| e["payload"]["reason"].as_str().map(str::to_owned))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("reconnecting (attempt")),
        "{reasons:?}"
    );
}

async fn in_flight_actions_finish_across_a_restart(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = daemon
        .create_connection(
            json!({ "connector": "echo", "label": "busy", "secrets": { "token": "a" } }),
        )
        .await;
    daemon.wait_status(&id, "connected").await;
    let slow = daemon
        .submit(
            &id,
            "echo.say",
            json!({ "message": "slow", "work_ms": 1200 }),
        )
        .await;
    let slow_id = slow["id"].as_str().unwrap().to_owned();
    for _ in 0..100 {
        if daemon.get(&format!("/jobs/{slow_id}")).await.body["state"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Restart mid-action: the action finishes (within the drain grace), once.
    let reply = daemon
        .put(
            &format!("/connections/{id}/secrets"),
            json!({ "token": "b" }),
        )
        .await;
    assert_eq!(reply.status, 200);
    let done = daemon.wait_job(&slow_id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
    daemon.wait_status(&id, "connected").await;
    // Jobs submitted during the restart wait for it and run.
    let after = daemon
        .submit(&id, "echo.say", json!({ "message": "after" }))
        .await;
    let after = daemon.wait_job(after["id"].as_str().unwrap()).await;
    assert_eq!(after["state"], "succeeded");
}
