//! The `obs` connector: one OBS Studio per connection, through OBS's
//! built-in websocket server (obs-websocket protocol v5, OBS 28 and later).
//!
//! * **Auth** (`auth.rs`): the salted SHA-256 challenge of `Hello`, answered
//!   in `Identify`. A refused password (close code 4009) is a fatal `error`
//!   saying "wrong OBS websocket password", never a retry loop.
//! * **Client** (`client.rs`, `protocol.rs`): our own obs-websocket client on
//!   tokio-tungstenite (why not `obws`: see `client.rs`): requests and
//!   request batches correlated by id, events on a channel, pings to notice a
//!   silent OBS, close codes kept so a kick (4011) is not mistaken for OBS
//!   quitting.
//! * **Actions** (`actions.rs`): `obs.set_scene`, `obs.start_stream`,
//!   `obs.stop_stream`, `obs.start_record`, `obs.stop_record`,
//!   `obs.list_scenes`, `obs.set_source_visible`, and `obs.request` for any
//!   protocol request by name. OBS's request status codes become job errors
//!   that name the code (600 ResourceNotFound: "OBS has no scene named …").
//! * **Triggers** (`triggers.rs`): `obs.scene.changed`, `obs.stream.state`,
//!   `obs.record.state`, `obs.input.mute`, from OBS's events.
//!
//! # Connection lifecycle
//! `connect` opens the socket and identifies; `run` publishes events until
//! the socket ends. When OBS quits, crashes or goes silent, `run` returns
//! `Unavailable` and the supervisor reconnects with exponential backoff and
//! jitter, capped at `reconnect_max_ms` (default 1 s, so a restarted OBS is
//! connected within about a second of its port answering) (status `error` with the reason, then `connecting`, then
//! `connected`); jobs wait meanwhile and run when OBS is back. A request cut
//! off mid-flight is a transient job error: the job is retried. A kick
//! (4011) or a wrong password ends in `error` without retrying, until the
//! connection is restarted or its settings or secrets change. Silence for
//! two keepalive intervals reports `degraded`.
//!
//! Host, port and TLS are connection settings (default `127.0.0.1:4455`, no
//! TLS), so the same code talks to OBS or to `switchboard_sim::obs`.

mod actions;
pub mod auth;
pub mod client;
pub mod protocol;
mod triggers;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::{
    ActionCall, ActionError, ActionSpec, AuthKind, Connector, ConnectorError, ConnectorManifest,
    RuntimeContext, SecretSpec, Session, StatusKind, TriggerSpec,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use client::{ClientConfig, Closed, Health, ObsClient, OpenError};
use protocol::ObsEvent;

/// Settings of an OBS connection (see the settings schema in [`manifest`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObsSettings {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub request_timeout_ms: u64,
    pub keepalive_ms: u64,
    /// The longest wait between reconnect attempts (see
    /// [`Connector::reconnect_max`]).
    pub reconnect_max_ms: u64,
}

impl Default for ObsSettings {
    fn default() -> Self {
        ObsSettings {
            host: "127.0.0.1".into(),
            port: 4455,
            tls: false,
            request_timeout_ms: 10_000,
            keepalive_ms: 5_000,
            reconnect_max_ms: DEFAULT_RECONNECT_MAX_MS,
        }
    }
}

impl ObsSettings {
    fn client_config(&self) -> ClientConfig {
        ClientConfig {
            host: self.host.clone(),
            port: self.port,
            tls: self.tls,
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::from_millis(self.keepalive_ms.max(50)),
            event_subscriptions: protocol::subscription::WANTED,
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

/// OBS usually runs on the same machine and restarts in seconds: try again
/// at least once a second, however long it was away.
pub const DEFAULT_RECONNECT_MAX_MS: u64 = 1_000;

/// The secret holding the websocket password.
pub const PASSWORD_SECRET: &str = "password";

fn output_state_schema() -> Value {
    json!({
        "enum": ["starting", "started", "stopping", "stopped", "reconnecting", "reconnected", "paused", "resumed", "unknown"],
        "description": "OBS's outputState without its OBS_WEBSOCKET_OUTPUT_ prefix, lower case."
    })
}

fn empty_params() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {}})
}

