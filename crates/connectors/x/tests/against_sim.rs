//! The X connector against the X simulator, with an in-memory runtime
//! environment: the authorization flows, every action, refresh single-flight,
//! the rate-limit gate, duplicate-safe retries and the mention trigger. Every
//! request the connector sends is checked against X's OpenAPI document.
//! (The daemon-level suite repeats the main stories through the REST API on
//! SQLite and PostgreSQL.)

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use switchboard_connector_x::XConnector;
use switchboard_core::{
    ActionCall, ActionError, AuthorizeFlow, AuthorizeRequest, Connector, ConnectorError, MediaInfo,
    RuntimeContext, RuntimeEnv, Secrets, Session, StatusKind,
};
use switchboard_sim::x::{
    Endpoint, Fault, MediaConfig, RateLimit, RateLimits, XSim, XSimConfig,
    check_request_against_spec,
};
use tokio_util::sync::CancellationToken;

const REDIRECT: &str = "http://127.0.0.1:7700/oauth/x/callback";

/// A runtime environment kept in memory.
#[derive(Default)]
struct Env {
    secrets: Mutex<BTreeMap<String, String>>,
    state: Mutex<HashMap<String, Value>>,
    media: Mutex<HashMap<String, MediaInfo>>,
    events: Mutex<Vec<(String, Value)>>,
    statuses: Mutex<Vec<StatusKind>>,
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
        self.media
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| format!("no media {id}"))
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

