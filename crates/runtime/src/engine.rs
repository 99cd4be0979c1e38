//! The engine: the domain operations every interface (REST API, CLI, later
//! rules and MCP) calls, and the start and stop of the whole runtime.
//!
//! Each operation validates its whole input first and writes nothing when any
//! part is wrong, then writes, then applies the change to the running system
//! (restarting a connection's runtime through the supervisor).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;
use switchboard_core::time::now_ms;
use switchboard_core::{
    AuthKind, AuthorizeFlow, AuthorizeRequest, Connection, ConnectionStatus, Connector,
    ConnectorError, ConnectorManifest, Event, Job, NewEvent, StatusKind, new_id,
};
use switchboard_store::{EventFilter, FlowLookup, JobFilter, NewFlow, NewJob, Store, StoreError};
use switchboard_vault::{Vault, VaultError};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use crate::jobs::{JobRunner, JobsConfig};
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
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(StoreError),
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
            EngineError::Vault(VaultError::KeyFromEnvironment) => "key_from_environment",
            EngineError::Vault(_) | EngineError::Store(_) => "internal",
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_retryable(),
            EngineError::Vault(e) => e.is_retryable(),
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
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            supervisor: SupervisorConfig::default(),
            jobs: JobsConfig::default(),
            default_max_attempts: 5,
            event_retention: Duration::from_secs(7 * 24 * 3600),
            event_max_rows: 1_000_000,
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
    vault: Arc<Vault>,
    bus: Arc<EventBus>,
    registry: Arc<Registry>,
    supervisor: Supervisor,
    runner: Arc<JobRunner>,
    wake: Arc<Notify>,
    config: RuntimeConfig,
    cancel: CancellationToken,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    node_id: String,
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
        let supervisor = Supervisor::new(
            store.clone(),
            vault.clone(),
            bus.clone(),
            registry.clone(),
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
            supervisor,
            runner,
            wake,
            config,
            cancel: CancellationToken::new(),
            tasks: Default::default(),
            node_id,
        })
    }

    /// Start connection runtimes, job workers and event retention.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        self.supervisor.start_all().await?;
        let runner = tokio::spawn(self.runner.clone().run(self.cancel.clone()));
        let retention = tokio::spawn(self.clone().retain_events());
        self.tasks
            .lock()
            .expect("task list poisoned")
            .extend([runner, retention]);
        Ok(())
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

    fn check_label(label: &str) -> Option<FieldError> {
        let label = label.trim();
        if label.is_empty() || label.len() > 100 {
            Some(FieldError::new(
                "label",
                "give a label of 1 to 100 characters",
            ))
        } else {
            None
        }
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
        if let Err(errors) =
            self.registry
                .validate_params(&connection.connector, &submit.action, &submit.params)
        {
            return Err(EngineError::Invalid(errors));
        }
        let max_attempts = submit
            .max_attempts
            .unwrap_or(self.config.default_max_attempts);
        if !(1..=100).contains(&max_attempts) {
            return Err(EngineError::invalid(
                "max_attempts",
                "give a number from 1 to 100",
            ));
        }
        if let Some(key) = &submit.idempotency_key
            && (key.is_empty() || key.len() > 200)
        {
            return Err(EngineError::invalid(
                "idempotency_key",
                "give 1 to 200 characters",
            ));
        }
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
        let state = params
            .get(connector.callback_state_param())
            .ok_or_else(|| {
                EngineError::Authorization(format!(
                    "the callback carries no `{}`; start the connection again",
                    connector.callback_state_param()
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
