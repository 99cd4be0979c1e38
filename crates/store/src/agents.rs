//! Agent tokens: API tokens with role `agent`, each scoped to a set of
//! connections (`agent_connections`). The token itself is stored as a
//! SHA-256 hash in `api_tokens`, like every token; revoking sets
//! `revoked_at`, after which [`Store::find_token`] no longer finds it.

use crate::{ApiToken, Result, Store, TokenRole, get};

/// An agent token as listed to its owner: never the token, only what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: String,
    pub name: String,
    /// The connections the agent may act on (those that still exist).
    pub connections: Vec<String>,
    pub created_at: i64,
    /// Epoch milliseconds; `None` while the token works.
    pub revoked_at: Option<i64>,
}

impl Store {
    /// Store an agent token (role `agent`) and its connections, in one transaction.
    pub async fn insert_agent(&self, token: &ApiToken, connections: &[String]) -> Result<()> {
        debug_assert_eq!(token.role, TokenRole::Agent);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(&token.token_hash)
        .bind(TokenRole::Agent.as_str())
        .bind(token.created_at)
        .execute(&mut *tx)
        .await?;
        for connection in connections {
            sqlx::query("INSERT INTO agent_connections (token_id, connection_id) VALUES ($1, $2)")
                .bind(&token.id)
                .bind(connection)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every agent token, revoked ones too, oldest first.
    pub async fn list_agents(&self) -> Result<Vec<Agent>> {
        let rows = sqlx::query(
            "SELECT id, name, created_at, revoked_at FROM api_tokens WHERE role = $1 ORDER BY created_at, id",
        )
        .bind(TokenRole::Agent.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut agents = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = get(&row, "id")?;
            let connections = self.agent_connections(&id).await?;
            agents.push(Agent {
                id,
                name: get(&row, "name")?,
                connections,
                created_at: get(&row, "created_at")?,
                revoked_at: get(&row, "revoked_at")?,
            });
        }
        Ok(agents)
    }

    /// One agent token by id, revoked or not.
    pub async fn get_agent(&self, id: &str) -> Result<Option<Agent>> {
        Ok(self.list_agents().await?.into_iter().find(|a| a.id == id))
    }

    /// The connections an agent token may act on.
    pub async fn agent_connections(&self, token_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT connection_id FROM agent_connections WHERE token_id = $1 ORDER BY connection_id",
        )
        .bind(token_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| get(r, "connection_id")).collect()
    }

    /// Revoke an agent token. Returns `false` when there is no live agent token with this id.
    pub async fn revoke_agent(&self, id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND role = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(TokenRole::Agent.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
