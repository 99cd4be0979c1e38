//! EventSub over WebSocket (`eventsub.wss.twitch.tv/ws`), at `/eventsub/ws`,
//! plus the Helix `eventsub/subscriptions` endpoints and the channel activity
//! (follows, subs, gifts, raids, cheers, chat) that produces notifications.
//!
//! **Session lifecycle.** A new socket gets `session_welcome` with a fresh
//! session id and `keepalive_timeout_seconds` (the configured window, or
//! `?keepalive_timeout_seconds=` clamped to 10–600). If no subscription names
//! the session within that window the socket is closed with 4003 "connection
//! unused". Whenever the socket has been silent for three quarters of the
//! window it gets `session_keepalive`, so a client that allows the full
//! window never times out by accident. The client must not send anything
//! (a text frame closes the socket with 4001, as on Twitch).
//!
//! **Reconnect.** `session_reconnect` carries `reconnect_url` =
//! `ws://…/eventsub/ws?reconnect=<token>`. From that moment notifications for
//! the session are queued instead of sent. When a client connects to that
//! URL the new socket takes the session over: it gets a welcome with the
//! **same** session id (subscriptions carry over unchanged), then every
//! queued notification, then the live stream; the old socket is closed
//! (1000). If nobody connects within `eventsub_reconnect_grace`, the old
//! socket is closed with 4004 and the session ends. An unknown or reused
//! token is closed with 4007.
//!
//! **Ending.** A socket that closes or drops (outside a reconnect) ends its
//! session: its subscriptions turn `websocket_disconnected` (with
//! `disconnected_at`), nothing is queued or replayed, and the client must
//! subscribe again on a new session, as on Twitch.
//!
//! **Delivery** is at-least-once: with the duplicate knob each notification
//! is sent twice with the same `message_id`, and `redeliver_last` resends
//! recent ones.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State as AxumState};
use axum::http::StatusCode;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::auth::TokenInfo;
use super::helix::HelixError;
use super::server::{self, Socket};
use super::{
    FollowState, Sim, SimEventSubSubscription, State, SubState, UserState, irc, push_bounded,
    random_token, rfc3339, uuid,
};

/// Twitch's EventSub WebSocket close codes.
pub mod close {
    pub const INTERNAL_SERVER_ERROR: u16 = 4000;
    pub const CLIENT_SENT_INBOUND_TRAFFIC: u16 = 4001;
    pub const CLIENT_FAILED_PING_PONG: u16 = 4002;
    pub const CONNECTION_UNUSED: u16 = 4003;
    pub const RECONNECT_GRACE_TIME_EXPIRED: u16 = 4004;
    pub const NETWORK_TIMEOUT: u16 = 4005;
    pub const NETWORK_ERROR: u16 = 4006;
    pub const INVALID_RECONNECT: u16 = 4007;
}

