//! The OBS simulator driven over a websocket, the way an obs-websocket
//! client talks to OBS: by hand (op codes, close codes), and through `obws`,
//! an independent client that must accept it as OBS.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_sim::obs::{Fault, ObsSim, ObsSimConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const WAIT: Duration = Duration::from_secs(5);
const SCENES: u64 = 1 << 2;
const OUTPUTS: u64 = 1 << 6;
const GENERAL: u64 = 1;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A hand-written client: what goes over the wire is visible in the test.
struct Raw {
    ws: Socket,
    hello: Value,
    events: Vec<Value>,
    next_id: u64,
}

#[derive(Debug, PartialEq)]
enum End {
    Close(u16, String),
    /// The socket ended without a close frame.
    Dropped,
}

fn authentication(password: &str, salt: &str, challenge: &str) -> String {
    let secret = STANDARD.encode(Sha256::digest(format!("{password}{salt}")));
    STANDARD.encode(Sha256::digest(format!("{secret}{challenge}")))
}

impl Raw {
    async fn connect(sim: &ObsSim) -> Raw {
        let mut request = sim.url().into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("obswebsocket.json"),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "obswebsocket.json"
        );
        let mut raw = Raw {
            ws,
            hello: Value::Null,
            events: Vec::new(),
            next_id: 1,
        };
        let hello = raw.next().await.expect("a Hello");
        assert_eq!(hello["op"], 0, "{hello}");
        raw.hello = hello["d"].clone();
        raw
    }

    /// Connect and identify (with the password when the sim asks for one).
    async fn identified(sim: &ObsSim, password: Option<&str>, subscriptions: u64) -> Raw {
        let mut raw = Raw::connect(sim).await;
        let auth = raw.answer(password);
        raw.send(
            1,
            json!({"rpcVersion": 1, "authentication": auth, "eventSubscriptions": subscriptions}),
        )
        .await;
        let identified = raw.next().await.expect("Identified");
        assert_eq!(identified["op"], 2, "{identified}");
        assert_eq!(identified["d"]["negotiatedRpcVersion"], 1);
        raw
    }

    fn answer(&self, password: Option<&str>) -> Value {
        match (&self.hello.get("authentication"), password) {
            (Some(auth), Some(password)) => Value::String(authentication(
                password,
                auth["salt"].as_str().unwrap(),
                auth["challenge"].as_str().unwrap(),
            )),
            _ => Value::Null,
        }
    }

    async fn send(&mut self, op: u64, d: Value) {
        self.ws
            .send(Message::text(json!({"op": op, "d": d}).to_string()))
            .await
            .unwrap();
    }

    /// The next JSON message, or `Err` with how the connection ended.
    async fn next_or_end(&mut self) -> Result<Value, End> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the simulator answers in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(text.as_str()).unwrap());
                }
                Some(Ok(Message::Close(frame))) => {
                    let frame = frame.expect("a close frame with a code");
                    return Err(End::Close(
                        u16::from(frame.code),
                        frame.reason.as_str().to_owned(),
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(End::Dropped),
            }
        }
    }

    async fn next(&mut self) -> Option<Value> {
        self.next_or_end().await.ok()
    }

    async fn end(&mut self) -> End {
        loop {
            match self.next_or_end().await {
                Ok(message) if message["op"] == 5 => self.events.push(message["d"].clone()),
                Ok(other) => panic!("expected the end, got {other}"),
                Err(end) => return end,
            }
        }
    }

    /// Send a request and return its response's `d`, keeping events aside.
    async fn request(&mut self, request_type: &str, data: Value) -> Value {
        let id = format!("r{}", self.next_id);
        self.next_id += 1;
        let mut d = json!({"requestType": request_type, "requestId": id});
        if !data.is_null() {
            d["requestData"] = data;
        }
        self.send(6, d).await;
        loop {
            let message = self.next().await.expect("a response");
            match message["op"].as_u64() {
                Some(5) => self.events.push(message["d"].clone()),
                Some(7) => {
                    assert_eq!(message["d"]["requestId"], id.as_str());
                    assert_eq!(message["d"]["requestType"], request_type);
                    return message["d"].clone();
                }
                _ => panic!("unexpected {message}"),
            }
        }
    }

    /// Wait for an event of this type (events already seen count).
    async fn event(&mut self, event_type: &str) -> Value {
        loop {
            if let Some(index) = self
                .events
                .iter()
                .position(|e| e["eventType"] == event_type)
            {
                return self.events.remove(index);
            }
            let message = self.next().await.expect("an event");
            assert_eq!(message["op"], 5, "{message}");
            self.events.push(message["d"].clone());
        }
    }

    /// Whether any event arrives within `within`.
    async fn quiet_for(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.ws.next()).await.is_err()
    }
}

