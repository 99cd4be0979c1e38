//! Bad input gets the right 4xx, a problem+json body naming the field, and
//! nothing is written.

use serde_json::{Value, json};

use crate::common::{Daemon, Db, Fixture, Reply};
use crate::on_both_databases;

on_both_databases!(
    bad_input_is_rejected_whole_with_the_field_named,
    framework_errors_are_problems_naming_the_parameter,
    lenient_input_is_refused_naming_the_parameter,
);

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

/// A label is printed in terminals and accepted where an id is: control and
/// bidi characters are refused (no fake table rows, no cleared screen), and
/// so is a label shaped like a connection id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_refuse_control_characters_and_id_shapes() {
    let mut fixture = Fixture::new(Db::Sqlite).await;
    let daemon = fixture.start().await;
    let id = daemon
        .create_connection(json!({ "connector": "echo", "label": "main", "enabled": false }))
        .await;
    for label in [
        "two\nlines",
        "fake row\r\n│ x │",
        "\u{1b}[2Jcleared",
        "nul\0",
        "del\u{7f}",
        "c1\u{9b}31m",
        "tab\there",
        "\u{202E}txt.exe",
        "iso\u{2066}late",
        "mark\u{200F}",
        "arabic\u{061C}mark",
    ] {
        let refused = daemon
            .post(
                "/connections",
                json!({ "connector": "echo", "label": label }),
            )
            .await;
        assert_problem(&refused, 422, "label");
        assert!(
            refused
                .body
                .to_string()
                .contains("printable text on one line"),
            "{label:?}: {}",
            refused.body
        );
    }
    for id_shaped in [
        id.clone(),
        id.to_uppercase(),
        id.replace('-', ""),
        "00000000-0000-0000-0000-000000000000".to_owned(),
    ] {
        let refused = daemon
            .post(
                "/connections",
                json!({ "connector": "echo", "label": id_shaped }),
            )
            .await;
        assert_problem(&refused, 422, "label");
        assert!(
            refused.body.to_string().contains("connection id"),
            "{}",
            refused.body
        );
    }
    let renamed = daemon
        .send(
            daemon
                .http
                .patch(daemon.api(&format!("/connections/{id}")))
                .bearer_auth(&daemon.token)
                .json(&json!({ "label": "sneaky\u{1b}]0;title\u{7}" })),
        )
        .await;
    assert_problem(&renamed, 422, "label");
    let list = daemon.get("/connections").await.body;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["label"], "main");
    // Printable text in any script is fine.
    daemon
        .create_connection(
            json!({ "connector": "echo", "label": "chaîne d'été 🎥", "enabled": false }),
        )
        .await;
}

