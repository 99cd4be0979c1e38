//! The Twitch simulator driven the way a real Twitch client talks to Twitch:
//! reqwest for OAuth and Helix, tokio-tungstenite for chat and EventSub, and
//! the `twitch-irc` crate's own parser to check that every chat line the
//! simulator sends is valid Twitch IRC, and `twitch_api`'s EventSub parser
//! to check that every EventSub frame is what Twitch sends.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_sim::twitch::{
    ChatLimit, ChatVia, ChatterMessage, Fault, TwitchSim, TwitchSimConfig,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use twitch_irc::message::{IRCMessage, ServerMessage, UserNoticeEvent};

const CLIENT_ID: &str = "sim-twitch-client";
const CLIENT_SECRET: &str = "sim-twitch-secret";
const DEMO_ACCESS: &str = "sim-demo-twitch-access";
const DEMO_REFRESH: &str = "sim-demo-twitch-refresh";
const STREAMER_ID: &str = "1000";
const REDIRECT: &str = "http://localhost:17563/oauth/callback";
const WAIT: Duration = Duration::from_secs(5);

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn start(config: TwitchSimConfig) -> TwitchSim {
    TwitchSim::start(config).await.unwrap()
}

fn query_of(location: &str) -> Vec<(String, String)> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Run the authorization code flow with `auto_approve` and return the code.
async fn authorize(sim: &TwitchSim, login: &str, scope: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/oauth2/authorize", sim.base_url())).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st-42"),
        ("auto_approve", "1"),
        ("login", login),
    ]);
    let response = http().get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    let pairs = query_of(&location);
    assert_eq!(get(&pairs, "state"), Some("st-42"));
    get(&pairs, "code").unwrap().to_owned()
}

