//! `system.hotkey_register` / `system.hotkey_unregister` on a real X server
//! (Xvfb, key presses sent by xdotool): a registered hotkey fires
//! `hotkey.pressed` like a configured one, survives a restart of the
//! session through the connection's durable state, and stops firing once
//! unregistered. Built only with `--features hotkeys` on Linux; needs
//! `Xvfb` and `xdotool` (Debian: `apt-get install xvfb xdotool`).
#![cfg(all(feature = "hotkeys", target_os = "linux"))]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard_connector_system::SystemConnector;
use switchboard_core::{
    ActionCall, ActionError, Connector, MediaInfo, RuntimeContext, RuntimeEnv, Secrets, Session,
    StatusKind,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Records what sessions emit and keeps their durable state, as the
/// daemon's store would across restarts.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(String, Value)>>,
    statuses: Mutex<Vec<(StatusKind, Option<String>)>>,
    state: Mutex<HashMap<String, Value>>,
}

impl Recorder {
    fn presses(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(kind, _)| kind == "hotkey.pressed")
            .map(|(_, payload)| payload.clone())
            .collect()
    }
}

#[async_trait]
impl RuntimeEnv for Recorder {
    async fn emit(&self, event_type: &str, payload: Value) {
        self.events
            .lock()
            .unwrap()
            .push((event_type.to_owned(), payload));
    }
    async fn report_status(&self, kind: StatusKind, reason: Option<String>) {
        self.statuses.lock().unwrap().push((kind, reason));
    }
    async fn load_secrets(&self) -> Result<Secrets, String> {
        Ok(Secrets::new())
    }
    async fn store_secrets(&self, _: Vec<(String, Option<SecretString>)>) -> Result<(), String> {
        Ok(())
    }
    async fn lock(&self, _: &str) -> Result<Box<dyn Send>, String> {
        Ok(Box::new(()))
    }
    async fn load_state(&self, key: &str) -> Result<Option<Value>, String> {
        Ok(self.state.lock().unwrap().get(key).cloned())
    }
    async fn store_state(&self, key: &str, value: Option<Value>) -> Result<(), String> {
        let mut state = self.state.lock().unwrap();
        match value {
            Some(value) => state.insert(key.to_owned(), value),
            None => state.remove(key),
        };
        Ok(())
    }
    async fn media(&self, id: &str) -> Result<MediaInfo, String> {
        Err(format!("no media {id}"))
    }
    async fn archive(&self, _: &str, _: &str, _: i64, _: Value) -> Result<bool, String> {
        Err("this test environment keeps no archive".into())
    }
}