/// Notification types the simulator can deliver, with their version, the
/// condition fields they need and the scope the token must carry.
const TYPES: &[(&str, &str, &[&str], Option<&str>)] = &[
    (
        "channel.follow",
        "2",
        &["broadcaster_user_id", "moderator_user_id"],
        Some("moderator:read:followers"),
    ),
    (
        "channel.subscribe",
        "1",
        &["broadcaster_user_id"],
        Some("channel:read:subscriptions"),
    ),
    (
        "channel.subscription.message",
        "1",
        &["broadcaster_user_id"],
        Some("channel:read:subscriptions"),
    ),
    (
        "channel.subscription.gift",
        "1",
        &["broadcaster_user_id"],
        Some("channel:read:subscriptions"),
    ),
    ("channel.raid", "1", &[], None),
    (
        "channel.cheer",
        "1",
        &["broadcaster_user_id"],
        Some("bits:read"),
    ),
    (
        "channel.chat.message",
        "1",
        &["broadcaster_user_id", "user_id"],
        Some("user:read:chat"),
    ),
    ("channel.update", "2", &["broadcaster_user_id"], None),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionStatus {
    Connected,
    Reconnecting,
    Disconnected,
}

enum Out {
    Text(String),
    Reconnect { text: String, grace: Duration },
    Close(u16, &'static str),
    Drop,
}

struct Session {
    connection: u64,
    tx: Option<mpsc::UnboundedSender<Out>>,
    status: SessionStatus,
    keepalive_secs: u64,
    connected_at: SystemTime,
    /// Notifications that arrived during a reconnect.
    pending: Vec<String>,
    /// A subscription was created for this session (no 4003).
    used: bool,
}

pub(crate) struct Subscription {
    id: String,
    kind: String,
    version: String,
    condition: Value,
    session_id: String,
    client_id: String,
    status: String,
    created_at: SystemTime,
    connected_at: SystemTime,
    disconnected_at: Option<SystemTime>,
}

impl Subscription {
    pub(crate) fn public(&self) -> SimEventSubSubscription {
        SimEventSubSubscription {
            id: self.id.clone(),
            kind: self.kind.clone(),
            version: self.version.clone(),
            condition: self.condition.clone(),
            session_id: self.session_id.clone(),
            status: self.status.clone(),
        }
    }

    fn to_json(&self) -> Value {
        let mut transport = json!({
            "method": "websocket",
            "session_id": self.session_id,
            "connected_at": rfc3339(self.connected_at, 9),
        });
        if let Some(at) = self.disconnected_at {
            transport["disconnected_at"] = json!(rfc3339(at, 9));
        }
        json!({
            "id": self.id,
            "status": self.status,
            "type": self.kind,
            "version": self.version,
            "condition": self.condition,
            "created_at": rfc3339(self.created_at, 9),
            "transport": transport,
            "cost": 0,
        })
    }
}

/// Sessions, subscriptions, reconnect tokens and recent notifications.
#[derive(Default)]
pub(crate) struct EventSubState {
    sessions: HashMap<String, Session>,
    pub subscriptions: Vec<Subscription>,
    reconnect_tokens: HashMap<String, String>,
    recent: VecDeque<(String, String)>,
    next_connection: u64,
}

fn metadata(message_type: &str) -> Value {
    json!({
        "message_id": uuid(),
        "message_type": message_type,
        "message_timestamp": rfc3339(SystemTime::now(), 9),
    })
}

fn welcome(session_id: &str, session: &Session) -> String {
    json!({
        "metadata": metadata("session_welcome"),
        "payload": {"session": {
            "id": session_id,
            "status": "connected",
            "connected_at": rfc3339(session.connected_at, 9),
            "keepalive_timeout_seconds": session.keepalive_secs,
            "reconnect_url": null,
            "recovery_url": null,
        }},
    })
    .to_string()
}

fn keepalive_message() -> String {
    json!({"metadata": metadata("session_keepalive"), "payload": {}}).to_string()
}

// ----- the socket -----

pub(crate) async fn upgrade(AxumState(sim): AxumState<Sim>, request: Request) -> Response {
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let find = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let reconnect = find("reconnect");
    let keepalive = find("keepalive_timeout_seconds");
    server::upgrade(request, None, move |socket| {
        serve(sim, socket, reconnect, keepalive)
    })
}

/// What the socket task needs after registering.
struct Start {
    connection: u64,
    session_id: String,
    initial: Vec<String>,
    keepalive: Duration,
    /// 4003 check time; `None` once the session is in use.
    unused_check: bool,
    refuse: Option<(u16, &'static str)>,
}

fn register(
    state: &mut State,
    tx: mpsc::UnboundedSender<Out>,
    reconnect: Option<String>,
    keepalive_param: Option<String>,
) -> Start {
    let es = &mut state.eventsub;
    es.next_connection += 1;
    let connection = es.next_connection;
    if let Some(token) = reconnect {
        let Some(session_id) = es.reconnect_tokens.remove(&token) else {
            return Start {
                connection,
                session_id: String::new(),
                initial: Vec::new(),
                keepalive: Duration::from_secs(10),
                unused_check: false,
                refuse: Some((close::INVALID_RECONNECT, "invalid reconnect")),
            };
        };
        if let Some(session) = es
            .sessions
            .get_mut(&session_id)
            .filter(|s| s.status == SessionStatus::Reconnecting)
        {
            if let Some(old) = session.tx.replace(tx) {
                let _ = old.send(Out::Close(1000, "client reconnected"));
            }
            session.connection = connection;
            session.status = SessionStatus::Connected;
            let mut initial = vec![welcome(&session_id, session)];
            initial.append(&mut session.pending);
            let keepalive = Duration::from_secs(session.keepalive_secs);
            let unused_check = !session.used;
            return Start {
                connection,
                session_id,
                initial,
                keepalive,
                unused_check,
                refuse: None,
            };
        }
        return Start {
            connection,
            session_id: String::new(),
            initial: Vec::new(),
            keepalive: Duration::from_secs(10),
            unused_check: false,
            refuse: Some((close::INVALID_RECONNECT, "invalid reconnect")),
        };
    }
    let configured = state.config.eventsub_keepalive;
    let keepalive = match keepalive_param.and_then(|k| k.parse::<u64>().ok()) {
        Some(secs) => Duration::from_secs(secs.clamp(10, 600)),
        None => configured,
    };
    // Twitch session ids are opaque strings of about this shape and length.
    let session_id = format!("AQoQ{}", random_token(24));
    let session = Session {
        connection,
        tx: Some(tx),
        status: SessionStatus::Connected,
        keepalive_secs: keepalive.as_secs_f64().ceil().max(1.0) as u64,
        connected_at: SystemTime::now(),
        pending: Vec::new(),
        used: false,
    };
    let initial = vec![welcome(&session_id, &session)];
    state.eventsub.sessions.insert(session_id.clone(), session);
    Start {
        connection,
        session_id,
        initial,
        keepalive,
        unused_check: true,
        refuse: None,
    }
}

/// The socket ended: unless another socket took the session over, the
/// session ends and its subscriptions are disconnected.
fn end_session(state: &mut State, session_id: &str, connection: u64) {
    let es = &mut state.eventsub;
    let Some(session) = es.sessions.get_mut(session_id) else {
        return;
    };
    if session.connection != connection {
        return;
    }
    session.status = SessionStatus::Disconnected;
    session.tx = None;
    session.pending.clear();
    es.reconnect_tokens.retain(|_, s| s != session_id);
    let now = SystemTime::now();
    for sub in es
        .subscriptions
        .iter_mut()
        .filter(|s| s.session_id == session_id && s.status == "enabled")
    {
        sub.status = "websocket_disconnected".into();
        sub.disconnected_at = Some(now);
    }
}

async fn serve(sim: Sim, socket: Socket, reconnect: Option<String>, keepalive: Option<String>) {
    let _guard = sim.socket_guard(true);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = register(&mut sim.lock(), tx, reconnect, keepalive);
    let (mut sink, mut stream) = socket.split();
    if let Some((code, reason)) = start.refuse {
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            })))
            .await;
        return;
    }
    let Start {
        connection,
        session_id,
        initial,
        keepalive,
        unused_check,
        ..
    } = start;
    for text in initial {
        if sink.send(Message::text(text)).await.is_err() {
            end_session(&mut sim.lock(), &session_id, connection);
            return;
        }
    }
    let now = tokio::time::Instant::now();
    let keepalive_every = keepalive.mul_f64(0.75);
    let mut last_sent = now;
    let mut unused_deadline = unused_check.then_some(now + keepalive);
    let mut grace_deadline: Option<tokio::time::Instant> = None;
    let mut shutdown = sim.shutdown();
    let close = |code: u16, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        }))
    };
    loop {
        let mut wake = last_sent + keepalive_every;
        if let Some(d) = unused_deadline {
            wake = wake.min(d);
        }
        if let Some(d) = grace_deadline {
            wake = wake.min(d);
        }
        tokio::select! {
            _ = super::stopped(&mut shutdown) => {
                let _ = sink.send(close(1001, "server shutting down")).await;
                break;
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(_))) | Some(Ok(Message::Binary(_))) => {
                    let _ = sink.send(close(close::CLIENT_SENT_INBOUND_TRAFFIC, "client sent inbound traffic")).await;
                    break;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Out::Text(text)) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                    last_sent = tokio::time::Instant::now();
                }
                Some(Out::Reconnect { text, grace }) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                    last_sent = tokio::time::Instant::now();
                    grace_deadline = Some(last_sent + grace);
                }
                Some(Out::Close(code, reason)) => {
                    let _ = sink.send(close(code, reason)).await;
                    break;
                }
                // Abrupt: the halves are dropped, the TCP socket closes with no close frame.
                Some(Out::Drop) | None => break,
            },
            _ = tokio::time::sleep_until(wake) => {
                let now = tokio::time::Instant::now();
                if unused_deadline.is_some_and(|d| d <= now) {
                    let used = sim.lock().eventsub.sessions.get(&session_id).is_some_and(|s| s.used);
                    if !used {
                        let _ = sink.send(close(close::CONNECTION_UNUSED, "connection unused")).await;
                        break;
                    }
                    unused_deadline = None;
                }
                if grace_deadline.is_some_and(|d| d <= now) {
                    let _ = sink.send(close(close::RECONNECT_GRACE_TIME_EXPIRED, "reconnect grace time expired")).await;
                    break;
                }
                if last_sent + keepalive_every <= now {
                    if sink.send(Message::text(keepalive_message())).await.is_err() {
                        break;
                    }
                    last_sent = now;
                }
            }
        }
    }
    end_session(&mut sim.lock(), &session_id, connection);
}

