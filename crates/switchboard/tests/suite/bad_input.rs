//! Bad input gets the right 4xx, a problem+json body naming the field, and
//! nothing is written.

use serde_json::{Value, json};

use crate::common::{Daemon, Db, Fixture, Reply};
use crate::on_both_databases;

on_both_databases!(bad_input_is_rejected_whole_with_the_field_named);

fn assert_problem(reply: &Reply, status: u16, field: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert_eq!(
        reply.content_type, "application/problem+json",
        "{}",
        reply.body
    );
    assert_eq!(reply.body["status"], status);
    assert!(
        reply.body["code"].is_string() && reply.body["detail"].is_string(),
        "{}",
        reply.body
    );
    let fields: Vec<&str> = reply.body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|f| f["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        fields.contains(&field),
        "expected field `{field}` in {}",
        reply.body
    );
}

async fn nothing_written(daemon: &Daemon) {
    assert_eq!(daemon.get("/connections").await.body, json!([]));
    assert_eq!(daemon.get("/jobs").await.body, json!([]));
}

async fn bad_input_is_rejected_whole_with_the_field_named(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;

    let unknown = daemon
        .post(
            "/connections",
            json!({ "connector": "myspace", "label": "x" }),
        )
        .await;
    assert_problem(&unknown, 422, "connector");
    assert!(
        unknown.body["detail"].as_str().unwrap().contains("echo"),
        "lists the known connectors"
    );

    let invalid = daemon
        .post("/connections", json!({ "connector": "echo", "label": "x", "settings": { "work_ms": "slow", "colour": 1 } }))
        .await;
    assert_problem(&invalid, 422, "settings.work_ms");

    let bad_secret = daemon
        .post(
            "/connections",
            json!({ "connector": "echo", "label": "x", "secrets": { "password": "p" } }),
        )
        .await;
    assert_problem(&bad_secret, 422, "secrets.password");

    let missing = daemon
        .post("/connections", json!({ "connector": "echo" }))
        .await;
    assert_problem(&missing, 422, "label");

    let wrong_type = daemon
        .post("/connections", json!({ "connector": "echo", "label": 7 }))
        .await;
    assert_problem(&wrong_type, 422, "label");

    let huge = "x".repeat(2 * 1024 * 1024);
    let oversized = daemon
        .post(
            "/connections",
            json!({ "connector": "echo", "label": huge }),
        )
        .await;
    assert_problem(&oversized, 413, "body");

    let malformed = daemon
        .send(
            daemon
                .http
                .post(daemon.api("/connections"))
                .bearer_auth(&daemon.token)
                .header("content-type", "application/json")
                .body("{\"connector\":"),
        )
        .await;
    assert_problem(&malformed, 400, "body");

    let not_json = daemon
        .send(
            daemon
                .http
                .post(daemon.api("/connections"))
                .bearer_auth(&daemon.token)
                .body("connector=echo"),
        )
        .await;
    assert_problem(&not_json, 415, "Content-Type");

    let no_token = daemon
        .send(daemon.http.get(daemon.api("/connections")))
        .await;
    assert_problem(&no_token, 401, "Authorization");
    let bad_token = daemon
        .send(
            daemon
                .http
                .get(daemon.api("/connections"))
                .bearer_auth("sb_not-a-real-token"),
        )
        .await;
    assert_problem(&bad_token, 401, "Authorization");
    let no_token_write = daemon
        .send(
            daemon
                .http
                .post(daemon.api("/connections"))
                .json(&json!({ "connector": "echo", "label": "sneaky" })),
        )
        .await;
    assert_problem(&no_token_write, 401, "Authorization");

    let unknown_connection = daemon
        .get("/connections/01900000-0000-7000-8000-000000000000")
        .await;
    assert_eq!(unknown_connection.status, 404);
    assert_eq!(unknown_connection.content_type, "application/problem+json");
    let unknown_secrets = daemon
        .put("/connections/nope/secrets", json!({ "token": "t" }))
        .await;
    assert_eq!(unknown_secrets.status, 404);

    let job_unknown_connection = daemon
        .post(
            "/jobs",
            json!({ "connection_id": "nope", "action": "echo.say" }),
        )
        .await;
    assert_problem(&job_unknown_connection, 422, "connection_id");

    nothing_written(&daemon).await;

    // With a connection in place: bad actions and parameters write no job.
    let id = daemon
        .create_connection(json!({ "connector": "echo", "label": "ok" }))
        .await;
    let unknown_action = daemon
        .post(
            "/jobs",
            json!({ "connection_id": id, "action": "echo.shout", "params": {} }),
        )
        .await;
    assert_problem(&unknown_action, 422, "action");
    let missing_param = daemon
        .post(
            "/jobs",
            json!({ "connection_id": id, "action": "echo.say", "params": {} }),
        )
        .await;
    assert_problem(&missing_param, 422, "params.message");
    let wrong_param = daemon
        .post(
            "/jobs",
            json!({ "connection_id": id, "action": "echo.say", "params": { "message": 5 } }),
        )
        .await;
    assert_problem(&wrong_param, 422, "params.message");
    let bad_settings = daemon
        .put(
            &format!("/connections/{id}/settings"),
            json!({ "work_ms": -1 }),
        )
        .await;
    assert_problem(&bad_settings, 422, "settings.work_ms");
    assert_eq!(daemon.get("/jobs").await.body, json!([]));
    let connection = daemon.get(&format!("/connections/{id}")).await.body;
    assert_eq!(
        connection["settings"],
        json!({}),
        "a rejected settings change writes nothing"
    );

    let no_route = daemon.get("/nothing-here").await;
    assert_eq!(no_route.status, 404);
    assert_eq!(no_route.content_type, "application/problem+json");
    let doc: Value = daemon
        .send(daemon.http.get(daemon.api("/openapi.json")))
        .await
        .body;
    assert!(
        doc["paths"]["/connections"]["post"].is_object(),
        "the OpenAPI document describes the API"
    );
    assert!(doc["paths"]["/events/stream"]["get"].is_object());
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Authorization flows: echo has none, and a callback with an unknown,
    // missing or made-up state is refused with a page saying what to do.
    let connect = daemon
        .post(&format!("/connections/{id}/connect"), json!({}))
        .await;
    assert_eq!(connect.status, 409, "{}", connect.body);
    assert!(connect.body["detail"].as_str().unwrap().contains("secrets"));
    for query in [
        "state=made-up&code=x",
        "code=x",
        "error=access_denied&state=nope",
    ] {
        let page = daemon
            .send(
                daemon
                    .http
                    .get(format!("{}/oauth/echo/callback?{query}", daemon.url)),
            )
            .await;
        assert_eq!(page.status, 400, "{query}: {:?}", page.body);
        assert!(page.content_type.starts_with("text/html"));
        assert!(
            page.body
                .as_str()
                .unwrap()
                .contains("start the connection again"),
            "{:?}",
            page.body
        );
    }
    let unknown_connector = daemon
        .send(
            daemon
                .http
                .get(format!("{}/oauth/myspace/callback?state=x", daemon.url)),
        )
        .await;
    assert_eq!(unknown_connector.status, 400);
}
