//! OBS events as switchboard triggers.
//!
//! | OBS event (subscription) | trigger |
//! | --- | --- |
//! | `CurrentProgramSceneChanged` (Scenes) | `obs.scene.changed` |
//! | `StreamStateChanged` (Outputs) | `obs.stream.state` |
//! | `RecordStateChanged` (Outputs) | `obs.record.state` |
//! | `InputMuteStateChanged` (Inputs) | `obs.input.mute` |
//!
//! `ExitStarted` (General) is not published: the client uses it to tell OBS
//! quitting from a lost connection. Events are not replayed by OBS, so on
//! every connect the session compares OBS's program scene with the one it
//! saw last (kept in the connection's durable state) and publishes a change
//! that happened while it was away, marked `on_connect`.

use serde_json::{Value, json};
use switchboard_core::ConnectorError;

use crate::ObsSession;
use crate::protocol::ObsEvent;

/// Durable state key: the program scene as last seen.
const PROGRAM_SCENE_STATE: &str = "program_scene";

/// `OBS_WEBSOCKET_OUTPUT_STARTED` → `started`.
pub(crate) fn output_state(raw: &str) -> &'static str {
    match raw.strip_prefix("OBS_WEBSOCKET_OUTPUT_").unwrap_or(raw) {
        "STARTING" => "starting",
        "STARTED" => "started",
        "STOPPING" => "stopping",
        "STOPPED" => "stopped",
        "RECONNECTING" => "reconnecting",
        "RECONNECTED" => "reconnected",
        "PAUSED" => "paused",
        "RESUMED" => "resumed",
        _ => "unknown",
    }
}

fn text(data: &Value, field: &str) -> Value {
    data.get(field)
        .and_then(Value::as_str)
        .map_or(Value::Null, |s| Value::String(s.to_owned()))
}

/// The trigger an OBS event becomes, if any: `(event_type, payload)`.
pub(crate) fn trigger_of(
    event: &ObsEvent,
    previous_scene: Option<&str>,
) -> Option<(&'static str, Value)> {
    let data = &event.event_data;
    match event.event_type.as_str() {
        "CurrentProgramSceneChanged" => Some((
            "obs.scene.changed",
            json!({
                "scene": text(data, "sceneName"),
                "previous": previous_scene,
                "scene_uuid": text(data, "sceneUuid"),
                "on_connect": false,
            }),
        )),
        "StreamStateChanged" => {
            let raw = data["outputState"].as_str().unwrap_or("");
            Some((
                "obs.stream.state",
                json!({
                    "active": data["outputActive"].as_bool().unwrap_or(false),
                    "state": output_state(raw),
                    "output_state": raw,
                }),
            ))
        }
        "RecordStateChanged" => {
            let raw = data["outputState"].as_str().unwrap_or("");
            Some((
                "obs.record.state",
                json!({
                    "active": data["outputActive"].as_bool().unwrap_or(false),
                    "state": output_state(raw),
                    "output_state": raw,
                    "output_path": text(data, "outputPath"),
                }),
            ))
        }
        "InputMuteStateChanged" => Some((
            "obs.input.mute",
            json!({
                "input": text(data, "inputName"),
                "input_uuid": text(data, "inputUuid"),
                "muted": data["inputMuted"].as_bool().unwrap_or(false),
            }),
        )),
        _ => None,
    }
}

