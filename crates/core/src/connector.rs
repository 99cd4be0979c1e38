//! The connector contract.
//!
//! A [`Connector`] is a kind of service (x, twitch, obs, echo). It describes
//! itself with a [`ConnectorManifest`] and, given one connection's settings and
//! secrets, opens a [`Session`]. The supervisor (in `switchboard-runtime`) is
//! the only caller: it opens a session when a connection is enabled, drops it
//! and opens a new one when credentials or settings change, and reconnects
//! with backoff when [`Session::run`] reports the connection lost.
//!
//! Connectors never touch the database. Everything they need arrives in the
//! [`RuntimeContext`]; everything they produce leaves through [`RuntimeEnv`]
//! (trigger events, status reports) or as an action result.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::StatusKind;
use crate::media::MediaInfo;

/// How a connector obtains its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// No credentials.
    None,
    /// Secrets typed in by the user (API keys, passwords).
    Secrets,
    /// OAuth 2.0 authorization code flow.
    Oauth2,
    /// OAuth 1.0a three-legged flow.
    Oauth1,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretSpec {
    pub name: String,
    pub description: String,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerSpec {
    /// Event type emitted, such as `obs.scene.changed`.
    pub event_type: String,
    pub description: String,
    /// JSON schema of the event payload.
    pub payload_schema: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSpec {
    /// Action name, such as `obs.set_scene`.
    pub name: String,
    /// Written for a person and a model alike: what it does, when to use it,
    /// what comes back.
    pub description: String,
    /// JSON schema the parameters are validated against before a job is created.
    pub params_schema: Value,
    /// JSON schema of the result.
    pub result_schema: Value,
}

/// What a connector declares about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorManifest {
    /// Short name, such as `x`; prefixes its action and trigger names.
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub auth: AuthKind,
    /// JSON schema of the connection settings.
    pub settings_schema: Value,
    pub secrets: Vec<SecretSpec>,
    pub triggers: Vec<TriggerSpec>,
    pub actions: Vec<ActionSpec>,
}

impl ConnectorManifest {
    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }
}

/// A connection's secrets, by name. Values stay `SecretString` all the way
/// into the connector; they are never logged or serialized.
pub type Secrets = BTreeMap<String, SecretString>;

/// Where a running session reports to. Implemented by the runtime.
#[async_trait]
pub trait RuntimeEnv: Send + Sync + 'static {
    /// Publish a trigger event for this connection.
    async fn emit(&self, event_type: &str, payload: Value);
    /// Report a status change while running (for example `degraded` when
    /// events stop arriving, and `connected` again when they resume).
    async fn report_status(&self, kind: StatusKind, reason: Option<String>);
    /// The connection's secrets as they are in the vault now (another
    /// process may have refreshed a token since this session started).
    async fn load_secrets(&self) -> Result<Secrets, String>;
    /// Write secrets (for example a refreshed token) without restarting the
    /// runtime. `None` deletes.
    async fn store_secrets(
        &self,
        changes: Vec<(String, Option<SecretString>)>,
    ) -> Result<(), String>;
    /// Hold a lock named `key` for this connection across every process that
    /// shares the database, until the guard is dropped. Used so that exactly
    /// one refresh of a rotating token is in flight.
    async fn lock(&self, key: &str) -> Result<Box<dyn Send>, String>;
    /// Durable per-connection state the connector keeps across restarts
    /// (polling cursors such as `since_id`, a cached account identity).
    /// Not secret: stored in plain JSON.
    async fn load_state(&self, key: &str) -> Result<Option<Value>, String>;
    /// Write (`Some`) or delete (`None`) one state value.
    async fn store_state(&self, key: &str, value: Option<Value>) -> Result<(), String>;
    /// A file of the daemon's media store, by its 32-hex content id.
    async fn media(&self, id: &str) -> Result<MediaInfo, String>;
    /// Keep one record in this connection's audit archive (followers,
    /// subscriptions, raids, cheers as they arrive), queryable and exportable
    /// through the API long after the event log has been pruned. `kind` is a
    /// collection name (`followers`); `key` identifies the record within it
    /// (the service's message id), so delivering the same record twice keeps
    /// one. `occurred_at` is epoch milliseconds. Returns `true` when the
    /// record is new, `false` when that key was already archived.
    async fn archive(
        &self,
        kind: &str,
        key: &str,
        occurred_at: i64,
        record: Value,
    ) -> Result<bool, String>;
}

/// What a connector may look up while it checks an action's parameters
/// before a job is created.
#[async_trait]
pub trait ParamsContext: Send + Sync {
    /// A file of the media store, or `None` if there is none with that id.
    async fn media(&self, id: &str) -> Option<MediaInfo>;
}

