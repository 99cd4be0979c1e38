//! Webhook deliveries: the history of every request to `POST /hooks/{name}`,
//! accepted or refused, with headers (already stripped of secrets by the
//! caller), body and verdict. An accepted delivery id is unique per hook —
//! the replay check — while refused attempts are all kept (a partial unique
//! index, see the migration). Ids are UUID v7, so `ORDER BY id` is arrival
//! order.

use std::str::FromStr;

use sqlx::any::AnyRow;

use crate::{Result, Store, get, is_unique_violation, parse_enum, parse_json};

/// Whether a delivery was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Rejected,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Rejected => "rejected",
        }
    }
}

impl FromStr for Verdict {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "accepted" => Ok(Verdict::Accepted),
            "rejected" => Ok(Verdict::Rejected),
            other => Err(format!("unknown verdict `{other}`")),
        }
    }
}

/// One delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub connection_id: String,
    pub hook: String,
    /// The sender's id of the delivery, if it gave one.
    pub delivery_id: Option<String>,
    /// Epoch milliseconds.
    pub received_at: i64,
    pub verdict: Verdict,
    /// For a refused delivery, the check that failed (`signature`,
    /// `timestamp`, `replay`, `body_size`, ...).
    pub failed_check: Option<String>,
    pub reason: Option<String>,
    /// Header names (lower case) to values, as JSON.
    pub headers: serde_json::Value,
    /// The body as received (`None` in lists; empty when it was too large
    /// to keep).
    pub body: Option<Vec<u8>>,
    /// The size of the body as sent, in bytes (as far as it was read).
    pub body_size: i64,
    /// The `webhook.received` event of an accepted delivery.
    pub event_id: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub connection_id: String,
    pub verdict: Option<Verdict>,
    /// Only deliveries older than this one (paging backwards).
    pub before_id: Option<String>,
    pub limit: i64,
}

const COLUMNS: &str = "id, connection_id, hook, delivery_id, received_at, verdict, failed_check, reason, headers, body_size, event_id";

fn delivery_from_row(row: &AnyRow, with_body: bool) -> Result<Delivery> {
    let headers: String = get(row, "headers")?;
    let verdict: String = get(row, "verdict")?;
    Ok(Delivery {
        id: get(row, "id")?,
        connection_id: get(row, "connection_id")?,
        hook: get(row, "hook")?,
        delivery_id: get(row, "delivery_id")?,
        received_at: get(row, "received_at")?,
        verdict: parse_enum("webhook_deliveries", "verdict", &verdict)?,
        failed_check: get(row, "failed_check")?,
        reason: get(row, "reason")?,
        headers: parse_json("webhook_deliveries", "headers", &headers)?,
        body: if with_body {
            Some(get(row, "body")?)
        } else {
            None
        },
        body_size: get(row, "body_size")?,
        event_id: get(row, "event_id")?,
    })
}

