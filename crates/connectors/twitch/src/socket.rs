//! Opening a WebSocket (`ws://` or `wss://`) for chat and EventSub, and the
//! reconnect backoff both use.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::net::TcpStream;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long opening a socket (TCP, TLS, the HTTP upgrade) may take.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// The system's trusted roots with aws-lc-rs, as the OBS connector does.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if added == 0 {
        return Err(
            "this system has no trusted root certificates for Twitch's TLS (install ca-certificates)"
                .into(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Open a WebSocket to `url`. The error names the service (`what`), never
/// a credential (none is in a URL here).
pub(crate) async fn open(url: &str, what: &str) -> Result<Socket, String> {
    let connector = if url.starts_with("wss:") {
        Connector::Rustls(tls_config()?)
    } else {
        Connector::Plain
    };
    let (socket, _response) = tokio::time::timeout(
        OPEN_TIMEOUT,
        tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector)),
    )
    .await
    .map_err(|_| format!("{what} did not answer within {}s", OPEN_TIMEOUT.as_secs()))?
    .map_err(|e| format!("cannot connect to {what}: {e}"))?;
    Ok(socket)
}

/// Delays between reconnect attempts: exponential from 0.5 s to 60 s with
/// full jitter, forever.
pub(crate) fn reconnect_delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(60))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}
