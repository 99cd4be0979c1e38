//! One connection to obs-websocket v5, written on tokio-tungstenite.
//!
//! # Why not `obws`
//! `obws` (0.15) is the maintained Rust client and was the first choice, but
//! it cannot do four things this connector needs:
//! * **Raw requests by name.** Its requests are a closed enum of typed
//!   calls and its `send_message` is private, so `obs.request` (any protocol
//!   request by name, with JSON data) is impossible.
//! * **Close codes after identification.** Its receive loop turns every
//!   close frame into `Event::ServerStopping` and drops the code, so 4011
//!   *SessionInvalidated* (kicked: must not reconnect) cannot be told from
//!   OBS quitting (must reconnect).
//! * **Request batches** (op 8/9) are not implemented.
//! * **The OBS we must support.** `connect` refuses OBS Studio < 30.2 and
//!   obs-websocket outside ^5.5 unless "dangerous, unsupported" flags are
//!   set, and Debian's OBS 29.0.2 ships obs-websocket 5.1.0.
//!
//! Reconnecting is the supervisor's job either way (`obws` has no reconnect
//! of its own). The protocol surface we need is small (Hello, Identify,
//! Identified, Event, Request/Response, RequestBatch/Response, close codes),
//! so it is written here; `obws` stays in the simulator's tests as an
//! independent client that must accept our simulator.
//!
//! # Shape
//! [`open`] connects, performs the handshake (Hello → Identify with
//! authentication and event subscriptions → Identified, or a close code) and
//! spawns one reader task per connection. The reader owns the socket's read
//! half: it hands responses to the callers waiting on their request ids,
//! forwards events over a channel, pings OBS every `keepalive` and reports
//! silence. Writers share the write half behind a mutex.
//!
//! # Shutdown
//! When the socket ends, the reader records why ([`Closed`]), wakes every
//! caller still waiting (they see the reason), and closes the event channel,
//! which is how the session's `run` learns the connection is gone. Dropping
//! the [`ObsClient`] cancels the reader, which sends a normal close frame.
//! A request sent after the end fails at once with the same reason, so no
//! caller ever waits on a dead connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use secrecy::SecretString;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::auth;
use crate::protocol::{
    self, BatchItem, Envelope, Hello, ObsEvent, RequestBatchResponse, RequestResponse, close, op,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// For the TCP connect, the TLS and websocket handshakes, and Hello →
    /// Identified, each.
    pub connect_timeout: Duration,
    /// Ping interval. Silence for two intervals is reported, for four it
    /// ends the connection.
    pub keepalive: Duration,
    pub event_subscriptions: u64,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "wrong OBS websocket password: OBS refused the authentication (close code 4009 AuthenticationFailed); \
         set the connection's `password` secret to the one in OBS under Tools → WebSocket Server Settings"
    )]
    WrongPassword,
    #[error(
        "OBS asks for a websocket password and this connection has none; set its `password` secret \
         (OBS: Tools → WebSocket Server Settings → Show Connect Info)"
    )]
    PasswordRequired,
    #[error(
        "OBS does not speak obs-websocket RPC version {rpc} (close code 4010 UnsupportedRpcVersion: {reason}); \
         switchboard needs obs-websocket 5.x (OBS Studio 28 or later)"
    )]
    UnsupportedRpcVersion { rpc: u64, reason: String },
    #[error(
        "OBS invalidated this session during the handshake (close code 4011 SessionInvalidated); restart the connection to try again"
    )]
    Kicked,
    /// Worth retrying: OBS is not there (yet), or not answering.
    #[error("{0}")]
    Unavailable(String),
}

/// How a connection that was up ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Closed {
    /// OBS announced `ExitStarted` and then closed: it quit.
    ObsQuit,
    /// OBS sent a close frame.
    ByObs { code: u16, reason: String },
    /// The socket ended without a close frame, or failed.
    Lost(String),
    /// OBS stopped answering pings.
    Silent(Duration),
    /// We closed it (the session was stopped).
    Local,
}

