//! A loopback simulator of OBS Studio's websocket server (obs-websocket
//! protocol v5), speaking the real protocol so that an unchanged
//! obs-websocket client can talk to it by changing the port.
//!
//! # What is simulated
//!
//! | Area | What | Module |
//! | --- | --- | --- |
//! | Handshake | subprotocol `obswebsocket.json`, `Hello` (op 0) with a fresh challenge, `Identify` (op 1) checked (RPC version, salted SHA-256 authentication, event subscriptions), `Identified` (op 2), `Reidentify` (op 3) | `server` |
//! | Close codes | 4002 decode error, 4003 missing field, 4004 wrong type, 4006 unknown op, 4007 not identified, 4008 already identified, 4009 authentication failed, 4010 unsupported RPC version, 4011 session invalidated (kick), 1001 on quit | `server` |
//! | Requests | op 6 → op 7 with `requestStatus` codes; every request first checked against the protocol document (unknown type 204, missing field 300, wrong type 401, out of range 402, empty name 403) | [`spec`], `requests` |
//! | Batches | op 8 → op 9, `haltOnFailure`, `Sleep` | `server` |
//! | Scenes | list, current program scene, create, remove, scene items and their visibility | `requests` |
//! | Outputs | stream and record: start/stop/toggle/status, `STARTING → STARTED`, `STOPPING → STOPPED`, 500/501 when already in that state | `requests` |
//! | Inputs | list, mute, toggle mute | `requests` |
//! | Events | op 5 to each client subscribed to the event's category, `eventIntent` = the category bit | `server` |
//!
//! # How to drive it
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::obs::{Fault, ObsSim, ObsSimConfig};
//! let sim = ObsSim::start(ObsSimConfig { password: Some("pw".into()), ..ObsSimConfig::default() }).await?;
//! // Point a client at 127.0.0.1:sim.port().
//! sim.switch_scene("Be Right Back");                 // as if clicked in OBS
//! sim.inject(Fault::Status { request_type: "StartStream".into(), code: 207, comment: None, times: 1 });
//! sim.quit().await;                                   // ExitStarted, close 1001, port closed
//! sim.restart().await?;                               // OBS is back on the same port
//! sim.kick_all();                                     // close 4011 SessionInvalidated
//! let sent = sim.requests();                          // what clients asked for
//! sim.stop().await;
//! # Ok(()) }
//! ```
//!
//! The default configuration has three scenes (`Starting Soon`, `Live`,
//! `Be Right Back`), a microphone, desktop audio, a camera and an overlay,
//! and no password (see [`ObsSimConfig::default`]).
//!
//! # Faults
//!
//! [`ObsSim::inject`] queues [`Fault`]s matched on the request type: an
//! error status, a delay, a connection dropped without an answer (before or
//! after the request took effect), and a crash of the whole "OBS" on a
//! request. [`ObsSim::quit`] (graceful: `ExitStarted`, close 1001),
//! [`ObsSim::crash`] (sockets dropped, no close frame), [`ObsSim::restart`],
//! [`ObsSim::kick_all`] (4011) and [`ObsSim::freeze`] (stops reading: no
//! answers, no pongs) model OBS's lifecycle.
//!
//! [`studio::HeadlessObs`] runs the real OBS Studio headless under Xvfb, so
//! the same tests can be pointed at the real thing.
//!
//! # Threading model and shutdown
//!
//! All state lives in one `std::sync::Mutex` never held across an `.await`.
//! One task accepts connections and one task serves each connection; events
//! reach connection tasks over a broadcast channel, lifecycle commands over
//! another. [`ObsSim::stop`] closes the listener and every connection.
//!
//! # Simplifications
//!
//! JSON only (no msgpack), one canvas, no transitions (a scene switch is
//! immediate), no studio mode, scene items are inputs (no nested scenes),
//! and requests the simulator does not model answer `702
//! RequestProcessingFailed` naming themselves. Versions below 5.5 omit the
//! UUID fields, as obs-websocket 5.1 does.

mod requests;
mod server;
pub mod spec;
pub mod studio;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, watch};

pub use spec::{Violation, available_requests, check_request_against_spec};