fn code_of(response: &Value) -> u64 {
    response["requestStatus"]["code"].as_u64().unwrap()
}

fn with_password(password: &str) -> ObsSimConfig {
    ObsSimConfig {
        password: Some(password.into()),
        ..ObsSimConfig::default()
    }
}

#[tokio::test]
async fn handshake_authenticates_and_records_subscriptions() {
    let sim = ObsSim::start(with_password("hunter2")).await.unwrap();
    let raw = Raw::identified(&sim, Some("hunter2"), SCENES | OUTPUTS).await;
    assert_eq!(raw.hello["rpcVersion"], 1);
    assert_eq!(raw.hello["obsWebSocketVersion"], "5.5.2");
    let auth = &raw.hello["authentication"];
    assert!(auth["challenge"].as_str().unwrap().len() >= 40, "{auth}");
    assert!(auth["salt"].as_str().unwrap().len() >= 40, "{auth}");

    let ids = sim.identifications();
    assert_eq!(ids.len(), 1);
    assert!(ids[0].authenticated);
    assert_eq!(ids[0].event_subscriptions, Some(SCENES | OUTPUTS));
    assert_eq!(sim.identified_clients(), 1);

    // Every connection gets its own challenge.
    let other = Raw::connect(&sim).await;
    assert_ne!(
        other.hello["authentication"]["challenge"],
        raw.hello["authentication"]["challenge"]
    );
    sim.stop().await;
}

#[tokio::test]
async fn close_codes_follow_the_protocol() {
    let sim = ObsSim::start(with_password("hunter2")).await.unwrap();

    let mut wrong = Raw::connect(&sim).await;
    let auth = wrong.answer(Some("nope"));
    wrong
        .send(1, json!({"rpcVersion": 1, "authentication": auth}))
        .await;
    assert_eq!(
        wrong.end().await,
        End::Close(4009, "Authentication failed.".into())
    );

    let mut missing = Raw::connect(&sim).await;
    missing.send(1, json!({"rpcVersion": 1})).await;
    assert!(matches!(missing.end().await, End::Close(4009, _)));

    let mut old = Raw::connect(&sim).await;
    let auth = old.answer(Some("hunter2"));
    old.send(1, json!({"rpcVersion": 2, "authentication": auth}))
        .await;
    assert!(matches!(old.end().await, End::Close(4010, _)));

    let mut eager = Raw::connect(&sim).await;
    eager
        .send(6, json!({"requestType": "GetVersion", "requestId": "1"}))
        .await;
    assert!(matches!(eager.end().await, End::Close(4007, _)));

    let mut twice = Raw::identified(&sim, Some("hunter2"), 0).await;
    let auth = twice.answer(Some("hunter2"));
    twice
        .send(1, json!({"rpcVersion": 1, "authentication": auth}))
        .await;
    assert!(matches!(twice.end().await, End::Close(4008, _)));

    let mut odd = Raw::identified(&sim, Some("hunter2"), 0).await;
    odd.send(4, json!({})).await;
    assert!(matches!(odd.end().await, End::Close(4006, _)));

    let mut garbage = Raw::identified(&sim, Some("hunter2"), 0).await;
    garbage.ws.send(Message::text("{not json")).await.unwrap();
    assert!(matches!(garbage.end().await, End::Close(4002, _)));

    let mut no_id = Raw::identified(&sim, Some("hunter2"), 0).await;
    no_id.send(6, json!({"requestType": "GetVersion"})).await;
    assert!(matches!(no_id.end().await, End::Close(4003, _)));

    let mut kicked = Raw::identified(&sim, Some("hunter2"), 0).await;
    sim.kick_all();
    assert!(matches!(kicked.end().await, End::Close(4011, _)));
    sim.stop().await;
}

