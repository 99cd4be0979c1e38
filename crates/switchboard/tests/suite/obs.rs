//! The OBS connector end to end: a real daemon process talks to the OBS
//! simulator (running in this test process) on SQLite and on PostgreSQL,
//! and, on SQLite, to a real OBS Studio started headless under Xvfb.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_sim::obs::studio::HeadlessObs;
use switchboard_sim::obs::{Fault, ObsSim, ObsSimConfig};

use crate::common::{Daemon, Db, Fixture};
use crate::on_both_databases;

on_both_databases!(
    scenes_switch_and_obs_events_arrive,
    a_wrong_password_is_an_error_and_jobs_wait_for_the_right_one,
    an_unreachable_obs_is_retried_and_queued_jobs_run_when_it_appears,
    after_a_long_outage_obs_is_retried_within_its_short_cap,
    obs_crashing_mid_request_loses_no_job,
    a_kick_stops_reconnecting_until_restarted_and_settings_restart_in_place
);

const PASSWORD: &str = "obs-suite-password";

async fn sim() -> ObsSim {
    ObsSim::start(ObsSimConfig {
        password: Some(PASSWORD.into()),
        ..ObsSimConfig::default()
    })
    .await
    .unwrap()
}

/// Create an OBS connection to `port` and return its id.
async fn obs_connection(daemon: &Daemon, label: &str, port: u16, password: &str) -> String {
    daemon
        .create_connection(json!({
            "connector": "obs", "label": label,
            "settings": { "host": "127.0.0.1", "port": port },
            "secrets": { "password": password }
        }))
        .await
}

