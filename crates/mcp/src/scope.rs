//! Who is calling: the owner (the admin token, or the owner's own stdio
//! process) sees every connection; an agent token sees the connections it
//! was created with. The scope is read from the store on every request, so
//! a revoked token or a removed connection counts at once.

use std::collections::BTreeSet;

use switchboard_store::{Store, StoreError};

/// What a caller may act on. The API's bearer check puts one in each `/mcp`
/// request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every connection.
    Owner,
    /// The connections listed for this agent token.
    Agent { token_id: String },
}

impl Scope {
    /// The connection ids in scope; `None` means all of them.
    pub async fn allowed(&self, store: &Store) -> Result<Option<BTreeSet<String>>, StoreError> {
        match self {
            Scope::Owner => Ok(None),
            Scope::Agent { token_id } => Ok(Some(
                store
                    .agent_connections(token_id)
                    .await?
                    .into_iter()
                    .collect(),
            )),
        }
    }

    /// Whether the token behind this scope still works (not revoked).
    pub async fn is_live(&self, store: &Store) -> bool {
        match self {
            Scope::Owner => true,
            Scope::Agent { token_id } => matches!(
                store.get_agent(token_id).await,
                Ok(Some(agent)) if agent.revoked_at.is_none()
            ),
        }
    }
}
