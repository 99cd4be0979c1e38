//! Jobs: one durable action invocation each (an outbox row).
//!
//! Life of a job: `queued -> running -> succeeded | failed | dead`. A retryable
//! error sends a running job back to `queued` with a later `next_attempt_at`;
//! `failed` means the error is permanent (retrying cannot help), `dead` means
//! the retries ran out. A job whose connection cannot run actions (for example
//! `needs_reauth`) goes back to `queued` with a `waiting_reason` and does not
//! spend an attempt.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Dead,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Dead
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown job state `{s}`"))
    }
}

/// Why a job attempt failed, as stored on the job and shown to users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    /// Stable, greppable code such as `invalid_params` or `unavailable`.
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub connection_id: String,
    pub action: String,
    pub params: Value,
    pub state: JobState,
    /// Attempts started so far (a crash-recovered attempt counts).
    pub attempts: i64,
    pub max_attempts: i64,
    /// Epoch milliseconds at which a queued job becomes due.
    pub next_attempt_at: i64,
    pub idempotency_key: Option<String>,
    pub result: Option<Value>,
    pub error: Option<JobError>,
    /// Set while the job waits for its connection (for example `needs_reauth`).
    pub waiting_reason: Option<String>,
    /// How many times the job was found `running` after a crash and re-queued.
    /// Those attempts may have run their side effect already (at-least-once).
    pub recovered: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}