struct Xvfb(Child);

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_xvfb(display: &str) -> Xvfb {
    let xvfb = Xvfb(
        Command::new("Xvfb")
            .args([display, "-screen", "0", "640x480x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is needed for the hotkey test (apt-get install xvfb xdotool)"),
    );
    let socket = format!("/tmp/.X11-unix/X{}", display.trim_start_matches(':'));
    for _ in 0..100 {
        if std::path::Path::new(&socket).exists() {
            return xvfb;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("Xvfb did not start on {display}");
}

fn press(display: &str, keys: &str) {
    let status = Command::new("xdotool")
        .args(["key", keys])
        .env("DISPLAY", display)
        .status()
        .expect("xdotool is needed for the hotkey test");
    assert!(status.success());
}

/// Press `keys` until a `hotkey.pressed` beyond the first `seen` arrives;
/// returns it.
async fn press_until_event(display: &str, keys: &str, recorder: &Recorder, seen: usize) -> Value {
    for _ in 0..50 {
        press(display, keys);
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(event) = recorder.presses().get(seen) {
            return event.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no hotkey.pressed for {keys}; statuses: {:?}",
        recorder.statuses.lock().unwrap()
    );
}

struct Running {
    session: Arc<dyn Session>,
    cancel: CancellationToken,
    run: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        self.run.await.unwrap();
        drop(self.session);
    }
}

async fn start(recorder: &Arc<Recorder>, settings: Value) -> Running {
    let cancel = CancellationToken::new();
    let session = SystemConnector::new()
        .connect(RuntimeContext {
            connection_id: "c1".into(),
            settings,
            secrets: Secrets::new(),
            env: recorder.clone(),
            cancel: cancel.clone(),
        })
        .await
        .unwrap();
    let run = tokio::spawn({
        let (session, cancel) = (session.clone(), cancel.clone());
        async move { session.run(cancel).await.unwrap() }
    });
    Running {
        session,
        cancel,
        run,
    }
}

async fn invoke(
    session: &Arc<dyn Session>,
    action: &str,
    params: Value,
) -> Result<Value, ActionError> {
    session
        .invoke(ActionCall {
            job_id: "job".into(),
            action: action.into(),
            params,
            attempt: 1,
            recovered: false,
            idempotency_key: None,
            created_at: 0,
        })
        .await
}

fn invalid_field(result: Result<Value, ActionError>) -> String {
    match result {
        Err(ActionError::InvalidParams { field, .. }) => field,
        other => panic!("expected invalid params, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_hotkeys_fire_survive_a_restart_and_can_be_released() {
    let display = format!(":{}", 600 + std::process::id() % 300);
    let _xvfb = start_xvfb(&display);
    // SAFETY: this test binary has this one test; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("DISPLAY", &display) };

    let recorder = Arc::new(Recorder::default());
    let settings = json!({"hotkeys": [{"name": "scene", "keys": "ctrl+shift+F9"}]});
    let running = start(&recorder, settings.clone()).await;

    // Bad input names the parameter at fault.
    let clash = invoke(
        &running.session,
        "system.hotkey_register",
        json!({"name": "scene", "keys": "ctrl+F1"}),
    )
    .await;
    assert_eq!(invalid_field(clash), "name");
    let bad_keys = invoke(
        &running.session,
        "system.hotkey_register",
        json!({"name": "brb", "keys": "ctrl+banana"}),
    )
    .await;
    assert_eq!(invalid_field(bad_keys), "keys");

    // Registered at run time, pressed like a configured one.
    let registered = invoke(
        &running.session,
        "system.hotkey_register",
        json!({"name": "brb", "keys": "ctrl+shift+F10"}),
    )
    .await
    .unwrap();
    assert_eq!(
        registered,
        json!({"hotkey": "brb", "keys": "ctrl+shift+F10", "registered": true})
    );
    let event = press_until_event(&display, "ctrl+shift+F10", &recorder, 0).await;
    assert_eq!(event, json!({"hotkey": "brb", "keys": "ctrl+shift+F10"}));
    let seen = recorder.presses().len();
    let event = press_until_event(&display, "ctrl+shift+F9", &recorder, seen).await;
    assert_eq!(event, json!({"hotkey": "scene", "keys": "ctrl+shift+F9"}));

    // The session restarts (settings change, daemon restart): the hotkey
    // an action registered is grabbed again from the durable state.
    running.stop().await;
    assert_eq!(
        recorder.state.lock().unwrap()["runtime_hotkeys"],
        json!([{"hotkey": "brb", "keys": "ctrl+shift+F10"}])
    );
    let running = start(&recorder, settings).await;
    let seen = recorder.presses().len();
    let event = press_until_event(&display, "ctrl+shift+F10", &recorder, seen).await;
    assert_eq!(event["hotkey"], "brb");

    // Unregistered: it no longer fires. X delivers presses in order, so
    // once the later `scene` press arrives, a `brb` press would have too.
    let removed = invoke(
        &running.session,
        "system.hotkey_unregister",
        json!({"name": "brb"}),
    )
    .await
    .unwrap();
    assert_eq!(removed, json!({"hotkey": "brb", "removed": true}));
    let seen = recorder.presses().len();
    press(&display, "ctrl+shift+F10");
    let event = press_until_event(&display, "ctrl+shift+F9", &recorder, seen).await;
    assert_eq!(event["hotkey"], "scene", "{:?}", recorder.presses());
    assert_eq!(recorder.state.lock().unwrap()["runtime_hotkeys"], json!([]));
    let again = invoke(
        &running.session,
        "system.hotkey_unregister",
        json!({"name": "brb"}),
    )
    .await
    .unwrap();
    assert_eq!(again, json!({"hotkey": "brb", "removed": false}));
    running.stop().await;
}
