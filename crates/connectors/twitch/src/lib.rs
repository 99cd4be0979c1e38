//! The `twitch` connector: one Twitch account per connection, acting in
//! one channel (its own by default).
//!
//! * **Auth** (`auth.rs`): OAuth 2.0 authorization code flow (the daemon
//!   keeps the `state`, single use, 10 minutes), tokens in the vault, or a
//!   pair pasted from the Twitch CLI. `TokenKeeper` refreshes single-flight
//!   under `RuntimeEnv::lock("twitch-oauth2-refresh")`, ahead of expiry and
//!   after any 401; a refused refresh token is `needs_reauth` ("reconnect
//!   this account"). Tokens are validated when a session starts and hourly,
//!   as Twitch requires.
//! * **Client** (`client.rs`): Helix calls with `Client-Id` and the bearer
//!   token, one refresh and one retry after a 401, 429 as `RateLimited`.
//! * **Chat** (`chat.rs`): IRC over WebSocket to read the channel
//!   (`twitch.chat.message` with badges, emotes, bits, reply parent), with
//!   `twitch-irc`'s line parser; reconnect with backoff and on `RECONNECT`.
//!   Sending goes through Helix (`POST /chat/messages`, which returns the
//!   message id) paced by the chat limiter (`limits.rs`): 20 per 30 s, or
//!   100 as broadcaster or moderator; a burst waits in order, never dropped
//!   and never over the limit.
//! * **EventSub** (`eventsub.rs`, `triggers.rs`): one WebSocket session with
//!   `channel.follow` v2, `channel.subscribe`, `channel.subscription.message`,
//!   `channel.subscription.gift`, `channel.raid`, `channel.cheer`;
//!   keepalive watched, `session_reconnect` followed without a gap, a dropped
//!   socket replaced by a new session and resubscribed, follows missed in
//!   the gap backfilled from Helix, duplicates ignored by message id.
//!   Follows, subscriptions, raids and cheers are archived
//!   (`RuntimeEnv::archive`) as they arrive and published as `twitch.follow`,
//!   `twitch.subscribe`, `twitch.raid`, `twitch.cheer`.
//! * **Actions** (`actions.rs`): `twitch.send_chat`, `twitch.shoutout`,
//!   `twitch.update_channel`, `twitch.create_clip`, `twitch.ban`,
//!   `twitch.timeout`.
//!
//! # Threading and lifecycle
//!
//! `connect` validates the token, learns the account and the channel, and
//! opens chat and the first EventSub session (subscribed), so `connected`
//! means events flow. `run` then drives three loops on the session's task:
//! chat, EventSub and token validation. Chat and EventSub reconnect by
//! themselves with exponential backoff and jitter, reporting `degraded`
//! (with the reason) while either is down and `connected` when both are back;
//! they keep the session's duplicate filter and chat limiter across
//! reconnects. `run` ends only when the runtime is cancelled (`Ok`) or the
//! credentials are gone (`NeedsReauth`). Actions run concurrently on job
//! workers and share the Helix client, the token keeper and the limiter.
//!
//! # Why parts are hand-rolled
//!
//! The maintained crates fix their endpoints per process or per type:
//! `twitch-irc`'s `Transport::new()` takes no URL, `twitch_api`'s Helix and
//! EventSub URLs and `twitch_oauth2`'s token URLs are process-wide
//! environment variables. The daemon takes every base URL from its
//! `services` configuration (the simulator in tests and `switchboard demo`,
//! Twitch otherwise), per connector. So the transports are ours; what the
//! crates do well without a URL, `twitch-irc`'s IRCv3 line parser, is used.
//! `twitch_api`'s payload types would cost about two minutes of CPU per
//! build (see `eventsub.rs`). The module docs say more.

mod actions;
pub mod auth;
pub mod chat;
mod client;
pub mod eventsub;
pub mod limits;
mod socket;
mod triggers;

/// Entry points for the fuzz targets (`fuzz/` at the repository root); not
/// an API.
#[doc(hidden)]
pub mod fuzzing {
    /// An EventSub notification → the event type and payload the connector
    /// publishes for it, as the session does.
    pub fn map_notification(
        notification: &crate::eventsub::Notification,
    ) -> Option<(&'static str, serde_json::Value)> {
        crate::triggers::map_notification(notification).map(|out| (out.event_type, out.payload))
    }
}

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::{
    ActionCall, ActionError, ActionSpec, AuthKind, AuthorizeFlow, AuthorizeRequest, AuthorizeStart,
    Connector, ConnectorError, ConnectorManifest, ParamsContext, RuntimeContext, SecretSpec,
    Session, TriggerSpec,
};
use tokio_util::sync::CancellationToken;

