//! The supervisor: one runtime per enabled connection.
//!
//! The supervisor is the only place that starts, stops and restarts
//! connection runtimes, and it does so through one diff-and-apply path,
//! [`Supervisor::apply`]: read the connection as it is now in the store, stop
//! the runtime that is running (if any), start a new one if the connection
//! exists and is enabled. Start-up, a settings change, new secrets, enable,
//! disable and delete all go through it, so "credentials changed" and "daemon
//! started" cannot behave differently.
//!
//! # A runtime's life
//! A runtime is one tokio task that loops: set `connecting`, read settings
//! and decrypt secrets *fresh*, ask the connector to open a session, set
//! `connected`, run the session's background work until it ends or the
//! runtime is cancelled. If the session is lost it reconnects with
//! exponential backoff and jitter (reset after a successful connect). The
//! wait never exceeds the connector's cap ([`Connector::reconnect_max`], the
//! daemon's `reconnect_max` unless the connector declares its own): a local
//! OBS that restarts after a long outage is tried again within about a
//! second, not after a minute of grown backoff.
//!
//! [`Connector::reconnect_max`]: switchboard_core::Connector::reconnect_max
//! Rejected credentials (`needs_reauth`) and unusable settings (`error`) do
//! not loop: the runtime waits until `apply` replaces it.
//!
//! # Actions and graceful restarts
//! Job workers borrow the live session through [`Supervisor::acquire`], which
//! hands out an [`ActionPermit`] holding a read lock on the session. To stop
//! a session the runtime first withdraws it (no new permits), then takes the
//! write lock, which waits for in-flight actions to finish. Actions still
//! running after the grace period are told to abort through
//! [`ActionPermit::aborted`]; their workers re-queue the job.
//!
//! Every status transition is persisted on the connection row and published
//! as a `connection.status` event, in order.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::Value;
use switchboard_core::time::now_ms;
use switchboard_core::{
    ConnectionStatus, ConnectorError, MediaInfo, NewEvent, RuntimeContext, RuntimeEnv, Secrets,
    Session, StatusKind, new_id,
};
use switchboard_store::{ArchiveRecord, Store, StoreError};
use switchboard_vault::Vault;
use tokio::sync::{Mutex, Notify, OwnedRwLockReadGuard, RwLock, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::bus::EventBus;
use crate::media::MediaStore;
use crate::registry::Registry;

#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// First reconnect delay; doubles per failed attempt.
    pub reconnect_min: Duration,
    /// Longest reconnect delay, for connectors that declare no cap of their
    /// own ([`switchboard_core::Connector::reconnect_max`]).
    pub reconnect_max: Duration,
    /// How long in-flight actions may run on after their session is stopped.
    pub drain_grace: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(60),
            drain_grace: Duration::from_secs(10),
        }
    }
}

/// Why no session can be lent right now.
#[derive(Debug, Clone, PartialEq)]
pub enum NotReady {
    /// The connection exists but cannot run actions: `reason` says why,
    /// `kind` is its status (`needs_reauth` waits may expire).
    Waiting { reason: String, kind: StatusKind },
    /// There is no such connection.
    Gone,
}

/// A live session lent to one action. Dropping it returns the loan.
pub struct ActionPermit {
    pub session: Arc<dyn Session>,
    _inflight: OwnedRwLockReadGuard<()>,
    abort: CancellationToken,
}

impl ActionPermit {
    /// Resolves when the session is being stopped and the grace period for
    /// in-flight actions ran out.
    pub fn aborted(&self) -> WaitForCancellationFutureOwned {
        self.abort.clone().cancelled_owned()
    }
}

#[derive(Clone)]
struct LiveSession {
    session: Arc<dyn Session>,
    inflight: Arc<RwLock<()>>,
    abort: CancellationToken,
}

