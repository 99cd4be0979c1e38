//! The OBS actions, and how OBS's answers become job outcomes.
//!
//! * A response with `result: true` is the action's result.
//! * `207 NotReady` (OBS is loading a scene collection or exiting) is
//!   transient: the job is retried after a second.
//! * Every other failed status is permanent and the job error names it:
//!   `OBS refused SetCurrentProgramScene: no scene named `Nope` (600
//!   ResourceNotFound: No source was found by the name of `Nope`.)`.
//! * A request that could not be sent, or whose answer never came because
//!   the connection ended, is transient: the job is retried, and while OBS
//!   is away it waits in the queue without spending attempts.
//!
//! Starting an output that is already running (500) or stopping one that is
//! not (501) is an error on a job's first attempt, and success on a retry:
//! the earlier attempt, cut off before OBS answered, did it.

use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::{ActionCall, ActionError};

use crate::ObsSession;
use crate::client::CallError;
use crate::protocol::{BatchItem, RequestResponse, status};

/// Why OBS refused a request, with the request's context.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub request_type: String,
    pub code: u16,
    pub comment: Option<String>,
}

impl Refusal {
    fn detail(&self) -> String {
        match &self.comment {
            Some(comment) if !comment.is_empty() => {
                format!("{} {}: {comment}", self.code, status::name(self.code))
            }
            _ => format!("{} {}", self.code, status::name(self.code)),
        }
    }

    /// The job error, with `what` saying in our words what was wrong.
    pub(crate) fn into_error(self, what: Option<String>) -> ActionError {
        if self.code == status::NOT_READY {
            return ActionError::Transient {
                message: format!(
                    "OBS is not ready for {} ({}); retrying",
                    self.request_type,
                    self.detail()
                ),
                retry_after: Some(std::time::Duration::from_secs(1)),
            };
        }
        let message = match what {
            Some(what) => format!(
                "OBS refused {}: {what} ({})",
                self.request_type,
                self.detail()
            ),
            None => format!("OBS refused {} ({})", self.request_type, self.detail()),
        };
        ActionError::Permanent(message)
    }
}

fn call_error(request_type: &str, error: CallError) -> ActionError {
    let message = match &error {
        CallError::NotConnected(_) => {
            format!("cannot send {request_type}: {error}; the job runs again when OBS is back")
        }
        CallError::CutOff(_) => {
            format!("{request_type} was sent but {error}; the job will be retried")
        }
        CallError::Timeout(_) => format!("{request_type}: {error}; the job will be retried"),
    };
    ActionError::transient(message)
}

fn params<T: for<'de> Deserialize<'de>>(call: &ActionCall) -> Result<T, ActionError> {
    serde_json::from_value(call.params.clone()).map_err(|e| ActionError::InvalidParams {
        field: "params".into(),
        message: e.to_string(),
    })
}

/// The response data of a successful response, or the refusal.
fn answered(response: RequestResponse) -> Result<Value, Refusal> {
    if response.request_status.result {
        Ok(response.response_data.unwrap_or(Value::Null))
    } else {
        Err(Refusal {
            request_type: response.request_type,
            code: response.request_status.code,
            comment: response.request_status.comment,
        })
    }
}

/// Which output a start or stop action is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Output {
    Stream,
    Record,
}