fn manifest() -> ConnectorManifest {
    let scene_name = |description: &str| json!({"type": "string", "minLength": 1, "maxLength": 512, "description": description});
    ConnectorManifest {
        name: "obs".into(),
        display_name: "OBS Studio".into(),
        description: "Control OBS Studio through its built-in websocket server (obs-websocket 5, OBS 28 or later): switch scenes, start and stop streaming and recording, show and hide sources, send any protocol request; scene, stream, recording and mute changes arrive as events. Reconnects by itself when OBS restarts.".into(),
        auth: AuthKind::Secrets,
        settings_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "host": {"type": "string", "minLength": 1, "maxLength": 253, "description": "Where OBS runs (default 127.0.0.1)."},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "OBS's WebSocket server port (default 4455; OBS: Tools → WebSocket Server Settings)."},
                "tls": {"type": "boolean", "description": "Connect with wss:// (OBS behind a TLS proxy). OBS itself serves plain ws://. Default false."},
                "request_timeout_ms": {"type": "integer", "minimum": 100, "maximum": 120000, "description": "How long one request may wait for OBS's answer (default 10000)."},
                "keepalive_ms": {"type": "integer", "minimum": 50, "maximum": 600000, "description": "Ping interval. OBS silent for 2 intervals: degraded; for 4: reconnect. Default 5000."},
                "reconnect_max_ms": {"type": "integer", "minimum": 100, "maximum": 3600000, "description": "Longest wait between reconnect attempts while OBS is away, so a restarted OBS is connected within this long of its port answering (default 1000; the daemon's supervisor.reconnect_max_ms does not apply to OBS)."}
            }
        }),
        secrets: vec![SecretSpec {
            name: PASSWORD_SECRET.into(),
            description: "The WebSocket server password (OBS: Tools → WebSocket Server Settings → Show Connect Info). Leave unset if authentication is off.".into(),
            required: false,
        }],
        triggers: vec![
            TriggerSpec {
                event_type: "obs.scene.changed".into(),
                description: "The program (live) scene changed, in OBS or through switchboard. `on_connect` is true when the change happened while switchboard was not connected and was noticed on connecting.".into(),
                payload_schema: json!({
                    "type": "object",
                    "properties": {
                        "scene": {"type": "string"},
                        "previous": {"type": ["string", "null"]},
                        "scene_uuid": {"type": ["string", "null"]},
                        "on_connect": {"type": "boolean"}
                    }
                }),
            },
            TriggerSpec {
                event_type: "obs.stream.state".into(),
                description: "The stream output changed state (starting, started, stopping, stopped, reconnecting, reconnected).".into(),
                payload_schema: json!({
                    "type": "object",
                    "properties": {
                        "active": {"type": "boolean"},
                        "state": output_state_schema(),
                        "output_state": {"type": "string", "description": "OBS's raw outputState."}
                    }
                }),
            },
            TriggerSpec {
                event_type: "obs.record.state".into(),
                description: "The recording output changed state; `output_path` is the file when a recording stopped.".into(),
                payload_schema: json!({
                    "type": "object",
                    "properties": {
                        "active": {"type": "boolean"},
                        "state": output_state_schema(),
                        "output_state": {"type": "string"},
                        "output_path": {"type": ["string", "null"]}
                    }
                }),
            },
            TriggerSpec {
                event_type: "obs.input.mute".into(),
                description: "An input (microphone, desktop audio, media source) was muted or unmuted.".into(),
                payload_schema: json!({
                    "type": "object",
                    "properties": {
                        "input": {"type": "string"},
                        "input_uuid": {"type": ["string", "null"]},
                        "muted": {"type": "boolean"}
                    }
                }),
            },
        ],
        actions: vec![
            ActionSpec {
                name: "obs.set_scene".into(),
                description: "Switch OBS's program (live) scene by name. Fails with OBS error 600 if there is no such scene (use obs.list_scenes to see the names). Returns the scene.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["scene"],
                    "properties": {"scene": scene_name("Name of the scene to put on program.")}
                }),
                result_schema: json!({"type": "object", "properties": {"scene": {"type": "string"}}}),
            },
            ActionSpec {
                name: "obs.start_stream".into(),
                description: "Start streaming with OBS's configured stream settings. Returns once OBS accepted; watch obs.stream.state for `started`. Fails with OBS error 500 if OBS is already streaming (a retried job treats that as done).".into(),
                params_schema: empty_params(),
                result_schema: json!({"type": "object", "properties": {"streaming": {"type": "boolean"}, "already": {"type": "boolean"}}}),
            },
            ActionSpec {
                name: "obs.stop_stream".into(),
                description: "Stop streaming. Fails with OBS error 501 if OBS is not streaming (a retried job treats that as done).".into(),
                params_schema: empty_params(),
                result_schema: json!({"type": "object", "properties": {"streaming": {"type": "boolean"}, "already": {"type": "boolean"}}}),
            },
            ActionSpec {
                name: "obs.start_record".into(),
                description: "Start recording to OBS's configured recording path. Fails with OBS error 500 if OBS is already recording (a retried job treats that as done).".into(),
                params_schema: empty_params(),
                result_schema: json!({"type": "object", "properties": {"recording": {"type": "boolean"}, "already": {"type": "boolean"}}}),
            },
            ActionSpec {
                name: "obs.stop_record".into(),
                description: "Stop recording. Returns the recorded file's path. Fails with OBS error 501 if OBS is not recording (a retried job treats that as done).".into(),
                params_schema: empty_params(),
                result_schema: json!({"type": "object", "properties": {"recording": {"type": "boolean"}, "output_path": {"type": ["string", "null"]}, "already": {"type": "boolean"}}}),
            },
            ActionSpec {
                name: "obs.list_scenes".into(),
                description: "List OBS's scenes, top of OBS's list first, and which one is on program (and in preview, in studio mode). With include_sources, each scene also lists its sources (scene items) and whether they are visible, in one round trip.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"include_sources": {"type": "boolean", "description": "Also list each scene's sources (default false)."}}
                }),
                result_schema: json!({
                    "type": "object",
                    "properties": {
                        "current_program_scene": {"type": ["string", "null"]},
                        "current_preview_scene": {"type": ["string", "null"]},
                        "scenes": {"type": "array", "items": {"type": "object", "properties": {
                            "name": {"type": "string"},
                            "index": {"type": "integer"},
                            "uuid": {"type": ["string", "null"]},
                            "sources": {"type": "array"}
                        }}}
                    }
                }),
            },
            ActionSpec {
                name: "obs.set_source_visible".into(),
                description: "Show or hide a source in a scene (the eye icon in OBS's Sources list). Fails with OBS error 600 if the scene or the source in it does not exist.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["scene", "source", "visible"],
                    "properties": {
                        "scene": scene_name("The scene the source is in."),
                        "source": scene_name("The source's name."),
                        "visible": {"type": "boolean"}
                    }
                }),
                result_schema: json!({"type": "object", "properties": {
                    "scene": {"type": "string"}, "source": {"type": "string"},
                    "scene_item_id": {"type": "integer"}, "visible": {"type": "boolean"}
                }}),
            },
            ActionSpec {
                name: "obs.request".into(),
                description: "Send any obs-websocket v5 request by name (for example GetStats, CreateScene, SetInputMute, TriggerHotkeyByName) with its requestData, and return OBS's responseData. OBS's error codes come back as the job error (600 resource not found, 204 unknown request type, 300/400 bad fields).".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["request_type"],
                    "properties": {
                        "request_type": {"type": "string", "pattern": "^[A-Z][A-Za-z0-9]{1,99}$", "description": "The protocol's requestType, such as GetStats."},
                        "request_data": {"type": "object", "description": "The protocol's requestData."}
                    }
                }),
                result_schema: json!({"type": "object", "properties": {
                    "request_type": {"type": "string"},
                    "response_data": {"type": ["object", "null"]}
                }}),
            },
        ],
    }
}