/// Everything the simulator needs to know up front.
#[derive(Clone, Debug)]
pub struct ObsSimConfig {
    /// Address to bind; the default `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    /// `Some` turns authentication on (OBS: "Enable Authentication").
    pub password: Option<String>,
    /// Reported by `GetVersion`.
    pub obs_version: String,
    /// Reported in `Hello` and `GetVersion`; requests newer than this are
    /// unknown (204), and below 5.5 the UUID fields are left out.
    pub websocket_version: String,
    pub scenes: Vec<SeedScene>,
    pub inputs: Vec<SeedInput>,
    /// The program scene at start (default: the first scene).
    pub program_scene: Option<String>,
    /// How long an output stays `STARTING` or `STOPPING`.
    pub output_delay: Duration,
    /// Where recordings "go" (paths in `RecordStateChanged` and `StopRecord`).
    pub record_directory: String,
}

/// A scene and the inputs shown in it, bottom to top.
#[derive(Clone, Debug)]
pub struct SeedScene {
    pub name: String,
    pub sources: Vec<String>,
}

/// An input (a source that produces video or audio).
#[derive(Clone, Debug)]
pub struct SeedInput {
    pub name: String,
    /// obs `inputKind`, such as `pulse_input_capture` or `image_source`.
    pub kind: String,
    pub muted: bool,
}

impl Default for ObsSimConfig {
    /// OBS 30.2.3 with obs-websocket 5.5.2, no password, scenes `Starting
    /// Soon` (Overlay), `Live` (Camera, Overlay) and `Be Right Back`
    /// (Overlay), inputs `Mic/Aux`, `Desktop Audio`, `Camera`, `Overlay`.
    fn default() -> Self {
        let input = |name: &str, kind: &str| SeedInput {
            name: name.into(),
            kind: kind.into(),
            muted: false,
        };
        let scene = |name: &str, sources: &[&str]| SeedScene {
            name: name.into(),
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        };
        ObsSimConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            password: None,
            obs_version: "30.2.3".into(),
            websocket_version: "5.5.2".into(),
            scenes: vec![
                scene("Starting Soon", &["Overlay"]),
                scene("Live", &["Camera", "Overlay"]),
                scene("Be Right Back", &["Overlay"]),
            ],
            inputs: vec![
                input("Mic/Aux", "pulse_input_capture"),
                input("Desktop Audio", "pulse_output_capture"),
                input("Camera", "v4l2_input"),
                input("Overlay", "image_source"),
            ],
            program_scene: None,
            output_delay: Duration::from_millis(150),
            record_directory: "/home/streamer/Videos".into(),
        }
    }
}

/// A fault to inject, matched on `requestType`; `times` is how many
/// matching requests it affects.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this request status (and comment) instead of acting.
    Status {
        request_type: String,
        code: u16,
        comment: Option<String>,
        times: usize,
    },
    /// Wait this long before handling the request.
    Delay {
        request_type: String,
        delay: Duration,
        times: usize,
    },
    /// Drop the connection that sent the request without answering and
    /// without a close frame, as if OBS died while handling it. With
    /// `after_executing` the request takes effect first (its events go to
    /// the other clients): the client cannot know whether it did.
    DropConnection {
        request_type: String,
        after_executing: bool,
        times: usize,
    },
    /// OBS crashes on this request: no answer, every connection dropped,
    /// the port closed until [`ObsSim::restart`].
    CrashOnRequest { request_type: String },
}

/// One request as the simulator received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Which connection sent it (1 for the first accepted).
    pub connection: u64,
    pub request_type: String,
    pub request_data: Option<Value>,
    /// Part of a `RequestBatch`.
    pub in_batch: bool,
    /// The status answered, or `None` if the connection was dropped first.
    pub status: Option<u16>,
}

/// One successful `Identify`.
#[derive(Clone, Debug)]
pub struct Identification {
    pub connection: u64,
    pub rpc_version: u64,
    /// The `eventSubscriptions` bitmask (`None` when left out: All).
    pub event_subscriptions: Option<u64>,
    /// Authentication was required and passed.
    pub authenticated: bool,
}

/// Lifecycle commands for connection tasks.
#[derive(Clone, Debug)]
pub(crate) enum Control {
    /// Close with this code (4011 for a kick).
    Close { code: u16, reason: String },
    /// OBS quits: `ExitStarted`, then close 1001.
    Quit,
    /// OBS dies: sockets dropped without a close frame.
    Crash,
}

