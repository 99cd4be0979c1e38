//! Reading the audit archive: the records connectors keep through
//! `RuntimeEnv::archive` (Twitch followers, subscriptions, raids, cheers),
//! listed per connection and kind. Writing happens in the supervisor's
//! runtime environment; this is the engine's read side for the API and CLI.

use switchboard_store::{ArchiveFilter, ArchiveRecord};

use crate::engine::{Engine, EngineError, Result};

/// What to list, as an interface receives it.
#[derive(Debug, Clone, Default)]
pub struct ArchiveQuery {
    /// Only records that occurred at or after this (epoch ms).
    pub since: Option<i64>,
    /// Only records that occurred before this (epoch ms).
    pub until: Option<i64>,
    /// Page backwards from this record id.
    pub before_id: Option<String>,
    pub limit: i64,
}

/// A kind name: lower-case words joined by `_`.
fn is_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Engine {
    /// A connection by id, or by label among the connections of
    /// `connector` (labels are unique per connector).
    pub async fn find_connection(
        &self,
        reference: &str,
        connector: &str,
    ) -> Result<switchboard_core::Connection> {
        if let Some(connection) = self.store().get_connection(reference).await?
            && connection.connector == connector
        {
            return Ok(connection);
        }
        self.store()
            .list_connections()
            .await?
            .into_iter()
            .find(|c| c.connector == connector && c.label == reference)
            .ok_or_else(|| EngineError::NotFound {
                what: "connection",
                id: reference.to_owned(),
            })
    }

    /// One kind of a connection's archive, newest first.
    pub async fn list_archive(
        &self,
        connection_id: &str,
        kind: &str,
        query: &ArchiveQuery,
    ) -> Result<Vec<ArchiveRecord>> {
        if !is_kind(kind) {
            return Err(EngineError::Invalid(vec![crate::engine::FieldError::new(
                "kind",
                "name a collection such as `followers` (lower-case letters, digits and `_`)",
            )]));
        }
        if self.store().get_connection(connection_id).await?.is_none() {
            return Err(EngineError::NotFound {
                what: "connection",
                id: connection_id.to_owned(),
            });
        }
        Ok(self
            .store()
            .list_archive(&ArchiveFilter {
                connection_id: connection_id.to_owned(),
                kind: kind.to_owned(),
                since: query.since,
                until: query.until,
                before_id: query.before_id.clone(),
                limit: query.limit,
            })
            .await?)
    }

    /// How many records of each kind a connection's archive holds.
    pub async fn archive_counts(&self, connection_id: &str) -> Result<Vec<(String, i64)>> {
        Ok(self.store().count_archive(connection_id).await?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kinds_are_plain_words() {
        assert!(super::is_kind("followers"));
        assert!(super::is_kind("sub_gifts2"));
        assert!(!super::is_kind(""));
        assert!(!super::is_kind("Followers"));
        assert!(!super::is_kind("../x"));
        assert!(!super::is_kind(&"a".repeat(65)));
    }
}