use auth::{App, AuthError, IdEndpoints, TokenKeeper, Tokens};
use chat::ChatConnection;
use client::{Call, HelixClient, HelixError};
use eventsub::EventSubSocket;
use limits::{ChatLimit, ChatLimiter};
use triggers::{Health, SeenIds};

/// Where Twitch is: the daemon's `services` `twitch_helix`, `twitch_id`,
/// `twitch_irc` and `twitch_eventsub` (the authorization endpoints
/// `twitch_authorize`, `twitch_token` and `twitch_validate`, under
/// `twitch_id` by default, are [`auth::IdEndpoints`]).
#[derive(Debug, Clone)]
pub struct TwitchEndpoints {
    /// `https://api.twitch.tv/helix`
    pub helix: String,
    /// `https://id.twitch.tv`
    pub id: String,
    /// `wss://irc-ws.chat.twitch.tv:443`
    pub irc: String,
    /// `wss://eventsub.wss.twitch.tv/ws`
    pub eventsub: String,
}

/// Settings of a Twitch connection (see the settings schema in [`manifest`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwitchSettings {
    pub client_id: Option<String>,
    /// Login of the channel to act in; the authorized account's by default.
    pub channel: Option<String>,
    pub chat: ChatSettings,
    pub chat_limit: Option<ChatLimitSettings>,
    pub events: EventSettings,
    /// Seconds between token validations (Twitch requires hourly).
    pub validate_interval_secs: u64,
    /// EventSub keepalive to ask for (10–600 s; Twitch's default is 10).
    pub keepalive_timeout_secs: Option<u64>,
}

impl Default for TwitchSettings {
    fn default() -> Self {
        TwitchSettings {
            client_id: None,
            channel: None,
            chat: ChatSettings::default(),
            chat_limit: None,
            events: EventSettings::default(),
            validate_interval_secs: 3600,
            keepalive_timeout_secs: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatSettings {
    /// Read the channel's chat (`twitch.chat.message`).
    pub enabled: bool,
    /// Longest a `twitch.send_chat` job waits in the send queue before it is
    /// put back (`rate_limited`) until its turn comes closer.
    pub max_wait_secs: u64,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            enabled: true,
            max_wait_secs: 120,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatLimitSettings {
    pub messages: u32,
    pub per_secs: u64,
}

/// Which EventSub events to subscribe to (all by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    pub follow: bool,
    /// New subscriptions, resubscriptions and gifts.
    pub subscribe: bool,
    pub raid: bool,
    pub cheer: bool,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            follow: true,
            subscribe: true,
            raid: true,
            cheer: true,
        }
    }
}

impl EventSettings {
    /// The subscription types these settings ask for.
    pub fn subscription_types(&self) -> Vec<(&'static str, &'static str)> {
        eventsub::SUBSCRIPTION_TYPES
            .iter()
            .copied()
            .filter(|(kind, _)| match *kind {
                "channel.follow" => self.follow,
                "channel.raid" => self.raid,
                "channel.cheer" => self.cheer,
                _ => self.subscribe,
            })
            .collect()
    }
}

/// The account a session acts as, and the channel it acts in.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub user_id: String,
    pub login: String,
    pub channel_id: String,
    pub channel_login: String,
}

impl Identity {
    pub fn is_broadcaster(&self) -> bool {
        self.user_id == self.channel_id
    }
}

fn user_schema(description: &str) -> Value {
    json!({"type": "string", "pattern": "^@?[A-Za-z0-9_]{1,25}$", "description": description})
}

