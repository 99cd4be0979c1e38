//! The Twitch connector end to end: a real daemon process talks to the
//! Twitch simulator (running in this test process) over loopback — OAuth,
//! Helix, IRC over WebSocket and EventSub — on SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_sim::twitch::{ChatterMessage, TwitchSim, TwitchSimConfig};

use crate::common::{Daemon, Db, Fixture};
use crate::on_both_databases;

const CHANNEL: &str = "simstreamer";

/// A daemon whose Twitch base URLs point at a fresh simulator.
async fn twitch_daemon(db: Db, config: TwitchSimConfig) -> (Fixture, Daemon, TwitchSim) {
    let sim = TwitchSim::start(config).await.unwrap();
    let mut fixture = Fixture::new(db)
        .await
        .with_env("SWITCHBOARD_SERVICES__TWITCH_ID", sim.base_url())
        .with_env("SWITCHBOARD_SERVICES__TWITCH_HELIX", &sim.helix_url())
        .with_env("SWITCHBOARD_SERVICES__TWITCH_IRC", &sim.irc_url())
        .with_env("SWITCHBOARD_SERVICES__TWITCH_EVENTSUB", &sim.eventsub_url());
    let daemon = fixture.start().await;
    (fixture, daemon, sim)
}

fn fast_clips() -> TwitchSimConfig {
    TwitchSimConfig {
        clip_ready_after: Duration::from_millis(700),
        ..TwitchSimConfig::default()
    }
}

fn no_redirects() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Create a Twitch connection and run its OAuth flow through the
/// simulator's consent page; returns the connection id once `connected`.
async fn connect_via_oauth(daemon: &Daemon, label: &str) -> String {
    let id = daemon
        .create_connection(json!({
            "connector": "twitch", "label": label,
            "settings": { "client_id": "sim-twitch-client" },
            "secrets": { "client_secret": "sim-twitch-secret" }
        }))
        .await;
    authorize(daemon, &id).await;
    id
}

