//! The `echo` connector: a small, real connector that exercises everything a
//! connector can do, with no account anywhere. It is the test connector of the
//! suite, the load of the job benchmark and the first connection of
//! `switchboard demo`.
//!
//! * **Connect**: when `probe_url` is set, `GET probe_url` with
//!   `Authorization: Bearer <token secret>`: 2xx connects, 401/403 means the
//!   credentials were rejected (`needs_reauth`), anything else is transient.
//!   This is how tests see that a restarted runtime really uses new secrets.
//! * **Trigger**: `echo.heartbeat` every `heartbeat_ms` when set.
//! * **Actions**: `echo.say` returns its message (with optional simulated
//!   work and failures) and appends one line per execution to `record_file`,
//!   so a test can count executions across crashes; `echo.probe` calls the
//!   probe URL again with the current token.
//! * **Files it may write**: `record_file` is a relative path resolved under
//!   `<data_dir>/echo/`. Absolute paths and `..` are refused when the
//!   settings are checked, so the admin API cannot use the echo connector to
//!   create or append to any other file of the machine.
//!
//! Files: `auth.rs` (the probe), `actions.rs`, `triggers.rs`, as in every
//! connector.

mod actions;
mod auth;
mod triggers;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::{
    ActionCall, ActionError, ActionSpec, AuthKind, Connector, ConnectorError, ConnectorManifest,
    RuntimeContext, SecretSpec, Session, TriggerSpec,
};
use tokio_util::sync::CancellationToken;

/// Settings of an echo connection (see the settings schema in [`manifest`]).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EchoSettings {
    pub greeting: Option<String>,
    pub record_file: Option<String>,
    pub work_ms: u64,
    pub probe_url: Option<String>,
    pub heartbeat_ms: Option<u64>,
}

fn manifest() -> ConnectorManifest {
    ConnectorManifest {
        name: "echo".into(),
        display_name: "Echo (test connector)".into(),
        description: "Answers with what it is given. Proves connections, secrets, restarts and jobs end to end without any account.".into(),
        auth: AuthKind::Secrets,
        settings_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "greeting": {"type": "string", "maxLength": 200, "description": "Prefix of every answer."},
                "record_file": {"type": "string", "minLength": 1, "maxLength": 255, "description": "File that gets one line per action execution (job id, attempt): a relative path such as `executions.log`, kept under the daemon's `<data_dir>/echo/` folder (absolute paths and `..` are refused)."},
                "work_ms": {"type": "integer", "minimum": 0, "maximum": 600000, "description": "Simulated work per action, in milliseconds."},
                "probe_url": {"type": "string", "pattern": "^https?://", "description": "URL fetched with the token on connect; 401/403 means the token was rejected."},
                "heartbeat_ms": {"type": "integer", "minimum": 100, "maximum": 86400000, "description": "Emit echo.heartbeat this often."}
            }
        }),
        secrets: vec![SecretSpec {
            name: "token".into(),
            description: "Sent as a bearer token to probe_url.".into(),
            required: false,
        }],
        triggers: vec![TriggerSpec {
            event_type: "echo.heartbeat".into(),
            description: "A beat every heartbeat_ms while connected.".into(),
            payload_schema: json!({"type": "object", "properties": {"beat": {"type": "integer"}}}),
        }],
        actions: vec![
            ActionSpec {
                name: "echo.say".into(),
                description: "Echo a message back. Use it to test that a connection runs actions; returns the message with the connection's greeting.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["message"],
                    "properties": {
                        "message": {"type": "string", "maxLength": 10000},
                        "work_ms": {"type": "integer", "minimum": 0, "maximum": 600000, "description": "Extra simulated work for this call."},
                        "fail_attempts": {"type": "integer", "minimum": 0, "maximum": 100, "description": "Fail transiently on the first N attempts."},
                        "fail_permanently": {"type": "boolean", "description": "Fail with a permanent error."},
                        "reject_credentials": {"type": "boolean", "description": "Fail as if the service rejected the credentials."}
                    }
                }),
                result_schema: json!({
                    "type": "object",
                    "properties": {"message": {"type": "string"}, "attempt": {"type": "integer"}}
                }),
            },
            ActionSpec {
                name: "echo.probe".into(),
                description: "Call the probe URL with the current token and return its HTTP status.".into(),
                params_schema: json!({"type": "object", "additionalProperties": false, "properties": {}}),
                result_schema: json!({"type": "object", "properties": {"status": {"type": "integer"}}}),
            },
        ],
    }
}

pub struct EchoConnector {
    manifest: ConnectorManifest,
    http: reqwest::Client,
    /// Where `record_file`s live (`<data_dir>/echo`); `None` refuses them.
    record_dir: Option<PathBuf>,
}

impl Default for EchoConnector {
    fn default() -> Self {
        // reqwest is built without a bundled TLS provider (ring instead of aws-lc:
        // a much lighter build); install it once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        EchoConnector {
            manifest: manifest(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("a default HTTP client builds"),
            record_dir: None,
        }
    }
}