// ----- test-control -----

pub(crate) fn reconnect_all(state: &mut State, ws_base: &str) {
    let grace = state.config.eventsub_reconnect_grace;
    let es = &mut state.eventsub;
    for (session_id, session) in es
        .sessions
        .iter_mut()
        .filter(|(_, s)| s.status == SessionStatus::Connected)
    {
        let token = random_token(32);
        let url = format!("{ws_base}/eventsub/ws?reconnect={token}");
        es.reconnect_tokens.insert(token, session_id.clone());
        session.status = SessionStatus::Reconnecting;
        let text = json!({
            "metadata": metadata("session_reconnect"),
            "payload": {"session": {
                "id": session_id,
                "status": "reconnecting",
                "keepalive_timeout_seconds": null,
                "reconnect_url": url,
                "connected_at": rfc3339(session.connected_at, 9),
                "recovery_url": null,
            }},
        })
        .to_string();
        if let Some(tx) = &session.tx {
            let _ = tx.send(Out::Reconnect { text, grace });
        }
    }
}

pub(crate) fn drop_all(state: &mut State) {
    for session in state.eventsub.sessions.values() {
        if let Some(tx) = &session.tx {
            let _ = tx.send(Out::Drop);
        }
    }
}

pub(crate) fn redeliver_last(state: &mut State, n: usize) {
    let recent: Vec<(String, String)> = state
        .eventsub
        .recent
        .iter()
        .rev()
        .take(n)
        .rev()
        .cloned()
        .collect();
    for (session_id, text) in recent {
        deliver(state, &session_id, text, false);
    }
}