/// Events of one type for one connection, oldest first.
async fn events(daemon: &Daemon, connection: &str, kind: &str) -> Vec<Value> {
    daemon
        .get(&format!(
            "/events?connection_id={connection}&type={kind}&limit=10000"
        ))
        .await
        .body
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Wait for an event of `kind` whose payload satisfies `matches`.
async fn wait_event(
    daemon: &Daemon,
    connection: &str,
    kind: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = events(daemon, connection, kind)
            .await
            .into_iter()
            .find(|e| matches(&e["payload"]));
        if let Some(event) = found {
            return event;
        }
        if Instant::now() > deadline {
            panic!(
                "no matching `{kind}` event; saw {:?}\n{}",
                events(daemon, connection, kind).await,
                daemon.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until a queued job says why it waits.
async fn wait_waiting(daemon: &Daemon, job: &str) -> Value {
    for _ in 0..300 {
        let current = daemon.get(&format!("/jobs/{job}")).await.body;
        if current["state"] == "queued" && current["waiting_reason"].is_string() {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "job {job} never waited: {}\n{}",
        daemon.get(&format!("/jobs/{job}")).await.body,
        daemon.output()
    );
}

async fn run_ok(daemon: &Daemon, connection: &str, action: &str, params: Value) -> Value {
    let job = daemon.submit(connection, action, params).await;
    let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}\n{}", daemon.output());
    done["result"].clone()
}

fn statuses(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["payload"]["status"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn scenes_switch_and_obs_events_arrive(db: Db) {
    let sim = sim().await;
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = obs_connection(&daemon, "studio", sim.port(), PASSWORD).await;
    daemon.wait_status(&id, "connected").await;

    assert_eq!(
        run_ok(&daemon, &id, "obs.set_scene", json!({"scene": "Live"})).await,
        json!({"scene": "Live"})
    );
    assert_eq!(sim.program_scene(), "Live");
    let changed = wait_event(&daemon, &id, "obs.scene.changed", |p| p["scene"] == "Live").await;
    assert_eq!(changed["payload"]["previous"], "Starting Soon");

    // A switch made in OBS itself arrives as the same trigger.
    sim.switch_scene("Be Right Back").unwrap();
    let changed = wait_event(&daemon, &id, "obs.scene.changed", |p| {
        p["scene"] == "Be Right Back"
    })
    .await;
    assert_eq!(changed["payload"]["previous"], "Live");

    let list = run_ok(
        &daemon,
        &id,
        "obs.list_scenes",
        json!({"include_sources": true}),
    )
    .await;
    assert_eq!(list["current_program_scene"], "Be Right Back");
    assert_eq!(list["scenes"].as_array().unwrap().len(), 3);

    run_ok(&daemon, &id, "obs.start_stream", json!({})).await;
    wait_event(&daemon, &id, "obs.stream.state", |p| {
        p["state"] == "started"
    })
    .await;
    run_ok(&daemon, &id, "obs.stop_stream", json!({})).await;
    wait_event(&daemon, &id, "obs.stream.state", |p| {
        p["state"] == "stopped"
    })
    .await;
    sim.set_input_muted("Mic/Aux", true).unwrap();
    wait_event(&daemon, &id, "obs.input.mute", |p| {
        p["input"] == "Mic/Aux" && p["muted"] == true
    })
    .await;
    run_ok(
        &daemon,
        &id,
        "obs.set_source_visible",
        json!({"scene": "Live", "source": "Camera", "visible": false}),
    )
    .await;
    assert_eq!(sim.source_visible("Live", "Camera"), Some(false));

    // OBS's 600 is a clear, final job error.
    let job = daemon
        .submit(&id, "obs.set_scene", json!({"scene": "Nope"}))
        .await;
    let failed = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["attempts"], 1);
    assert_eq!(failed["error"]["code"], "rejected");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains("no scene named `Nope`"), "{message}");
    assert!(message.contains("600 ResourceNotFound"), "{message}");

    // Params are checked before a job exists.
    let refused = daemon
        .post(
            "/jobs",
            json!({"connection_id": id, "action": "obs.set_scene", "params": {"scene": ""}}),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );

    // The password reached OBS and nothing else.
    assert!(sim.identifications()[0].authenticated);
    assert!(!daemon.output().contains(PASSWORD));
    assert!(!String::from_utf8_lossy(&fixture.database_bytes().await).contains(PASSWORD));
    sim.stop().await;
}

async fn a_wrong_password_is_an_error_and_jobs_wait_for_the_right_one(db: Db) {
    let sim = sim().await;
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = obs_connection(&daemon, "studio", sim.port(), "not-the-password").await;
    let status = daemon.wait_status(&id, "error").await;
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .starts_with("wrong OBS websocket password"),
        "{status}"
    );
    let job = daemon
        .submit(&id, "obs.set_scene", json!({"scene": "Live"}))
        .await;
    let job_id = job["id"].as_str().unwrap();
    let waiting = wait_waiting(&daemon, job_id).await;
    assert_eq!(waiting["attempts"], 0, "waiting spends no attempt");

    // Not a retry loop: OBS sees no further attempts.
    let attempts = sim.accepted_connections();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sim.accepted_connections(), attempts);
    assert!(sim.identifications().is_empty());
    assert_eq!(daemon.status_of(&id).await["status"], "error");
    assert!(!daemon.output().contains("not-the-password"));

    let reply = daemon
        .put(
            &format!("/connections/{id}/secrets"),
            json!({ "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    daemon.wait_status(&id, "connected").await;
    let done = daemon.wait_job(job_id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(sim.program_scene(), "Live");
    sim.stop().await;
}

async fn an_unreachable_obs_is_retried_and_queued_jobs_run_when_it_appears(db: Db) {
    let sim = sim().await;
    sim.crash().await; // the port is known and closed: "OBS is not running"
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = obs_connection(&daemon, "studio", sim.port(), PASSWORD).await;
    let status = daemon.wait_status(&id, "error").await;
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("cannot reach OBS at 127.0.0.1:{}", sim.port())),
        "{reason}"
    );
    assert!(reason.contains("retrying in"), "{reason}");

    let job = daemon.submit(&id, "obs.start_record", json!({})).await;
    let job_id = job["id"].as_str().unwrap();
    wait_waiting(&daemon, job_id).await;

    sim.restart().await.unwrap();
    daemon.wait_status(&id, "connected").await;
    let done = daemon.wait_job(job_id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["recording"], true);
    // Tried, failed, tried again by itself, connected.
    let seen = statuses(&events(&daemon, &id, "connection.status").await);
    assert!(
        seen.iter().filter(|s| *s == "connecting").count() >= 2,
        "{seen:?}"
    );
    assert!(seen.contains(&"error".to_owned()), "{seen:?}");
    assert_eq!(seen.last().unwrap(), "connected");
    sim.stop().await;
}

/// The waits the supervisor announced (`retrying in 0.7s`), in order.
fn announced_delays(events: &[Value]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| e["payload"]["reason"].as_str())
        .filter_map(|reason| reason.split("retrying in ").nth(1))
        .map(|rest| rest.trim_end_matches('s').parse::<f64>().unwrap())
        .collect()
}

async fn after_a_long_outage_obs_is_retried_within_its_short_cap(db: Db) {
    let sim = sim().await;
    sim.crash().await;
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = obs_connection(&daemon, "studio", sim.port(), PASSWORD).await;
    // Seven failed attempts: the daemon's own backoff (500 ms doubling up to
    // a minute) would wait 16 to 32 s before the next one by now.
    wait_event(&daemon, &id, "connection.status", |p| {
        p["reason"].as_str() == Some("reconnecting (attempt 8)")
    })
    .await;
    sim.restart().await.unwrap();
    daemon.wait_status(&id, "connected").await;
    // The status is current before its event is in the log: wait for it.
    wait_event(&daemon, &id, "connection.status", |p| {
        p["status"] == "connected"
    })
    .await;

    let seen = events(&daemon, &id, "connection.status").await;
    let delays = announced_delays(&seen);
    assert!(delays.len() >= 7, "{delays:?}");
    assert!(
        delays.iter().all(|d| *d <= 1.0),
        "OBS's cap is 1 s, the waits were {delays:?}"
    );
    assert_eq!(statuses(&seen).last().unwrap(), "connected");

    // A setting overrides the cap.
    let changed = daemon
        .put(
            &format!("/connections/{id}/settings"),
            json!({"host": "127.0.0.1", "port": sim.port(), "reconnect_max_ms": 300}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    daemon.wait_status(&id, "connected").await;
    let before = events(&daemon, &id, "connection.status").await.len();
    sim.crash().await;
    // Four failed attempts of this outage (the first outage's are before).
    let mut delays = Vec::new();
    for _ in 0..300 {
        let seen = events(&daemon, &id, "connection.status").await;
        delays = announced_delays(&seen[before.min(seen.len())..]);
        if delays.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delays.len() >= 4, "{delays:?}");
    assert!(delays.iter().all(|d| *d <= 0.3), "{delays:?}");
    sim.restart().await.unwrap();
    daemon.wait_status(&id, "connected").await;
    sim.stop().await;
}

async fn obs_crashing_mid_request_loses_no_job(db: Db) {
    let sim = sim().await;
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let id = obs_connection(&daemon, "studio", sim.port(), PASSWORD).await;
    daemon.wait_status(&id, "connected").await;

    // OBS dies while handling the request: no answer, the port closes.
    sim.inject(Fault::CrashOnRequest {
        request_type: "SetCurrentProgramScene".into(),
    });
    let job = daemon
        .submit(&id, "obs.set_scene", json!({"scene": "Live"}))
        .await;
    let job_id = job["id"].as_str().unwrap();
    // The connection goes `error` saying the connection was lost (read from
    // the status events: with OBS's short reconnect cap the current status
    // soon moves on to "cannot reach OBS ... retrying").
    wait_event(&daemon, &id, "connection.status", |p| {
        p["status"] == "error" && p["reason"].as_str().unwrap_or("").contains("lost")
    })
    .await;
    // The cut-off attempt is recorded and the job waits for OBS.
    let meanwhile = wait_waiting(&daemon, job_id).await;
    assert!(
        meanwhile["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("SetCurrentProgramScene was sent but"),
        "{meanwhile}"
    );

    // OBS is back: the connection returns by itself and the job completes.
    sim.restart().await.unwrap();
    daemon.wait_status(&id, "connected").await;
    let done = daemon.wait_job(job_id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["attempts"].as_i64().unwrap() >= 2, "{done}");
    assert_eq!(sim.program_scene(), "Live");

    // A graceful quit too: the queued job waits, then runs.
    sim.quit().await;
    let status = daemon.wait_status(&id, "error").await;
    assert!(
        status["reason"].as_str().unwrap().starts_with("OBS quit"),
        "{status}"
    );
    let job = daemon
        .submit(&id, "obs.set_scene", json!({"scene": "Be Right Back"}))
        .await;
    let job_id = job["id"].as_str().unwrap();
    wait_waiting(&daemon, job_id).await;
    sim.restart().await.unwrap();
    let done = daemon.wait_job(job_id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(sim.program_scene(), "Be Right Back");
    let seen = statuses(&events(&daemon, &id, "connection.status").await);
    let tail: Vec<&str> = seen.iter().map(String::as_str).rev().take(3).collect();
    assert_eq!(tail, ["connected", "connecting", "error"], "{seen:?}");
    sim.stop().await;
}

async fn a_kick_stops_reconnecting_until_restarted_and_settings_restart_in_place(db: Db) {
    let first = sim().await;
    let second = sim().await;
    let mut fixture = Fixture::new(db).await;
    let daemon = fixture.start().await;
    let pid = daemon.pid();
    let id = obs_connection(&daemon, "studio", first.port(), PASSWORD).await;
    daemon.wait_status(&id, "connected").await;

    first.kick_all();
    let status = daemon.wait_status(&id, "error").await;
    let reason = status["reason"].as_str().unwrap();
    assert!(reason.contains("4011 SessionInvalidated"), "{reason}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(first.identifications().len(), 1, "no automatic reconnect");
    assert_eq!(daemon.status_of(&id).await["status"], "error");

    let restarted = daemon
        .post(&format!("/connections/{id}/restart"), json!({}))
        .await;
    assert_eq!(restarted.status, StatusCode::OK, "{}", restarted.body);
    daemon.wait_status(&id, "connected").await;
    assert_eq!(first.identifications().len(), 2);

    // New settings: the runtime restarts in place against the other OBS.
    let reply = daemon
        .put(
            &format!("/connections/{id}/settings"),
            json!({ "host": "127.0.0.1", "port": second.port() }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    for _ in 0..100 {
        if second.identified_clients() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(second.identified_clients(), 1);
    daemon.wait_status(&id, "connected").await;
    run_ok(&daemon, &id, "obs.set_scene", json!({"scene": "Live"})).await;
    assert_eq!(second.program_scene(), "Live");
    assert_eq!(first.program_scene(), "Starting Soon");
    assert_eq!(first.identified_clients(), 0);
    assert_eq!(daemon.pid(), pid, "no process restart");
    first.stop().await;
    second.stop().await;
}

// ---------------------------------------------------------------------------
// Real OBS Studio, headless

/// The acceptance test of issue 5 against OBS Studio itself (Debian's 29.x
/// with obs-websocket 5.1): scenes created and switched through switchboard,
/// `obs.scene.changed` from OBS's own events, a 600 as a clear job error, a
/// wrong password as `error`, recording, then OBS killed and restarted: the
/// connection comes back by itself and a queued action completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_obs_studio_acceptance() {
    let password = "real-obs-password";
    // Not skipped when OBS is missing: the failure says what to install.
    let mut obs = HeadlessObs::start(password)
        .await
        .unwrap_or_else(|e| panic!("the real-OBS acceptance test cannot run: {e}"));
    let mut fixture = Fixture::new(Db::Sqlite).await;
    let daemon = fixture.start().await;
    let id = obs_connection(&daemon, "real-obs", obs.port(), password).await;
    daemon.wait_status(&id, "connected").await;

    // Scenes created through the raw request, switched through obs.set_scene.
    for scene in ["Switchboard Live", "Switchboard BRB"] {
        let created = run_ok(
            &daemon,
            &id,
            "obs.request",
            json!({"request_type": "CreateScene", "request_data": {"sceneName": scene}}),
        )
        .await;
        assert_eq!(created["request_type"], "CreateScene");
    }
    let list = run_ok(
        &daemon,
        &id,
        "obs.list_scenes",
        json!({"include_sources": true}),
    )
    .await;
    let names: Vec<&str> = list["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for scene in ["Scene A", "Scene B", "Switchboard Live", "Switchboard BRB"] {
        assert!(names.contains(&scene), "{list}");
    }
    assert_eq!(list["current_program_scene"], "Scene A");

    run_ok(
        &daemon,
        &id,
        "obs.set_scene",
        json!({"scene": "Switchboard Live"}),
    )
    .await;
    let changed = wait_event(&daemon, &id, "obs.scene.changed", |p| {
        p["scene"] == "Switchboard Live"
    })
    .await;
    assert_eq!(changed["payload"]["previous"], "Scene A");
    run_ok(
        &daemon,
        &id,
        "obs.set_scene",
        json!({"scene": "Switchboard BRB"}),
    )
    .await;
    let changed = wait_event(&daemon, &id, "obs.scene.changed", |p| {
        p["scene"] == "Switchboard BRB"
    })
    .await;
    assert_eq!(changed["payload"]["previous"], "Switchboard Live");

    // OBS's error 600 for a missing scene, as a clear job error.
    let job = daemon
        .submit(&id, "obs.set_scene", json!({"scene": "No Such Scene"}))
        .await;
    let failed = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "rejected");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains("600 ResourceNotFound"), "{message}");
    assert!(
        message.contains("no scene named `No Such Scene`"),
        "{message}"
    );

    // A request this OBS does not know (obs-websocket 5.1 has no canvases).
    let job = daemon
        .submit(&id, "obs.request", json!({"request_type": "GetCanvasList"}))
        .await;
    let failed = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("204 UnknownRequestType"),
        "{failed}"
    );

    // A wrong password: `error`, said plainly, no retry loop.
    let wrong = obs_connection(&daemon, "real-obs-wrong", obs.port(), "nope").await;
    let status = daemon.wait_status(&wrong, "error").await;
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .starts_with("wrong OBS websocket password"),
        "{status}"
    );

    // Recording works headless (x264 into the temporary home).
    run_ok(&daemon, &id, "obs.start_record", json!({})).await;
    wait_event(&daemon, &id, "obs.record.state", |p| {
        p["state"] == "started"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stopped = run_ok(&daemon, &id, "obs.stop_record", json!({})).await;
    let path = stopped["output_path"]
        .as_str()
        .expect("a recording path")
        .to_owned();
    wait_event(&daemon, &id, "obs.record.state", |p| {
        p["state"] == "stopped"
    })
    .await;
    assert!(Path::new(&path).exists(), "{path} was written");

    // OBS is killed: the connection drops to `error` and a job waits.
    obs.kill();
    let status = daemon.wait_status(&id, "error").await;
    println!("after SIGKILL: {status}");
    let job = daemon
        .submit(&id, "obs.set_scene", json!({"scene": "Scene B"}))
        .await;
    let job_id = job["id"].as_str().unwrap();
    wait_waiting(&daemon, job_id).await;

    // OBS restarts: the connection comes back by itself, the job completes.
    let launched = obs.launch().await.unwrap();
    let listening = Instant::now();
    daemon.wait_status(&id, "connected").await;
    println!(
        "real OBS: started in {:.1} s, switchboard reconnected {:.0} ms after the port opened",
        launched.as_secs_f64(),
        listening.elapsed().as_secs_f64() * 1000.0
    );
    let done = daemon.wait_job(job_id).await;
    assert_eq!(done["state"], "succeeded", "{done}\n{}", daemon.output());
    assert_eq!(done["result"]["scene"], "Scene B");
    let list = run_ok(&daemon, &id, "obs.list_scenes", json!({})).await;
    assert_eq!(list["current_program_scene"], "Scene B");
    let seen = statuses(&events(&daemon, &id, "connection.status").await);
    assert_eq!(seen.last().unwrap(), "connected", "{seen:?}");
    assert!(seen.contains(&"error".to_owned()), "{seen:?}");
    assert!(!daemon.output().contains(password));
}