pub struct ObsConnector {
    manifest: ConnectorManifest,
}

impl Default for ObsConnector {
    fn default() -> Self {
        ObsConnector {
            manifest: manifest(),
        }
    }
}

impl ObsConnector {
    pub fn new() -> ObsConnector {
        ObsConnector::default()
    }
}

fn connector_error(e: OpenError) -> ConnectorError {
    match e {
        OpenError::Unavailable(m) => ConnectorError::Unavailable(m),
        fatal => ConnectorError::Misconfigured(fatal.to_string()),
    }
}

/// How the end of a connection is reported to the supervisor.
fn ended(closed: Closed) -> ConnectorError {
    if closed.is_session_invalidated() {
        ConnectorError::Misconfigured(format!(
            "{closed}: someone removed switchboard from OBS's WebSocket session list, and a kicked client must not \
             reconnect by itself; restart the connection (`switchboard connections restart ID`) to connect again"
        ))
    } else {
        ConnectorError::Unavailable(closed.to_string())
    }
}

#[async_trait]
impl Connector for ObsConnector {
    fn manifest(&self) -> &ConnectorManifest {
        &self.manifest
    }

    fn reconnect_max(&self, settings: &Value) -> Option<Duration> {
        // Settings that do not parse are refused before they are stored; fall
        // back to the default rather than the daemon's longer cap.
        let max_ms = serde_json::from_value::<ObsSettings>(settings.clone())
            .map(|s| s.reconnect_max_ms)
            .unwrap_or(DEFAULT_RECONNECT_MAX_MS);
        Some(Duration::from_millis(max_ms.max(1)))
    }