fn deliver(state: &mut State, session_id: &str, text: String, remember: bool) {
    let es = &mut state.eventsub;
    let Some(session) = es.sessions.get_mut(session_id) else {
        return;
    };
    match session.status {
        SessionStatus::Connected => {
            if let Some(tx) = &session.tx {
                let _ = tx.send(Out::Text(text.clone()));
            }
        }
        SessionStatus::Reconnecting => session.pending.push(text.clone()),
        SessionStatus::Disconnected => return,
    }
    if remember {
        push_bounded(&mut es.recent, (session_id.to_owned(), text), 200);
    }
}

/// Send `event` to every enabled subscription of `kind` whose condition
/// matches. Returns the first notification's message id (a fresh id when
/// nothing matched).
fn notify(state: &mut State, kind: &str, matches: impl Fn(&Value) -> bool, event: Value) -> String {
    let targets: Vec<(String, Value)> = state
        .eventsub
        .subscriptions
        .iter()
        .filter(|s| s.kind == kind && s.status == "enabled" && matches(&s.condition))
        .map(|s| (s.session_id.clone(), s.to_json()))
        .collect();
    let twice = state.config.duplicate_deliveries;
    let mut first = None;
    for (session_id, subscription) in targets {
        let message_id = uuid();
        let text = json!({
            "metadata": {
                "message_id": message_id,
                "message_type": "notification",
                "message_timestamp": rfc3339(SystemTime::now(), 9),
                "subscription_type": subscription["type"],
                "subscription_version": subscription["version"],
            },
            "payload": {"subscription": subscription, "event": event},
        })
        .to_string();
        deliver(state, &session_id, text.clone(), true);
        if twice {
            deliver(state, &session_id, text, false);
        }
        first.get_or_insert(message_id);
    }
    first.unwrap_or_else(uuid)
}

fn condition_is(field: &'static str, value: String) -> impl Fn(&Value) -> bool {
    move |c| c.get(field).and_then(Value::as_str) == Some(value.as_str())
}

fn user_fields(prefix: &str, user: &UserState) -> [(String, Value); 3] {
    [
        (format!("{prefix}_id"), json!(user.id)),
        (format!("{prefix}_login"), json!(user.login)),
        (format!("{prefix}_name"), json!(user.display_name)),
    ]
}

fn event_of(parts: Vec<(String, Value)>) -> Value {
    Value::Object(parts.into_iter().collect())
}

fn tier_number(tier: &str) -> &str {
    match tier {
        "2000" => "2",
        "3000" => "3",
        _ => "1",
    }
}

// ----- channel activity -----

pub(crate) fn follow(state: &mut State, channel: &str, user: &str) -> String {
    let channel = state.user_or_create(channel);
    let user = state.user_or_create(user);
    let at = SystemTime::now();
    let followers = state.followers.entry(channel.id.clone()).or_default();
    if !followers.iter().any(|f| f.user_id == user.id) {
        followers.push(FollowState {
            user_id: user.id.clone(),
            at,
        });
    }
    let mut parts: Vec<(String, Value)> = user_fields("user", &user).into();
    parts.extend(user_fields("broadcaster_user", &channel));
    parts.push(("followed_at".into(), json!(rfc3339(at, 9))));
    notify(
        state,
        "channel.follow",
        condition_is("broadcaster_user_id", channel.id.clone()),
        event_of(parts),
    )
}

fn sub_event(channel: &UserState, user: &UserState, tier: &str, is_gift: bool) -> Value {
    let mut parts: Vec<(String, Value)> = user_fields("user", user).into();
    parts.extend(user_fields("broadcaster_user", channel));
    parts.push(("tier".into(), json!(tier)));
    parts.push(("is_gift".into(), json!(is_gift)));
    event_of(parts)
}

