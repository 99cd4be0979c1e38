//! The Twitch connector against the Twitch simulator, with an in-memory
//! runtime environment that records events, statuses, secrets and archive
//! records: the authorization flow, chat in and out (a burst of 200 under a
//! small limit), EventSub events with their archives across a
//! `session_reconnect` and a dropped socket, refresh single-flight, one retry
//! after a Helix 401, a revoked grant, and the Helix actions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use switchboard_connector_twitch::{TwitchConnector, TwitchEndpoints};
use switchboard_core::{
    ActionCall, ActionError, AuthorizeFlow, AuthorizeRequest, Connector, ConnectorError, MediaInfo,
    RuntimeContext, RuntimeEnv, Secrets, Session, StatusKind,
};
use switchboard_sim::twitch::{ChatLimit, ChatterMessage, TwitchSim, TwitchSimConfig};
use tokio_util::sync::CancellationToken;

const REDIRECT: &str = "http://127.0.0.1:7700/oauth/twitch/callback";

/// A runtime environment kept in memory.
#[derive(Default)]
struct Env {
    secrets: Mutex<BTreeMap<String, String>>,
    state: Mutex<HashMap<String, Value>>,
    events: Mutex<Vec<(String, Value)>>,
    statuses: Mutex<Vec<StatusKind>>,
    archive: Mutex<BTreeMap<(String, String), Value>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Env {
    fn secrets(&self) -> Secrets {
        self.secrets
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), SecretString::from(v.clone())))
            .collect()
    }

    fn set(&self, name: &str, value: &str) {
        self.secrets
            .lock()
            .unwrap()
            .insert(name.into(), value.into());
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn archived(&self, kind: &str) -> Vec<Value> {
        self.archive
            .lock()
            .unwrap()
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[async_trait]
impl RuntimeEnv for Env {
    async fn emit(&self, event_type: &str, payload: Value) {
        self.events
            .lock()
            .unwrap()
            .push((event_type.into(), payload));
    }
    async fn report_status(&self, kind: StatusKind, _reason: Option<String>) {
        self.statuses.lock().unwrap().push(kind);
    }
    async fn load_secrets(&self) -> Result<Secrets, String> {
        Ok(self.secrets())
    }
    async fn store_secrets(
        &self,
        changes: Vec<(String, Option<SecretString>)>,
    ) -> Result<(), String> {
        let mut secrets = self.secrets.lock().unwrap();
        for (name, value) in changes {
            match value {
                Some(v) => secrets.insert(name, v.expose_secret().to_owned()),
                None => secrets.remove(&name),
            };
        }
        Ok(())
    }
    async fn lock(&self, key: &str) -> Result<Box<dyn Send>, String> {
        let lock = self
            .locks
            .lock()
            .unwrap()
            .entry(key.into())
            .or_default()
            .clone();
        Ok(Box::new(lock.lock_owned().await))
    }
    async fn load_state(&self, key: &str) -> Result<Option<Value>, String> {
        Ok(self.state.lock().unwrap().get(key).cloned())
    }
    async fn store_state(&self, key: &str, value: Option<Value>) -> Result<(), String> {
        let mut state = self.state.lock().unwrap();
        match value {
            Some(v) => state.insert(key.into(), v),
            None => state.remove(key),
        };
        Ok(())
    }
    async fn media(&self, id: &str) -> Result<MediaInfo, String> {
        Err(format!("no media {id}"))
    }
    async fn archive(
        &self,
        kind: &str,
        key: &str,
        _occurred_at: i64,
        record: Value,
    ) -> Result<bool, String> {
        let mut archive = self.archive.lock().unwrap();
        let key = (kind.to_owned(), key.to_owned());
        if archive.contains_key(&key) {
            return Ok(false);
        }
        archive.insert(key, record);
        Ok(true)
    }
}

struct Rig {
    sim: TwitchSim,
    connector: TwitchConnector,
    env: Arc<Env>,
    settings: Value,
}

fn fast_sim() -> TwitchSimConfig {
    TwitchSimConfig {
        clip_ready_after: Duration::from_millis(300),
        ..TwitchSimConfig::default()
    }
}

impl Rig {
    async fn new(config: TwitchSimConfig, settings: Value) -> Rig {
        let sim = TwitchSim::start(config).await.unwrap();
        let connector = TwitchConnector::new(TwitchEndpoints {
            helix: sim.helix_url(),
            id: sim.base_url().to_owned(),
            irc: sim.irc_url(),
            eventsub: sim.eventsub_url(),
        });
        let env = Arc::new(Env::default());
        env.set("client_secret", "sim-twitch-secret");
        Rig {
            sim,
            connector,
            env,
            settings,
        }
    }

    /// With the pre-issued token pair, as if pasted from the Twitch CLI.
    async fn seeded(config: TwitchSimConfig, settings: Value) -> Rig {
        let rig = Rig::new(config, settings).await;
        rig.env.set("access_token", "sim-demo-twitch-access");
        rig.env.set("refresh_token", "sim-demo-twitch-refresh");
        rig
    }

    fn request(&self) -> AuthorizeRequest {
        AuthorizeRequest {
            connection_id: "c1".into(),
            settings: self.settings.clone(),
            secrets: self.env.secrets(),
            redirect_uri: REDIRECT.into(),
        }
    }

    async fn authorize(&self) {
        let start = self
            .connector
            .begin_authorization(self.request())
            .await
            .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}&auto_approve=1", start.authorize_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302, "{}", response.text().await.unwrap());
        let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(REDIRECT), "{location}");
        let params: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(params["state"], start.state);
        let tokens = self
            .connector
            .finish_authorization(
                self.request(),
                AuthorizeFlow {
                    flow_secret: start.flow_secret,
                    flow_data: start.flow_data,
                },
                &params,
            )
            .await
            .unwrap();
        for (name, value) in tokens {
            self.env.set(&name, value.expose_secret());
        }
    }

    async fn connect(&self) -> Result<Arc<dyn Session>, ConnectorError> {
        self.connector
            .connect(RuntimeContext {
                connection_id: "c1".into(),
                settings: self.settings.clone(),
                secrets: self.env.secrets(),
                env: self.env.clone(),
                cancel: CancellationToken::new(),
            })
            .await
    }

    /// Connect and run the session's background work.
    async fn start(&self) -> Running {
        let session = self.connect().await.unwrap();
        let cancel = CancellationToken::new();
        let task = {
            let session = session.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move { session.run(cancel).await })
        };
        Running {
            session,
            cancel,
            task,
        }
    }
}