#[tokio::test]
async fn requests_answer_with_protocol_status_codes() {
    let sim = ObsSim::start(ObsSimConfig::default()).await.unwrap();
    let mut obs = Raw::identified(&sim, None, SCENES).await;

    let version = obs.request("GetVersion", Value::Null).await;
    assert_eq!(code_of(&version), 100);
    let available = version["responseData"]["availableRequests"]
        .as_array()
        .unwrap();
    assert!(available.iter().any(|r| r == "SetCurrentProgramScene"));
    assert!(!available.iter().any(|r| r == "GetCanvasList"), "5.7 only");

    let list = obs.request("GetSceneList", Value::Null).await;
    let data = &list["responseData"];
    assert_eq!(data["currentProgramSceneName"], "Starting Soon");
    // Bottom first, index 0 at the bottom, as OBS lists them.
    let names: Vec<&str> = data["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sceneName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Be Right Back", "Live", "Starting Soon"]);
    assert_eq!(data["scenes"][0]["sceneIndex"], 0);

    let switched = obs
        .request("SetCurrentProgramScene", json!({"sceneName": "Live"}))
        .await;
    assert_eq!(
        switched["requestStatus"],
        json!({"result": true, "code": 100})
    );
    let event = obs.event("CurrentProgramSceneChanged").await;
    assert_eq!(event["eventData"]["sceneName"], "Live");
    assert_eq!(event["eventIntent"], SCENES);
    assert_eq!(sim.program_scene(), "Live");

    let missing = obs
        .request("SetCurrentProgramScene", json!({"sceneName": "Nope"}))
        .await;
    assert_eq!(
        missing["requestStatus"],
        json!({"result": false, "code": 600, "comment": "No source was found by the name of `Nope`."})
    );

    // Checked against the protocol document before anything happens.
    let no_field = obs
        .request(
            "SetSceneItemEnabled",
            json!({"sceneName": "Live", "sceneItemEnabled": false}),
        )
        .await;
    assert_eq!(code_of(&no_field), 300);
    let wrong_type = obs
        .request(
            "SetInputMute",
            json!({"inputName": "Mic/Aux", "inputMuted": "yes"}),
        )
        .await;
    assert_eq!(code_of(&wrong_type), 401);
    assert_eq!(code_of(&obs.request("MakeCoffee", Value::Null).await), 204);
    assert_eq!(
        code_of(&obs.request("GetCanvasList", Value::Null).await),
        204
    );
    let unsimulated = obs.request("GetHotkeyList", Value::Null).await;
    assert_eq!(code_of(&unsimulated), 702);
    assert!(
        unsimulated["requestStatus"]["comment"]
            .as_str()
            .unwrap()
            .contains("GetHotkeyList")
    );

    // Scene items and their visibility.
    let item = obs
        .request(
            "GetSceneItemId",
            json!({"sceneName": "Live", "sourceName": "Camera"}),
        )
        .await;
    let item_id = item["responseData"]["sceneItemId"].as_u64().unwrap();
    let hidden = obs
        .request(
            "SetSceneItemEnabled",
            json!({"sceneName": "Live", "sceneItemId": item_id, "sceneItemEnabled": false}),
        )
        .await;
    assert_eq!(code_of(&hidden), 100);
    assert_eq!(sim.source_visible("Live", "Camera"), Some(false));

    // Created scenes appear in the list and as events.
    let created = obs
        .request("CreateScene", json!({"sceneName": "Interview"}))
        .await;
    assert!(created["responseData"]["sceneUuid"].is_string());
    assert_eq!(
        obs.event("SceneCreated").await["eventData"]["sceneName"],
        "Interview"
    );
    let again = obs
        .request("CreateScene", json!({"sceneName": "Interview"}))
        .await;
    assert_eq!(code_of(&again), 601);
    assert!(sim.scenes().contains(&"Interview".to_owned()));

    // Only subscribed categories arrive: mute changes (Inputs) do not.
    sim.set_input_muted("Mic/Aux", true).unwrap();
    assert!(obs.quiet_for(Duration::from_millis(200)).await);
    let recorded = sim.requests();
    assert!(
        recorded
            .iter()
            .any(|r| r.request_type == "GetSceneList" && r.status == Some(100))
    );
    sim.stop().await;
}