fn store_sub(
    state: &mut State,
    channel: &UserState,
    user: &UserState,
    tier: &str,
    gifter: Option<&str>,
) {
    let subs = state.subscriptions.entry(channel.id.clone()).or_default();
    match subs.iter_mut().find(|s| s.user_id == user.id) {
        Some(existing) => {
            existing.tier = tier.to_owned();
            existing.gifter_id = gifter.map(str::to_owned);
        }
        None => subs.push(SubState {
            user_id: user.id.clone(),
            tier: tier.to_owned(),
            gifter_id: gifter.map(str::to_owned),
            cumulative_months: 1,
        }),
    }
}

fn plan_name(channel: &UserState) -> String {
    format!("Channel Subscription ({})", channel.login)
}

pub(crate) fn subscribe(state: &mut State, channel: &str, user: &str, tier: &str) -> String {
    let channel = state.user_or_create(channel);
    let user = state.user_or_create(user);
    store_sub(state, &channel, &user, tier, None);
    let system = format!(
        "{} subscribed at Tier {}.",
        user.display_name,
        tier_number(tier)
    );
    irc::usernotice(
        state,
        &channel,
        &user,
        "sub",
        vec![
            ("msg-param-cumulative-months".into(), "1".into()),
            ("msg-param-months".into(), "0".into()),
            ("msg-param-multimonth-duration".into(), "1".into()),
            ("msg-param-multimonth-tenure".into(), "0".into()),
            ("msg-param-should-share-streak".into(), "0".into()),
            ("msg-param-sub-plan-name".into(), plan_name(&channel)),
            ("msg-param-sub-plan".into(), tier.into()),
            ("msg-param-was-gifted".into(), "false".into()),
        ],
        &system,
        None,
    );
    notify(
        state,
        "channel.subscribe",
        condition_is("broadcaster_user_id", channel.id.clone()),
        sub_event(&channel, &user, tier, false),
    )
}

pub(crate) fn resubscribe(
    state: &mut State,
    channel: &str,
    user: &str,
    months: u32,
    text: &str,
) -> String {
    let channel = state.user_or_create(channel);
    let user = state.user_or_create(user);
    let subs = state.subscriptions.entry(channel.id.clone()).or_default();
    let tier = match subs.iter_mut().find(|s| s.user_id == user.id) {
        Some(existing) => {
            existing.cumulative_months = months;
            existing.tier.clone()
        }
        None => {
            subs.push(SubState {
                user_id: user.id.clone(),
                tier: "1000".into(),
                gifter_id: None,
                cumulative_months: months,
            });
            "1000".to_owned()
        }
    };
    let system = format!(
        "{} subscribed at Tier {}. They've subscribed for {months} months!",
        user.display_name,
        tier_number(&tier)
    );
    irc::usernotice(
        state,
        &channel,
        &user,
        "resub",
        vec![
            ("msg-param-cumulative-months".into(), months.to_string()),
            ("msg-param-months".into(), "0".into()),
            ("msg-param-multimonth-duration".into(), "1".into()),
            ("msg-param-multimonth-tenure".into(), "0".into()),
            ("msg-param-should-share-streak".into(), "1".into()),
            ("msg-param-streak-months".into(), months.to_string()),
            ("msg-param-sub-plan-name".into(), plan_name(&channel)),
            ("msg-param-sub-plan".into(), tier.clone()),
            ("msg-param-was-gifted".into(), "false".into()),
        ],
        &system,
        Some(text),
    );
    let emotes: Vec<Value> = irc::find_emotes(text, &[])
        .into_iter()
        .flat_map(|(id, ranges)| {
            ranges
                .into_iter()
                .map(move |(begin, end)| json!({"begin": begin, "end": end, "id": id}))
        })
        .collect();
    let mut parts: Vec<(String, Value)> = user_fields("user", &user).into();
    parts.extend(user_fields("broadcaster_user", &channel));
    parts.extend([
        ("tier".into(), json!(tier)),
        ("message".into(), json!({"text": text, "emotes": emotes})),
        ("cumulative_months".into(), json!(months)),
        ("streak_months".into(), json!(months)),
        ("duration_months".into(), json!(1)),
    ]);
    notify(
        state,
        "channel.subscription.message",
        condition_is("broadcaster_user_id", channel.id.clone()),
        event_of(parts),
    )
}