    async fn connect(&self, ctx: RuntimeContext) -> Result<Arc<dyn Session>, ConnectorError> {
        let settings: ObsSettings = serde_json::from_value(ctx.settings.clone())
            .map_err(|e| ConnectorError::Misconfigured(format!("obs settings: {e}")))?;
        let password = ctx.secrets.get(PASSWORD_SECRET);
        let connection = client::open(&settings.client_config(), password)
            .await
            .map_err(connector_error)?;
        tracing::info!(
            host = %settings.host,
            port = settings.port,
            obs_websocket = connection.websocket_version.as_deref().unwrap_or("?"),
            "connected to OBS"
        );
        let session = ObsSession {
            client: connection.client,
            events: tokio::sync::Mutex::new(connection.events),
            health: connection.health,
            program_scene: Mutex::new(None),
            settings,
            ctx,
        };
        session.catch_up().await?;
        Ok(Arc::new(session))
    }
}

pub(crate) struct ObsSession {
    pub(crate) client: ObsClient,
    events: tokio::sync::Mutex<mpsc::Receiver<ObsEvent>>,
    health: watch::Receiver<Health>,
    /// The program scene as last seen, for `previous` in `obs.scene.changed`.
    pub(crate) program_scene: Mutex<Option<String>>,
    pub(crate) settings: ObsSettings,
    pub(crate) ctx: RuntimeContext,
}

#[async_trait]
impl Session for ObsSession {
    async fn run(&self, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let mut events = self.events.lock().await;
        let mut health = self.health.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                event = events.recv() => match event {
                    Some(event) => self.publish(event).await,
                    None => {
                        let closed = self
                            .client
                            .closed()
                            .unwrap_or_else(|| Closed::Lost("the event stream ended".into()));
                        return Err(ended(closed));
                    }
                },
                Ok(()) = health.changed() => {
                    let now = *health.borrow_and_update();
                    match now {
                        Health::Alive => self.ctx.env.report_status(StatusKind::Connected, None).await,
                        Health::Silent(for_how_long) => {
                            self.ctx
                                .env
                                .report_status(
                                    StatusKind::Degraded,
                                    Some(format!(
                                        "OBS has not answered pings for {:.1}s",
                                        for_how_long.as_secs_f64()
                                    )),
                                )
                                .await
                        }
                    }
                }
            }
        }
    }

    async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError> {
        match call.action.as_str() {
            "obs.set_scene" => self.set_scene(&call).await,
            "obs.start_stream" => self.start_output(&call, actions::Output::Stream).await,
            "obs.stop_stream" => self.stop_output(&call, actions::Output::Stream).await,
            "obs.start_record" => self.start_output(&call, actions::Output::Record).await,
            "obs.stop_record" => self.stop_output(&call, actions::Output::Record).await,
            "obs.list_scenes" => self.list_scenes(&call).await,
            "obs.set_source_visible" => self.set_source_visible(&call).await,
            "obs.request" => self.raw_request(&call).await,
            other => Err(ActionError::InvalidParams {
                field: "action".into(),
                message: format!("obs has no action `{other}`"),
            }),
        }
    }

    /// OBS answers `GetVersion`.
    async fn check(&self) -> Result<Value, ActionError> {
        self.version().await
    }
}