struct Running {
    session: Arc<dyn Session>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ConnectorError>>,
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn settings() -> Value {
    json!({"client_id": "sim-twitch-client"})
}

fn call(action: &str, params: Value) -> ActionCall {
    ActionCall {
        job_id: format!("job-{}", rand::random::<u64>()),
        action: action.into(),
        params,
        attempt: 1,
        recovered: false,
        idempotency_key: None,
        created_at: switchboard_core::time::now_ms(),
    }
}

/// Wait (bounded) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn connect_through_oauth_then_chat_in_with_tags_and_out() {
    let rig = Rig::new(fast_sim(), settings()).await;
    // Not authorized yet: reconnect is what helps.
    assert!(matches!(
        rig.connect().await,
        Err(ConnectorError::NeedsReauth(_))
    ));
    rig.authorize().await;
    for name in ["access_token", "refresh_token", "expires_at"] {
        assert!(rig.env.secrets().contains_key(name), "{name} stored");
    }
    let running = rig.start().await;
    assert_eq!(rig.sim.irc_clients_joined("simstreamer"), 1);

    let mut message = ChatterMessage::new("simstreamer", "chatter_bob", "Kappa hello @SimStreamer");
    message.badges = vec![
        ("moderator".into(), "1".into()),
        ("subscriber".into(), "12".into()),
    ];
    message.bits = Some(100);
    message.first_message = true;
    let first_id = rig
        .sim
        .send_chat(ChatterMessage::new("simstreamer", "chatter_ann", "first!"));
    message.reply_to = Some(first_id.clone());
    let id = rig.sim.send_chat(message);
    until("two chat messages", || {
        rig.env.events("twitch.chat.message").len() >= 2
    })
    .await;
    let chat = rig.env.events("twitch.chat.message");
    let got = chat.iter().find(|m| m["id"] == id.as_str()).unwrap();
    assert_eq!(got["channel"], "simstreamer");
    assert_eq!(got["user_login"], "chatter_bob");
    assert_eq!(got["user_id"], "1002");
    assert_eq!(got["display_name"], "ChatterBob");
    assert_eq!(got["text"], "Kappa hello @SimStreamer");
    assert_eq!(got["bits"], 100);
    assert_eq!(got["is_mod"], true);
    assert_eq!(got["first_msg"], true);
    assert!(
        got["badges"]
            .as_array()
            .unwrap()
            .contains(&json!({"set": "subscriber", "version": "12"})),
        "{got}"
    );
    assert_eq!(got["emotes"][0]["name"], "Kappa");
    assert_eq!(got["reply"]["parent_msg_id"], first_id.as_str());
    assert_eq!(got["reply"]["parent_user_login"], "chatter_ann");
    assert_eq!(got["reply"]["parent_text"], "first!");