#[tokio::test]
async fn outputs_move_through_their_states() {
    let sim = ObsSim::start(ObsSimConfig::default()).await.unwrap();
    let mut obs = Raw::identified(&sim, None, OUTPUTS).await;

    assert_eq!(code_of(&obs.request("StartStream", Value::Null).await), 100);
    let starting = obs.event("StreamStateChanged").await;
    assert_eq!(
        starting["eventData"],
        json!({"outputActive": false, "outputState": "OBS_WEBSOCKET_OUTPUT_STARTING"})
    );
    assert_eq!(starting["eventIntent"], OUTPUTS);
    let started = obs.event("StreamStateChanged").await;
    assert_eq!(
        started["eventData"]["outputState"],
        "OBS_WEBSOCKET_OUTPUT_STARTED"
    );
    assert!(sim.stream_active());
    let status = obs.request("GetStreamStatus", Value::Null).await;
    assert_eq!(status["responseData"]["outputActive"], true);
    // Already running: 500, with no comment, as obs-websocket answers.
    assert_eq!(
        obs.request("StartStream", Value::Null).await["requestStatus"],
        json!({"result": false, "code": 500})
    );
    assert_eq!(code_of(&obs.request("StopStream", Value::Null).await), 100);
    assert_eq!(
        obs.event("StreamStateChanged").await["eventData"]["outputState"],
        "OBS_WEBSOCKET_OUTPUT_STOPPING"
    );
    assert_eq!(
        obs.event("StreamStateChanged").await["eventData"]["outputState"],
        "OBS_WEBSOCKET_OUTPUT_STOPPED"
    );
    assert_eq!(code_of(&obs.request("StopStream", Value::Null).await), 501);

    assert_eq!(code_of(&obs.request("StartRecord", Value::Null).await), 100);
    obs.event("RecordStateChanged").await;
    let recording = obs.event("RecordStateChanged").await;
    let path = recording["eventData"]["outputPath"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(path.ends_with(".mkv"), "{path}");
    let stopped = obs.request("StopRecord", Value::Null).await;
    assert_eq!(stopped["responseData"]["outputPath"], path.as_str());
    obs.event("RecordStateChanged").await;
    let done = obs.event("RecordStateChanged").await;
    assert_eq!(
        done["eventData"]["outputState"],
        "OBS_WEBSOCKET_OUTPUT_STOPPED"
    );
    assert_eq!(done["eventData"]["outputPath"], path.as_str());

    // Pressed in OBS's UI: the same events.
    sim.start_stream().unwrap();
    assert_eq!(
        obs.event("StreamStateChanged").await["eventData"]["outputState"],
        "OBS_WEBSOCKET_OUTPUT_STARTING"
    );
    sim.stop().await;
}

#[tokio::test]
async fn batches_run_in_order_and_can_halt() {
    let sim = ObsSim::start(ObsSimConfig::default()).await.unwrap();
    let mut obs = Raw::identified(&sim, None, 0).await;
    let batch = |halt: bool| {
        json!({
            "requestId": "b1",
            "haltOnFailure": halt,
            "executionType": 0,
            "requests": [
                {"requestType": "GetSceneItemList", "requestData": {"sceneName": "Live"}},
                {"requestType": "Sleep", "requestData": {"sleepMillis": 50}},
                {"requestType": "GetSceneItemList", "requestData": {"sceneName": "Nope"}},
                {"requestType": "GetSceneItemList", "requestData": {"sceneName": "Starting Soon"}}
            ]
        })
    };
    obs.send(8, batch(false)).await;
    let response = obs.next().await.unwrap();
    assert_eq!(response["op"], 9);
    assert_eq!(response["d"]["requestId"], "b1");
    let results = response["d"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let items = results[0]["responseData"]["sceneItems"].as_array().unwrap();
    let sources: Vec<&str> = items
        .iter()
        .map(|i| i["sourceName"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["Camera", "Overlay"]);
    assert_eq!(results[1]["requestStatus"]["code"], 100);
    assert_eq!(results[2]["requestStatus"]["code"], 600);
    assert_eq!(results[3]["requestStatus"]["code"], 100);

    obs.send(8, batch(true)).await;
    let halted = obs.next().await.unwrap();
    assert_eq!(halted["d"]["results"].as_array().unwrap().len(), 3);

    // Sleep outside a batch is refused.
    assert_eq!(
        code_of(&obs.request("Sleep", json!({"sleepMillis": 10})).await),
        206
    );
    sim.stop().await;
}

#[tokio::test]
async fn lifecycle_quit_restart_crash_and_freeze() {
    let sim = ObsSim::start(ObsSimConfig::default()).await.unwrap();
    let port = sim.port();

    // Quit: ExitStarted to General subscribers, then close 1001; port closed.
    let mut obs = Raw::identified(&sim, None, GENERAL).await;
    sim.quit().await;
    assert_eq!(obs.end().await, End::Close(1001, "Server stopping.".into()));
    assert_eq!(obs.events[0]["eventType"], "ExitStarted");
    assert!(!sim.is_running());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );

    // Back on the same port, scenes kept.
    sim.switch_scene("Live").unwrap();
    sim.restart().await.unwrap();
    assert_eq!(sim.port(), port);
    let mut obs = Raw::identified(&sim, None, OUTPUTS).await;
    let current = obs.request("GetCurrentProgramScene", Value::Null).await;
    assert_eq!(current["responseData"]["sceneName"], "Live");

    // Crash: the socket just ends.
    sim.crash().await;
    assert_eq!(obs.end().await, End::Dropped);
    assert_eq!(sim.open_connections(), 0);
    sim.restart().await.unwrap();

    // Frozen: no answer (not even to pings) until thawed.
    let mut obs = Raw::identified(&sim, None, 0).await;
    sim.freeze(true);
    obs.ws
        .send(Message::Ping(b"alive?".to_vec().into()))
        .await
        .unwrap();
    assert!(
        obs.quiet_for(Duration::from_millis(300)).await,
        "no pong while frozen"
    );
    sim.freeze(false);
    let pong = tokio::time::timeout(WAIT, obs.ws.next()).await.unwrap();
    assert!(matches!(pong, Some(Ok(Message::Pong(_)))), "{pong:?}");
    sim.stop().await;
}

#[tokio::test]
async fn faults_are_injected_per_request_type() {
    let sim = ObsSim::start(ObsSimConfig::default()).await.unwrap();
    let mut watcher = Raw::identified(&sim, None, SCENES).await;
    let mut obs = Raw::identified(&sim, None, 0).await;

    sim.inject(Fault::Status {
        request_type: "GetSceneList".into(),
        code: 207,
        comment: Some("OBS is not ready to perform the request.".into()),
        times: 1,
    });
    assert_eq!(
        code_of(&obs.request("GetSceneList", Value::Null).await),
        207
    );
    assert_eq!(
        code_of(&obs.request("GetSceneList", Value::Null).await),
        100
    );

    // The request takes effect, the answer never comes.
    sim.inject(Fault::DropConnection {
        request_type: "SetCurrentProgramScene".into(),
        after_executing: true,
        times: 1,
    });
    obs.send(6, json!({"requestType": "SetCurrentProgramScene", "requestId": "x", "requestData": {"sceneName": "Live"}}))
        .await;
    assert_eq!(obs.end().await, End::Dropped);
    assert_eq!(sim.program_scene(), "Live");
    assert_eq!(
        watcher.event("CurrentProgramSceneChanged").await["eventData"]["sceneName"],
        "Live"
    );
    let dropped = sim
        .requests()
        .into_iter()
        .find(|r| r.request_type == "SetCurrentProgramScene")
        .unwrap();
    assert_eq!(dropped.status, None);

    // A crash on a request takes every connection and the port down.
    let mut obs = Raw::identified(&sim, None, 0).await;
    sim.inject(Fault::CrashOnRequest {
        request_type: "StartStream".into(),
    });
    obs.send(6, json!({"requestType": "StartStream", "requestId": "s"}))
        .await;
    assert_eq!(obs.end().await, End::Dropped);
    assert_eq!(watcher.end().await, End::Dropped);
    assert!(!sim.is_running());
    assert!(!sim.stream_active());
    sim.stop().await;
}

#[tokio::test]
async fn obws_accepts_the_simulator_as_obs() {
    let sim = ObsSim::start(with_password("obws-pass")).await.unwrap();
    let client = obws::Client::connect("127.0.0.1", sim.port(), Some("obws-pass"))
        .await
        .expect("obws connects, authenticates and accepts the versions");
    let version = client.general().version().await.unwrap();
    assert_eq!(version.obs_web_socket_version.to_string(), "5.5.2");

    let scenes = client.scenes().list().await.unwrap();
    assert_eq!(scenes.scenes.len(), 3);
    assert_eq!(scenes.current_program_scene.unwrap().name, "Starting Soon");
    let inputs = client.inputs().list(None).await.unwrap();
    assert!(inputs.iter().any(|i| i.id.name == "Mic/Aux"));

    let mut events = client.events().unwrap();
    client
        .scenes()
        .set_current_program_scene("Be Right Back")
        .await
        .unwrap();
    let changed = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            if let obws::events::Event::CurrentProgramSceneChanged { id } = event {
                return id.name;
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert_eq!(changed, "Be Right Back");

    let missing = client.scenes().set_current_program_scene("Nope").await;
    match missing {
        Err(obws::error::Error::Api { code, .. }) => {
            assert_eq!(code, obws::responses::StatusCode::ResourceNotFound)
        }
        other => panic!("expected 600, got {other:?}"),
    }
    client.streaming().start().await.unwrap();
    let status = client.streaming().status().await.unwrap();
    assert!(!status.active, "still starting");

    let wrong = obws::Client::connect("127.0.0.1", sim.port(), Some("nope")).await;
    assert!(wrong.is_err());
    sim.stop().await;
}
