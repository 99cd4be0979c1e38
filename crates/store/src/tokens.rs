//! API tokens. Only a SHA-256 hash of each token is stored: tokens are 256-bit
//! random values, so a fast hash is enough (no password-style KDF needed).

use std::str::FromStr;

use crate::{Result, Store, get, parse_enum};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    Admin,
    /// An AI agent's token: accepted only at `/mcp`, acting only on the
    /// connections listed for it (see [`crate::agents`]).
    Agent,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Admin => "admin",
            TokenRole::Agent => "agent",
        }
    }
}

impl FromStr for TokenRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(TokenRole::Admin),
            "agent" => Ok(TokenRole::Agent),
            other => Err(format!("unknown token role `{other}`")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub token_hash: String,
    pub role: TokenRole,
    pub created_at: i64,
}

impl Store {
    pub async fn insert_token(&self, t: &ApiToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(t.role.as_str())
        .bind(t.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live (not revoked) token with this hash.
    pub async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(
            "SELECT id, name, token_hash, role, created_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let role: String = get(&r, "role")?;
            Ok(ApiToken {
                id: get(&r, "id")?,
                name: get(&r, "name")?,
                token_hash: get(&r, "token_hash")?,
                role: parse_enum("api_tokens", "role", &role)?,
                created_at: get(&r, "created_at")?,
            })
        })
        .transpose()
    }

    pub async fn count_tokens(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens WHERE revoked_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        get(&row, "n")
    }
}