/// An event for every subscribed client.
#[derive(Clone, Debug)]
pub(crate) struct SimEvent {
    /// The `EventSubscription` bit of the event's category.
    pub bit: u64,
    pub event_type: String,
    pub data: Value,
}

/// A running simulator. Dropping it without [`ObsSim::stop`] aborts its tasks.
pub struct ObsSim {
    sim: Sim,
}

impl ObsSim {
    /// Bind `config.bind` and start serving.
    pub async fn start(config: ObsSimConfig) -> std::io::Result<ObsSim> {
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let sim = Sim::new(config, addr);
        sim.listen(listener);
        tracing::debug!(%addr, "obs simulator listening");
        Ok(ObsSim { sim })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.sim.inner.addr.port()
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.sim.inner.addr)
    }

    /// Queue a fault.
    pub fn inject(&self, fault: Fault) {
        self.sim.lock().faults.push(fault);
    }

    /// Forget every queued fault.
    pub fn clear_faults(&self) {
        self.sim.lock().faults.clear();
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.sim.lock().requests.clone()
    }

    /// Every successful `Identify`, oldest first.
    pub fn identifications(&self) -> Vec<Identification> {
        self.sim.lock().identifications.clone()
    }

    /// Identified clients connected now.
    pub fn identified_clients(&self) -> usize {
        self.sim.lock().identified_clients
    }

    /// Connections accepted since start (every attempt, identified or not).
    pub fn accepted_connections(&self) -> u64 {
        self.sim.inner.next_connection.load(Ordering::SeqCst) - 1
    }

    /// Open connections (identified or not).
    pub fn open_connections(&self) -> usize {
        self.sim.inner.open.load(Ordering::SeqCst)
    }

    /// Whether the simulated OBS is running (listening).
    pub fn is_running(&self) -> bool {
        self.sim.lock().running
    }

    /// The current program scene.
    pub fn program_scene(&self) -> String {
        self.sim.lock().program.clone()
    }

    /// Scene names, in OBS's list order (top first).
    pub fn scenes(&self) -> Vec<String> {
        self.sim
            .lock()
            .scenes
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    pub fn stream_active(&self) -> bool {
        self.sim.lock().stream.active()
    }

    pub fn record_active(&self) -> bool {
        self.sim.lock().record.active()
    }

    /// An input's mute state, if it exists.
    pub fn input_muted(&self, input: &str) -> Option<bool> {
        self.sim
            .lock()
            .inputs
            .iter()
            .find(|i| i.name == input)
            .map(|i| i.muted)
    }

    /// A source's visibility in a scene, if both exist.
    pub fn source_visible(&self, scene: &str, source: &str) -> Option<bool> {
        let state = self.sim.lock();
        state
            .scenes
            .iter()
            .find(|s| s.name == scene)?
            .items
            .iter()
            .find(|i| i.source == source)
            .map(|i| i.enabled)
    }

    /// Switch the program scene as a person would in OBS. `Err` carries
    /// OBS's status code (600 for an unknown scene).
    pub fn switch_scene(&self, scene: &str) -> Result<(), u16> {
        self.sim.operate(
            "SetCurrentProgramScene",
            serde_json::json!({ "sceneName": scene }),
        )
    }

    /// Mute or unmute an input as a person would in OBS's mixer.
    pub fn set_input_muted(&self, input: &str, muted: bool) -> Result<(), u16> {
        self.sim.operate(
            "SetInputMute",
            serde_json::json!({ "inputName": input, "inputMuted": muted }),
        )
    }

    /// Press "Start Streaming" in OBS.
    pub fn start_stream(&self) -> Result<(), u16> {
        self.sim.operate("StartStream", serde_json::json!({}))
    }

    /// Press "Stop Streaming" in OBS.
    pub fn stop_stream(&self) -> Result<(), u16> {
        self.sim.operate("StopStream", serde_json::json!({}))
    }

    /// Press "Start Recording" in OBS.
    pub fn start_record(&self) -> Result<(), u16> {
        self.sim.operate("StartRecord", serde_json::json!({}))
    }

    /// Press "Stop Recording" in OBS.
    pub fn stop_record(&self) -> Result<(), u16> {
        self.sim.operate("StopRecord", serde_json::json!({}))
    }

    /// Kick every client (OBS's session list "Kick" button): close code
    /// 4011 SessionInvalidated.
    pub fn kick_all(&self) {
        let _ = self.sim.inner.control.send(Control::Close {
            code: server::close::SESSION_INVALIDATED,
            reason: "Your session has been invalidated.".into(),
        });
    }

    /// OBS quits: `ExitStarted` to General subscribers, close 1001, and the
    /// port is closed until [`ObsSim::restart`]. Returns when every
    /// connection is closed (or after 3 s).
    pub async fn quit(&self) {
        self.sim.shut(Control::Quit).await;
    }

    /// OBS dies: every socket dropped without a close frame, the port
    /// closed until [`ObsSim::restart`].
    pub async fn crash(&self) {
        self.sim.shut(Control::Crash).await;
    }

    /// OBS starts again on the same port. Scenes and inputs are as they
    /// were (saved with the scene collection); outputs are stopped.
    pub async fn restart(&self) -> std::io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(self.sim.inner.addr).await?;
        {
            let mut state = self.sim.lock();
            state.stream = OutputState::Stopped;
            state.record = OutputState::Stopped;
            state.running = true;
        }
        self.sim.listen(listener);
        Ok(())
    }

    /// While frozen, OBS reads nothing: no answers, no pongs, no events
    /// (a hung OBS, or a half-open connection).
    pub fn freeze(&self, frozen: bool) {
        self.sim.inner.frozen.send_replace(frozen);
    }

    /// Stop serving and close every connection.
    pub async fn stop(self) {
        self.sim.shut(Control::Crash).await;
    }
}