pub(crate) fn gift(
    state: &mut State,
    channel: &str,
    gifter: &str,
    total: u32,
    tier: &str,
) -> String {
    let channel = state.user_or_create(channel);
    let gifter = state.user_or_create(gifter);
    let cumulative = {
        let count = state
            .gift_totals
            .entry((channel.id.clone(), gifter.id.clone()))
            .or_default();
        *count += total;
        *count
    };
    // Recipients: users without a sub to this channel, then fresh accounts.
    let subscribed: Vec<String> = state
        .subscriptions
        .get(&channel.id)
        .map(|s| s.iter().map(|s| s.user_id.clone()).collect())
        .unwrap_or_default();
    let mut recipients: Vec<UserState> = state
        .users
        .iter()
        .filter(|u| u.id != channel.id && u.id != gifter.id && !subscribed.contains(&u.id))
        .take(total as usize)
        .cloned()
        .collect();
    while recipients.len() < total as usize {
        let login = format!("gift_recipient_{}", random_token(5));
        recipients.push(state.user_or_create(&login));
    }
    let tier_n = tier_number(tier);
    if total > 1 {
        let system = format!(
            "{} is gifting {total} Tier {tier_n} Subs to {}'s community! They've gifted a total of {cumulative} in the channel!",
            gifter.display_name, channel.display_name
        );
        irc::usernotice(
            state,
            &channel,
            &gifter,
            "submysterygift",
            vec![
                ("msg-param-mass-gift-count".into(), total.to_string()),
                ("msg-param-sender-count".into(), cumulative.to_string()),
                ("msg-param-sub-plan".into(), tier.into()),
            ],
            &system,
            None,
        );
    }
    let gift_event = {
        let mut parts: Vec<(String, Value)> = user_fields("user", &gifter).into();
        parts.extend(user_fields("broadcaster_user", &channel));
        parts.extend([
            ("total".into(), json!(total)),
            ("tier".into(), json!(tier)),
            ("cumulative_total".into(), json!(cumulative)),
            ("is_anonymous".into(), json!(false)),
        ]);
        event_of(parts)
    };
    let id = notify(
        state,
        "channel.subscription.gift",
        condition_is("broadcaster_user_id", channel.id.clone()),
        gift_event,
    );
    for recipient in recipients {
        store_sub(state, &channel, &recipient, tier, Some(&gifter.id));
        let system = format!(
            "{} gifted a Tier {tier_n} sub to {}!",
            gifter.display_name, recipient.display_name
        );
        irc::usernotice(
            state,
            &channel,
            &gifter,
            "subgift",
            vec![
                ("msg-param-gift-months".into(), "1".into()),
                ("msg-param-months".into(), "1".into()),
                ("msg-param-origin-id".into(), random_token(16)),
                (
                    "msg-param-recipient-display-name".into(),
                    recipient.display_name.clone(),
                ),
                ("msg-param-recipient-id".into(), recipient.id.clone()),
                (
                    "msg-param-recipient-user-name".into(),
                    recipient.login.clone(),
                ),
                ("msg-param-sender-count".into(), cumulative.to_string()),
                ("msg-param-sub-plan-name".into(), plan_name(&channel)),
                ("msg-param-sub-plan".into(), tier.into()),
            ],
            &system,
            None,
        );
        notify(
            state,
            "channel.subscribe",
            condition_is("broadcaster_user_id", channel.id.clone()),
            sub_event(&channel, &recipient, tier, true),
        );
    }
    id
}

pub(crate) fn raid(state: &mut State, from: &str, to: &str, viewers: u32) -> String {
    let from = state.user_or_create(from);
    let to = state.user_or_create(to);
    let system = format!("{viewers} raiders from {} have joined!", from.display_name);
    irc::usernotice(
        state,
        &to,
        &from,
        "raid",
        vec![
            ("msg-param-displayName".into(), from.display_name.clone()),
            ("msg-param-login".into(), from.login.clone()),
            (
                "msg-param-profileImageURL".into(),
                format!(
                    "https://static-cdn.jtvnw.net/jtv_user_pictures/{}-profile_image-70x70.png",
                    from.login
                ),
            ),
            ("msg-param-viewerCount".into(), viewers.to_string()),
        ],
        &system,
        None,
    );
    let mut parts: Vec<(String, Value)> = user_fields("from_broadcaster_user", &from).into();
    parts.extend(user_fields("to_broadcaster_user", &to));
    parts.push(("viewers".into(), json!(viewers)));
    let (from_id, to_id) = (from.id.clone(), to.id.clone());
    notify(
        state,
        "channel.raid",
        move |c| {
            c.get("to_broadcaster_user_id").and_then(Value::as_str) == Some(to_id.as_str())
                || c.get("from_broadcaster_user_id").and_then(Value::as_str)
                    == Some(from_id.as_str())
        },
        event_of(parts),
    )
}

