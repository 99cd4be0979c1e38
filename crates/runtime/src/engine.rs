//! The engine: the domain operations every interface (REST API, CLI, later
//! rules and MCP) calls, and the start and stop of the whole runtime.
//!
//! Each operation validates its whole input first and writes nothing when any
//! part is wrong, then writes, then applies the change to the running system
//! (restarting a connection's runtime through the supervisor).
//!
//! An action's parameters are checked twice before a job exists: against the
//! action's JSON schema (the registry), then by the connector itself
//! ([`Connector::check_params`]: lengths as the service counts them, media
//! that must exist and fit), with the media store to look things up in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;
use switchboard_core::time::now_ms;
use switchboard_core::{
    ActionError, AuthKind, AuthorizeFlow, AuthorizeRequest, Connection, ConnectionStatus,
    Connector, ConnectorError, ConnectorManifest, Event, Job, MediaInfo, NewEvent, ParamsContext,
    StatusKind, new_id,
};
use switchboard_store::{EventFilter, FlowLookup, JobFilter, NewFlow, NewJob, Store, StoreError};
use switchboard_vault::{Vault, VaultError};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use crate::jobs::{JobRunner, JobsConfig};
use crate::media::{MediaError, MediaStore};
use crate::registry::Registry;
use crate::supervisor::{Supervisor, SupervisorConfig};

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Dotted path of the field, such as `settings.work_ms`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{what} `{id}` does not exist")]
    NotFound { what: &'static str, id: String },
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Conflict(String),
    /// An authorization callback that cannot complete (unknown, reused or
    /// expired state; the user denied access; the service refused the code).
    #[error("{0}")]
    Authorization(String),
    /// The external service failed while we talked to it.
    #[error("{0}")]
    Upstream(String),
    /// The media store refused or failed (too large, unsupported type, ...).
    #[error(transparent)]
    Media(MediaError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<MediaError> for EngineError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::NotFound(id) => EngineError::NotFound { what: "media", id },
            MediaError::InvalidId(_) => EngineError::invalid("id", e.to_string()),
            other => EngineError::Media(other),
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) => EngineError::Conflict(message),
            other => EngineError::Store(other),
        }
    }
}

impl EngineError {
    /// Stable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::NotFound { .. } => "not_found",
            EngineError::Invalid(_) => "invalid_input",
            EngineError::Conflict(_) => "conflict",
            EngineError::Authorization(_) => "authorization_failed",
            EngineError::Upstream(_) => "upstream_failed",
            EngineError::Media(e) => e.code(),
            EngineError::Vault(VaultError::KeyFromEnvironment) => "key_from_environment",
            EngineError::Vault(_) | EngineError::Store(_) => "internal",
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_retryable(),
            EngineError::Vault(e) => e.is_retryable(),
            EngineError::Media(e) => e.is_retryable(),
            _ => false,
        }
    }

    fn invalid(field: impl Into<String>, message: impl Into<String>) -> EngineError {
        EngineError::Invalid(vec![FieldError::new(field, message)])
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub supervisor: SupervisorConfig,
    pub jobs: JobsConfig,
    /// Attempts a job gets unless the submitter says otherwise.
    pub default_max_attempts: i64,
    /// Events older than this are dropped from the log.
    pub event_retention: Duration,
    /// The log keeps at most this many events.
    pub event_max_rows: i64,
    /// Where the media store keeps its files.
    pub media_dir: PathBuf,
    /// The largest media file accepted, in bytes.
    pub media_max_bytes: u64,
    /// The rules file, if any.
    pub rules: crate::rules::RulesConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            supervisor: SupervisorConfig::default(),
            jobs: JobsConfig::default(),
            default_max_attempts: 5,
            event_retention: Duration::from_secs(7 * 24 * 3600),
            event_max_rows: 1_000_000,
            media_dir: std::env::temp_dir().join("switchboard-media"),
            media_max_bytes: 512 * 1024 * 1024,
            rules: crate::rules::RulesConfig::default(),
        }
    }
}

pub struct NewConnection {
    pub connector: String,
    pub label: String,
    pub enabled: bool,
    pub settings: Value,
    pub secrets: BTreeMap<String, SecretString>,
}

#[derive(Default)]
pub struct UpdateConnection {
    pub label: Option<String>,
    pub enabled: Option<bool>,
    pub settings: Option<Value>,
}

pub struct SubmitJob {
    pub connection_id: String,
    pub action: String,
    pub params: Value,
    pub idempotency_key: Option<String>,
    pub max_attempts: Option<i64>,
}

/// What [`Engine::test_connection`] found.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionCheck {
    /// The check ran and the service answered as it should.
    pub ok: bool,
    /// The connection's status after the check.
    pub status: StatusKind,
    /// What was checked and how it went, or why it was not checked.
    pub detail: String,
    /// What the service said (who the credentials act as, its version...).
    pub result: Option<Value>,
}

/// One connection's share of an action sent to several connections.
#[derive(Debug)]
pub struct ConnectionJob {
    pub connection_id: String,
    pub label: String,
    /// The job (and whether it is new: `false` when the idempotency key
    /// returned an earlier one), or why it could not be queued.
    pub outcome: Result<(Job, bool)>,
}

/// What a connector's [`Connector::check_params`] may look up: the media
/// store.
struct MediaLookup<'a>(&'a MediaStore);

#[async_trait]
impl ParamsContext for MediaLookup<'_> {
    async fn media(&self, id: &str) -> Option<MediaInfo> {
        match self.0.get(id).await {
            Ok(info) => Some(info),
            Err(MediaError::NotFound(_) | MediaError::InvalidId(_)) => None,
            Err(error) => {
                tracing::warn!(%error, media = %id, "could not read a media file while checking parameters");
                None
            }
        }
    }
}

