//! Rules written through the API, rule runs (one rule's answer to one event),
//! rule variables and the rules engine's small state. See
//! `switchboard_runtime::rules` for what these mean.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::any::AnyRow;
use switchboard_core::Event;

use crate::{Result, Store, get, parse_json};

/// A rule as stored: its definition as JSON.
#[derive(Debug, Clone)]
pub struct StoredRule {
    pub name: String,
    pub definition: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One rule run.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRun {
    pub id: String,
    pub rule: String,
    pub event_id: i64,
    pub queue: Option<String>,
    pub priority: i64,
    /// `queued`, `running`, `succeeded`, `failed`.
    pub state: String,
    /// The rendered actions: `[{action, connections, params, jobs}]`.
    pub actions: Value,
    /// Index of the first action not finished yet.
    pub next_action: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub rule: Option<String>,
    pub event_id: Option<i64>,
    pub state: Option<String>,
    pub limit: i64,
}

const RUN_COLUMNS: &str = "id, rule, event_id, queue, priority, state, actions, next_action, error, created_at, updated_at";

fn run_from_row(row: &AnyRow) -> Result<RuleRun> {
    Ok(RuleRun {
        id: get(row, "id")?,
        rule: get(row, "rule")?,
        event_id: get(row, "event_id")?,
        queue: get(row, "queue")?,
        priority: get(row, "priority")?,
        state: get(row, "state")?,
        actions: parse_json("rule_runs", "actions", &get::<String>(row, "actions")?)?,
        next_action: get(row, "next_action")?,
        error: get(row, "error")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

impl Store {
    pub async fn list_rules(&self) -> Result<Vec<StoredRule>> {
        let rows =
            sqlx::query("SELECT name, definition, created_at, updated_at FROM rules ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredRule {
                    name: get(row, "name")?,
                    definition: parse_json(
                        "rules",
                        "definition",
                        &get::<String>(row, "definition")?,
                    )?,
                    created_at: get(row, "created_at")?,
                    updated_at: get(row, "updated_at")?,
                })
            })
            .collect()
    }

    /// Insert or replace a rule.
    pub async fn put_rule(&self, name: &str, definition: &Value, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO rules (name, definition, created_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(definition.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_rule(&self, name: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM rules WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Insert a run unless this rule already answered this event; true when inserted.
    pub async fn insert_run(&self, run: &RuleRun) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO rule_runs (id, rule, event_id, queue, priority, state, actions, next_action, error, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (rule, event_id) DO NOTHING",
        )
        .bind(&run.id)
        .bind(&run.rule)
        .bind(run.event_id)
        .bind(run.queue.clone())
        .bind(run.priority)
        .bind(&run.state)
        .bind(run.actions.to_string())
        .bind(run.next_action)
        .bind(run.error.clone())
        .bind(run.created_at)
        .bind(run.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Runs that may start now: queued runs outside any queue (oldest
    /// first), and the head (highest priority, oldest) of every queue that is
    /// neither running one nor paused.
    pub async fn startable_runs(&self, paused: &[String], limit: i64) -> Result<Vec<RuleRun>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM rule_runs WHERE state = 'queued' AND queue IS NULL ORDER BY created_at, id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows.iter().map(run_from_row).collect::<Result<Vec<_>>>()?;
        let queues: Vec<String> = sqlx::query(
            "SELECT DISTINCT queue FROM rule_runs WHERE state = 'queued' AND queue IS NOT NULL
             AND queue NOT IN (SELECT queue FROM rule_runs WHERE state = 'running' AND queue IS NOT NULL)",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| get::<String>(row, "queue"))
        .collect::<Result<_>>()?;
        for queue in queues.iter().filter(|q| !paused.contains(q)) {
            let head = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {RUN_COLUMNS} FROM rule_runs WHERE state = 'queued' AND queue = $1
                 ORDER BY priority DESC, created_at, id LIMIT 1"
            )))
            .bind(queue)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = head {
                out.push(run_from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Move a run from `queued` to `running`; false if someone else did.
    pub async fn start_run(&self, id: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE rule_runs SET state = 'running', updated_at = $2 WHERE id = $1 AND state = 'queued'",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Record a run's progress.
    pub async fn update_run(
        &self,
        id: &str,
        state: &str,
        actions: &Value,
        next_action: i64,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE rule_runs SET state = $2, actions = $3, next_action = $4, error = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(actions.to_string())
        .bind(next_action)
        .bind(error.map(str::to_owned))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_run(&self, id: &str) -> Result<Option<RuleRun>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM rule_runs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Runs, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RuleRun>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM rule_runs
             WHERE ($1 IS NULL OR rule = $1) AND ($2 IS NULL OR event_id = $2) AND ($3 IS NULL OR state = $3)
             ORDER BY created_at DESC, id DESC LIMIT $4"
        )))
        .bind(filter.rule.clone())
        .bind(filter.event_id)
        .bind(filter.state.clone())
        .bind(filter.limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// How many runs wait in each queue, and which queue runs one now.
    pub async fn queue_counts(&self) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT queue,
                    SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END) AS waiting,
                    SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END) AS running
             FROM rule_runs WHERE queue IS NOT NULL AND state IN ('queued', 'running')
             GROUP BY queue ORDER BY queue",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    get(row, "queue")?,
                    get(row, "waiting")?,
                    get(row, "running")?,
                ))
            })
            .collect()
    }

    pub async fn rule_vars(&self) -> Result<BTreeMap<String, Value>> {
        let rows = sqlx::query("SELECT name, value FROM rule_vars ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    get(row, "name")?,
                    parse_json("rule_vars", "value", &get::<String>(row, "value")?)?,
                ))
            })
            .collect()
    }

    /// Set (`Some`) or delete (`None`) a variable.
    pub async fn set_rule_var(&self, name: &str, value: Option<&Value>, now: i64) -> Result<()> {
        match value {
            Some(value) => {
                sqlx::query(
                    "INSERT INTO rule_vars (name, value, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(value.to_string())
                .bind(now)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM rule_vars WHERE name = $1")
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn rule_meta(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM rule_meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| get(r, "value")).transpose()
    }

    /// Set (`Some`) or delete (`None`) a meta value.
    pub async fn set_rule_meta(&self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(value) => {
                sqlx::query(
                    "INSERT INTO rule_meta (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(key)
                .bind(value)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM rule_meta WHERE key = $1")
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Meta values whose key starts with `prefix`.
    pub async fn rule_meta_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT key, value FROM rule_meta WHERE key LIKE $1 ORDER BY key")
            .bind(format!("{prefix}%"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((get(row, "key")?, get(row, "value")?)))
            .collect()
    }

    /// One event by id.
    pub async fn get_event(&self, id: i64) -> Result<Option<Event>> {
        let events = self
            .list_events(&crate::EventFilter {
                // Saturating: ids are positive, and `i64::MIN - 1` must not panic.
                after_id: Some(id.saturating_sub(1)),
                limit: 1,
                ..Default::default()
            })
            .await?;
        Ok(events.into_iter().find(|e| e.id == id))
    }
}