pub(crate) fn cheer(state: &mut State, channel: &str, user: &str, bits: u32, text: &str) -> String {
    let channel_user = state.user_or_create(channel);
    let user = state.user_or_create(user);
    let text = if text.to_ascii_lowercase().contains("cheer") {
        text.to_owned()
    } else {
        format!("Cheer{bits} {text}").trim_end().to_owned()
    };
    let mut message = super::ChatterMessage::new(&channel_user.login, &user.login, &text);
    message.bits = Some(bits);
    let badge_level = [100_000u32, 10_000, 5_000, 1_000, 100, 1]
        .into_iter()
        .find(|level| bits >= *level)
        .unwrap_or(1);
    message.badges = vec![("bits".into(), badge_level.to_string())];
    irc::speak(state, message);
    let mut parts: Vec<(String, Value)> = vec![("is_anonymous".into(), json!(false))];
    parts.extend(user_fields("user", &user));
    parts.extend(user_fields("broadcaster_user", &channel_user));
    parts.push(("message".into(), json!(text)));
    parts.push(("bits".into(), json!(bits)));
    notify(
        state,
        "channel.cheer",
        condition_is("broadcaster_user_id", channel_user.id.clone()),
        event_of(parts),
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn chat_message(
    state: &mut State,
    channel: &UserState,
    chatter: &UserState,
    message_id: &str,
    text: &str,
    bits: Option<u32>,
    badges: &[(String, String)],
    reply_to: Option<&str>,
) {
    let reply = reply_to.and_then(|id| irc::reply_json(state, id));
    let event = json!({
        "broadcaster_user_id": channel.id,
        "broadcaster_user_login": channel.login,
        "broadcaster_user_name": channel.display_name,
        "chatter_user_id": chatter.id,
        "chatter_user_login": chatter.login,
        "chatter_user_name": chatter.display_name,
        "message_id": message_id,
        "message": {
            "text": text,
            "fragments": [{"type": "text", "text": text, "cheermote": null, "emote": null, "mention": null}],
        },
        "color": chatter.color,
        "badges": irc::badges_json(badges),
        "message_type": "text",
        "cheer": bits.map(|b| json!({"bits": b})),
        "reply": reply,
        "channel_points_custom_reward_id": null,
        "source_broadcaster_user_id": null,
        "source_broadcaster_user_login": null,
        "source_broadcaster_user_name": null,
        "source_message_id": null,
        "source_badges": null,
    });
    notify(
        state,
        "channel.chat.message",
        condition_is("broadcaster_user_id", channel.id.clone()),
        event,
    );
}

pub(crate) fn channel_update(state: &mut State, broadcaster_id: &str) {
    let Some(user) = state.user(broadcaster_id).cloned() else {
        return;
    };
    let channel = state.sim_channel(broadcaster_id);
    let event = json!({
        "broadcaster_user_id": user.id,
        "broadcaster_user_login": user.login,
        "broadcaster_user_name": user.display_name,
        "title": channel.title,
        "language": channel.language,
        "category_id": channel.game_id,
        "category_name": channel.game_name,
        "content_classification_labels": [],
    });
    notify(
        state,
        "channel.update",
        condition_is("broadcaster_user_id", user.id.clone()),
        event,
    );
}

// ----- Helix: eventsub/subscriptions -----

fn bad_request(message: impl Into<String>) -> HelixError {
    HelixError::new(StatusCode::BAD_REQUEST, message)
}

fn totals(state: &State, client_id: &str) -> (usize, Value) {
    let total = state
        .eventsub
        .subscriptions
        .iter()
        .filter(|s| s.client_id == client_id)
        .count();
    (total, json!(0))
}

/// `POST /helix/eventsub/subscriptions`.
pub(crate) fn create_subscription(
    state: &mut State,
    token: &TokenInfo,
    body: &Value,
) -> Result<Value, HelixError> {
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("Missing required parameter \"type\""))?;
    let version = body
        .get("version")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("Missing required parameter \"version\""))?;
    let condition = body
        .get("condition")
        .filter(|c| c.is_object())
        .ok_or_else(|| bad_request("Missing required parameter \"condition\""))?;
    let transport = body
        .get("transport")
        .filter(|t| t.is_object())
        .ok_or_else(|| bad_request("Missing required parameter \"transport\""))?;
    let Some((_, wanted_version, fields, scope)) = TYPES.iter().find(|(t, ..)| *t == kind) else {
        return Err(bad_request(format!("unsupported subscription type {kind}")));
    };
    if version != *wanted_version {
        return Err(bad_request(format!(
            "unsupported subscription version {version} for type {kind}"
        )));
    }
    if transport.get("method").and_then(Value::as_str) != Some("websocket") {
        return Err(bad_request(
            "the simulator supports the websocket transport only",
        ));
    }
    let session_id = transport
        .get("session_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("Missing required parameter \"transport.session_id\""))?
        .to_owned();
    let value = |field: &str| {
        condition
            .get(field)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    for field in fields.iter() {
        if value(field).is_none() {
            return Err(bad_request(format!("invalid condition: missing {field}")));
        }
    }
    if kind == "channel.raid" {
        let sides = [
            value("from_broadcaster_user_id"),
            value("to_broadcaster_user_id"),
        ];
        if sides.iter().filter(|s| s.is_some()).count() != 1 {
            return Err(bad_request(
                "invalid condition: exactly one of from_broadcaster_user_id and to_broadcaster_user_id is required",
            ));
        }
    }
    for id in condition
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.as_str())
    {
        if !id.is_empty() && state.user(id).is_none() {
            return Err(bad_request(format!(
                "invalid condition: no user with id {id}"
            )));
        }
    }
    let Some(user_id) = token.user_id.clone() else {
        return Err(bad_request(
            "websocket transports require a user access token",
        ));
    };
    // Authorization: the scope, and the token's user must be the one the
    // condition is about (the broadcaster, the moderator or the chatter).
    if let Some(scope) = scope
        && !token.has_scope(scope)
    {
        return Err(HelixError::new(
            StatusCode::FORBIDDEN,
            "subscription missing proper authorization",
        ));
    }
    let authorized = match kind {
        "channel.follow" => {
            let broadcaster = value("broadcaster_user_id").unwrap_or("");
            let channel_login = state
                .user(broadcaster)
                .map(|u| u.login.clone())
                .unwrap_or_default();
            value("moderator_user_id") == Some(user_id.as_str())
                && state.is_moderator(&channel_login, &user_id)
        }
        "channel.chat.message" => value("user_id") == Some(user_id.as_str()),
        "channel.raid" | "channel.update" => true,
        _ => value("broadcaster_user_id") == Some(user_id.as_str()),
    };
    if !authorized {
        return Err(HelixError::new(
            StatusCode::FORBIDDEN,
            "subscription missing proper authorization",
        ));
    }
    let (connected_at, live) = match state.eventsub.sessions.get(&session_id) {
        Some(s) if s.status != SessionStatus::Disconnected => (s.connected_at, true),
        _ => (SystemTime::now(), false),
    };
    if !live {
        return Err(bad_request(
            "websocket transport session does not exist or has already disconnected",
        ));
    }
    let duplicate = state.eventsub.subscriptions.iter().any(|s| {
        s.kind == kind
            && s.version == version
            && s.condition == *condition
            && s.session_id == session_id
            && s.status == "enabled"
    });
    if duplicate {
        return Err(HelixError::new(
            StatusCode::CONFLICT,
            "subscription already exists",
        ));
    }
    let subscription = Subscription {
        id: uuid(),
        kind: kind.to_owned(),
        version: version.to_owned(),
        condition: condition.clone(),
        session_id: session_id.clone(),
        client_id: token.client_id.clone(),
        status: "enabled".into(),
        created_at: SystemTime::now(),
        connected_at,
        disconnected_at: None,
    };
    let json = subscription.to_json();
    state.eventsub.subscriptions.push(subscription);
    if let Some(session) = state.eventsub.sessions.get_mut(&session_id) {
        session.used = true;
    }
    let (total, total_cost) = totals(state, &token.client_id);
    Ok(json!({"data": [json], "total": total, "total_cost": total_cost, "max_total_cost": 10}))
}