/// A connector's `(field, message)` pairs as field errors under `params`.
fn params_field_errors(errors: Vec<(String, String)>) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|(field, message)| {
            let field = if field.is_empty() {
                "params".to_owned()
            } else if field == "params"
                || field.starts_with("params.")
                || field.starts_with("params[")
            {
                field
            } else {
                format!("params.{field}")
            };
            FieldError::new(field, message)
        })
        .collect()
}

/// A connection as shown to users: no secret values, only which are set.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    #[serde(flatten)]
    pub connection: Connection,
    pub secrets_set: Vec<String>,
}

/// How long an authorization flow may take before its link expires.
pub const AUTHORIZATION_TTL: Duration = Duration::from_secs(600);

/// The daemon's OAuth callback URL for a connector.
pub fn callback_url(public_url: &str, connector: &str) -> String {
    format!(
        "{}/oauth/{connector}/callback",
        public_url.trim_end_matches('/')
    )
}

/// The invisible characters that reorder how text is displayed: marks
/// (U+200E, U+200F, U+061C), embeddings and overrides (U+202A..U+202E) and
/// isolates (U+2066..U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn flow_label(state: &str) -> String {
    format!("flow:{state}")
}

/// Where to send the user to authorize a connection.
#[derive(Debug, Clone, Serialize)]
pub struct AuthorizationStarted {
    pub authorize_url: String,
    /// Epoch milliseconds after which the link no longer works.
    pub expires_at: i64,
}

pub struct Engine {
    store: Store,
    pub(crate) vault: Arc<Vault>,
    pub(crate) bus: Arc<EventBus>,
    registry: Arc<Registry>,
    media: MediaStore,
    supervisor: Supervisor,
    runner: Arc<JobRunner>,
    wake: Arc<Notify>,
    config: RuntimeConfig,
    cancel: CancellationToken,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    node_id: String,
    rules: crate::rules::RulesState,
    template_env: minijinja::Environment<'static>,
}

impl Engine {
    pub fn new(
        store: Store,
        vault: Arc<Vault>,
        registry: Registry,
        config: RuntimeConfig,
    ) -> Arc<Engine> {
        let registry = Arc::new(registry);
        let bus = Arc::new(EventBus::new(store.clone()));
        let wake = Arc::new(Notify::new());
        let media = MediaStore::new(config.media_dir.clone(), config.media_max_bytes);
        let supervisor = Supervisor::new(
            store.clone(),
            vault.clone(),
            bus.clone(),
            registry.clone(),
            media.clone(),
            config.supervisor.clone(),
            wake.clone(),
        );
        let node_id = new_id();
        let runner = Arc::new(JobRunner::new(
            store.clone(),
            supervisor.clone(),
            bus.clone(),
            node_id.clone(),
            config.jobs.clone(),
            wake.clone(),
        ));
        Arc::new(Engine {
            store,
            vault,
            bus,
            registry,
            media,
            supervisor,
            runner,
            wake,
            config,
            cancel: CancellationToken::new(),
            tasks: Default::default(),
            node_id,
            rules: crate::rules::RulesState::new(),
            template_env: crate::rules::template::environment(),
        })
    }

