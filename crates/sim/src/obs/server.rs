//! The websocket front: accepting connections, the handshake, op codes,
//! close codes, requests and batches, event delivery, and the lifecycle
//! commands (kick, quit, crash, freeze).
//!
//! One task per connection runs a loop over three inputs: the client's
//! frames (not read while frozen, so pings go unanswered too), the event
//! broadcast (delivered once identified, filtered by the client's
//! subscriptions) and lifecycle commands.

use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::requests::{self, Outcome};
use super::{
    Control, Fault, Identification, RecordedRequest, SUBSCRIBE_ALL, Sim, random_base64, spec,
};

const SUBPROTOCOL_JSON: &str = "obswebsocket.json";

pub(crate) mod op {
    pub const HELLO: u64 = 0;
    pub const IDENTIFY: u64 = 1;
    pub const IDENTIFIED: u64 = 2;
    pub const REIDENTIFY: u64 = 3;
    pub const EVENT: u64 = 5;
    pub const REQUEST: u64 = 6;
    pub const REQUEST_RESPONSE: u64 = 7;
    pub const REQUEST_BATCH: u64 = 8;
    pub const REQUEST_BATCH_RESPONSE: u64 = 9;
}

pub(crate) mod close {
    pub const MESSAGE_DECODE_ERROR: u16 = 4002;
    pub const MISSING_DATA_FIELD: u16 = 4003;
    pub const INVALID_DATA_FIELD_TYPE: u16 = 4004;
    pub const INVALID_DATA_FIELD_VALUE: u16 = 4005;
    pub const UNKNOWN_OP_CODE: u16 = 4006;
    pub const NOT_IDENTIFIED: u16 = 4007;
    pub const ALREADY_IDENTIFIED: u16 = 4008;
    pub const AUTHENTICATION_FAILED: u16 = 4009;
    pub const UNSUPPORTED_RPC_VERSION: u16 = 4010;
    pub const SESSION_INVALIDATED: u16 = 4011;
    pub const GOING_AWAY: u16 = 1001;
}

pub(crate) async fn accept_loop(sim: Sim, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                let id = sim.inner.next_connection.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(sim.clone(), tcp, id));
            }
            Err(error) => {
                tracing::warn!(%error, "obs simulator: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Counts open connections for `ObsSim::open_connections` and `shut`.
struct OpenGuard(Sim);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.inner.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts identified clients.
struct IdentifiedGuard(Sim);

impl Drop for IdentifiedGuard {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.identified_clients = state.identified_clients.saturating_sub(1);
    }
}

/// Pick `obswebsocket.json` when offered; refuse a client that offers only
/// other subprotocols (this simulator does not speak msgpack).
#[allow(clippy::result_large_err)]
fn negotiate(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offered: Vec<String> = request
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.iter().any(|p| p == SUBPROTOCOL_JSON) {
        response.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL_JSON),
        );
        Ok(response)
    } else if offered.is_empty() {
        // obs-websocket falls back to JSON when no subprotocol is asked for.
        Ok(response)
    } else {
        let mut refusal = ErrorResponse::new(Some(
            "the OBS simulator speaks obswebsocket.json only".into(),
        ));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        Err(refusal)
    }
}

/// What the connection loop does after a message.
enum Next {
    Continue,
    Close(u16, String),
    /// Drop the socket without a close frame.
    Drop,
}

struct Conn {
    sim: Sim,
    id: u64,
    challenge: String,
    identified: Option<IdentifiedGuard>,
    subscriptions: u64,
}

type Socket = WebSocketStream<TcpStream>;

async fn send_json(ws: &mut Socket, op: u64, d: Value) -> bool {
    ws.send(Message::text(json!({ "op": op, "d": d }).to_string()))
        .await
        .is_ok()
}

async fn close_with(ws: &mut Socket, code: u16, reason: String) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = ws.close(Some(frame)).await;
    // Let the client's close reply arrive so the close is clean.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

