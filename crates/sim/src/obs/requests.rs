//! What the simulated OBS does for each request: the state change, the
//! `requestStatus`, the `responseData` and the events, with obs-websocket's
//! codes and comments (600 "No source was found by the name of `X`.", 500
//! and 501 for outputs already in that state, ...).
//!
//! Outputs take `output_delay` to go from `STARTING` to `STARTED` (and from
//! `STOPPING` to `STOPPED`); the second half runs on a spawned task and is
//! skipped if the output changed meanwhile.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Input, OutputState, Scene, SceneItem, Sim, SimEvent, State, event, spec};

pub(crate) const SUCCESS: u16 = 100;

/// The answer to one request.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub code: u16,
    pub comment: Option<String>,
    pub data: Option<Value>,
}

impl Outcome {
    pub(crate) fn failed(code: u16, comment: impl Into<String>) -> Outcome {
        Outcome {
            code,
            comment: Some(comment.into()),
            data: None,
        }
    }

    /// The `requestStatus` object.
    pub(crate) fn status(&self) -> Value {
        let mut status = json!({ "result": self.code == SUCCESS, "code": self.code });
        if let Some(comment) = &self.comment {
            status["comment"] = Value::String(comment.clone());
        }
        status
    }
}

type Handled = Result<Option<Value>, (u16, String)>;

/// The second half of an output transition.
#[derive(Debug, Clone, Copy)]
enum Step {
    StreamStarted,
    StreamStopped,
    RecordStarted,
    RecordStopped,
}

/// What a handler may touch.
struct Cx<'a> {
    state: &'a mut State,
    events: Vec<SimEvent>,
    later: Vec<Step>,
}

/// Run one request against the simulated OBS (already checked against the
/// protocol document by the caller when it came from a client).
pub(crate) fn execute(sim: &Sim, request_type: &str, data: Option<&Value>) -> Outcome {
    let empty = json!({});
    let data = data.filter(|d| d.is_object()).unwrap_or(&empty);
    let (result, events, later, delay) = {
        let mut state = sim.lock();
        let delay = state.config.output_delay;
        let mut cx = Cx {
            state: &mut state,
            events: Vec::new(),
            later: Vec::new(),
        };
        let result = handle(&mut cx, request_type, data);
        (result, cx.events, cx.later, delay)
    };
    sim.publish(events);
    for step in later {
        let sim = sim.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let events = {
                let mut state = sim.lock();
                apply(&mut state, step)
            };
            sim.publish(events);
        });
    }
    match result {
        Ok(data) => Outcome {
            code: SUCCESS,
            comment: None,
            data,
        },
        // obs-websocket leaves the comment out for some codes (500, 501).
        Err((code, comment)) => Outcome {
            code,
            comment: (!comment.is_empty()).then_some(comment),
            data: None,
        },
    }
}

fn apply(state: &mut State, step: Step) -> Vec<SimEvent> {
    match step {
        Step::StreamStarted if state.stream == OutputState::Starting => {
            state.stream = OutputState::Started;
            vec![output_event("StreamStateChanged", true, "STARTED", None)]
        }
        Step::StreamStopped if state.stream == OutputState::Stopping => {
            state.stream = OutputState::Stopped;
            vec![output_event("StreamStateChanged", false, "STOPPED", None)]
        }
        Step::RecordStarted if state.record == OutputState::Starting => {
            state.record = OutputState::Started;
            let path = state.record_path.clone();
            vec![output_event(
                "RecordStateChanged",
                true,
                "STARTED",
                Some(path),
            )]
        }
        Step::RecordStopped if state.record == OutputState::Stopping => {
            state.record = OutputState::Stopped;
            let path = state.record_path.take();
            vec![output_event(
                "RecordStateChanged",
                false,
                "STOPPED",
                Some(path),
            )]
        }
        _ => Vec::new(),
    }
}

fn output_event(
    event_type: &str,
    active: bool,
    state: &str,
    path: Option<Option<String>>,
) -> SimEvent {
    let mut data = json!({
        "outputActive": active,
        "outputState": format!("OBS_WEBSOCKET_OUTPUT_{state}"),
    });
    if let Some(path) = path {
        data["outputPath"] = path.map_or(Value::Null, Value::String);
    }
    event(event_type, data)
}

