//! The OBS connector against the OBS simulator, with an in-memory runtime
//! environment: the handshake and its failures, every action, the triggers,
//! and what happens to the session and to requests in flight when OBS quits,
//! crashes, kicks us or goes silent. (The daemon-level suite repeats the
//! main stories through the REST API and the job queue, and against real
//! OBS Studio.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard_connector_obs::ObsConnector;
use switchboard_core::{
    ActionCall, ActionError, Connector, ConnectorError, MediaInfo, RuntimeContext, RuntimeEnv,
    Secrets, Session, StatusKind,
};
use switchboard_sim::obs::{Fault, ObsSim, ObsSimConfig};
use tokio_util::sync::CancellationToken;

/// A runtime environment kept in memory.
#[derive(Default)]
struct Env {
    state: Mutex<HashMap<String, Value>>,
    events: Mutex<Vec<(String, Value)>>,
    statuses: Mutex<Vec<(StatusKind, Option<String>)>>,
}

impl Env {
    fn events(&self, kind: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Wait until `count` events of `kind` were published.
    async fn wait_events(&self, kind: &str, count: usize) -> Vec<Value> {
        for _ in 0..200 {
            let events = self.events(kind);
            if events.len() >= count {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "expected {count} `{kind}` events, got {:?}",
            self.events.lock().unwrap()
        );
    }
}

#[async_trait]
impl RuntimeEnv for Env {
    async fn emit(&self, event_type: &str, payload: Value) {
        self.events
            .lock()
            .unwrap()
            .push((event_type.into(), payload));
    }
    async fn report_status(&self, kind: StatusKind, reason: Option<String>) {
        self.statuses.lock().unwrap().push((kind, reason));
    }
    async fn load_secrets(&self) -> Result<Secrets, String> {
        Ok(Secrets::new())
    }
    async fn store_secrets(
        &self,
        _changes: Vec<(String, Option<SecretString>)>,
    ) -> Result<(), String> {
        Ok(())
    }
    async fn lock(&self, _key: &str) -> Result<Box<dyn Send>, String> {
        Ok(Box::new(()))
    }
    async fn load_state(&self, key: &str) -> Result<Option<Value>, String> {
        Ok(self.state.lock().unwrap().get(key).cloned())
    }
    async fn store_state(&self, key: &str, value: Option<Value>) -> Result<(), String> {
        let mut state = self.state.lock().unwrap();
        match value {
            Some(v) => state.insert(key.into(), v),
            None => state.remove(key),
        };
        Ok(())
    }
    async fn media(&self, id: &str) -> Result<MediaInfo, String> {
        Err(format!("no media {id}"))
    }
    async fn archive(
        &self,
        _kind: &str,
        _key: &str,
        _occurred_at: i64,
        _record: serde_json::Value,
    ) -> Result<bool, String> {
        Err("this test environment keeps no archive".into())
    }
}

const PASSWORD: &str = "correct horse";

fn context(env: &Arc<Env>, settings: Value, password: Option<&str>) -> RuntimeContext {
    let mut secrets = Secrets::new();
    if let Some(password) = password {
        secrets.insert("password".into(), SecretString::from(password.to_owned()));
    }
    RuntimeContext {
        connection_id: "obs-test".into(),
        settings,
        secrets,
        env: env.clone(),
        cancel: CancellationToken::new(),
    }
}

fn settings(sim: &ObsSim) -> Value {
    json!({ "host": "127.0.0.1", "port": sim.port(), "request_timeout_ms": 3000 })
}

async fn sim() -> ObsSim {
    ObsSim::start(ObsSimConfig {
        password: Some(PASSWORD.into()),
        ..ObsSimConfig::default()
    })
    .await
    .unwrap()
}

struct Running {
    session: Arc<dyn Session>,
    run: tokio::task::JoinHandle<Result<(), ConnectorError>>,
    cancel: CancellationToken,
    env: Arc<Env>,
    attempt: i64,
}

impl Running {
    async fn start(sim: &ObsSim) -> Running {
        Running::start_with(sim, Arc::new(Env::default())).await
    }

    async fn start_with(sim: &ObsSim, env: Arc<Env>) -> Running {
        Running::start_with_settings(settings(sim), env).await
    }

    /// Pings every `keepalive_ms`: silent for 2 intervals is degraded, for 4
    /// the connection is dropped.
    async fn start_with_keepalive(sim: &ObsSim, keepalive_ms: u64) -> Running {
        let mut s = settings(sim);
        s["keepalive_ms"] = json!(keepalive_ms);
        Running::start_with_settings(s, Arc::new(Env::default())).await
    }

    async fn start_with_settings(settings: Value, env: Arc<Env>) -> Running {
        let session = ObsConnector::new()
            .connect(context(&env, settings, Some(PASSWORD)))
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let cancel = CancellationToken::new();
        let run = tokio::spawn({
            let session = session.clone();
            let cancel = cancel.clone();
            async move { session.run(cancel).await }
        });
        Running {
            session,
            run,
            cancel,
            env,
            attempt: 1,
        }
    }

    async fn invoke(&self, action: &str, params: Value) -> Result<Value, ActionError> {
        self.session
            .invoke(ActionCall {
                job_id: "job".into(),
                action: action.into(),
                params,
                attempt: self.attempt,
                recovered: false,
                idempotency_key: None,
                created_at: 0,
            })
            .await
    }

    async fn ok(&self, action: &str, params: Value) -> Value {
        self.invoke(action, params)
            .await
            .unwrap_or_else(|e| panic!("{action}: {e}"))
    }

    /// The outcome of `run` (it must end within a few seconds).
    async fn ended(self) -> Result<(), ConnectorError> {
        tokio::time::timeout(Duration::from_secs(5), self.run)
            .await
            .expect("run ends")
            .unwrap()
    }
}

#[tokio::test]
async fn identifies_with_the_password_and_the_trigger_subscriptions() {
    let sim = sim().await;
    let obs = Running::start(&sim).await;
    let ids = sim.identifications();
    assert_eq!(ids.len(), 1);
    assert!(ids[0].authenticated);
    // General | Scenes | Inputs | Outputs: nothing high-volume.
    assert_eq!(ids[0].event_subscriptions, Some(1 | 4 | 8 | 64));
    assert_eq!(ids[0].rpc_version, 1);
    obs.cancel.cancel();
    assert!(obs.ended().await.is_ok());
    sim.stop().await;
}

#[tokio::test]
async fn every_action_against_the_simulator() {
    let sim = sim().await;
    let obs = Running::start(&sim).await;

    assert_eq!(
        obs.ok("obs.set_scene", json!({"scene": "Live"})).await,
        json!({"scene": "Live"})
    );
    assert_eq!(sim.program_scene(), "Live");

    let list = obs
        .ok("obs.list_scenes", json!({"include_sources": true}))
        .await;
    assert_eq!(list["current_program_scene"], "Live");
    let order: Vec<&str> = list["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["Starting Soon", "Live", "Be Right Back"],
        "as OBS's list reads"
    );
    let live = list["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Live")
        .unwrap();
    let sources: Vec<&str> = live["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["Camera", "Overlay"]);
    assert!(live["uuid"].is_string());
    let batched = sim.requests().iter().filter(|r| r.in_batch).count();
    assert_eq!(batched, 3, "one GetSceneItemList per scene, in one batch");

    let hidden = obs
        .ok(
            "obs.set_source_visible",
            json!({"scene": "Live", "source": "Camera", "visible": false}),
        )
        .await;
    assert_eq!(hidden["visible"], false);
    assert!(hidden["scene_item_id"].is_u64());
    assert_eq!(sim.source_visible("Live", "Camera"), Some(false));

    assert_eq!(
        obs.ok("obs.start_stream", json!({})).await,
        json!({"streaming": true, "already": false})
    );
    let states = obs.env.wait_events("obs.stream.state", 2).await;
    assert_eq!(states[0]["state"], "starting");
    assert_eq!(states[1]["state"], "started");
    assert_eq!(states[1]["active"], true);
    assert_eq!(
        obs.ok("obs.stop_stream", json!({})).await,
        json!({"streaming": false, "already": false})
    );
    let states = obs.env.wait_events("obs.stream.state", 4).await;
    assert_eq!(states[3]["state"], "stopped");
    assert!(!sim.stream_active());

    obs.ok("obs.start_record", json!({})).await;
    obs.env.wait_events("obs.record.state", 2).await;
    let stopped = obs.ok("obs.stop_record", json!({})).await;
    let path = stopped["output_path"].as_str().unwrap();
    assert!(path.ends_with(".mkv"), "{stopped}");
    let records = obs.env.wait_events("obs.record.state", 4).await;
    assert_eq!(records[3]["state"], "stopped");
    assert_eq!(records[3]["output_path"], path);

    let stats = obs
        .ok("obs.request", json!({"request_type": "GetStats"}))
        .await;
    assert_eq!(stats["request_type"], "GetStats");
    assert!(stats["response_data"]["activeFps"].is_number());
    let created = obs
        .ok(
            "obs.request",
            json!({"request_type": "CreateScene", "request_data": {"sceneName": "Interview"}}),
        )
        .await;
    assert!(created["response_data"]["sceneUuid"].is_string());
    assert!(sim.scenes().contains(&"Interview".to_owned()));
    obs.cancel.cancel();
    sim.stop().await;
}

#[tokio::test]
async fn obs_errors_become_clear_permanent_job_errors() {
    let sim = sim().await;
    let obs = Running::start(&sim).await;

    let missing = obs
        .invoke("obs.set_scene", json!({"scene": "Nope"}))
        .await
        .unwrap_err();
    assert!(!missing.is_retryable());
    assert_eq!(
        missing.to_string(),
        "OBS refused SetCurrentProgramScene: there is no scene named `Nope` (600 ResourceNotFound: No source was found by the name of `Nope`.)"
    );

    let no_source = obs
        .invoke(
            "obs.set_source_visible",
            json!({"scene": "Live", "source": "Ghost", "visible": true}),
        )
        .await
        .unwrap_err();
    assert!(
        no_source
            .to_string()
            .contains("no scene `Live` with a source `Ghost`"),
        "{no_source}"
    );
    assert!(no_source.to_string().contains("600"), "{no_source}");

    let not_streaming = obs.invoke("obs.stop_stream", json!({})).await.unwrap_err();
    assert!(!not_streaming.is_retryable());
    assert!(
        not_streaming
            .to_string()
            .contains("OBS is not streaming (501 OutputNotRunning)"),
        "{not_streaming}"
    );

    let unknown = obs
        .invoke("obs.request", json!({"request_type": "MakeCoffee"}))
        .await
        .unwrap_err();
    assert!(
        unknown.to_string().contains("204 UnknownRequestType"),
        "{unknown}"
    );
    let bad_field = obs
        .invoke(
            "obs.request",
            json!({"request_type": "SetInputMute", "request_data": {"inputName": "Mic/Aux"}}),
        )
        .await
        .unwrap_err();
    assert!(
        bad_field.to_string().contains("300 MissingRequestField"),
        "{bad_field}"
    );

    // Not ready (207) is worth another try, after a pause.
    sim.inject(Fault::Status {
        request_type: "SetCurrentProgramScene".into(),
        code: 207,
        comment: None,
        times: 1,
    });
    match obs.invoke("obs.set_scene", json!({"scene": "Live"})).await {
        Err(ActionError::Transient { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)))
        }
        other => panic!("{other:?}"),
    }
    obs.cancel.cancel();
    sim.stop().await;
}

#[tokio::test]
async fn triggers_come_from_obs_events() {
    let sim = sim().await;
    let obs = Running::start(&sim).await;

    sim.switch_scene("Be Right Back").unwrap();
    let changed = obs.env.wait_events("obs.scene.changed", 1).await;
    assert_eq!(
        changed[0],
        json!({"scene": "Be Right Back", "previous": "Starting Soon", "scene_uuid": changed[0]["scene_uuid"], "on_connect": false})
    );
    assert!(changed[0]["scene_uuid"].is_string());
    sim.switch_scene("Live").unwrap();
    let changed = obs.env.wait_events("obs.scene.changed", 2).await;
    assert_eq!(changed[1]["previous"], "Be Right Back");

    sim.set_input_muted("Mic/Aux", true).unwrap();
    let muted = obs.env.wait_events("obs.input.mute", 1).await;
    assert_eq!(muted[0]["input"], "Mic/Aux");
    assert_eq!(muted[0]["muted"], true);

    sim.start_record().unwrap();
    let records = obs.env.wait_events("obs.record.state", 2).await;
    assert_eq!(records[1]["active"], true);
    assert!(records[1]["output_path"].is_string());
    obs.cancel.cancel();
    sim.stop().await;
}

#[tokio::test]
async fn a_scene_change_missed_while_away_is_published_on_connect() {
    let sim = sim().await;
    let env = Arc::new(Env::default());
    let first = Running::start_with(&sim, env.clone()).await;
    first.cancel.cancel();
    first.ended().await.unwrap();
    assert!(
        env.events("obs.scene.changed").is_empty(),
        "first sight is no change"
    );

    sim.switch_scene("Live").unwrap();
    let second = Running::start_with(&sim, env.clone()).await;
    let changed = env.events("obs.scene.changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["scene"], "Live");
    assert_eq!(changed[0]["previous"], "Starting Soon");
    assert_eq!(changed[0]["on_connect"], true);
    second.cancel.cancel();
    sim.stop().await;
}

#[tokio::test]
async fn handshake_failures_say_what_to_do() {
    let sim = sim().await;
    let env = Arc::new(Env::default());
    let connector = ObsConnector::new();

    let wrong = connector
        .connect(context(&env, settings(&sim), Some("hunter2-not-it")))
        .await
        .err()
        .expect("refused");
    match &wrong {
        ConnectorError::Misconfigured(m) => {
            assert!(m.starts_with("wrong OBS websocket password"), "{m}");
            assert!(!m.contains("hunter2"), "the password is not repeated");
        }
        other => panic!("expected a fatal error, got {other:?}"),
    }

    let none = connector
        .connect(context(&env, settings(&sim), None))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&none, ConnectorError::Misconfigured(m) if m.contains("`password` secret")),
        "{none:?}"
    );