impl Output {
    fn request(self, start: bool) -> &'static str {
        match (self, start) {
            (Output::Stream, true) => "StartStream",
            (Output::Stream, false) => "StopStream",
            (Output::Record, true) => "StartRecord",
            (Output::Record, false) => "StopRecord",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Output::Stream => "streaming",
            Output::Record => "recording",
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Output::Stream => "streaming",
            Output::Record => "recording",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetScene {
    scene: String,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ListScenes {
    include_sources: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSourceVisible {
    scene: String,
    source: String,
    visible: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    request_type: String,
    #[serde(default)]
    request_data: Option<Value>,
}

impl ObsSession {
    /// One request; `Err` for a connection problem, `Ok(Err)` for a refusal.
    async fn send(
        &self,
        request_type: &str,
        data: Option<Value>,
    ) -> Result<Result<Value, Refusal>, ActionError> {
        let response = self
            .client
            .request(request_type, data.as_ref(), self.settings.request_timeout())
            .await
            .map_err(|e| call_error(request_type, e))?;
        Ok(answered(response))
    }

    pub(crate) async fn set_scene(&self, call: &ActionCall) -> Result<Value, ActionError> {
        let p: SetScene = params(call)?;
        self.send(
            "SetCurrentProgramScene",
            Some(json!({"sceneName": p.scene})),
        )
        .await?
        .map_err(|refusal| {
            let what = (refusal.code == status::RESOURCE_NOT_FOUND)
                .then(|| format!("there is no scene named `{}`", p.scene));
            refusal.into_error(what)
        })?;
        Ok(json!({ "scene": p.scene }))
    }

    pub(crate) async fn start_output(
        &self,
        call: &ActionCall,
        output: Output,
    ) -> Result<Value, ActionError> {
        let request = output.request(true);
        match self.send(request, None).await? {
            Ok(_) => Ok(json!({ output.field(): true, "already": false })),
            Err(refusal) if refusal.code == status::OUTPUT_RUNNING => {
                if call.attempt > 1 || call.recovered {
                    Ok(json!({ output.field(): true, "already": true }))
                } else {
                    Err(refusal.into_error(Some(format!("OBS is already {}", output.doing()))))
                }
            }
            Err(refusal) => Err(refusal.into_error(None)),
        }
    }

    pub(crate) async fn stop_output(
        &self,
        call: &ActionCall,
        output: Output,
    ) -> Result<Value, ActionError> {
        let request = output.request(false);
        match self.send(request, None).await? {
            Ok(data) => {
                let mut result = json!({ output.field(): false, "already": false });
                if let Output::Record = output {
                    result["output_path"] = data.get("outputPath").cloned().unwrap_or(Value::Null);
                }
                Ok(result)
            }
            Err(refusal) if refusal.code == status::OUTPUT_NOT_RUNNING => {
                if call.attempt > 1 || call.recovered {
                    let mut result = json!({ output.field(): false, "already": true });
                    if let Output::Record = output {
                        result["output_path"] = Value::Null;
                    }
                    Ok(result)
                } else {
                    Err(refusal.into_error(Some(format!("OBS is not {}", output.doing()))))
                }
            }
            Err(refusal) => Err(refusal.into_error(None)),
        }
    }

    pub(crate) async fn list_scenes(&self, call: &ActionCall) -> Result<Value, ActionError> {
        let p: ListScenes = params(call)?;
        let list = self
            .send("GetSceneList", None)
            .await?
            .map_err(|refusal| refusal.into_error(None))?;
        let mut scenes: Vec<Value> = list["scenes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|scene| {
                json!({
                    "name": scene["sceneName"],
                    "index": scene["sceneIndex"],
                    "uuid": scene.get("sceneUuid").cloned().unwrap_or(Value::Null),
                })
            })
            .collect();
        // OBS numbers scenes from the bottom of its list; show them as the
        // list reads, top first.
        scenes.sort_by_key(|scene| std::cmp::Reverse(scene["index"].as_i64().unwrap_or(0)));
        if p.include_sources && !scenes.is_empty() {
            // One round trip for every scene's items: a serial batch that
            // does not halt, so one odd scene does not hide the others.
            let items: Vec<BatchItem> = scenes
                .iter()
                .map(|scene| BatchItem {
                    request_type: "GetSceneItemList".into(),
                    data: Some(json!({ "sceneName": scene["name"] })),
                })
                .collect();
            let results = self
                .client
                .batch(&items, false, self.settings.request_timeout())
                .await
                .map_err(|e| call_error("RequestBatch", e))?;
            for (scene, response) in scenes.iter_mut().zip(results) {
                let sources = match answered(response) {
                    Ok(data) => data["sceneItems"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|item| {
                            json!({
                                "name": item["sourceName"],
                                "scene_item_id": item["sceneItemId"],
                                "visible": item["sceneItemEnabled"],
                                "kind": item.get("inputKind").cloned().unwrap_or(Value::Null),
                            })
                        })
                        .collect(),
                    Err(refusal) => {
                        tracing::warn!(scene = %scene["name"], code = refusal.code, "OBS would not list a scene's items");
                        Vec::new()
                    }
                };
                scene["sources"] = Value::Array(sources);
            }
        }
        Ok(json!({
            "current_program_scene": list.get("currentProgramSceneName").cloned().unwrap_or(Value::Null),
            "current_preview_scene": list.get("currentPreviewSceneName").cloned().unwrap_or(Value::Null),
            "scenes": scenes,
        }))
    }

    pub(crate) async fn set_source_visible(&self, call: &ActionCall) -> Result<Value, ActionError> {
        let p: SetSourceVisible = params(call)?;
        let found = self
            .send(
                "GetSceneItemId",
                Some(json!({"sceneName": p.scene, "sourceName": p.source})),
            )
            .await?
            .map_err(|refusal| {
                let what = (refusal.code == status::RESOURCE_NOT_FOUND).then(|| {
                    format!(
                        "there is no scene `{}` with a source `{}` in it",
                        p.scene, p.source
                    )
                });
                refusal.into_error(what)
            })?;
        let Some(item_id) = found["sceneItemId"].as_i64() else {
            return Err(ActionError::Permanent(format!(
                "OBS answered GetSceneItemId without a sceneItemId: {found}"
            )));
        };
        self.send(
            "SetSceneItemEnabled",
            Some(json!({"sceneName": p.scene, "sceneItemId": item_id, "sceneItemEnabled": p.visible})),
        )
        .await?
        .map_err(|refusal| refusal.into_error(None))?;
        Ok(json!({
            "scene": p.scene,
            "source": p.source,
            "scene_item_id": item_id,
            "visible": p.visible,
        }))
    }

    /// `GetVersion`: the read-only check of `switchboard connections test`.
    pub(crate) async fn version(&self) -> Result<Value, ActionError> {
        let version = self
            .send("GetVersion", None)
            .await?
            .map_err(|refusal| refusal.into_error(None))?;
        Ok(json!({
            "obs_version": version["obsVersion"],
            "obs_websocket_version": version["obsWebSocketVersion"],
            "platform": version["platformDescription"],
        }))
    }

    pub(crate) async fn raw_request(&self, call: &ActionCall) -> Result<Value, ActionError> {
        let p: RawRequest = params(call)?;
        let data = self
            .send(&p.request_type, p.request_data)
            .await?
            .map_err(|refusal| {
                let what = match refusal.code {
                    204 => Some(format!(
                        "this OBS does not know the request type `{}` (check the name; newer requests need a newer obs-websocket)",
                        refusal.request_type
                    )),
                    300 | 301 | 400..=404 => Some("the request_data does not fit the request".into()),
                    _ => None,
                };
                refusal.into_error(what)
            })?;
        Ok(json!({
            "request_type": p.request_type,
            "response_data": if data.is_null() { Value::Null } else { data },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Closed;

    #[test]
    fn not_found_names_the_code_and_the_scene() {
        let refusal = Refusal {
            request_type: "SetCurrentProgramScene".into(),
            code: 600,
            comment: Some("No source was found by the name of `Nope`.".into()),
        };
        let error = refusal.into_error(Some("there is no scene named `Nope`".into()));
        assert_eq!(error.code(), "rejected");
        assert!(!error.is_retryable());
        assert_eq!(
            error.to_string(),
            "OBS refused SetCurrentProgramScene: there is no scene named `Nope` (600 ResourceNotFound: No source was found by the name of `Nope`.)"
        );
    }

    #[test]
    fn not_ready_is_retried_after_a_second() {
        let refusal = Refusal {
            request_type: "GetSceneList".into(),
            code: 207,
            comment: None,
        };
        match refusal.into_error(None) {
            ActionError::Transient {
                message,
                retry_after,
            } => {
                assert!(message.contains("207 NotReady"), "{message}");
                assert_eq!(retry_after, Some(std::time::Duration::from_secs(1)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connection_problems_are_transient() {
        for error in [
            CallError::NotConnected(Closed::ObsQuit),
            CallError::CutOff(Closed::Lost("reset".into())),
            CallError::Timeout(std::time::Duration::from_secs(10)),
        ] {
            let error = call_error("StartStream", error);
            assert!(error.is_retryable(), "{error}");
            assert!(
                error.to_string().starts_with("StartStream")
                    || error.to_string().contains("StartStream")
            );
        }
    }
}