fn str_field<'a>(data: &'a Value, name: &str) -> Option<&'a str> {
    data.get(name).and_then(Value::as_str)
}

fn not_found(name: &str) -> (u16, String) {
    (600, format!("No source was found by the name of `{name}`."))
}

fn missing(field: &str) -> (u16, String) {
    (300, format!("Your request is missing the `{field}` field."))
}

fn ms_timecode(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

impl Cx<'_> {
    fn uuids(&self) -> bool {
        self.state.has_uuids()
    }

    /// The scene named by `sceneName` or `sceneUuid`.
    fn scene_index(&self, data: &Value) -> Result<usize, (u16, String)> {
        if let Some(name) = str_field(data, "sceneName") {
            return self
                .state
                .scenes
                .iter()
                .position(|s| s.name == name)
                .ok_or_else(|| not_found(name));
        }
        if self.uuids()
            && let Some(uuid) = str_field(data, "sceneUuid")
        {
            return self
                .state
                .scenes
                .iter()
                .position(|s| s.uuid == uuid)
                .ok_or_else(|| (600, format!("No source was found by the UUID of `{uuid}`.")));
        }
        Err(missing("sceneName"))
    }

    fn input_index(&self, data: &Value) -> Result<usize, (u16, String)> {
        if let Some(name) = str_field(data, "inputName") {
            return self
                .state
                .inputs
                .iter()
                .position(|i| i.name == name)
                .ok_or_else(|| not_found(name));
        }
        if self.uuids()
            && let Some(uuid) = str_field(data, "inputUuid")
        {
            return self
                .state
                .inputs
                .iter()
                .position(|i| i.uuid == uuid)
                .ok_or_else(|| (600, format!("No source was found by the UUID of `{uuid}`.")));
        }
        Err(missing("inputName"))
    }

    fn scene_json(&self, scene: &Scene, index: usize) -> Value {
        let mut value = json!({ "sceneIndex": index, "sceneName": scene.name });
        if self.uuids() {
            value["sceneUuid"] = Value::String(scene.uuid.clone());
        }
        value
    }

    /// OBS lists scenes bottom first, `sceneIndex` 0 at the bottom.
    fn scenes_json(&self) -> Vec<Value> {
        let count = self.state.scenes.len();
        self.state
            .scenes
            .iter()
            .enumerate()
            .rev()
            .map(|(top_index, scene)| self.scene_json(scene, count - 1 - top_index))
            .collect()
    }

    fn item_json(&self, item: &SceneItem, index: usize) -> Value {
        let input = self.state.inputs.iter().find(|i| i.name == item.source);
        let mut value = json!({
            "sceneItemId": item.id,
            "sceneItemIndex": index,
            "sourceName": item.source,
            "sourceType": "OBS_SOURCE_TYPE_INPUT",
            "inputKind": input.map(|i| i.kind.clone()),
            "isGroup": null,
            "sceneItemEnabled": item.enabled,
            "sceneItemLocked": false,
            "sceneItemBlendMode": "OBS_BLEND_NORMAL",
            "sceneItemTransform": {},
        });
        if self.uuids() {
            value["sourceUuid"] = input.map_or(Value::Null, |i| Value::String(i.uuid.clone()));
        }
        value
    }

    fn input_json(&self, input: &Input) -> Value {
        let mut value = json!({
            "inputName": input.name,
            "inputKind": input.kind,
            "unversionedInputKind": input.kind,
        });
        if self.uuids() {
            value["inputUuid"] = Value::String(input.uuid.clone());
        }
        value
    }

    fn emit(&mut self, event_type: &str, data: Value) {
        self.events.push(event(event_type, data));
    }

    fn scene_list_changed(&mut self) {
        let scenes = self.scenes_json();
        self.emit("SceneListChanged", json!({ "scenes": scenes }));
    }

    fn switch_program(&mut self, index: usize) {
        let scene = self.state.scenes[index].clone();
        if self.state.program == scene.name {
            return;
        }
        self.state.program = scene.name.clone();
        let mut data = json!({ "sceneName": scene.name });
        if self.uuids() {
            data["sceneUuid"] = Value::String(scene.uuid);
        }
        self.emit("CurrentProgramSceneChanged", data);
    }

    fn set_mute(&mut self, index: usize, muted: bool) {
        if self.state.inputs[index].muted == muted {
            return;
        }
        self.state.inputs[index].muted = muted;
        let input = self.state.inputs[index].clone();
        let mut data = json!({ "inputName": input.name, "inputMuted": muted });
        if self.uuids() {
            data["inputUuid"] = Value::String(input.uuid);
        }
        self.emit("InputMuteStateChanged", data);
    }

    fn start_stream(&mut self) -> Handled {
        if self.state.stream != OutputState::Stopped {
            return Err((500, String::new()));
        }
        self.state.stream = OutputState::Starting;
        self.events
            .push(output_event("StreamStateChanged", false, "STARTING", None));
        self.later.push(Step::StreamStarted);
        Ok(None)
    }

    fn stop_stream(&mut self) -> Handled {
        if self.state.stream != OutputState::Started {
            return Err((501, String::new()));
        }
        self.state.stream = OutputState::Stopping;
        self.events
            .push(output_event("StreamStateChanged", false, "STOPPING", None));
        self.later.push(Step::StreamStopped);
        Ok(None)
    }

    fn start_record(&mut self) -> Handled {
        if self.state.record != OutputState::Stopped {
            return Err((500, String::new()));
        }
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        self.state.record_path = Some(format!(
            "{}/recording-{secs}.mkv",
            self.state.config.record_directory.trim_end_matches('/')
        ));
        self.state.record = OutputState::Starting;
        self.events.push(output_event(
            "RecordStateChanged",
            false,
            "STARTING",
            Some(None),
        ));
        self.later.push(Step::RecordStarted);
        Ok(None)
    }

    fn stop_record(&mut self) -> Handled {
        if self.state.record != OutputState::Started {
            return Err((501, String::new()));
        }
        self.state.record = OutputState::Stopping;
        self.events.push(output_event(
            "RecordStateChanged",
            false,
            "STOPPING",
            Some(None),
        ));
        self.later.push(Step::RecordStopped);
        Ok(Some(json!({ "outputPath": self.state.record_path })))
    }

    fn uptime_ms(&self) -> u64 {
        self.state.started_at.elapsed().as_millis() as u64
    }
}