fn manifest() -> ConnectorManifest {
    let secret = |name: &str, description: &str| SecretSpec {
        name: name.into(),
        description: description.into(),
        required: false,
    };
    let string = json!({"type": "string"});
    let nullable = json!({"type": ["string", "null"]});
    let user_fields = |prefix: &str| {
        let mut map = serde_json::Map::new();
        for field in ["user_id", "user_login", "user_name"] {
            map.insert(format!("{prefix}{field}"), nullable.clone());
        }
        map
    };
    let mut follow = user_fields("");
    follow.insert("followed_at".into(), string.clone());
    follow.insert("source".into(), json!({"enum": ["eventsub", "backfill"], "description": "backfill: found through Helix after a gap in the event stream."}));
    let mut subscribe = user_fields("");
    for (k, v) in [
        (
            "kind",
            json!({"enum": ["sub", "resub", "gift"], "description": "sub: a new subscription (is_gift when someone gave it); resub: a resubscription shared in chat (message, months); gift: someone gave `total` subscriptions (user_* is the giver, null when anonymous)."}),
        ),
        ("tier", json!({"enum": ["1000", "2000", "3000"]})),
        ("is_gift", json!({"type": "boolean"})),
        ("message", nullable.clone()),
        ("cumulative_months", json!({"type": ["integer", "null"]})),
        ("streak_months", json!({"type": ["integer", "null"]})),
        ("duration_months", json!({"type": ["integer", "null"]})),
        ("total", json!({"type": ["integer", "null"]})),
        ("cumulative_total", json!({"type": ["integer", "null"]})),
        ("is_anonymous", json!({"type": "boolean"})),
    ] {
        subscribe.insert(k.into(), v);
    }
    let mut raid = user_fields("from_broadcaster_");
    raid.insert("viewers".into(), json!({"type": "integer"}));
    let mut cheer = user_fields("");
    cheer.insert("bits".into(), json!({"type": "integer"}));
    cheer.insert("message".into(), string.clone());
    cheer.insert("is_anonymous".into(), json!({"type": "boolean"}));
    let event_schema = |mut fields: serde_json::Map<String, Value>| {
        fields.insert("message_id".into(), json!({"type": ["string", "null"], "description": "EventSub message id (null for a backfilled follow)."}));
        fields.insert(
            "occurred_at".into(),
            json!({"type": "string", "description": "RFC 3339."}),
        );
        fields.insert("broadcaster_user_id".into(), string.clone());
        fields.insert("broadcaster_user_login".into(), string.clone());
        json!({"type": "object", "properties": fields})
    };
    ConnectorManifest {
        name: "twitch".into(),
        display_name: "Twitch".into(),
        description: "Read and write a Twitch channel's chat, react to follows, subscriptions, raids and cheers, give shoutouts, change the title and category, create clips, ban and time out. OAuth 2.0.".into(),
        auth: AuthKind::Oauth2,
        settings_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "client_id": {"type": "string", "minLength": 1, "maxLength": 100, "description": "Your Twitch application's client id (dev.twitch.tv/console). Needed to connect and to refresh tokens; with pasted tokens it is learnt from Twitch if omitted."},
                "channel": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,25}$", "description": "Login of the channel to act in. Default: the connected account's own channel. Subscriptions and cheers can only be read by the broadcaster."},
                "chat": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "enabled": {"type": "boolean", "description": "Read the channel's chat (twitch.chat.message). Default true."},
                        "max_wait_secs": {"type": "integer", "minimum": 0, "maximum": 3600, "description": "Longest a twitch.send_chat job waits for the chat limit inside the job before it is put back until its turn (default 120)."}
                    }
                },
                "chat_limit": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["messages", "per_secs"],
                    "description": "Override of the chat send limit (default 20 per 30 s, or 100 per 30 s when the account is the broadcaster or a moderator of the channel). Never set it above what Twitch allows: going over can block chatting for 30 minutes.",
                    "properties": {
                        "messages": {"type": "integer", "minimum": 1, "maximum": 100},
                        "per_secs": {"type": "integer", "minimum": 1, "maximum": 3600}
                    }
                },
                "events": {
                    "type": "object",
                    "additionalProperties": false,
                    "description": "Which EventSub events to receive (all on by default).",
                    "properties": {
                        "follow": {"type": "boolean"},
                        "subscribe": {"type": "boolean"},
                        "raid": {"type": "boolean"},
                        "cheer": {"type": "boolean"}
                    }
                },
                "validate_interval_secs": {"type": "integer", "minimum": 1, "maximum": 3600, "description": "Seconds between token validations (Twitch requires at least hourly; default 3600)."},
                "keepalive_timeout_secs": {"type": "integer", "minimum": 10, "maximum": 600, "description": "EventSub keepalive to ask Twitch for (default: Twitch's 10 s)."}
            }
        }),
        secrets: vec![
            secret(auth::secret::CLIENT_SECRET, "Client secret of your Twitch application (needed to connect and to refresh tokens)."),
            secret(auth::secret::ACCESS_TOKEN, "User access token; set by the connect flow, or paste one (for example from `twitch token -u`)."),
            secret(auth::secret::REFRESH_TOKEN, "Refresh token; set by the connect flow, may change on every refresh."),
            secret(auth::secret::EXPIRES_AT, "When the access token expires (epoch ms); set by the connect flow, learnt from Twitch for a pasted token."),
        ],
        triggers: vec![
            TriggerSpec {
                event_type: "twitch.chat.message".into(),
                description: "A chat message in the channel, with its Twitch tags.".into(),
                payload_schema: json!({
                    "type": "object",
                    "properties": {
                        "id": nullable, "channel": string, "room_id": nullable,
                        "user_id": nullable, "user_login": string, "display_name": string,
                        "text": string, "is_action": {"type": "boolean", "description": "A /me message."},
                        "badges": {"type": "array", "items": {"type": "object", "properties": {"set": string, "version": string}}},
                        "badge_info": {"type": "array", "items": {"type": "object", "properties": {"set": string, "version": string}}},
                        "emotes": {"type": "array", "items": {"type": "object", "properties": {
                            "id": string, "name": nullable,
                            "positions": {"type": "array", "description": "[start, end] pairs, inclusive, in characters of text.", "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}}
                        }}},
                        "bits": {"type": ["integer", "null"], "description": "Bits cheered with the message (null for none)."},
                        "color": nullable,
                        "is_broadcaster": {"type": "boolean"}, "is_mod": {"type": "boolean"}, "is_vip": {"type": "boolean"},
                        "is_subscriber": {"type": "boolean"}, "first_msg": {"type": "boolean"},
                        "is_self": {"type": "boolean", "description": "Said by this connection's own account; rules skip it unless `on.include_self` is true."},
                        "reply": {"type": ["object", "null"], "properties": {
                            "parent_msg_id": string, "parent_user_id": nullable, "parent_user_login": nullable,
                            "parent_display_name": nullable, "parent_text": nullable, "thread_parent_msg_id": nullable
                        }},
                        "sent_at": {"type": ["integer", "null"], "description": "When Twitch received it, epoch milliseconds."}
                    }
                }),
            },
            TriggerSpec {
                event_type: "twitch.follow".into(),
                description: "Someone followed the channel (settings.events.follow).".into(),
                payload_schema: event_schema(follow),
            },
            TriggerSpec {
                event_type: "twitch.subscribe".into(),
                description: "A subscription, a resubscription or gifted subscriptions (settings.events.subscribe); see `kind`.".into(),
                payload_schema: event_schema(subscribe),
            },
            TriggerSpec {
                event_type: "twitch.raid".into(),
                description: "Another channel raided this one (settings.events.raid).".into(),
                payload_schema: event_schema(raid),
            },
            TriggerSpec {
                event_type: "twitch.cheer".into(),
                description: "Someone cheered bits (settings.events.cheer).".into(),
                payload_schema: event_schema(cheer),
            },
        ],
        actions: vec![
            ActionSpec {
                name: "twitch.send_chat".into(),
                description: "Say something in the channel's chat as this account (up to 500 characters), optionally as a reply to a message id. Sends wait their turn under Twitch's chat limit (never dropped, never over it). Returns the message id.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["text"],
                    "properties": {
                        "text": {"type": "string", "minLength": 1, "maxLength": 500},
                        "reply_to": {"type": "string", "minLength": 1, "maxLength": 100, "description": "Id of the chat message to reply to (twitch.chat.message's `id`)."}
                    }
                }),
                result_schema: json!({"type": "object", "properties": {"message_id": string, "channel": string}}),
            },
            ActionSpec {
                name: "twitch.shoutout".into(),
                description: "Give another channel a shoutout in this channel (Twitch allows one every 2 minutes, and one per target per hour; a cooldown puts the job back until it ends). The channel must be live.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["to"],
                    "properties": {"to": user_schema("Login of the channel to shout out.")}
                }),
                result_schema: json!({"type": "object", "properties": {"to": string, "to_user_id": string}}),
            },
            ActionSpec {
                name: "twitch.update_channel".into(),
                description: "Change the channel's title, category (by name, such as \"Just Chatting\") and/or tags. Returns what was set.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "minProperties": 1,
                    "properties": {
                        "title": {"type": "string", "minLength": 1, "maxLength": 140},
                        "category": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Category (game) name; the exact name is preferred, else the best search match."},
                        "tags": {"type": "array", "maxItems": 10, "items": {"type": "string", "pattern": "^\\S{1,25}$"}, "description": "Up to 10 tags of up to 25 characters, no spaces (Twitch allows letters and digits); replaces the current tags."}
                    }
                }),
                result_schema: json!({"type": "object", "properties": {"title": nullable, "category": {"type": ["object", "null"]}, "tags": {"type": ["array", "null"]}}}),
            },
            ActionSpec {
                name: "twitch.create_clip".into(),
                description: "Clip the last seconds of the live stream. Waits until Twitch has made it (up to 15 s) and returns its id, URL and edit URL.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"has_delay": {"type": "boolean", "description": "Account for the stream delay (default false)."}}
                }),
                result_schema: json!({"type": "object", "properties": {"id": string, "url": string, "edit_url": string}}),
            },
            ActionSpec {
                name: "twitch.ban".into(),
                description: "Ban a user from the channel's chat (the account must be the broadcaster or a moderator).".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["user"],
                    "properties": {
                        "user": user_schema("Login of the user to ban."),
                        "reason": {"type": "string", "maxLength": 500}
                    }
                }),
                result_schema: json!({"type": "object", "properties": {"user_id": string, "end_time": nullable}}),
            },
            ActionSpec {
                name: "twitch.timeout".into(),
                description: "Time a user out of the channel's chat for duration_secs (1 s to 14 days).".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["user", "duration_secs"],
                    "properties": {
                        "user": user_schema("Login of the user to time out."),
                        "duration_secs": {"type": "integer", "minimum": 1, "maximum": 1209600},
                        "reason": {"type": "string", "maxLength": 500}
                    }
                }),
                result_schema: json!({"type": "object", "properties": {"user_id": string, "end_time": nullable}}),
            },
        ],
    }
}