/// What the framework would answer by itself (a query value of the wrong
/// type, a path number too large, a wrong method, an unknown route, under
/// `/api/v1` and `/hooks`) is problem+json naming the parameter, and the
/// OpenAPI document declares every error response as problem+json.
async fn framework_errors_are_problems_naming_the_parameter(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;

    let bad_value = daemon.get("/jobs?limit=ten").await;
    assert_problem(&bad_value, 400, "limit");
    let bad_after = daemon.get("/events?after=yesterday").await;
    assert_problem(&bad_after, 400, "after");

    let huge = daemon.get("/events/99999999999999999999999/trace").await;
    assert_problem(&huge, 400, "id");
    assert!(
        huge.body["detail"]
            .as_str()
            .unwrap()
            .contains("99999999999999999999999"),
        "{}",
        huge.body
    );

    let wrong_method = daemon
        .http
        .delete(daemon.api("/connectors"))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let allow = wrong_method.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");
    let wrong_method = daemon
        .send(
            daemon
                .http
                .delete(daemon.api("/connectors"))
                .bearer_auth(&daemon.token),
        )
        .await;
    assert_problem(&wrong_method, 405, "method");
    let hook_get = daemon
        .send(daemon.http.get(format!("{}/hooks/deploys", daemon.url)))
        .await;
    assert_problem(&hook_get, 405, "method");

    let unknown_route = daemon.get("/connections/x/y/z").await;
    assert_problem(&unknown_route, 404, "path");
    let unknown_hook_route = daemon
        .send(
            daemon
                .http
                .post(format!("{}/hooks/a/b", daemon.url))
                .body("{}"),
        )
        .await;
    assert_problem(&unknown_hook_route, 404, "path");

    let doc: Value = daemon
        .send(daemon.http.get(daemon.api("/openapi.json")))
        .await
        .body;
    let create = &doc["paths"]["/connections"]["post"]["responses"];
    for status in ["400", "401", "413", "415", "422"] {
        assert_eq!(
            create[status]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "POST /connections declares {status}: {create}"
        );
    }
    assert!(doc["paths"]["/jobs"]["get"]["responses"]["400"].is_object());
    assert!(doc["paths"]["/jobs/{id}"]["get"]["responses"]["404"].is_object());
    assert!(
        doc["paths"]["/health"]["get"]["responses"]["401"].is_null(),
        "health needs no token"
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let types: Vec<&String> =
                        response["content"].as_object().unwrap().keys().collect();
                    assert_eq!(
                        types,
                        ["application/problem+json"],
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

/// Lenient input is refused rather than guessed at: JSON with trailing
/// garbage, a page size out of range, a query key the endpoint does not
/// have, an archive the connection does not keep.
async fn lenient_input_is_refused_naming_the_parameter(db: Db) {
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;

    for body in [
        r#"{"connector":"echo","label":"tail"} xyz"#,
        r#"{"connector":"echo","label":"tail"}{}"#,
    ] {
        let trailing = daemon
            .send(
                daemon
                    .http
                    .post(daemon.api("/connections"))
                    .bearer_auth(&daemon.token)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_problem(&trailing, 400, "body");
    }
    let padded = daemon
        .send(
            daemon
                .http
                .post(daemon.api("/connections"))
                .bearer_auth(&daemon.token)
                .header("content-type", "application/json")
                .body("{\"connector\":\"echo\",\"label\":\"ok\"} \n"),
        )
        .await;
    assert_eq!(padded.status, 201, "whitespace after the value is fine");
    let id = padded.body["id"].as_str().unwrap().to_owned();
    let connections = daemon.get("/connections").await.body;
    assert_eq!(connections.as_array().unwrap().len(), 1, "{connections}");

    for path in ["/jobs", "/events", "/rules/runs"] {
        for limit in ["-1", "0", "100000"] {
            let reply = daemon.get(&format!("{path}?limit={limit}")).await;
            assert_problem(&reply, 400, "limit");
        }
        assert_eq!(daemon.get(&format!("{path}?limit=5")).await.status, 200);
    }
    let deliveries = daemon
        .get(&format!("/webhooks/{id}/deliveries?limit=0"))
        .await;
    assert_problem(&deliveries, 400, "limit");

    let unknown_key = daemon.get("/jobs?kind=echo.say").await;
    assert_problem(&unknown_key, 400, "kind");
    let unknown_key = daemon.get("/events?kind=connection.").await;
    assert_problem(&unknown_key, 400, "kind");
    assert!(
        unknown_key.body["detail"]
            .as_str()
            .unwrap()
            .contains("type"),
        "names the keys it knows: {}",
        unknown_key.body
    );
    let repeated = daemon.get("/jobs?limit=1&limit=2").await;
    assert_problem(&repeated, 400, "limit");

    let no_archive = daemon
        .get(&format!("/connections/{id}/archive/lurkers"))
        .await;
    assert_problem(&no_archive, 400, "kind");
    let twitch_kind = daemon.get("/twitch/stream/lurkers").await;
    assert_problem(&twitch_kind, 400, "kind");
    assert!(
        twitch_kind.body["detail"]
            .as_str()
            .unwrap()
            .contains("followers, subscriptions, raids, cheers"),
        "{}",
        twitch_kind.body
    );
    assert!(
        no_archive.body["detail"]
            .as_str()
            .unwrap()
            .contains("keeps no archive"),
        "{}",
        no_archive.body
    );

    assert_eq!(daemon.get("/jobs").await.body, json!([]));
}
