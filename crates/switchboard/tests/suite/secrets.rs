//! Secrets never appear in plain text: not in the database, the logs or the API.

use serde_json::json;

use crate::common::{Db, Fixture};
use crate::on_both_databases;

on_both_databases!(no_plaintext_secret_in_database_logs_or_api);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn no_plaintext_secret_in_database_logs_or_api(db: Db) {
    let first = format!("sb-plain-{}", uuid::Uuid::new_v4().simple());
    let second = format!("sb-plain-{}", uuid::Uuid::new_v4().simple());
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = daemon
        .create_connection(
            json!({ "connector": "echo", "label": "vaulted", "secrets": { "token": first } }),
        )
        .await;
    daemon.wait_status(&id, "connected").await;
    daemon
        .put(
            &format!("/connections/{id}/secrets"),
            json!({ "token": second }),
        )
        .await;
    daemon.wait_status(&id, "connected").await;
    let job = daemon
        .submit(&id, "echo.say", json!({ "message": "hi" }))
        .await;
    daemon.wait_job(job["id"].as_str().unwrap()).await;

    let api_text = format!(
        "{}{}{}",
        daemon.get("/connections").await.body,
        daemon.get(&format!("/connections/{id}")).await.body,
        daemon.get("/events?limit=1000").await.body
    );
    daemon.stop();

    let database = fixture.database_bytes().await;
    let logs = fixture.output();
    assert!(
        logs.contains("connection status"),
        "the logs were captured at debug level"
    );
    for secret in [&first, &second] {
        assert!(
            !contains(&database, secret.as_bytes()),
            "plaintext secret in the database"
        );
        assert!(
            !contains(&database, hex_of(secret).as_bytes()),
            "plaintext secret (hex) in the database"
        );
        assert!(!logs.contains(secret.as_str()), "secret in the logs");
        assert!(
            !api_text.contains(secret.as_str()),
            "secret in an API answer"
        );
    }
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}
