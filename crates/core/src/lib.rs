//! The domain words of switchboard (see `PRODUCT.md`): connections and their
//! status, events, jobs, and the contract every connector implements.
//!
//! **Architecture invariant:** this crate does no IO. It holds plain types and
//! traits so that every other crate, connectors included, can depend on it
//! without pulling in a database, a web server or a runtime.

pub mod connector;
pub mod event;
pub mod job;
pub mod media;
pub mod status;
pub mod time;

pub use connector::{
    ActionCall, ActionError, ActionSpec, AuthKind, AuthorizeFlow, AuthorizeRequest, AuthorizeStart,
    Connector, ConnectorError, ConnectorManifest, InboundRejection, InboundRequest, InboundVerdict,
    ParamsContext, RuntimeContext, RuntimeEnv, SecretSpec, Secrets, Session, TriggerSpec,
};
pub use event::{Event, NewEvent};
pub use job::{Job, JobError, JobState};
pub use media::{MediaInfo, is_media_id, sniff_media_type};
pub use status::{ConnectionStatus, StatusKind};

use serde::{Deserialize, Serialize};

/// One account or instance of a connector. Secrets are not part of it: they
/// live in the vault and only their names are visible here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Connection {
    pub id: String,
    pub connector: String,
    pub label: String,
    pub enabled: bool,
    pub settings: serde_json::Value,
    pub status: ConnectionStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A fresh identifier: UUID v7, so ids sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