impl Closed {
    /// Close code 4011: OBS kicked us; the protocol says not to reconnect
    /// automatically.
    pub fn is_session_invalidated(&self) -> bool {
        matches!(self, Closed::ByObs { code, .. } if *code == close::SESSION_INVALIDATED)
    }
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::ObsQuit => write!(f, "OBS quit"),
            Closed::ByObs { code, reason } if reason.is_empty() => {
                write!(
                    f,
                    "OBS closed the connection (code {code} {})",
                    close::name(*code)
                )
            }
            Closed::ByObs { code, reason } => write!(
                f,
                "OBS closed the connection (code {code} {}: {reason})",
                close::name(*code)
            ),
            Closed::Lost(detail) => write!(f, "the connection to OBS was lost: {detail}"),
            Closed::Silent(for_how_long) => write!(
                f,
                "OBS stopped answering (no reply to pings for {:.1}s)",
                for_how_long.as_secs_f64()
            ),
            Closed::Local => write!(f, "the connection was closed by switchboard"),
        }
    }
}

/// Why a request has no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The connection was already gone when the request was to be sent.
    #[error("the connection to OBS is down ({0})")]
    NotConnected(Closed),
    /// The connection ended after the request was sent: OBS may or may not
    /// have acted on it.
    #[error("the connection to OBS ended before it answered ({0})")]
    CutOff(Closed),
    #[error("OBS did not answer within {:.1}s", .0.as_secs_f64())]
    Timeout(Duration),
}

/// Liveness as the reader sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Health {
    Alive,
    /// No frame from OBS for this long, pings unanswered.
    Silent(Duration),
}

enum Answer {
    Single(RequestResponse),
    Batch(Vec<RequestResponse>),
}

#[derive(Default)]
struct Waiters {
    pending: HashMap<String, oneshot::Sender<Answer>>,
    closed: Option<Closed>,
}

struct Shared {
    sink: tokio::sync::Mutex<SplitSink<Socket, Message>>,
    waiters: Mutex<Waiters>,
    next_id: AtomicU64,
}

impl Shared {
    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn closed(&self) -> Option<Closed> {
        self.waiters().closed.clone()
    }
}

/// An identified connection: the client for requests, and what the session's
/// `run` consumes.
pub struct Connection {
    pub client: ObsClient,
    pub events: mpsc::Receiver<ObsEvent>,
    pub health: watch::Receiver<Health>,
    /// `obsWebSocketVersion` from `Hello`.
    pub websocket_version: Option<String>,
}

/// The request side of one connection. Cheap to share behind an `Arc`;
/// dropping it closes the connection.
pub struct ObsClient {
    shared: Arc<Shared>,
    closing: CancellationToken,
}

impl Drop for ObsClient {
    fn drop(&mut self) {
        self.closing.cancel();
    }
}

impl ObsClient {
    /// Why the connection ended, once it has.
    pub fn closed(&self) -> Option<Closed> {
        self.shared.closed()
    }

    /// Send one request (op 6) and wait for its response (op 7). A response
    /// with `result: false` is an `Ok` here: callers read the status code.
    pub async fn request(
        &self,
        request_type: &str,
        data: Option<&Value>,
        timeout: Duration,
    ) -> Result<RequestResponse, CallError> {
        let id = self.next_id();
        let text = protocol::request(request_type, &id, data);
        match self.exchange(id, text, timeout).await? {
            Answer::Single(response) => Ok(response),
            Answer::Batch(_) => Err(CallError::CutOff(Closed::Lost(
                "OBS answered a request with a batch response".into(),
            ))),
        }
    }

    /// Send a batch (op 8, serial in real time) and wait for its results
    /// (op 9), one per request in order (fewer when `halt_on_failure`
    /// stopped it early).
    pub async fn batch(
        &self,
        items: &[BatchItem],
        halt_on_failure: bool,
        timeout: Duration,
    ) -> Result<Vec<RequestResponse>, CallError> {
        let id = self.next_id();
        let text = protocol::request_batch(&id, halt_on_failure, items);
        match self.exchange(id, text, timeout).await? {
            Answer::Batch(results) => Ok(results),
            Answer::Single(_) => Err(CallError::CutOff(Closed::Lost(
                "OBS answered a batch with a single response".into(),
            ))),
        }
    }

    fn next_id(&self) -> String {
        format!("sb-{}", self.shared.next_id.fetch_add(1, Ordering::Relaxed))
    }