/// Run the connect flow of connection `id` and wait for `connected`.
async fn authorize(daemon: &Daemon, id: &str) {
    let started = daemon
        .post(&format!("/connections/{id}/connect"), json!({}))
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let authorize_url = started.body["authorize_url"].as_str().unwrap();
    let approved = no_redirects()
        .get(format!("{authorize_url}&auto_approve=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::FOUND);
    let callback = approved.headers()["location"].to_str().unwrap().to_owned();
    let page = daemon.http.get(&callback).send().await.unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "{}",
        page.text().await.unwrap()
    );
    daemon.wait_status(id, "connected").await;
}

/// Poll `path` until `ok` holds (15 s).
async fn wait_for<F: Fn(&Value) -> bool>(daemon: &Daemon, path: &str, what: &str, ok: F) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = daemon.get(path).await.body;
        if ok(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {body}\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The events of one type, oldest first.
async fn events(daemon: &Daemon, kind: &str) -> Vec<Value> {
    daemon
        .get(&format!("/events?type={kind}&limit=1000"))
        .await
        .body
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_until(what: &str, daemon: &Daemon, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}\n{}", daemon.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn job_ok(daemon: &Daemon, connection: &str, action: &str, params: Value) -> Value {
    let job = daemon.submit(connection, action, params).await;
    let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(
        done["state"],
        "succeeded",
        "{action}: {done}\n{}",
        daemon.output()
    );
    done["result"].clone()
}

/// The acceptance path: connect via OAuth (live at once, same process) →
/// a chat message with tags arrives as `twitch.chat.message` → a rule
/// replies in chat → a follow, a sub and a raid arrive as events and land
/// in the archive (JSON and CSV) → shoutout, channel update and clip.
async fn oauth_chat_rule_events_archive_and_actions(db: Db) {
    let (_fixture, daemon, sim) = twitch_daemon(db, fast_clips()).await;
    let pid = daemon.pid();
    let id = connect_via_oauth(&daemon, "stream").await;
    assert_eq!(daemon.pid(), pid, "connecting needs no restart");
    wait_until("the daemon joins the channel's chat", &daemon, || {
        sim.irc_clients_joined(CHANNEL) >= 1
    })
    .await;

    // A rule that answers `!hello` in chat.
    let reply = daemon
        .post(
            "/rules",
            json!({
                "name": "hello",
                "on": {"event": "twitch.chat.message", "connection": "stream"},
                "if": "event.payload.text is startingwith('!hello')",
                "do": [{"action": "twitch.send_chat", "connection": "stream",
                        "params": {"text": "hi {{ event.payload.display_name }}!", "reply_to": "{{ event.payload.id }}"}}]
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    let message_id = sim.send_chat(ChatterMessage {
        bits: Some(100),
        badges: vec![
            ("subscriber".into(), "12".into()),
            ("bits".into(), "100".into()),
        ],
        ..ChatterMessage::new(CHANNEL, "chatter_ann", "!hello Kappa cheer100")
    });
    let chat = wait_for(
        &daemon,
        "/events?type=twitch.chat.message",
        "the chat message arrives as an event",
        |e| {
            e.as_array()
                .unwrap()
                .iter()
                .any(|e| e["payload"]["id"] == message_id.as_str())
        },
    )
    .await;
    let event = chat
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["payload"]["id"] == message_id.as_str())
        .unwrap();
    assert_eq!(event["connection_id"], id.as_str());
    let payload = &event["payload"];
    assert_eq!(payload["user_login"], "chatter_ann");
    assert_eq!(payload["display_name"], "ChatterAnn");
    assert_eq!(payload["text"], "!hello Kappa cheer100");
    assert_eq!(payload["bits"], 100);
    assert_eq!(payload["is_subscriber"], true, "{payload}");
    let badges = payload["badges"].as_array().unwrap();
    assert!(
        badges
            .iter()
            .any(|b| b["set"] == "subscriber" && b["version"] == "12"),
        "{payload}"
    );
    assert!(
        payload["emotes"].as_array().is_some_and(|e| !e.is_empty()),
        "Kappa is an emote: {payload}"
    );

    wait_until("the rule's reply reaches chat", &daemon, || {
        sim.chat_messages(CHANNEL)
            .iter()
            .any(|m| m.sender == CHANNEL && m.text == "hi ChatterAnn!" && m.delivered)
    })
    .await;
    let sent = sim.chat_messages(CHANNEL);
    let answer = sent.iter().find(|m| m.text == "hi ChatterAnn!").unwrap();
    assert_eq!(answer.reply_to.as_deref(), Some(message_id.as_str()));

    // Channel events: a follow, a sub and a raid.
    sim.follow(CHANNEL, "chatter_bob");
    sim.subscribe(CHANNEL, "chatter_cat", "1000");
    sim.raid("raider_ray", CHANNEL, 42);
    for kind in ["twitch.follow", "twitch.subscribe", "twitch.raid"] {
        wait_for(&daemon, &format!("/events?type={kind}"), kind, |e| {
            e.as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    }
    let raid = &events(&daemon, "twitch.raid").await[0]["payload"];
    assert_eq!(raid["viewers"], 42, "{raid}");

    let followers = wait_for(
        &daemon,
        "/twitch/stream/followers",
        "the follow is archived",
        |r| r.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(followers.as_array().unwrap().len(), 1, "{followers}");
    assert_eq!(followers[0]["record"]["user_login"], "chatter_bob");
    let subs = daemon
        .get(&format!("/connections/{id}/archive/subscriptions"))
        .await;
    assert_eq!(subs.body.as_array().unwrap().len(), 1, "{}", subs.body);
    assert_eq!(subs.body[0]["record"]["user_login"], "chatter_cat");
    let raids = daemon.get("/twitch/stream/raids").await.body;
    assert_eq!(
        raids[0]["record"]["from_broadcaster_user_login"],
        "raider_ray"
    );
    let csv = daemon
        .send(
            daemon
                .http
                .get(daemon.api("/twitch/stream/followers?format=csv"))
                .bearer_auth(&daemon.token),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.content_type.starts_with("text/csv"),
        "{}",
        csv.content_type
    );
    let text = csv.body.as_str().unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert!(header.contains(&"user_login"), "{text}");
    assert!(
        text.lines().nth(1).unwrap().contains("chatter_bob"),
        "{text}"
    );
    let counts = daemon.get(&format!("/connections/{id}/archive")).await.body;
    assert_eq!(
        counts,
        json!([{"kind": "followers", "records": 1}, {"kind": "raids", "records": 1}, {"kind": "subscriptions", "records": 1}])
    );
    let unknown = daemon.get("/twitch/stream/lurkers").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    assert_eq!(
        unknown.body["errors"][0]["field"], "kind",
        "{}",
        unknown.body
    );

    // Helix actions.
    let shoutout = job_ok(&daemon, &id, "twitch.shoutout", json!({"to": "raider_ray"})).await;
    assert_eq!(shoutout["to"], "raider_ray", "{shoutout}");
    assert_eq!(sim.shoutouts().len(), 1);
    job_ok(
        &daemon,
        &id,
        "twitch.update_channel",
        json!({"title": "Building switchboard", "category": "Software and Game Development", "tags": ["Rust", "English"]}),
    )
    .await;
    let channel = sim.channel(CHANNEL).unwrap();
    assert_eq!(channel.title, "Building switchboard");
    assert_eq!(channel.game_id, "1469308723");
    assert_eq!(channel.tags, ["Rust", "English"]);
    let clip = job_ok(&daemon, &id, "twitch.create_clip", json!({})).await;
    let clip_id = clip["id"].as_str().unwrap();
    assert!(clip["url"].as_str().unwrap().contains(clip_id), "{clip}");
    assert!(sim.clips().iter().any(|c| c.id == clip_id && c.ready));
    assert_eq!(daemon.pid(), pid);
    // Debug-level logs carry no client secret and no bearer token.
    let output = daemon.output();
    assert!(
        !output.contains("sim-twitch-secret"),
        "the client secret leaked"
    );
    assert!(!output.contains("oauth:"), "a chat PASS line was logged");
    assert!(!output.contains("Bearer "), "a bearer token was logged");
}

/// Tokens: a token that expires mid-session is refreshed once for many
/// concurrent jobs; a revoked refresh token puts the connection in
/// `needs_reauth` with its jobs waiting, and connecting again runs them.
async fn expiry_refreshes_once_and_revocation_waits_for_reauth(db: Db) {
    let (_fixture, daemon, sim) = twitch_daemon(db, TwitchSimConfig::default()).await;
    let id = connect_via_oauth(&daemon, "stream").await;
    let refreshes = sim.refresh_calls();

    sim.expire_access_tokens();
    let mut jobs = Vec::new();
    for n in 0..10 {
        jobs.push(
            daemon
                .submit(
                    &id,
                    "twitch.send_chat",
                    json!({"text": format!("after expiry {n}")}),
                )
                .await,
        );
    }
    for job in &jobs {
        let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "succeeded", "{done}\n{}", daemon.output());
    }
    assert_eq!(
        sim.refresh_calls() - refreshes,
        1,
        "one refresh for every waiting call"
    );
    assert_eq!(daemon.status_of(&id).await["status"], "connected");

    sim.revoke_refresh_tokens(CHANNEL);
    sim.expire_access_tokens();
    let job = daemon
        .submit(&id, "twitch.send_chat", json!({"text": "after revocation"}))
        .await;
    let status = daemon.wait_status(&id, "needs_reauth").await;
    assert!(
        status["reason"].as_str().unwrap().contains("reconnect"),
        "{status}"
    );
    let job_id = job["id"].as_str().unwrap();
    let waiting = wait_for(&daemon, &format!("/jobs/{job_id}"), "the job waits", |j| {
        j["state"] == "queued" && !j["waiting_reason"].is_null()
    })
    .await;
    assert_eq!(
        waiting["attempts"], 0,
        "waiting spends no attempt: {waiting}"
    );

    authorize(&daemon, &id).await;
    let done = daemon.wait_job(job_id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(
        sim.chat_messages(CHANNEL)
            .iter()
            .any(|m| m.text == "after revocation" && m.delivered)
    );
}

/// The account's own chat messages (the rule's replies, sent through Helix,
/// come back over IRC) arrive marked `is_self`: a catch-all rule does not
/// answer them, so it cannot loop; a rule with `include_self` does.
async fn a_chat_rule_does_not_answer_its_own_messages(db: Db) {
    let (_fixture, daemon, sim) = twitch_daemon(db, TwitchSimConfig::default()).await;
    connect_via_oauth(&daemon, "stream").await;
    wait_until("the daemon joins the channel's chat", &daemon, || {
        sim.irc_clients_joined(CHANNEL) >= 1
    })
    .await;
    for rule in [
        // Answers every message: its own too, were they not skipped.
        json!({
            "name": "answer-all",
            "on": {"event": "twitch.chat.message", "connection": "stream"},
            "do": [{"action": "twitch.send_chat", "connection": "stream",
                    "params": {"text": "re: {{ event.payload.text }}"}}]
        }),
        // Asks for the account's own messages, and answers each once.
        json!({
            "name": "own",
            "on": {"event": "twitch.chat.message", "connection": "stream", "include_self": true},
            "if": "event.payload.is_self and 'seen' not in event.payload.text",
            "do": [{"action": "twitch.send_chat", "connection": "stream",
                    "params": {"text": "seen {{ event.payload.text }}"}}]
        }),
    ] {
        let reply = daemon.post("/rules", rule).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    sim.send_chat(ChatterMessage::new(CHANNEL, "chatter_ann", "hello bot"));
    wait_until("the include_self rule answers the reply", &daemon, || {
        sim.chat_messages(CHANNEL)
            .iter()
            .any(|m| m.text == "seen re: hello bot" && m.delivered)
    })
    .await;
    // Another chatter message: once its answer exists, every earlier event
    // (the account's own messages included) has been matched, in log order.
    sim.send_chat(ChatterMessage::new(CHANNEL, "chatter_bob", "bye bot"));
    wait_until(
        "the catch-all rule answers the second chatter",
        &daemon,
        || {
            sim.chat_messages(CHANNEL)
                .iter()
                .any(|m| m.text == "re: bye bot" && m.delivered)
        },
    )
    .await;
    let chat = events(&daemon, "twitch.chat.message").await;
    let is_self = |text: &str| {
        chat.iter()
            .find(|e| e["payload"]["text"] == text)
            .unwrap_or_else(|| panic!("no event for {text:?}: {chat:?}"))["payload"]["is_self"]
            .clone()
    };
    assert_eq!(is_self("hello bot"), false);
    assert_eq!(is_self("re: hello bot"), true);
    assert_eq!(is_self("seen re: hello bot"), true);
    let runs = daemon
        .get("/rules/runs?rule=answer-all&limit=100")
        .await
        .body;
    assert_eq!(
        runs.as_array().unwrap().len(),
        2,
        "one answer per chatter message, none to its own: {runs}"
    );
    let answers: Vec<String> = sim
        .chat_messages(CHANNEL)
        .iter()
        .filter(|m| m.sender == CHANNEL)
        .map(|m| m.text.clone())
        .collect();
    assert!(
        !answers
            .iter()
            .any(|t| t.starts_with("re: re:") || t.starts_with("re: seen")),
        "the catch-all rule answered itself: {answers:?}"
    );
}

on_both_databases!(
    a_chat_rule_does_not_answer_its_own_messages,
    oauth_chat_rule_events_archive_and_actions,
    expiry_refreshes_once_and_revocation_waits_for_reauth,
);