impl ObsSession {
    fn remembered_scene(&self) -> Option<String> {
        self.program_scene
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn remember_scene(&self, scene: Option<String>) {
        *self.program_scene.lock().unwrap_or_else(|p| p.into_inner()) = scene;
    }

    async fn store_scene(&self, scene: &str) {
        if let Err(error) = self
            .ctx
            .env
            .store_state(PROGRAM_SCENE_STATE, Some(Value::String(scene.to_owned())))
            .await
        {
            tracing::warn!(%error, "could not remember OBS's program scene");
        }
    }

    /// Publish one OBS event as a trigger (if it is one we publish).
    pub(crate) async fn publish(&self, event: ObsEvent) {
        let previous = self.remembered_scene();
        let Some((event_type, payload)) = trigger_of(&event, previous.as_deref()) else {
            tracing::trace!(event = %event.event_type, "OBS event not published");
            return;
        };
        if event_type == "obs.scene.changed"
            && let Some(scene) = payload["scene"].as_str()
        {
            self.remember_scene(Some(scene.to_owned()));
            self.store_scene(scene).await;
        }
        self.ctx.env.emit(event_type, payload).await;
    }

    /// Learn the program scene on connect; publish a change missed while
    /// disconnected.
    pub(crate) async fn catch_up(&self) -> Result<(), ConnectorError> {
        let response = self
            .client
            .request(
                "GetCurrentProgramScene",
                None,
                self.settings.request_timeout(),
            )
            .await
            .map_err(|e| ConnectorError::Unavailable(format!("GetCurrentProgramScene: {e}")))?;
        let data = response.response_data.unwrap_or(Value::Null);
        // obs-websocket 5.5 renamed `currentProgramSceneName` to `sceneName`.
        let Some(scene) = data["sceneName"]
            .as_str()
            .or_else(|| data["currentProgramSceneName"].as_str())
            .map(str::to_owned)
        else {
            // Not ready (207 while a scene collection loads): nothing to compare.
            return Ok(());
        };
        let last_seen = match self.ctx.env.load_state(PROGRAM_SCENE_STATE).await {
            Ok(value) => value.and_then(|v| v.as_str().map(str::to_owned)),
            Err(error) => {
                tracing::warn!(%error, "could not read the last seen OBS program scene");
                None
            }
        };
        self.remember_scene(Some(scene.clone()));
        if last_seen.as_deref() != Some(scene.as_str()) {
            self.store_scene(&scene).await;
            if let Some(previous) = last_seen {
                self.ctx
                    .env
                    .emit(
                        "obs.scene.changed",
                        json!({
                            "scene": scene,
                            "previous": previous,
                            "scene_uuid": text(&data, "sceneUuid"),
                            "on_connect": true,
                        }),
                    )
                    .await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, data: Value) -> ObsEvent {
        ObsEvent {
            event_type: event_type.into(),
            event_intent: 0,
            event_data: data,
        }
    }

    #[test]
    fn maps_the_four_triggers() {
        let (kind, payload) = trigger_of(
            &event(
                "CurrentProgramSceneChanged",
                json!({"sceneName": "Live", "sceneUuid": "u-1"}),
            ),
            Some("Intro"),
        )
        .unwrap();
        assert_eq!(kind, "obs.scene.changed");
        assert_eq!(
            payload,
            json!({"scene": "Live", "previous": "Intro", "scene_uuid": "u-1", "on_connect": false})
        );

        let (kind, payload) = trigger_of(
            &event(
                "StreamStateChanged",
                json!({"outputActive": true, "outputState": "OBS_WEBSOCKET_OUTPUT_STARTED"}),
            ),
            None,
        )
        .unwrap();
        assert_eq!(kind, "obs.stream.state");
        assert_eq!(payload["state"], "started");
        assert_eq!(payload["active"], true);

        let (kind, payload) = trigger_of(
            &event(
                "RecordStateChanged",
                json!({"outputActive": false, "outputState": "OBS_WEBSOCKET_OUTPUT_STOPPED", "outputPath": "/rec/a.mkv"}),
            ),
            None,
        )
        .unwrap();
        assert_eq!(kind, "obs.record.state");
        assert_eq!(payload["state"], "stopped");
        assert_eq!(payload["output_path"], "/rec/a.mkv");

        let (kind, payload) = trigger_of(
            &event(
                "InputMuteStateChanged",
                json!({"inputName": "Mic/Aux", "inputMuted": true}),
            ),
            None,
        )
        .unwrap();
        assert_eq!(kind, "obs.input.mute");
        assert_eq!(
            payload,
            json!({"input": "Mic/Aux", "input_uuid": null, "muted": true})
        );

        assert!(trigger_of(&event("SceneNameChanged", json!({})), None).is_none());
    }

    #[test]
    fn output_states_lose_their_prefix() {
        assert_eq!(
            output_state("OBS_WEBSOCKET_OUTPUT_RECONNECTING"),
            "reconnecting"
        );
        assert_eq!(output_state("OBS_WEBSOCKET_OUTPUT_PAUSED"), "paused");
        assert_eq!(output_state("SOMETHING_NEW"), "unknown");
    }
}
