//! `switchboard mcp` against a running daemon: every JSON-RPC message read
//! from stdin is sent to the daemon's `/mcp` (streamable HTTP, with the
//! token as bearer) and every message the daemon sends back is written to
//! stdout. The daemon does all the work and all the checks, so an agent
//! token is scoped and revoked exactly as over HTTP, and the client's
//! protocol (2026-07-28 or the legacy `initialize`) passes through as is.

use rmcp::model::{ErrorData, JsonRpcError, JsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{IntoTransport, StreamableHttpClientTransport, Transport};
use rmcp::{RoleClient, RoleServer};

use crate::McpError;

/// Relay stdin/stdout to `{url}/mcp` until either side closes.
pub async fn relay_stdio(url: &str, token: &str) -> Result<(), McpError> {
    let endpoint = format!("{}/mcp", url.trim_end_matches('/'));
    let _ = rustls::crypto::ring::default_provider().install_default(); // no bundled TLS provider: ring, once
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| McpError::Relay {
            url: endpoint.clone(),
            message: e.to_string(),
        })?;
    let mut upstream: StreamableHttpClientTransport<reqwest::Client> =
        StreamableHttpClientTransport::with_client(
            http,
            StreamableHttpClientTransportConfig::with_uri(endpoint.clone()).auth_header(token),
        );
    let mut downstream =
        IntoTransport::<RoleServer, std::io::Error, _>::into_transport(rmcp::transport::stdio());
    let (failures, mut failed) = tokio::sync::mpsc::unbounded_channel::<ServerJsonRpcMessage>();
    loop {
        tokio::select! {
            message = Transport::<RoleServer>::receive(&mut downstream) => {
                let Some(message) = message else { break };
                let request_id = match &message {
                    JsonRpcMessage::Request(request) => Some(request.id.clone()),
                    _ => None,
                };
                let sending = Transport::<RoleClient>::send(&mut upstream, message);
                let failures = failures.clone();
                let endpoint = endpoint.clone();
                tokio::spawn(async move {
                    if let Err(error) = sending.await {
                        tracing::warn!(%error, %endpoint, "could not relay a message to the daemon");
                        // A request must be answered, or the client waits forever.
                        if let Some(id) = request_id {
                            let _ = failures.send(JsonRpcMessage::Error(JsonRpcError::new(
                                Some(id),
                                ErrorData::internal_error(
                                    format!("the switchboard daemon at {endpoint} refused or could not be reached: {error}"),
                                    None,
                                ),
                            )));
                        }
                    }
                });
            }
            message = Transport::<RoleClient>::receive(&mut upstream) => {
                let Some(message) = message else { break };
                if let Err(error) = Transport::<RoleServer>::send(&mut downstream, message).await {
                    tracing::warn!(%error, "could not write to stdout");
                    break;
                }
            }
            Some(message) = failed.recv() => {
                if Transport::<RoleServer>::send(&mut downstream, message).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = Transport::<RoleClient>::close(&mut upstream).await;
    let _ = Transport::<RoleServer>::close(&mut downstream).await;
    Ok(())
}
