//! Named locks shared by every process using the database.
//!
//! Used where doing something twice is harmful even across processes — the
//! refresh of a rotating OAuth token: spending a refresh token twice kills
//! the account. Within a process a tokio mutex per name serializes callers;
//! on PostgreSQL a session-level advisory lock (`pg_advisory_lock`) extends
//! that to other processes. The advisory lock lives on a connection taken
//! out of the pool for the guard's lifetime; dropping the guard closes that
//! connection, which releases the lock even if no async context is left to
//! unlock it. On SQLite one process owns the database, so the in-process
//! mutex is the whole story.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::Any;
use sqlx::pool::PoolConnection;

use crate::{Backend, Result, Store};

pub(crate) type LocalLocks = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// Held while the lock is held.
pub struct LockGuard {
    _local: tokio::sync::OwnedMutexGuard<()>,
    remote: Option<PoolConnection<Any>>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(conn) = self.remote.take() {
            // Closing the session releases its advisory locks.
            let raw = conn.detach();
            drop(raw);
        }
    }
}

/// A stable 64-bit key for a lock name (FNV-1a; std's hasher is randomized
/// per process, which would give every process a different key).
fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash as i64
}

impl Store {
    /// Wait for and take the lock `name`.
    pub async fn lock(&self, name: &str) -> Result<LockGuard> {
        let local = self
            .locks
            .lock()
            .expect("lock table poisoned")
            .entry(name.to_owned())
            .or_default()
            .clone();
        let local = local.lock_owned().await;
        let remote = match self.backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let mut conn = self.pool.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(lock_key(name))
                    .execute(&mut *conn)
                    .await?;
                Some(conn)
            }
        };
        Ok(LockGuard {
            _local: local,
            remote,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable() {
        assert_eq!(lock_key("refresh:abc"), lock_key("refresh:abc"));
        assert_ne!(lock_key("refresh:abc"), lock_key("refresh:abd"));
        // FNV-1a of the empty string is the offset basis.
        assert_eq!(lock_key(""), 0xcbf29ce484222325u64 as i64);
    }
}