async fn token_call(sim: &TwitchSim, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = http()
        .post(format!("{}/oauth2/token", sim.base_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn exchange(sim: &TwitchSim, code: &str) -> (StatusCode, Value) {
    token_call(
        sim,
        &[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await
}

async fn refresh(sim: &TwitchSim, token: &str) -> (StatusCode, Value) {
    token_call(
        sim,
        &[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
        ],
    )
    .await
}

/// A user token for `login` with these scopes, from the code flow.
async fn user_token(sim: &TwitchSim, login: &str, scope: &str) -> String {
    let code = authorize(sim, login, scope).await;
    let (status, body) = exchange(sim, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn validate(sim: &TwitchSim, token: &str) -> (StatusCode, Value) {
    let response = http()
        .get(format!("{}/oauth2/validate", sim.base_url()))
        .header("Authorization", format!("OAuth {token}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn helix(
    sim: &TwitchSim,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    http()
        .request(method, format!("{}{path}", sim.helix_url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("Client-Id", CLIENT_ID)
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn helix_get(sim: &TwitchSim, path: &str, token: &str) -> (StatusCode, Value) {
    send(helix(sim, reqwest::Method::GET, path, token)).await
}

async fn helix_post(sim: &TwitchSim, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    send(helix(sim, reqwest::Method::POST, path, token).json(&body)).await
}

// ----- websocket clients -----

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A chat client: lines in, lines out, each one parsed with twitch-irc.
struct Chat {
    ws: Ws,
    lines: VecDeque<String>,
    /// The raw text of the line `expect` returned last.
    last: String,
}

impl Chat {
    async fn connect(sim: &TwitchSim) -> Chat {
        let (ws, _) = tokio_tungstenite::connect_async(sim.irc_url())
            .await
            .unwrap();
        Chat {
            ws,
            lines: VecDeque::new(),
            last: String::new(),
        }
    }

    async fn send(&mut self, line: &str) {
        self.ws
            .send(Message::text(format!("{line}\r\n")))
            .await
            .unwrap();
    }

    /// The next line, or `None` when the socket closed.
    async fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Some(line);
            }
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no chat line in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    assert!(text.ends_with("\r\n"), "lines end with CRLF: {text:?}");
                    self.lines.extend(
                        text.split("\r\n")
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Read until a line with this command; every line read must parse.
    async fn expect(&mut self, command: &str) -> IRCMessage {
        loop {
            let line = self
                .next_line()
                .await
                .unwrap_or_else(|| panic!("closed before {command}"));
            let message = IRCMessage::parse(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            ServerMessage::try_from(message.clone())
                .unwrap_or_else(|e| panic!("not valid Twitch IRC: {line}: {e}"));
            if message.command == command {
                self.last = line;
                return message;
            }
        }
    }

    async fn login(sim: &TwitchSim, token: &str, nick: &str) -> Chat {
        let mut chat = Chat::connect(sim).await;
        chat.send("CAP REQ :twitch.tv/tags twitch.tv/commands twitch.tv/membership")
            .await;
        chat.send(&format!("PASS oauth:{token}")).await;
        chat.send(&format!("NICK {nick}")).await;
        let ack = chat.expect("CAP").await;
        assert_eq!(ack.params[1], "ACK");
        chat.expect("376").await;
        chat
    }

    async fn join(&mut self, channel: &str) {
        self.send(&format!("JOIN #{channel}")).await;
        self.expect("ROOMSTATE").await;
    }
}

fn tag<'a>(message: &'a IRCMessage, name: &str) -> Option<&'a str> {
    message.tags.0.get(name).map(String::as_str)
}

/// An EventSub client.
struct EventSub {
    ws: Ws,
}

enum Frame {
    Json(Value),
    Closed(Option<(u16, String)>),
}

impl EventSub {
    async fn connect_to(url: &str) -> (EventSub, Value) {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut es = EventSub { ws };
        let welcome = es.next_json().await;
        assert_eq!(welcome["metadata"]["message_type"], "session_welcome");
        (es, welcome)
    }

    async fn connect(sim: &TwitchSim) -> (EventSub, String) {
        let (es, welcome) = EventSub::connect_to(&sim.eventsub_url()).await;
        let id = welcome["payload"]["session"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (es, id)
    }

    async fn frame(&mut self, wait: Duration) -> Frame {
        loop {
            match tokio::time::timeout(wait, self.ws.next())
                .await
                .expect("no eventsub frame in time")
            {
                Some(Ok(Message::Text(text))) => {
                    // An independent client must understand every frame.
                    if let Err(error) = twitch_api::eventsub::Event::parse_websocket(&text) {
                        panic!("twitch_api cannot parse {text}: {error}");
                    }
                    return Frame::Json(serde_json::from_str(&text).unwrap());
                }
                Some(Ok(Message::Close(frame))) => {
                    return Frame::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                }
                None | Some(Err(_)) => return Frame::Closed(None),
                Some(Ok(_)) => {}
            }
        }
    }

    async fn next_json(&mut self) -> Value {
        match self.frame(WAIT).await {
            Frame::Json(v) => v,
            Frame::Closed(c) => panic!("eventsub closed: {c:?}"),
        }
    }

    /// The next message that is not a keepalive.
    async fn next_event(&mut self) -> Value {
        loop {
            let message = self.next_json().await;
            if message["metadata"]["message_type"] != "session_keepalive" {
                return message;
            }
        }
    }
}

async fn subscribe_to(
    sim: &TwitchSim,
    token: &str,
    kind: &str,
    version: &str,
    condition: Value,
    session: &str,
) -> (StatusCode, Value) {
    helix_post(
        sim,
        "/eventsub/subscriptions",
        token,
        json!({
            "type": kind,
            "version": version,
            "condition": condition,
            "transport": {"method": "websocket", "session_id": session},
        }),
    )
    .await
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ----- OAuth -----

#[tokio::test]
async fn code_flow_issues_tokens_and_refresh_tokens_rotate() {
    let sim = start(TwitchSimConfig::default()).await;

    // The consent page is HTML with an Authorize button; Deny redirects with access_denied.
    let page = http()
        .get(format!(
            "{}/oauth2/authorize?response_type=code&client_id={CLIENT_ID}&redirect_uri={REDIRECT}&scope=chat%3Aread&state=s1",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Authorize") && html.contains("chat:read"));
    let denied = http()
        .post(format!("{}/oauth2/authorize", sim.base_url()))
        .form(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("scope", "chat:read"),
            ("state", "s1"),
            ("decision", "deny"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FOUND);
    let pairs = query_of(denied.headers()["location"].to_str().unwrap());
    assert_eq!(get(&pairs, "error"), Some("access_denied"));
    assert_eq!(get(&pairs, "state"), Some("s1"));
    // A redirect URI that is neither registered nor loopback is refused.
    let (status, body) = send(http().get(format!(
        "{}/oauth2/authorize?response_type=code&client_id={CLIENT_ID}&redirect_uri=https://evil.example/cb",
        sim.base_url()
    )))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], 400);

    // The code exchange: Twitch's body, scope as an array.
    let code = authorize(&sim, "chatter_bob", "chat:read chat:edit").await;
    let (status, tokens) = exchange(&sim, &code).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 14_400);
    assert_eq!(tokens["scope"], json!(["chat:read", "chat:edit"]));
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, v) = validate(&sim, &access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["login"], "chatter_bob");
    assert_eq!(v["user_id"], "1002");
    assert_eq!(v["client_id"], CLIENT_ID);

    // Codes are single use.
    let (status, body) = exchange(&sim, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"status": 400, "message": "Invalid authorization code"})
    );

    // A wrong secret is 403.
    let (status, _) = token_call(
        &sim,
        &[
            ("client_id", CLIENT_ID),
            ("client_secret", "nope"),
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh1),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Each refresh hands out a new refresh token.
    let (status, second) = refresh(&sim, &refresh1).await;
    assert_eq!(status, StatusCode::OK);
    let refresh2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh1);
    assert_eq!(second["scope"], json!(["chat:read", "chat:edit"]));
    let access2 = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(validate(&sim, &access2).await.0, StatusCode::OK);

    // Spending the old one again is refused and kills the whole grant.
    let (status, body) = refresh(&sim, &refresh1).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"status": 400, "message": "Invalid refresh token"})
    );
    assert_eq!(refresh(&sim, &refresh2).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(validate(&sim, &access2).await.0, StatusCode::UNAUTHORIZED);

    assert_eq!(sim.refresh_calls(), 4);
    assert_eq!(sim.token_calls(), 6);
    sim.stop().await;
}

#[tokio::test]
async fn refresh_reuse_only_refuses_the_spent_token_when_configured() {
    let sim = start(TwitchSimConfig {
        revoke_grant_on_refresh_reuse: false,
        ..TwitchSimConfig::default()
    })
    .await;
    let (status, first) = refresh(&sim, DEMO_REFRESH).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(refresh(&sim, DEMO_REFRESH).await.0, StatusCode::BAD_REQUEST);
    let newest = first["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&sim, newest).await.0, StatusCode::OK);
    sim.stop().await;
}

#[tokio::test]
async fn validate_expire_revoke_and_app_tokens() {
    let sim = start(TwitchSimConfig::default()).await;
    let (status, v) = validate(&sim, DEMO_ACCESS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["login"], "simstreamer");
    assert_eq!(v["user_id"], STREAMER_ID);
    assert!(v["expires_in"].as_u64().unwrap() > 14_000);
    let scopes = v["scopes"].as_array().unwrap();
    for scope in [
        "chat:read",
        "chat:edit",
        "moderator:read:followers",
        "clips:edit",
        "user:write:chat",
    ] {
        assert!(scopes.contains(&json!(scope)), "{scope}");
    }
    let (status, body) = validate(&sim, "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"status": 401, "message": "invalid access token"})
    );
    let (status, _) = send(http().get(format!("{}/oauth2/validate", sim.base_url()))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Expiry: the seeded refresh token still works and the new access token validates.
    sim.expire_access_tokens();
    assert_eq!(
        validate(&sim, DEMO_ACCESS).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, fresh) = refresh(&sim, DEMO_REFRESH).await;
    assert_eq!(status, StatusCode::OK);
    let access = fresh["access_token"].as_str().unwrap().to_owned();
    assert_eq!(validate(&sim, &access).await.1["login"], "simstreamer");

    // Revocation of access tokens, then of refresh tokens.
    sim.revoke_access_tokens("simstreamer");
    assert_eq!(validate(&sim, &access).await.0, StatusCode::UNAUTHORIZED);
    sim.revoke_refresh_tokens("simstreamer");
    let newest = fresh["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&sim, newest).await.0, StatusCode::BAD_REQUEST);

    // Client credentials: an app token validates without a user.
    let (status, app) = token_call(
        &sim,
        &[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let app_token = app["access_token"].as_str().unwrap().to_owned();
    let (status, v) = validate(&sim, &app_token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v.get("login").is_none() && v.get("user_id").is_none());

    // POST /oauth2/revoke.
    let token = user_token(&sim, "chatter_ann", "chat:read").await;
    let response = http()
        .post(format!("{}/oauth2/revoke", sim.base_url()))
        .form(&[("client_id", CLIENT_ID), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(validate(&sim, &token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(sim.validate_calls(), 8);
    sim.stop().await;
}

// ----- Helix -----

#[tokio::test]
async fn helix_checks_token_client_id_and_scopes() {
    let sim = start(TwitchSimConfig::default()).await;
    let (status, body) = helix_get(&sim, "/users", "bogus").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "Unauthorized", "status": 401, "message": "Invalid OAuth token"})
    );
    let (status, body) = send(
        http()
            .get(format!("{}/users", sim.helix_url()))
            .header("Authorization", format!("Bearer {DEMO_ACCESS}"))
            .header("Client-Id", "someone-else"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Client ID and OAuth token do not match");

    let response = helix(&sim, reqwest::Method::GET, "/users", DEMO_ACCESS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["ratelimit-limit"], "800");
    assert_eq!(response.headers()["ratelimit-remaining"], "799");
    assert!(response.headers().contains_key("ratelimit-reset"));

    // A token without the scope.
    let token = user_token(&sim, "simstreamer", "chat:read").await;
    let (status, body) = send(
        helix(
            &sim,
            reqwest::Method::PATCH,
            "/channels?broadcaster_id=1000",
            &token,
        )
        .json(&json!({"title": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Missing scope: channel:manage:broadcast");

    // Expired tokens are 401 on Helix too.
    sim.expire_access_tokens();
    assert_eq!(
        helix_get(&sim, "/users", DEMO_ACCESS).await.0,
        StatusCode::UNAUTHORIZED
    );
    sim.stop().await;
}

#[tokio::test]
async fn helix_points_bucket_runs_dry_with_429() {
    let sim = start(TwitchSimConfig {
        helix_points_per_minute: 5,
        ..TwitchSimConfig::default()
    })
    .await;
    for expected in (0..5).rev() {
        let response = helix(&sim, reqwest::Method::GET, "/users", DEMO_ACCESS)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["ratelimit-remaining"],
            expected.to_string().as_str()
        );
    }
    let response = helix(&sim, reqwest::Method::GET, "/users", DEMO_ACCESS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["ratelimit-remaining"], "0");
    let reset: u64 = response.headers()["ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset > now && reset <= now + 61, "reset {reset} now {now}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 429);
    sim.stop().await;
}

#[tokio::test]
async fn helix_users_games_and_channels() {
    let sim = start(TwitchSimConfig::default()).await;
    let (_, me) = helix_get(&sim, "/users", DEMO_ACCESS).await;
    assert_eq!(me["data"][0]["id"], STREAMER_ID);
    assert_eq!(me["data"][0]["login"], "simstreamer");
    assert_eq!(me["data"][0]["broadcaster_type"], "affiliate");
    let (_, some) = helix_get(
        &sim,
        "/users?login=chatter_ann&login=raider_ray",
        DEMO_ACCESS,
    )
    .await;
    let logins: Vec<&str> = some["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, vec!["chatter_ann", "raider_ray"]);

    let (_, games) = helix_get(&sim, "/games?name=Just%20Chatting", DEMO_ACCESS).await;
    assert_eq!(games["data"][0]["id"], "509658");
    assert!(
        games["data"][0]["box_art_url"]
            .as_str()
            .unwrap()
            .contains("{width}")
    );
    assert_eq!(
        helix_get(&sim, "/games", DEMO_ACCESS).await.0,
        StatusCode::BAD_REQUEST
    );
    let (_, found) = helix_get(&sim, "/search/categories?query=mine", DEMO_ACCESS).await;
    assert_eq!(found["data"][0]["name"], "Minecraft");

    let patch = |body: Value| {
        send(
            helix(
                &sim,
                reqwest::Method::PATCH,
                "/channels?broadcaster_id=1000",
                DEMO_ACCESS,
            )
            .json(&body),
        )
    };
    let (status, _) = patch(json!({"title": "Shipping the Twitch sim", "game_id": "27471", "tags": ["Rust", "English"]})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, channel) = helix_get(&sim, "/channels?broadcaster_id=1000", DEMO_ACCESS).await;
    assert_eq!(channel["data"][0]["title"], "Shipping the Twitch sim");
    assert_eq!(channel["data"][0]["game_name"], "Minecraft");
    assert_eq!(channel["data"][0]["tags"], json!(["Rust", "English"]));
    let seen = sim.channel("simstreamer").unwrap();
    assert_eq!(
        (seen.game_id.as_str(), seen.game_name.as_str()),
        ("27471", "Minecraft")
    );

    let (status, body) = patch(json!({"game_id": "424242"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "Bad Request");
    let eleven: Vec<String> = (0..11).map(|i| format!("tag{i}")).collect();
    assert_eq!(
        patch(json!({"tags": eleven})).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        patch(json!({"tags": ["a".repeat(26)]})).await.0,
        StatusCode::BAD_REQUEST
    );
    // Someone else's channel.
    let (status, _) = send(
        helix(
            &sim,
            reqwest::Method::PATCH,
            "/channels?broadcaster_id=1001",
            DEMO_ACCESS,
        )
        .json(&json!({"title": "mine now"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        sim.channel("simstreamer").unwrap().title,
        "Shipping the Twitch sim"
    );
    sim.stop().await;
}

#[tokio::test]
async fn helix_shoutouts_honour_both_cooldowns() {
    let sim = start(TwitchSimConfig {
        shoutout_cooldown: Duration::from_millis(300),
        ..TwitchSimConfig::default()
    })
    .await;
    let shoutout = |to: &str| {
        let path = format!(
            "/chat/shoutouts?from_broadcaster_id=1000&to_broadcaster_id={to}&moderator_id=1000"
        );
        send(helix(&sim, reqwest::Method::POST, &path, DEMO_ACCESS))
    };
    assert_eq!(shoutout("1005").await.0, StatusCode::NO_CONTENT);
    assert_eq!(shoutout("1001").await.0, StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(Duration::from_millis(350)).await; // let the 2-minute stand-in pass
    assert_eq!(shoutout("1001").await.0, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (status, body) = shoutout("1005").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "same target within 60 minutes"
    );
    assert_eq!(body["status"], 429);
    assert_eq!(shoutout("1000").await.0, StatusCode::BAD_REQUEST);
    let sent: Vec<String> = sim
        .shoutouts()
        .iter()
        .map(|s| s.to_broadcaster_id.clone())
        .collect();
    assert_eq!(sent, vec!["1005", "1001"]);
    sim.stop().await;
}

#[tokio::test]
async fn helix_clips_appear_after_processing() {
    let sim = start(TwitchSimConfig {
        clip_ready_after: Duration::from_millis(300),
        ..TwitchSimConfig::default()
    })
    .await;
    let (status, created) =
        helix_post(&sim, "/clips?broadcaster_id=1000", DEMO_ACCESS, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = created["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(
        created["data"][0]["edit_url"]
            .as_str()
            .unwrap()
            .contains(&id)
    );
    let path = format!("/clips?id={id}");
    let (_, early) = helix_get(&sim, &path, DEMO_ACCESS).await;
    assert_eq!(early["data"], json!([]));
    assert!(!sim.clips()[0].ready);
    let deadline = Instant::now() + WAIT;
    let clip = loop {
        let (_, body) = helix_get(&sim, &path, DEMO_ACCESS).await;
        if let Some(clip) = body["data"].get(0) {
            break clip.clone();
        }
        assert!(Instant::now() < deadline, "clip never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(clip["broadcaster_id"], STREAMER_ID);
    assert!(clip["url"].as_str().unwrap().ends_with(&id));
    assert!(clip["thumbnail_url"].as_str().unwrap().contains(&id));
    assert!(sim.clips()[0].ready);
    sim.stop().await;
}

#[tokio::test]
async fn helix_bans_followers_and_subscriptions() {
    let sim = start(TwitchSimConfig::default()).await;
    let bans = "/moderation/bans?broadcaster_id=1000&moderator_id=1000";
    let (status, ban) = helix_post(
        &sim,
        bans,
        DEMO_ACCESS,
        json!({"data": {"user_id": "1003", "reason": "spam"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ban["data"][0]["user_id"], "1003");
    assert_eq!(ban["data"][0]["end_time"], Value::Null);
    let (status, _) = helix_post(
        &sim,
        bans,
        DEMO_ACCESS,
        json!({"data": {"user_id": "1003"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "already banned");
    let (status, timeout) = helix_post(
        &sim,
        bans,
        DEMO_ACCESS,
        json!({"data": {"user_id": "1004", "duration": 600}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(timeout["data"][0]["end_time"].is_string());
    assert_eq!(
        sim.bans().iter().map(|b| b.duration).collect::<Vec<_>>(),
        vec![None, Some(600)]
    );

    for viewer in ["first_fan", "second_fan", "third_fan"] {
        sim.follow("simstreamer", viewer);
    }
    let (_, page1) = helix_get(
        &sim,
        "/channels/followers?broadcaster_id=1000&first=2",
        DEMO_ACCESS,
    )
    .await;
    assert_eq!(page1["total"], 3);
    let names: Vec<&str> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["user_login"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["third_fan", "second_fan"], "newest first");
    assert!(
        page1["data"][0]["followed_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let cursor = page1["pagination"]["cursor"].as_str().unwrap();
    let (_, page2) = helix_get(
        &sim,
        &format!("/channels/followers?broadcaster_id=1000&first=2&after={cursor}"),
        DEMO_ACCESS,
    )
    .await;
    assert_eq!(page2["data"][0]["user_login"], "first_fan");
    assert_eq!(page2["pagination"], json!({}));

    sim.subscribe("simstreamer", "chatter_ann", "2000");
    sim.gift("simstreamer", "chatter_bob", 2, "1000");
    let (status, subs) = helix_get(&sim, "/subscriptions?broadcaster_id=1000", DEMO_ACCESS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(subs["total"], 3);
    assert_eq!(subs["points"], 4);
    let gifted: Vec<&Value> = subs["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["is_gift"] == true)
        .collect();
    assert_eq!(gifted.len(), 2);
    assert_eq!(gifted[0]["gifter_login"], "chatter_bob");
    sim.stop().await;
}

#[tokio::test]
async fn faults_and_request_records() {
    let sim = start(TwitchSimConfig::default()).await;
    sim.inject(Fault::Status {
        path_prefix: "POST /helix/clips".into(),
        status: 503,
        times: 1,
    });
    let (status, body) =
        helix_post(&sim, "/clips?broadcaster_id=1000", DEMO_ACCESS, json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], 503);
    assert_eq!(
        helix_post(&sim, "/clips?broadcaster_id=1000", DEMO_ACCESS, json!({}))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    sim.inject(Fault::Delay {
        path_prefix: "/helix/users".into(),
        delay: Duration::from_millis(200),
        times: 1,
    });
    let before = Instant::now();
    assert_eq!(
        helix_get(&sim, "/users", DEMO_ACCESS).await.0,
        StatusCode::OK
    );
    assert!(before.elapsed() >= Duration::from_millis(200));
    sim.inject(Fault::Status {
        path_prefix: "/oauth2/token".into(),
        status: 500,
        times: 5,
    });
    sim.clear_faults();
    assert_eq!(refresh(&sim, DEMO_REFRESH).await.0, StatusCode::OK);

    let requests = sim.requests();
    let clips: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/helix/clips")
        .collect();
    assert_eq!(clips.len(), 2);
    assert_eq!(clips[0].status, Some(503));
    assert_eq!(clips[1].status, Some(202));
    assert_eq!(
        clips[0].header("authorization"),
        Some("Bearer"),
        "secrets are not recorded"
    );
    assert_eq!(clips[0].query_value("broadcaster_id"), Some("1000"));
    sim.stop().await;
}

// ----- chat -----

#[tokio::test]
async fn irc_login_join_and_tags_round_trip() {
    let sim = start(TwitchSimConfig::default()).await;

    // A bad token: Twitch's notice, then the socket closes.
    let mut bad = Chat::connect(&sim).await;
    bad.send("PASS oauth:wrong").await;
    bad.send("NICK simstreamer").await;
    assert_eq!(
        bad.next_line().await.unwrap(),
        ":tmi.twitch.tv NOTICE * :Login authentication failed"
    );
    assert!(bad.next_line().await.is_none());

    let mut streamer = Chat::connect(&sim).await;
    streamer
        .send("CAP REQ :twitch.tv/tags twitch.tv/commands twitch.tv/membership")
        .await;
    streamer.send(&format!("PASS oauth:{DEMO_ACCESS}")).await;
    streamer.send("NICK simstreamer").await;
    assert_eq!(
        streamer.next_line().await.unwrap(),
        ":tmi.twitch.tv CAP * ACK :twitch.tv/tags twitch.tv/commands twitch.tv/membership"
    );
    for code in ["001", "002", "003", "004", "375", "372", "376"] {
        let line = streamer.next_line().await.unwrap();
        let message = IRCMessage::parse(&line).unwrap();
        assert_eq!(message.command, code, "{line}");
        assert_eq!(message.params[0], "simstreamer");
    }
    let global = streamer.expect("GLOBALUSERSTATE").await;
    assert_eq!(tag(&global, "user-id"), Some(STREAMER_ID));
    streamer.send("JOIN #simstreamer").await;
    let join = streamer.expect("JOIN").await;
    assert_eq!(join.params[0], "#simstreamer");
    streamer.expect("353").await;
    streamer.expect("366").await;
    let userstate = streamer.expect("USERSTATE").await;
    assert_eq!(tag(&userstate, "badges"), Some("broadcaster/1"));
    let roomstate = streamer.expect("ROOMSTATE").await;
    assert_eq!(tag(&roomstate, "room-id"), Some(STREAMER_ID));
    assert_eq!(sim.irc_clients_joined("simstreamer"), 1);

    // A scripted chatter with badges, emotes and a cheer.
    let mut cheer = ChatterMessage::new("simstreamer", "chatter_ann", "Kappa Keepo Kappa");
    cheer.bits = Some(100);
    cheer.badges = vec![
        ("subscriber".into(), "12".into()),
        ("bits".into(), "100".into()),
    ];
    let first_id = sim.send_chat(cheer);
    let raw = streamer.expect("PRIVMSG").await;
    let ServerMessage::Privmsg(message) = ServerMessage::try_from(raw.clone()).unwrap() else {
        panic!("not a privmsg");
    };
    assert_eq!(message.message_id, first_id);
    assert_eq!(message.sender.login, "chatter_ann");
    assert_eq!(message.sender.name, "ChatterAnn");
    assert_eq!(message.channel_id, STREAMER_ID);
    assert_eq!(message.bits, Some(100));
    assert_eq!(tag(&raw, "badges"), Some("subscriber/12,bits/100"));
    assert_eq!(tag(&raw, "badge-info"), Some("subscriber/12"));
    assert_eq!(tag(&raw, "emotes"), Some("25:0-4,12-16/1902:6-10"));
    let emotes: Vec<(String, usize, usize)> = message
        .emotes
        .iter()
        .map(|e| (e.id.clone(), e.char_range.start, e.char_range.end))
        .collect();
    assert_eq!(
        emotes,
        vec![
            ("25".into(), 0, 5),
            ("1902".into(), 6, 11),
            ("25".into(), 12, 17)
        ]
    );
    for name in [
        "color",
        "display-name",
        "first-msg",
        "flags",
        "id",
        "mod",
        "room-id",
        "subscriber",
        "tmi-sent-ts",
        "turbo",
        "user-id",
        "user-type",
    ] {
        assert!(raw.tags.0.contains_key(name), "missing tag {name}");
    }

    // A reply whose parent text needs escaping.
    let parent = sim.send_chat(ChatterMessage::new(
        "simstreamer",
        "chatter_bob",
        "semi;colon and \\ backslash",
    ));
    streamer.expect("PRIVMSG").await;
    let mut reply = ChatterMessage::new("simstreamer", "chatter_ann", "@chatter_bob indeed");
    reply.reply_to = Some(parent.clone());
    sim.send_chat(reply);
    let raw = streamer.expect("PRIVMSG").await;
    assert!(
        streamer
            .last
            .contains("reply-parent-msg-body=semi\\:colon\\sand\\s\\\\\\sbackslash;"),
        "IRCv3 escaping on the wire: {}",
        streamer.last
    );
    let ServerMessage::Privmsg(message) = ServerMessage::try_from(raw.clone()).unwrap() else {
        panic!("not a privmsg");
    };
    let parent_info = message.reply_parent.expect("reply tags");
    assert_eq!(parent_info.message_id, parent);
    assert_eq!(parent_info.message_text, "semi;colon and \\ backslash");
    assert_eq!(parent_info.reply_parent_user.login, "chatter_bob");
    assert_eq!(tag(&raw, "reply-parent-user-id"), Some("1002"));
    assert_eq!(tag(&raw, "reply-parent-display-name"), Some("ChatterBob"));

    // A second client: what one client says reaches the other with full tags.
    let bob_token = user_token(&sim, "chatter_bob", "chat:read chat:edit").await;
    let mut bob = Chat::login(&sim, &bob_token, "chatter_bob").await;
    bob.join("simstreamer").await;
    assert_eq!(sim.irc_clients_joined("#SimStreamer"), 2);
    streamer
        .send(&format!(
            "@reply-parent-msg-id={parent} PRIVMSG #simstreamer :thanks bob"
        ))
        .await;
    let echo = streamer.expect("USERSTATE").await;
    let sent_id = tag(&echo, "id").unwrap().to_owned();
    let raw = bob.expect("PRIVMSG").await;
    let ServerMessage::Privmsg(message) = ServerMessage::try_from(raw.clone()).unwrap() else {
        panic!("not a privmsg");
    };
    assert_eq!(message.message_text, "thanks bob");
    assert_eq!(message.message_id, sent_id);
    assert_eq!(message.sender.id, STREAMER_ID);
    assert!(message.badges.iter().any(|b| b.name == "broadcaster"));
    assert_eq!(message.reply_parent.unwrap().message_id, parent);
    let recorded = sim.chat_messages("simstreamer");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].sender, "simstreamer");
    assert_eq!(recorded[0].via, ChatVia::Irc);
    assert!(recorded[0].delivered);
    assert_eq!(recorded[0].reply_to.as_deref(), Some(parent.as_str()));

    // USERNOTICEs for sub, resub, gifts and raids parse as the right events.
    sim.subscribe("simstreamer", "chatter_dan", "1000");
    sim.resubscribe("simstreamer", "chatter_ann", 7, "seven months Kappa");
    sim.gift("simstreamer", "chatter_cat", 1, "1000");
    sim.raid("raider_ray", "simstreamer", 42);
    let mut events = Vec::new();
    for _ in 0..4 {
        let raw = bob.expect("USERNOTICE").await;
        let ServerMessage::UserNotice(notice) = ServerMessage::try_from(raw).unwrap() else {
            panic!("not a usernotice");
        };
        events.push(notice);
    }
    assert!(matches!(
        events[0].event,
        UserNoticeEvent::SubOrResub {
            is_resub: false,
            ..
        }
    ));
    assert!(matches!(
        events[1].event,
        UserNoticeEvent::SubOrResub {
            is_resub: true,
            cumulative_months: 7,
            ..
        }
    ));
    assert_eq!(
        events[1].message_text.as_deref(),
        Some("seven months Kappa")
    );
    assert!(matches!(events[2].event, UserNoticeEvent::SubGift { .. }));
    assert!(matches!(
        events[3].event,
        UserNoticeEvent::Raid {
            viewer_count: 42,
            ..
        }
    ));
    assert_eq!(events[3].sender.login, "raider_ray");
    sim.stop().await;
}

#[tokio::test]
async fn irc_and_helix_share_the_chat_limit() {
    let sim = start(TwitchSimConfig {
        chat_limit: ChatLimit {
            messages: 2,
            per: Duration::from_secs(30),
        },
        chat_limit_moderator: ChatLimit {
            messages: 3,
            per: Duration::from_secs(30),
        },
        ..TwitchSimConfig::default()
    })
    .await;
    let mut streamer = Chat::login(&sim, DEMO_ACCESS, "simstreamer").await;
    streamer.join("simstreamer").await;
    let ann_token = user_token(&sim, "chatter_ann", "chat:read chat:edit").await;
    let mut ann = Chat::login(&sim, &ann_token, "chatter_ann").await;
    ann.join("simstreamer").await;

    // The broadcaster has the moderator budget: three messages (two over Helix).
    for i in 0..2 {
        let (status, body) = helix_post(
            &sim,
            "/chat/messages",
            DEMO_ACCESS,
            json!({"broadcaster_id": STREAMER_ID, "sender_id": STREAMER_ID, "message": format!("helix {i}")}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"][0]["is_sent"], true);
        assert_eq!(body["data"][0]["drop_reason"], Value::Null);
        let ServerMessage::Privmsg(m) =
            ServerMessage::try_from(ann.expect("PRIVMSG").await).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.message_text, format!("helix {i}"));
        assert_eq!(
            m.message_id,
            body["data"][0]["message_id"].as_str().unwrap()
        );
    }
    streamer.send("PRIVMSG #simstreamer :irc one").await;
    streamer.expect("USERSTATE").await;
    // Over the budget, on either path: dropped, counted, NOTICE msg_ratelimit.
    streamer.send("PRIVMSG #simstreamer :irc two").await;
    let notice = streamer.expect("NOTICE").await;
    assert_eq!(tag(&notice, "msg-id"), Some("msg_ratelimit"));
    let (_, body) = helix_post(
        &sim,
        "/chat/messages",
        DEMO_ACCESS,
        json!({"broadcaster_id": STREAMER_ID, "sender_id": STREAMER_ID, "message": "helix late"}),
    )
    .await;
    assert_eq!(body["data"][0]["is_sent"], false);
    assert_eq!(body["data"][0]["drop_reason"]["code"], "msg_ratelimit");
    assert_eq!(sim.chat_violations(), 2);

    // An ordinary chatter has the smaller budget.
    ann.send("PRIVMSG #simstreamer :ann 1").await;
    ann.send("PRIVMSG #simstreamer :ann 2").await;
    ann.send("PRIVMSG #simstreamer :ann 3").await;
    let notice = ann.expect("NOTICE").await;
    assert_eq!(tag(&notice, "msg-id"), Some("msg_ratelimit"));
    assert_eq!(sim.chat_violations(), 3);

    // What the streamer's client saw: "irc one" is not echoed, ann 1 and 2 arrive, ann 3 never does.
    let marker = sim.send_chat(ChatterMessage::new("simstreamer", "chatter_dan", "marker"));
    let mut seen = Vec::new();
    loop {
        let ServerMessage::Privmsg(m) =
            ServerMessage::try_from(streamer.expect("PRIVMSG").await).unwrap()
        else {
            panic!()
        };
        if m.message_id == marker {
            break;
        }
        seen.push(m.message_text);
    }
    assert_eq!(seen, vec!["ann 1", "ann 2"]);

    let recorded = sim.chat_messages("simstreamer");
    let summary: Vec<(&str, ChatVia, bool)> = recorded
        .iter()
        .map(|m| (m.text.as_str(), m.via, m.delivered))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("helix 0", ChatVia::Helix, true),
            ("helix 1", ChatVia::Helix, true),
            ("irc one", ChatVia::Irc, true),
            ("irc two", ChatVia::Irc, false),
            ("helix late", ChatVia::Helix, false),
            ("ann 1", ChatVia::Irc, true),
            ("ann 2", ChatVia::Irc, true),
            ("ann 3", ChatVia::Irc, false),
        ]
    );
    // Helix rejects oversized messages and senders that are not the token's user.
    let (status, _) = helix_post(
        &sim,
        "/chat/messages",
        DEMO_ACCESS,
        json!({"broadcaster_id": STREAMER_ID, "sender_id": STREAMER_ID, "message": "x".repeat(501)}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = helix_post(
        &sim,
        "/chat/messages",
        DEMO_ACCESS,
        json!({"broadcaster_id": STREAMER_ID, "sender_id": "1001", "message": "spoof"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    sim.stop().await;
}

#[tokio::test]
async fn irc_ping_pong_reconnect_and_drop() {
    let sim = start(TwitchSimConfig {
        irc_ping_interval: Duration::from_millis(200),
        irc_pong_timeout: Duration::from_millis(300),
        ..TwitchSimConfig::default()
    })
    .await;
    let mut chat = Chat::login(&sim, DEMO_ACCESS, "simstreamer").await;
    chat.send("PING :keepalive-check").await;
    let pong = chat.expect("PONG").await;
    assert_eq!(
        pong.params.last().map(String::as_str),
        Some("keepalive-check")
    );
    for _ in 0..2 {
        let ping = chat.expect("PING").await;
        assert_eq!(ping.params, vec!["tmi.twitch.tv"]);
        chat.send("PONG :tmi.twitch.tv").await;
    }
    sim.irc_reconnect();
    chat.expect("RECONNECT").await;
    // Stop answering: the server gives up on us.
    let started = Instant::now();
    while let Some(line) = chat.next_line().await {
        assert!(line.contains("PING"), "{line}");
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    let mut other = Chat::login(&sim, DEMO_ACCESS, "simstreamer").await;
    other.join("simstreamer").await;
    sim.drop_irc();
    let frame = tokio::time::timeout(WAIT, other.ws.next()).await.unwrap();
    assert!(
        !matches!(frame, Some(Ok(Message::Close(_)))),
        "a drop sends no close frame: {frame:?}"
    );
    eventually("the chat client to leave", || {
        sim.irc_clients_joined("simstreamer") == 0
    })
    .await;

    // justinfan logs in anonymously and cannot speak.
    let mut anon = Chat::connect(&sim).await;
    anon.send("NICK justinfan12345").await;
    anon.expect("376").await;
    anon.send("JOIN #simstreamer").await;
    anon.expect("366").await;
    anon.send("PRIVMSG #simstreamer :hi").await;
    anon.send("PING :after").await;
    anon.expect("PONG").await;
    assert!(sim.chat_messages("simstreamer").is_empty());
    sim.stop().await;
}

// ----- EventSub -----

#[tokio::test]
async fn eventsub_welcome_subscriptions_and_notification_shapes() {
    let sim = start(TwitchSimConfig::default()).await;
    let (ws, welcome) = EventSub::connect_to(&sim.eventsub_url()).await;
    let mut es = ws;
    let session = &welcome["payload"]["session"];
    assert_eq!(session["status"], "connected");
    assert_eq!(session["keepalive_timeout_seconds"], 10);
    assert_eq!(session["reconnect_url"], Value::Null);
    assert!(session["connected_at"].as_str().unwrap().ends_with('Z'));
    assert!(welcome["metadata"]["message_id"].is_string());
    assert!(
        welcome["metadata"]["message_timestamp"]
            .as_str()
            .unwrap()
            .len()
            >= 29,
        "nanoseconds"
    );
    let session_id = session["id"].as_str().unwrap().to_owned();
    assert_eq!(sim.eventsub_sessions_open(), 1);

    let b = json!({"broadcaster_user_id": STREAMER_ID});
    let (status, created) = subscribe_to(
        &sim,
        DEMO_ACCESS,
        "channel.follow",
        "2",
        json!({"broadcaster_user_id": STREAMER_ID, "moderator_user_id": STREAMER_ID}),
        &session_id,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let sub = &created["data"][0];
    assert_eq!(sub["status"], "enabled");
    assert_eq!(sub["type"], "channel.follow");
    assert_eq!(sub["transport"]["method"], "websocket");
    assert_eq!(sub["transport"]["session_id"], session_id.as_str());
    assert_eq!(created["total"], 1);
    for (kind, condition) in [
        ("channel.subscribe", b.clone()),
        ("channel.subscription.message", b.clone()),
        ("channel.subscription.gift", b.clone()),
        ("channel.cheer", b.clone()),
        (
            "channel.raid",
            json!({"to_broadcaster_user_id": STREAMER_ID}),
        ),
        (
            "channel.chat.message",
            json!({"broadcaster_user_id": STREAMER_ID, "user_id": STREAMER_ID}),
        ),
    ] {
        let (status, body) =
            subscribe_to(&sim, DEMO_ACCESS, kind, "1", condition, &session_id).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{kind}: {body}");
    }

    // Refusals.
    let follow = json!({"broadcaster_user_id": STREAMER_ID, "moderator_user_id": STREAMER_ID});
    let (status, body) = subscribe_to(
        &sim,
        DEMO_ACCESS,
        "channel.follow",
        "2",
        follow.clone(),
        &session_id,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "Conflict");
    let (status, _) = subscribe_to(
        &sim,
        DEMO_ACCESS,
        "channel.follow",
        "1",
        follow.clone(),
        &session_id,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "channel.follow v1 is gone");
    let (status, body) = subscribe_to(
        &sim,
        DEMO_ACCESS,
        "channel.follow",
        "2",
        b.clone(),
        &session_id,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("moderator_user_id")
    );
    let (status, _) = subscribe_to(
        &sim,
        DEMO_ACCESS,
        "channel.subscribe",
        "1",
        b.clone(),
        "no-such-session",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let weak = user_token(&sim, "simstreamer", "chat:read").await;
    let (status, _) = subscribe_to(
        &sim,
        &weak,
        "channel.subscribe",
        "1",
        b.clone(),
        &session_id,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = subscribe_to(
        &sim,
        DEMO_ACCESS,
        "channel.subscribe",
        "1",
        json!({"broadcaster_user_id": "1001"}),
        &session_id,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "someone else's channel");

    // Notifications, in Twitch's shape.
    let id = sim.follow("simstreamer", "fresh_follower");
    let n = es.next_event().await;
    assert_eq!(n["metadata"]["message_type"], "notification");
    assert_eq!(n["metadata"]["message_id"], id.as_str());
    assert_eq!(n["metadata"]["subscription_type"], "channel.follow");
    assert_eq!(n["metadata"]["subscription_version"], "2");
    assert_eq!(n["payload"]["subscription"]["id"], sub["id"]);
    let event = &n["payload"]["event"];
    assert_eq!(event["user_login"], "fresh_follower");
    assert_eq!(event["broadcaster_user_id"], STREAMER_ID);
    assert_eq!(event["broadcaster_user_login"], "simstreamer");
    assert_eq!(event["broadcaster_user_name"], "SimStreamer");
    for field in ["user_id", "user_name", "followed_at"] {
        assert!(event[field].is_string(), "{field}");
    }

    sim.subscribe("simstreamer", "chatter_dan", "1000");
    let n = es.next_event().await;
    assert_eq!(n["metadata"]["subscription_type"], "channel.subscribe");
    assert_eq!(n["payload"]["event"]["tier"], "1000");
    assert_eq!(n["payload"]["event"]["is_gift"], false);
    assert_eq!(n["payload"]["event"]["user_login"], "chatter_dan");

    sim.resubscribe("simstreamer", "chatter_ann", 14, "Kappa still here");
    let n = es.next_event().await;
    assert_eq!(
        n["metadata"]["subscription_type"],
        "channel.subscription.message"
    );
    let event = &n["payload"]["event"];
    assert_eq!(event["message"]["text"], "Kappa still here");
    assert_eq!(
        event["message"]["emotes"],
        json!([{"begin": 0, "end": 4, "id": "25"}])
    );
    assert_eq!(event["cumulative_months"], 14);
    assert_eq!(event["streak_months"], 14);
    assert_eq!(event["duration_months"], 1);
    assert_eq!(event["tier"], "1000");

    sim.gift("simstreamer", "chatter_bob", 2, "2000");
    let n = es.next_event().await;
    assert_eq!(
        n["metadata"]["subscription_type"],
        "channel.subscription.gift"
    );
    let event = &n["payload"]["event"];
    assert_eq!(
        (event["total"].clone(), event["tier"].clone()),
        (json!(2), json!("2000"))
    );
    assert_eq!(event["cumulative_total"], 2);
    assert_eq!(event["is_anonymous"], false);
    assert_eq!(event["user_login"], "chatter_bob");
    for _ in 0..2 {
        let n = es.next_event().await;
        assert_eq!(n["metadata"]["subscription_type"], "channel.subscribe");
        assert_eq!(n["payload"]["event"]["is_gift"], true);
    }

    sim.raid("raider_ray", "simstreamer", 77);
    let n = es.next_event().await;
    assert_eq!(n["metadata"]["subscription_type"], "channel.raid");
    let event = &n["payload"]["event"];
    assert_eq!(event["from_broadcaster_user_login"], "raider_ray");
    assert_eq!(event["from_broadcaster_user_id"], "1005");
    assert_eq!(event["from_broadcaster_user_name"], "Raider_Ray");
    assert_eq!(event["to_broadcaster_user_id"], STREAMER_ID);
    assert_eq!(event["to_broadcaster_user_login"], "simstreamer");
    assert_eq!(event["viewers"], 77);

    // A cheer is a chat message with bits, then the cheer event.
    sim.cheer("simstreamer", "chatter_cat", 250, "take my bits");
    let chat = es.next_event().await;
    assert_eq!(
        chat["metadata"]["subscription_type"],
        "channel.chat.message"
    );
    assert_eq!(chat["payload"]["event"]["cheer"]["bits"], 250);
    assert_eq!(
        chat["payload"]["event"]["message"]["text"],
        "Cheer250 take my bits"
    );
    let n = es.next_event().await;
    assert_eq!(n["metadata"]["subscription_type"], "channel.cheer");
    let event = &n["payload"]["event"];
    assert_eq!(event["bits"], 250);
    assert_eq!(event["is_anonymous"], false);
    assert_eq!(event["user_login"], "chatter_cat");
    assert_eq!(event["message"], "Cheer250 take my bits");

    // Listing and deleting.
    let (_, listed) = helix_get(
        &sim,
        "/eventsub/subscriptions?type=channel.follow",
        DEMO_ACCESS,
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["total"], 7);
    let path = format!("/eventsub/subscriptions?id={}", sub["id"].as_str().unwrap());
    let (status, _) = send(helix(&sim, reqwest::Method::DELETE, &path, DEMO_ACCESS)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(helix(&sim, reqwest::Method::DELETE, &path, DEMO_ACCESS)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(sim.eventsub_subscriptions().len(), 6);
    sim.follow("simstreamer", "unseen_follower");
    let marker = sim.subscribe("simstreamer", "unseen_sub", "1000");
    assert_eq!(
        es.next_event().await["metadata"]["message_id"],
        marker.as_str(),
        "no follow after delete"
    );
    sim.stop().await;
}

#[tokio::test]
async fn eventsub_keepalives_and_unused_sessions_close_with_4003() {
    let sim = start(TwitchSimConfig {
        eventsub_keepalive: Duration::from_millis(800),
        ..TwitchSimConfig::default()
    })
    .await;
    let (mut idle, _) = EventSub::connect(&sim).await;
    let (mut used, session) = EventSub::connect(&sim).await;
    let (status, _) = subscribe_to(
        &sim,
        DEMO_ACCESS,
        "channel.raid",
        "1",
        json!({"to_broadcaster_user_id": STREAMER_ID}),
        &session,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Silence is filled with keepalives before the window runs out.
    let started = Instant::now();
    let keepalive = match used.frame(Duration::from_secs(2)).await {
        Frame::Json(v) => v,
        Frame::Closed(c) => panic!("closed {c:?}"),
    };
    assert_eq!(keepalive["metadata"]["message_type"], "session_keepalive");
    assert_eq!(keepalive["payload"], json!({}));
    assert!(started.elapsed() < Duration::from_millis(800));

    // The socket nobody subscribed on is closed with 4003 ("connection unused").
    let close = loop {
        match idle.frame(Duration::from_secs(2)).await {
            Frame::Json(v) => assert_eq!(v["metadata"]["message_type"], "session_keepalive"),
            Frame::Closed(c) => break c,
        }
    };
    assert_eq!(close, Some((4003, "connection unused".to_owned())));

    // The used one keeps living past the window.
    tokio::time::sleep(Duration::from_millis(900)).await;
    sim.raid("raider_ray", "simstreamer", 5);
    assert_eq!(
        used.next_event().await["metadata"]["subscription_type"],
        "channel.raid"
    );
    sim.stop().await;
}

#[tokio::test]
async fn eventsub_reconnect_carries_subscriptions_and_loses_nothing() {
    let sim = start(TwitchSimConfig::default()).await;
    let (mut old, session) = EventSub::connect(&sim).await;
    let follow = json!({"broadcaster_user_id": STREAMER_ID, "moderator_user_id": STREAMER_ID});
    assert_eq!(
        subscribe_to(&sim, DEMO_ACCESS, "channel.follow", "2", follow, &session)
            .await
            .0,
        StatusCode::ACCEPTED
    );
    sim.eventsub_reconnect();
    let reconnect = old.next_event().await;
    assert_eq!(reconnect["metadata"]["message_type"], "session_reconnect");
    let info = &reconnect["payload"]["session"];
    assert_eq!(info["status"], "reconnecting");
    assert_eq!(info["id"], session.as_str());
    assert_eq!(info["keepalive_timeout_seconds"], Value::Null);
    let url = info["reconnect_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&sim.eventsub_url()), "{url}");

    // Events during the switch are queued for the new socket.
    let during = sim.follow("simstreamer", "follower_during_switch");
    let (mut new, welcome) = EventSub::connect_to(&url).await;
    assert_eq!(
        welcome["payload"]["session"]["id"],
        session.as_str(),
        "same session"
    );
    let n = new.next_event().await;
    assert_eq!(n["metadata"]["message_id"], during.as_str());
    assert_eq!(
        n["payload"]["event"]["user_login"],
        "follower_during_switch"
    );
    // The old socket is closed, with nothing delivered on it after the reconnect message.
    match old.frame(WAIT).await {
        Frame::Closed(_) => {}
        Frame::Json(v) => panic!("old socket got {v}"),
    }
    let after = sim.follow("simstreamer", "follower_after_switch");
    assert_eq!(
        new.next_event().await["metadata"]["message_id"],
        after.as_str()
    );
    let subs = sim.eventsub_subscriptions();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].status, "enabled");
    assert_eq!(subs[0].session_id, session);
    eventually("one socket open", || sim.eventsub_sessions_open() == 1).await;

    // A reconnect URL works once.
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut replay = EventSub { ws };
    match replay.frame(WAIT).await {
        Frame::Closed(c) => assert_eq!(c.map(|c| c.0), Some(4007)),
        Frame::Json(v) => panic!("reused reconnect url got {v}"),
    }
    sim.stop().await;
}

#[tokio::test]
async fn eventsub_reconnect_grace_expiry_closes_with_4004() {
    let sim = start(TwitchSimConfig {
        eventsub_reconnect_grace: Duration::from_millis(300),
        ..TwitchSimConfig::default()
    })
    .await;
    let (mut es, session) = EventSub::connect(&sim).await;
    let b = json!({"broadcaster_user_id": STREAMER_ID});
    subscribe_to(&sim, DEMO_ACCESS, "channel.subscribe", "1", b, &session).await;
    sim.eventsub_reconnect();
    assert_eq!(
        es.next_event().await["metadata"]["message_type"],
        "session_reconnect"
    );
    match es.frame(WAIT).await {
        Frame::Closed(c) => assert_eq!(c, Some((4004, "reconnect grace time expired".to_owned()))),
        Frame::Json(v) => panic!("{v}"),
    }
    eventually("the subscription to be disconnected", || {
        sim.eventsub_subscriptions()[0].status == "websocket_disconnected"
    })
    .await;
    sim.stop().await;
}

#[tokio::test]
async fn eventsub_drop_disconnects_subscriptions_without_replay() {
    let sim = start(TwitchSimConfig::default()).await;
    let (mut es, session) = EventSub::connect(&sim).await;
    let b = json!({"broadcaster_user_id": STREAMER_ID});
    subscribe_to(
        &sim,
        DEMO_ACCESS,
        "channel.subscribe",
        "1",
        b.clone(),
        &session,
    )
    .await;
    sim.drop_eventsub();
    let frame = tokio::time::timeout(WAIT, es.ws.next()).await.unwrap();
    assert!(
        !matches!(frame, Some(Ok(Message::Close(_)))),
        "no close frame on a drop"
    );
    eventually("the subscription to be disconnected", || {
        sim.eventsub_subscriptions()[0].status == "websocket_disconnected"
    })
    .await;
    assert_eq!(sim.eventsub_sessions_open(), 0);
    let (_, listed) = helix_get(&sim, "/eventsub/subscriptions", DEMO_ACCESS).await;
    assert_eq!(listed["data"][0]["status"], "websocket_disconnected");
    assert!(listed["data"][0]["transport"]["disconnected_at"].is_string());
    // The old session cannot be used; a new one starts empty.
    let (status, _) = subscribe_to(
        &sim,
        DEMO_ACCESS,
        "channel.subscribe",
        "1",
        b.clone(),
        &session,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    sim.subscribe("simstreamer", "lost_sub", "1000");
    let (mut fresh, new_session) = EventSub::connect(&sim).await;
    assert_ne!(new_session, session);
    subscribe_to(&sim, DEMO_ACCESS, "channel.subscribe", "1", b, &new_session).await;
    let id = sim.subscribe("simstreamer", "kept_sub", "1000");
    let n = fresh.next_event().await;
    assert_eq!(
        n["metadata"]["message_id"],
        id.as_str(),
        "nothing replayed from the dropped session"
    );
    sim.stop().await;
}

#[tokio::test]
async fn eventsub_at_least_once_delivery() {
    let sim = start(TwitchSimConfig::default()).await;
    let (mut es, session) = EventSub::connect(&sim).await;
    subscribe_to(
        &sim,
        DEMO_ACCESS,
        "channel.raid",
        "1",
        json!({"to_broadcaster_user_id": STREAMER_ID}),
        &session,
    )
    .await;
    sim.set_duplicate_deliveries(true);
    let id = sim.raid("raider_ray", "simstreamer", 3);
    let first = es.next_event().await;
    let second = es.next_event().await;
    assert_eq!(first, second);
    assert_eq!(first["metadata"]["message_id"], id.as_str());
    sim.set_duplicate_deliveries(false);
    sim.redeliver_last(1);
    assert_eq!(es.next_event().await, first);
    sim.stop().await;
}

#[tokio::test]
async fn chat_messages_reach_eventsub_too() {
    let sim = start(TwitchSimConfig::default()).await;
    let (mut es, session) = EventSub::connect(&sim).await;
    let condition = json!({"broadcaster_user_id": STREAMER_ID, "user_id": STREAMER_ID});
    subscribe_to(
        &sim,
        DEMO_ACCESS,
        "channel.chat.message",
        "1",
        condition,
        &session,
    )
    .await;
    let parent = sim.send_chat(ChatterMessage::new(
        "simstreamer",
        "chatter_bob",
        "question?",
    ));
    let n = es.next_event().await;
    assert_eq!(n["payload"]["event"]["message_id"], parent.as_str());
    assert_eq!(n["payload"]["event"]["chatter_user_login"], "chatter_bob");
    assert_eq!(n["payload"]["event"]["badges"][0]["set_id"], "moderator");
    let (_, sent) = helix_post(
        &sim,
        "/chat/messages",
        DEMO_ACCESS,
        json!({"broadcaster_id": STREAMER_ID, "sender_id": STREAMER_ID, "message": "answer", "reply_parent_message_id": parent}),
    )
    .await;
    let n = es.next_event().await;
    let event = &n["payload"]["event"];
    assert_eq!(event["message_id"], sent["data"][0]["message_id"]);
    assert_eq!(event["message"]["text"], "answer");
    assert_eq!(event["reply"]["parent_message_id"], parent.as_str());
    assert_eq!(event["reply"]["parent_user_login"], "chatter_bob");
    sim.stop().await;
}

#[tokio::test]
async fn demo_script_keeps_the_channel_busy() {
    let sim = start(TwitchSimConfig {
        demo_script_interval: Duration::from_millis(30),
        ..TwitchSimConfig::default()
    })
    .await;
    let mut chat = Chat::login(&sim, DEMO_ACCESS, "simstreamer").await;
    chat.join("simstreamer").await;
    let (mut es, session) = EventSub::connect(&sim).await;
    let follow = json!({"broadcaster_user_id": STREAMER_ID, "moderator_user_id": STREAMER_ID});
    subscribe_to(&sim, DEMO_ACCESS, "channel.follow", "2", follow, &session).await;
    sim.start_demo_script();
    sim.start_demo_script();
    let mut privmsgs = 0;
    let mut notices = Vec::new();
    while privmsgs < 8 || notices.len() < 2 {
        let line = chat.next_line().await.expect("chat open");
        let message = IRCMessage::parse(&line).unwrap();
        match ServerMessage::try_from(message).unwrap() {
            ServerMessage::Privmsg(_) => privmsgs += 1,
            ServerMessage::UserNotice(n) => notices.push(n.event_id),
            _ => {}
        }
    }
    assert_eq!(notices, vec!["sub", "raid"]);
    let n = es.next_event().await;
    assert_eq!(n["metadata"]["subscription_type"], "channel.follow");
    sim.stop().await;
}

#[tokio::test]
async fn banned_chatters_are_cleared_and_silenced() {
    let sim = start(TwitchSimConfig::default()).await;
    let mut streamer = Chat::login(&sim, DEMO_ACCESS, "simstreamer").await;
    streamer.join("simstreamer").await;
    let cat_token = user_token(&sim, "chatter_cat", "chat:read chat:edit user:write:chat").await;
    let mut cat = Chat::login(&sim, &cat_token, "chatter_cat").await;
    cat.join("simstreamer").await;

    let bans = "/moderation/bans?broadcaster_id=1000&moderator_id=1000";
    let (status, _) = helix_post(
        &sim,
        bans,
        DEMO_ACCESS,
        json!({"data": {"user_id": "1003"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let clear = streamer.expect("CLEARCHAT").await;
    assert_eq!(tag(&clear, "target-user-id"), Some("1003"));
    assert_eq!(tag(&clear, "ban-duration"), None);
    assert_eq!(clear.params, vec!["#simstreamer", "chatter_cat"]);
    let (_, timeout) = helix_post(
        &sim,
        bans,
        DEMO_ACCESS,
        json!({"data": {"user_id": "1004", "duration": 600}}),
    )
    .await;
    assert_eq!(timeout["data"][0]["user_id"], "1004");
    let clear = streamer.expect("CLEARCHAT").await;
    assert_eq!(tag(&clear, "ban-duration"), Some("600"));

    cat.send("PRIVMSG #simstreamer :let me back in").await;
    let notice = cat.expect("NOTICE").await;
    assert_eq!(tag(&notice, "msg-id"), Some("msg_banned"));
    let (_, body) = helix_post(
        &sim,
        "/chat/messages",
        &cat_token,
        json!({"broadcaster_id": STREAMER_ID, "sender_id": "1003", "message": "please"}),
    )
    .await;
    assert_eq!(body["data"][0]["is_sent"], false);
    assert_eq!(body["data"][0]["drop_reason"]["code"], "msg_banned");
    assert!(sim.chat_messages("simstreamer").is_empty());
    // Moderators cannot be banned.
    let (status, _) = helix_post(
        &sim,
        bans,
        DEMO_ACCESS,
        json!({"data": {"user_id": "1002"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    sim.stop().await;
}
