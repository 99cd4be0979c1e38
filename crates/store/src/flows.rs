//! Authorization flows in progress. A flow is consumed exactly once: the
//! first callback with its `state` takes it, any later one finds it used.

use crate::{Result, Store, get, parse_json};

/// A flow to record.
#[derive(Debug, Clone)]
pub struct NewFlow {
    pub state: String,
    pub connection_id: String,
    pub sealed_secret: Vec<u8>,
    pub data: serde_json::Value,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A consumed flow.
#[derive(Debug, Clone)]
pub struct Flow {
    pub connection_id: String,
    pub sealed_secret: Vec<u8>,
    pub data: serde_json::Value,
}

/// What a callback's `state` turned out to be.
#[derive(Debug, Clone)]
pub enum FlowLookup {
    Found(Flow),
    Unknown,
    AlreadyUsed,
    Expired,
}

impl Store {
    pub async fn insert_flow(&self, flow: &NewFlow) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_flows (state, connection_id, sealed_secret, data, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&flow.state)
        .bind(&flow.connection_id)
        .bind(flow.sealed_secret.clone())
        .bind(flow.data.to_string())
        .bind(flow.created_at)
        .bind(flow.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Take a flow by its state, atomically: two callbacks racing with the
    /// same state get it once between them.
    pub async fn consume_flow(&self, state: &str, now: i64) -> Result<FlowLookup> {
        let row = sqlx::query(
            "UPDATE oauth_flows SET consumed_at = $2 WHERE state = $1 AND consumed_at IS NULL
             RETURNING connection_id, sealed_secret, data, expires_at",
        )
        .bind(state)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => {
                let expires_at: i64 = get(&row, "expires_at")?;
                if expires_at < now {
                    return Ok(FlowLookup::Expired);
                }
                let data: String = get(&row, "data")?;
                Ok(FlowLookup::Found(Flow {
                    connection_id: get(&row, "connection_id")?,
                    sealed_secret: get(&row, "sealed_secret")?,
                    data: parse_json("oauth_flows", "data", &data)?,
                }))
            }
            None => {
                let exists = sqlx::query("SELECT 1 AS one FROM oauth_flows WHERE state = $1")
                    .bind(state)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(if exists.is_some() {
                    FlowLookup::AlreadyUsed
                } else {
                    FlowLookup::Unknown
                })
            }
        }
    }

    /// Forget flows that expired before `before`.
    pub async fn prune_flows(&self, before: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM oauth_flows WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::{Connection, ConnectionStatus, StatusKind};

    async fn store_with_connection(dir: &std::path::Path) -> Store {
        let store = Store::connect(&format!("sqlite://{}", dir.join("db.sqlite").display()))
            .await
            .unwrap();
        store
            .insert_connection(&Connection {
                id: "c1".into(),
                connector: "x".into(),
                label: "me".into(),
                enabled: true,
                settings: serde_json::json!({}),
                status: ConnectionStatus::new(StatusKind::Disconnected, None),
                created_at: 0,
                updated_at: 0,
            })
            .await
            .unwrap();
        store
    }

    fn flow(state: &str, expires_at: i64) -> NewFlow {
        NewFlow {
            state: state.into(),
            connection_id: "c1".into(),
            sealed_secret: vec![1, 2, 3],
            data: serde_json::json!({ "k": "v" }),
            created_at: 0,
            expires_at,
        }
    }

    #[tokio::test]
    async fn a_flow_is_consumed_once_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_connection(dir.path()).await;
        store.insert_flow(&flow("s1", 1_000)).await.unwrap();
        store.insert_flow(&flow("s2", 1_000)).await.unwrap();

        match store.consume_flow("s1", 500).await.unwrap() {
            FlowLookup::Found(f) => {
                assert_eq!(f.connection_id, "c1");
                assert_eq!(f.sealed_secret, vec![1, 2, 3]);
                assert_eq!(f.data["k"], "v");
            }
            other => panic!("expected the flow, got {other:?}"),
        }
        assert!(matches!(
            store.consume_flow("s1", 501).await.unwrap(),
            FlowLookup::AlreadyUsed
        ));
        assert!(matches!(
            store.consume_flow("nope", 500).await.unwrap(),
            FlowLookup::Unknown
        ));
        assert!(matches!(
            store.consume_flow("s2", 2_000).await.unwrap(),
            FlowLookup::Expired
        ));
        assert!(
            matches!(
                store.consume_flow("s2", 500).await.unwrap(),
                FlowLookup::AlreadyUsed
            ),
            "an expired flow is spent too"
        );
        assert_eq!(store.prune_flows(1_001).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn named_locks_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_connection(dir.path()).await;
        let guard = store.lock("refresh:c1").await.unwrap();
        let other = store.clone();
        let waiter = tokio::spawn(async move { other.lock("refresh:c1").await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the second taker waits");
        let _independent = store.lock("refresh:c2").await.unwrap();
        drop(guard);
        waiter.await.unwrap().unwrap();
    }
}