struct Runtime {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

type Slot = Arc<Mutex<Option<Runtime>>>;

struct Inner {
    store: Store,
    vault: Arc<Vault>,
    bus: Arc<EventBus>,
    registry: Arc<Registry>,
    media: MediaStore,
    config: SupervisorConfig,
    slots: std::sync::Mutex<HashMap<String, Slot>>,
    sessions: std::sync::RwLock<HashMap<String, LiveSession>>,
    statuses: std::sync::Mutex<HashMap<String, ConnectionStatus>>,
    /// Serializes persist+publish of status transitions so the event log
    /// shows them in the order they happened.
    status_order: Mutex<()>,
    /// Bumped whenever a session or status changes; `acquire` waits on it.
    changed: watch::Sender<u64>,
    /// Wakes the job claimer when waiting jobs became due.
    jobs_wake: Arc<Notify>,
    shutdown: CancellationToken,
}

/// Cheap to clone; all clones drive the same runtimes.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

enum Ended {
    Cancelled,
    /// Stop retrying until the connection changes.
    Fatal(StatusKind, String),
    /// Reconnect after a backoff; `was_connected` resets the backoff.
    Retry {
        reason: String,
        was_connected: bool,
    },
}

fn reauth_reason(detail: &str) -> String {
    format!("the service rejected the credentials ({detail}); reconnect this account to resume")
}

impl Supervisor {
    pub fn new(
        store: Store,
        vault: Arc<Vault>,
        bus: Arc<EventBus>,
        registry: Arc<Registry>,
        media: MediaStore,
        config: SupervisorConfig,
        jobs_wake: Arc<Notify>,
    ) -> Supervisor {
        let (changed, _) = watch::channel(0);
        Supervisor {
            inner: Arc::new(Inner {
                store,
                vault,
                bus,
                registry,
                media,
                config,
                slots: Default::default(),
                sessions: Default::default(),
                statuses: Default::default(),
                status_order: Mutex::new(()),
                changed,
                jobs_wake,
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// Start a runtime for every enabled connection.
    pub async fn start_all(&self) -> Result<(), StoreError> {
        let connections = self.inner.store.list_connections().await?;
        for c in connections {
            self.apply(&c.id).await?;
        }
        Ok(())
    }

    /// Bring the runtime of one connection in line with the store: see the
    /// module docs. Returns when the old runtime has stopped and the new one
    /// (if any) has been started; connecting happens in the background.
    pub async fn apply(&self, id: &str) -> Result<(), StoreError> {
        let slot = self.inner.slot(id);
        let mut slot = slot.lock().await;
        if let Some(runtime) = slot.take() {
            runtime.cancel.cancel();
            let _ = runtime.task.await;
        }
        let connection = self.inner.store.get_connection(id).await?;
        if let Some(c) = &connection {
            self.inner.track(c);
        }
        match connection {
            Some(c) if c.enabled && !self.inner.shutdown.is_cancelled() => {
                // Report `connecting` before returning, so callers see the
                // restart has begun; the runtime's first step repeats it.
                self.inner
                    .set_status(id, StatusKind::Connecting, None)
                    .await;
                let cancel = self.inner.shutdown.child_token();
                let task = tokio::spawn(run_runtime(
                    self.inner.clone(),
                    c.id.clone(),
                    cancel.clone(),
                ));
                *slot = Some(Runtime { cancel, task });
            }
            Some(c) => {
                let reason = if c.enabled {
                    "the daemon is stopping"
                } else {
                    "disabled"
                };
                self.inner
                    .set_status(id, StatusKind::Disconnected, Some(reason.to_owned()))
                    .await;
            }
            None => {
                let _order = self.inner.status_order.lock().await;
                let previous = self
                    .inner
                    .statuses
                    .lock()
                    .expect("status map poisoned")
                    .remove(id);
                self.inner
                    .slots
                    .lock()
                    .expect("slot map poisoned")
                    .remove(id);
                self.inner.changed.send_modify(|g| *g += 1);
                // Announce the removal as the connection's last status, so
                // watchers of `connection.*` events (MCP tool lists) see it
                // at once.
                if let Some(previous) = previous {
                    let gone = ConnectionStatus::new(
                        StatusKind::Disconnected,
                        Some("the connection was deleted".into()),
                    );
                    self.inner
                        .bus
                        .publish_or_log(NewEvent::connection_status(id, Some(&previous), &gone))
                        .await;
                }
            }
        }
        Ok(())
    }

    /// Stop every runtime (in-flight actions get the drain grace period).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let ids: Vec<String> = self
            .inner
            .slots
            .lock()
            .expect("slot map poisoned")
            .keys()
            .cloned()
            .collect();
        let stops = ids.iter().map(|id| self.apply(id));
        for result in futures::future::join_all(stops).await {
            if let Err(error) = result {
                tracing::warn!(%error, "could not record a connection stop");
            }
        }
    }

    /// The current status of a connection, if it exists.
    pub fn status(&self, id: &str) -> Option<ConnectionStatus> {
        self.inner
            .statuses
            .lock()
            .expect("status map poisoned")
            .get(id)
            .cloned()
    }

    /// Lend the live session of a connection to one action, waiting up to
    /// `wait` while it is connecting.
    pub async fn acquire(&self, id: &str, wait: Duration) -> Result<ActionPermit, NotReady> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changed = self.inner.changed.subscribe();
        loop {
            changed.borrow_and_update();
            let live = self
                .inner
                .sessions
                .read()
                .expect("session map poisoned")
                .get(id)
                .cloned();
            if let Some(live) = live
                && let Ok(guard) = live.inflight.clone().try_read_owned()
            {
                return Ok(ActionPermit {
                    session: live.session,
                    _inflight: guard,
                    abort: live.abort,
                });
            }
            let status = match self.status(id) {
                Some(status) => status,
                None => return Err(NotReady::Gone),
            };
            let why = match &status.reason {
                Some(reason) => format!("connection is {}: {reason}", status.kind),
                None => format!("connection is {}", status.kind),
            };
            // Only a connection on its way up is worth waiting for here;
            // the others wait in the queue until they change.
            let worth_waiting = matches!(
                status.kind,
                StatusKind::Connecting | StatusKind::Connected | StatusKind::Degraded
            );
            let waiting = NotReady::Waiting {
                reason: why,
                kind: status.kind,
            };
            if !worth_waiting {
                return Err(waiting);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Err(waiting),
            }
        }
    }

    /// An action was refused for its credentials: the connection goes to
    /// `needs_reauth` and its session is stopped until new credentials arrive.
    pub async fn mark_needs_reauth(&self, id: &str, detail: &str) {
        let slot = self.inner.slot(id);
        let mut slot = slot.lock().await;
        if let Some(runtime) = slot.take() {
            runtime.cancel.cancel();
            let _ = runtime.task.await;
        }
        self.inner
            .set_status(id, StatusKind::NeedsReauth, Some(reauth_reason(detail)))
            .await;
    }
}

impl Inner {
    /// Know a connection's status from its row until the runtime reports.
    fn track(&self, connection: &switchboard_core::Connection) {
        self.statuses
            .lock()
            .expect("status map poisoned")
            .entry(connection.id.clone())
            .or_insert_with(|| connection.status.clone());
    }

    fn slot(&self, id: &str) -> Slot {
        self.slots
            .lock()
            .expect("slot map poisoned")
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    async fn set_status(&self, id: &str, kind: StatusKind, reason: Option<String>) {
        let _order = self.status_order.lock().await;
        let (previous, status) = {
            let mut statuses = self.statuses.lock().expect("status map poisoned");
            let previous = statuses.get(id).cloned();
            if let Some(p) = &previous
                && p.kind == kind
                && p.reason == reason
            {
                return;
            }
            if previous.is_none() && kind != StatusKind::Disconnected {
                // The connection was deleted while its runtime wound down.
                return;
            }
            let status = ConnectionStatus::new(kind, reason);
            statuses.insert(id.to_owned(), status.clone());
            (previous, status)
        };
        tracing::info!(connection = %id, status = %status.kind, reason = status.reason.as_deref().unwrap_or(""), "connection status");
        if let Err(error) = self.store.set_connection_status(id, &status).await {
            tracing::error!(%error, connection = %id, "could not persist connection status");
        }
        self.bus
            .publish_or_log(NewEvent::connection_status(id, previous.as_ref(), &status))
            .await;
        self.changed.send_modify(|g| *g += 1);
    }

    fn install(&self, id: &str, live: LiveSession) {
        self.sessions
            .write()
            .expect("session map poisoned")
            .insert(id.to_owned(), live);
        self.changed.send_modify(|g| *g += 1);
    }

    fn withdraw(&self, id: &str, live: &LiveSession) {
        let mut sessions = self.sessions.write().expect("session map poisoned");
        if sessions
            .get(id)
            .is_some_and(|s| Arc::ptr_eq(&s.inflight, &live.inflight))
        {
            sessions.remove(id);
        }
        drop(sessions);
        self.changed.send_modify(|g| *g += 1);
    }

    /// Wait for in-flight actions to finish; abort them after the grace period.
    async fn drain(&self, live: &LiveSession) {
        if tokio::time::timeout(self.config.drain_grace, live.inflight.write())
            .await
            .is_err()
        {
            tracing::warn!("in-flight actions outlived the drain grace period; aborting them");
            live.abort.cancel();
            let _ = live.inflight.write().await;
        }
    }

    async fn wake_waiting_jobs(&self, id: &str) {
        match self.store.wake_waiting_jobs(id, now_ms()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(connection = %id, jobs = n, "waking jobs that waited for this connection");
                self.jobs_wake.notify_one();
            }
            Err(error) => tracing::warn!(%error, connection = %id, "could not wake waiting jobs"),
        }
    }

    /// The longest reconnect wait for this connection: its connector's cap
    /// for its settings as they are now, else the daemon's.
    async fn reconnect_cap(&self, id: &str) -> Duration {
        let declared = match self.store.get_connection(id).await {
            Ok(Some(c)) => self
                .registry
                .connector(&c.connector)
                .and_then(|connector| connector.reconnect_max(&c.settings)),
            _ => None,
        };
        declared.unwrap_or(self.config.reconnect_max)
    }

    /// Open one session and run it until it ends.
    async fn open_and_run(
        self: &Arc<Self>,
        id: &str,
        cancel: &CancellationToken,
        reauth: &mut mpsc::UnboundedReceiver<String>,
        reauth_sender: &mpsc::UnboundedSender<String>,
    ) -> Ended {
        let retry = |reason: String| Ended::Retry {
            reason,
            was_connected: false,
        };
        let connection = match self.store.get_connection(id).await {
            Ok(Some(c)) if c.enabled => c,
            Ok(_) => return Ended::Cancelled,
            Err(e) => return retry(format!("could not read the connection: {e}")),
        };
        let Some(connector) = self.registry.connector(&connection.connector).cloned() else {
            return Ended::Fatal(
                StatusKind::Error,
                format!(
                    "connector `{}` is not part of this build",
                    connection.connector
                ),
            );
        };
        let secrets = match self.vault.secrets(id).await {
            Ok(secrets) => secrets,
            Err(e) if e.is_retryable() => return retry(e.to_string()),
            Err(e) => return Ended::Fatal(StatusKind::Error, e.to_string()),
        };
        let session_cancel = cancel.child_token();
        let env = Arc::new(Env {
            inner: Arc::downgrade(self),
            connection_id: id.to_owned(),
            reauth: reauth_sender.clone(),
            cancel: session_cancel.clone(),
        });
        let ctx = RuntimeContext {
            connection_id: id.to_owned(),
            settings: connection.settings.clone(),
            secrets,
            env,
            cancel: session_cancel.clone(),
        };
        let opened = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ended::Cancelled,
            opened = connector.connect(ctx) => opened,
        };
        let session = match opened {
            Ok(session) => session,
            Err(ConnectorError::NeedsReauth(m)) => {
                return Ended::Fatal(StatusKind::NeedsReauth, reauth_reason(&m));
            }
            Err(ConnectorError::Misconfigured(m)) => return Ended::Fatal(StatusKind::Error, m),
            Err(ConnectorError::Unavailable(m)) => return retry(m),
        };
        let live = LiveSession {
            session: session.clone(),
            inflight: Arc::new(RwLock::new(())),
            abort: CancellationToken::new(),
        };
        self.install(id, live.clone());
        self.set_status(id, StatusKind::Connected, None).await;
        self.wake_waiting_jobs(id).await;

        enum RunEnd {
            Cancelled,
            Reauth(String),
            Ended(Result<(), ConnectorError>),
        }
        let ended = tokio::select! {
            biased;
            _ = cancel.cancelled() => RunEnd::Cancelled,
            Some(detail) = reauth.recv() => RunEnd::Reauth(detail),
            result = session.run(session_cancel.clone()) => RunEnd::Ended(result),
        };
        session_cancel.cancel();
        self.withdraw(id, &live);
        self.drain(&live).await;
        if cancel.is_cancelled() {
            return Ended::Cancelled;
        }
        match ended {
            RunEnd::Cancelled => Ended::Cancelled,
            RunEnd::Reauth(detail) => Ended::Fatal(StatusKind::NeedsReauth, reauth_reason(&detail)),
            RunEnd::Ended(Ok(())) => Ended::Retry {
                reason: "the session ended".into(),
                was_connected: true,
            },
            RunEnd::Ended(Err(ConnectorError::NeedsReauth(m))) => {
                Ended::Fatal(StatusKind::NeedsReauth, reauth_reason(&m))
            }
            RunEnd::Ended(Err(ConnectorError::Misconfigured(m))) => {
                Ended::Fatal(StatusKind::Error, m)
            }
            RunEnd::Ended(Err(ConnectorError::Unavailable(m))) => Ended::Retry {
                reason: m,
                was_connected: true,
            },
        }
    }
}

/// The wait before reconnect attempt number `failures` (1 for the first
/// retry after a failure): `min` doubled per earlier failure, capped at
/// `cap`, then jittered into its upper half (`jitter` in `[0, 1]`) so that
/// many connections to one service do not retry in step.
///
/// Hand-rolled rather than `backon`'s `ExponentialBuilder` because backon
/// adds its jitter *on top of* the maximum delay (up to twice the cap), and
/// the cap here is a promise: a restarted local OBS is tried again within
/// the connector's cap of its port answering.
fn reconnect_delay(failures: u32, min: Duration, cap: Duration, jitter: f64) -> Duration {
    let min = min.min(cap);
    let doublings = failures.saturating_sub(1).min(32);
    let base = min.saturating_mul(1u32 << doublings.min(31)).min(cap);
    base.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

async fn run_runtime(inner: Arc<Inner>, id: String, cancel: CancellationToken) {
    let (reauth_sender, mut reauth) = mpsc::unbounded_channel();
    let mut failures: u32 = 0;
    let mut attempt: u64 = 0;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        attempt += 1;
        let reason = (attempt > 1).then(|| format!("reconnecting (attempt {attempt})"));
        inner.set_status(&id, StatusKind::Connecting, reason).await;
        match inner
            .open_and_run(&id, &cancel, &mut reauth, &reauth_sender)
            .await
        {
            Ended::Cancelled => return,
            Ended::Fatal(kind, reason) => {
                inner.set_status(&id, kind, Some(reason)).await;
                cancel.cancelled().await;
                return;
            }
            Ended::Retry {
                reason,
                was_connected,
            } => {
                if was_connected {
                    failures = 0;
                    attempt = 1;
                }
                failures = failures.saturating_add(1);
                let cap = inner.reconnect_cap(&id).await;
                let delay =
                    reconnect_delay(failures, inner.config.reconnect_min, cap, rand::random());
                tracing::warn!(connection = %id, %reason, ?delay, "connection failed; will reconnect");
                inner
                    .set_status(
                        &id,
                        StatusKind::Error,
                        Some(format!("{reason}; retrying in {:.1}s", delay.as_secs_f64())),
                    )
                    .await;
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// What a session sees of the daemon.
struct Env {
    inner: Weak<Inner>,
    connection_id: String,
    reauth: mpsc::UnboundedSender<String>,
    cancel: CancellationToken,
}

#[async_trait]
impl RuntimeEnv for Env {
    async fn emit(&self, event_type: &str, payload: Value) {
        if let Some(inner) = self.inner.upgrade() {
            inner
                .bus
                .publish_or_log(NewEvent::new(
                    event_type,
                    Some(self.connection_id.clone()),
                    payload,
                ))
                .await;
        }
    }

    async fn report_status(&self, kind: StatusKind, reason: Option<String>) {
        if self.cancel.is_cancelled() {
            return;
        }
        match kind {
            StatusKind::NeedsReauth => {
                let _ = self
                    .reauth
                    .send(reason.unwrap_or_else(|| "credentials rejected".into()));
            }
            StatusKind::Connected | StatusKind::Degraded => {
                if let Some(inner) = self.inner.upgrade() {
                    inner.set_status(&self.connection_id, kind, reason).await;
                }
            }
            other => tracing::warn!(
                connection = %self.connection_id,
                status = %other,
                "a session may only report connected, degraded or needs_reauth; it ends its run to report failure"
            ),
        }
    }

    async fn load_secrets(&self) -> Result<Secrets, String> {
        let inner = self.inner.upgrade().ok_or("the daemon is stopping")?;
        inner
            .vault
            .secrets(&self.connection_id)
            .await
            .map_err(|e| e.to_string())
    }

    async fn store_secrets(
        &self,
        changes: Vec<(String, Option<SecretString>)>,
    ) -> Result<(), String> {
        let inner = self.inner.upgrade().ok_or("the daemon is stopping")?;
        inner
            .vault
            .write_secrets(&self.connection_id, changes)
            .await
            .map_err(|e| e.to_string())
    }

    async fn lock(&self, key: &str) -> Result<Box<dyn Send>, String> {
        let inner = self.inner.upgrade().ok_or("the daemon is stopping")?;
        let guard = inner
            .store
            .lock(&format!("connection:{}:{key}", self.connection_id))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Box::new(guard))
    }

    async fn load_state(&self, key: &str) -> Result<Option<Value>, String> {
        let inner = self.inner.upgrade().ok_or("the daemon is stopping")?;
        inner
            .store
            .load_state(&self.connection_id, key)
            .await
            .map_err(|e| e.to_string())
    }

    async fn store_state(&self, key: &str, value: Option<Value>) -> Result<(), String> {
        let inner = self.inner.upgrade().ok_or("the daemon is stopping")?;
        inner
            .store
            .store_state(&self.connection_id, key, value.as_ref(), now_ms())
            .await
            .map_err(|e| e.to_string())
    }

    async fn media(&self, id: &str) -> Result<MediaInfo, String> {
        let inner = self.inner.upgrade().ok_or("the daemon is stopping")?;
        inner.media.get(id).await.map_err(|e| e.to_string())
    }

    async fn archive(
        &self,
        kind: &str,
        key: &str,
        occurred_at: i64,
        record: Value,
    ) -> Result<bool, String> {
        let inner = self.inner.upgrade().ok_or("the daemon is stopping")?;
        inner
            .store
            .insert_archive_record(&ArchiveRecord {
                id: new_id(),
                connection_id: self.connection_id.clone(),
                kind: kind.to_owned(),
                key: key.to_owned(),
                occurred_at,
                recorded_at: now_ms(),
                record,
            })
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::reconnect_delay;
    use std::time::Duration;

    const MIN: Duration = Duration::from_millis(500);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_backoff_doubles_up_to_the_cap() {
        // The top of each jitter range (jitter 1.0) is the undithered delay.
        let delays: Vec<Duration> = (1..=10)
            .map(|n| reconnect_delay(n, MIN, Duration::from_secs(60), 1.0))
            .collect();
        assert_eq!(
            delays,
            [
                500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000
            ]
            .map(ms)
        );
        // The bottom of each range is half of it.
        assert_eq!(
            reconnect_delay(3, MIN, Duration::from_secs(60), 0.0),
            ms(1000)
        );
    }

    #[test]
    fn after_a_long_outage_a_short_cap_still_bounds_the_wait() {
        // OBS has been down for hundreds of attempts: every wait, whatever
        // the jitter, stays within OBS's one-second cap.
        for failures in [1, 2, 3, 10, 100, 10_000, u32::MAX] {
            for jitter in [0.0, 0.3, 0.999, 1.0] {
                let delay = reconnect_delay(failures, MIN, ms(1000), jitter);
                assert!(delay <= ms(1000), "{failures} failures: {delay:?}");
                assert!(delay >= ms(250), "{failures} failures: {delay:?}");
            }
        }
    }

    #[test]
    fn a_cap_below_the_minimum_wins() {
        assert_eq!(reconnect_delay(1, MIN, ms(100), 1.0), ms(100));
        assert_eq!(reconnect_delay(50, MIN, ms(100), 1.0), ms(100));
    }

    #[test]
    fn out_of_range_jitter_is_clamped() {
        assert_eq!(reconnect_delay(1, MIN, ms(1000), 7.0), ms(500));
        assert_eq!(reconnect_delay(1, MIN, ms(1000), -1.0), ms(250));
    }
}
