//! The job workers.
//!
//! One claimer loop per process claims due jobs in batches (see
//! `switchboard_store::jobs` for the atomic claim) as long as a worker slot is
//! free, and runs each on its own task:
//!
//! 1. borrow the connection's live session from the supervisor (waiting a
//!    little while it is connecting);
//! 2. if the connection cannot run actions (`needs_reauth`, `error`,
//!    disabled), put the job back *without* spending an attempt; the
//!    supervisor wakes it when the connection comes back. A job does not
//!    wait for a re-authorization forever: a timer buries, in one query,
//!    the jobs that waited longer than `reauth_expiry` for a connection
//!    still in `needs_reauth` (`dead`, saying so; `job.finished` published);
//! 3. otherwise invoke the action and record the outcome: success, a retry
//!    after exponential backoff with jitter (or the service's `retry_after`),
//!    `failed` for a permanent error, `dead` when attempts run out.
//!
//! While jobs run, a keeper task extends their leases. On start-up, jobs
//! left `running` by a crashed process are re-queued (on PostgreSQL, those
//! whose lease expired, checked periodically so a surviving node picks up a
//! dead node's jobs).
//!
//! Delivery is at-least-once: a job whose process died mid-action runs again
//! and carries `recovered > 0` so the connector can check before repeating a
//! side effect. Every other job runs its action exactly once per attempt.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use switchboard_core::time::now_ms;
use switchboard_core::{ActionCall, ActionError, Job, JobError, JobState, NewEvent, StatusKind};
use switchboard_store::Store;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::bus::EventBus;
use crate::supervisor::{NotReady, Supervisor};

#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Jobs run at once by this process.
    pub workers: usize,
    /// How long a claimed job belongs to this process without a heartbeat.
    pub lease: Duration,
    /// Longest sleep of an idle claimer.
    pub poll: Duration,
    /// First retry delay; doubles per attempt.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
    /// How long a worker waits for a connecting connection before putting
    /// the job back.
    pub connect_wait: Duration,
    /// When a waiting job is looked at again if nothing wakes it sooner.
    pub waiting_recheck: Duration,
    /// How long a job may wait for its connection's re-authorization
    /// before it is given up as `dead`.
    pub reauth_expiry: Duration,
    /// How long shutdown waits for running jobs.
    pub shutdown_grace: Duration,
    /// Whether this process owns the database alone (SQLite): then every
    /// `running` job found at start-up is an orphan.
    pub exclusive_database: bool,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            workers: 16,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(300),
            connect_wait: Duration::from_secs(5),
            waiting_recheck: Duration::from_secs(60),
            reauth_expiry: Duration::from_secs(24 * 3600),
            shutdown_grace: Duration::from_secs(10),
            exclusive_database: true,
        }
    }
}

/// Runs jobs; see the module docs.
pub struct JobRunner {
    store: Store,
    supervisor: Supervisor,
    bus: Arc<EventBus>,
    node_id: String,
    config: JobsConfig,
    wake: Arc<Notify>,
}

enum Outcome {
    Done(serde_json::Value),
    Error(ActionError),
    Interrupted,
}

impl JobRunner {
    pub fn new(
        store: Store,
        supervisor: Supervisor,
        bus: Arc<EventBus>,
        node_id: String,
        config: JobsConfig,
        wake: Arc<Notify>,
    ) -> JobRunner {
        JobRunner {
            store,
            supervisor,
            bus,
            node_id,
            config,
            wake,
        }
    }

