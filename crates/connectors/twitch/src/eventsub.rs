//! EventSub over WebSocket: the message envelope, the socket, and the
//! subscriptions a session makes.
//!
//! # The protocol (dev.twitch.tv/docs/eventsub/handling-websocket-events)
//!
//! Connect; the first message is `session_welcome` with the session id and
//! `keepalive_timeout_seconds`. Subscribe (Helix `POST /eventsub/subscriptions`
//! with `transport: {method: websocket, session_id}`) within that window or
//! Twitch closes with 4003. From then on Twitch sends `notification`s,
//! `session_keepalive` when there has been nothing else for a while,
//! `revocation` when a subscription ends, and `session_reconnect` with a
//! `reconnect_url` before it moves the session: connect there, wait for its
//! welcome, then close the old socket; subscriptions carry over and nothing
//! is lost. Silence past the keepalive timeout means the socket is dead. A
//! socket that drops takes its subscriptions with it: open a new session
//! and subscribe again; Twitch does not replay what happened in between.
//! Delivery is at least once: the same `message_id` may come twice.
//!
//! Why not `twitch_api`'s eventsub types: with only its `eventsub` feature
//! it takes about two minutes of CPU to build on our profile (CI has two
//! cores), for an envelope of five fields and six payloads whose fields we
//! copy one by one into our own JSON. Reading them as `serde_json::Value`
//! also means a field Twitch adds, drops or nulls never costs us an event.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::socket::{self, Socket};

/// The subscription types a session makes, with their versions.
pub const SUBSCRIPTION_TYPES: &[(&str, &str)] = &[
    ("channel.follow", "2"),
    ("channel.subscribe", "1"),
    ("channel.subscription.message", "1"),
    ("channel.subscription.gift", "1"),
    ("channel.raid", "1"),
    ("channel.cheer", "1"),
];

/// The condition of a subscription on `broadcaster_id`'s channel, made by
/// `user_id` (follows need a moderator, and the broadcaster is one).
pub fn condition(kind: &str, broadcaster_id: &str, user_id: &str) -> Value {
    match kind {
        "channel.follow" => {
            json!({"broadcaster_user_id": broadcaster_id, "moderator_user_id": user_id})
        }
        "channel.raid" => json!({"to_broadcaster_user_id": broadcaster_id}),
        _ => json!({"broadcaster_user_id": broadcaster_id}),
    }
}

/// The body of `POST /helix/eventsub/subscriptions`.
pub fn subscription_request(
    kind: &str,
    version: &str,
    broadcaster_id: &str,
    user_id: &str,
    session_id: &str,
) -> Value {
    json!({
        "type": kind,
        "version": version,
        "condition": condition(kind, broadcaster_id, user_id),
        "transport": {"method": "websocket", "session_id": session_id},
    })
}

#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    message_id: String,
    message_type: String,
    #[serde(default)]
    message_timestamp: Option<String>,
    #[serde(default)]
    subscription_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Envelope {
    metadata: Metadata,
    #[serde(default)]
    payload: Value,
}

/// One message from the EventSub socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Welcome {
        session_id: String,
        keepalive: Option<Duration>,
    },
    Keepalive,
    Notification(Notification),
    Reconnect {
        url: String,
    },
    Revocation {
        kind: String,
        status: String,
    },
    /// A message type this client does not know; ignored.
    Other(String),
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub message_id: String,
    /// `channel.follow`, …
    pub kind: String,
    /// RFC 3339, as Twitch sent it.
    pub timestamp: Option<String>,
    pub event: Value,
}

/// Read one text frame. `Err` for JSON that is not an EventSub message.
pub fn parse_frame(text: &str) -> Result<Frame, String> {
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|e| format!("not an EventSub message: {e}"))?;
    let session = &envelope.payload["session"];
    Ok(match envelope.metadata.message_type.as_str() {
        "session_welcome" => Frame::Welcome {
            session_id: session["id"]
                .as_str()
                .ok_or("a session_welcome without a session id")?
                .to_owned(),
            keepalive: session["keepalive_timeout_seconds"]
                .as_u64()
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
        },
        "session_keepalive" => Frame::Keepalive,
        "session_reconnect" => Frame::Reconnect {
            url: session["reconnect_url"]
                .as_str()
                .ok_or("a session_reconnect without a reconnect_url")?
                .to_owned(),
        },
        "notification" => Frame::Notification(Notification {
            kind: envelope
                .metadata
                .subscription_type
                .clone()
                .or_else(|| {
                    envelope.payload["subscription"]["type"]
                        .as_str()
                        .map(str::to_owned)
                })
                .ok_or("a notification without a subscription type")?,
            message_id: envelope.metadata.message_id,
            timestamp: envelope.metadata.message_timestamp,
            event: envelope.payload["event"].clone(),
        }),
        "revocation" => Frame::Revocation {
            kind: envelope.payload["subscription"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            status: envelope.payload["subscription"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        },
        other => Frame::Other(other.to_owned()),
    })
}

/// What a read from the socket gave.
pub enum Read {
    Frame(Frame),
    /// The socket ended; why, for the status reason.
    Closed(String),
}

/// One EventSub session's socket, past its welcome.
pub struct EventSubSocket {
    socket: Socket,
    pub session_id: String,
    /// Silence longer than this means the socket is dead.
    pub keepalive: Duration,
}

/// The longest a welcome may take.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);

/// Twitch's default keepalive when the welcome names none.
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

/// Close codes Twitch documents, for the status reason.
fn close_reason(code: u16) -> &'static str {
    match code {
        4000 => "internal server error",
        4001 => "the client sent inbound traffic",
        4002 => "the client failed a ping-pong",
        4003 => "connection unused: no subscription within the welcome window",
        4004 => "reconnect grace time expired",
        4005 => "network timeout",
        4006 => "network error",
        4007 => "invalid reconnect",
        _ => "closed",
    }
}

