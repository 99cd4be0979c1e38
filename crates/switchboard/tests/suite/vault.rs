//! Master key rotation, refusing a wrong key or a key file others can read,
//! and offline commands that refuse a data dir without a vault.

use serde_json::json;

use crate::common::{Db, Fixture, Probe};
use crate::on_both_databases;

on_both_databases!(
    rotate_key_then_restart_keeps_every_secret,
    a_key_from_the_environment_cannot_be_rotated_online,
    offline_rotation_refuses_a_database_without_a_vault_and_creates_nothing,
    a_key_file_others_can_read_is_refused_at_start
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

/// The file names in `dir` (empty when it does not exist).
fn files_in(dir: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}

/// A fixture that never started: an empty data dir and (PostgreSQL) an
/// empty database. Offline rotation, with a key file or a key from the
/// environment, refuses, names the place it looked at, and creates nothing.
async fn offline_rotation_refuses_a_database_without_a_vault_and_creates_nothing(db: Db) {
    let fixture = Fixture::new(db).await;
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let new_key = "HxwdHhscGxoZGBcWFRQTEhEQDw4NDAsKCQgHBgUEAwI=";
    for env_key in [None, Some(key)] {
        let mut command = fixture.command();
        command.args(["vault", "rotate-key", "--offline"]);
        if let Some(key) = env_key {
            command
                .env("SWITCHBOARD_MASTER_KEY", key)
                .env("SWITCHBOARD_NEW_MASTER_KEY", new_key);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{stdout}\n{stderr}");
        assert!(
            !stdout.contains("rotated") && !stdout.contains("re-wrapped"),
            "{stdout}"
        );
        assert!(stderr.contains("no switchboard vault"), "{stderr}");
        assert!(
            stderr.contains(&fixture.data_dir().display().to_string()),
            "the message names the directory it looked at: {stderr}"
        );
        assert!(stderr.contains("Nothing was created"), "{stderr}");
        assert_eq!(
            files_in(fixture.data_dir()),
            Vec::<String>::new(),
            "nothing created"
        );
    }
    if db == Db::Postgres {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&fixture.database_url)
            .await
            .unwrap();
        let (tables,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(tables, 0, "no schema was created in the empty database");
    }
}

/// A data dir that does not exist (a typo in --data-dir, or no data dir
/// configured at all): refused, and it still does not exist afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_rotation_refuses_a_data_dir_that_does_not_exist() {
    let fixture = Fixture::new(Db::Sqlite).await;
    let missing = fixture.data_dir().join("typo").join("switchboard");
    for with_flag in [true, false] {
        let mut command = fixture.command();
        command
            .env_remove("SWITCHBOARD_DATABASE_URL")
            .args(["vault", "rotate-key", "--offline"]);
        if with_flag {
            command.arg("--data-dir").arg(&missing);
        } else {
            command.env("SWITCHBOARD_DATA_DIR", &missing);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "no switchboard data directory at {}",
                missing.display()
            )),
            "{stderr}"
        );
        assert!(!missing.exists(), "the data dir must not be created");
        assert!(!fixture.data_dir().join("typo").exists());
    }
}

/// Like ssh with a private key: a master.key that group or others can read
/// stops the start, naming the file, its mode and the fix.
async fn a_key_file_others_can_read_is_refused_at_start(db: Db) {
    use std::os::unix::fs::PermissionsExt;
    let mut fixture = Fixture::new(db).await;
    fixture.start().await.stop();
    let key_file = fixture.data_dir().join("master.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the daemon creates the key file private");

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = fixture
        .try_start()
        .await
        .err()
        .expect("a key file others can read must be refused");
    assert!(refused.contains("exit exit status: 2"), "{refused}");
    assert!(
        refused.contains(&format!(
            "the master key file {} is readable by others (mode 0644)",
            key_file.display()
        )),
        "{refused}"
    );
    assert!(
        refused.contains(&format!("chmod 600 {}", key_file.display())),
        "{refused}"
    );

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    fixture.start().await.stop();
}
