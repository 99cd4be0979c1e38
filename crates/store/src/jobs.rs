//! The job outbox.
//!
//! # Claiming
//! Workers claim due jobs in batches with one atomic statement that flips them
//! from `queued` to `running`, counts the attempt and stamps a lease (owner +
//! expiry). On PostgreSQL the inner `SELECT ... FOR UPDATE SKIP LOCKED` lets
//! many processes claim concurrently without blocking or double-claiming. On
//! SQLite the same `UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING` is
//! atomic because SQLite runs one write transaction at a time.
//!
//! # Crash recovery
//! A job left `running` by a dead process goes back to `queued` and its
//! `recovered` counter goes up: its side effect may or may not have happened
//! (at-least-once). On SQLite one process owns the file, so at start-up every
//! `running` job is an orphan; on PostgreSQL a job is an orphan once its lease
//! expired (live workers extend their leases).
//!
//! Every state change after the claim is guarded by `lease_owner`, so a worker
//! that lost its lease cannot overwrite the outcome of the attempt that
//! replaced it.

use sqlx::any::AnyRow;
use switchboard_core::{Job, JobError, JobState};

use crate::{Backend, Result, Store, StoreError, get, is_unique_violation, parse_enum, parse_json};

const COLUMNS: &str = "id, connection_id, action, params, state, attempts, max_attempts, next_attempt_at, idempotency_key, result, error, waiting_reason, recovered, created_at, updated_at, started_at, finished_at";

const CLAIM_SQLITE: &str = "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, lease_expires_at = $2, started_at = $3, updated_at = $3, waiting_reason = NULL
    WHERE state = 'queued' AND id IN (SELECT id FROM jobs WHERE state = 'queued' AND next_attempt_at <= $3 ORDER BY next_attempt_at, id LIMIT $4)
    RETURNING id, connection_id, action, params, state, attempts, max_attempts, next_attempt_at, idempotency_key, result, error, waiting_reason, recovered, created_at, updated_at, started_at, finished_at";

// The CTE is evaluated once: with `WHERE id IN (SELECT ... LIMIT n FOR UPDATE
// SKIP LOCKED)` PostgreSQL may re-run the subquery and claim more than n rows.
const CLAIM_POSTGRES: &str = "WITH due AS (
        SELECT id FROM jobs WHERE state = 'queued' AND next_attempt_at <= $3 ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, lease_owner = $1, lease_expires_at = $2, started_at = $3, updated_at = $3, waiting_reason = NULL
    FROM due WHERE jobs.id = due.id
    RETURNING jobs.id, jobs.connection_id, jobs.action, jobs.params, jobs.state, jobs.attempts, jobs.max_attempts, jobs.next_attempt_at, jobs.idempotency_key, jobs.result, jobs.error, jobs.waiting_reason, jobs.recovered, jobs.created_at, jobs.updated_at, jobs.started_at, jobs.finished_at";

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub connection_id: String,
    pub action: String,
    pub params: serde_json::Value,
    pub idempotency_key: Option<String>,
    pub max_attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
}

/// The job a submit ended with: the new one, or the one that already held
/// the idempotency key.
#[derive(Debug, Clone)]
pub struct SubmitOutcome {
    pub job: Job,
    pub created: bool,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub connection_id: Option<String>,
    /// Only jobs with an id smaller than this (ids sort by creation time).
    pub before_id: Option<String>,
    pub limit: i64,
}

fn job_from_row(row: &AnyRow) -> Result<Job> {
    let params: String = get(row, "params")?;
    let state: String = get(row, "state")?;
    let result: Option<String> = get(row, "result")?;
    let error: Option<String> = get(row, "error")?;
    Ok(Job {
        id: get(row, "id")?,
        connection_id: get(row, "connection_id")?,
        action: get(row, "action")?,
        params: parse_json("jobs", "params", &params)?,
        state: parse_enum("jobs", "state", &state)?,
        attempts: get(row, "attempts")?,
        max_attempts: get(row, "max_attempts")?,
        next_attempt_at: get(row, "next_attempt_at")?,
        idempotency_key: get(row, "idempotency_key")?,
        result: result
            .map(|r| parse_json("jobs", "result", &r))
            .transpose()?,
        error: error
            .map(|e| {
                serde_json::from_str::<JobError>(&e).map_err(|err| StoreError::Corrupt {
                    table: "jobs",
                    column: "error",
                    message: err.to_string(),
                })
            })
            .transpose()?,
        waiting_reason: get(row, "waiting_reason")?,
        recovered: get(row, "recovered")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
    })
}