fn handle(cx: &mut Cx<'_>, request_type: &str, data: &Value) -> Handled {
    match request_type {
        "GetVersion" => {
            let version = cx.state.config.websocket_version.clone();
            Ok(Some(json!({
                "obsVersion": cx.state.config.obs_version,
                "obsWebSocketVersion": version,
                "rpcVersion": 1,
                "availableRequests": spec::available_requests(&version),
                "supportedImageFormats": ["bmp", "jpeg", "jpg", "png"],
                "platform": "simulated",
                "platformDescription": "switchboard OBS simulator",
            })))
        }
        "GetStats" => {
            let frames = cx.uptime_ms() * 60 / 1000;
            Ok(Some(json!({
                "cpuUsage": 1.5,
                "memoryUsage": 180.0,
                "availableDiskSpace": 100_000.0,
                "activeFps": 60.0,
                "averageFrameRenderTime": 0.8,
                "renderSkippedFrames": 0,
                "renderTotalFrames": frames,
                "outputSkippedFrames": 0,
                "outputTotalFrames": frames,
                "webSocketSessionIncomingMessages": 0,
                "webSocketSessionOutgoingMessages": 0,
            })))
        }
        "BroadcastCustomEvent" => {
            let event_data = data.get("eventData").cloned().unwrap_or(json!({}));
            cx.emit("CustomEvent", json!({ "eventData": event_data }));
            Ok(None)
        }
        "Sleep" => Err((206, "Sleep is only available in request batches.".into())),
        "GetStudioModeEnabled" => Ok(Some(json!({ "studioModeEnabled": false }))),
        "GetSceneList" => {
            let program = cx
                .state
                .scenes
                .iter()
                .find(|s| s.name == cx.state.program)
                .cloned();
            let mut result = json!({
                "currentProgramSceneName": program.as_ref().map(|s| s.name.clone()),
                "currentPreviewSceneName": null,
                "scenes": cx.scenes_json(),
            });
            if cx.uuids() {
                result["currentProgramSceneUuid"] = json!(program.map(|s| s.uuid));
                result["currentPreviewSceneUuid"] = Value::Null;
            }
            Ok(Some(result))
        }
        "GetCurrentProgramScene" => {
            let scene = cx
                .state
                .scenes
                .iter()
                .find(|s| s.name == cx.state.program)
                .cloned();
            let Some(scene) = scene else {
                return Err((207, "The program scene is not set yet.".into()));
            };
            if cx.uuids() {
                Ok(Some(json!({
                    "sceneName": scene.name,
                    "sceneUuid": scene.uuid,
                    "currentProgramSceneName": scene.name,
                    "currentProgramSceneUuid": scene.uuid,
                })))
            } else {
                Ok(Some(json!({ "currentProgramSceneName": scene.name })))
            }
        }
        "SetCurrentProgramScene" => {
            let index = cx.scene_index(data)?;
            cx.switch_program(index);
            Ok(None)
        }
        "GetCurrentPreviewScene" | "SetCurrentPreviewScene" => {
            Err((506, "Studio mode is not active.".into()))
        }
        "CreateScene" => {
            let name = str_field(data, "sceneName").ok_or_else(|| missing("sceneName"))?;
            if cx.state.scenes.iter().any(|s| s.name == name)
                || cx.state.inputs.iter().any(|i| i.name == name)
            {
                return Err((601, "A source already exists by that scene name.".into()));
            }
            let scene = Scene {
                name: name.to_owned(),
                uuid: uuid::Uuid::new_v4().to_string(),
                items: Vec::new(),
            };
            cx.state.scenes.push(scene.clone());
            let mut created = json!({ "sceneName": scene.name, "isGroup": false });
            if cx.uuids() {
                created["sceneUuid"] = Value::String(scene.uuid.clone());
            }
            cx.emit("SceneCreated", created);
            cx.scene_list_changed();
            Ok(cx.uuids().then(|| json!({ "sceneUuid": scene.uuid })))
        }
        "RemoveScene" => {
            let index = cx.scene_index(data)?;
            if cx.state.scenes.len() == 1 {
                return Err((603, "You cannot remove the last scene.".into()));
            }
            let removed = cx.state.scenes.remove(index);
            if cx.state.program == removed.name {
                cx.switch_program(0);
            }
            let mut data = json!({ "sceneName": removed.name, "isGroup": false });
            if cx.uuids() {
                data["sceneUuid"] = Value::String(removed.uuid);
            }
            cx.emit("SceneRemoved", data);
            cx.scene_list_changed();
            Ok(None)
        }
        "GetSceneItemList" => {
            let index = cx.scene_index(data)?;
            let items: Vec<Value> = cx.state.scenes[index]
                .items
                .iter()
                .enumerate()
                .map(|(i, item)| cx.item_json(item, i))
                .collect();
            Ok(Some(json!({ "sceneItems": items })))
        }
        "GetSceneItemId" => {
            let index = cx.scene_index(data)?;
            let source = str_field(data, "sourceName").ok_or_else(|| missing("sourceName"))?;
            let offset = data
                .get("searchOffset")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let matching: Vec<&SceneItem> = cx.state.scenes[index]
                .items
                .iter()
                .filter(|i| i.source == source)
                .collect();
            let found = if offset == -1 {
                matching.last()
            } else {
                matching.get(offset.max(0) as usize)
            };
            match found {
                Some(item) => Ok(Some(json!({ "sceneItemId": item.id }))),
                None => Err((
                    600,
                    "No scene items were found in the specified scene by that name or offset."
                        .into(),
                )),
            }
        }
        "GetSceneItemEnabled" | "SetSceneItemEnabled" => {
            let index = cx.scene_index(data)?;
            let id = data
                .get("sceneItemId")
                .and_then(Value::as_u64)
                .ok_or_else(|| missing("sceneItemId"))?;
            let scene_name = cx.state.scenes[index].name.clone();
            let Some(item) = cx.state.scenes[index].items.iter_mut().find(|i| i.id == id) else {
                return Err((
                    600,
                    format!(
                        "No scene items were found in scene `{scene_name}` with the ID `{id}`."
                    ),
                ));
            };
            if request_type == "GetSceneItemEnabled" {
                return Ok(Some(json!({ "sceneItemEnabled": item.enabled })));
            }
            let enabled = data
                .get("sceneItemEnabled")
                .and_then(Value::as_bool)
                .ok_or_else(|| missing("sceneItemEnabled"))?;
            if item.enabled != enabled {
                item.enabled = enabled;
                let uuid = cx.state.scenes[index].uuid.clone();
                let mut data = json!({
                    "sceneName": scene_name,
                    "sceneItemId": id,
                    "sceneItemEnabled": enabled,
                });
                if cx.uuids() {
                    data["sceneUuid"] = Value::String(uuid);
                }
                cx.emit("SceneItemEnableStateChanged", data);
            }
            Ok(None)
        }
        "GetInputList" => {
            let kind = str_field(data, "inputKind");
            let inputs: Vec<Value> = cx
                .state
                .inputs
                .iter()
                .filter(|i| kind.is_none_or(|k| i.kind == k))
                .map(|i| cx.input_json(i))
                .collect();
            Ok(Some(json!({ "inputs": inputs })))
        }
        "GetInputMute" => {
            let index = cx.input_index(data)?;
            Ok(Some(json!({ "inputMuted": cx.state.inputs[index].muted })))
        }
        "SetInputMute" => {
            let index = cx.input_index(data)?;
            let muted = data
                .get("inputMuted")
                .and_then(Value::as_bool)
                .ok_or_else(|| missing("inputMuted"))?;
            cx.set_mute(index, muted);
            Ok(None)
        }
        "ToggleInputMute" => {
            let index = cx.input_index(data)?;
            let muted = !cx.state.inputs[index].muted;
            cx.set_mute(index, muted);
            Ok(Some(json!({ "inputMuted": muted })))
        }
        "GetStreamStatus" => {
            let active = cx.state.stream.active();
            let ms = if active { cx.uptime_ms() } else { 0 };
            Ok(Some(json!({
                "outputActive": active,
                "outputReconnecting": false,
                "outputTimecode": ms_timecode(ms),
                "outputDuration": ms,
                "outputCongestion": 0.0,
                "outputBytes": ms * 750,
                "outputSkippedFrames": 0,
                "outputTotalFrames": ms * 60 / 1000,
            })))
        }
        "StartStream" => cx.start_stream(),
        "StopStream" => cx.stop_stream(),
        "ToggleStream" => {
            if cx.state.stream.active() {
                cx.stop_stream()?;
                Ok(Some(json!({ "outputActive": false })))
            } else {
                cx.start_stream()?;
                Ok(Some(json!({ "outputActive": true })))
            }
        }
        "GetRecordStatus" => {
            let active = cx.state.record.active();
            let ms = if active { cx.uptime_ms() } else { 0 };
            Ok(Some(json!({
                "outputActive": active,
                "outputPaused": false,
                "outputTimecode": ms_timecode(ms),
                "outputDuration": ms,
                "outputBytes": ms * 500,
            })))
        }
        "StartRecord" => cx.start_record(),
        "StopRecord" => cx.stop_record(),
        "ToggleRecord" => {
            if cx.state.record.active() {
                cx.stop_record()?;
                Ok(Some(json!({ "outputActive": false })))
            } else {
                cx.start_record()?;
                Ok(Some(json!({ "outputActive": true })))
            }
        }
        other => Err((
            702,
            format!("The OBS simulator does not simulate `{other}`."),
        )),
    }
}

/// How long a `Sleep` in a batch waits (`sleepMillis`, capped as OBS caps it).
pub(crate) fn sleep_of(data: Option<&Value>) -> Duration {
    let ms = data
        .and_then(|d| d.get("sleepMillis"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(50_000);
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timecodes_look_like_obs() {
        assert_eq!(ms_timecode(0), "00:00:00.000");
        assert_eq!(ms_timecode(3_723_004), "01:02:03.004");
    }

    #[test]
    fn statuses_carry_comments_only_when_given() {
        let ok = Outcome {
            code: SUCCESS,
            comment: None,
            data: None,
        };
        assert_eq!(ok.status(), json!({"result": true, "code": 100}));
        let failed = Outcome::failed(600, "No source was found by the name of `X`.");
        assert_eq!(
            failed.status(),
            json!({"result": false, "code": 600, "comment": "No source was found by the name of `X`."})
        );
    }
}