    async fn exchange(
        &self,
        id: String,
        text: String,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let (tx, rx) = oneshot::channel();
        {
            // Registered under the same lock the reader takes to record the
            // end, so a request can never wait on a connection that is gone.
            let mut waiters = self.shared.waiters();
            if let Some(closed) = &waiters.closed {
                return Err(CallError::NotConnected(closed.clone()));
            }
            waiters.pending.insert(id.clone(), tx);
        }
        let forget = |shared: &Shared| {
            shared.waiters().pending.remove(&id);
        };
        let sent = tokio::time::timeout(timeout, async {
            self.shared
                .sink
                .lock()
                .await
                .send(Message::text(text))
                .await
        })
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                forget(&self.shared);
                let closed = self
                    .shared
                    .closed()
                    .unwrap_or_else(|| Closed::Lost(format!("cannot write to OBS: {error}")));
                return Err(CallError::NotConnected(closed));
            }
            Err(_) => {
                forget(&self.shared);
                return Err(CallError::Timeout(timeout));
            }
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => {
                Err(CallError::CutOff(self.shared.closed().unwrap_or_else(
                    || Closed::Lost("the reader stopped".into()),
                )))
            }
            Err(_) => {
                forget(&self.shared);
                Err(CallError::Timeout(timeout))
            }
        }
    }
}

/// `host:port` for messages, `[v6]:port` for URLs.
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The TLS client configuration for `wss://`: the system's trusted roots
/// (so a private CA installed on the machine works as well as a public one),
/// aws-lc-rs as the crypto provider.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, OpenError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(OpenError::Unavailable(
            "TLS is on but this system has no trusted root certificates (install ca-certificates)"
                .into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OpenError::Unavailable(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Connect, identify, and start the reader.
pub async fn open(
    config: &ClientConfig,
    password: Option<&SecretString>,
) -> Result<Connection, OpenError> {
    let host = url_host(&config.host);
    let place = format!("{host}:{}", config.port);
    let within = config.connect_timeout;
    let tcp = tokio::time::timeout(
        within,
        TcpStream::connect((config.host.as_str(), config.port)),
    )
    .await
    .map_err(|_| {
        OpenError::Unavailable(format!(
            "OBS at {place} did not accept a connection within {:.0}s",
            within.as_secs_f64()
        ))
    })?
    .map_err(|e| {
        OpenError::Unavailable(format!(
            "cannot reach OBS at {place}: {e}; is OBS running with its WebSocket server enabled \
                 (Tools → WebSocket Server Settings) on that port?"
        ))
    })?;
    let _ = tcp.set_nodelay(true);
    let scheme = if config.tls { "wss" } else { "ws" };
    let mut request = format!("{scheme}://{host}:{}", config.port)
        .into_client_request()
        .map_err(|e| OpenError::Unavailable(format!("bad OBS address {place}: {e}")))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(protocol::SUBPROTOCOL),
    );
    let connector = if config.tls {
        Connector::Rustls(tls_config()?)
    } else {
        Connector::Plain
    };
    let (socket, _response) = tokio::time::timeout(
        within,
        tokio_tungstenite::client_async_tls_with_config(request, tcp, None, Some(connector)),
    )
    .await
    .map_err(|_| {
        OpenError::Unavailable(format!(
            "OBS at {place} did not complete the websocket handshake within {:.0}s",
            within.as_secs_f64()
        ))
    })?
    .map_err(|e| {
        let hint = match (&e, config.tls) {
            (tungstenite::Error::Tls(_), _) => {
                "; check the `tls` setting and the server certificate"
            }
            (_, true) => "; is the server really speaking TLS? check the `tls` setting",
            _ => "",
        };
        OpenError::Unavailable(format!(
            "websocket handshake with OBS at {place} failed: {e}{hint}"
        ))
    })?;
    let (mut sink, mut stream) = socket.split();

    let hello = tokio::time::timeout(within, read_handshake(&mut stream, op::HELLO))
        .await
        .map_err(|_| {
            OpenError::Unavailable(format!(
                "the server at {place} did not say Hello within {:.0}s; is it obs-websocket 5?",
                within.as_secs_f64()
            ))
        })??;
    let hello: Hello = serde_json::from_value(hello)
        .map_err(|e| OpenError::Unavailable(format!("unreadable Hello from {place}: {e}")))?;
    let authentication = match (&hello.authentication, password) {
        (Some(challenge), Some(password)) => Some(auth::authentication(password, challenge)),
        (Some(_), None) => return Err(OpenError::PasswordRequired),
        (None, Some(_)) => {
            tracing::debug!("OBS has authentication off; the password is not needed");
            None
        }
        (None, None) => None,
    };
    if hello.rpc_version < protocol::RPC_VERSION {
        return Err(OpenError::UnsupportedRpcVersion {
            rpc: protocol::RPC_VERSION,
            reason: format!("OBS offers RPC version {}", hello.rpc_version),
        });
    }
    sink.send(Message::text(protocol::identify(
        authentication,
        config.event_subscriptions,
    )))
    .await
    .map_err(|e| OpenError::Unavailable(format!("cannot send Identify to OBS: {e}")))?;
    tokio::time::timeout(within, read_handshake(&mut stream, op::IDENTIFIED))
        .await
        .map_err(|_| {
            OpenError::Unavailable(format!(
                "OBS did not answer Identify within {:.0}s",
                within.as_secs_f64()
            ))
        })??;

    let shared = Arc::new(Shared {
        sink: tokio::sync::Mutex::new(sink),
        waiters: Mutex::new(Waiters::default()),
        next_id: AtomicU64::new(1),
    });
    let (events_tx, events) = mpsc::channel(1024);
    let (health_tx, health) = watch::channel(Health::Alive);
    let closing = CancellationToken::new();
    tokio::spawn(read_loop(
        shared.clone(),
        stream,
        events_tx,
        health_tx,
        config.keepalive,
        closing.clone(),
    ));
    Ok(Connection {
        client: ObsClient { shared, closing },
        events,
        health,
        websocket_version: hello.obs_web_socket_version,
    })
}

