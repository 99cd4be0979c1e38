//! The echo trigger: a heartbeat while connected.

use std::time::Duration;

use serde_json::json;
use switchboard_core::{ConnectorError, RuntimeContext};
use tokio_util::sync::CancellationToken;

pub(crate) async fn heartbeat(
    ctx: &RuntimeContext,
    every_ms: u64,
    cancel: CancellationToken,
) -> Result<(), ConnectorError> {
    let mut ticker = tokio::time::interval(Duration::from_millis(every_ms));
    ticker.tick().await;
    let mut beat: u64 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = ticker.tick() => {
                beat += 1;
                ctx.env.emit("echo.heartbeat", json!({ "beat": beat })).await;
            }
        }
    }
}