/// `GET /helix/eventsub/subscriptions` (filters: `status`, `type`, `user_id`, `subscription_id`).
pub(crate) fn list_subscriptions(
    state: &State,
    token: &TokenInfo,
    query: &[(String, String)],
) -> Result<Value, HelixError> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let filters = ["status", "type", "user_id", "subscription_id"]
        .iter()
        .filter(|f| get(f).is_some())
        .count();
    if filters > 1 {
        return Err(bad_request(
            "The request may specify only one filter query parameter",
        ));
    }
    let data: Vec<Value> = state
        .eventsub
        .subscriptions
        .iter()
        .filter(|s| s.client_id == token.client_id)
        .filter(|s| get("status").is_none_or(|v| s.status == v))
        .filter(|s| get("type").is_none_or(|v| s.kind == v))
        .filter(|s| get("subscription_id").is_none_or(|v| s.id == v))
        .filter(|s| {
            get("user_id").is_none_or(|v| {
                s.condition
                    .as_object()
                    .is_some_and(|c| c.values().any(|x| x.as_str() == Some(v)))
            })
        })
        .map(Subscription::to_json)
        .collect();
    let (total, total_cost) = totals(state, &token.client_id);
    Ok(json!({
        "data": data,
        "total": total,
        "total_cost": total_cost,
        "max_total_cost": 10,
        "pagination": {},
    }))
}

/// `DELETE /helix/eventsub/subscriptions?id=`.
pub(crate) fn delete_subscription(
    state: &mut State,
    token: &TokenInfo,
    id: Option<&str>,
) -> Result<(), HelixError> {
    let id = id.ok_or_else(|| bad_request("Missing required parameter \"id\""))?;
    let before = state.eventsub.subscriptions.len();
    state
        .eventsub
        .subscriptions
        .retain(|s| !(s.id == id && s.client_id == token.client_id));
    if state.eventsub.subscriptions.len() == before {
        return Err(HelixError::new(
            StatusCode::NOT_FOUND,
            "subscription not found",
        ));
    }
    Ok(())
}