/// Everything a session needs, handed over by the supervisor at each start.
#[derive(Clone)]
pub struct RuntimeContext {
    pub connection_id: String,
    pub settings: Value,
    pub secrets: Secrets,
    pub env: Arc<dyn RuntimeEnv>,
    /// Cancelled when the supervisor stops or restarts this runtime.
    pub cancel: CancellationToken,
}

/// One action invocation, as a job worker hands it to a session.
#[derive(Debug, Clone)]
pub struct ActionCall {
    pub job_id: String,
    pub action: String,
    pub params: Value,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// True when an earlier attempt of this job was interrupted by a crash
    /// and may have taken effect: the connector should check before acting
    /// again where the service allows it.
    pub recovered: bool,
    pub idempotency_key: Option<String>,
    /// When the job was created, epoch milliseconds: what an earlier,
    /// interrupted attempt can have done happened after this.
    pub created_at: i64,
}

/// Why a session could not be opened, or why it ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The service rejected the credentials: status `needs_reauth`, no retry
    /// until the credentials change.
    #[error("credentials rejected: {0}")]
    NeedsReauth(String),
    /// The settings or secrets cannot work as given: status `error`, no retry
    /// until they change.
    #[error("{0}")]
    Misconfigured(String),
    /// A transient failure: status `error`, reconnect with backoff.
    #[error("{0}")]
    Unavailable(String),
}

impl ConnectorError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConnectorError::Unavailable(_))
    }
}

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The parameters are wrong; retrying cannot help.
    #[error("invalid `{field}`: {message}")]
    InvalidParams { field: String, message: String },
    /// The service refused for good (for example a missing resource).
    #[error("{0}")]
    Permanent(String),
    /// A transient failure; retry, not before `retry_after` when given.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The service rejected the credentials: the connection goes to
    /// `needs_reauth` and the job waits for it.
    #[error("credentials rejected: {0}")]
    NeedsReauth(String),
    /// The service's request budget is spent: the job is put back until
    /// `retry_after` has passed, without spending an attempt (waiting for a
    /// rate-limit window is not a failure).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
    },
}

impl ActionError {
    pub fn transient(message: impl Into<String>) -> Self {
        ActionError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    /// Stable code stored on the job and returned by the API.
    pub fn code(&self) -> &'static str {
        match self {
            ActionError::InvalidParams { .. } => "invalid_params",
            ActionError::Permanent(_) => "rejected",
            ActionError::Transient { .. } => "unavailable",
            ActionError::NeedsReauth(_) => "needs_reauth",
            ActionError::RateLimited { .. } => "rate_limited",
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ActionError::Transient { .. }
                | ActionError::NeedsReauth(_)
                | ActionError::RateLimited { .. }
        )
    }
}

/// What a connector gets to start or finish an authorization flow.
pub struct AuthorizeRequest {
    pub connection_id: String,
    pub settings: Value,
    pub secrets: Secrets,
    /// Where the service must send the user back (the daemon's callback URL).
    pub redirect_uri: String,
}

/// The start of an authorization flow: where to send the user, and what to
/// keep until the callback.
pub struct AuthorizeStart {
    /// The URL the user opens to approve access.
    pub authorize_url: String,
    /// The value that comes back in the callback and identifies the flow
    /// (OAuth 2 `state`, OAuth 1.0a `oauth_token`). Single use.
    pub state: String,
    /// Secret material kept (sealed) until the callback: a PKCE verifier, an
    /// OAuth 1.0a request token secret.
    pub flow_secret: SecretString,
    /// Anything else the connector wants back at the callback.
    pub flow_data: Value,
}

/// A flow handed back to the connector at the callback.
pub struct AuthorizeFlow {
    pub flow_secret: SecretString,
    pub flow_data: Value,
}

/// An HTTP request that arrived from outside for one connection (a webhook
/// delivery), as [`Connector::verify_inbound`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct InboundRequest<'a> {
    /// Header names in lower case, in the order they came.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// When it arrived, epoch milliseconds.
    pub received_at: i64,
}

impl InboundRequest<'_> {
    /// The first value of a header, by its name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A connector's verdict on an [`InboundRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundVerdict {
    /// The sender's id of this delivery, if it gives one. The runtime accepts
    /// one delivery per id and connection: a second is a replay.
    pub delivery_id: Option<String>,
    /// Why the request is refused; `None` accepts it.
    pub rejection: Option<InboundRejection>,
}

/// Why an inbound request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRejection {
    /// The check that failed, a stable word: `secret`, `header`,
    /// `signature`, `timestamp`.
    pub check: String,
    /// The part of the request at fault, such as a header name.
    pub field: String,
    /// What is wrong, for the sender (never a secret or an expected value).
    pub message: String,
}