impl Store {
    /// Record a delivery. An accepted delivery whose id this hook has
    /// already accepted is not written and gives `Ok(false)`: a replay.
    pub async fn insert_delivery(&self, delivery: &Delivery) -> Result<bool> {
        let result = sqlx::query(
            "INSERT INTO webhook_deliveries (id, connection_id, hook, delivery_id, received_at, verdict, failed_check, reason, headers, body, body_size, event_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&delivery.id)
        .bind(&delivery.connection_id)
        .bind(&delivery.hook)
        .bind(delivery.delivery_id.clone())
        .bind(delivery.received_at)
        .bind(delivery.verdict.as_str())
        .bind(delivery.failed_check.clone())
        .bind(delivery.reason.clone())
        .bind(delivery.headers.to_string())
        .bind(delivery.body.clone().unwrap_or_default())
        .bind(delivery.body_size)
        .bind(delivery.event_id)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if delivery.verdict == Verdict::Accepted && is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Link an accepted delivery to its event.
    pub async fn set_delivery_event(&self, id: &str, event_id: i64) -> Result<()> {
        sqlx::query("UPDATE webhook_deliveries SET event_id = $2 WHERE id = $1")
            .bind(id)
            .bind(event_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forget a delivery (one whose event could not be published, so that
    /// the sender's retry is not taken for a replay).
    pub async fn delete_delivery(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A hook's deliveries, newest first, without their bodies.
    pub async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM webhook_deliveries
             WHERE connection_id = $1 AND ($2 IS NULL OR verdict = $2) AND ($3 IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"
        )))
        .bind(&filter.connection_id)
        .bind(filter.verdict.map(Verdict::as_str))
        .bind(filter.before_id.clone())
        .bind(filter.limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| delivery_from_row(r, false)).collect()
    }

    /// One delivery of a hook, with its body.
    pub async fn get_delivery(&self, connection_id: &str, id: &str) -> Result<Option<Delivery>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, body FROM webhook_deliveries WHERE connection_id = $1 AND id = $2"
        )))
        .bind(connection_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| delivery_from_row(&r, true)).transpose()
    }

    /// Retention for one hook: drop deliveries received before
    /// `older_than` and all but the newest `keep_at_most`. Returns how many
    /// were dropped.
    pub async fn prune_deliveries(
        &self,
        connection_id: &str,
        older_than: i64,
        keep_at_most: i64,
    ) -> Result<u64> {
        let by_age = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE connection_id = $1 AND received_at < $2",
        )
        .bind(connection_id)
        .bind(older_than)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let by_count = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE connection_id = $1 AND id NOT IN
             (SELECT id FROM webhook_deliveries WHERE connection_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(connection_id)
        .bind(keep_at_most.max(0))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(by_age + by_count)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchboard_core::{Connection, ConnectionStatus, StatusKind, new_id};

    use super::*;

    async fn store(dir: &std::path::Path) -> Store {
        let store = Store::connect(&format!("sqlite://{}", dir.join("db.sqlite").display()))
            .await
            .unwrap();
        for id in ["h1", "h2"] {
            store
                .insert_connection(&Connection {
                    id: id.into(),
                    connector: "webhook".into(),
                    label: id.into(),
                    enabled: true,
                    settings: json!({}),
                    status: ConnectionStatus::new(StatusKind::Disconnected, None),
                    created_at: 0,
                    updated_at: 0,
                })
                .await
                .unwrap();
        }
        store
    }

    fn delivery(connection: &str, id: Option<&str>, verdict: Verdict, at: i64) -> Delivery {
        Delivery {
            id: new_id(),
            connection_id: connection.into(),
            hook: "hook".into(),
            delivery_id: id.map(str::to_owned),
            received_at: at,
            verdict,
            failed_check: (verdict == Verdict::Rejected).then(|| "signature".to_owned()),
            reason: None,
            headers: json!({"content-type": "application/json"}),
            body: Some(b"\x00{binary}".to_vec()),
            body_size: 9,
            event_id: None,
        }
    }

    #[tokio::test]
    async fn an_accepted_id_is_taken_once_per_hook() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let rejected = delivery("h1", Some("d1"), Verdict::Rejected, 1);
        assert!(store.insert_delivery(&rejected).await.unwrap());
        assert!(
            store
                .insert_delivery(&delivery("h1", Some("d1"), Verdict::Accepted, 2))
                .await
                .unwrap(),
            "a refused attempt does not use up the id"
        );
        assert!(
            !store
                .insert_delivery(&delivery("h1", Some("d1"), Verdict::Accepted, 3))
                .await
                .unwrap(),
            "the second acceptance of an id is a replay"
        );
        assert!(
            store
                .insert_delivery(&delivery("h1", Some("d1"), Verdict::Rejected, 4))
                .await
                .unwrap(),
            "the refused replay is recorded"
        );
        assert!(
            store
                .insert_delivery(&delivery("h2", Some("d1"), Verdict::Accepted, 5))
                .await
                .unwrap(),
            "another hook has its own ids"
        );
        for _ in 0..2 {
            assert!(
                store
                    .insert_delivery(&delivery("h1", None, Verdict::Accepted, 6))
                    .await
                    .unwrap(),
                "deliveries without an id are all kept"
            );
        }

        let all = store
            .list_deliveries(&DeliveryFilter {
                connection_id: "h1".into(),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 5);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert!(all.iter().all(|d| d.body.is_none()));
        let refused = store
            .list_deliveries(&DeliveryFilter {
                connection_id: "h1".into(),
                verdict: Some(Verdict::Rejected),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(refused.len(), 2);
        let older = store
            .list_deliveries(&DeliveryFilter {
                connection_id: "h1".into(),
                before_id: Some(all[1].id.clone()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(older.len(), 3);

        let one = store
            .get_delivery("h1", &rejected.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.body.as_deref(), Some(&b"\x00{binary}"[..]));
        assert_eq!(
            one,
            Delivery {
                body: one.body.clone(),
                ..rejected.clone()
            }
        );
        assert_eq!(store.get_delivery("h2", &rejected.id).await.unwrap(), None);

        store.set_delivery_event(&all[0].id, 42).await.unwrap();
        assert_eq!(
            store
                .get_delivery("h1", &all[0].id)
                .await
                .unwrap()
                .unwrap()
                .event_id,
            Some(42)
        );
        store.delete_delivery(&all[0].id).await.unwrap();
        assert_eq!(store.get_delivery("h1", &all[0].id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn retention_by_age_and_count_per_hook() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        for at in 0..10 {
            store
                .insert_delivery(&delivery("h1", None, Verdict::Accepted, at))
                .await
                .unwrap();
            store
                .insert_delivery(&delivery("h2", None, Verdict::Accepted, at))
                .await
                .unwrap();
        }
        assert_eq!(store.prune_deliveries("h1", 3, 100).await.unwrap(), 3);
        assert_eq!(store.prune_deliveries("h1", 0, 4).await.unwrap(), 3);
        let left = store
            .list_deliveries(&DeliveryFilter {
                connection_id: "h1".into(),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        let times: Vec<i64> = left.iter().map(|d| d.received_at).collect();
        assert_eq!(times, [9, 8, 7, 6], "the newest four");
        let other = store
            .list_deliveries(&DeliveryFilter {
                connection_id: "h2".into(),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(other.len(), 10, "other hooks keep theirs");
        assert!(store.delete_connection("h2").await.unwrap());
        assert_eq!(
            store
                .list_deliveries(&DeliveryFilter {
                    connection_id: "h2".into(),
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .len(),
            0,
            "deliveries go with their hook"
        );
    }
}
