//! Vault rows: the master-key check value, wrapped data keys, sealed secrets.
//! Everything here is ciphertext produced by `switchboard-vault`.

use crate::{Result, Store, StoreError, get};

/// One sealed secret of a connection.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    pub name: String,
    pub sealed: Vec<u8>,
    pub updated_at: i64,
}

impl Store {
    /// The value that proves which master key the vault is sealed under.
    pub async fn vault_check(&self) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT key_check FROM vault_meta WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| get(&r, "key_check")).transpose()
    }

    /// Record the check value of a new vault; returns false if a vault already
    /// exists (another process initialised it first).
    pub async fn init_vault_check(&self, check: &[u8], now: i64) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO vault_meta (id, key_check, rotated_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(check.to_vec())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn data_key(&self, scope: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT wrapped FROM data_keys WHERE scope = $1")
            .bind(scope)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| get(&r, "wrapped")).transpose()
    }

    /// Store a wrapped data key unless the scope already has one; returns the
    /// key the scope ends up with (ours, or the one a concurrent writer stored).
    pub async fn insert_data_key(&self, scope: &str, wrapped: &[u8], now: i64) -> Result<Vec<u8>> {
        sqlx::query(
            "INSERT INTO data_keys (scope, wrapped, created_at) VALUES ($1, $2, $3) ON CONFLICT (scope) DO NOTHING",
        )
        .bind(scope)
        .bind(wrapped.to_vec())
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.data_key(scope)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                table: "data_keys",
                column: "wrapped",
                message: format!("data key for `{scope}` vanished after insert"),
            })
    }

    /// Re-wrap every data key and replace the check value in one transaction:
    /// either all keys move to the new master key or none does.
    pub async fn rewrap_data_keys<E, F>(
        &self,
        new_check: &[u8],
        now: i64,
        rewrap: F,
    ) -> Result<usize, E>
    where
        E: From<StoreError>,
        F: Fn(&str, &[u8]) -> Result<Vec<u8>, E>,
    {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let rows = sqlx::query("SELECT scope, wrapped FROM data_keys")
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        for row in &rows {
            let scope: String = get(row, "scope")?;
            let wrapped: Vec<u8> = get(row, "wrapped")?;
            let rewrapped = rewrap(&scope, &wrapped)?;
            sqlx::query("UPDATE data_keys SET wrapped = $2 WHERE scope = $1")
                .bind(scope)
                .bind(rewrapped)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        }
        sqlx::query("UPDATE vault_meta SET key_check = $1, rotated_at = $2 WHERE id = 1")
            .bind(new_check.to_vec())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(rows.len())
    }

    /// Write and delete secrets of one connection in one transaction.
    /// `None` deletes the named secret.
    pub async fn write_secrets(
        &self,
        connection_id: &str,
        changes: &[(String, Option<Vec<u8>>)],
        now: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (name, sealed) in changes {
            match sealed {
                Some(sealed) => {
                    sqlx::query(
                        "INSERT INTO secrets (connection_id, name, sealed, updated_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (connection_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                    )
                    .bind(connection_id)
                    .bind(name)
                    .bind(sealed.clone())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM secrets WHERE connection_id = $1 AND name = $2")
                        .bind(connection_id)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn sealed_secrets(&self, connection_id: &str) -> Result<Vec<SealedSecret>> {
        let rows = sqlx::query(
            "SELECT name, sealed, updated_at FROM secrets WHERE connection_id = $1 ORDER BY name",
        )
        .bind(connection_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SealedSecret {
                    name: get(r, "name")?,
                    sealed: get(r, "sealed")?,
                    updated_at: get(r, "updated_at")?,
                })
            })
            .collect()
    }

    /// Names of the secrets a connection has (never their values).
    pub async fn secret_names(&self, connection_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM secrets WHERE connection_id = $1 ORDER BY name")
            .bind(connection_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| get(r, "name")).collect()
    }
}