impl EventSubSocket {
    /// Connect to `url` and wait for the welcome.
    pub async fn open(url: &str) -> Result<EventSubSocket, String> {
        let mut socket = socket::open(url, "Twitch EventSub").await?;
        let welcome = tokio::time::timeout(WELCOME_TIMEOUT, async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => match parse_frame(&text) {
                        Ok(Frame::Welcome {
                            session_id,
                            keepalive,
                        }) => return Ok((session_id, keepalive)),
                        Ok(other) => {
                            tracing::debug!(?other, "EventSub message before the welcome ignored")
                        }
                        Err(error) => tracing::warn!(%error, "unreadable EventSub message"),
                    },
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005);
                        return Err(format!(
                            "Twitch EventSub closed the socket before its welcome ({code}: {})",
                            close_reason(code)
                        ));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("Twitch EventSub: {e}")),
                    None => {
                        return Err("Twitch EventSub closed the socket before its welcome".into());
                    }
                }
            }
        })
        .await
        .map_err(|_| {
            format!(
                "Twitch EventSub sent no welcome within {}s",
                WELCOME_TIMEOUT.as_secs()
            )
        })??;
        let (session_id, keepalive) = welcome;
        Ok(EventSubSocket {
            socket,
            session_id,
            keepalive: keepalive.unwrap_or(DEFAULT_KEEPALIVE),
        })
    }

    /// How long silence may last before the socket counts as dead: the
    /// keepalive timeout and a little slack for the network.
    pub fn silence_limit(&self) -> Duration {
        self.keepalive + (self.keepalive / 5).max(Duration::from_secs(1))
    }

    /// The next message; `Closed` when the socket ended.
    pub async fn read(&mut self) -> Read {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => match parse_frame(&text) {
                    Ok(frame) => return Read::Frame(frame),
                    Err(error) => tracing::warn!(%error, "unreadable EventSub message skipped"),
                },
                Some(Ok(Message::Ping(data))) => {
                    let _ = self.socket.send(Message::Pong(data)).await;
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005);
                    return Read::Closed(format!(
                        "Twitch EventSub closed the socket ({code}: {})",
                        close_reason(code)
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Read::Closed(format!("Twitch EventSub: {e}")),
                None => return Read::Closed("Twitch EventSub socket ended".into()),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.socket.close(None)).await;
    }
}