    let port = sim.port();
    sim.stop().await;
    let unreachable = connector
        .connect(context(&env, json!({"port": port}), Some(PASSWORD)))
        .await
        .err()
        .expect("nobody listens");
    assert!(
        matches!(&unreachable, ConnectorError::Unavailable(m) if m.contains(&format!("127.0.0.1:{port}"))),
        "{unreachable:?}"
    );

    let bad_settings = connector
        .connect(context(&env, json!({"hostname": "x"}), None))
        .await
        .err()
        .expect("unknown field");
    assert!(matches!(bad_settings, ConnectorError::Misconfigured(_)));
}

#[tokio::test]
async fn tls_against_a_plain_server_fails_clearly() {
    let sim = sim().await;
    let env = Arc::new(Env::default());
    let mut s = settings(&sim);
    s["tls"] = json!(true);
    let error = ObsConnector::new()
        .connect(context(&env, s, Some(PASSWORD)))
        .await
        .err()
        .expect("no TLS there");
    assert!(
        matches!(&error, ConnectorError::Unavailable(m) if m.contains("tls")),
        "{error:?}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn obs_quitting_ends_the_session_for_a_reconnect() {
    let sim = sim().await;
    let obs = Running::start(&sim).await;
    sim.quit().await;
    match obs.ended().await {
        Err(ConnectorError::Unavailable(m)) => assert_eq!(m, "OBS quit"),
        other => panic!("{other:?}"),
    }
    sim.stop().await;
}

#[tokio::test]
async fn a_crash_mid_request_is_a_transient_error_and_ends_the_session() {
    let sim = sim().await;
    let obs = Running::start(&sim).await;
    sim.inject(Fault::CrashOnRequest {
        request_type: "StartStream".into(),
    });
    let cut = obs.invoke("obs.start_stream", json!({})).await.unwrap_err();
    assert!(cut.is_retryable(), "{cut}");
    assert!(
        cut.to_string().contains("StartStream was sent but"),
        "{cut}"
    );
    // Later calls fail at once instead of waiting.
    let started = std::time::Instant::now();
    let after = obs.invoke("obs.list_scenes", json!({})).await.unwrap_err();
    assert!(after.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(1));
    match obs.ended().await {
        Err(ConnectorError::Unavailable(m)) => assert!(m.contains("lost"), "{m}"),
        other => panic!("{other:?}"),
    }
    sim.stop().await;
}

#[tokio::test]
async fn a_retry_after_an_ambiguous_start_counts_the_running_output_as_done() {
    let sim = sim().await;
    sim.inject(Fault::DropConnection {
        request_type: "StartStream".into(),
        after_executing: true,
        times: 1,
    });
    let first = Running::start(&sim).await;
    let cut = first
        .invoke("obs.start_stream", json!({}))
        .await
        .unwrap_err();
    assert!(cut.is_retryable());
    assert!(first.ended().await.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim.stream_active(), "the first attempt did start it");

    let mut second = Running::start(&sim).await;
    second.attempt = 2;
    assert_eq!(
        second.ok("obs.start_stream", json!({})).await,
        json!({"streaming": true, "already": true})
    );
    second.cancel.cancel();
    sim.stop().await;
}

#[tokio::test]
async fn a_kick_is_fatal_not_a_reconnect_loop() {
    let sim = sim().await;
    let obs = Running::start(&sim).await;
    sim.kick_all();
    match obs.ended().await {
        Err(ConnectorError::Misconfigured(m)) => {
            assert!(m.contains("4011 SessionInvalidated"), "{m}");
            assert!(m.contains("restart the connection"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    sim.stop().await;
}

#[tokio::test]
async fn a_silent_obs_is_degraded_then_dropped() {
    let sim = sim().await;
    let obs = Running::start_with_keepalive(&sim, 200).await;
    sim.freeze(true);
    let env = obs.env.clone();
    match obs.ended().await {
        Err(ConnectorError::Unavailable(m)) => {
            assert!(m.contains("stopped answering"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    let statuses = env.statuses.lock().unwrap().clone();
    assert!(
        statuses
            .iter()
            .any(|(kind, reason)| *kind == StatusKind::Degraded
                && reason.as_deref().is_some_and(|r| r.contains("pings"))),
        "{statuses:?}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_silent_spell_that_ends_reports_connected_again() {
    let sim = sim().await;
    // Degraded after 1 s of silence, dropped after 2 s: thawed in between.
    let obs = Running::start_with_keepalive(&sim, 500).await;
    sim.freeze(true);
    for _ in 0..300 {
        if obs
            .env
            .statuses
            .lock()
            .unwrap()
            .iter()
            .any(|(k, _)| *k == StatusKind::Degraded)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.freeze(false);
    for _ in 0..100 {
        let statuses = obs.env.statuses.lock().unwrap().clone();
        if statuses.last().map(|(k, _)| *k) == Some(StatusKind::Connected) {
            assert!(statuses.iter().any(|(k, _)| *k == StatusKind::Degraded));
            obs.cancel.cancel();
            sim.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "never back to connected: {:?}",
        obs.env.statuses.lock().unwrap()
    );
}