    /// Re-queue the jobs a crashed process left running.
    pub async fn recover_orphans(&self) {
        match self
            .store
            .recover_orphaned_jobs(now_ms(), self.config.exclusive_database)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "re-queued jobs left running by a stopped process"),
            Err(error) => tracing::error!(%error, "could not recover orphaned jobs"),
        }
    }

    /// Claim and run jobs until `cancel` fires, then wait (up to the grace
    /// period) for running jobs to finish.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        self.recover_orphans().await;
        let slots = Arc::new(Semaphore::new(self.config.workers.max(1)));
        let tracker = TaskTracker::new();
        let keeper = tokio::spawn(self.clone().keep_leases(cancel.clone()));
        let expirer = tokio::spawn(self.clone().expire_reauth_waits(cancel.clone()));
        loop {
            let first = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                permit = slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            };
            let free = slots.available_permits() + 1;
            let lease_ms = self.config.lease.as_millis() as i64;
            let claimed = self
                .store
                .claim_due_jobs(&self.node_id, now_ms(), lease_ms, free.min(64) as i64)
                .await;
            let jobs = match claimed {
                Ok(jobs) => jobs,
                Err(error) => {
                    tracing::error!(%error, "could not claim jobs");
                    drop(first);
                    self.idle(&cancel, self.config.poll).await;
                    continue;
                }
            };
            if jobs.is_empty() {
                drop(first);
                let sleep = match self.store.next_due_at().await {
                    Ok(Some(at)) => Duration::from_millis((at - now_ms()).max(0) as u64),
                    _ => self.config.poll,
                };
                self.idle(&cancel, sleep.min(self.config.poll)).await;
                continue;
            }
            let mut first = Some(first);
            for job in jobs {
                let permit = match first.take() {
                    Some(p) => p,
                    // Only this loop takes slots, so they are free; waiting
                    // (instead of assuming) keeps the bound even if not.
                    None => slots
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore is never closed"),
                };
                tracker.spawn(self.clone().execute(job, permit));
            }
        }
        tracker.close();
        if tokio::time::timeout(self.config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "jobs still running at shutdown; they will be recovered at the next start"
            );
        }
        keeper.abort();
        expirer.abort();
    }

    async fn idle(&self, cancel: &CancellationToken, duration: Duration) {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(duration) => {}
        }
    }

    /// Extend our leases; on a shared database also recover other nodes'
    /// expired ones.
    async fn keep_leases(self: Arc<Self>, cancel: CancellationToken) {
        let period = self.config.lease / 3;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let until = now_ms() + self.config.lease.as_millis() as i64;
            if let Err(error) = self.store.extend_job_leases(&self.node_id, until).await {
                tracing::error!(%error, "could not extend job leases");
            }
            if !self.config.exclusive_database {
                self.recover_orphans().await;
                self.wake.notify_one();
            }
        }
    }

    /// Bury the jobs that waited too long for a re-authorization: one
    /// query per tick (a tenth of the expiry, between 1 s and 60 s), not a
    /// check per job.
    async fn expire_reauth_waits(self: Arc<Self>, cancel: CancellationToken) {
        let expiry = self.config.reauth_expiry;
        let period = (expiry / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let error = JobError {
            code: "needs_reauth".into(),
            message: format!(
                "the account needs re-authorization (reconnect it): gave up after {}",
                short_duration(expiry)
            ),
            retryable: false,
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let now = now_ms();
            let cutoff = now - expiry.as_millis() as i64;
            match self.store.expire_reauth_waits(cutoff, &error, now).await {
                Ok(jobs) => {
                    for job in jobs {
                        tracing::warn!(job = %job.id, connection = %job.connection_id, "{}", error.message);
                        self.bus.publish_or_log(NewEvent::job_finished(&job)).await;
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "could not expire jobs waiting for re-authorization")
                }
            }
        }
    }

    async fn execute(self: Arc<Self>, job: Job, _slot: OwnedSemaphorePermit) {
        let span = tracing::info_span!("job", id = %job.id, action = %job.action, connection = %job.connection_id, attempt = job.attempts);
        async move {
            let result = self.attempt(&job).await;
            if let Err(error) = result {
                tracing::error!(%error, "could not record job outcome; the job will be recovered after its lease");
            }
        }
        .instrument(span)
        .await
    }

    async fn attempt(&self, job: &Job) -> Result<(), switchboard_store::StoreError> {
        let now = now_ms();
        let permit = match self
            .supervisor
            .acquire(&job.connection_id, self.config.connect_wait)
            .await
        {
            Ok(permit) => permit,
            Err(NotReady::Gone) => {
                let error = JobError {
                    code: "connection_not_found".into(),
                    message: format!("connection `{}` no longer exists", job.connection_id),
                    retryable: false,
                };
                return self.finish(job, JobState::Failed, error).await;
            }
            Err(NotReady::Waiting { reason, kind }) => {
                tracing::info!(%reason, "job waits for its connection");
                let next = now + self.config.waiting_recheck.as_millis() as i64;
                let for_reauth = kind == StatusKind::NeedsReauth;
                self.store
                    .defer_job(&job.id, &self.node_id, &reason, next, now, for_reauth)
                    .await?;
                return Ok(());
            }
        };
        let call = ActionCall {
            job_id: job.id.clone(),
            action: job.action.clone(),
            params: job.params.clone(),
            attempt: job.attempts,
            recovered: job.recovered > 0,
            idempotency_key: job.idempotency_key.clone(),
            created_at: job.created_at,
        };
        let aborted = permit.aborted();
        let outcome = tokio::select! {
            biased;
            _ = aborted => Outcome::Interrupted,
            result = permit.session.invoke(call) => match result {
                Ok(value) => Outcome::Done(value),
                Err(error) => Outcome::Error(error),
            },
        };
        drop(permit);
        match outcome {
            Outcome::Done(value) => {
                if self
                    .store
                    .complete_job(&job.id, &self.node_id, &value, now_ms())
                    .await?
                {
                    tracing::debug!("job succeeded");
                    let mut done = job.clone();
                    done.state = JobState::Succeeded;
                    done.result = Some(value);
                    self.bus.publish_or_log(NewEvent::job_finished(&done)).await;
                } else {
                    tracing::warn!("job finished after its lease was taken over; outcome dropped");
                }
                Ok(())
            }
            Outcome::Interrupted => {
                let error = JobError {
                    code: "interrupted".into(),
                    message: "the connection restarted while the action ran; it will be retried"
                        .into(),
                    retryable: true,
                };
                self.retry_or_bury(job, error, None).await
            }
            Outcome::Error(ActionError::NeedsReauth(detail)) => {
                self.supervisor
                    .mark_needs_reauth(&job.connection_id, &detail)
                    .await;
                let reason = format!("connection needs re-authorization: {detail}");
                let now = now_ms();
                let next = now + self.config.waiting_recheck.as_millis() as i64;
                self.store
                    .defer_job(&job.id, &self.node_id, &reason, next, now, true)
                    .await?;
                Ok(())
            }
            Outcome::Error(ActionError::RateLimited {
                message,
                retry_after,
            }) => {
                // Waiting for a rate-limit window is not a failed attempt.
                tracing::info!(%message, ?retry_after, "job waits for the rate limit");
                let now = now_ms();
                let next = now + retry_after.as_millis() as i64;
                self.store
                    .defer_job(&job.id, &self.node_id, &message, next, now, false)
                    .await?;
                self.wake.notify_one();
                Ok(())
            }
            Outcome::Error(error) => {
                let job_error = JobError {
                    code: error.code().into(),
                    message: error.to_string(),
                    retryable: error.is_retryable(),
                };
                if error.is_retryable() {
                    let retry_after = match &error {
                        ActionError::Transient { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    self.retry_or_bury(job, job_error, retry_after).await
                } else {
                    self.finish(job, JobState::Failed, job_error).await
                }
            }
        }
    }

    async fn retry_or_bury(
        &self,
        job: &Job,
        error: JobError,
        retry_after: Option<Duration>,
    ) -> Result<(), switchboard_store::StoreError> {
        if job.attempts >= job.max_attempts {
            let error = JobError {
                message: format!(
                    "{} (gave up after {} attempts)",
                    error.message, job.attempts
                ),
                ..error
            };
            return self.finish(job, JobState::Dead, error).await;
        }
        let delay = retry_after.unwrap_or_else(|| retry_delay(&self.config, job.attempts));
        let now = now_ms();
        tracing::info!(code = %error.code, ?delay, "job will be retried");
        self.store
            .schedule_retry(
                &job.id,
                &self.node_id,
                &error,
                now + delay.as_millis() as i64,
                now,
            )
            .await?;
        Ok(())
    }

    async fn finish(
        &self,
        job: &Job,
        state: JobState,
        error: JobError,
    ) -> Result<(), switchboard_store::StoreError> {
        tracing::warn!(code = %error.code, message = %error.message, %state, "job ended without success");
        if self
            .store
            .finish_job_with_error(&job.id, &self.node_id, state, &error, now_ms())
            .await?
        {
            let mut done = job.clone();
            done.state = state;
            done.error = Some(error);
            self.bus.publish_or_log(NewEvent::job_finished(&done)).await;
        }
        Ok(())
    }
}

/// `24h`, `90m`, `5s`: the largest whole unit, for messages.
pub fn short_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => format!("{}ms", duration.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Exponential backoff with jitter: a random delay between half and all of
/// `base * 2^(attempt-1)`, capped. Jitter keeps many failed jobs from
/// retrying in lockstep.
pub fn retry_delay(config: &JobsConfig, attempt: i64) -> Duration {
    let exponent = attempt.clamp(1, 30) as u32 - 1;
    let full = config
        .retry_base
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(config.retry_cap);
    let half = full / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations_use_the_largest_whole_unit() {
        assert_eq!(short_duration(Duration::from_secs(86400)), "24h");
        assert_eq!(short_duration(Duration::from_secs(120)), "2m");
        assert_eq!(short_duration(Duration::from_secs(3)), "3s");
    }

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        let config = JobsConfig {
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(60),
            ..JobsConfig::default()
        };
        for attempt in 1..40 {
            let delay = retry_delay(&config, attempt);
            let full =
                Duration::from_secs(1u64 << (attempt - 1).min(20)).min(Duration::from_secs(60));
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?} vs {full:?}"
            );
        }
    }
}