pub struct TwitchConnector {
    manifest: ConnectorManifest,
    http: reqwest::Client,
    endpoints: TwitchEndpoints,
    id: IdEndpoints,
}

impl TwitchConnector {
    pub fn new(endpoints: TwitchEndpoints) -> TwitchConnector {
        let id = IdEndpoints::new(&endpoints.id);
        TwitchConnector::with_id_endpoints(endpoints, id)
    }

    /// Like [`TwitchConnector::new`], with each authorization endpoint on
    /// its own rather than derived from `endpoints.id`.
    pub fn with_id_endpoints(endpoints: TwitchEndpoints, id: IdEndpoints) -> TwitchConnector {
        // reqwest is built without a bundled TLS provider (ring instead of aws-lc:
        // a much lighter build); install it once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        TwitchConnector {
            manifest: manifest(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .build()
                .expect("a default HTTP client builds"),
            id,
            endpoints,
        }
    }

    fn settings(value: &Value) -> Result<TwitchSettings, ConnectorError> {
        serde_json::from_value(value.clone())
            .map_err(|e| ConnectorError::Misconfigured(format!("twitch settings: {e}")))
    }

    /// The client id: from the settings, or (for pasted tokens) from Twitch.
    async fn client_id(
        &self,
        settings: &TwitchSettings,
        tokens: &Tokens,
    ) -> Result<String, ConnectorError> {
        if let Some(id) = settings
            .client_id
            .as_deref()
            .filter(|c| !c.trim().is_empty())
        {
            return Ok(id.trim().to_owned());
        }
        match auth::validate(&self.http, &self.id, &tokens.access).await {
            Ok(Some(validation)) => Ok(validation.client_id),
            Ok(None) => Err(ConnectorError::NeedsReauth(
                "Twitch says the access token is invalid, and without settings.client_id it cannot be refreshed; set client_id and reconnect this account".into(),
            )),
            Err(e) => Err(connector_error(e)),
        }
    }
}