/// Read the next handshake message; it must have op `want`. A close frame
/// here carries the server's verdict (4009, 4010, 4011).
async fn read_handshake(stream: &mut SplitStream<Socket>, want: u64) -> Result<Value, OpenError> {
    loop {
        let message = match stream.next().await {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                return Err(OpenError::Unavailable(format!(
                    "the connection to OBS failed during the handshake: {e}"
                )));
            }
            None => {
                return Err(OpenError::Unavailable(
                    "OBS closed the connection during the handshake".into(),
                ));
            }
        };
        match message {
            Message::Text(text) => {
                let envelope: Envelope = serde_json::from_str(text.as_str()).map_err(|e| {
                    OpenError::Unavailable(format!("unreadable message from OBS: {e}"))
                })?;
                if envelope.op == want {
                    return Ok(envelope.d);
                }
                return Err(OpenError::Unavailable(format!(
                    "OBS sent op {} during the handshake where op {want} was expected",
                    envelope.op
                )));
            }
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                    .unwrap_or((1005, String::new()));
                return Err(match code {
                    close::AUTHENTICATION_FAILED => OpenError::WrongPassword,
                    close::UNSUPPORTED_RPC_VERSION => OpenError::UnsupportedRpcVersion {
                        rpc: protocol::RPC_VERSION,
                        reason,
                    },
                    close::SESSION_INVALIDATED => OpenError::Kicked,
                    _ => OpenError::Unavailable(
                        Closed::ByObs { code, reason }.to_string() + " during the handshake",
                    ),
                });
            }
            Message::Binary(_) => {
                return Err(OpenError::Unavailable(
                    "OBS answered in msgpack although JSON was asked for".into(),
                ));
            }
            // Pings are answered by tungstenite.
            _ => continue,
        }
    }
}

