//! Persistence for switchboard: connections, sealed secrets, connector state,
//! API tokens, the job outbox, the event log and webhook deliveries, on
//! SQLite (default) or PostgreSQL.
//!
//! **Architecture invariant:** only this crate knows SQL. It stores what it is
//! given; secrets reach it already sealed by `switchboard-vault` and it never
//! sees plaintext.
//!
//! One set of SQL serves both backends through sqlx's `Any` driver: `$n`
//! placeholders (SQLite accepts them), timestamps as BIGINT epoch
//! milliseconds, flags as 0/1, JSON as text. The only dialect difference is
//! the job claim (`FOR UPDATE SKIP LOCKED` on PostgreSQL); see [`jobs`].
//! Migrations are kept per backend (`migrations/sqlite`, `migrations/postgres`)
//! and describe the same schema. [`Store::connect_existing`] opens a database
//! that must already hold a vault (offline commands create nothing) and
//! [`backup`] takes consistent SQLite snapshots for `switchboard backup`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub mod agents;
pub mod archive;
pub mod backup;
mod connections;
pub mod events;
mod flows;
pub mod jobs;
mod locks;
pub mod rules;
mod secrets;
mod state;
mod tokens;
pub mod webhooks;

pub use agents::Agent;
pub use archive::{ArchiveFilter, ArchiveRecord};
pub use events::EventFilter;
pub use flows::{Flow, FlowLookup, NewFlow};
pub use jobs::{JobFilter, NewJob, SubmitOutcome};
pub use locks::LockGuard;
pub use rules::{RuleRun, RunFilter, StoredRule};
pub use secrets::SealedSecret;
pub use tokens::{ApiToken, TokenRole};
pub use webhooks::{Delivery, DeliveryFilter, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("corrupt value in {table}.{column}: {message}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    /// An offline command was pointed at a database that holds no vault.
    #[error("{0}")]
    NoVault(String),
}

impl StoreError {
    /// Whether the operation may succeed if tried again (connection trouble,
    /// a busy SQLite file), as opposed to a bug or a constraint violation.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Database(e) => is_retryable_sqlx(e),
            _ => false,
        }
    }
}

fn is_retryable_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(e) => {
            let msg = e.message();
            msg.contains("locked") || msg.contains("busy")
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        _ => false,
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    locks: locks::LocalLocks,
}

impl Store {
    /// Open the database at `url` and bring its schema up to date.
    /// `sqlite://PATH` creates the file if needed; `postgres://` expects the
    /// database to exist.
    pub async fn connect(url: &str) -> Result<Store> {
        let store = Self::open_pool(url, true).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Open a database that must already hold a switchboard vault, for the
    /// offline commands (`vault rotate-key --offline`, `backup`, `restore`).
    /// Creates nothing: a missing SQLite file, a database without the schema
    /// or without a vault check value is [`StoreError::NoVault`]. The schema
    /// is not migrated (a running daemon of another version may own it).
    pub async fn connect_existing(url: &str) -> Result<Store> {
        if let Some(path) = sqlite_path(url)
            && !path.is_file()
        {
            return Err(StoreError::NoVault(format!(
                "the database file {} does not exist",
                path.display()
            )));
        }
        let store = Self::open_pool(url, false).await?;
        match store.vault_check().await {
            Ok(Some(_)) => Ok(store),
            Ok(None) => {
                store.close().await;
                Err(StoreError::NoVault(format!(
                    "the database {} holds no vault (switchboard never started on it)",
                    redact_url(url)
                )))
            }
            Err(StoreError::Database(e)) if !is_retryable_sqlx(&e) => {
                store.close().await;
                Err(StoreError::NoVault(format!(
                    "the database {} is not a switchboard database ({e})",
                    redact_url(url)
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// The pool, without touching the schema. `create` lets SQLite create a
    /// missing file.
    async fn open_pool(url: &str, create: bool) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else if create {
                    format!("{url}?mode=rwc")
                } else {
                    format!("{url}?mode=rw")
                };
                AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL lets readers run beside the single writer;
                            // NORMAL is durable across process crashes (the
                            // case the job outbox cares about), and only an
                            // OS crash can lose the last transactions.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(url)
                    .await?
            }
        };
        Ok(Store {
            pool,
            backend,
            locks: Default::default(),
        })
    }

    async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The raw pool, for tests and tools that inspect the database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The file of a `sqlite://PATH` (or `sqlite:PATH`) URL, without its
/// `?options`; `None` for other databases and in-memory SQLite.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// A URL with its password replaced, safe to show in errors and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn parse_json(table: &'static str, column: &'static str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        column,
        message: e.to_string(),
    })
}

fn parse_enum<T: FromStr<Err = String>>(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<T> {
    text.parse().map_err(|message| StoreError::Corrupt {
        table,
        column,
        message,
    })
}

fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    Ok(row.try_get(column)?)
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(e) => {
            e.is_unique_violation()
                || e.message().contains("UNIQUE constraint failed")
                || e.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/sb"),
            "postgres://app:***@db:5432/sb"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/sb"),
            "postgres://postgres@127.0.0.1/sb"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn finds_the_file_of_a_sqlite_url() {
        assert_eq!(
            sqlite_path("sqlite:///tmp/sb/switchboard.db?mode=rwc"),
            Some(std::path::PathBuf::from("/tmp/sb/switchboard.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:rel.db"),
            Some(std::path::PathBuf::from("rel.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://db/sb"), None);
    }
}
