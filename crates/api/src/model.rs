//! Request and response bodies of the REST API, with explicit conversions
//! from the domain types. Secret values only ever travel inwards.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::{ConnectorManifest, Event, Job, MediaInfo};
use switchboard_runtime::engine::ConnectionView as DomainConnection;
use utoipa::{IntoParams, ToSchema};

use crate::error::Problem;

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the database answers.
    pub status: String,
    pub version: String,
    /// Process id of the daemon.
    pub pid: u32,
    /// Identity of this process among the nodes sharing the database.
    pub node_id: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    pub uptime_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretSpecView {
    pub name: String,
    pub description: String,
    pub required: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerView {
    pub event_type: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub payload_schema: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionView {
    pub name: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub params_schema: Value,
    #[schema(value_type = Object)]
    pub result_schema: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorView {
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// `none`, `secrets`, `oauth2` or `oauth1`.
    pub auth: String,
    #[schema(value_type = Object)]
    pub settings_schema: Value,
    pub secrets: Vec<SecretSpecView>,
    pub triggers: Vec<TriggerView>,
    pub actions: Vec<ActionView>,
}

impl From<ConnectorManifest> for ConnectorView {
    fn from(m: ConnectorManifest) -> Self {
        ConnectorView {
            name: m.name,
            display_name: m.display_name,
            description: m.description,
            auth: serde_json::to_value(m.auth)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            settings_schema: m.settings_schema,
            secrets: m
                .secrets
                .into_iter()
                .map(|s| SecretSpecView {
                    name: s.name,
                    description: s.description,
                    required: s.required,
                })
                .collect(),
            triggers: m
                .triggers
                .into_iter()
                .map(|t| TriggerView {
                    event_type: t.event_type,
                    description: t.description,
                    payload_schema: t.payload_schema,
                })
                .collect(),
            actions: m
                .actions
                .into_iter()
                .map(|a| ActionView {
                    name: a.name,
                    description: a.description,
                    params_schema: a.params_schema,
                    result_schema: a.result_schema,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    /// `disconnected`, `connecting`, `connected`, `degraded`, `needs_reauth` or `error`.
    pub status: String,
    pub reason: Option<String>,
    /// Epoch milliseconds when this status was entered.
    pub since: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub id: String,
    pub connector: String,
    pub label: String,
    pub enabled: bool,
    #[schema(value_type = Object)]
    pub settings: Value,
    pub status: StatusView,
    /// Names of the secrets that are set. Values are never returned.
    pub secrets_set: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<DomainConnection> for ConnectionView {
    fn from(view: DomainConnection) -> Self {
        let c = view.connection;
        ConnectionView {
            id: c.id,
            connector: c.connector,
            label: c.label,
            enabled: c.enabled,
            settings: c.settings,
            status: StatusView {
                status: c.status.kind.as_str().to_owned(),
                reason: c.status.reason,
                since: c.status.since,
            },
            secrets_set: view.secrets_set,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    /// Connector name, such as `echo`.
    pub connector: String,
    /// A name for this account, unique per connector.
    pub label: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Secret values by name; stored encrypted, never returned.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub secrets: BTreeMap<String, SecretString>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnection {
    pub label: Option<String>,
    pub enabled: Option<bool>,
    /// Replaces all settings.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

/// Secret values by name: a string sets the secret, `null` deletes it.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct SetSecrets(pub BTreeMap<String, Option<SecretString>>);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    pub connection_id: String,
    /// Action name, such as `echo.say`.
    pub action: String,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub params: Value,
    /// A second submit with the same key returns the first job. The
    /// `Idempotency-Key` header does the same.
    pub idempotency_key: Option<String>,
    /// Attempts before the job is `dead` (default 5).
    pub max_attempts: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobErrorView {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub connection_id: String,
    pub action: String,
    #[schema(value_type = Object)]
    pub params: Value,
    /// `queued`, `running`, `succeeded`, `failed` or `dead`.
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_at: i64,
    pub idempotency_key: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub error: Option<JobErrorView>,
    /// Why a queued job waits (for example its connection needs re-authorization).
    pub waiting_reason: Option<String>,
    /// Times the job was re-queued after a crash interrupted it.
    pub recovered: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        JobView {
            id: j.id,
            connection_id: j.connection_id,
            action: j.action,
            params: j.params,
            state: j.state.as_str().to_owned(),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            next_attempt_at: j.next_attempt_at,
            idempotency_key: j.idempotency_key,
            result: j.result,
            error: j.error.map(|e| JobErrorView {
                code: e.code,
                message: e.message,
                retryable: e.retryable,
            }),
            waiting_reason: j.waiting_reason,
            recovered: j.recovered,
            created_at: j.created_at,
            updated_at: j.updated_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// Position in the event log; strictly increasing.
    pub id: i64,
    /// Event type, such as `connection.status`.
    #[serde(rename = "type")]
    pub kind: String,
    pub connection_id: Option<String>,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub at: i64,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            id: e.id,
            kind: e.kind.clone(),
            connection_id: e.connection_id.clone(),
            payload: e.payload.clone(),
            at: e.at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<String>,
    pub connection_id: Option<String>,
    /// Page backwards: only jobs older than this id.
    pub before: Option<String>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only events after this id.
    pub after: Option<i64>,
    /// Only this type; `connection.` or `connection.*` for a prefix.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    pub connection_id: Option<String>,
    /// At most this many (default 100, max 10000).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotateKeyResult {
    pub data_keys_rewrapped: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationView {
    /// Open this in a browser to approve access.
    pub authorize_url: String,
    /// Epoch milliseconds after which the link no longer works.
    pub expires_at: i64,
}

/// A file of the media store. Its id is the first 32 hex characters of the
/// SHA-256 of its bytes: the same bytes always get the same id.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaView {
    /// 32 lowercase hex characters.
    pub id: String,
    /// Read from the bytes: `image/jpeg`, `image/png`, `image/webp`,
    /// `image/gif`, `video/mp4` or `video/quicktime`.
    pub mime_type: String,
    /// In bytes.
    pub size: u64,
    /// The name it was uploaded with, if any.
    pub name: Option<String>,
    pub created_at: i64,
}

impl From<MediaInfo> for MediaView {
    fn from(m: MediaInfo) -> Self {
        MediaView {
            id: m.id,
            mime_type: m.mime_type,
            size: m.size,
            name: m.name,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MediaUploadQuery {
    /// A name to remember the file by (informational, such as `clip.mp4`).
    pub name: Option<String>,
}

/// An action for one or several connections of its connector.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitAction {
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub params: Value,
    /// Connection ids; each must be of the action's connector. Leave out to
    /// use every enabled connection of that connector.
    pub connections: Option<Vec<String>>,
    /// A repeat with the same key returns the same jobs: each connection's job
    /// gets the key `KEY:CONNECTION_ID`. The `Idempotency-Key` header does the
    /// same.
    pub idempotency_key: Option<String>,
}

/// One connection's job of an action.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionJobView {
    pub connection_id: String,
    pub label: String,
    /// The queued job, unless it could not be queued.
    pub job: Option<JobView>,
    /// Why this connection's job could not be queued.
    pub error: Option<Problem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionJobs {
    /// One entry per connection, in the order they were named (or listed).
    pub jobs: Vec<ConnectionJobView>,
}
