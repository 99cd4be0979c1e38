//! The Twitch triggers: chat messages from IRC, follows, subscriptions,
//! raids and cheers from EventSub, and the loops that keep both streams up.
//!
//! # Nothing lost, nothing twice
//!
//! * Every EventSub notification's `message_id` goes through a bounded
//!   filter of the ids seen in the last ten minutes ([`SeenIds`]), so a
//!   redelivery or the overlap of a `session_reconnect` is dropped; chat
//!   message ids go through the same filter (a chat `RECONNECT` overlaps two
//!   sockets for a moment).
//! * Follows, subscriptions, raids and cheers are archived before they are
//!   published, keyed by message id (follows by follower and follow time, so
//!   that an event and a Helix backfill of the same follow agree). An archive
//!   that says "already kept" means the event was published before, perhaps
//!   by an earlier run, and it is not published again.
//! * `session_reconnect` is followed without a gap: the new socket is
//!   opened and welcomed while the old one keeps delivering, then the old
//!   one is closed. A dropped socket (close, error, keepalive silence) loses
//!   its subscriptions: a new session is opened and subscribed, and the
//!   follows that happened meanwhile are read back from
//!   `GET /channels/followers` (newest first, down to the newest follow
//!   already seen, a cursor kept in the connection's durable state). Twitch
//!   keeps no such history of subscriptions, raids and cheers; the
//!   reconnect is immediate to keep that gap short.
//!
//! The first session of a new connection only notes the newest follower:
//! old follows are history, not events.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::{ConnectorError, RuntimeEnv, StatusKind};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, REFRESH_MARGIN};
use crate::chat::{self, ChatConnection, ChatOpenError, ChatRead};
use crate::client::{Call, HelixError};
use crate::eventsub::{self, EventSubSocket, Frame, Notification, Read};
use crate::socket::reconnect_delays;
use crate::{TwitchSession, connector_error};

/// How long message ids are remembered.
const SEEN_FOR: Duration = Duration::from_secs(600);
/// At most this many ids are remembered.
const SEEN_MAX: usize = 50_000;
/// Send our own chat `PING` after this much silence.
const CHAT_QUIET: Duration = Duration::from_secs(60);
/// A chat `PING` unanswered for this long means the line is dead.
const CHAT_PONG_WAIT: Duration = Duration::from_secs(15);
/// Pages of 100 followers read back after a gap, at most.
const BACKFILL_PAGES: usize = 10;
const FOLLOW_CURSOR: &str = "followers.cursor";

/// Message ids seen recently.
#[derive(Default)]
pub(crate) struct SeenIds {
    at: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl SeenIds {
    /// True the first time `id` is seen (within the memory).
    pub(crate) fn first_time(&mut self, id: &str, now: Instant) -> bool {
        while let Some((at, old)) = self.order.front() {
            if now.duration_since(*at) < SEEN_FOR && self.order.len() < SEEN_MAX {
                break;
            }
            if self.at.get(old) == Some(at) {
                self.at.remove(old);
            }
            self.order.pop_front();
        }
        if self.at.contains_key(id) {
            return false;
        }
        self.at.insert(id.to_owned(), now);
        self.order.push_back((now, id.to_owned()));
        true
    }
}

/// What chat and EventSub report, folded into one status.
#[derive(Default)]
pub(crate) struct Health {
    state: tokio::sync::Mutex<HealthState>,
}

#[derive(Default)]
struct HealthState {
    chat: Option<String>,
    events: Option<String>,
    reported: Option<String>,
}

impl Health {
    pub(crate) async fn set_chat(&self, env: &Arc<dyn RuntimeEnv>, problem: Option<String>) {
        let mut state = self.state.lock().await;
        state.chat = problem;
        Self::report(&mut state, env).await;
    }

    pub(crate) async fn set_events(&self, env: &Arc<dyn RuntimeEnv>, problem: Option<String>) {
        let mut state = self.state.lock().await;
        state.events = problem;
        Self::report(&mut state, env).await;
    }