    let sent = running
        .session
        .invoke(call(
            "twitch.send_chat",
            json!({"text": "hi chat", "reply_to": first_id}),
        ))
        .await
        .unwrap();
    let said = rig.sim.chat_messages("simstreamer");
    let ours = said
        .iter()
        .find(|m| m.id == sent["message_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(ours.text, "hi chat");
    assert_eq!(ours.sender, "simstreamer");
    assert_eq!(ours.reply_to.as_deref(), Some(first_id.as_str()));
    // What the account says comes back like anyone's message, marked as its own.
    until("our own message comes back", || {
        rig.env
            .events("twitch.chat.message")
            .iter()
            .any(|m| m["id"] == ours.id.as_str())
    })
    .await;
    let chat = rig.env.events("twitch.chat.message");
    let own = chat.iter().find(|m| m["id"] == ours.id.as_str()).unwrap();
    assert_eq!(own["is_self"], true, "{own}");
    assert_eq!(own["user_login"], "simstreamer");
    assert_eq!(got["is_self"], false, "{got}");

    // Chat's RECONNECT and a dropped chat socket: chat keeps flowing.
    rig.sim.irc_reconnect();
    until("rejoined after RECONNECT", || {
        rig.sim.irc_clients_joined("simstreamer") == 1
    })
    .await;
    let after = rig.sim.send_chat(ChatterMessage::new(
        "simstreamer",
        "chatter_cat",
        "after reconnect",
    ));
    until("the message after RECONNECT", || {
        rig.env
            .events("twitch.chat.message")
            .iter()
            .any(|m| m["id"] == after.as_str())
    })
    .await;
    // A message said while we are away is gone (Twitch replays no chat), so
    // wait for the connection to report itself degraded and back.
    rig.sim.drop_irc();
    until("degraded, then connected again", || {
        let statuses = rig.env.statuses.lock().unwrap();
        statuses.contains(&StatusKind::Degraded) && statuses.last() == Some(&StatusKind::Connected)
    })
    .await;
    assert_eq!(rig.sim.irc_clients_joined("simstreamer"), 1);
    let dropped = rig.sim.send_chat(ChatterMessage::new(
        "simstreamer",
        "chatter_dan",
        "after drop",
    ));
    until("the message after the drop", || {
        rig.env
            .events("twitch.chat.message")
            .iter()
            .any(|m| m["id"] == dropped.as_str())
    })
    .await;
    let chat = rig.env.events("twitch.chat.message");
    let ids: Vec<_> = chat.iter().map(|m| m["id"].clone()).collect();
    let mut unique = ids.clone();
    unique.sort_by_key(|v| v.to_string());
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "no chat message twice");
    running.stop().await;
}

#[tokio::test]
async fn a_burst_of_200_sends_is_paced_none_dropped_none_over_the_limit() {
    let window = ChatLimit {
        messages: 20,
        per: Duration::from_secs(1),
    };
    let config = TwitchSimConfig {
        chat_limit: window,
        chat_limit_moderator: window,
        ..fast_sim()
    };
    let settings = json!({
        "client_id": "sim-twitch-client",
        "chat": {"enabled": false},
        "events": {"follow": false, "subscribe": false, "raid": false, "cheer": false},
        "chat_limit": {"messages": 20, "per_secs": 1}
    });
    let rig = Rig::seeded(config, settings).await;
    let session = rig.connect().await.unwrap();
    let sends = (0..200).map(|n| {
        session.invoke(call(
            "twitch.send_chat",
            json!({"text": format!("burst {n}")}),
        ))
    });
    let results = futures::future::join_all(sends).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let said = rig.sim.chat_messages("simstreamer");
    assert_eq!(said.len(), 200);
    assert!(said.iter().all(|m| m.delivered), "none dropped by Twitch");
    assert_eq!(rig.sim.chat_violations(), 0, "never over the limit");
}

#[tokio::test]
async fn events_are_archived_and_published_once_across_reconnects_and_drops() {
    let rig = Rig::seeded(
        fast_sim(),
        json!({"client_id": "sim-twitch-client", "chat": {"enabled": false}}),
    )
    .await;
    let running = rig.start().await;
    let kinds: Vec<String> = rig
        .sim
        .eventsub_subscriptions()
        .into_iter()
        .filter(|s| s.status == "enabled")
        .map(|s| s.kind)
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");

    rig.sim.follow("simstreamer", "chatter_ann");
    rig.sim.subscribe("simstreamer", "chatter_bob", "1000");
    rig.sim
        .resubscribe("simstreamer", "chatter_cat", 7, "seven months!");
    rig.sim.gift("simstreamer", "chatter_dan", 3, "1000");
    rig.sim.raid("raider_ray", "simstreamer", 42);
    rig.sim
        .cheer("simstreamer", "chatter_ann", 250, "Cheer250 nice");
    until("every event", || {
        rig.env.events("twitch.follow").len() == 1
            && rig.env.events("twitch.raid").len() == 1
            && rig.env.events("twitch.cheer").len() == 1
            && rig.env.events("twitch.subscribe").len() >= 3
    })
    .await;
    let follow = &rig.env.events("twitch.follow")[0];
    assert_eq!(follow["user_login"], "chatter_ann");
    assert_eq!(follow["source"], "eventsub");
    let raid = &rig.env.events("twitch.raid")[0];
    assert_eq!(raid["from_broadcaster_user_login"], "raider_ray");
    assert_eq!(raid["viewers"], 42);
    let cheer = &rig.env.events("twitch.cheer")[0];
    assert_eq!(cheer["bits"], 250);
    let subs = rig.env.events("twitch.subscribe");
    let kinds: Vec<&str> = subs.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    for kind in ["sub", "resub", "gift"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    assert_eq!(rig.env.archived("followers").len(), 1);
    assert_eq!(rig.env.archived("raids").len(), 1);
    assert_eq!(rig.env.archived("cheers").len(), 1);
    assert_eq!(rig.env.archived("subscriptions").len(), subs.len());

    // At-least-once delivery: duplicates are ignored by message id.
    rig.sim.set_duplicate_deliveries(true);
    rig.sim.raid("raider_ray", "simstreamer", 5);
    rig.sim.redeliver_last(3);
    until("the second raid", || {
        rig.env.events("twitch.raid").len() >= 2
    })
    .await;
    rig.sim.set_duplicate_deliveries(false);

    // session_reconnect: nothing lost, nothing twice.
    rig.sim.eventsub_reconnect();
    for n in 0..5 {
        rig.sim
            .cheer("simstreamer", "chatter_bob", 10 + n, "during the move");
    }
    until("the cheers during the move", || {
        rig.env.events("twitch.cheer").len() == 6
    })
    .await;

    // A dropped socket: a new session, resubscribed; the follow made in
    // the gap is read back from Helix.
    rig.sim.drop_eventsub();
    rig.sim.follow("simstreamer", "chatter_dan");
    until("a new session subscribed", || {
        rig.sim
            .eventsub_subscriptions()
            .iter()
            .filter(|s| s.status == "enabled")
            .count()
            == 6
    })
    .await;
    until("the follow from the gap", || {
        rig.env.events("twitch.follow").len() == 2
    })
    .await;
    rig.sim.raid("raider_ray", "simstreamer", 7);
    until("the raid after the drop", || {
        rig.env.events("twitch.raid").len() == 3
    })
    .await;

    running.stop().await;
    let follows = rig.env.events("twitch.follow");
    assert_eq!(follows.len(), 2, "{follows:?}");
    assert_eq!(follows[1]["user_login"], "chatter_dan");
    assert_eq!(rig.env.events("twitch.raid").len(), 3);
    assert_eq!(rig.env.events("twitch.cheer").len(), 6);
    assert_eq!(rig.env.archived("followers").len(), 2);
    assert_eq!(rig.env.archived("raids").len(), 3);
    assert_eq!(rig.env.archived("cheers").len(), 6);
    let ids: Vec<_> = rig
        .env
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, v)| v["message_id"].as_str().map(str::to_owned))
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "no notification twice");
    let statuses = rig.env.statuses.lock().unwrap().clone();
    assert_eq!(
        statuses.last(),
        Some(&StatusKind::Connected),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_once_and_a_401_is_retried_once() {
    let rig = Rig::seeded(
        fast_sim(),
        json!({"client_id": "sim-twitch-client", "chat": {"enabled": false}, "events": {"follow": false, "subscribe": false, "raid": false, "cheer": false}}),
    )
    .await;
    // The pasted token's expiry is learnt from validation.
    let session = rig.connect().await.unwrap();
    assert!(rig.env.secrets().contains_key("expires_at"));
    assert!(rig.sim.validate_calls() >= 1);

    // A minute left: inside the refresh margin; twenty callers, one refresh.
    rig.env.set(
        "expires_at",
        &(switchboard_core::time::now_ms() + 60_000).to_string(),
    );
    let session2 = rig.connect().await.unwrap();
    drop(session);
    let before = rig.sim.refresh_calls();
    let calls = (0..20).map(|n| {
        session2.invoke(call(
            "twitch.update_channel",
            json!({"title": format!("title {n}")}),
        ))
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(rig.sim.refresh_calls() - before, 1, "exactly one refresh");
    assert_ne!(
        rig.env.secrets()["refresh_token"].expose_secret(),
        "sim-demo-twitch-refresh",
        "the rotated refresh token is stored"
    );

    // Twitch expires every token mid-session: the 401 is refreshed once and
    // each call retried once.
    rig.sim.expire_access_tokens();
    let before = rig.sim.refresh_calls();
    let calls =
        (0..10).map(|_| session2.invoke(call("twitch.update_channel", json!({"category": "Art"}))));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(rig.sim.refresh_calls() - before, 1);
}

#[tokio::test]
async fn a_revoked_refresh_token_asks_to_reconnect() {
    let rig = Rig::seeded(
        fast_sim(),
        json!({"client_id": "sim-twitch-client", "chat": {"enabled": false}, "events": {"follow": false, "subscribe": false, "raid": false, "cheer": false}}),
    )
    .await;
    let session = rig.connect().await.unwrap();
    rig.sim.revoke_refresh_tokens("simstreamer");
    rig.sim.expire_access_tokens();
    match session
        .invoke(call("twitch.shoutout", json!({"to": "raider_ray"})))
        .await
    {
        Err(ActionError::NeedsReauth(message)) => {
            assert!(message.contains("reconnect this account"), "{message}");
            assert!(!message.contains("sim-demo"), "no secret in the message");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        rig.connect().await,
        Err(ConnectorError::NeedsReauth(_))
    ));
}

#[tokio::test]
async fn shoutout_channel_update_clip_and_moderation() {
    let rig = Rig::seeded(
        fast_sim(),
        json!({"client_id": "sim-twitch-client", "chat": {"enabled": false}, "events": {"follow": false, "subscribe": false, "raid": false, "cheer": false}}),
    )
    .await;
    let session = rig.connect().await.unwrap();

    let shout = session
        .invoke(call("twitch.shoutout", json!({"to": "raider_ray"})))
        .await
        .unwrap();
    assert_eq!(shout["to_user_id"], "1005");
    assert_eq!(rig.sim.shoutouts().len(), 1);
    // The 2-minute cooldown puts the next one back, with the wait.
    match session
        .invoke(call("twitch.shoutout", json!({"to": "chatter_ann"})))
        .await
    {
        Err(ActionError::RateLimited { retry_after, .. }) => {
            assert!(retry_after > Duration::from_secs(1), "{retry_after:?}")
        }
        other => panic!("{other:?}"),
    }

    let updated = session
        .invoke(call(
            "twitch.update_channel",
            json!({"title": "Building switchboard", "category": "software and game development", "tags": ["Rust", "English"]}),
        ))
        .await
        .unwrap();
    assert_eq!(updated["category"]["id"], "1469308723");
    let channel = rig.sim.channel("simstreamer").unwrap();
    assert_eq!(channel.title, "Building switchboard");
    assert_eq!(channel.game_id, "1469308723");
    assert_eq!(channel.tags, vec!["Rust", "English"]);
    match session
        .invoke(call(
            "twitch.update_channel",
            json!({"category": "zzzz no such category"}),
        ))
        .await
    {
        Err(ActionError::InvalidParams { field, .. }) => assert_eq!(field, "category"),
        other => panic!("{other:?}"),
    }

    let clip = session
        .invoke(call("twitch.create_clip", json!({})))
        .await
        .unwrap();
    assert!(
        clip["url"]
            .as_str()
            .unwrap()
            .contains(clip["id"].as_str().unwrap()),
        "{clip}"
    );
    assert!(clip["edit_url"].is_string());
    assert_eq!(rig.sim.clips().len(), 1);

    session
        .invoke(call(
            "twitch.timeout",
            json!({"user": "chatter_cat", "duration_secs": 60, "reason": "calm down"}),
        ))
        .await
        .unwrap();
    session
        .invoke(call("twitch.ban", json!({"user": "chatter_dan"})))
        .await
        .unwrap();
    let bans = rig.sim.bans();
    assert_eq!(bans.len(), 2);
    assert_eq!(bans[0].duration, Some(60));
    assert_eq!(bans[1].duration, None);
    match session
        .invoke(call("twitch.ban", json!({"user": "nobody_here_at_all"})))
        .await
    {
        Err(ActionError::InvalidParams { field, .. }) => assert_eq!(field, "user"),
        other => panic!("{other:?}"),
    }
}
