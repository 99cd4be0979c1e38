//! The audit archive: records a connector keeps per connection as they
//! arrive (followers, subscriptions, raids, cheers), queryable long after
//! the event log is pruned. A record is unique per connection, kind and key,
//! so a notification delivered twice is archived once. JSON as text;
//! deleted with the connection.

use crate::{Result, Store, get, parse_json};

/// One archived record.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveRecord {
    /// Time-ordered (UUID v7): newer records have greater ids.
    pub id: String,
    pub connection_id: String,
    /// The collection, such as `followers`.
    pub kind: String,
    /// What identifies the record within its kind (the service's message id).
    pub key: String,
    /// When it happened, epoch milliseconds.
    pub occurred_at: i64,
    /// When it was archived, epoch milliseconds.
    pub recorded_at: i64,
    pub record: serde_json::Value,
}

/// Which records to list: one kind of one connection, newest first.
#[derive(Debug, Clone, Default)]
pub struct ArchiveFilter {
    pub connection_id: String,
    pub kind: String,
    /// Only records that occurred at or after this (epoch ms).
    pub since: Option<i64>,
    /// Only records that occurred before this (epoch ms).
    pub until: Option<i64>,
    /// Page backwards: only records older than this one (by occurrence,
    /// then id).
    pub before_id: Option<String>,
    /// At most this many (clamped to 1..=10000).
    pub limit: i64,
}

const COLUMNS: &str = "id, connection_id, kind, record_key, occurred_at, recorded_at, record";

fn record_from_row(row: &sqlx::any::AnyRow) -> Result<ArchiveRecord> {
    let record: String = get(row, "record")?;
    Ok(ArchiveRecord {
        id: get(row, "id")?,
        connection_id: get(row, "connection_id")?,
        kind: get(row, "kind")?,
        key: get(row, "record_key")?,
        occurred_at: get(row, "occurred_at")?,
        recorded_at: get(row, "recorded_at")?,
        record: parse_json("archive_records", "record", &record)?,
    })
}

impl Store {
    /// Archive one record. Returns `false` (and changes nothing) when the
    /// connection already has a record of this kind with this key.
    pub async fn insert_archive_record(&self, record: &ArchiveRecord) -> Result<bool> {
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO archive_records ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (connection_id, kind, record_key) DO NOTHING"
        )))
        .bind(&record.id)
        .bind(&record.connection_id)
        .bind(&record.kind)
        .bind(&record.key)
        .bind(record.occurred_at)
        .bind(record.recorded_at)
        .bind(record.record.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted > 0)
    }

    /// Records of one kind, newest first (by when they occurred).
    pub async fn list_archive(&self, filter: &ArchiveFilter) -> Result<Vec<ArchiveRecord>> {
        // Paging by (occurred_at, id): the anchor's occurrence is looked up
        // so that records archived late (a backfill) still page in order.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM archive_records a
             WHERE connection_id = $1 AND kind = $2
               AND ($3 IS NULL OR occurred_at >= $3)
               AND ($4 IS NULL OR occurred_at < $4)
               AND ($5 IS NULL OR EXISTS (
                    SELECT 1 FROM archive_records b
                    WHERE b.id = $5 AND (a.occurred_at < b.occurred_at
                        OR (a.occurred_at = b.occurred_at AND a.id < b.id))))
             ORDER BY occurred_at DESC, id DESC LIMIT $6"
        )))
        .bind(&filter.connection_id)
        .bind(&filter.kind)
        .bind(filter.since)
        .bind(filter.until)
        .bind(filter.before_id.clone())
        .bind(filter.limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// How many records of each kind a connection has, by kind.
    pub async fn count_archive(&self, connection_id: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM archive_records WHERE connection_id = $1
             GROUP BY kind ORDER BY kind",
        )
        .bind(connection_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((get(row, "kind")?, get(row, "n")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchboard_core::{Connection, ConnectionStatus, StatusKind, new_id};

    use super::*;

    async fn store_with_connection(dir: &std::path::Path) -> Store {
        let store = Store::connect(&format!("sqlite://{}", dir.join("db.sqlite").display()))
            .await
            .unwrap();
        store
            .insert_connection(&Connection {
                id: "c1".into(),
                connector: "twitch".into(),
                label: "c1".into(),
                enabled: true,
                settings: json!({}),
                status: ConnectionStatus::new(StatusKind::Disconnected, None),
                created_at: 0,
                updated_at: 0,
            })
            .await
            .unwrap();
        store
    }

    fn record(kind: &str, key: &str, occurred_at: i64) -> ArchiveRecord {
        ArchiveRecord {
            id: new_id(),
            connection_id: "c1".into(),
            kind: kind.into(),
            key: key.into(),
            occurred_at,
            recorded_at: occurred_at + 5,
            record: json!({ "user_login": format!("user-{key}") }),
        }
    }

    fn filter(kind: &str) -> ArchiveFilter {
        ArchiveFilter {
            connection_id: "c1".into(),
            kind: kind.into(),
            limit: 100,
            ..ArchiveFilter::default()
        }
    }

    #[tokio::test]
    async fn a_key_is_archived_once_and_lists_newest_first_by_occurrence() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_connection(dir.path()).await;
        assert!(
            store
                .insert_archive_record(&record("followers", "m1", 100))
                .await
                .unwrap()
        );
        assert!(
            store
                .insert_archive_record(&record("followers", "m3", 300))
                .await
                .unwrap()
        );
        // A backfilled record archived later but that occurred in between.
        assert!(
            store
                .insert_archive_record(&record("followers", "m2", 200))
                .await
                .unwrap()
        );
        assert!(
            !store
                .insert_archive_record(&record("followers", "m1", 100))
                .await
                .unwrap(),
            "the same key again is refused"
        );
        assert!(
            store
                .insert_archive_record(&record("raids", "m1", 150))
                .await
                .unwrap(),
            "keys are per kind"
        );

        let all = store.list_archive(&filter("followers")).await.unwrap();
        let keys: Vec<&str> = all.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["m3", "m2", "m1"]);
        assert_eq!(all[0].record, json!({ "user_login": "user-m3" }));

        let page = store
            .list_archive(&ArchiveFilter {
                before_id: Some(all[0].id.clone()),
                limit: 1,
                ..filter("followers")
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].key, "m2", "paging follows occurrence order");

        let window = store
            .list_archive(&ArchiveFilter {
                since: Some(150),
                until: Some(300),
                ..filter("followers")
            })
            .await
            .unwrap();
        assert_eq!(
            window.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["m2"]
        );

        assert_eq!(
            store.count_archive("c1").await.unwrap(),
            vec![("followers".to_owned(), 3), ("raids".to_owned(), 1)]
        );
        assert!(store.delete_connection("c1").await.unwrap());
        assert!(
            store
                .list_archive(&filter("followers"))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