fn error_json(error: &JobError) -> String {
    serde_json::to_string(error).unwrap_or_else(|_| "{}".to_owned())
}

impl Store {
    /// Create a job, or return the existing one holding the same idempotency key.
    pub async fn insert_job(&self, new: &NewJob) -> Result<SubmitOutcome> {
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, connection_id, action, params, state, attempts, max_attempts, next_attempt_at, idempotency_key, recovered, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7, 0, $8, $8)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&new.id)
        .bind(&new.connection_id)
        .bind(&new.action)
        .bind(new.params.to_string())
        .bind(new.max_attempts)
        .bind(new.next_attempt_at)
        .bind(new.idempotency_key.clone())
        .bind(new.created_at)
        .execute(&self.pool)
        .await;
        let created = match inserted {
            Ok(r) => r.rows_affected() > 0,
            Err(e) if is_unique_violation(&e) => false,
            Err(e) => return Err(e.into()),
        };
        let job = if created {
            self.get_job(&new.id).await?
        } else {
            let key = new.idempotency_key.as_deref().unwrap_or_default();
            self.job_by_idempotency_key(key).await?
        };
        let job = job.ok_or_else(|| StoreError::Corrupt {
            table: "jobs",
            column: "id",
            message: "job vanished right after insert".into(),
        })?;
        Ok(SubmitOutcome { job, created })
    }

    pub async fn get_job(&self, id: &str) -> Result<Option<Job>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub async fn job_by_idempotency_key(&self, key: &str) -> Result<Option<Job>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE idempotency_key = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Jobs, newest first.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs
             WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR connection_id = $2) AND ($3 IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.connection_id.clone())
            .bind(filter.before_id.clone())
            .bind(filter.limit.clamp(1, 1000))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Count jobs per state, for health output and tests.
    pub async fn count_jobs(&self) -> Result<Vec<(JobState, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let state: String = get(r, "state")?;
                Ok((parse_enum("jobs", "state", &state)?, get(r, "n")?))
            })
            .collect()
    }

    /// Claim up to `limit` due jobs for `owner`; see the module docs.
    pub async fn claim_due_jobs(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Job>> {
        let sql = match self.backend {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let rows = sqlx::query(sql)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        jobs.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
        Ok(jobs)
    }

    /// Earliest `next_attempt_at` among queued jobs, so the claimer knows how
    /// long it may sleep.
    pub async fn next_due_at(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(next_attempt_at) AS t FROM jobs WHERE state = 'queued'")
            .fetch_one(&self.pool)
            .await?;
        get(&row, "t")
    }

    /// Record success. Returns false if `owner` no longer holds the job.
    pub async fn complete_job(
        &self,
        id: &str,
        owner: &str,
        result: &serde_json::Value,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET state = 'succeeded', result = $3, error = NULL, finished_at = $4, updated_at = $4, lease_owner = NULL, lease_expires_at = NULL, reauth_wait_since = NULL
             WHERE id = $1 AND state = 'running' AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(result.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Record a final failure (`failed` or `dead`). Returns false if `owner`
    /// no longer holds the job.
    pub async fn finish_job_with_error(
        &self,
        id: &str,
        owner: &str,
        state: JobState,
        error: &JobError,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET state = $3, error = $4, finished_at = $5, updated_at = $5, lease_owner = NULL, lease_expires_at = NULL, reauth_wait_since = NULL
             WHERE id = $1 AND state = 'running' AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(state.as_str())
        .bind(error_json(error))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Send a running job back to the queue after a retryable error.
    pub async fn schedule_retry(
        &self,
        id: &str,
        owner: &str,
        error: &JobError,
        next_attempt_at: i64,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET state = 'queued', error = $3, next_attempt_at = $4, updated_at = $5, lease_owner = NULL, lease_expires_at = NULL, reauth_wait_since = NULL
             WHERE id = $1 AND state = 'running' AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(error_json(error))
        .bind(next_attempt_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Put a claimed job back without spending an attempt: its connection
    /// cannot run actions now (`reason` says why). It is woken early by
    /// [`Store::wake_waiting_jobs`] when the connection comes back. With
    /// `for_reauth` (the connection needs re-authorization) the job keeps
    /// the time it began waiting for that, which
    /// [`Store::expire_reauth_waits`] measures; any other wait clears it.
    pub async fn defer_job(
        &self,
        id: &str,
        owner: &str,
        reason: &str,
        next_attempt_at: i64,
        now: i64,
        for_reauth: bool,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = attempts - 1, waiting_reason = $3, next_attempt_at = $4, updated_at = $5, lease_owner = NULL, lease_expires_at = NULL,
                 reauth_wait_since = CASE WHEN $6 = 1 THEN COALESCE(reauth_wait_since, $5) ELSE NULL END
             WHERE id = $1 AND state = 'running' AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(reason)
        .bind(next_attempt_at)
        .bind(now)
        .bind(for_reauth as i64)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Make the waiting jobs of a connection due now; returns how many.
    pub async fn wake_waiting_jobs(&self, connection_id: &str, now: i64) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE jobs SET next_attempt_at = $2, updated_at = $2, reauth_wait_since = NULL
             WHERE connection_id = $1 AND state = 'queued' AND waiting_reason IS NOT NULL AND next_attempt_at > $2",
        )
        .bind(connection_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Bury as `dead` (with `error`) every queued job that has waited since
    /// `cutoff` or earlier for a connection that still needs
    /// re-authorization; returns them. One statement for all connections, so
    /// a timer can run it cheaply.
    pub async fn expire_reauth_waits(
        &self,
        cutoff: i64,
        error: &JobError,
        now: i64,
    ) -> Result<Vec<Job>> {
        let sql = format!(
            "UPDATE jobs SET state = 'dead', error = $2, finished_at = $3, updated_at = $3, waiting_reason = NULL, reauth_wait_since = NULL
             WHERE state = 'queued' AND reauth_wait_since IS NOT NULL AND reauth_wait_since <= $1
               AND connection_id IN (SELECT id FROM connections WHERE status = 'needs_reauth')
             RETURNING {COLUMNS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cutoff)
            .bind(error_json(error))
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Re-queue jobs left `running` by a dead process. With `all_running`
    /// (SQLite start-up, where this process owns the file) every running job
    /// is an orphan; otherwise only those whose lease expired.
    pub async fn recover_orphaned_jobs(&self, now: i64, all_running: bool) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE jobs SET state = 'queued', recovered = recovered + 1, next_attempt_at = $1, updated_at = $1, lease_owner = NULL, lease_expires_at = NULL
             WHERE state = 'running' AND ($2 = 1 OR lease_expires_at < $1)",
        )
        .bind(now)
        .bind(all_running as i64)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Extend the leases of every job `owner` is running.
    pub async fn extend_job_leases(&self, owner: &str, until: i64) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $2 WHERE lease_owner = $1 AND state = 'running'",
        )
        .bind(owner)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Queue a `failed` or `dead` job again with `extra_attempts` more
    /// attempts. Returns the job, or None when it is not in a retryable state.
    pub async fn retry_job(&self, id: &str, extra_attempts: i64, now: i64) -> Result<Option<Job>> {
        let r = sqlx::query(
            "UPDATE jobs SET state = 'queued', max_attempts = attempts + $2, next_attempt_at = $3, updated_at = $3, finished_at = NULL, waiting_reason = NULL, reauth_wait_since = NULL
             WHERE id = $1 AND state IN ('failed', 'dead')",
        )
        .bind(id)
        .bind(extra_attempts)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_job(id).await
    }
}
