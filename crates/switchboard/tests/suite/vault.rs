//! Master key rotation and refusing a wrong key.

use serde_json::json;

use crate::common::{Db, Fixture, Probe};
use crate::on_both_databases;

on_both_databases!(
    rotate_key_then_restart_keeps_every_secret,
    a_key_from_the_environment_cannot_be_rotated_online
);

async fn rotate_key_then_restart_keeps_every_secret(db: Db) {
    let probe = Probe::start(&["rotating-1", "rotating-2"]).await;
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let mut ids = Vec::new();
    for (label, token) in [("one", "rotating-1"), ("two", "rotating-2")] {
        let id = daemon
            .create_connection(json!({
                "connector": "echo", "label": label,
                "settings": { "probe_url": probe.url },
                "secrets": { "token": token },
            }))
            .await;
        daemon.wait_status(&id, "connected").await;
        ids.push(id);
    }
    let key_file = fixture.data_dir().join("master.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();

    let output = fixture
        .command()
        .args([
            "vault",
            "rotate-key",
            "--url",
            &daemon.url,
            "--token",
            &daemon.token,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("2 data keys re-wrapped"));
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(old_key, new_key);

    // Still running: secrets decrypt under the new key without downtime.
    let reply = daemon
        .post(&format!("/connections/{}/restart", ids[0]), json!({}))
        .await;
    assert_eq!(reply.status, 200);
    daemon.wait_status(&ids[0], "connected").await;
    daemon.stop();

    // After a restart every secret still decrypts.
    probe.seen.lock().unwrap().clear();
    let daemon = fixture.start().await;
    for id in &ids {
        daemon.wait_status(id, "connected").await;
    }
    let mut seen = probe.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["Bearer rotating-1", "Bearer rotating-2"]);
    daemon.stop();

    // The old key no longer opens the vault, and nothing is overwritten.
    fixture
        .env
        .push(("SWITCHBOARD_MASTER_KEY".into(), old_key.trim().into()));
    let refused = fixture
        .try_start()
        .await
        .err()
        .expect("the old key must be refused");
    assert!(refused.contains("does not open this vault"), "{refused}");
    assert!(refused.contains("exit exit status: 2"), "{refused}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), new_key);
}

async fn a_key_from_the_environment_cannot_be_rotated_online(db: Db) {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let mut fixture = Fixture::new(db)
        .await
        .with_env("SWITCHBOARD_MASTER_KEY", key);
    let daemon = fixture.start().await;
    assert!(
        !fixture.data_dir().join("master.key").exists(),
        "no key file when the key comes from the environment"
    );
    let reply = daemon.post("/vault/rotate-key", json!({})).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(reply.body["code"], "key_from_environment");
    assert!(reply.body["detail"].as_str().unwrap().contains("--offline"));
    daemon.stop();

    // Offline rotation with the new key in SWITCHBOARD_NEW_MASTER_KEY.
    let new_key = "HxwdHhscGxoZGBcWFRQTEhEQDw4NDAsKCQgHBgUEAwI=";
    let output = fixture
        .command()
        .args(["vault", "rotate-key", "--offline"])
        .env("SWITCHBOARD_NEW_MASTER_KEY", new_key)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        fixture.try_start().await.is_err(),
        "the old key no longer opens the vault"
    );
    fixture
        .env
        .push(("SWITCHBOARD_MASTER_KEY".into(), new_key.into()));
    fixture.start().await.stop();
}