fn connector_error(e: AuthError) -> ConnectorError {
    match e {
        AuthError::NeedsReauth(m) => ConnectorError::NeedsReauth(m),
        AuthError::Misconfigured(m) => ConnectorError::Misconfigured(m),
        AuthError::Unavailable(m) => ConnectorError::Unavailable(m),
    }
}

fn helix_connector_error(e: HelixError) -> ConnectorError {
    match e {
        HelixError::NeedsReauth(m) => ConnectorError::NeedsReauth(m),
        HelixError::Rejected { .. } => ConnectorError::Misconfigured(e.to_string()),
        other => ConnectorError::Unavailable(other.to_string()),
    }
}

/// `GET /users?login=`: the user's id, `None` when there is no such user.
pub(crate) async fn user_id_of(
    helix: &HelixClient,
    login: &str,
) -> Result<Option<(String, String)>, HelixError> {
    let login = login.trim_start_matches('@').to_ascii_lowercase();
    let answer = helix
        .send(Call::get("/users").query("login", &login))
        .await?;
    Ok(answer["data"][0]["id"].as_str().map(|id| {
        (
            id.to_owned(),
            answer["data"][0]["login"]
                .as_str()
                .unwrap_or(&login)
                .to_owned(),
        )
    }))
}

#[async_trait]
impl Connector for TwitchConnector {
    fn manifest(&self) -> &ConnectorManifest {
        &self.manifest
    }