struct Rig {
    sim: XSim,
    connector: XConnector,
    env: Arc<Env>,
    settings: Value,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn new(config: XSimConfig, settings: Value) -> Rig {
        let sim = XSim::start(config).await.unwrap();
        let connector = XConnector::new(
            sim.base_url(),
            &format!("{}/i/oauth2/authorize", sim.base_url()),
        );
        Rig {
            sim,
            connector,
            env: Arc::new(Env::default()),
            settings,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn request(&self) -> AuthorizeRequest {
        AuthorizeRequest {
            connection_id: "c1".into(),
            settings: self.settings.clone(),
            secrets: self.env.secrets(),
            redirect_uri: REDIRECT.into(),
        }
    }

    /// Run the connector's authorization flow, approving on the simulator.
    async fn authorize(&self) {
        let start = self
            .connector
            .begin_authorization(self.request())
            .await
            .unwrap();
        let approve = format!("{}&auto_approve=1", start.authorize_url);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(approve)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302, "{}", response.text().await.unwrap());
        let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(REDIRECT), "{location}");
        let params: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
        let state_param = if params.contains_key("state") {
            "state"
        } else {
            "oauth_token"
        };
        assert_eq!(params[state_param], start.state);
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

    /// The four OAuth 1.0a values of a seeded simulator user (`demo`, `friend`).
    fn direct_entry(&self, user: &str) {
        self.env.set("api_key", "sim-consumer-key");
        self.env.set("api_secret", "sim-consumer-secret");
        self.env
            .set("access_token", &format!("sim-{user}-oauth1-token"));
        self.env
            .set("access_token_secret", &format!("sim-{user}-oauth1-secret"));
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

    fn media(&self, id: &str, mime: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(id);
        std::fs::write(&path, bytes).unwrap();
        self.env.media.lock().unwrap().insert(
            id.into(),
            MediaInfo {
                id: id.into(),
                mime_type: mime.into(),
                size: bytes.len() as u64,
                name: None,
                path,
                created_at: 0,
            },
        );
        id.into()
    }

    fn assert_spec_clean(&self) {
        let requests = self.sim.requests();
        assert!(!requests.is_empty());
        for req in &requests {
            if let Err(e) = check_request_against_spec(req) {
                panic!("{} {} does not conform: {e}", req.method, req.path);
            }
        }
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }
}

fn call(action: &str, params: Value) -> ActionCall {
    ActionCall {
        job_id: uuid_like(),
        action: action.into(),
        params,
        attempt: 1,
        recovered: false,
        idempotency_key: None,
        created_at: switchboard_core::time::now_ms(),
    }
}

fn uuid_like() -> String {
    format!("job-{}", rand::random::<u64>())
}

fn fast_media() -> XSimConfig {
    XSimConfig {
        media: MediaConfig {
            check_after_secs: 1,
            processing_time: Duration::from_millis(300),
            ..MediaConfig::default()
        },
        ..XSimConfig::default()
    }
}

fn oauth2_settings() -> Value {
    json!({"auth": "oauth2", "client_id": "sim-client-id"})
}

async fn oauth2_rig(config: XSimConfig) -> Rig {
    let rig = Rig::new(config, oauth2_settings()).await;
    rig.env.set("oauth2_client_secret", "sim-client-secret");
    rig.authorize().await;
    rig
}

fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.resize(3000, 7);
    bytes
}

fn mp4(len: usize) -> Vec<u8> {
    let mut bytes = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    bytes.resize(len, 0x42);
    bytes
}

#[tokio::test]
async fn oauth2_connect_then_post_reply_quote_image_video_and_delete() {
    let rig = oauth2_rig(fast_media()).await;
    for name in [
        "oauth2_access_token",
        "oauth2_refresh_token",
        "oauth2_expires_at",
    ] {
        assert!(rig.env.secrets().contains_key(name), "{name} stored");
    }
    let session = rig.connect().await.unwrap();

    let me = session.invoke(call("x.me", json!({}))).await.unwrap();
    assert_eq!(me["username"], "switchboard_demo");

    let text = session
        .invoke(call("x.post", json!({"text": "hello from switchboard"})))
        .await
        .unwrap();
    let id = text["id"].as_str().unwrap().to_owned();
    assert!(text["url"].as_str().unwrap().ends_with(&id));
    let reply = session
        .invoke(call("x.post", json!({"text": "a reply", "reply_to": id})))
        .await
        .unwrap();
    let quote = session
        .invoke(call("x.post", json!({"text": "a quote", "quote_of": id})))
        .await
        .unwrap();
    let image_id = rig.media("0123456789abcdef0123456789abcd01", "image/png", &png());
    let image = session
        .invoke(call(
            "x.post",
            json!({"text": "an image", "media": [image_id]}),
        ))
        .await
        .unwrap();
    // 9 MiB: three segments, then processing.
    let video_id = rig.media(
        "0123456789abcdef0123456789abcd02",
        "video/mp4",
        &mp4(9 * 1024 * 1024),
    );
    let mut video_call = call("x.post", json!({"text": "a video", "media": [video_id]}));
    video_call.job_id = "video-job".into();
    let video = session.invoke(video_call).await.unwrap();

    let posts = rig.sim.posts();
    let by_id = |id: &Value| posts.iter().find(|p| p.id == id.as_str().unwrap()).unwrap();
    assert_eq!(by_id(&reply["id"]).reply_to.as_deref(), Some(id.as_str()));
    assert_eq!(by_id(&quote["id"]).quote_of.as_deref(), Some(id.as_str()));
    assert_eq!(by_id(&image["id"]).media_ids.len(), 1);
    assert_eq!(by_id(&video["id"]).media_ids.len(), 1);
    assert_eq!(
        rig.count(
            "POST",
            &format!(
                "/2/media/upload/{}/append",
                video["media_ids"][0].as_str().unwrap()
            )
        ),
        3
    );

    let progress: Vec<Value> = rig
        .env
        .events("x.media.progress")
        .into_iter()
        .filter(|e| e["job_id"] == "video-job")
        .collect();
    let phases: Vec<&str> = progress
        .iter()
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases.first(), Some(&"uploading"));
    assert!(phases.contains(&"processing"), "{phases:?}");
    assert_eq!(phases.last(), Some(&"succeeded"));
    let sent: Vec<u64> = progress
        .iter()
        .filter(|e| e["phase"] == "uploading")
        .map(|e| e["bytes_sent"].as_u64().unwrap())
        .collect();
    assert!(sent.windows(2).all(|w| w[0] <= w[1]), "{sent:?}");
    assert_eq!(*sent.last().unwrap(), 9 * 1024 * 1024);

    let deleted = session
        .invoke(call("x.delete", json!({"id": quote["id"]})))
        .await
        .unwrap();
    assert_eq!(deleted["deleted"], true);
    assert_eq!(
        rig.sim.deleted_post_ids(),
        vec![quote["id"].as_str().unwrap().to_owned()]
    );

    let found = session
        .invoke(call("x.search_recent", json!({"query": "reply"})))
        .await
        .unwrap();
    assert_eq!(found["posts"][0]["id"], reply["id"]);
    rig.assert_spec_clean();
}

#[tokio::test]
async fn oauth1_three_legged_flow_and_direct_entry() {
    let rig = Rig::new(XSimConfig::default(), json!({"auth": "oauth1"})).await;
    rig.env.set("api_key", "sim-consumer-key");
    rig.env.set("api_secret", "sim-consumer-secret");
    // Before the flow, the account is not usable.
    assert!(matches!(
        rig.connect().await,
        Err(ConnectorError::NeedsReauth(_))
    ));
    rig.authorize().await;
    let session = rig.connect().await.unwrap();
    let posted = session
        .invoke(call("x.post", json!({"text": "signed with HMAC-SHA1"})))
        .await
        .unwrap();
    assert_eq!(rig.sim.posts()[0].id, posted["id"].as_str().unwrap());

    // Direct entry of the four values.
    let direct = Rig::new(XSimConfig::default(), json!({"auth": "oauth1"})).await;
    direct.direct_entry("friend");
    let session = direct.connect().await.unwrap();
    let me = session.invoke(call("x.me", json!({}))).await.unwrap();
    assert_eq!(me["username"], "sim_friend");

    // A wrong secret is refused by X's signature check: reconnect.
    direct.env.set("access_token_secret", "wrong");
    assert!(matches!(
        direct.connect().await,
        Err(ConnectorError::NeedsReauth(_))
    ));
    rig.assert_spec_clean();
}

