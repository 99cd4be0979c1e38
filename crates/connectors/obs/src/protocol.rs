//! The obs-websocket v5 wire words: op codes, close codes, request status
//! codes, event subscription bits, and the JSON shapes of the messages we
//! send and read. Numbers and names follow the protocol document
//! (`obs-websocket-v5.protocol.json`, enums `WebSocketOpCode`,
//! `WebSocketCloseCode`, `RequestStatus`, `EventSubscription`).

use serde::Deserialize;
use serde_json::{Value, json};

/// The subprotocol we ask for; obs-websocket also speaks msgpack.
pub const SUBPROTOCOL: &str = "obswebsocket.json";

/// The only RPC version obs-websocket 5.x speaks.
pub const RPC_VERSION: u64 = 1;

pub mod op {
    pub const HELLO: u64 = 0;
    pub const IDENTIFY: u64 = 1;
    pub const IDENTIFIED: u64 = 2;
    pub const EVENT: u64 = 5;
    pub const REQUEST: u64 = 6;
    pub const REQUEST_RESPONSE: u64 = 7;
    pub const REQUEST_BATCH: u64 = 8;
    pub const REQUEST_BATCH_RESPONSE: u64 = 9;
}

pub mod close {
    pub const AUTHENTICATION_FAILED: u16 = 4009;
    pub const UNSUPPORTED_RPC_VERSION: u16 = 4010;
    pub const SESSION_INVALIDATED: u16 = 4011;

    /// obs-websocket's name for a close code, for messages.
    pub fn name(code: u16) -> &'static str {
        match code {
            1000 => "normal closure",
            1001 => "going away",
            1006 => "abnormal closure",
            4000 => "UnknownReason",
            4002 => "MessageDecodeError",
            4003 => "MissingDataField",
            4004 => "InvalidDataFieldType",
            4005 => "InvalidDataFieldValue",
            4006 => "UnknownOpCode",
            4007 => "NotIdentified",
            4008 => "AlreadyIdentified",
            4009 => "AuthenticationFailed",
            4010 => "UnsupportedRpcVersion",
            4011 => "SessionInvalidated",
            4012 => "UnsupportedFeature",
            _ => "unknown close code",
        }
    }
}

/// `RequestStatus` codes that change what we do.
pub mod status {
    pub const SUCCESS: u16 = 100;
    pub const NOT_READY: u16 = 207;
    pub const OUTPUT_RUNNING: u16 = 500;
    pub const OUTPUT_NOT_RUNNING: u16 = 501;
    pub const RESOURCE_NOT_FOUND: u16 = 600;

    /// obs-websocket's name for a request status code, for job errors.
    pub fn name(code: u16) -> &'static str {
        match code {
            0 => "Unknown",
            10 => "NoError",
            100 => "Success",
            203 => "MissingRequestType",
            204 => "UnknownRequestType",
            205 => "GenericError",
            206 => "UnsupportedRequestBatchExecutionType",
            207 => "NotReady",
            300 => "MissingRequestField",
            301 => "MissingRequestData",
            400 => "InvalidRequestField",
            401 => "InvalidRequestFieldType",
            402 => "RequestFieldOutOfRange",
            403 => "RequestFieldEmpty",
            404 => "TooManyRequestFields",
            500 => "OutputRunning",
            501 => "OutputNotRunning",
            502 => "OutputPaused",
            503 => "OutputNotPaused",
            504 => "OutputDisabled",
            505 => "StudioModeActive",
            506 => "StudioModeNotActive",
            600 => "ResourceNotFound",
            601 => "ResourceAlreadyExists",
            602 => "InvalidResourceType",
            603 => "NotEnoughResources",
            604 => "InvalidResourceState",
            605 => "InvalidInputKind",
            606 => "ResourceNotConfigurable",
            607 => "InvalidFilterKind",
            700 => "ResourceCreationFailed",
            701 => "ResourceActionFailed",
            702 => "RequestProcessingFailed",
            703 => "CannotAct",
            _ => "unknown status",
        }
    }
}

/// `EventSubscription` bits.
pub mod subscription {
    pub const GENERAL: u64 = 1 << 0;
    pub const SCENES: u64 = 1 << 2;
    pub const INPUTS: u64 = 1 << 3;
    pub const OUTPUTS: u64 = 1 << 6;

    /// What the triggers need: `ExitStarted` (General), program scene
    /// changes (Scenes), mute changes (Inputs), stream and record state
    /// (Outputs). Nothing high-volume.
    pub const WANTED: u64 = GENERAL | SCENES | INPUTS | OUTPUTS;
}

