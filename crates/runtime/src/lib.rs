//! The running heart of switchboard.
//!
//! * [`registry`]: the connectors this build knows, with their compiled
//!   settings and action schemas.
//! * [`bus`]: the event bus (persist to the event log, then broadcast).
//! * [`supervisor`]: one runtime per enabled connection; the only place that
//!   starts, stops and restarts them.
//! * [`media`]: the media store, content-addressed files (images, videos)
//!   that actions publish.
//! * [`jobs`]: the worker pool that claims due jobs and runs them through the
//!   connection's live session.
//! * [`rules`]: the rules engine: events matched to rules become runs of
//!   durable jobs, with cooldowns, debounce, queues and variables.
//! * [`webhooks`]: receiving `POST /hooks/{name}`: verify through the
//!   connector, keep the delivery history, refuse replays, publish.
//! * [`engine`]: the domain operations the API and CLI call (create a
//!   connection, set secrets, submit a job, ...), each one validating first
//!   and then applying through the one diff-and-apply path of the supervisor.
//!
//! Threading model: everything runs on the tokio runtime. Long-running tasks
//! (connection runtimes, the job claimer, retention) each hold a
//! `CancellationToken` and finish their in-flight work before exiting.

pub mod archive;
pub mod bus;
pub mod engine;
pub mod jobs;
pub mod media;
pub mod registry;
pub mod rules;
mod settings;
pub mod supervisor;
pub mod webhooks;

pub use archive::ArchiveQuery;
pub use bus::EventBus;
pub use engine::{
    ConnectionCheck, ConnectionJob, Engine, EngineError, FieldError, NewConnection, RuntimeConfig,
    SubmitJob, UpdateConnection,
};
pub use media::{MediaError, MediaStore};
pub use registry::Registry;
pub use supervisor::Supervisor;
pub use webhooks::{WebhookError, WebhookReceipt};
