//! switchboard's MCP server (the official Rust SDK, `rmcp`, pinned exactly;
//! this is the only crate that uses it).
//!
//! * [`tools`]: tools generated from the connector registry's action schemas
//!   (`x.post` → `x_post`), plus `list_connections`, `connect`, `job_status`
//!   and `upload_media`. Pure: no IO.
//! * [`server`]: [`ToolServer`], the `rmcp` handler: lists the tools of the
//!   connections in the caller's [`Scope`], runs calls as jobs through the
//!   engine and waits for them, reports progress, and announces tool-list
//!   changes.
//! * [`scope`]: what a caller may act on (the owner: everything; an agent
//!   token: its connections).
//! * [`relay`]: `switchboard mcp` against a running daemon: stdio relayed to
//!   the daemon's `/mcp`, so the daemon's token checks apply.
//!
//! Transports: stdio ([`serve_stdio`]) and streamable HTTP ([`http_service`],
//! nested by the API at `/mcp` behind its bearer check). Threading model:
//! every session or request runs on the tokio runtime; watchers of the tool
//! list end with their session.

pub mod relay;
pub mod scope;
pub mod server;
pub mod tools;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use switchboard_runtime::Engine;
use tokio_util::sync::CancellationToken;

pub use scope::Scope;
pub use server::ToolServer;

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("the MCP session failed: {0}")]
    Session(String),
    #[error("cannot reach the daemon's MCP endpoint {url}: {message}")]
    Relay { url: String, message: String },
}

/// Options of the MCP server (`mcp.*` in the configuration).
#[derive(Debug, Clone)]
pub struct McpConfig {
    /// The daemon's URL as the user's browser reaches it (OAuth links).
    pub public_url: String,
    /// Directories `upload_media` may read files from (canonical paths); none by default.
    pub media_dirs: Vec<PathBuf>,
    /// How long an action tool waits for its jobs before returning their ids.
    pub wait: Duration,
    /// How often a session re-checks its tool list besides on connection events.
    pub tools_recheck: Duration,
}

impl McpConfig {
    pub fn new(public_url: impl Into<String>) -> McpConfig {
        McpConfig {
            public_url: public_url.into(),
            media_dirs: Vec::new(),
            wait: Duration::from_secs(30),
            tools_recheck: Duration::from_secs(10),
        }
    }

    /// Open a file for `upload_media` if it lies under an allowed directory.
    pub async fn allowed_file(&self, path: &str) -> Result<tokio::fs::File, String> {
        if self.media_dirs.is_empty() {
            return Err(
                "reading files is off: the owner allows directories with `mcp.media_dirs`; send `base64` instead"
                    .into(),
            );
        }
        let real = tokio::fs::canonicalize(path)
            .await
            .map_err(|e| format!("cannot open `{path}`: {e}"))?;
        let mut allowed = false;
        for dir in &self.media_dirs {
            if let Ok(dir) = tokio::fs::canonicalize(dir).await
                && real.starts_with(&dir)
            {
                allowed = true;
            }
        }
        if !allowed {
            return Err(format!(
                "`{path}` is not under a directory the owner allowed ({})",
                self.media_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !tokio::fs::metadata(&real)
            .await
            .map(|m| m.is_file())
            .unwrap_or(false)
        {
            return Err(format!("`{path}` is not a file"));
        }
        tokio::fs::File::open(&real)
            .await
            .map_err(|e| format!("cannot open `{path}`: {e}"))
    }
}

/// The streamable HTTP service for `/mcp`. Each request must carry a
/// [`Scope`] in its extensions (the API's bearer check adds it); legacy
/// (`initialize`) clients get sessions, 2026-07-28 clients are served
/// statelessly.
pub fn http_service(
    engine: Arc<Engine>,
    config: McpConfig,
    cancel: CancellationToken,
) -> SessionCloseAnswer<StreamableHttpService<ToolServer, LocalSessionManager>> {
    let config = Arc::new(config);
    SessionCloseAnswer(StreamableHttpService::new(
        move || Ok(ToolServer::new(engine.clone(), config.clone(), None)),
        Arc::new(LocalSessionManager::default()),
        // Every request is authenticated by its bearer token, so any Host
        // may reach it (a browser cannot forge the token).
        StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .with_cancellation_token(cancel),
    ))
}

/// Answers a session close (`DELETE /mcp` with the session id) with
/// `204 No Content` where `rmcp` answers `202 Accepted`: the session is
/// closed by then, nothing is pending, and clients (the Python SDK) take
/// anything but 200/204 as a failed termination and warn.
#[derive(Clone)]
pub struct SessionCloseAnswer<S>(S);

impl<S, B, R> tower::Service<http::Request<B>> for SessionCloseAnswer<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<http::Response<R>, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let closing = request.method() == http::Method::DELETE;
        let answer = self.0.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            if closing && response.status() == http::StatusCode::ACCEPTED {
                *response.status_mut() = http::StatusCode::NO_CONTENT;
            }
            Ok(response)
        })
    }
}

/// Serve the owner's tools on stdin/stdout until the client closes it.
pub async fn serve_stdio(engine: Arc<Engine>, config: McpConfig) -> Result<(), McpError> {
    let server = ToolServer::new(engine, Arc::new(config), Some(Scope::Owner));
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Session(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| McpError::Session(e.to_string()))?;
    Ok(())
}
