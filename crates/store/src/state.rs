//! Connector state rows: small, durable, non-secret values a connector keeps
//! per connection across restarts (a polling cursor such as `since_id`, a
//! cached account identity). JSON as text; deleted with the connection.

use crate::{Result, Store, get, parse_json};

impl Store {
    /// One state value of a connection, if set.
    pub async fn load_state(
        &self,
        connection_id: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>> {
        let row =
            sqlx::query("SELECT value FROM connector_state WHERE connection_id = $1 AND key = $2")
                .bind(connection_id)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some(row) => {
                let text: String = get(&row, "value")?;
                Ok(Some(parse_json("connector_state", "value", &text)?))
            }
            None => Ok(None),
        }
    }

    /// Write (`Some`, insert or replace) or delete (`None`) one state value.
    pub async fn store_state(
        &self,
        connection_id: &str,
        key: &str,
        value: Option<&serde_json::Value>,
        now: i64,
    ) -> Result<()> {
        match value {
            Some(value) => {
                sqlx::query(
                    "INSERT INTO connector_state (connection_id, key, value, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (connection_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(connection_id)
                .bind(key)
                .bind(value.to_string())
                .bind(now)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM connector_state WHERE connection_id = $1 AND key = $2")
                    .bind(connection_id)
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchboard_core::{Connection, ConnectionStatus, StatusKind};

    use crate::Store;

    async fn store_with_connections(dir: &std::path::Path) -> Store {
        let store = Store::connect(&format!("sqlite://{}", dir.join("db.sqlite").display()))
            .await
            .unwrap();
        for id in ["c1", "c2"] {
            store
                .insert_connection(&Connection {
                    id: id.into(),
                    connector: "x".into(),
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

    #[tokio::test]
    async fn state_is_kept_per_connection_replaced_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_connections(dir.path()).await;
        assert_eq!(store.load_state("c1", "since_id").await.unwrap(), None);

        store
            .store_state("c1", "since_id", Some(&json!("100")), 1)
            .await
            .unwrap();
        store
            .store_state("c2", "since_id", Some(&json!({ "id": 7 })), 1)
            .await
            .unwrap();
        store
            .store_state("c1", "since_id", Some(&json!("200")), 2)
            .await
            .unwrap();
        assert_eq!(
            store.load_state("c1", "since_id").await.unwrap(),
            Some(json!("200")),
            "a second write replaces the first"
        );
        assert_eq!(
            store.load_state("c2", "since_id").await.unwrap(),
            Some(json!({ "id": 7 })),
            "each connection has its own"
        );

        store.store_state("c1", "since_id", None, 3).await.unwrap();
        assert_eq!(store.load_state("c1", "since_id").await.unwrap(), None);
        // Deleting what is not there is not an error.
        store.store_state("c1", "since_id", None, 4).await.unwrap();

        assert!(store.delete_connection("c2").await.unwrap());
        assert_eq!(
            store.load_state("c2", "since_id").await.unwrap(),
            None,
            "state goes with its connection"
        );
    }
}