    /// Start connection runtimes, job workers and event retention.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        self.supervisor.start_all().await?;
        // A rule set that no longer compiles (a connection it names was
        // removed) is reported; the daemon still starts.
        if let Err(error) = self.load_rules().await {
            tracing::error!(%error, "rules not loaded");
        }
        let runner = tokio::spawn(self.runner.clone().run(self.cancel.clone()));
        let retention = tokio::spawn(self.clone().retain_events());
        let matcher = tokio::spawn(self.clone().match_events(self.cancel.clone()));
        let runs = tokio::spawn(self.clone().execute_runs(self.cancel.clone()));
        let watcher = tokio::spawn(self.clone().watch_rules_file(self.cancel.clone()));
        self.tasks
            .lock()
            .expect("task list poisoned")
            .extend([runner, retention, matcher, runs, watcher]);
        Ok(())
    }

    pub(crate) fn rules(&self) -> &crate::rules::RulesState {
        &self.rules
    }

    pub(crate) fn rules_config(&self) -> &crate::rules::RulesConfig {
        &self.config.rules
    }

    pub(crate) fn template_env(&self) -> &minijinja::Environment<'static> {
        &self.template_env
    }

    pub(crate) async fn publish_or_log(&self, event: NewEvent) {
        self.bus.publish_or_log(event).await;
    }

    /// Stop taking jobs, let running ones finish, stop every runtime.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("task list poisoned"));
        for task in tasks {
            let _ = task.await;
        }
        self.supervisor.shutdown().await;
    }

    async fn retain_events(self: Arc<Self>) {
        loop {
            let older_than = now_ms() - self.config.event_retention.as_millis() as i64;
            self.prune_webhook_deliveries().await;
            if let Err(error) = self.store.prune_flows(now_ms() - 24 * 3600 * 1000).await {
                tracing::warn!(%error, "could not prune expired authorization flows");
            }
            match self
                .store
                .prune_events(older_than, self.config.event_max_rows)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned the event log"),
                Err(error) => tracing::warn!(%error, "could not prune the event log"),
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn connectors(&self) -> Vec<ConnectorManifest> {
        self.registry.manifests().cloned().collect()
    }

    pub fn connector(&self, name: &str) -> Result<ConnectorManifest> {
        self.registry
            .manifest(name)
            .cloned()
            .ok_or_else(|| EngineError::NotFound {
                what: "connector",
                id: name.to_owned(),
            })
    }

    fn check_secret_names<'a>(
        &self,
        connector: &str,
        names: impl Iterator<Item = &'a String>,
    ) -> Vec<FieldError> {
        let manifest = match self.registry.manifest(connector) {
            Some(m) => m,
            None => return vec![],
        };
        names
            .filter(|name| !manifest.secrets.iter().any(|s| &s.name == *name))
            .map(|name| {
                let known: Vec<&str> = manifest.secrets.iter().map(|s| s.name.as_str()).collect();
                FieldError::new(
                    format!("secrets.{name}"),
                    format!(
                        "connector `{connector}` has no secret `{name}`; it takes: {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })
            .collect()
    }

    /// A label is printed in tables and matched where an id is accepted, so
    /// it holds no control or bidi characters (no fake table rows, no
    /// cleared screens, no text that reads backwards) and never looks like
    /// a connection id (ids are UUIDs; a label that parses as one could
    /// name another connection).
    fn check_label(label: &str) -> Option<FieldError> {
        let message = if let Some(c) = label
            .chars()
            .find(|c| c.is_control() || is_bidi_control(*c))
        {
            format!(
                "a label may not hold control or bidi characters (found U+{:04X}); use printable text on one line",
                c as u32
            )
        } else if label.trim().is_empty() || label.trim().len() > 100 {
            "give a label of 1 to 100 characters".to_owned()
        } else if uuid::Uuid::parse_str(label.trim()).is_ok() {
            "a label may not look like a connection id (a UUID); choose a name such as `main-account`".to_owned()
        } else {
            return None;
        };
        Some(FieldError::new("label", message))
    }

    pub async fn create_connection(&self, new: NewConnection) -> Result<ConnectionView> {
        if self.registry.manifest(&new.connector).is_none() {
            return Err(EngineError::invalid(
                "connector",
                format!(
                    "unknown connector `{}`; known: {}",
                    new.connector,
                    self.registry.names().join(", ")
                ),
            ));
        }
        let mut errors = Vec::new();
        errors.extend(Self::check_label(&new.label));
        if let Err(e) = self
            .registry
            .validate_settings(&new.connector, &new.settings, "settings")
        {
            errors.extend(e);
        } else {
            errors.extend(
                self.check_connector_settings(&new.connector, &new.settings, None)
                    .await?,
            );
        }
        errors.extend(self.check_secret_names(&new.connector, new.secrets.keys()));
        if !errors.is_empty() {
            return Err(EngineError::Invalid(errors));
        }
        let now = now_ms();
        let connection = Connection {
            id: new_id(),
            connector: new.connector,
            label: new.label.trim().to_owned(),
            enabled: new.enabled,
            settings: new.settings,
            status: ConnectionStatus::new(StatusKind::Disconnected, None),
            created_at: now,
            updated_at: now,
        };
        self.store.insert_connection(&connection).await?;
        if !new.secrets.is_empty() {
            let changes = new.secrets.into_iter().map(|(k, v)| (k, Some(v))).collect();
            if let Err(e) = self.vault.write_secrets(&connection.id, changes).await {
                // All or nothing: a connection whose secrets could not be stored is removed.
                let _ = self.store.delete_connection(&connection.id).await;
                return Err(e.into());
            }
        }
        self.supervisor.apply(&connection.id).await?;
        self.get_connection(&connection.id).await
    }

    pub async fn get_connection(&self, id: &str) -> Result<ConnectionView> {
        let mut connection =
            self.store
                .get_connection(id)
                .await?
                .ok_or_else(|| EngineError::NotFound {
                    what: "connection",
                    id: id.to_owned(),
                })?;
        if let Some(status) = self.supervisor.status(id) {
            connection.status = status;
        }
        let secrets_set = self.store.secret_names(id).await?;
        Ok(ConnectionView {
            connection,
            secrets_set,
        })
    }

    pub async fn list_connections(&self) -> Result<Vec<ConnectionView>> {
        let mut views = Vec::new();
        for mut connection in self.store.list_connections().await? {
            if let Some(status) = self.supervisor.status(&connection.id) {
                connection.status = status;
            }
            let secrets_set = self.store.secret_names(&connection.id).await?;
            views.push(ConnectionView {
                connection,
                secrets_set,
            });
        }
        Ok(views)
    }

    /// Change label, enabled or settings; the runtime restarts with them.
    pub async fn update_connection(
        &self,
        id: &str,
        update: UpdateConnection,
    ) -> Result<ConnectionView> {
        let mut connection = self.get_connection(id).await?.connection;
        let mut errors = Vec::new();
        if let Some(label) = &update.label {
            errors.extend(Self::check_label(label));
            connection.label = label.trim().to_owned();
        }
        if let Some(settings) = update.settings {
            if let Err(e) =
                self.registry
                    .validate_settings(&connection.connector, &settings, "settings")
            {
                errors.extend(e);
            } else {
                errors.extend(
                    self.check_connector_settings(&connection.connector, &settings, Some(id))
                        .await?,
                );
            }
            connection.settings = settings;
        }
        if !errors.is_empty() {
            return Err(EngineError::Invalid(errors));
        }
        if let Some(enabled) = update.enabled {
            connection.enabled = enabled;
        }
        connection.updated_at = now_ms();
        self.store.update_connection(&connection).await?;
        self.supervisor.apply(id).await?;
        self.get_connection(id).await
    }

    /// Set (`Some`) or delete (`None`) secrets; the runtime restarts with them.
    pub async fn set_secrets(
        &self,
        id: &str,
        changes: BTreeMap<String, Option<SecretString>>,
    ) -> Result<ConnectionView> {
        let connection = self.get_connection(id).await?.connection;
        let mut errors = self.check_secret_names(&connection.connector, changes.keys());
        if changes.is_empty() {
            errors.push(FieldError::new(
                "secrets",
                "name at least one secret: {\"NAME\": \"value\"} sets it, {\"NAME\": null} deletes it",
            ));
        }
        if !errors.is_empty() {
            return Err(EngineError::Invalid(errors));
        }
        self.vault
            .write_secrets(id, changes.into_iter().collect())
            .await?;
        self.supervisor.apply(id).await?;
        self.get_connection(id).await
    }

    /// Run the connector's own read-only check on the live session (X
    /// `users/me`, Twitch token validation, OBS `GetVersion`...): not a job,
    /// nothing is queued or retried. A connection that is not connected is
    /// not checked: the answer says its status and why instead.
    pub async fn test_connection(&self, id: &str) -> Result<ConnectionCheck> {
        let view = self.get_connection(id).await?;
        let permit = match self.supervisor.acquire(id, Duration::from_secs(5)).await {
            Ok(permit) => permit,
            Err(crate::supervisor::NotReady::Waiting { reason, kind }) => {
                return Ok(ConnectionCheck {
                    ok: false,
                    status: kind,
                    detail: format!("not checked: the {reason}"),
                    result: None,
                });
            }
            Err(crate::supervisor::NotReady::Gone) => {
                return Err(EngineError::NotFound {
                    what: "connection",
                    id: id.to_owned(),
                });
            }
        };
        let checked = tokio::select! {
            checked = tokio::time::timeout(Duration::from_secs(30), permit.session.check()) => {
                checked.unwrap_or_else(|_| Err(ActionError::transient("the service did not answer the check within 30 s")))
            }
            _ = permit.aborted() => Err(ActionError::transient("the connection restarted during the check; try again")),
        };
        drop(permit);
        let status = self
            .supervisor
            .status(id)
            .map_or(view.connection.status.kind, |s| s.kind);
        Ok(match checked {
            Ok(result) => ConnectionCheck {
                ok: true,
                status,
                detail: format!("the {} connector's check passed", view.connection.connector),
                result: Some(result),
            },
            Err(error) => ConnectionCheck {
                ok: false,
                status,
                detail: format!(
                    "the {} connector's check failed: {error}",
                    view.connection.connector
                ),
                result: None,
            },
        })
    }

    /// Restart a connection's runtime without changing anything.
    pub async fn restart_connection(&self, id: &str) -> Result<ConnectionView> {
        self.get_connection(id).await?;
        self.supervisor.apply(id).await?;
        self.get_connection(id).await
    }

    pub async fn delete_connection(&self, id: &str) -> Result<()> {
        if !self.store.delete_connection(id).await? {
            return Err(EngineError::NotFound {
                what: "connection",
                id: id.to_owned(),
            });
        }
        self.supervisor.apply(id).await?;
        Ok(())
    }

    /// Check an action's parameters: the action's JSON schema, then the
    /// connector's own checks (only when the schema holds, so connectors
    /// may rely on the shape). Writes nothing.
    async fn check_action(&self, connector: &str, action: &str, params: &Value) -> Result<()> {
        self.registry
            .validate_params(connector, action, params)
            .map_err(EngineError::Invalid)?;
        let Some(connector) = self.registry.connector(connector) else {
            return Ok(());
        };
        connector
            .check_params(action, params, &MediaLookup(&self.media))
            .await
            .map_err(|errors| EngineError::Invalid(params_field_errors(errors)))
    }

    fn check_max_attempts(&self, max_attempts: Option<i64>) -> Result<i64> {
        let max_attempts = max_attempts.unwrap_or(self.config.default_max_attempts);
        if !(1..=100).contains(&max_attempts) {
            return Err(EngineError::invalid(
                "max_attempts",
                "give a number from 1 to 100",
            ));
        }
        Ok(max_attempts)
    }

    /// Validate and queue a job. A second submit with the same idempotency
    /// key returns the first job (`created == false`).
    pub async fn submit_job(&self, submit: SubmitJob) -> Result<(Job, bool)> {
        let connection = self
            .store
            .get_connection(&submit.connection_id)
            .await?
            .ok_or_else(|| {
                EngineError::invalid(
                    "connection_id",
                    format!("connection `{}` does not exist", submit.connection_id),
                )
            })?;
        self.check_action(&connection.connector, &submit.action, &submit.params)
            .await?;
        let max_attempts = self.check_max_attempts(submit.max_attempts)?;
        if let Some(key) = &submit.idempotency_key
            && (key.is_empty() || key.len() > 200)
        {
            return Err(EngineError::invalid(
                "idempotency_key",
                "give 1 to 200 characters",
            ));
        }
        self.queue_job(submit, max_attempts).await
    }

    /// Write a validated job and announce it.
    async fn queue_job(&self, submit: SubmitJob, max_attempts: i64) -> Result<(Job, bool)> {
        let now = now_ms();
        let outcome = self
            .store
            .insert_job(&NewJob {
                id: new_id(),
                connection_id: submit.connection_id.clone(),
                action: submit.action.clone(),
                params: submit.params.clone(),
                idempotency_key: submit.idempotency_key.clone(),
                max_attempts,
                next_attempt_at: now,
                created_at: now,
            })
            .await?;
        if outcome.created {
            self.wake.notify_one();
            self.bus
                .publish_or_log(NewEvent::job_queued(&outcome.job))
                .await;
        } else if outcome.job.connection_id != submit.connection_id
            || outcome.job.action != submit.action
            || outcome.job.params != submit.params
        {
            return Err(EngineError::Conflict(format!(
                "idempotency key `{}` was already used by job {} with a different connection, action or parameters",
                submit.idempotency_key.unwrap_or_default(),
                outcome.job.id
            )));
        }
        Ok((outcome.job, outcome.created))
    }

    /// Send one action to several connections of its connector (`x.post`
    /// goes to `x` connections): the ones named in `connection_ids`, or
    /// every enabled one. Everything is validated once, before anything is
    /// written; then one job is queued per connection, with the idempotency
    /// key `{key}:{connection_id}` when a key is given. One connection's
    /// failure to queue does not stop the others: each outcome is returned.
    pub async fn submit_to_connections(
        &self,
        action: &str,
        params: Value,
        connection_ids: Option<Vec<String>>,
        idempotency_key: Option<String>,
    ) -> Result<Vec<ConnectionJob>> {
        let connector = match action.split_once('.') {
            Some((connector, rest)) if !connector.is_empty() && !rest.is_empty() => connector,
            _ => {
                return Err(EngineError::invalid(
                    "action",
                    format!(
                        "`{action}` is not an action name; write CONNECTOR.ACTION, such as `echo.say`"
                    ),
                ));
            }
        };
        if self.registry.manifest(connector).is_none() {
            return Err(EngineError::invalid(
                "action",
                format!(
                    "no connector `{connector}` for action `{action}`; known: {}",
                    self.registry.names().join(", ")
                ),
            ));
        }

        let mut errors = Vec::new();
        let connections = match &connection_ids {
            Some(ids) => {
                if ids.is_empty() {
                    errors.push(FieldError::new(
                        "connections",
                        "name at least one connection, or leave `connections` out to use every enabled one",
                    ));
                }
                let mut seen = BTreeSet::new();
                let mut connections = Vec::new();
                for (i, id) in ids.iter().enumerate() {
                    let field = format!("connections[{i}]");
                    if !seen.insert(id.as_str()) {
                        errors.push(FieldError::new(
                            field,
                            format!("connection `{id}` is named twice"),
                        ));
                        continue;
                    }
                    match self.store.get_connection(id).await? {
                        None => errors.push(FieldError::new(
                            field,
                            format!("connection `{id}` does not exist"),
                        )),
                        Some(c) if c.connector != connector => errors.push(FieldError::new(
                            field,
                            format!(
                                "connection `{id}` ({}) is a `{}` connection; action `{action}` needs a `{connector}` one",
                                c.label, c.connector
                            ),
                        )),
                        Some(c) => connections.push(c),
                    }
                }
                connections
            }
            None => {
                let all: Vec<Connection> = self
                    .store
                    .list_connections()
                    .await?
                    .into_iter()
                    .filter(|c| c.connector == connector)
                    .collect();
                let enabled: Vec<Connection> = all.iter().filter(|c| c.enabled).cloned().collect();
                if enabled.is_empty() {
                    let what_to_do = if all.is_empty() {
                        format!(
                            "add one with `switchboard connections add {connector} --label NAME` (POST /api/v1/connections)"
                        )
                    } else {
                        format!(
                            "enable one of the {} disabled ones (PATCH /api/v1/connections/{{id}} with {{\"enabled\": true}})",
                            all.len()
                        )
                    };
                    return Err(EngineError::Conflict(format!(
                        "there is no enabled `{connector}` connection to run `{action}` on; {what_to_do}"
                    )));
                }
                enabled
            }
        };
        let max_key =
            199usize.saturating_sub(connections.iter().map(|c| c.id.len()).max().unwrap_or(36));
        if let Some(key) = &idempotency_key
            && (key.is_empty() || key.len() > max_key)
        {
            errors.push(FieldError::new(
                "idempotency_key",
                format!("give 1 to {max_key} characters (each connection's job gets `KEY:CONNECTION_ID`)"),
            ));
        }
        match self.check_action(connector, action, &params).await {
            Ok(()) => {}
            Err(EngineError::Invalid(e)) => errors.extend(e),
            Err(other) => return Err(other),
        }
        if !errors.is_empty() {
            return Err(EngineError::Invalid(errors));
        }

        let max_attempts = self.config.default_max_attempts;
        let mut outcomes = Vec::with_capacity(connections.len());
        for connection in connections {
            let submit = SubmitJob {
                connection_id: connection.id.clone(),
                action: action.to_owned(),
                params: params.clone(),
                idempotency_key: idempotency_key
                    .as_ref()
                    .map(|key| format!("{key}:{}", connection.id)),
                max_attempts: Some(max_attempts),
            };
            let outcome = self.queue_job(submit, max_attempts).await;
            if let Err(error) = &outcome {
                tracing::warn!(%error, connection = %connection.id, %action, "could not queue a job of a fan-out");
            }
            outcomes.push(ConnectionJob {
                connection_id: connection.id,
                label: connection.label,
                outcome,
            });
        }
        Ok(outcomes)
    }

    /// The largest media file accepted, in bytes.
    pub fn media_max_bytes(&self) -> u64 {
        self.media.max_bytes()
    }

    /// Store an uploaded media file (streamed); the same bytes give the same
    /// id. `name` is informational. The stream is borrowed so the caller can
    /// drain what is left after a refusal.
    pub async fn upload_media<S, B, E>(
        &self,
        name: Option<String>,
        body: &mut S,
    ) -> Result<MediaInfo>
    where
        S: Stream<Item = std::result::Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        if let Some(name) = &name
            && (name.chars().count() > 255 || name.chars().any(char::is_control))
        {
            return Err(EngineError::invalid(
                "name",
                "give a name of at most 255 characters, without control characters",
            ));
        }
        Ok(self.media.put(name, body).await?)
    }

    pub async fn get_media(&self, id: &str) -> Result<MediaInfo> {
        Ok(self.media.get(id).await?)
    }

    /// A media file's description and its bytes, opened for reading.
    pub async fn open_media(&self, id: &str) -> Result<(MediaInfo, tokio::fs::File)> {
        Ok(self.media.open(id).await?)
    }

    /// Every media file, newest first.
    pub async fn list_media(&self) -> Result<Vec<MediaInfo>> {
        Ok(self.media.list().await?)
    }

    pub async fn delete_media(&self, id: &str) -> Result<()> {
        Ok(self.media.delete(id).await?)
    }

    pub async fn get_job(&self, id: &str) -> Result<Job> {
        self.store
            .get_job(id)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                what: "job",
                id: id.to_owned(),
            })
    }

    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        Ok(self.store.list_jobs(filter).await?)
    }

    /// Queue a failed or dead job again.
    pub async fn retry_job(&self, id: &str) -> Result<Job> {
        let job = self.get_job(id).await?;
        if !matches!(
            job.state,
            switchboard_core::JobState::Failed | switchboard_core::JobState::Dead
        ) {
            return Err(EngineError::Conflict(format!(
                "job {id} is {}; only failed or dead jobs can be retried",
                job.state
            )));
        }
        let job = self
            .store
            .retry_job(id, self.config.default_max_attempts, now_ms())
            .await?
            .ok_or_else(|| EngineError::Conflict(format!("job {id} changed state; look again")))?;
        self.wake.notify_one();
        Ok(job)
    }

    pub async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        Ok(self.store.list_events(filter).await?)
    }

    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<Event>> {
        self.bus.subscribe()
    }

    pub async fn publish_event(&self, event: NewEvent) -> Result<Arc<Event>> {
        Ok(self.bus.publish(event).await?)
    }

    /// Begin an authorization flow (OAuth) for a connection: returns the URL
    /// the user opens. The flow is single use and expires after
    /// [`AUTHORIZATION_TTL`].
    pub async fn begin_authorization(
        &self,
        connection_id: &str,
        public_url: &str,
    ) -> Result<AuthorizationStarted> {
        let connection = self.get_connection(connection_id).await?.connection;
        let connector = self.connector_of(&connection)?;
        let manifest = connector.manifest();
        if !matches!(manifest.auth, AuthKind::Oauth2 | AuthKind::Oauth1) {
            return Err(EngineError::Conflict(format!(
                "connector `{}` does not use an authorization flow; set its secrets with PUT /api/v1/connections/{connection_id}/secrets",
                manifest.name
            )));
        }
        let request = AuthorizeRequest {
            connection_id: connection_id.to_owned(),
            settings: connection.settings.clone(),
            secrets: self.vault.secrets(connection_id).await?,
            redirect_uri: callback_url(public_url, &manifest.name),
        };
        let start = connector
            .begin_authorization(request)
            .await
            .map_err(|e| match e {
                ConnectorError::Misconfigured(m) => EngineError::Conflict(m),
                other => EngineError::Upstream(other.to_string()),
            })?;
        let now = now_ms();
        let expires_at = now + AUTHORIZATION_TTL.as_millis() as i64;
        let sealed_secret = self
            .vault
            .seal_value(connection_id, &flow_label(&start.state), &start.flow_secret)
            .await?;
        self.store
            .insert_flow(&NewFlow {
                state: start.state,
                connection_id: connection_id.to_owned(),
                sealed_secret,
                data: start.flow_data,
                created_at: now,
                expires_at,
            })
            .await?;
        Ok(AuthorizationStarted {
            authorize_url: start.authorize_url,
            expires_at,
        })
    }

    /// Finish an authorization flow from its callback: exchange the grant
    /// for tokens, store them, restart the connection with them.
    pub async fn finish_authorization(
        &self,
        connector_name: &str,
        params: &BTreeMap<String, String>,
        public_url: &str,
    ) -> Result<ConnectionView> {
        let connector = self
            .registry
            .connector(connector_name)
            .cloned()
            .ok_or_else(|| EngineError::NotFound {
                what: "connector",
                id: connector_name.to_owned(),
            })?;
        let state_params = connector.callback_state_params();
        let state = state_params
            .iter()
            .find_map(|name| params.get(*name))
            .ok_or_else(|| {
                EngineError::Authorization(format!(
                    "the callback carries no `{}`; start the connection again",
                    state_params.join("` or `")
                ))
            })?;
        let flow = match self.store.consume_flow(state, now_ms()).await? {
            FlowLookup::Found(flow) => flow,
            FlowLookup::Unknown => {
                return Err(EngineError::Authorization(
                    "this authorization link is unknown; start the connection again".into(),
                ));
            }
            FlowLookup::AlreadyUsed => {
                return Err(EngineError::Authorization(
                    "this authorization link was already used; start the connection again".into(),
                ));
            }
            FlowLookup::Expired => {
                return Err(EngineError::Authorization(
                    "this authorization link expired (they last 10 minutes); start the connection again".into(),
                ));
            }
        };
        // OAuth 2 says `error=access_denied`; OAuth 1.0a (X) says `denied=<token>`.
        let denied = params
            .get("error")
            .cloned()
            .or_else(|| params.get("denied").map(|_| "access_denied".to_owned()));
        if let Some(error) = denied {
            let detail = params
                .get("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            return Err(EngineError::Authorization(format!(
                "the service did not grant access ({error}{detail}); start the connection again to retry"
            )));
        }
        let connection = self.get_connection(&flow.connection_id).await?.connection;
        if connection.connector != connector_name {
            return Err(EngineError::Authorization(
                "this authorization link belongs to another connector".into(),
            ));
        }
        let flow_secret = self
            .vault
            .open_value(&connection.id, &flow_label(state), &flow.sealed_secret)
            .await?;
        let request = AuthorizeRequest {
            connection_id: connection.id.clone(),
            settings: connection.settings.clone(),
            secrets: self.vault.secrets(&connection.id).await?,
            redirect_uri: callback_url(public_url, connector_name),
        };
        let tokens = connector
            .finish_authorization(
                request,
                AuthorizeFlow {
                    flow_secret,
                    flow_data: flow.data,
                },
                params,
            )
            .await
            .map_err(|e| match e {
                ConnectorError::Unavailable(m) => EngineError::Upstream(m),
                other => EngineError::Authorization(other.to_string()),
            })?;
        let changes = tokens
            .into_iter()
            .map(|(name, value)| (name, Some(value)))
            .collect();
        self.vault.write_secrets(&connection.id, changes).await?;
        self.supervisor.apply(&connection.id).await?;
        self.bus
            .publish_or_log(NewEvent::new(
                "connection.authorized",
                Some(connection.id.clone()),
                serde_json::json!({ "connector": connector_name }),
            ))
            .await;
        self.get_connection(&connection.id).await
    }

    fn connector_of(&self, connection: &Connection) -> Result<Arc<dyn Connector>> {
        self.registry
            .connector(&connection.connector)
            .cloned()
            .ok_or_else(|| {
                EngineError::Conflict(format!(
                    "connector `{}` is not part of this build",
                    connection.connector
                ))
            })
    }

    /// Replace the master key while running; returns how many data keys moved.
    pub async fn rotate_master_key(&self) -> Result<usize> {
        Ok(self.vault.rotate_master_key().await?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchboard_core::{
        ActionCall, ActionError, ActionSpec, AuthKind, ParamsContext, RuntimeContext, Session,
    };
    use switchboard_vault::KeySource;

    use super::*;

    /// A connector whose `board.pin` takes a short text and media that must
    /// exist, checked the way a real connector checks (`check_params`).
    struct Board {
        manifest: ConnectorManifest,
    }

    /// Counts its actions in durable connector state and reports the type
    /// of the first media file, through the runtime env.
    struct Counter {
        env: Arc<dyn switchboard_core::RuntimeEnv>,
    }

    #[async_trait]
    impl Session for Counter {
        async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError> {
            let count = self
                .env
                .load_state("count")
                .await
                .map_err(ActionError::Permanent)?
                .and_then(|v| v.as_i64())
                .unwrap_or(0)
                + 1;
            self.env
                .store_state("count", Some(json!(count)))
                .await
                .map_err(ActionError::Permanent)?;
            let media_type = match call.params["media"][0].as_str() {
                Some(id) => json!(
                    self.env
                        .media(id)
                        .await
                        .map_err(ActionError::Permanent)?
                        .mime_type
                ),
                None => Value::Null,
            };
            Ok(json!({ "count": count, "media_type": media_type }))
        }
    }

    impl Board {
        fn new(name: &str) -> Board {
            Board {
                manifest: ConnectorManifest {
                    name: name.into(),
                    display_name: name.into(),
                    description: "a test connector".into(),
                    auth: AuthKind::None,
                    settings_schema: json!({ "type": "object" }),
                    secrets: vec![],
                    triggers: vec![],
                    actions: vec![ActionSpec {
                        name: format!("{name}.pin"),
                        description: "pin a note".into(),
                        params_schema: json!({
                            "type": "object",
                            "required": ["text"],
                            "properties": {
                                "text": { "type": "string" },
                                "media": { "type": "array", "items": { "type": "string" } }
                            }
                        }),
                        result_schema: json!({ "type": "object" }),
                    }],
                },
            }
        }
    }

    #[async_trait]
    impl Connector for Board {
        fn manifest(&self) -> &ConnectorManifest {
            &self.manifest
        }

        async fn connect(
            &self,
            ctx: RuntimeContext,
        ) -> Result<Arc<dyn switchboard_core::Session>, ConnectorError> {
            Ok(Arc::new(Counter { env: ctx.env }))
        }

        async fn check_params(
            &self,
            _action: &str,
            params: &Value,
            ctx: &dyn ParamsContext,
        ) -> Result<(), Vec<(String, String)>> {
            let mut errors = Vec::new();
            if params["text"].as_str().unwrap_or_default().chars().count() > 10 {
                errors.push(("text".to_owned(), "at most 10 characters".to_owned()));
            }
            let media = params["media"].as_array().cloned().unwrap_or_default();
            if media.len() > 2 {
                errors.push(("params.media".to_owned(), "at most 2 files".to_owned()));
            }
            for (i, id) in media.iter().enumerate() {
                match ctx.media(id.as_str().unwrap_or_default()).await {
                    Some(info) if info.mime_type == "image/png" => {}
                    Some(_) => errors.push((format!("media[{i}]"), "only PNG".to_owned())),
                    None => errors.push((format!("media[{i}]"), "no such media".to_owned())),
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors)
            }
        }
    }

    const PNG: &[u8] =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

    async fn engine(dir: &std::path::Path) -> Arc<Engine> {
        let store = Store::connect(&format!("sqlite://{}", dir.join("db.sqlite").display()))
            .await
            .unwrap();
        let (vault, _) = Vault::open(store.clone(), KeySource::File(dir.join("master.key")))
            .await
            .unwrap();
        let mut registry = Registry::new();
        registry.register(Arc::new(Board::new("board"))).unwrap();
        registry.register(Arc::new(Board::new("other"))).unwrap();
        Engine::new(
            store,
            Arc::new(vault),
            registry,
            RuntimeConfig {
                media_dir: dir.join("media"),
                media_max_bytes: 1024,
                ..RuntimeConfig::default()
            },
        )
    }

    async fn connection(engine: &Engine, connector: &str, label: &str, enabled: bool) -> String {
        engine
            .create_connection(NewConnection {
                connector: connector.into(),
                label: label.into(),
                enabled,
                settings: json!({}),
                secrets: BTreeMap::new(),
            })
            .await
            .unwrap()
            .connection
            .id
    }

    fn fields(error: EngineError) -> Vec<String> {
        match error {
            EngineError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    async fn job_count(engine: &Engine) -> usize {
        engine
            .list_jobs(&JobFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .len()
    }

    #[tokio::test]
    async fn connector_checks_run_before_a_job_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path()).await;
        let id = connection(&engine, "board", "main", true).await;
        let submit = |params: Value| SubmitJob {
            connection_id: id.clone(),
            action: "board.pin".into(),
            params,
            idempotency_key: None,
            max_attempts: None,
        };

        let missing = "0123456789abcdef0123456789abcdef";
        let error = engine
            .submit_job(submit(json!({
                "text": "far too long a text",
                "media": [missing, missing, missing]
            })))
            .await
            .unwrap_err();
        assert_eq!(
            fields(error),
            [
                "params.text",
                "params.media",
                "params.media[0]",
                "params.media[1]",
                "params.media[2]"
            ],
            "fields are under `params`, never twice"
        );
        // The schema comes first: a connector only sees well-shaped params.
        let error = engine.submit_job(submit(json!({}))).await.unwrap_err();
        assert_eq!(fields(error), ["params.text"]);
        assert_eq!(job_count(&engine).await, 0, "nothing was written");

        let png = engine
            .upload_media(
                Some("dot.png".into()),
                &mut futures::stream::iter([Ok::<_, std::io::Error>(PNG)]),
            )
            .await
            .unwrap();
        let (job, created) = engine
            .submit_job(submit(json!({ "text": "hi", "media": [png.id] })))
            .await
            .unwrap();
        assert!(created);
        assert_eq!(job.params["media"][0], png.id.as_str());
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn an_action_fans_out_to_the_enabled_connections_of_its_connector() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path()).await;
        let params = json!({ "text": "hello" });

        let none = engine
            .submit_to_connections("board.pin", params.clone(), None, None)
            .await
            .unwrap_err();
        assert!(
            matches!(&none, EngineError::Conflict(m) if m.contains("add one")),
            "{none:?}"
        );
        let off = connection(&engine, "board", "off", false).await;
        let none = engine
            .submit_to_connections("board.pin", params.clone(), None, None)
            .await
            .unwrap_err();
        assert!(
            matches!(&none, EngineError::Conflict(m) if m.contains("enable one")),
            "{none:?}"
        );
        let a = connection(&engine, "board", "a", true).await;
        let b = connection(&engine, "board", "b", true).await;
        let other = connection(&engine, "other", "o", true).await;

        let jobs = engine
            .submit_to_connections("board.pin", params.clone(), None, Some("k".into()))
            .await
            .unwrap();
        let mut labels: Vec<&str> = jobs.iter().map(|j| j.label.as_str()).collect();
        labels.sort();
        assert_eq!(
            labels,
            ["a", "b"],
            "every enabled board connection, no other"
        );
        for entry in &jobs {
            let (job, created) = entry.outcome.as_ref().unwrap();
            assert!(created);
            assert_eq!(job.connection_id, entry.connection_id);
            assert_eq!(
                job.idempotency_key.as_deref(),
                Some(format!("k:{}", entry.connection_id).as_str())
            );
        }
        let again = engine
            .submit_to_connections("board.pin", params.clone(), None, Some("k".into()))
            .await
            .unwrap();
        for (first, second) in jobs.iter().zip(&again) {
            let (first, _) = first.outcome.as_ref().unwrap();
            let (second, created) = second.outcome.as_ref().unwrap();
            assert_eq!(first.id, second.id, "the key returns the same jobs");
            assert!(!created);
        }

        let picked = engine
            .submit_to_connections("board.pin", params.clone(), Some(vec![off.clone()]), None)
            .await
            .unwrap();
        assert_eq!(picked.len(), 1, "a named connection is used even disabled");
        assert_eq!(picked[0].connection_id, off);

        let written = job_count(&engine).await;
        let error = engine
            .submit_to_connections(
                "board.pin",
                json!({ "text": "far too long a text" }),
                Some(vec![a.clone(), other, "nope".into(), a]),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(
            fields(error),
            [
                "connections[1]",
                "connections[2]",
                "connections[3]",
                "params.text"
            ],
            "every problem at once"
        );
        let error = engine
            .submit_to_connections("board.pin", params.clone(), Some(vec![]), None)
            .await
            .unwrap_err();
        assert_eq!(fields(error), ["connections"]);
        for action in ["pin", "ghost.pin", "board.nothing"] {
            let error = engine
                .submit_to_connections(action, params.clone(), Some(vec![b.clone()]), None)
                .await
                .unwrap_err();
            assert_eq!(fields(error), ["action"], "{action}");
        }
        assert_eq!(job_count(&engine).await, written, "nothing was written");
        engine.shutdown().await;
    }

    async fn finished(engine: &Engine, id: &str) -> Job {
        for _ in 0..200 {
            let job = engine.get_job(id).await.unwrap();
            if job.state.is_final() {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job {id} did not finish");
    }

    #[tokio::test]
    async fn sessions_keep_state_across_restarts_and_read_media() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path()).await;
        engine.start().await.unwrap();
        let id = connection(&engine, "board", "main", true).await;
        let png = engine
            .upload_media(
                None,
                &mut futures::stream::iter([Ok::<_, std::io::Error>(PNG)]),
            )
            .await
            .unwrap();
        let run = |params: Value| {
            let (engine, id) = (engine.clone(), id.clone());
            async move {
                let (job, _) = engine
                    .submit_job(SubmitJob {
                        connection_id: id,
                        action: "board.pin".into(),
                        params,
                        idempotency_key: None,
                        max_attempts: Some(1),
                    })
                    .await
                    .unwrap();
                finished(&engine, &job.id).await
            }
        };

        let first = run(json!({ "text": "one", "media": [png.id] })).await;
        assert_eq!(
            first.result.unwrap(),
            json!({ "count": 1, "media_type": "image/png" })
        );
        engine.restart_connection(&id).await.unwrap();
        let second = run(json!({ "text": "two" })).await;
        assert_eq!(
            second.result.unwrap()["count"],
            2,
            "the state outlived the session"
        );

        // Once deleted, a file can no longer be referenced.
        engine.delete_media(&png.id).await.unwrap();
        let error = engine
            .submit_job(SubmitJob {
                connection_id: id.clone(),
                action: "board.pin".into(),
                params: json!({ "text": "three", "media": [png.id] }),
                idempotency_key: None,
                max_attempts: Some(1),
            })
            .await
            .unwrap_err();
        assert_eq!(fields(error), ["params.media[0]"]);
        engine.shutdown().await;
    }
}