async fn read_loop(
    shared: Arc<Shared>,
    mut stream: SplitStream<Socket>,
    events: mpsc::Sender<ObsEvent>,
    health: watch::Sender<Health>,
    keepalive: Duration,
    closing: CancellationToken,
) {
    let mut last_heard = Instant::now();
    let mut exit_started = false;
    let mut ticker = tokio::time::interval(keepalive);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let closed = loop {
        tokio::select! {
            _ = closing.cancelled() => {
                let frame = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "switchboard closed the connection".into(),
                };
                let mut sink = shared.sink.lock().await;
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(Some(frame)))).await;
                break Closed::Local;
            }
            _ = ticker.tick() => {
                let silent = last_heard.elapsed();
                if silent >= keepalive * 4 {
                    break Closed::Silent(silent);
                }
                if silent >= keepalive * 2 {
                    health.send_replace(Health::Silent(silent));
                }
                let sent = tokio::time::timeout(keepalive, async {
                    shared.sink.lock().await.send(Message::Ping(Default::default())).await
                })
                .await;
                if let Ok(Err(e)) = sent {
                    break Closed::Lost(format!("cannot write to OBS: {e}"));
                }
            }
            frame = stream.next() => {
                last_heard = Instant::now();
                health.send_if_modified(|h| {
                    let was_silent = *h != Health::Alive;
                    *h = Health::Alive;
                    was_silent
                });
                match frame {
                    None => {
                        break if exit_started {
                            Closed::ObsQuit
                        } else {
                            Closed::Lost("OBS closed the socket without a close frame".into())
                        };
                    }
                    Some(Err(e)) => {
                        break if exit_started { Closed::ObsQuit } else { Closed::Lost(e.to_string()) };
                    }
                    Some(Ok(Message::Text(text))) => {
                        dispatch(&shared, &events, text.as_str(), &mut exit_started);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                            .unwrap_or((1005, String::new()));
                        break if exit_started && code != close::SESSION_INVALIDATED {
                            Closed::ObsQuit
                        } else {
                            Closed::ByObs { code, reason }
                        };
                    }
                    Some(Ok(Message::Binary(_))) => {
                        tracing::warn!("OBS sent a binary (msgpack) message on a JSON session; ignored");
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
    };
    tracing::debug!(reason = %closed, "OBS connection ended");
    let pending = {
        let mut waiters = shared.waiters();
        waiters.closed = Some(closed);
        std::mem::take(&mut waiters.pending)
    };
    // Dropping the senders wakes every waiting caller with the reason above.
    drop(pending);
    drop(events);
}

fn dispatch(shared: &Shared, events: &mpsc::Sender<ObsEvent>, text: &str, exit_started: &mut bool) {
    let envelope: Envelope = match serde_json::from_str(text) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::warn!(%error, "unreadable message from OBS; ignored");
            return;
        }
    };
    match envelope.op {
        op::REQUEST_RESPONSE => match serde_json::from_value::<RequestResponse>(envelope.d) {
            Ok(response) => {
                let id = response.request_id.clone().unwrap_or_default();
                let waiter = shared.waiters().pending.remove(&id);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(Answer::Single(response));
                    }
                    None => {
                        tracing::debug!(request_id = %id, "response to a request nobody waits for")
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "unreadable RequestResponse from OBS"),
        },
        op::REQUEST_BATCH_RESPONSE => {
            match serde_json::from_value::<RequestBatchResponse>(envelope.d) {
                Ok(batch) => {
                    let waiter = shared.waiters().pending.remove(&batch.request_id);
                    if let Some(tx) = waiter {
                        let _ = tx.send(Answer::Batch(batch.results));
                    }
                }
                Err(error) => tracing::warn!(%error, "unreadable RequestBatchResponse from OBS"),
            }
        }
        op::EVENT => match serde_json::from_value::<ObsEvent>(envelope.d) {
            Ok(event) => {
                if event.event_type == "ExitStarted" {
                    tracing::info!("OBS is shutting down");
                    *exit_started = true;
                }
                if let Err(mpsc::error::TrySendError::Full(event)) = events.try_send(event) {
                    tracing::warn!(event = %event.event_type, "OBS events arrive faster than they are published; one was dropped");
                }
            }
            Err(error) => tracing::warn!(%error, "unreadable Event from OBS"),
        },
        op::IDENTIFIED => tracing::debug!("OBS confirmed a re-identify"),
        other => tracing::debug!(op = other, "unexpected op from OBS; ignored"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_read_as_sentences() {
        assert_eq!(
            Closed::ByObs {
                code: 4011,
                reason: "kicked".into()
            }
            .to_string(),
            "OBS closed the connection (code 4011 SessionInvalidated: kicked)"
        );
        assert!(
            Closed::ByObs {
                code: 4011,
                reason: String::new()
            }
            .is_session_invalidated()
        );
        assert!(!Closed::ObsQuit.is_session_invalidated());
        assert!(
            Closed::Silent(Duration::from_secs(20))
                .to_string()
                .contains("20.0s")
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed_in_urls() {
        assert_eq!(url_host("::1"), "[::1]");
        assert_eq!(url_host("[::1]"), "[::1]");
        assert_eq!(url_host("obs.local"), "obs.local");
    }
}
