//! Connection rows.

use sqlx::any::AnyRow;
use switchboard_core::{Connection, ConnectionStatus, StatusKind};

use crate::{Result, Store, StoreError, get, is_unique_violation, parse_enum, parse_json};

const COLUMNS: &str = "id, connector, label, enabled, settings, status, status_reason, status_since, created_at, updated_at";

fn connection_from_row(row: &AnyRow) -> Result<Connection> {
    let settings: String = get(row, "settings")?;
    let status: String = get(row, "status")?;
    Ok(Connection {
        id: get(row, "id")?,
        connector: get(row, "connector")?,
        label: get(row, "label")?,
        enabled: get::<i64>(row, "enabled")? != 0,
        settings: parse_json("connections", "settings", &settings)?,
        status: ConnectionStatus {
            kind: parse_enum::<StatusKind>("connections", "status", &status)?,
            reason: get(row, "status_reason")?,
            since: get(row, "status_since")?,
        },
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

impl Store {
    pub async fn insert_connection(&self, c: &Connection) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO connections (id, connector, label, enabled, settings, status, status_reason, status_since, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.id)
        .bind(&c.connector)
        .bind(&c.label)
        .bind(c.enabled as i64)
        .bind(c.settings.to_string())
        .bind(c.status.kind.as_str())
        .bind(c.status.reason.clone())
        .bind(c.status.since)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a `{}` connection labelled `{}` already exists",
                c.connector, c.label
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_connection(&self, id: &str) -> Result<Option<Connection>> {
        let sql = format!("SELECT {COLUMNS} FROM connections WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(connection_from_row).transpose()
    }

    pub async fn list_connections(&self) -> Result<Vec<Connection>> {
        let sql = format!("SELECT {COLUMNS} FROM connections ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(connection_from_row).collect()
    }

    /// Update label, enabled and settings; returns false if there is no such connection.
    pub async fn update_connection(&self, c: &Connection) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE connections SET label = $2, enabled = $3, settings = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(&c.id)
        .bind(&c.label)
        .bind(c.enabled as i64)
        .bind(c.settings.to_string())
        .bind(c.updated_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(r) => Ok(r.rows_affected() > 0),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a `{}` connection labelled `{}` already exists",
                c.connector, c.label
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn set_connection_status(&self, id: &str, status: &ConnectionStatus) -> Result<()> {
        sqlx::query(
            "UPDATE connections SET status = $2, status_reason = $3, status_since = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(status.kind.as_str())
        .bind(status.reason.clone())
        .bind(status.since)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Delete a connection with its secrets and its data key (crypto-shredding:
    /// a copy of the old rows can no longer be decrypted). Returns false if
    /// there was no such connection.
    pub async fn delete_connection(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM secrets WHERE connection_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM data_keys WHERE scope = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }
}
