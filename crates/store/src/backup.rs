//! Consistent copies of a SQLite database, for `switchboard backup`.
//!
//! `VACUUM INTO` reads the database in one read transaction and writes a
//! compact, self-contained copy (no `-wal` file) to a new file. In WAL mode
//! it runs beside a live daemon: readers do not block the writer, so the
//! daemon keeps serving while the copy is taken, and the copy is the state
//! of one instant. PostgreSQL has `pg_dump` for the same purpose.

use std::path::Path;

use crate::{Backend, Result, Store, StoreError};

impl Store {
    /// Write a consistent snapshot of this SQLite database to `dest`, which
    /// must not exist yet.
    pub async fn snapshot_into(&self, dest: &Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Conflict(
                "a snapshot file can only be taken of a SQLite database; use pg_dump for PostgreSQL"
                    .into(),
            ));
        }
        let dest = dest.to_str().ok_or_else(|| {
            StoreError::Conflict(format!(
                "the snapshot path {} is not valid UTF-8",
                dest.display()
            ))
        })?;
        sqlx::query("VACUUM INTO $1")
            .bind(dest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_snapshot_holds_the_vault_and_an_empty_database_holds_none() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("live.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.init_vault_check(b"check", 1).await.unwrap();

        let copy = dir.path().join("copy.db");
        store.snapshot_into(&copy).await.unwrap();
        let snapshot = Store::connect_existing(&format!("sqlite://{}", copy.display()))
            .await
            .unwrap();
        assert_eq!(snapshot.vault_check().await.unwrap().unwrap(), b"check");

        // A database that never held a vault, and a missing one: refused,
        // and the missing file is not created.
        let empty = format!("sqlite://{}", dir.path().join("empty.db").display());
        Store::connect(&empty).await.unwrap().close().await;
        let err = Store::connect_existing(&empty).await.err().unwrap();
        assert!(matches!(err, StoreError::NoVault(_)), "{err}");
        let missing = dir.path().join("missing.db");
        let err = Store::connect_existing(&format!("sqlite://{}", missing.display()))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!missing.exists());
    }
}