/// `wss://…/ws` with the keepalive asked for (10–600 s), if any.
pub fn initial_url(base: &str, keepalive_secs: Option<u64>) -> String {
    match keepalive_secs {
        Some(secs) => {
            let sep = if base.contains('?') { '&' } else { '?' };
            format!(
                "{base}{sep}keepalive_timeout_seconds={}",
                secs.clamp(10, 600)
            )
        }
        None => base.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The examples from Twitch's WebSocket reference.
    const WELCOME: &str = r#"{
      "metadata": {"message_id": "96a3f3b5-5dec-4eed-908e-e11ee657416c", "message_type": "session_welcome", "message_timestamp": "2023-07-19T14:56:51.634234626Z"},
      "payload": {"session": {"id": "AQoQILE98gtqShGmLD7AM6yJThAB", "status": "connected", "connected_at": "2023-07-19T14:56:51.616329898Z", "keepalive_timeout_seconds": 10, "reconnect_url": null}}
    }"#;
    const KEEPALIVE: &str = r#"{"metadata": {"message_id": "84c1e79a-2a4b-4c13-ba0b-4312293e9308", "message_type": "session_keepalive", "message_timestamp": "2023-07-19T10:11:12.634234626Z"}, "payload": {}}"#;
    const NOTIFICATION: &str = r#"{
      "metadata": {"message_id": "befa7b53-d79d-478f-86b9-120f112b044e", "message_type": "notification", "message_timestamp": "2022-11-16T10:11:12.464757833Z", "subscription_type": "channel.follow", "subscription_version": "2"},
      "payload": {
        "subscription": {"id": "f1c2a387-161a-49f9-a165-0f21d7a4e1c4", "status": "enabled", "type": "channel.follow", "version": "2", "cost": 1,
          "condition": {"broadcaster_user_id": "12826", "moderator_user_id": "12826"},
          "transport": {"method": "websocket", "session_id": "AQoQexAWVYKSTIu4ec_2VAxyuhAB"}, "created_at": "2022-11-16T10:11:12.464757833Z"},
        "event": {"user_id": "1337", "user_login": "awesome_user", "user_name": "Awesome_User", "broadcaster_user_id": "12826", "broadcaster_user_login": "twitch", "broadcaster_user_name": "Twitch", "followed_at": "2023-07-15T18:16:11.17106713Z"}
      }
    }"#;
    const RECONNECT: &str = r#"{
      "metadata": {"message_id": "84c1e79a-2a4b-4c13-ba0b-4312293e9308", "message_type": "session_reconnect", "message_timestamp": "2022-11-18T09:10:11.634234626Z"},
      "payload": {"session": {"id": "AQoQexAWVYKSTIu4ec_2VAxyuhAB", "status": "reconnecting", "keepalive_timeout_seconds": null, "reconnect_url": "wss://eventsub.wss.twitch.tv?...", "connected_at": "2022-11-16T10:11:12.634234626Z"}}
    }"#;
    const REVOCATION: &str = r#"{
      "metadata": {"message_id": "84c1e79a-2a4b-4c13-ba0b-4312293e9308", "message_type": "revocation", "message_timestamp": "2022-11-16T10:11:12.464757833Z", "subscription_type": "channel.follow", "subscription_version": "2"},
      "payload": {"subscription": {"id": "f1c2a387-161a-49f9-a165-0f21d7a4e1c4", "status": "authorization_revoked", "type": "channel.follow", "version": "2", "cost": 1,
        "condition": {"broadcaster_user_id": "12826"}, "transport": {"method": "websocket", "session_id": "AQoQexAWVYKSTIu4ec_2VAxyuhAB"}, "created_at": "2022-11-16T10:11:12.464757833Z"}}
    }"#;

    #[test]
    fn the_documented_messages_are_read() {
        assert_eq!(
            parse_frame(WELCOME).unwrap(),
            Frame::Welcome {
                session_id: "AQoQILE98gtqShGmLD7AM6yJThAB".into(),
                keepalive: Some(Duration::from_secs(10)),
            }
        );
        assert_eq!(parse_frame(KEEPALIVE).unwrap(), Frame::Keepalive);
        match parse_frame(NOTIFICATION).unwrap() {
            Frame::Notification(n) => {
                assert_eq!(n.message_id, "befa7b53-d79d-478f-86b9-120f112b044e");
                assert_eq!(n.kind, "channel.follow");
                assert_eq!(
                    n.timestamp.as_deref(),
                    Some("2022-11-16T10:11:12.464757833Z")
                );
                assert_eq!(n.event["user_login"], "awesome_user");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_frame(RECONNECT).unwrap(),
            Frame::Reconnect {
                url: "wss://eventsub.wss.twitch.tv?...".into()
            }
        );
        assert_eq!(
            parse_frame(REVOCATION).unwrap(),
            Frame::Revocation {
                kind: "channel.follow".into(),
                status: "authorization_revoked".into()
            }
        );
        assert!(parse_frame("{}").is_err());
        assert_eq!(
            parse_frame(
                r#"{"metadata":{"message_id":"1","message_type":"future_thing"},"payload":{}}"#
            )
            .unwrap(),
            Frame::Other("future_thing".into())
        );
    }

    #[test]
    fn subscriptions_name_the_right_condition() {
        let follow = subscription_request("channel.follow", "2", "1000", "1000", "S");
        assert_eq!(
            follow,
            json!({
                "type": "channel.follow", "version": "2",
                "condition": {"broadcaster_user_id": "1000", "moderator_user_id": "1000"},
                "transport": {"method": "websocket", "session_id": "S"}
            })
        );
        assert_eq!(
            condition("channel.raid", "1000", "1000"),
            json!({"to_broadcaster_user_id": "1000"})
        );
        assert_eq!(
            condition("channel.cheer", "1000", "7"),
            json!({"broadcaster_user_id": "1000"})
        );
    }

    #[test]
    fn the_keepalive_asked_for_is_in_the_url_within_twitchs_range() {
        assert_eq!(initial_url("wss://e/ws", None), "wss://e/ws");
        assert_eq!(
            initial_url("wss://e/ws", Some(3)),
            "wss://e/ws?keepalive_timeout_seconds=10"
        );
        assert_eq!(
            initial_url("ws://h/eventsub/ws?x=1", Some(30)),
            "ws://h/eventsub/ws?x=1&keepalive_timeout_seconds=30"
        );
    }
}