/// A kind of service. Stateless: all per-connection state lives in sessions.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    fn manifest(&self) -> &ConnectorManifest;

    /// Open a session for one connection. Called by the supervisor on every
    /// start and restart, with the settings and secrets as they are now.
    async fn connect(&self, ctx: RuntimeContext) -> Result<Arc<dyn Session>, ConnectorError>;

    /// The callback query parameters that may carry the flow's `state`, in
    /// order of preference (`state` for OAuth 2; `oauth_token`, or `denied`
    /// when the user refused, for OAuth 1.0a).
    fn callback_state_params(&self) -> &'static [&'static str] {
        &["state"]
    }

    /// Checks of an action's parameters beyond its JSON schema (which the
    /// registry has already applied), run before a job is created so that
    /// bad input is refused whole with a 4xx: lengths counted the way the
    /// service counts them, referenced media that must exist and fit the
    /// service's limits. Returns `(field, message)` pairs.
    async fn check_params(
        &self,
        _action: &str,
        _params: &Value,
        _ctx: &dyn ParamsContext,
    ) -> Result<(), Vec<(String, String)>> {
        Ok(())
    }

    /// Checks of a connection's settings beyond their JSON schema (which the
    /// registry has already applied), for what a schema cannot say: a cron
    /// expression that must parse, names that must be unique. Run before a
    /// connection is created or its settings change, so bad settings are
    /// refused whole. Returns `(field, message)` pairs, the field relative to
    /// the settings (`schedules[0].cron`).
    fn check_settings(&self, _settings: &Value) -> Result<(), Vec<(String, String)>> {
        Ok(())
    }

    /// Verify a request that arrived from outside for one of this
    /// connector's connections (a webhook delivery), with the connection's
    /// settings and secrets: signatures, timestamps, shared secrets. Pure:
    /// the runtime reads the request, keeps the delivery history, rejects
    /// replayed delivery ids and publishes the event. The default refuses:
    /// a connector accepts no inbound requests unless it says so.
    fn verify_inbound(
        &self,
        _settings: &Value,
        _secrets: &Secrets,
        _request: &InboundRequest<'_>,
    ) -> InboundVerdict {
        InboundVerdict {
            delivery_id: None,
            rejection: Some(InboundRejection {
                check: "connector".into(),
                field: "connector".into(),
                message: format!(
                    "connector `{}` accepts no inbound requests",
                    self.manifest().name
                ),
            }),
        }
    }

    /// The longest wait between reconnect attempts for a connection with
    /// these settings. `None` (the default) uses the daemon's
    /// `supervisor.reconnect_max_ms`; a connector to a local program that
    /// restarts quickly (OBS) declares a short cap, so it is connected again
    /// soon after it comes back however long it was away.
    fn reconnect_max(&self, _settings: &Value) -> Option<Duration> {
        None
    }

    /// Begin an authorization flow (for `auth` kinds `oauth2` and `oauth1`).
    async fn begin_authorization(
        &self,
        _request: AuthorizeRequest,
    ) -> Result<AuthorizeStart, ConnectorError> {
        Err(ConnectorError::Misconfigured(format!(
            "connector `{}` has no authorization flow; set its secrets directly",
            self.manifest().name
        )))
    }

    /// Finish a flow from the callback's query parameters; returns the
    /// secrets to store (tokens).
    async fn finish_authorization(
        &self,
        _request: AuthorizeRequest,
        _flow: AuthorizeFlow,
        _params: &BTreeMap<String, String>,
    ) -> Result<Vec<(String, SecretString)>, ConnectorError> {
        Err(ConnectorError::Misconfigured(format!(
            "connector `{}` has no authorization flow",
            self.manifest().name
        )))
    }
}

/// One live connection to a service.
#[async_trait]
pub trait Session: Send + Sync + 'static {
    /// Background work (event streams, keepalives, polling). Returns `Ok` when
    /// `cancel` fires, `Err` when the connection is lost (the supervisor then
    /// reconnects with backoff). The default has no background work.
    async fn run(&self, cancel: CancellationToken) -> Result<(), ConnectorError> {
        cancel.cancelled().await;
        Ok(())
    }

    /// Run one action. Called concurrently by job workers.
    async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError>;

    /// Ask the service, read-only, whether this session still works (X
    /// `users/me`, Twitch token validation, OBS `GetVersion`) and return what
    /// it said, for a person to read (`switchboard connections test`). Not a
    /// job: nothing is queued, retried or changed. Called concurrently with
    /// actions. The default, for sessions with no check of their own, says
    /// the session is open.
    async fn check(&self) -> Result<Value, ActionError> {
        Ok(serde_json::json!({ "session": "open" }))
    }
}