async fn serve_connection(sim: Sim, tcp: TcpStream, id: u64) {
    sim.inner.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(sim.clone());
    let mut control = sim.inner.control.subscribe();
    let mut events = sim.inner.events.subscribe();
    let mut frozen = sim.inner.frozen.subscribe();
    let mut ws = match tokio_tungstenite::accept_hdr_async(tcp, negotiate).await {
        Ok(ws) => ws,
        Err(error) => {
            tracing::debug!(%error, "obs simulator: websocket handshake failed");
            return;
        }
    };
    let (version, auth_required) = {
        let state = sim.lock();
        (
            state.config.websocket_version.clone(),
            state.config.password.is_some(),
        )
    };
    let mut conn = Conn {
        sim: sim.clone(),
        id,
        challenge: random_base64(32),
        identified: None,
        subscriptions: 0,
    };
    let mut hello = json!({ "obsWebSocketVersion": version, "rpcVersion": 1 });
    if auth_required {
        hello["authentication"] = json!({ "challenge": conn.challenge, "salt": sim.inner.salt });
    }
    if !send_json(&mut ws, op::HELLO, hello).await {
        return;
    }
    loop {
        let is_frozen = *frozen.borrow_and_update();
        let next = tokio::select! {
            command = control.recv() => match command {
                Ok(Control::Close { code, reason }) => Next::Close(code, reason),
                Ok(Control::Quit) => {
                    if conn.identified.is_some() && conn.subscriptions & 1 != 0 {
                        let _ = send_json(
                            &mut ws,
                            op::EVENT,
                            json!({ "eventType": "ExitStarted", "eventIntent": 1, "eventData": {} }),
                        )
                        .await;
                    }
                    Next::Close(close::GOING_AWAY, "Server stopping.".into())
                }
                Ok(Control::Crash) | Err(RecvError::Closed) => Next::Drop,
                Err(RecvError::Lagged(_)) => Next::Continue,
            },
            _ = frozen.changed() => Next::Continue,
            frame = ws.next(), if !is_frozen => match frame {
                None | Some(Err(_)) => Next::Drop,
                Some(Ok(Message::Text(text))) => conn.on_text(&mut ws, text.as_str()).await,
                Some(Ok(Message::Binary(_))) => Next::Close(
                    close::MESSAGE_DECODE_ERROR,
                    "Binary (msgpack) messages are not accepted on a JSON session.".into(),
                ),
                Some(Ok(Message::Close(_))) => Next::Drop,
                Some(Ok(_)) => Next::Continue,
            },
            event = events.recv(), if conn.identified.is_some() && !is_frozen => match event {
                Ok(event) => {
                    if conn.subscriptions & event.bit != 0 {
                        let sent = send_json(
                            &mut ws,
                            op::EVENT,
                            json!({ "eventType": event.event_type, "eventIntent": event.bit, "eventData": event.data }),
                        )
                        .await;
                        if !sent {
                            Next::Drop
                        } else {
                            Next::Continue
                        }
                    } else {
                        Next::Continue
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "obs simulator: a client fell behind on events");
                    Next::Continue
                }
                Err(RecvError::Closed) => Next::Drop,
            },
        };
        match next {
            Next::Continue => {}
            Next::Close(code, reason) => {
                close_with(&mut ws, code, reason).await;
                return;
            }
            Next::Drop => return,
        }
    }
}

fn field_u64(d: &Value, name: &str) -> Result<Option<u64>, (u16, String)> {
    match d.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            (
                close::INVALID_DATA_FIELD_TYPE,
                format!("Your `{name}` is not a number."),
            )
        }),
    }
}

/// The authentication string a client must send for this challenge.
fn expected_authentication(password: &str, salt: &str, challenge: &str) -> String {
    let secret = STANDARD.encode(Sha256::digest(format!("{password}{salt}").as_bytes()));
    STANDARD.encode(Sha256::digest(format!("{secret}{challenge}").as_bytes()))
}