    async fn connect(&self, ctx: RuntimeContext) -> Result<Arc<dyn Session>, ConnectorError> {
        let settings = Self::settings(&ctx.settings)?;
        let tokens = Tokens::from_secrets(&ctx.secrets).map_err(|e| match e {
            AuthError::NeedsReauth(_) => ConnectorError::NeedsReauth(format!(
                "this Twitch account is not authorized yet: run `switchboard connections connect {}` and approve it on Twitch, or set the access_token secret",
                ctx.connection_id
            )),
            other => connector_error(other),
        })?;
        let client_id = self.client_id(&settings, &tokens).await?;
        let app = App::new(Some(&client_id), &ctx.secrets).map_err(connector_error)?;
        let keeper = TokenKeeper::new(
            app,
            self.id.clone(),
            self.http.clone(),
            ctx.env.clone(),
            tokens,
        );
        let validation = keeper.validate().await.map_err(connector_error)?;
        let helix = HelixClient::new(self.http.clone(), &self.endpoints.helix, keeper);
        let missing: Vec<&str> = auth::SCOPES
            .iter()
            .copied()
            .filter(|s| !validation.scopes.iter().any(|have| have == s))
            .collect();
        if !missing.is_empty() {
            tracing::warn!(
                missing = %missing.join(" "),
                "the Twitch token lacks scopes; what needs them will be refused until the account is reconnected"
            );
        }
        let channel_login = settings
            .channel
            .clone()
            .unwrap_or_else(|| validation.login.clone())
            .to_ascii_lowercase();
        let channel_id = if channel_login == validation.login {
            validation.user_id.clone()
        } else {
            match user_id_of(&helix, &channel_login).await {
                Ok(Some((id, _))) => id,
                Ok(None) => {
                    return Err(ConnectorError::Misconfigured(format!(
                        "settings.channel: Twitch has no channel `{channel_login}`"
                    )));
                }
                Err(e) => return Err(helix_connector_error(e)),
            }
        };
        let identity = Identity {
            user_id: validation.user_id.clone(),
            login: validation.login.clone(),
            channel_id,
            channel_login,
        };
        let (limit, limit_overridden) = match settings.chat_limit {
            Some(l) => (
                ChatLimit {
                    messages: l.messages,
                    per: Duration::from_secs(l.per_secs),
                },
                true,
            ),
            None if identity.is_broadcaster() => (ChatLimit::MODERATOR, false),
            None => (ChatLimit::USER, false),
        };
        let session = Arc::new(TwitchSession {
            limiter: ChatLimiter::new(limit, Duration::from_secs(settings.chat.max_wait_secs)),
            limit_overridden,
            settings,
            endpoints: self.endpoints.clone(),
            helix,
            identity,
            seen: Mutex::new(SeenIds::default()),
            follow_cursor: tokio::sync::Mutex::new(None),
            health: Health::default(),
            initial: Mutex::new(Initial::default()),
            ctx,
        });
        // Open chat and the first EventSub session now, so that `connected`
        // means events flow.
        let mut initial = Initial::default();
        if session.settings.chat.enabled {
            initial.chat = Some(session.open_chat().await?);
        }
        if !session.settings.events.subscription_types().is_empty() {
            let (socket, problems) = session.open_eventsub().await?;
            initial.eventsub = Some(socket);
            initial.problems = problems;
        }
        *session.initial.lock().expect("initial lock poisoned") = initial;
        tracing::info!(
            account = %session.identity.login,
            channel = %session.identity.channel_login,
            "Twitch account connected"
        );
        Ok(session)
    }