    async fn report(state: &mut HealthState, env: &Arc<dyn RuntimeEnv>) {
        let problems: Vec<String> = [&state.chat, &state.events]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let now = (!problems.is_empty()).then(|| problems.join("; "));
        if now == state.reported {
            return;
        }
        match &now {
            Some(reason) => {
                tracing::warn!(%reason, "Twitch connection degraded");
                env.report_status(StatusKind::Degraded, Some(reason.clone()))
                    .await
            }
            None => env.report_status(StatusKind::Connected, None).await,
        }
        state.reported = now;
    }
}

/// One event ready to archive and publish.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outgoing {
    pub event_type: &'static str,
    /// Archive collection.
    pub archive: &'static str,
    pub key: String,
    pub occurred_at: i64,
    pub payload: Value,
}

/// RFC 3339 → epoch milliseconds.
pub(crate) fn epoch_ms(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The archive key of a follow: the follower and the second they followed
/// (EventSub gives nanoseconds, Helix seconds).
pub(crate) fn follow_key(user_id: &str, followed_at: &str) -> String {
    let seconds = epoch_ms(followed_at).map(|ms| ms.div_euclid(1000));
    match seconds {
        Some(s) => format!("{user_id}:{s}"),
        None => format!("{user_id}:{followed_at}"),
    }
}

fn follow_payload(event: &Value, message_id: Option<&str>, source: &str) -> Value {
    json!({
        "user_id": event["user_id"],
        "user_login": event["user_login"],
        "user_name": event["user_name"],
        "broadcaster_user_id": event["broadcaster_user_id"],
        "broadcaster_user_login": event["broadcaster_user_login"],
        "followed_at": event["followed_at"],
        "occurred_at": event["followed_at"],
        "message_id": message_id,
        "source": source,
    })
}

/// A follow as `GET /channels/followers` lists it.
pub(crate) fn backfilled_follow(
    entry: &Value,
    broadcaster_id: &str,
    broadcaster_login: &str,
) -> Option<Outgoing> {
    let user_id = entry["user_id"].as_str()?;
    let followed_at = entry["followed_at"].as_str()?;
    let event = json!({
        "user_id": user_id,
        "user_login": entry["user_login"],
        "user_name": entry["user_name"],
        "broadcaster_user_id": broadcaster_id,
        "broadcaster_user_login": broadcaster_login,
        "followed_at": followed_at,
    });
    Some(Outgoing {
        event_type: "twitch.follow",
        archive: "followers",
        key: follow_key(user_id, followed_at),
        occurred_at: epoch_ms(followed_at).unwrap_or_else(switchboard_core::time::now_ms),
        payload: follow_payload(&event, None, "backfill"),
    })
}

/// An EventSub notification → the event to archive and publish.
pub(crate) fn map_notification(n: &Notification) -> Option<Outgoing> {
    let e = &n.event;
    let timestamp = n.timestamp.clone().unwrap_or_else(|| {
        chrono::DateTime::from_timestamp_millis(switchboard_core::time::now_ms())
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    });
    let occurred_at = epoch_ms(&timestamp).unwrap_or_else(switchboard_core::time::now_ms);
    let common = |mut payload: Value| {
        payload["message_id"] = json!(n.message_id);
        payload["occurred_at"] = json!(timestamp);
        payload["broadcaster_user_id"] = e["broadcaster_user_id"]
            .as_str()
            .or_else(|| e["to_broadcaster_user_id"].as_str())
            .map(Value::from)
            .unwrap_or(Value::Null);
        payload["broadcaster_user_login"] = e["broadcaster_user_login"]
            .as_str()
            .or_else(|| e["to_broadcaster_user_login"].as_str())
            .map(Value::from)
            .unwrap_or(Value::Null);
        payload
    };
    let subscription = |kind: &str| {
        common(json!({
            "kind": kind,
            "user_id": e["user_id"],
            "user_login": e["user_login"],
            "user_name": e["user_name"],
            "tier": e["tier"],
            "is_gift": e["is_gift"].as_bool().unwrap_or(false),
            "message": e["message"]["text"],
            "cumulative_months": e["cumulative_months"],
            "streak_months": e["streak_months"],
            "duration_months": e["duration_months"],
            "total": e["total"],
            "cumulative_total": e["cumulative_total"],
            "is_anonymous": e["is_anonymous"].as_bool().unwrap_or(false),
        }))
    };
    let (event_type, archive, key, payload) = match n.kind.as_str() {
        "channel.follow" => {
            let user_id = e["user_id"].as_str()?;
            let followed_at = e["followed_at"].as_str().unwrap_or(&timestamp).to_owned();
            let mut payload = follow_payload(e, Some(&n.message_id), "eventsub");
            payload["followed_at"] = json!(followed_at);
            payload["occurred_at"] = json!(followed_at);
            return Some(Outgoing {
                event_type: "twitch.follow",
                archive: "followers",
                key: follow_key(user_id, &followed_at),
                occurred_at: epoch_ms(&followed_at).unwrap_or(occurred_at),
                payload,
            });
        }
        "channel.subscribe" => (
            "twitch.subscribe",
            "subscriptions",
            n.message_id.clone(),
            subscription("sub"),
        ),
        "channel.subscription.message" => (
            "twitch.subscribe",
            "subscriptions",
            n.message_id.clone(),
            subscription("resub"),
        ),
        "channel.subscription.gift" => (
            "twitch.subscribe",
            "subscriptions",
            n.message_id.clone(),
            subscription("gift"),
        ),
        "channel.raid" => (
            "twitch.raid",
            "raids",
            n.message_id.clone(),
            common(json!({
                "from_broadcaster_user_id": e["from_broadcaster_user_id"],
                "from_broadcaster_user_login": e["from_broadcaster_user_login"],
                "from_broadcaster_user_name": e["from_broadcaster_user_name"],
                "viewers": e["viewers"],
            })),
        ),
        "channel.cheer" => (
            "twitch.cheer",
            "cheers",
            n.message_id.clone(),
            common(json!({
                "user_id": e["user_id"],
                "user_login": e["user_login"],
                "user_name": e["user_name"],
                "is_anonymous": e["is_anonymous"].as_bool().unwrap_or(false),
                "bits": e["bits"],
                "message": e["message"],
            })),
        ),
        _ => return None,
    };
    Some(Outgoing {
        event_type,
        archive,
        key,
        occurred_at,
        payload,
    })
}

/// How an EventSub (re)start failed.
enum OpenFailure {
    Fatal(ConnectorError),
    Retry(String),
}

impl From<HelixError> for OpenFailure {
    fn from(e: HelixError) -> Self {
        match e {
            HelixError::NeedsReauth(m) => OpenFailure::Fatal(ConnectorError::NeedsReauth(m)),
            other => OpenFailure::Retry(other.to_string()),
        }
    }
}

impl TwitchSession {
    // -----------------------------------------------------------------------
    // Publishing
    // -----------------------------------------------------------------------

    fn first_time(&self, id: &str) -> bool {
        self.seen
            .lock()
            .expect("seen lock poisoned")
            .first_time(id, Instant::now())
    }

    /// Archive, then publish unless the archive already had it.
    async fn publish(&self, out: Outgoing) {
        let env = &self.ctx.env;
        match env
            .archive(out.archive, &out.key, out.occurred_at, out.payload.clone())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(kind = out.archive, key = %out.key, "already archived; not published again");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, kind = out.archive, "could not archive a Twitch event; publishing it anyway")
            }
        }
        if out.event_type == "twitch.follow" {
            self.advance_follow_cursor(out.occurred_at / 1000).await;
        }
        env.emit(out.event_type, out.payload).await;
    }

    async fn deliver(&self, n: Notification) {
        if !self.first_time(&n.message_id) {
            tracing::debug!(message_id = %n.message_id, "duplicate EventSub notification ignored");
            return;
        }
        match map_notification(&n) {
            Some(out) => self.publish(out).await,
            None => tracing::debug!(kind = %n.kind, "EventSub notification of an unused type"),
        }
    }

    async fn follow_cursor(&self) -> Option<Option<i64>> {
        let mut cursor = self.follow_cursor.lock().await;
        if cursor.is_none() {
            match self.ctx.env.load_state(FOLLOW_CURSOR).await {
                Ok(Some(state)) => *cursor = Some(state["followed_at_secs"].as_i64()),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "could not read the follower cursor"),
            }
        }
        *cursor
    }

    async fn store_follow_cursor(&self, seconds: Option<i64>) {
        *self.follow_cursor.lock().await = Some(seconds);
        if let Err(error) = self
            .ctx
            .env
            .store_state(FOLLOW_CURSOR, Some(json!({ "followed_at_secs": seconds })))
            .await
        {
            tracing::warn!(%error, "could not store the follower cursor");
        }
    }

    async fn advance_follow_cursor(&self, seconds: i64) {
        let current = self.follow_cursor().await.flatten();
        if current.is_none_or(|c| seconds > c) {
            self.store_follow_cursor(Some(seconds)).await;
        }
    }

    /// Read back the follows since the newest one seen, oldest first.
    async fn backfill_follows(&self) -> Result<(), HelixError> {
        if !self.settings.events.follow {
            return Ok(());
        }
        let cursor = self.follow_cursor().await;
        let mut missed = Vec::new();
        let mut after: Option<String> = None;
        let mut newest: Option<i64> = None;
        'pages: for _ in 0..BACKFILL_PAGES {
            let mut call = Call::get("/channels/followers")
                .query("broadcaster_id", &self.identity.channel_id)
                .query("first", if cursor.is_none() { 1 } else { 100 });
            if let Some(after) = &after {
                call = call.query("after", after);
            }
            let answer = match self.helix.send(call).await {
                Ok(answer) => answer,
                Err(HelixError::Rejected {
                    status, message, ..
                }) => {
                    tracing::warn!(status, %message, "cannot read the followers list; follows missed in a gap are not recovered");
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let entries = answer["data"].as_array().cloned().unwrap_or_default();
            for entry in &entries {
                let Some(out) = backfilled_follow(
                    entry,
                    &self.identity.channel_id,
                    &self.identity.channel_login,
                ) else {
                    continue;
                };
                let seconds = out.occurred_at / 1000;
                newest = newest.max(Some(seconds));
                match cursor {
                    // The first session: only note where things stand.
                    None => break 'pages,
                    Some(Some(last)) if seconds < last => break 'pages,
                    _ => missed.push(out),
                }
            }
            after = answer["pagination"]["cursor"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_owned);
            if after.is_none() || entries.is_empty() {
                break;
            }
        }
        if cursor.is_none() {
            self.store_follow_cursor(newest).await;
            return Ok(());
        }
        if !missed.is_empty() {
            tracing::info!(count = missed.len(), "reading back follows from the gap");
        }
        for out in missed.into_iter().rev() {
            self.publish(out).await;
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // EventSub
    // -----------------------------------------------------------------------

    /// Subscribe a fresh session to every configured type. Refusals that a
    /// retry cannot fix (a missing scope, not the broadcaster) come back as
    /// problems; the rest of the types still work.
    async fn subscribe_all(&self, session_id: &str) -> Result<Vec<String>, HelixError> {
        let mut problems = Vec::new();
        for (kind, version) in self.settings.events.subscription_types() {
            let body = eventsub::subscription_request(
                kind,
                version,
                &self.identity.channel_id,
                &self.identity.user_id,
                session_id,
            );
            let call = Call::new(reqwest::Method::POST, "/eventsub/subscriptions").json(body);
            match self.helix.send(call).await {
                Ok(_) => {}
                Err(HelixError::Rejected { status: 409, .. }) => {}
                Err(HelixError::Rejected {
                    status, message, ..
                }) => problems.push(format!(
                    "Twitch refused the {kind} subscription (HTTP {status}: {message})"
                )),
                Err(e) => return Err(e),
            }
        }
        Ok(problems)
    }

    /// Open a new EventSub session, subscribe, and read back missed follows.
    pub(crate) async fn open_eventsub(
        &self,
    ) -> Result<(EventSubSocket, Vec<String>), ConnectorError> {
        match self.try_open_eventsub().await {
            Ok(opened) => Ok(opened),
            Err(OpenFailure::Fatal(e)) => Err(e),
            Err(OpenFailure::Retry(m)) => Err(ConnectorError::Unavailable(m)),
        }
    }

    async fn try_open_eventsub(&self) -> Result<(EventSubSocket, Vec<String>), OpenFailure> {
        let url = eventsub::initial_url(
            &self.endpoints.eventsub,
            self.settings.keepalive_timeout_secs,
        );
        let socket = EventSubSocket::open(&url)
            .await
            .map_err(OpenFailure::Retry)?;
        let problems = self.subscribe_all(&socket.session_id).await?;
        self.backfill_follows().await?;
        Ok((socket, problems))
    }

    /// Follow a `session_reconnect`: open `url` and wait for its welcome
    /// while the old socket keeps delivering, then close the old one.
    async fn move_session(
        &self,
        old: EventSubSocket,
        url: &str,
        cancel: &CancellationToken,
    ) -> Option<EventSubSocket> {
        let mut old = Some(old);
        let open = EventSubSocket::open(url);
        tokio::pin!(open);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return None,
                opened = &mut open => {
                    if let Some(old) = old.take() {
                        old.close().await;
                    }
                    return match opened {
                        Ok(new) => Some(new),
                        Err(error) => {
                            tracing::warn!(%error, "could not follow EventSub's session_reconnect");
                            None
                        }
                    };
                }
                read = async { old.as_mut().expect("polled only while open").read().await }, if old.is_some() => {
                    match read {
                        Read::Frame(Frame::Notification(n)) => self.deliver(n).await,
                        Read::Frame(_) => {}
                        Read::Closed(reason) => {
                            tracing::debug!(%reason, "the old EventSub socket closed before the new one's welcome");
                            old = None;
                        }
                    }
                }
            }
        }
    }

    pub(crate) async fn run_eventsub(
        &self,
        mut socket: Option<EventSubSocket>,
        cancel: CancellationToken,
    ) -> Result<(), ConnectorError> {
        let env = &self.ctx.env;
        let mut delays = reconnect_delays();
        loop {
            let mut current = match socket.take() {
                Some(socket) => socket,
                None => match self.try_open_eventsub().await {
                    Ok((socket, problems)) => {
                        delays = reconnect_delays();
                        let problem = (!problems.is_empty()).then(|| problems.join("; "));
                        self.health.set_events(env, problem).await;
                        socket
                    }
                    Err(OpenFailure::Fatal(e)) => return Err(e),
                    Err(OpenFailure::Retry(reason)) => {
                        self.health
                            .set_events(env, Some(format!("EventSub: {reason}; reconnecting")))
                            .await;
                        let wait = delays.next().unwrap_or(Duration::from_secs(60));
                        tokio::select! {
                            _ = cancel.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(wait) => continue,
                        }
                    }
                },
            };
            let ended = loop {
                let limit = current.silence_limit();
                let read = tokio::select! {
                    _ = cancel.cancelled() => {
                        current.close().await;
                        return Ok(());
                    }
                    read = tokio::time::timeout(limit, current.read()) => read,
                };
                match read {
                    Err(_) => {
                        break format!(
                            "no EventSub message for {}s (keepalive timeout)",
                            limit.as_secs()
                        );
                    }
                    Ok(Read::Closed(reason)) => break reason,
                    Ok(Read::Frame(Frame::Notification(n))) => self.deliver(n).await,
                    Ok(Read::Frame(Frame::Reconnect { url })) => {
                        tracing::info!("EventSub asked to reconnect; moving the session");
                        match self.move_session(current, &url, &cancel).await {
                            Some(new) => current = new,
                            None if cancel.is_cancelled() => return Ok(()),
                            None => {
                                socket = None;
                                self.health
                                    .set_events(
                                        env,
                                        Some("EventSub: following session_reconnect failed; opening a new session".into()),
                                    )
                                    .await;
                                // `current` was consumed: start over.
                                break String::new();
                            }
                        }
                    }
                    Ok(Read::Frame(Frame::Revocation { kind, status })) => {
                        tracing::warn!(%kind, %status, "Twitch revoked an EventSub subscription");
                        self.health
                            .set_events(
                                env,
                                Some(format!(
                                    "Twitch revoked the {kind} subscription ({status}); reconnect this account if it was authorization_revoked"
                                )),
                            )
                            .await;
                    }
                    Ok(Read::Frame(_)) => {}
                }
            };
            if !ended.is_empty() {
                tracing::warn!(reason = %ended, "EventSub socket lost; opening a new session");
                self.health
                    .set_events(env, Some(format!("EventSub: {ended}; reconnecting")))
                    .await;
            }
        }
    }

    // -----------------------------------------------------------------------
    // Chat
    // -----------------------------------------------------------------------

    /// Log in to chat and join the channel, refreshing the token once if
    /// chat refuses it.
    pub(crate) async fn open_chat(&self) -> Result<ChatConnection, ConnectorError> {
        let keeper = self.helix.keeper();
        let token = keeper
            .access_token(REFRESH_MARGIN)
            .await
            .map_err(connector_error)?;
        let open = |token| {
            let url = self.endpoints.irc.clone();
            let login = self.identity.login.clone();
            let channel = self.identity.channel_login.clone();
            async move { ChatConnection::open(&url, &login, &token, &channel).await }
        };
        match open(token.clone()).await {
            Ok(connection) => Ok(connection),
            Err(ChatOpenError::LoginRefused(_)) => {
                let fresh = keeper
                    .after_rejection(&token)
                    .await
                    .map_err(connector_error)?;
                match open(fresh).await {
                    Ok(connection) => Ok(connection),
                    Err(ChatOpenError::LoginRefused(notice)) => {
                        Err(ConnectorError::NeedsReauth(format!(
                            "Twitch chat refused this account's token ({notice}); reconnect this account"
                        )))
                    }
                    Err(ChatOpenError::Unavailable(m)) => Err(ConnectorError::Unavailable(m)),
                }
            }
            Err(ChatOpenError::Unavailable(m)) => Err(ConnectorError::Unavailable(m)),
        }
    }

    async fn on_chat_line(&self, line: &str) {
        let command = line
            .split(' ')
            .find(|part| !part.starts_with('@') && !part.starts_with(':'))
            .unwrap_or("");
        match command {
            "PRIVMSG" => match chat::chat_message_payload(line) {
                Ok(mut payload) => {
                    if let Some(id) = payload["id"].as_str()
                        && !self.first_time(id)
                    {
                        return;
                    }
                    // Rules skip the account's own messages unless asked.
                    payload["is_self"] = json!(chat::is_own_message(
                        &payload,
                        &self.identity.user_id,
                        &self.identity.login
                    ));
                    self.ctx.env.emit("twitch.chat.message", payload).await;
                }
                Err(error) => tracing::debug!(%error, "chat line skipped"),
            },
            "USERSTATE" => {
                let Ok(tags) = chat::parse_tags(line) else {
                    return;
                };
                let moderates = tags.get("mod").is_some_and(|m| m == "1")
                    || tags.get("badges").is_some_and(|b| {
                        b.split(',').any(|badge| {
                            badge.starts_with("broadcaster/") || badge.starts_with("moderator/")
                        })
                    });
                if moderates
                    && !self.limit_overridden
                    && self.limiter.limit().messages < crate::limits::ChatLimit::MODERATOR.messages
                {
                    tracing::info!("this account moderates the channel: chat limit 100 per 30 s");
                    self.limiter
                        .set_messages(crate::limits::ChatLimit::MODERATOR.messages);
                }
            }
            "NOTICE" => tracing::info!(line = %line, "Twitch chat notice"),
            _ => {}
        }
    }

    /// Follow chat's `RECONNECT`: open and join a new socket while the old
    /// one keeps delivering, then drain the old one up to the answer to a
    /// last `PING` (everything it had queued) and close it. The overlap
    /// delivers some messages on both sockets; the id filter drops them.
    async fn move_chat(&self, current: &mut ChatConnection) -> Result<(), ConnectorError> {
        let open = self.open_chat();
        tokio::pin!(open);
        let mut old_open = true;
        let mut new = loop {
            tokio::select! {
                opened = &mut open => break opened?,
                reads = current.read(), if old_open => {
                    for read in reads {
                        match read {
                            ChatRead::Line(line) => self.on_chat_line(&line).await,
                            ChatRead::Reconnect => {}
                            ChatRead::Closed(_) => old_open = false,
                        }
                    }
                }
            }
        };
        for line in std::mem::take(&mut new.early) {
            self.on_chat_line(&line).await;
        }
        let mut old = std::mem::replace(current, new);
        if old_open && old.ping().await.is_ok() {
            let drain = async {
                loop {
                    for read in old.read().await {
                        match read {
                            ChatRead::Line(line) if line.contains(" PONG ") => return,
                            ChatRead::Line(line) => self.on_chat_line(&line).await,
                            ChatRead::Reconnect => {}
                            ChatRead::Closed(_) => return,
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(CHAT_PONG_WAIT, drain).await;
        }
        old.close().await;
        Ok(())
    }

    pub(crate) async fn run_chat(
        &self,
        mut connection: Option<ChatConnection>,
        cancel: CancellationToken,
    ) -> Result<(), ConnectorError> {
        let env = &self.ctx.env;
        let mut delays = reconnect_delays();
        loop {
            let mut current = match connection.take() {
                Some(c) => c,
                None => match self.open_chat().await {
                    Ok(c) => {
                        delays = reconnect_delays();
                        self.health.set_chat(env, None).await;
                        c
                    }
                    Err(ConnectorError::Unavailable(reason)) => {
                        self.health
                            .set_chat(env, Some(format!("chat: {reason}; reconnecting")))
                            .await;
                        let wait = delays.next().unwrap_or(Duration::from_secs(60));
                        tokio::select! {
                            _ = cancel.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(wait) => continue,
                        }
                    }
                    Err(fatal) => return Err(fatal),
                },
            };
            for line in std::mem::take(&mut current.early) {
                self.on_chat_line(&line).await;
            }
            let mut last_heard = Instant::now();
            let mut pinged: Option<Instant> = None;
            let ended: String = 'socket: loop {
                let deadline = match pinged {
                    Some(at) => at + CHAT_PONG_WAIT,
                    None => last_heard + CHAT_QUIET,
                };
                tokio::select! {
                    _ = cancel.cancelled() => {
                        current.close().await;
                        return Ok(());
                    }
                    reads = current.read() => {
                        last_heard = Instant::now();
                        pinged = None;
                        for read in reads {
                            match read {
                                ChatRead::Line(line) => self.on_chat_line(&line).await,
                                ChatRead::Closed(reason) => break 'socket reason,
                                ChatRead::Reconnect => {
                                    tracing::info!("Twitch chat asked to reconnect");
                                    match self.move_chat(&mut current).await {
                                        Ok(()) => continue 'socket,
                                        Err(ConnectorError::Unavailable(reason)) => break 'socket reason,
                                        Err(fatal) => return Err(fatal),
                                    }
                                }
                            }
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        if pinged.is_some() {
                            break 'socket format!(
                                "chat did not answer a PING within {}s",
                                CHAT_PONG_WAIT.as_secs()
                            );
                        }
                        if let Err(reason) = current.ping().await {
                            break 'socket reason;
                        }
                        pinged = Some(Instant::now());
                    }
                }
            };
            tracing::warn!(reason = %ended, "Twitch chat lost; reconnecting");
            self.health
                .set_chat(env, Some(format!("chat: {ended}; reconnecting")))
                .await;
        }
    }

    // -----------------------------------------------------------------------
    // Validation
    // -----------------------------------------------------------------------

    pub(crate) async fn run_validation(
        &self,
        cancel: CancellationToken,
    ) -> Result<(), ConnectorError> {
        let every = Duration::from_secs(self.settings.validate_interval_secs.max(1));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(every) => {}
            }
            match self.helix.keeper().validate().await {
                Ok(_) => {}
                Err(AuthError::Unavailable(error)) => {
                    tracing::warn!(%error, "could not validate the Twitch token; trying again later")
                }
                Err(fatal) => return Err(connector_error(fatal)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(kind: &str, event: Value) -> Notification {
        Notification {
            message_id: "m-1".into(),
            kind: kind.into(),
            timestamp: Some("2023-07-19T14:56:51.634234626Z".into()),
            event,
        }
    }

    #[test]
    fn ids_are_seen_once_within_ten_minutes() {
        let mut seen = SeenIds::default();
        let start = Instant::now();
        assert!(seen.first_time("a", start));
        assert!(!seen.first_time("a", start + Duration::from_secs(1)));
        assert!(seen.first_time("b", start + Duration::from_secs(2)));
        // Long after, the memory has let go (bounded, not forever).
        assert!(seen.first_time("a", start + Duration::from_secs(601)));
        assert!(seen.order.len() <= 2);
    }

    #[test]
    fn the_seen_filter_is_bounded_in_size() {
        let mut seen = SeenIds::default();
        let now = Instant::now();
        for n in 0..SEEN_MAX + 10 {
            seen.first_time(&n.to_string(), now);
        }
        assert!(seen.order.len() <= SEEN_MAX + 1);
        assert_eq!(seen.at.len(), seen.order.len());
    }

    #[test]
    fn follows_from_eventsub_and_from_helix_share_a_key() {
        let out = map_notification(&notification(
            "channel.follow",
            json!({"user_id": "1337", "user_login": "awesome_user", "user_name": "Awesome_User",
                   "broadcaster_user_id": "12826", "broadcaster_user_login": "twitch", "broadcaster_user_name": "Twitch",
                   "followed_at": "2023-07-15T18:16:11.17106713Z"}),
        ))
        .unwrap();
        assert_eq!(out.event_type, "twitch.follow");
        assert_eq!(out.archive, "followers");
        assert_eq!(out.payload["user_login"], "awesome_user");
        assert_eq!(out.payload["source"], "eventsub");
        assert_eq!(out.payload["message_id"], "m-1");
        let helix = backfilled_follow(
            &json!({"user_id": "1337", "user_login": "awesome_user", "user_name": "Awesome_User", "followed_at": "2023-07-15T18:16:11Z"}),
            "12826",
            "twitch",
        )
        .unwrap();
        assert_eq!(helix.key, out.key);
        assert_eq!(helix.payload["source"], "backfill");
        assert_eq!(helix.payload["broadcaster_user_id"], "12826");
        assert_eq!(out.occurred_at / 1000, helix.occurred_at / 1000);
    }

    #[test]
    fn subscriptions_resubs_and_gifts_are_one_trigger_with_a_kind() {
        let sub = map_notification(&notification(
            "channel.subscribe",
            json!({"user_id": "1234", "user_login": "cool_user", "user_name": "Cool_User",
                   "broadcaster_user_id": "1337", "broadcaster_user_login": "cooler_user", "broadcaster_user_name": "Cooler_User",
                   "tier": "1000", "is_gift": false}),
        ))
        .unwrap();
        assert_eq!(sub.event_type, "twitch.subscribe");
        assert_eq!(sub.archive, "subscriptions");
        assert_eq!(sub.key, "m-1");
        assert_eq!(sub.payload["kind"], "sub");
        assert_eq!(sub.payload["tier"], "1000");
        assert_eq!(sub.payload["broadcaster_user_login"], "cooler_user");
        assert_eq!(sub.occurred_at, 1_689_778_611_634);

        let resub = map_notification(&notification(
            "channel.subscription.message",
            json!({"user_id": "1234", "user_login": "cool_user", "user_name": "Cool_User",
                   "broadcaster_user_id": "1337", "broadcaster_user_login": "cooler_user",
                   "tier": "1000", "message": {"text": "Love the stream! FevziGG", "emotes": [{"begin": 23, "end": 30, "id": "302976485"}]},
                   "cumulative_months": 15, "streak_months": 1, "duration_months": 6}),
        ))
        .unwrap();
        assert_eq!(resub.payload["kind"], "resub");
        assert_eq!(resub.payload["message"], "Love the stream! FevziGG");
        assert_eq!(resub.payload["cumulative_months"], 15);

        let gift = map_notification(&notification(
            "channel.subscription.gift",
            json!({"user_id": null, "user_login": null, "user_name": null,
                   "broadcaster_user_id": "1337", "broadcaster_user_login": "cooler_user",
                   "total": 2, "tier": "1000", "cumulative_total": null, "is_anonymous": true}),
        ))
        .unwrap();
        assert_eq!(gift.payload["kind"], "gift");
        assert_eq!(gift.payload["total"], 2);
        assert_eq!(gift.payload["is_anonymous"], true);
        assert_eq!(gift.payload["user_login"], Value::Null);
    }

    #[test]
    fn raids_and_cheers_are_read_from_twitchs_examples() {
        let raid = map_notification(&notification(
            "channel.raid",
            json!({"from_broadcaster_user_id": "1234", "from_broadcaster_user_login": "cool_user", "from_broadcaster_user_name": "Cool_User",
                   "to_broadcaster_user_id": "1337", "to_broadcaster_user_login": "cooler_user", "to_broadcaster_user_name": "Cooler_User",
                   "viewers": 9001}),
        ))
        .unwrap();
        assert_eq!(raid.event_type, "twitch.raid");
        assert_eq!(raid.archive, "raids");
        assert_eq!(raid.payload["viewers"], 9001);
        assert_eq!(raid.payload["from_broadcaster_user_login"], "cool_user");
        assert_eq!(raid.payload["broadcaster_user_id"], "1337");

        let cheer = map_notification(&notification(
            "channel.cheer",
            json!({"is_anonymous": false, "user_id": "1234", "user_login": "cool_user", "user_name": "Cool_User",
                   "broadcaster_user_id": "1337", "broadcaster_user_login": "cooler_user", "broadcaster_user_name": "Cooler_User",
                   "message": "pogchamp", "bits": 1000}),
        ))
        .unwrap();
        assert_eq!(cheer.event_type, "twitch.cheer");
        assert_eq!(cheer.archive, "cheers");
        assert_eq!(cheer.payload["bits"], 1000);
        assert_eq!(cheer.payload["message"], "pogchamp");
        assert!(map_notification(&notification("channel.ban", json!({}))).is_none());
    }
}
