//! The job outbox: idempotency, retries with backoff, permanent failures,
//! dead jobs and manual retry.

use serde_json::json;

use crate::common::{Db, Fixture, Probe};
use crate::on_both_databases;

on_both_databases!(
    idempotency_key_returns_the_first_job,
    retries_failures_and_dead_jobs,
    a_job_waiting_for_reauthorization_expires
);

async fn idempotency_key_returns_the_first_job(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = daemon
        .create_connection(json!({ "connector": "echo", "label": "idem" }))
        .await;
    let body = json!({ "connection_id": id, "action": "echo.say", "params": { "message": "once" }, "idempotency_key": "order-42" });
    let first = daemon.post("/jobs", body.clone()).await;
    assert_eq!(first.status, 201);
    let second = daemon.post("/jobs", body).await;
    assert_eq!(second.status, 200, "a repeat returns the first job");
    assert_eq!(first.body["id"], second.body["id"]);

    // The header works the same way.
    let by_header = daemon
        .send(
            daemon
                .http
                .post(daemon.api("/jobs"))
                .bearer_auth(&daemon.token)
                .header("Idempotency-Key", "order-42")
                .json(&json!({ "connection_id": id, "action": "echo.say", "params": { "message": "once" } })),
        )
        .await;
    assert_eq!(by_header.status, 200);
    assert_eq!(by_header.body["id"], first.body["id"]);

    // Reusing a key for something else is a conflict, not a silent success.
    let other = daemon
        .post("/jobs", json!({ "connection_id": id, "action": "echo.say", "params": { "message": "twice" }, "idempotency_key": "order-42" }))
        .await;
    assert_eq!(other.status, 409, "{}", other.body);
    let all = daemon.get("/jobs").await.body;
    assert_eq!(all.as_array().unwrap().len(), 1);
    let done = daemon.wait_job(first.body["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded");
}

async fn retries_failures_and_dead_jobs(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = daemon
        .create_connection(json!({ "connector": "echo", "label": "flaky" }))
        .await;

    let flaky = daemon
        .submit(
            &id,
            "echo.say",
            json!({ "message": "eventually", "fail_attempts": 2 }),
        )
        .await;
    let flaky = daemon.wait_job(flaky["id"].as_str().unwrap()).await;
    assert_eq!(flaky["state"], "succeeded", "{flaky}");
    assert_eq!(flaky["attempts"], 3);

    let broken = daemon
        .submit(
            &id,
            "echo.say",
            json!({ "message": "never", "fail_permanently": true }),
        )
        .await;
    let broken = daemon.wait_job(broken["id"].as_str().unwrap()).await;
    assert_eq!(broken["state"], "failed", "{broken}");
    assert_eq!(broken["attempts"], 1, "a permanent error is not retried");
    assert_eq!(broken["error"]["code"], "rejected");

    let reply = daemon
        .post("/jobs", json!({ "connection_id": id, "action": "echo.say", "params": { "message": "dies", "fail_attempts": 2 }, "max_attempts": 2 }))
        .await;
    let dead = daemon.wait_job(reply.body["id"].as_str().unwrap()).await;
    assert_eq!(dead["state"], "dead", "{dead}");
    assert_eq!(dead["attempts"], 2);
    assert!(
        dead["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gave up after 2 attempts")
    );

    // A dead job can be retried by hand; the third attempt succeeds.
    let retried = daemon
        .post(
            &format!("/jobs/{}/retry", dead["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.body["state"], "queued");
    let done = daemon.wait_job(dead["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 3);

    // Only failed or dead jobs can be retried.
    let again = daemon
        .post(
            &format!("/jobs/{}/retry", done["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(again.status, 409);

    // Every final state was announced as job.finished.
    // (The event follows the row update, so give it a moment.)
    let mut states: Vec<String> = Vec::new();
    for _ in 0..100 {
        let finished = daemon.get("/events?type=job.finished&limit=100").await.body;
        states = finished
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["payload"]["state"].as_str().unwrap().to_owned())
            .collect();
        if states.len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        states.iter().filter(|s| *s == "succeeded").count(),
        2,
        "{states:?}"
    );
    assert!(
        states.iter().any(|s| s == "failed") && states.iter().any(|s| s == "dead"),
        "{states:?}"
    );
}

/// A job for an account that needs re-authorization waits (no attempt
/// spent) but not forever: after `jobs.reauth_expiry_secs` it is `dead`,
/// saying why, and `job.finished` is published. A job whose account is
/// reconnected before then runs normally.
async fn a_job_waiting_for_reauthorization_expires(db: Db) {
    let probe = Probe::start(&["good-token"]).await;
    let mut fixture = Fixture::new(db)
        .await
        .with_env("SWITCHBOARD_JOBS__REAUTH_EXPIRY_SECS", "8");
    let daemon = fixture.start().await;
    let rejected = |label: &str| {
        json!({
            "connector": "echo", "label": label,
            "settings": { "probe_url": probe.url },
            "secrets": { "token": "revoked-token" }
        })
    };
    let abandoned = daemon.create_connection(rejected("abandoned")).await;
    let repaired = daemon.create_connection(rejected("repaired")).await;
    daemon.wait_status(&abandoned, "needs_reauth").await;
    daemon.wait_status(&repaired, "needs_reauth").await;

    let lost = daemon
        .submit(&abandoned, "echo.say", json!({ "message": "never" }))
        .await;
    let kept = daemon
        .submit(&repaired, "echo.say", json!({ "message": "later" }))
        .await;
    let kept_id = kept["id"].as_str().unwrap();
    let mut waiting = serde_json::Value::Null;
    for _ in 0..200 {
        waiting = daemon.get(&format!("/jobs/{kept_id}")).await.body;
        if waiting["waiting_reason"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(waiting["state"], "queued", "{waiting}");
    assert!(waiting["waiting_reason"].is_string(), "{waiting}");

    // Reconnected before the expiry: the waiting job runs.
    let reply = daemon
        .put(
            &format!("/connections/{repaired}/secrets"),
            json!({ "token": "good-token" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let kept = daemon.wait_job(kept_id).await;
    assert_eq!(kept["state"], "succeeded", "{kept}");
    assert_eq!(kept["attempts"], 1, "waiting spent no attempt");

    // Never reconnected: given up after the expiry, saying why.
    let lost_id = lost["id"].as_str().unwrap();
    let lost = daemon.wait_job(lost_id).await;
    assert_eq!(lost["state"], "dead", "{lost}");
    assert_eq!(lost["attempts"], 0, "{lost}");
    assert_eq!(lost["error"]["code"], "needs_reauth", "{lost}");
    let message = lost["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("needs re-authorization (reconnect it): gave up after 8s"),
        "{message}"
    );
    let mut announced = false;
    for _ in 0..100 {
        let finished = daemon.get("/events?type=job.finished&limit=100").await.body;
        announced = finished
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["payload"]["job_id"] == lost_id && e["payload"]["state"] == "dead");
        if announced {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(announced, "job.finished was published for the expired job");
}