#[tokio::test]
async fn fifty_concurrent_actions_on_an_expiring_token_refresh_once() {
    let rig = oauth2_rig(XSimConfig::default()).await;
    // The token has a minute left: inside the 5-minute margin.
    rig.env.set(
        "oauth2_expires_at",
        &(switchboard_core::time::now_ms() + 60_000).to_string(),
    );
    let session = rig.connect().await.unwrap();
    let before = rig.sim.token_calls();
    let calls = (0..50).map(|_| session.invoke(call("x.me", json!({}))));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(rig.sim.token_calls() - before, 1, "exactly one refresh");
    // The rotated pair reached the store.
    let refreshed = rig.env.secrets()["oauth2_expires_at"]
        .expose_secret()
        .parse::<i64>()
        .unwrap();
    assert!(refreshed > switchboard_core::time::now_ms() + 3_600_000);

    // A 401 (X expired every token) is refreshed once and retried.
    rig.sim.expire_access_tokens();
    let before = rig.sim.token_calls();
    let results =
        futures::future::join_all((0..10).map(|_| session.invoke(call("x.me", json!({}))))).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(rig.sim.token_calls() - before, 1);
}

#[tokio::test]
async fn a_revoked_refresh_token_asks_to_reconnect() {
    let rig = oauth2_rig(XSimConfig::default()).await;
    let session = rig.connect().await.unwrap();
    rig.sim.revoke_refresh_tokens("switchboard_demo");
    rig.sim.expire_access_tokens();
    match session.invoke(call("x.me", json!({}))).await {
        Err(ActionError::NeedsReauth(message)) => {
            assert!(message.contains("reconnect this account"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_429_storm_costs_one_call_per_window() {
    let config = XSimConfig {
        rate_limits: RateLimits {
            create_post: RateLimit {
                limit: 1000,
                window: Duration::from_secs(2),
            },
            ..RateLimits::default()
        },
        ..XSimConfig::default()
    };
    let rig = oauth2_rig(config).await;
    let session = rig.connect().await.unwrap();
    rig.sim.inject(Fault::RateLimitExhausted {
        endpoint: Endpoint::CreatePost,
        reset_in: Duration::from_secs(2),
    });
    let calls =
        (0..20).map(|n| session.invoke(call("x.post", json!({"text": format!("storm {n}")}))));
    let results = futures::future::join_all(calls).await;
    let mut wait = Duration::ZERO;
    for result in &results {
        match result {
            Err(ActionError::RateLimited { retry_after, .. }) => wait = wait.max(*retry_after),
            other => panic!("expected a rate-limit wait, got {other:?}"),
        }
    }
    assert_eq!(
        rig.count("POST", "/2/tweets"),
        1,
        "one probe, then no calls"
    );
    assert!(
        wait > Duration::from_millis(500) && wait < Duration::from_secs(5),
        "{wait:?}"
    );
    tokio::time::sleep(wait).await;
    let calls =
        (0..20).map(|n| session.invoke(call("x.post", json!({"text": format!("storm {n}")}))));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(rig.sim.posts().len(), 20);
    assert_eq!(rig.count("POST", "/2/tweets"), 21);
}

#[tokio::test]
async fn a_retried_post_is_found_instead_of_posted_twice() {
    let rig = oauth2_rig(XSimConfig::default()).await;
    let session = rig.connect().await.unwrap();
    // The first attempt posts; then the daemon "dies" before recording the
    // answer, and the job comes back marked recovered.
    let first = session
        .invoke(call("x.post", json!({"text": "exactly once"})))
        .await
        .unwrap();
    let mut again = call("x.post", json!({"text": "exactly once"}));
    again.recovered = true;
    let second = session.invoke(again).await.unwrap();
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["recovered"], true);
    assert_eq!(rig.sim.posts().len(), 1);

    // A 5xx is transient and the retry (attempt 2) checks before posting.
    rig.sim.inject(Fault::Status {
        path_prefix: "POST /2/tweets".into(),
        status: 503,
        times: 1,
    });
    let failed = session
        .invoke(call("x.post", json!({"text": "after an outage"})))
        .await;
    assert!(
        matches!(failed, Err(ActionError::Transient { .. })),
        "{failed:?}"
    );
    let mut retry = call("x.post", json!({"text": "after an outage"}));
    retry.attempt = 2;
    let posted = session.invoke(retry).await.unwrap();
    assert!(posted.get("recovered").is_none());
    assert_eq!(rig.sim.posts().len(), 2);
}

#[tokio::test]
async fn mentions_are_emitted_once_and_survive_a_restart() {
    let settings = json!({
        "auth": "oauth1",
        "mentions": {"enabled": true, "interval_secs": 1}
    });
    let rig = Rig::new(XSimConfig::default(), settings).await;
    rig.direct_entry("demo");
    rig.sim
        .create_post_as("sim_friend", "old news @switchboard_demo", None);
    let run = |session: Arc<dyn Session>| {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move { session.run(cancel).await });
        (stop, task)
    };
    let (stop, task) = run(rig.connect().await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.sim
        .create_post_as("sim_friend", "hey @switchboard_demo", None);
    for _ in 0..50 {
        if !rig.env.events("x.mention").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    let mentions = rig.env.events("x.mention");
    assert_eq!(mentions.len(), 1, "history is not replayed: {mentions:?}");
    assert_eq!(mentions[0]["text"], "hey @switchboard_demo");
    assert_eq!(mentions[0]["author_id"], "1000000000000000002");

    // A restart resumes from the stored cursor: nothing again, then the new one.
    let (stop, task) = run(rig.connect().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rig.sim
        .create_post_as("sim_friend", "again @switchboard_demo", None);
    for _ in 0..50 {
        if rig.env.events("x.mention").len() > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    let mentions = rig.env.events("x.mention");
    assert_eq!(mentions.len(), 2, "{mentions:?}");
    assert_eq!(mentions[1]["text"], "again @switchboard_demo");
    rig.assert_spec_clean();
}

#[tokio::test]
async fn the_accounts_own_posts_are_marked_is_self() {
    let settings = json!({
        "auth": "oauth1",
        "search_watches": [{"name": "launch", "query": "switchboard launch", "interval_secs": 1}]
    });
    let rig = Rig::new(XSimConfig::default(), settings).await;
    rig.direct_entry("demo");
    let session = rig.connect().await.unwrap();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn(async move { session.run(cancel).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.sim
        .create_post_as("sim_friend", "the switchboard launch is today", None);
    rig.sim
        .create_post_as("switchboard_demo", "our switchboard launch is live", None);
    for _ in 0..50 {
        if rig.env.events("x.search.match").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    let matches = rig.env.events("x.search.match");
    assert_eq!(matches.len(), 2, "{matches:?}");
    let by = |text: &str| matches.iter().find(|m| m["text"] == text).unwrap().clone();
    assert_eq!(by("the switchboard launch is today")["is_self"], false);
    assert_eq!(by("our switchboard launch is live")["is_self"], true);
}

#[tokio::test]
async fn a_connection_without_watches_makes_no_calls_in_the_background() {
    let rig = oauth2_rig(XSimConfig::default()).await;
    let session = rig.connect().await.unwrap();
    let before = rig.sim.requests().len();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn(async move { session.run(cancel).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(rig.sim.requests().len(), before);
}

#[tokio::test]
async fn search_watches_emit_new_matches_and_degrade_while_x_fails() {
    let settings = json!({
        "auth": "oauth1",
        "search_watches": [{"name": "launch", "query": "switchboard launch", "interval_secs": 1}]
    });
    let rig = Rig::new(XSimConfig::default(), settings).await;
    rig.direct_entry("demo");
    rig.sim
        .create_post_as("sim_friend", "an old switchboard launch post", None);
    let session = rig.connect().await.unwrap();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn(async move { session.run(cancel).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.sim
        .create_post_as("sim_friend", "the switchboard launch is today", None);
    rig.sim
        .create_post_as("sim_friend", "something unrelated", None);
    for _ in 0..50 {
        if !rig.env.events("x.search.match").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // X fails for a while: the connection is degraded, then connected again.
    rig.sim.inject(Fault::Status {
        path_prefix: "GET /2/tweets/search/recent".into(),
        status: 503,
        times: 1,
    });
    for _ in 0..50 {
        if rig
            .env
            .statuses
            .lock()
            .unwrap()
            .contains(&StatusKind::Connected)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    let matches = rig.env.events("x.search.match");
    assert_eq!(matches.len(), 1, "{matches:?}");
    assert_eq!(matches[0]["text"], "the switchboard launch is today");
    assert_eq!(matches[0]["watch"], "launch");
    let statuses = rig.env.statuses.lock().unwrap().clone();
    assert_eq!(
        statuses,
        vec![StatusKind::Degraded, StatusKind::Connected],
        "a failed poll degrades, the next good one recovers"
    );
    rig.assert_spec_clean();
}