impl Drop for ObsSim {
    fn drop(&mut self) {
        self.sim.stop_listening();
        let _ = self.sim.inner.control.send(Control::Crash);
    }
}

/// The shared handle every task gets.
#[derive(Clone)]
pub(crate) struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    addr: SocketAddr,
    events: broadcast::Sender<SimEvent>,
    control: broadcast::Sender<Control>,
    frozen: watch::Sender<bool>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Open connections.
    open: AtomicUsize,
    next_connection: AtomicU64,
    /// Per-start salt of the authentication.
    salt: String,
}

impl Sim {
    fn new(config: ObsSimConfig, addr: SocketAddr) -> Sim {
        let (events, _) = broadcast::channel(1024);
        let (control, _) = broadcast::channel(16);
        let (frozen, _) = watch::channel(false);
        Sim {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(config)),
                addr,
                events,
                control,
                frozen,
                listener: Mutex::new(None),
                open: AtomicUsize::new(0),
                next_connection: AtomicU64::new(1),
                salt: random_base64(32),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn listen(&self, listener: tokio::net::TcpListener) {
        let task = tokio::spawn(server::accept_loop(self.clone(), listener));
        let old = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(task);
        if let Some(old) = old {
            old.abort();
        }
    }

    fn stop_listening(&self) {
        if let Some(task) = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }

    /// Close the port and every connection the way `how` says.
    pub(crate) async fn shut(&self, how: Control) {
        self.stop_listening();
        self.lock().running = false;
        let _ = self.inner.control.send(how);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.inner.open.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Run a request as OBS's own UI would (not recorded, no faults).
    fn operate(&self, request_type: &str, data: Value) -> Result<(), u16> {
        let outcome = requests::execute(self, request_type, Some(&data));
        if outcome.code == requests::SUCCESS {
            Ok(())
        } else {
            Err(outcome.code)
        }
    }

    pub(crate) fn publish(&self, events: Vec<SimEvent>) {
        for event in events {
            let _ = self.inner.events.send(event);
        }
    }
}

/// An output's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputState {
    Stopped,
    Starting,
    Started,
    Stopping,
}

impl OutputState {
    pub(crate) fn active(self) -> bool {
        matches!(self, OutputState::Started | OutputState::Stopping)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Scene {
    pub name: String,
    pub uuid: String,
    pub items: Vec<SceneItem>,
}

#[derive(Clone, Debug)]
pub(crate) struct SceneItem {
    pub id: u64,
    /// The input shown.
    pub source: String,
    pub enabled: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Input {
    pub name: String,
    pub uuid: String,
    pub kind: String,
    pub muted: bool,
}

/// Everything mutable, behind one lock.
pub(crate) struct State {
    pub config: ObsSimConfig,
    /// Top of OBS's list first.
    pub scenes: Vec<Scene>,
    pub inputs: Vec<Input>,
    pub program: String,
    pub stream: OutputState,
    pub record: OutputState,
    pub record_path: Option<String>,
    pub faults: Vec<Fault>,
    pub requests: Vec<RecordedRequest>,
    pub identifications: Vec<Identification>,
    pub identified_clients: usize,
    pub running: bool,
    pub started_at: std::time::Instant,
}

impl State {
    fn new(config: ObsSimConfig) -> State {
        let mut next_item_id = 1;
        let scenes: Vec<Scene> = config
            .scenes
            .iter()
            .map(|seed| Scene {
                name: seed.name.clone(),
                uuid: uuid::Uuid::new_v4().to_string(),
                items: seed
                    .sources
                    .iter()
                    .map(|source| {
                        let item = SceneItem {
                            id: next_item_id,
                            source: source.clone(),
                            enabled: true,
                        };
                        next_item_id += 1;
                        item
                    })
                    .collect(),
            })
            .collect();
        let inputs = config
            .inputs
            .iter()
            .map(|seed| Input {
                name: seed.name.clone(),
                uuid: uuid::Uuid::new_v4().to_string(),
                kind: seed.kind.clone(),
                muted: seed.muted,
            })
            .collect();
        let program = config
            .program_scene
            .clone()
            .or_else(|| scenes.first().map(|s| s.name.clone()))
            .unwrap_or_default();
        State {
            config,
            scenes,
            inputs,
            program,
            stream: OutputState::Stopped,
            record: OutputState::Stopped,
            record_path: None,
            faults: Vec::new(),
            requests: Vec::new(),
            identifications: Vec::new(),
            identified_clients: 0,
            running: true,
            started_at: std::time::Instant::now(),
        }
    }

    /// obs-websocket 5.5 added UUIDs to names everywhere.
    pub(crate) fn has_uuids(&self) -> bool {
        spec::version_tuple(&self.config.websocket_version) >= (5, 5, 0)
    }

    /// Consume a matching fault of this kind, if one is queued.
    pub(crate) fn take_fault(&mut self, request_type: &str) -> Option<Fault> {
        let index = self.faults.iter().position(|f| match f {
            Fault::Status {
                request_type: t, ..
            }
            | Fault::Delay {
                request_type: t, ..
            }
            | Fault::DropConnection {
                request_type: t, ..
            }
            | Fault::CrashOnRequest { request_type: t } => t == request_type,
        })?;
        let fault = self.faults[index].clone();
        let spent = match &mut self.faults[index] {
            Fault::Status { times, .. }
            | Fault::Delay { times, .. }
            | Fault::DropConnection { times, .. } => {
                *times = times.saturating_sub(1);
                *times == 0
            }
            Fault::CrashOnRequest { .. } => true,
        };
        if spent {
            self.faults.remove(index);
        }
        Some(fault)
    }
}

/// `bytes` random bytes, base64 (the shape of OBS's salt and challenge).
pub(crate) fn random_base64(bytes: usize) -> String {
    use base64::Engine as _;
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The `EventSubscription` bit of a category name.
pub(crate) fn subscription_bit(category: &str) -> u64 {
    match category {
        "General" => 1 << 0,
        "Config" => 1 << 1,
        "Scenes" => 1 << 2,
        "Inputs" => 1 << 3,
        "Transitions" => 1 << 4,
        "Filters" => 1 << 5,
        "Outputs" => 1 << 6,
        "SceneItems" => 1 << 7,
        "MediaInputs" => 1 << 8,
        "Vendors" => 1 << 9,
        "Ui" => 1 << 10,
        "Canvases" => 1 << 11,
        "InputVolumeMeters" => 1 << 16,
        "InputActiveStateChanged" => 1 << 17,
        "InputShowStateChanged" => 1 << 18,
        "SceneItemTransformChanged" => 1 << 19,
        _ => 0,
    }
}

/// `All`: every non-high-volume category.
pub(crate) const SUBSCRIBE_ALL: u64 = (1 << 12) - 1;

/// An event of `event_type` with its category bit from the protocol document.
pub(crate) fn event(event_type: &str, data: Value) -> SimEvent {
    SimEvent {
        bit: spec::event_subscription(event_type)
            .map(subscription_bit)
            .unwrap_or(1),
        event_type: event_type.to_owned(),
        data,
    }
}