impl EchoConnector {
    /// An echo connector that writes no files (`record_file` is refused).
    pub fn new() -> EchoConnector {
        EchoConnector::default()
    }

    /// An echo connector whose `record_file`s live under
    /// `<data_dir>/echo/`.
    pub fn with_data_dir(data_dir: &Path) -> EchoConnector {
        EchoConnector {
            record_dir: Some(data_dir.join("echo")),
            ..EchoConnector::default()
        }
    }

    /// The file a `record_file` setting names, under the record folder.
    fn record_path(&self, record_file: &str) -> Result<PathBuf, String> {
        check_record_file(record_file)?;
        match &self.record_dir {
            Some(dir) => Ok(dir.join(record_file)),
            None => Err(
                "this echo connector was built without a data dir; leave `record_file` unset"
                    .into(),
            ),
        }
    }
}

/// A `record_file` must stay inside the record folder: relative, made of
/// plain names only (no root, no `..`).
fn check_record_file(record_file: &str) -> Result<(), String> {
    let path = Path::new(record_file);
    let plain = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !plain || path.file_name().is_none() {
        return Err(format!(
            "`{record_file}` is not allowed: give a file name relative to the data dir's `echo/` folder, such as `executions.log` (no leading `/`, no `..`)"
        ));
    }
    Ok(())
}

#[async_trait]
impl Connector for EchoConnector {
    fn manifest(&self) -> &ConnectorManifest {
        &self.manifest
    }

    fn check_settings(&self, settings: &Value) -> Result<(), Vec<(String, String)>> {
        match settings.get("record_file").and_then(Value::as_str) {
            Some(record_file) => self
                .record_path(record_file)
                .map(|_| ())
                .map_err(|message| vec![("record_file".to_owned(), message)]),
            None => Ok(()),
        }
    }

    async fn connect(&self, ctx: RuntimeContext) -> Result<Arc<dyn Session>, ConnectorError> {
        let settings: EchoSettings = serde_json::from_value(ctx.settings.clone())
            .map_err(|e| ConnectorError::Misconfigured(format!("echo settings: {e}")))?;
        let token = ctx.secrets.get("token").cloned();
        let probe = auth::Probe::new(self.http.clone(), settings.probe_url.clone(), token);
        probe.check().await?;
        let recorder = match &settings.record_file {
            Some(record_file) => {
                let path = self
                    .record_path(record_file)
                    .map_err(|e| ConnectorError::Misconfigured(format!("record_file: {e}")))?;
                Some(actions::Recorder::open(&path).map_err(|e| {
                    ConnectorError::Misconfigured(format!(
                        "cannot open record_file `{}`: {e}",
                        path.display()
                    ))
                })?)
            }
            None => None,
        };
        Ok(Arc::new(EchoSession {
            settings,
            probe,
            recorder,
            ctx,
        }))
    }
}

struct EchoSession {
    settings: EchoSettings,
    probe: auth::Probe,
    recorder: Option<actions::Recorder>,
    ctx: RuntimeContext,
}

#[async_trait]
impl Session for EchoSession {
    async fn run(&self, cancel: CancellationToken) -> Result<(), ConnectorError> {
        match self.settings.heartbeat_ms {
            Some(ms) => triggers::heartbeat(&self.ctx, ms, cancel).await,
            None => {
                cancel.cancelled().await;
                Ok(())
            }
        }
    }

    async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError> {
        match call.action.as_str() {
            "echo.say" => actions::say(&self.settings, self.recorder.as_ref(), &call).await,
            "echo.probe" => actions::probe(&self.probe).await,
            other => Err(ActionError::InvalidParams {
                field: "action".into(),
                message: format!("echo has no action `{other}`"),
            }),
        }
    }

    /// The probe, called again with the current token (when there is one).
    async fn check(&self) -> Result<Value, ActionError> {
        match self.probe.call().await {
            None => Ok(serde_json::json!({ "probe": "no probe_url set: nothing to check" })),
            result => Ok(serde_json::json!({ "status": auth::Probe::as_action_result(result)? })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(connector: &EchoConnector, record_file: &str) -> String {
        let problems = connector
            .check_settings(&json!({ "record_file": record_file }))
            .unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "record_file");
        problems[0].1.clone()
    }

    #[test]
    fn record_files_stay_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let connector = EchoConnector::with_data_dir(dir.path());
        for outside in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "logs/../../../tmp/x",
            "..",
            ".",
            "",
        ] {
            let message = refused(&connector, outside);
            assert!(message.contains("echo/"), "{outside}: {message}");
        }
        assert_eq!(
            connector.check_settings(&json!({ "record_file": "executions.log" })),
            Ok(())
        );
        assert_eq!(
            connector.record_path("runs/a.log").unwrap(),
            dir.path().join("echo").join("runs/a.log")
        );
    }

    #[test]
    fn without_a_data_dir_no_file_is_written() {
        let message = refused(&EchoConnector::new(), "executions.log");
        assert!(message.contains("leave `record_file` unset"), "{message}");
        assert_eq!(EchoConnector::new().check_settings(&json!({})), Ok(()));
    }
}