    async fn begin_authorization(
        &self,
        request: AuthorizeRequest,
    ) -> Result<AuthorizeStart, ConnectorError> {
        let settings = Self::settings(&request.settings)?;
        let app =
            App::new(settings.client_id.as_deref(), &request.secrets).map_err(connector_error)?;
        if app.client_secret.is_none() {
            return Err(ConnectorError::Misconfigured(
                "set the client_secret secret (your Twitch application's client secret) before connecting".into(),
            ));
        }
        let (url, state) =
            auth::begin(&app, &self.id, &request.redirect_uri).map_err(connector_error)?;
        Ok(AuthorizeStart {
            authorize_url: url,
            // Twitch's code flow has no PKCE verifier; the state itself is
            // kept, so the flow secret is a second random value nobody uses.
            flow_secret: SecretString::from(format!("twitch-{}", rand::random::<u64>())),
            state,
            flow_data: json!({"client_id": app.client_id}),
        })
    }

    async fn finish_authorization(
        &self,
        request: AuthorizeRequest,
        flow: AuthorizeFlow,
        params: &BTreeMap<String, String>,
    ) -> Result<Vec<(String, SecretString)>, ConnectorError> {
        if let Some(error) = params.get("error") {
            let detail = params
                .get("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            return Err(ConnectorError::Misconfigured(format!(
                "Twitch did not authorize the account ({error}{detail}); start the connection again and approve it"
            )));
        }
        let code = params.get("code").ok_or_else(|| {
            ConnectorError::Misconfigured(
                "Twitch's callback carries no `code`; start the connection again".into(),
            )
        })?;
        let settings = Self::settings(&request.settings)?;
        let client_id = settings
            .client_id
            .clone()
            .or_else(|| flow.flow_data["client_id"].as_str().map(str::to_owned));
        let app = App::new(client_id.as_deref(), &request.secrets).map_err(connector_error)?;
        auth::finish(&self.http, &app, &self.id, &request.redirect_uri, code)
            .await
            .map_err(|e| match e {
                // A refused code is not a reason to lock the connection.
                AuthError::NeedsReauth(m) => ConnectorError::Misconfigured(m),
                other => connector_error(other),
            })
    }

    async fn check_params(
        &self,
        action: &str,
        params: &Value,
        _ctx: &dyn ParamsContext,
    ) -> Result<(), Vec<(String, String)>> {
        let errors = actions::check(action, params);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// What `connect` opened, for `run` to take over.
#[derive(Default)]
pub(crate) struct Initial {
    pub chat: Option<ChatConnection>,
    pub eventsub: Option<EventSubSocket>,
    /// Subscriptions Twitch refused (missing scope, not the broadcaster).
    pub problems: Vec<String>,
}

pub(crate) struct TwitchSession {
    pub(crate) settings: TwitchSettings,
    pub(crate) endpoints: TwitchEndpoints,
    pub(crate) helix: HelixClient,
    pub(crate) identity: Identity,
    pub(crate) limiter: ChatLimiter,
    pub(crate) limit_overridden: bool,
    pub(crate) seen: Mutex<SeenIds>,
    /// The newest follow archived (epoch seconds), once known.
    pub(crate) follow_cursor: tokio::sync::Mutex<Option<Option<i64>>>,
    pub(crate) health: Health,
    pub(crate) initial: Mutex<Initial>,
    pub(crate) ctx: RuntimeContext,
}

#[async_trait]
impl Session for TwitchSession {
    async fn run(&self, cancel: CancellationToken) -> Result<(), ConnectorError> {
        let initial = std::mem::take(&mut *self.initial.lock().expect("initial lock poisoned"));
        if !initial.problems.is_empty() {
            self.health
                .set_events(&self.ctx.env, Some(initial.problems.join("; ")))
                .await;
        }
        let chat = async {
            if self.settings.chat.enabled {
                self.run_chat(initial.chat, cancel.clone()).await
            } else {
                Ok(())
            }
        };
        let events = async {
            if self.settings.events.subscription_types().is_empty() {
                Ok(())
            } else {
                self.run_eventsub(initial.eventsub, cancel.clone()).await
            }
        };
        let validation = self.run_validation(cancel.clone());
        tokio::try_join!(chat, events, validation)?;
        Ok(())
    }

    async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError> {
        match call.action.as_str() {
            "twitch.send_chat" => self.send_chat(&call).await,
            "twitch.shoutout" => self.shoutout(&call).await,
            "twitch.update_channel" => self.update_channel(&call).await,
            "twitch.create_clip" => self.create_clip(&call).await,
            "twitch.ban" => self.ban(&call, None).await,
            "twitch.timeout" => {
                let duration = call.params["duration_secs"].as_u64().ok_or_else(|| {
                    ActionError::InvalidParams {
                        field: "duration_secs".into(),
                        message: "a number of seconds is required".into(),
                    }
                })?;
                self.ban(&call, Some(duration)).await
            }
            other => Err(ActionError::InvalidParams {
                field: "action".into(),
                message: format!("twitch has no action `{other}`"),
            }),
        }
    }

    /// Twitch's token validation (`GET /oauth2/validate`), refreshing once
    /// if Twitch calls the token invalid. Shows who the token belongs to,
    /// never the token.
    async fn check(&self) -> Result<Value, ActionError> {
        let validation = self
            .helix
            .keeper()
            .validate()
            .await
            .map_err(|e| ActionError::from(HelixError::from(e)))?;
        Ok(json!({
            "login": validation.login,
            "user_id": validation.user_id,
            "scopes": validation.scopes,
            "expires_in_secs": validation.expires_in,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_to_every_event_and_twitchs_hourly_validation() {
        let settings: TwitchSettings = serde_json::from_value(json!({})).unwrap();
        assert_eq!(settings.validate_interval_secs, 3600);
        assert!(settings.chat.enabled);
        assert_eq!(settings.events.subscription_types().len(), 6);
        let settings: TwitchSettings = serde_json::from_value(
            json!({"events": {"subscribe": false, "cheer": false}, "chat_limit": {"messages": 5, "per_secs": 2}}),
        )
        .unwrap();
        let kinds: Vec<_> = settings
            .events
            .subscription_types()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kinds, vec!["channel.follow", "channel.raid"]);
        assert_eq!(settings.chat_limit.unwrap().messages, 5);
        assert!(serde_json::from_value::<TwitchSettings>(json!({"chanel": "x"})).is_err());
    }

    #[test]
    fn every_schema_compiles_and_accepts_what_the_docs_show() {
        let manifest = manifest();
        let settings = jsonschema::validator_for(&manifest.settings_schema).unwrap();
        assert!(settings.is_valid(&json!({"client_id": "abc", "channel": "simstreamer", "chat_limit": {"messages": 20, "per_secs": 30}})));
        assert!(!settings.is_valid(&json!({"chat_limit": {"messages": 500, "per_secs": 30}})));
        for trigger in &manifest.triggers {
            jsonschema::validator_for(&trigger.payload_schema).unwrap();
        }
        for action in &manifest.actions {
            jsonschema::validator_for(&action.params_schema).unwrap();
            jsonschema::validator_for(&action.result_schema).unwrap();
        }
        let update = jsonschema::validator_for(
            &manifest
                .action("twitch.update_channel")
                .unwrap()
                .params_schema,
        )
        .unwrap();
        assert!(
            update.is_valid(&json!({"title": "t", "category": "Art", "tags": ["Rust", "English"]}))
        );
        assert!(!update.is_valid(&json!({})));
        assert!(!update.is_valid(&json!({"tags": ["two words"]})));
        let chat =
            jsonschema::validator_for(&manifest.action("twitch.send_chat").unwrap().params_schema)
                .unwrap();
        assert!(chat.is_valid(&json!({"text": "é".repeat(500)})));
        assert!(!chat.is_valid(&json!({"text": "é".repeat(501)})));
    }

    #[test]
    fn the_manifest_names_every_trigger_and_action() {
        let manifest = manifest();
        let triggers: Vec<_> = manifest
            .triggers
            .iter()
            .map(|t| t.event_type.as_str())
            .collect();
        assert_eq!(
            triggers,
            vec![
                "twitch.chat.message",
                "twitch.follow",
                "twitch.subscribe",
                "twitch.raid",
                "twitch.cheer"
            ]
        );
        for action in [
            "twitch.send_chat",
            "twitch.shoutout",
            "twitch.update_channel",
            "twitch.create_clip",
            "twitch.ban",
            "twitch.timeout",
        ] {
            assert!(manifest.action(action).is_some(), "{action}");
        }
    }
}
