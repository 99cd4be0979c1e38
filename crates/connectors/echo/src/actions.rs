//! The echo actions.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::{ActionCall, ActionError};

use crate::EchoSettings;
use crate::auth::Probe;

/// Appends one line per execution. Each line is a single `write` on a file
/// opened with O_APPEND, so lines never interleave and a line written before
/// a crash (even SIGKILL) is in the file.
pub(crate) struct Recorder {
    file: Mutex<File>,
}

impl Recorder {
    pub(crate) fn open(path: &std::path::Path) -> std::io::Result<Recorder> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Recorder {
            file: Mutex::new(file),
        })
    }

    fn record(&self, call: &ActionCall) -> std::io::Result<()> {
        let line = format!("{}\t{}\t{}\n", call.job_id, call.attempt, call.recovered);
        self.file
            .lock()
            .expect("recorder poisoned")
            .write_all(line.as_bytes())
    }
}

#[derive(Deserialize)]
struct SayParams {
    message: String,
    #[serde(default)]
    work_ms: u64,
    #[serde(default)]
    fail_attempts: i64,
    #[serde(default)]
    fail_permanently: bool,
    #[serde(default)]
    reject_credentials: bool,
}

pub(crate) async fn say(
    settings: &EchoSettings,
    recorder: Option<&Recorder>,
    call: &ActionCall,
) -> Result<Value, ActionError> {
    let params: SayParams =
        serde_json::from_value(call.params.clone()).map_err(|e| ActionError::InvalidParams {
            field: "params".into(),
            message: e.to_string(),
        })?;
    let work = settings.work_ms + params.work_ms;
    if work > 0 {
        tokio::time::sleep(Duration::from_millis(work)).await;
    }
    if params.reject_credentials {
        return Err(ActionError::NeedsReauth(
            "echo was asked to reject the credentials".into(),
        ));
    }
    if params.fail_permanently {
        return Err(ActionError::Permanent(
            "echo was asked to fail permanently".into(),
        ));
    }
    if call.attempt <= params.fail_attempts {
        return Err(ActionError::transient(format!(
            "echo was asked to fail the first {} attempts (this is attempt {})",
            params.fail_attempts, call.attempt
        )));
    }
    if let Some(recorder) = recorder {
        recorder
            .record(call)
            .map_err(|e| ActionError::transient(format!("cannot write record_file: {e}")))?;
    }
    let message = match &settings.greeting {
        Some(greeting) => format!("{greeting} {}", params.message),
        None => params.message,
    };
    Ok(json!({ "message": message, "attempt": call.attempt }))
}

pub(crate) async fn probe(probe: &Probe) -> Result<Value, ActionError> {
    let status = Probe::as_action_result(probe.call().await)?;
    Ok(json!({ "status": status }))
}
