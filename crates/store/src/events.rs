//! The event log.

use sqlx::any::AnyRow;
use switchboard_core::{Event, NewEvent};

use crate::{Result, Store, get, parse_json};

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events with a larger id.
    pub after_id: Option<i64>,
    /// Only events of this type, or of types starting with it when it ends in `.` or `*`.
    pub kind: Option<String>,
    pub connection_id: Option<String>,
    pub limit: i64,
}

fn event_from_row(row: &AnyRow) -> Result<Event> {
    let payload: String = get(row, "payload")?;
    Ok(Event {
        id: get(row, "id")?,
        kind: get(row, "kind")?,
        connection_id: get(row, "connection_id")?,
        payload: parse_json("events", "payload", &payload)?,
        at: get(row, "at")?,
    })
}

impl Store {
    pub async fn insert_event(&self, event: &NewEvent, at: i64) -> Result<Event> {
        let row = sqlx::query(
            "INSERT INTO events (kind, connection_id, payload, at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(&event.kind)
        .bind(event.connection_id.clone())
        .bind(event.payload.to_string())
        .bind(at)
        .fetch_one(&self.pool)
        .await?;
        Ok(Event {
            id: get(&row, "id")?,
            kind: event.kind.clone(),
            connection_id: event.connection_id.clone(),
            payload: event.payload.clone(),
            at,
        })
    }

    /// Events in log order (oldest first) after `after_id`.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let (kind_exact, kind_prefix) = match filter.kind.as_deref() {
            Some(k) if k.ends_with('*') => (None, Some(format!("{}%", k.trim_end_matches('*')))),
            Some(k) if k.ends_with('.') => (None, Some(format!("{k}%"))),
            Some(k) => (Some(k.to_owned()), None),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT id, kind, connection_id, payload, at FROM events
             WHERE id > $1 AND ($2 IS NULL OR kind = $2) AND ($3 IS NULL OR kind LIKE $3) AND ($4 IS NULL OR connection_id = $4)
             ORDER BY id LIMIT $5",
        )
        .bind(filter.after_id.unwrap_or(0))
        .bind(kind_exact)
        .bind(kind_prefix)
        .bind(filter.connection_id.clone())
        .bind(filter.limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The newest event id, or 0.
    pub async fn last_event_id(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS id FROM events")
            .fetch_one(&self.pool)
            .await?;
        get(&row, "id")
    }

    /// Apply retention: drop events older than `older_than` and all but the
    /// newest `keep_at_most`. Returns how many were dropped.
    pub async fn prune_events(&self, older_than: i64, keep_at_most: i64) -> Result<u64> {
        let by_age = sqlx::query("DELETE FROM events WHERE at < $1")
            .bind(older_than)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let by_count = sqlx::query(
            "DELETE FROM events WHERE id <= (SELECT COALESCE(MAX(id), 0) FROM events) - $1",
        )
        .bind(keep_at_most)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(by_age + by_count)
    }
}
