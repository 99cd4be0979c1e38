//! The test harness: a real `switchboard serve` process on a random port
//! with a temporary data dir, on SQLite or on a fresh PostgreSQL database,
//! in one line: `let daemon = Fixture::new(db).await.start().await;`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// `switchboard demo` on a free loopback port (in `data_dir`, else its
/// default), cut off from this process's switchboard environment; stdout
/// piped (read it with [`stdout_lines`]), stderr discarded unless the caller
/// changes it before spawning.
pub fn demo_command(data_dir: Option<&Path>) -> Command {
    let mut command = Command::new(BIN);
    command.args(["demo", "--listen", "127.0.0.1:0"]);
    if let Some(dir) = data_dir {
        command.arg("--data-dir").arg(dir);
    }
    command
        .env_remove("SWITCHBOARD_DATA_DIR")
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .env_remove("SWITCHBOARD_RULES__FILE")
        .env_remove("SWITCHBOARD_MASTER_KEY")
        .env("SWITCHBOARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// The lines a child writes to its piped stdout, as they come.
pub fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Run a test function on both databases: `on_both_databases!(name);`
/// makes `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Db::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Db::Postgres).await
                }
            }
        )*
    };
}

fn postgres_admin_url() -> String {
    std::env::var("SWITCHBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A data dir and a database that outlive daemon restarts.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub db: Db,
    pub database_url: String,
    pg_database: Option<String>,
    pub token: Option<String>,
    /// Everything every daemon of this fixture printed (stdout and stderr).
    pub output: Arc<Mutex<String>>,
    pub env: Vec<(String, String)>,
}

impl Fixture {
    pub async fn new(db: Db) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database_url, pg_database) = match db {
            Db::Sqlite => (
                format!("sqlite://{}", dir.path().join("switchboard.db").display()),
                None,
            ),
            Db::Postgres => {
                let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {admin} is needed for the postgres tests: {e}")
                    });
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .unwrap_or(admin);
                (format!("{base}/{name}"), Some(name))
            }
        };
        Fixture {
            dir,
            db,
            database_url,
            pg_database,
            token: None,
            output: Arc::new(Mutex::new(String::new())),
            env: vec![
                ("SWITCHBOARD_JOBS__RETRY_BASE_MS".into(), "50".into()),
                ("SWITCHBOARD_JOBS__POLL_MS".into(), "100".into()),
                ("SWITCHBOARD_JOBS__LEASE_SECS".into(), "2".into()),
                (
                    "SWITCHBOARD_SUPERVISOR__RECONNECT_MIN_MS".into(),
                    "50".into(),
                ),
                (
                    "SWITCHBOARD_SUPERVISOR__RECONNECT_MAX_MS".into(),
                    "500".into(),
                ),
            ],
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Fixture {
        self.env.push((key.into(), value.into()));
        self
    }

    /// A `switchboard` command with this fixture's configuration.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for (key, _) in std::env::vars() {
            if key.starts_with("SWITCHBOARD_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("SWITCHBOARD_DATA_DIR", self.data_dir())
            .env("SWITCHBOARD_DATABASE_URL", &self.database_url)
            .env("SWITCHBOARD_LISTEN", "127.0.0.1:0")
            .env("SWITCHBOARD_LOG", "debug,sqlx=warn")
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Start a daemon; panics with its output if it does not come up.
    pub async fn start(&mut self) -> Daemon {
        self.try_start()
            .await
            .unwrap_or_else(|output| panic!("daemon did not start:\n{output}"))
    }

    /// Start a daemon, or return its output if it exits first.
    pub async fn try_start(&mut self) -> Result<Daemon, String> {
        let mut child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchboard");
        let own = Arc::new(Mutex::new(String::new()));
        for reader in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let all = self.output.clone();
            let own = own.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    all.lock().unwrap().push_str(&format!("{line}\n"));
                    own.lock().unwrap().push_str(&format!("{line}\n"));
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let text = own.lock().unwrap().clone();
            if let Some(rest) = text.split("listening on ").nth(1) {
                let url = rest.lines().next().unwrap().trim().to_owned();
                if let Some(token) = text.split("store it now): ").nth(1) {
                    self.token = Some(token.lines().next().unwrap().trim().to_owned());
                }
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!("exit {status}\n{}", own.lock().unwrap()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("timed out\n{}", own.lock().unwrap()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let daemon = Daemon {
            child,
            url,
            token: self
                .token
                .clone()
                .expect("the first start prints the admin token"),
            http: reqwest::Client::new(),
            output: own,
        };
        Ok(daemon)
    }

    /// Everything the daemons printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Every row of every table as text (PostgreSQL), or the raw bytes of
    /// the database files (SQLite), for looking for plaintext.
    pub async fn database_bytes(&self) -> Vec<u8> {
        match self.db {
            Db::Sqlite => {
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(self.data_dir()).unwrap() {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().to_string();
                    if name.starts_with("switchboard.db") {
                        bytes.extend(std::fs::read(&path).unwrap());
                    }
                }
                assert!(!bytes.is_empty(), "no database files found");
                bytes
            }
            Db::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.database_url)
                    .await
                    .unwrap();
                let tables: Vec<(String,)> = sqlx::query_as(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                let mut text = String::new();
                for (table,) in tables {
                    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT row_to_json(t)::text FROM \"{table}\" t"
                    )))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                    for (row,) in rows {
                        text.push_str(&row);
                        text.push('\n');
                    }
                }
                text.into_bytes()
            }
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(name) = self.pg_database.take() {
            // Drop only the database this fixture created.
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running `switchboard serve` process.
pub struct Daemon {
    child: Child,
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
    output: Arc<Mutex<String>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("daemon answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            content_type,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.api(path)).bearer_auth(&self.token))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(
            self.http
                .post(self.api(path))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(
            self.http
                .put(self.api(path))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(self.api(path)).bearer_auth(&self.token))
            .await
    }

    /// Create a connection and return its id (asserting 201).
    pub async fn create_connection(&self, body: Value) -> String {
        let reply = self.post("/connections", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn status_of(&self, connection: &str) -> Value {
        self.get(&format!("/connections/{connection}/status"))
            .await
            .body
    }

    /// Wait until the connection has `status`.
    pub async fn wait_status(&self, connection: &str, status: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..300 {
            last = self.status_of(connection).await;
            if last["status"] == status {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "connection {connection} never reached {status}; last: {last}\n{}",
            self.output()
        );
    }

    pub async fn submit(&self, connection: &str, action: &str, params: Value) -> Value {
        let reply = self
            .post(
                "/jobs",
                json!({ "connection_id": connection, "action": action, "params": params }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// Wait until the job is in a final state and return it.
    pub async fn wait_job(&self, id: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            last = self.get(&format!("/jobs/{id}")).await.body;
            if matches!(
                last["state"].as_str(),
                Some("succeeded" | "failed" | "dead")
            ) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} never finished; last: {last}\n{}", self.output());
    }

    /// SIGKILL: no shutdown work at all.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill");
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "daemon exited with {status}\n{}",
                    self.output()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("daemon did not stop on SIGTERM\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny HTTP server standing in for a service that checks tokens: it
/// accepts `Bearer <one of accepted>` and records every Authorization header.
pub struct Probe {
    pub url: String,
    pub seen: Arc<Mutex<Vec<String>>>,
    /// While true the probe answers 503, like a service that is down.
    pub down: Arc<std::sync::atomic::AtomicBool>,
}

impl Probe {
    pub async fn start(accepted: &[&str]) -> Probe {
        use axum::http::HeaderMap;
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let accepted = Arc::new(Mutex::new(
            accepted.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, a, d) = (seen.clone(), accepted.clone(), down.clone());
        let app = axum::Router::new().route(
            "/check",
            axum::routing::get(move |headers: HeaderMap| {
                let (s, a, d) = (s.clone(), a.clone(), d.clone());
                async move {
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    s.lock().unwrap().push(auth.clone());
                    if d.load(std::sync::atomic::Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let token = auth.strip_prefix("Bearer ").unwrap_or("");
                    if a.lock().unwrap().iter().any(|t| t == token) {
                        StatusCode::OK
                    } else {
                        StatusCode::UNAUTHORIZED
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/check", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Probe { url, seen, down }
    }

    pub fn last_seen(&self) -> Option<String> {
        self.seen.lock().unwrap().last().cloned()
    }
}
