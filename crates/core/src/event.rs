//! Events: something that happened. Trigger events come from connectors
//! (`twitch.chat.message`, `cron.fired`, ...); system events from the daemon
//! (`connection.status`, `job.finished`, ...).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{ConnectionStatus, Job};

/// Event type of a connection status transition.
pub const CONNECTION_STATUS: &str = "connection.status";
/// Event type published when a job reaches a final state or is scheduled for retry.
pub const JOB_FINISHED: &str = "job.finished";
/// Event type published when a job is created.
pub const JOB_QUEUED: &str = "job.queued";

/// An event before it has been given its place in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Dotted event type, such as `connection.status`.
    pub kind: String,
    pub connection_id: Option<String>,
    pub payload: Value,
}

/// An event as stored in the event log: `id` is its position, strictly
/// increasing in the order events were published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    pub connection_id: Option<String>,
    pub payload: Value,
    /// Epoch milliseconds.
    pub at: i64,
}

impl NewEvent {
    pub fn new(kind: impl Into<String>, connection_id: Option<String>, payload: Value) -> Self {
        Self {
            kind: kind.into(),
            connection_id,
            payload,
        }
    }

    /// The `connection.status` event for a transition from `previous` to `status`.
    pub fn connection_status(
        connection_id: &str,
        previous: Option<&ConnectionStatus>,
        status: &ConnectionStatus,
    ) -> Self {
        Self::new(
            CONNECTION_STATUS,
            Some(connection_id.to_owned()),
            json!({
                "status": status.kind,
                "previous": previous.map(|p| p.kind),
                "reason": status.reason,
            }),
        )
    }

    /// The `job.queued` event for a new job.
    pub fn job_queued(job: &Job) -> Self {
        Self::new(
            JOB_QUEUED,
            Some(job.connection_id.clone()),
            json!({ "job_id": job.id, "action": job.action }),
        )
    }

    /// The `job.finished` event for a job that reached `succeeded`, `failed` or `dead`.
    pub fn job_finished(job: &Job) -> Self {
        Self::new(
            JOB_FINISHED,
            Some(job.connection_id.clone()),
            json!({
                "job_id": job.id,
                "action": job.action,
                "state": job.state,
                "attempts": job.attempts,
                "error": job.error,
            }),
        )
    }
}