/// Op 0 `Hello`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    pub obs_web_socket_version: Option<String>,
    pub rpc_version: u64,
    pub authentication: Option<AuthChallenge>,
}

#[derive(Debug, Deserialize)]
pub struct AuthChallenge {
    pub challenge: String,
    pub salt: String,
}

/// The `requestStatus` of a response.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RequestStatus {
    pub result: bool,
    pub code: u16,
    #[serde(default)]
    pub comment: Option<String>,
}

/// One answered request (op 7, or one entry of op 9's `results`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestResponse {
    pub request_type: String,
    #[serde(default)]
    pub request_id: Option<String>,
    pub request_status: RequestStatus,
    #[serde(default)]
    pub response_data: Option<Value>,
}

/// Op 9 `RequestBatchResponse`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestBatchResponse {
    pub request_id: String,
    pub results: Vec<RequestResponse>,
}

/// Op 5 `Event`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObsEvent {
    pub event_type: String,
    #[serde(default)]
    pub event_intent: u64,
    #[serde(default)]
    pub event_data: Value,
}

/// Any server message: `{"op": n, "d": {...}}`.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub op: u64,
    pub d: Value,
}

pub fn identify(authentication: Option<String>, event_subscriptions: u64) -> String {
    let mut d = json!({
        "rpcVersion": RPC_VERSION,
        "eventSubscriptions": event_subscriptions,
    });
    if let Some(auth) = authentication {
        d["authentication"] = Value::String(auth);
    }
    json!({ "op": op::IDENTIFY, "d": d }).to_string()
}

pub fn request(request_type: &str, request_id: &str, data: Option<&Value>) -> String {
    let mut d = json!({ "requestType": request_type, "requestId": request_id });
    if let Some(data) = data {
        d["requestData"] = data.clone();
    }
    json!({ "op": op::REQUEST, "d": d }).to_string()
}

/// One request of a batch.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub request_type: String,
    pub data: Option<Value>,
}

/// Op 8 `RequestBatch`, serial and in real time (`executionType` 0).
pub fn request_batch(request_id: &str, halt_on_failure: bool, items: &[BatchItem]) -> String {
    let requests: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut r = json!({ "requestType": item.request_type });
            if let Some(data) = &item.data {
                r["requestData"] = data.clone();
            }
            r
        })
        .collect();
    json!({
        "op": op::REQUEST_BATCH,
        "d": {
            "requestId": request_id,
            "haltOnFailure": halt_on_failure,
            "executionType": 0,
            "requests": requests,
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_protocol_shape() {
        let with: Value = serde_json::from_str(&identify(Some("abc".into()), 205)).unwrap();
        assert_eq!(
            with,
            json!({"op": 1, "d": {"rpcVersion": 1, "authentication": "abc", "eventSubscriptions": 205}})
        );
        let without: Value = serde_json::from_str(&identify(None, 0)).unwrap();
        assert!(without["d"].get("authentication").is_none());

        let single: Value = serde_json::from_str(&request(
            "SetCurrentProgramScene",
            "7",
            Some(&json!({"sceneName": "Live"})),
        ))
        .unwrap();
        assert_eq!(
            single,
            json!({"op": 6, "d": {"requestType": "SetCurrentProgramScene", "requestId": "7", "requestData": {"sceneName": "Live"}}})
        );

        let batch: Value = serde_json::from_str(&request_batch(
            "b1",
            false,
            &[
                BatchItem {
                    request_type: "GetSceneList".into(),
                    data: None,
                },
                BatchItem {
                    request_type: "GetSceneItemList".into(),
                    data: Some(json!({"sceneName": "A"})),
                },
            ],
        ))
        .unwrap();
        assert_eq!(batch["op"], 8);
        assert_eq!(batch["d"]["executionType"], 0);
        assert_eq!(batch["d"]["requests"][1]["requestData"]["sceneName"], "A");
        assert!(batch["d"]["requests"][0].get("requestData").is_none());
    }

    #[test]
    fn subscriptions_are_the_documented_bits() {
        assert_eq!(subscription::WANTED, 1 | 4 | 8 | 64);
    }

    #[test]
    fn reads_a_failed_response() {
        let response: RequestResponse = serde_json::from_value(json!({
            "requestType": "SetCurrentProgramScene",
            "requestId": "3",
            "requestStatus": {"result": false, "code": 600, "comment": "No source was found by the name of `Nope`."}
        }))
        .unwrap();
        assert_eq!(response.request_status.code, status::RESOURCE_NOT_FOUND);
        assert_eq!(
            status::name(response.request_status.code),
            "ResourceNotFound"
        );
        assert!(response.response_data.is_none());
    }
}
