//! Global hotkeys on a real X server: Xvfb, with key presses sent by
//! xdotool. Built only with `--features hotkeys` on Linux; needs `Xvfb` and
//! `xdotool` (Debian: `apt-get install xvfb xdotool`; `./test` runs
//! this test when both are there).
#![cfg(all(feature = "hotkeys", target_os = "linux"))]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard_connector_system::SystemConnector;
use switchboard_core::{Connector, MediaInfo, RuntimeContext, RuntimeEnv, Secrets, StatusKind};
use tokio_util::sync::CancellationToken;

/// Records what a session emits and reports.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(String, Value)>>,
    statuses: Mutex<Vec<(StatusKind, Option<String>)>>,
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
    async fn load_state(&self, _: &str) -> Result<Option<Value>, String> {
        Ok(None)
    }
    async fn store_state(&self, _: &str, _: Option<Value>) -> Result<(), String> {
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

struct Xvfb(Child);

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_xvfb(display: &str) -> Xvfb {
    // Owned by the guard at once, so it is killed and waited for however
    // this test ends.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pressed_hotkey_becomes_an_event() {
    let display = format!(":{}", 90 + std::process::id() % 500);
    let _xvfb = start_xvfb(&display);
    // SAFETY: this test binary has this one test; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("DISPLAY", &display) };

    let recorder = Arc::new(Recorder::default());
    let cancel = CancellationToken::new();
    let connector = SystemConnector::new();
    let session = connector
        .connect(RuntimeContext {
            connection_id: "c1".into(),
            settings: json!({"hotkeys": [{"name": "scene", "keys": "ctrl+shift+F9"}]}),
            secrets: Secrets::new(),
            env: recorder.clone(),
            cancel: cancel.clone(),
        })
        .await
        .unwrap();
    let run = tokio::spawn({
        let (session, cancel) = (session.clone(), cancel.clone());
        async move { session.run(cancel).await }
    });

    let mut seen = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status = Command::new("xdotool")
            .args(["key", "ctrl+shift+F9"])
            .env("DISPLAY", &display)
            .status()
            .expect("xdotool is needed for the hotkey test");
        assert!(status.success());
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !recorder.events.lock().unwrap().is_empty() {
            seen = true;
            break;
        }
    }
    assert!(
        seen,
        "no hotkey.pressed; statuses: {:?}",
        recorder.statuses.lock().unwrap()
    );
    let events = recorder.events.lock().unwrap().clone();
    assert_eq!(events[0].0, "hotkey.pressed");
    assert_eq!(
        events[0].1,
        json!({"hotkey": "scene", "keys": "ctrl+shift+F9"})
    );
    cancel.cancel();
    run.await.unwrap().unwrap();
}