impl Conn {
    async fn on_text(&mut self, ws: &mut Socket, text: &str) -> Next {
        let message: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(_) => {
                return Next::Close(
                    close::MESSAGE_DECODE_ERROR,
                    "Unable to decode your message.".into(),
                );
            }
        };
        let Some(op) = message.get("op").and_then(Value::as_u64) else {
            return Next::Close(
                close::MISSING_DATA_FIELD,
                "Your request is missing an `op`.".into(),
            );
        };
        let Some(d) = message.get("d").filter(|d| d.is_object()) else {
            return Next::Close(
                close::MISSING_DATA_FIELD,
                "Your request is missing a `d` object.".into(),
            );
        };
        if self.identified.is_none() && op != op::IDENTIFY {
            return Next::Close(
                close::NOT_IDENTIFIED,
                "You attempted to send a non-Identify message while not identified.".into(),
            );
        }
        match op {
            op::IDENTIFY if self.identified.is_some() => Next::Close(
                close::ALREADY_IDENTIFIED,
                "You are already Identified with the obs-websocket server.".into(),
            ),
            op::IDENTIFY => self.identify(ws, d).await,
            op::REIDENTIFY => match field_u64(d, "eventSubscriptions") {
                Ok(subscriptions) => {
                    if let Some(subscriptions) = subscriptions {
                        self.subscriptions = subscriptions;
                    }
                    if send_json(ws, op::IDENTIFIED, json!({ "negotiatedRpcVersion": 1 })).await {
                        Next::Continue
                    } else {
                        Next::Drop
                    }
                }
                Err((code, reason)) => Next::Close(code, reason),
            },
            op::REQUEST => self.request(ws, d).await,
            op::REQUEST_BATCH => self.batch(ws, d).await,
            _ => Next::Close(close::UNKNOWN_OP_CODE, format!("Unknown OpCode: {op}")),
        }
    }

    async fn identify(&mut self, ws: &mut Socket, d: &Value) -> Next {
        let rpc_version = match field_u64(d, "rpcVersion") {
            Ok(Some(v)) => v,
            Ok(None) => {
                return Next::Close(
                    close::MISSING_DATA_FIELD,
                    "Your payload's data is missing an `rpcVersion`.".into(),
                );
            }
            Err((code, reason)) => return Next::Close(code, reason),
        };
        if rpc_version != 1 {
            return Next::Close(
                close::UNSUPPORTED_RPC_VERSION,
                "Requested RPC version is not supported.".into(),
            );
        }
        let subscriptions = match field_u64(d, "eventSubscriptions") {
            Ok(s) => s,
            Err((code, reason)) => return Next::Close(code, reason),
        };
        let password = self.sim.lock().config.password.clone();
        let authenticated = match password {
            None => false,
            Some(password) => {
                let Some(given) = d.get("authentication").and_then(Value::as_str) else {
                    return Next::Close(
                        close::AUTHENTICATION_FAILED,
                        "Your payload's data is missing an `authentication` string, however authentication is required."
                            .into(),
                    );
                };
                let expected =
                    expected_authentication(&password, &self.sim.inner.salt, &self.challenge);
                if given != expected {
                    return Next::Close(
                        close::AUTHENTICATION_FAILED,
                        "Authentication failed.".into(),
                    );
                }
                true
            }
        };
        self.subscriptions = subscriptions.unwrap_or(SUBSCRIBE_ALL);
        {
            let mut state = self.sim.lock();
            state.identified_clients += 1;
            state.identifications.push(Identification {
                connection: self.id,
                rpc_version,
                event_subscriptions: subscriptions,
                authenticated,
            });
        }
        self.identified = Some(IdentifiedGuard(self.sim.clone()));
        if send_json(ws, op::IDENTIFIED, json!({ "negotiatedRpcVersion": 1 })).await {
            Next::Continue
        } else {
            Next::Drop
        }
    }

    fn record(&self, request_type: &str, data: Option<&Value>, in_batch: bool) -> usize {
        let mut state = self.sim.lock();
        state.requests.push(RecordedRequest {
            connection: self.id,
            request_type: request_type.to_owned(),
            request_data: data.cloned(),
            in_batch,
            status: None,
        });
        state.requests.len() - 1
    }

    fn record_status(&self, index: usize, code: u16) {
        if let Some(entry) = self.sim.lock().requests.get_mut(index) {
            entry.status = Some(code);
        }
    }

    /// Check, apply faults, execute. `Err` when the connection must go
    /// (a drop or crash fault): `Some(outcome)` of a request that took effect.
    async fn run_one(
        &self,
        request_type: &str,
        data: Option<&Value>,
        in_batch: bool,
    ) -> Result<Outcome, ()> {
        let index = self.record(request_type, data, in_batch);
        let version = self.sim.lock().config.websocket_version.clone();
        if let Err(violation) = spec::check_request_against_spec(request_type, data, &version) {
            self.record_status(index, violation.code);
            return Ok(Outcome::failed(violation.code, violation.comment));
        }
        let fault = self.sim.lock().take_fault(request_type);
        let outcome = match fault {
            Some(Fault::Status { code, comment, .. }) => Outcome {
                code,
                comment,
                data: None,
            },
            Some(Fault::Delay { delay, .. }) => {
                tokio::time::sleep(delay).await;
                requests::execute(&self.sim, request_type, data)
            }
            Some(Fault::DropConnection {
                after_executing, ..
            }) => {
                if after_executing {
                    requests::execute(&self.sim, request_type, data);
                }
                tracing::debug!(
                    request_type,
                    "obs simulator: dropping the connection (injected)"
                );
                return Err(());
            }
            Some(Fault::CrashOnRequest { .. }) => {
                tracing::debug!(request_type, "obs simulator: crashing (injected)");
                let sim = self.sim.clone();
                tokio::spawn(async move { sim.shut(Control::Crash).await });
                return Err(());
            }
            None => requests::execute(&self.sim, request_type, data),
        };
        self.record_status(index, outcome.code);
        Ok(outcome)
    }

    async fn request(&mut self, ws: &mut Socket, d: &Value) -> Next {
        let Some(request_type) = d.get("requestType").and_then(Value::as_str) else {
            return Next::Close(
                close::MISSING_DATA_FIELD,
                "Your request's data is missing a `requestType`.".into(),
            );
        };
        let Some(request_id) = d.get("requestId").and_then(Value::as_str) else {
            return Next::Close(
                close::MISSING_DATA_FIELD,
                "Your request's data is missing a `requestId`.".into(),
            );
        };
        let data = d.get("requestData");
        let Ok(outcome) = self.run_one(request_type, data, false).await else {
            return Next::Drop;
        };
        let mut response = json!({
            "requestType": request_type,
            "requestId": request_id,
            "requestStatus": outcome.status(),
        });
        if let Some(data) = outcome.data {
            response["responseData"] = data;
        }
        if send_json(ws, op::REQUEST_RESPONSE, response).await {
            Next::Continue
        } else {
            Next::Drop
        }
    }

    async fn batch(&mut self, ws: &mut Socket, d: &Value) -> Next {
        let Some(request_id) = d.get("requestId").and_then(Value::as_str) else {
            return Next::Close(
                close::MISSING_DATA_FIELD,
                "Your request batch's data is missing a `requestId`.".into(),
            );
        };
        let Some(requests) = d.get("requests").and_then(Value::as_array) else {
            return Next::Close(
                close::MISSING_DATA_FIELD,
                "Your request batch's data is missing a `requests` array.".into(),
            );
        };
        let halt_on_failure = d
            .get("haltOnFailure")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let execution_type = d.get("executionType").and_then(Value::as_i64).unwrap_or(0);
        let mut results = Vec::new();
        if !(0..=2).contains(&execution_type) {
            return Next::Close(
                close::INVALID_DATA_FIELD_VALUE,
                "Your `executionType` has an invalid value.".into(),
            );
        }
        for request in requests {
            let request_type = request
                .get("requestType")
                .and_then(Value::as_str)
                .unwrap_or("");
            let data = request.get("requestData");
            let outcome = if request_type.is_empty() {
                Outcome::failed(203, "Your request is missing a `requestType`")
            } else if request_type == "Sleep" {
                let index = self.record(request_type, data, true);
                if execution_type == 0 {
                    tokio::time::sleep(requests::sleep_of(data)).await;
                    self.record_status(index, requests::SUCCESS);
                    Outcome {
                        code: requests::SUCCESS,
                        comment: None,
                        data: None,
                    }
                } else {
                    self.record_status(index, 206);
                    Outcome::failed(206, "Sleep needs a SERIAL_REALTIME batch in the simulator.")
                }
            } else {
                match self.run_one(request_type, data, true).await {
                    Ok(outcome) => outcome,
                    Err(()) => return Next::Drop,
                }
            };
            let failed = outcome.code != requests::SUCCESS;
            let mut result = json!({
                "requestType": request_type,
                "requestStatus": outcome.status(),
            });
            if let Some(id) = request.get("requestId") {
                result["requestId"] = id.clone();
            }
            if let Some(data) = outcome.data {
                result["responseData"] = data;
            }
            results.push(result);
            if failed && halt_on_failure {
                break;
            }
        }
        let response = json!({ "requestId": request_id, "results": results });
        if send_json(ws, op::REQUEST_BATCH_RESPONSE, response).await {
            Next::Continue
        } else {
            Next::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of obs-websocket's protocol document.
    #[test]
    fn verifies_the_documented_authentication() {
        assert_eq!(
            expected_authentication(
                "supersecretpassword",
                "lM1GncleQOaCu9lT1yeUZhFYnqhsLLP1G5lAGo3ixaI=",
                "+IxH4CnCiqpX1rM9scsNynZzbOe4KhDeYcTNS3PDaeY="
            ),
            "1Ct943GAT+6YQUUX47Ia/ncufilbe6+oD6lY+5kaCu4="
        );
    }
}
