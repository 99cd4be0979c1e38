//! Twitch chat: IRCv3 lines read into `twitch.chat.message` payloads, and
//! the chat connection (IRC over WebSocket).
//!
//! # Parsing
//!
//! [`parse_tags`], [`chat_message_payload`] and [`is_own_message`] (the
//! account's own messages are marked `is_self`) are pure. The line grammar
//! and tag unescaping (`\s \: \\ \r \n`, a lone trailing `\` dropped, any
//! other escaped character kept as itself, a tag without a value is `""`)
//! come from `twitch-irc`'s `IRCMessage`, the maintained parser. The
//! mapping to a payload is ours and lenient: only the command, channel,
//! text and sender are required, so a line from a plain IRCv3 server (no
//! Twitch tags, `msgid` and `time` instead of `id` and `tmi-sent-ts`)
//! still reads. `twitch-irc`'s own `PrivmsgMessage` refuses such lines.
//!
//! # The connection
//!
//! Why not `twitch-irc`'s client: its `Transport::new()` takes no URL (the
//! endpoint is a constant per transport), so tests could only reach the
//! simulator through a process-wide setting, and its login credentials and
//! reconnects would compete with our own token refresh. The connection here
//! is small: `CAP REQ :twitch.tv/tags twitch.tv/commands`, `PASS oauth:…`,
//! `NICK`, wait for `001` (or the "Login authentication failed" notice),
//! `JOIN`, wait for the join to be confirmed; then answer `PING`s, send our
//! own `PING` when the line is quiet, and hand every other line to the
//! session. Messages are sent through Helix (`twitch.send_chat`), not here.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use twitch_irc::message::{IRCMessage, IRCPrefix};

use crate::socket::{self, Socket};

/// Why a line is not a chat message we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatParseError {
    /// The line breaks the IRC grammar.
    #[error("malformed IRC line: {0}")]
    Malformed(String),
    /// A well-formed line of another command.
    #[error("not a PRIVMSG but {0}")]
    NotPrivmsg(String),
    #[error("the PRIVMSG names no #channel")]
    MissingChannel,
    #[error("the PRIVMSG has no text")]
    MissingText,
    #[error("the PRIVMSG names no sender")]
    MissingSender,
}

fn parse_line(raw_line: &str) -> Result<IRCMessage, ChatParseError> {
    let line = raw_line.trim_end_matches(['\r', '\n']);
    IRCMessage::parse(line).map_err(|e| ChatParseError::Malformed(e.to_string()))
}

/// The IRCv3 tags of a raw line, decoded. A line without tags has none.
pub fn parse_tags(raw_line: &str) -> Result<BTreeMap<String, String>, ChatParseError> {
    let message = parse_line(raw_line)?;
    Ok(message
        .tags
        .0
        .into_iter()
        .filter(|(key, _)| !key.is_empty())
        .collect())
}

/// `badges=broadcaster/1,subscriber/12` → `[{set, version}]`, in order.
fn badges(value: Option<&String>) -> Vec<Value> {
    value
        .map(|v| {
            v.split(',')
                .filter(|b| !b.is_empty())
                .map(|badge| match badge.split_once('/') {
                    Some((set, version)) => json!({"set": set, "version": version}),
                    None => json!({"set": badge, "version": ""}),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `emotes=25:0-4,12-16/1902:6-10` → `[{id, name, positions: [[start, end]]}]`
/// with inclusive positions counted in characters (code points) of `text`,
/// as Twitch counts them. `name` is the text at the first position, or null
/// when the positions do not fit the text.
fn emotes(value: Option<&String>, text: &str) -> Vec<Value> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Vec::new();
    };
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    for emote in value.split('/').filter(|e| !e.is_empty()) {
        let Some((id, ranges)) = emote.split_once(':') else {
            continue;
        };
        let positions: Vec<(usize, usize)> = ranges
            .split(',')
            .filter_map(|r| {
                let (start, end) = r.split_once('-')?;
                Some((start.parse().ok()?, end.parse().ok()?))
            })
            .collect();
        let name = positions
            .first()
            .filter(|(start, end)| start <= end && *end < chars.len())
            .map(|(start, end)| chars[*start..=*end].iter().collect::<String>());
        out.push(json!({
            "id": id,
            "name": name,
            "positions": positions
                .iter()
                .map(|(start, end)| json!([start, end]))
                .collect::<Vec<_>>(),
        }));
    }
    out
}

/// When the message was sent, epoch milliseconds (the project's one time
/// representation): `tmi-sent-ts`, or IRCv3 `time` (RFC 3339).
fn sent_at(tags: &std::collections::HashMap<String, String>) -> Value {
    if let Some(ms) = tags.get("tmi-sent-ts").and_then(|v| v.parse::<i64>().ok()) {
        return json!(ms);
    }
    tags.get("time")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| json!(t.timestamp_millis()))
        .unwrap_or(Value::Null)
}

/// A `PRIVMSG` line → the `twitch.chat.message` payload (see the trigger's
/// schema in the manifest).
pub fn chat_message_payload(raw_line: &str) -> Result<Value, ChatParseError> {
    let message = parse_line(raw_line)?;
    if message.command != "PRIVMSG" {
        return Err(ChatParseError::NotPrivmsg(message.command));
    }
    let channel = message
        .params
        .first()
        .and_then(|c| c.strip_prefix('#'))
        .filter(|c| !c.is_empty())
        .ok_or(ChatParseError::MissingChannel)?
        .to_owned();
    let raw_text = message.params.get(1).ok_or(ChatParseError::MissingText)?;
    // `/me` messages: `\x01ACTION text\x01`.
    let (text, is_action) = match raw_text
        .strip_prefix("\u{1}ACTION ")
        .map(|t| t.strip_suffix('\u{1}').unwrap_or(t))
    {
        Some(text) => (text.to_owned(), true),
        None => (raw_text.clone(), false),
    };
    let tags = &message.tags.0;
    let tag = |name: &str| tags.get(name).filter(|v| !v.is_empty());
    let login = match &message.prefix {
        Some(IRCPrefix::Full { nick, .. }) if !nick.is_empty() => Some(nick.clone()),
        _ => None,
    }
    .or_else(|| tag("login").cloned())
    .ok_or(ChatParseError::MissingSender)?;
    let badges_list = badges(tags.get("badges"));
    let has_badge = |set: &str| badges_list.iter().any(|b| b["set"] == set);
    let flag = |name: &str| tag(name).is_some_and(|v| v == "1");
    let reply = match tag("reply-parent-msg-id") {
        Some(parent) => json!({
            "parent_msg_id": parent,
            "parent_user_id": tag("reply-parent-user-id"),
            "parent_user_login": tag("reply-parent-user-login"),
            "parent_display_name": tag("reply-parent-display-name"),
            "parent_text": tags.get("reply-parent-msg-body"),
            "thread_parent_msg_id": tag("reply-thread-parent-msg-id"),
        }),
        None => Value::Null,
    };
    Ok(json!({
        "id": tag("id").or_else(|| tag("msgid")),
        "channel": channel,
        "room_id": tag("room-id"),
        "user_id": tag("user-id"),
        "user_login": login,
        "display_name": tag("display-name").unwrap_or(&login),
        "text": text,
        "is_action": is_action,
        "badges": badges_list,
        "badge_info": badges(tags.get("badge-info")),
        "emotes": emotes(tags.get("emotes"), &text),
        "bits": tag("bits").and_then(|b| b.parse::<u64>().ok()),
        "color": tag("color"),
        "is_broadcaster": has_badge("broadcaster"),
        "is_mod": flag("mod") || tag("user-type").is_some_and(|t| t == "mod"),
        "is_vip": flag("vip") || has_badge("vip"),
        "is_subscriber": flag("subscriber") || has_badge("subscriber") || has_badge("founder"),
        "first_msg": flag("first-msg"),
        "reply": reply,
        "sent_at": sent_at(tags),
    }))
}

/// Whether a `twitch.chat.message` payload is the connected account's own
/// message: Twitch delivers what the account says (through Helix or another
/// client) like anyone's, and a rule that answers every message would answer
/// itself. By user id when the line carries one, else by login.
pub fn is_own_message(payload: &Value, user_id: &str, login: &str) -> bool {
    match payload["user_id"].as_str() {
        Some(id) => id == user_id,
        None => payload["user_login"]
            .as_str()
            .is_some_and(|l| l.eq_ignore_ascii_case(login)),
    }
}

// ---------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------

/// How long login and join may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ChatOpenError {
    /// Twitch refused the token (`Login authentication failed`).
    #[error("Twitch chat refused the login: {0}")]
    LoginRefused(String),
    #[error("{0}")]
    Unavailable(String),
}

/// One logged-in, joined chat socket.
pub(crate) struct ChatConnection {
    socket: Socket,
    /// Lines read during the handshake that the session should still see
    /// (`USERSTATE` for the channel).
    pub(crate) early: Vec<String>,
}

/// What the chat socket delivered.
pub(crate) enum ChatRead {
    /// A line for the session (already answered if it was a `PING`).
    Line(String),
    /// Twitch asked us to reconnect.
    Reconnect,
    /// The socket ended or failed.
    Closed(String),
}

fn lines(frame: &str) -> impl Iterator<Item = &str> {
    frame
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

impl ChatConnection {
    /// Connect, log in as `login` with `token`, join `#channel`.
    pub(crate) async fn open(
        url: &str,
        login: &str,
        token: &SecretString,
        channel: &str,
    ) -> Result<ChatConnection, ChatOpenError> {
        let mut socket = socket::open(url, "Twitch chat")
            .await
            .map_err(ChatOpenError::Unavailable)?;
        let send_failed = |e: tokio_tungstenite::tungstenite::Error| {
            ChatOpenError::Unavailable(format!("Twitch chat: {e}"))
        };
        for line in [
            "CAP REQ :twitch.tv/tags twitch.tv/commands".to_owned(),
            format!("PASS oauth:{}", token.expose_secret()),
            format!("NICK {login}"),
        ] {
            socket
                .send(Message::text(line))
                .await
                .map_err(send_failed)?;
        }
        let mut connection = ChatConnection {
            socket,
            early: Vec::new(),
        };
        let handshake = async {
            let mut joined_sent = false;
            loop {
                let frame = match connection.socket.next().await {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Close(frame))) => {
                        return Err(ChatOpenError::Unavailable(format!(
                            "Twitch chat closed the connection during login{}",
                            frame
                                .map(|f| format!(" ({})", f.reason))
                                .unwrap_or_default()
                        )));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        return Err(ChatOpenError::Unavailable(format!("Twitch chat: {e}")));
                    }
                    None => {
                        return Err(ChatOpenError::Unavailable(
                            "Twitch chat closed the connection during login".into(),
                        ));
                    }
                };
                let mut to_send = Vec::new();
                let mut done = false;
                for line in lines(&frame) {
                    let Ok(message) = IRCMessage::parse(line) else {
                        continue;
                    };
                    match message.command.as_str() {
                        "PING" => to_send.push(format!(
                            "PONG :{}",
                            message
                                .params
                                .first()
                                .map(String::as_str)
                                .unwrap_or("tmi.twitch.tv")
                        )),
                        "NOTICE" => {
                            let text = message.params.get(1).cloned().unwrap_or_default();
                            let lower = text.to_ascii_lowercase();
                            if lower.contains("authentication failed")
                                || lower.contains("improperly formatted auth")
                                || lower.contains("invalid nick")
                            {
                                return Err(ChatOpenError::LoginRefused(text));
                            }
                            tracing::info!(notice = %text, "Twitch chat notice during login");
                        }
                        "001" if !joined_sent => {
                            joined_sent = true;
                            to_send.push(format!("JOIN #{channel}"));
                        }
                        "JOIN" | "ROOMSTATE"
                            if message.params.first().is_some_and(|p| {
                                p.eq_ignore_ascii_case(&format!("#{channel}"))
                            }) =>
                        {
                            done = true;
                        }
                        "USERSTATE" => connection.early.push(line.to_owned()),
                        _ => {}
                    }
                }
                for line in to_send {
                    connection
                        .socket
                        .send(Message::text(line))
                        .await
                        .map_err(send_failed)?;
                }
                if done {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| {
                ChatOpenError::Unavailable(format!(
                    "Twitch chat did not confirm logging in and joining #{channel} within {}s",
                    HANDSHAKE_TIMEOUT.as_secs()
                ))
            })??;
        Ok(connection)
    }

    /// The next lines from the socket, answering `PING`s on the way.
    pub(crate) async fn read(&mut self) -> Vec<ChatRead> {
        match self.socket.next().await {
            Some(Ok(Message::Text(text))) => {
                let mut out = Vec::new();
                for line in lines(&text) {
                    match IRCMessage::parse(line) {
                        Ok(message) if message.command == "PING" => {
                            let pong = format!(
                                "PONG :{}",
                                message
                                    .params
                                    .first()
                                    .map(String::as_str)
                                    .unwrap_or("tmi.twitch.tv")
                            );
                            if let Err(e) = self.socket.send(Message::text(pong)).await {
                                out.push(ChatRead::Closed(format!("cannot answer PING: {e}")));
                                return out;
                            }
                        }
                        Ok(message) if message.command == "RECONNECT" => {
                            out.push(ChatRead::Reconnect)
                        }
                        Ok(_) => out.push(ChatRead::Line(line.to_owned())),
                        Err(e) => tracing::debug!(error = %e, "unreadable chat line skipped"),
                    }
                }
                out
            }
            Some(Ok(Message::Close(frame))) => vec![ChatRead::Closed(format!(
                "Twitch chat closed the connection{}",
                frame
                    .map(|f| format!(" ({} {})", u16::from(f.code), f.reason))
                    .unwrap_or_default()
            ))],
            Some(Ok(_)) => Vec::new(),
            Some(Err(e)) => vec![ChatRead::Closed(format!("Twitch chat: {e}"))],
            None => vec![ChatRead::Closed("Twitch chat closed the connection".into())],
        }
    }

    /// Send our own `PING` (Twitch answers `PONG`), to notice a dead line.
    pub(crate) async fn ping(&mut self) -> Result<(), String> {
        self.socket
            .send(Message::text("PING :tmi.twitch.tv"))
            .await
            .map_err(|e| format!("Twitch chat: {e}"))
    }

    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.socket.close(None)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twitch's documented PRIVMSG example (IRC tags reference).
    const TWITCH_EXAMPLE: &str = "@badge-info=;badges=turbo/1;color=#0D4200;display-name=ronni;emotes=25:0-4,12-16/1902:6-10;id=b34ccfc7-4977-403a-8a94-33c6bac34fb8;mod=0;room-id=1337;subscriber=0;tmi-sent-ts=1507246572675;turbo=1;user-id=1337;user-type=global_mod :ronni!ronni@ronni.tmi.twitch.tv PRIVMSG #ronni :Kappa Keepo Kappa";

    /// Twitch's documented cheer example.
    const CHEER_EXAMPLE: &str = "@badge-info=;badges=staff/1,bits/1000;bits=100;color=;display-name=ronni;emotes=;id=b34ccfc7-4977-403a-8a94-33c6bac34fb8;mod=0;room-id=12345678;subscriber=0;tmi-sent-ts=1507246572675;turbo=1;user-id=12345678;user-type=staff :ronni!ronni@ronni.tmi.twitch.tv PRIVMSG #ronni :cheer100";

    #[test]
    fn tags_are_unescaped_as_ircv3_says() {
        let tags = parse_tags(
            "@a=one\\stwo;b=semi\\:colon;c=back\\\\slash;d=cr\\rlf\\n;e;f=;g=trailing\\;h=x\\yz :n!n@n PRIVMSG #c :hi\r\n",
        )
        .unwrap();
        assert_eq!(tags["a"], "one two");
        assert_eq!(tags["b"], "semi;colon");
        assert_eq!(tags["c"], "back\\slash");
        assert_eq!(tags["d"], "cr\rlf\n");
        assert_eq!(tags["e"], "");
        assert_eq!(tags["f"], "");
        assert_eq!(tags["g"], "trailing");
        assert_eq!(tags["h"], "xyz");
        assert!(parse_tags(":n!n@n PRIVMSG #c :no tags").unwrap().is_empty());
        assert!(matches!(
            parse_tags("@ PRIVMSG #c :x"),
            Err(ChatParseError::Malformed(_))
        ));
    }

    #[test]
    fn twitchs_documented_privmsg_reads_into_a_payload() {
        let tags = parse_tags(TWITCH_EXAMPLE).unwrap();
        assert_eq!(tags["display-name"], "ronni");
        assert_eq!(tags["badge-info"], "");
        let payload = chat_message_payload(TWITCH_EXAMPLE).unwrap();
        assert_eq!(payload["id"], "b34ccfc7-4977-403a-8a94-33c6bac34fb8");
        assert_eq!(payload["channel"], "ronni");
        assert_eq!(payload["user_id"], "1337");
        assert_eq!(payload["user_login"], "ronni");
        assert_eq!(payload["display_name"], "ronni");
        assert_eq!(payload["text"], "Kappa Keepo Kappa");
        assert_eq!(payload["badges"], json!([{"set": "turbo", "version": "1"}]));
        assert_eq!(
            payload["emotes"],
            json!([
                {"id": "25", "name": "Kappa", "positions": [[0, 4], [12, 16]]},
                {"id": "1902", "name": "Keepo", "positions": [[6, 10]]}
            ])
        );
        assert_eq!(payload["bits"], Value::Null);
        assert_eq!(payload["color"], "#0D4200");
        assert_eq!(payload["is_mod"], false);
        assert_eq!(payload["is_subscriber"], false);
        assert_eq!(payload["first_msg"], false);
        assert_eq!(payload["reply"], Value::Null);
        assert_eq!(payload["sent_at"], 1_507_246_572_675i64);

        let cheer = chat_message_payload(CHEER_EXAMPLE).unwrap();
        assert_eq!(cheer["bits"], 100);
        assert_eq!(cheer["color"], Value::Null);
        assert_eq!(cheer["emotes"], json!([]));
        assert_eq!(
            cheer["badges"],
            json!([{"set": "staff", "version": "1"}, {"set": "bits", "version": "1000"}])
        );
    }

    #[test]
    fn replies_actions_and_roles_are_read() {
        let line = "@badge-info=subscriber/14;badges=moderator/1,subscriber/12;color=;display-name=Bob;emotes=;first-msg=1;id=m2;mod=1;reply-parent-display-name=Ann;reply-parent-msg-body=hello\\sthere\\:)\\s;reply-parent-msg-id=m1;reply-parent-user-id=1001;reply-parent-user-login=ann;reply-thread-parent-msg-id=m1;room-id=1000;subscriber=1;tmi-sent-ts=1700000000000;user-id=1002;user-type=mod :bob!bob@bob.tmi.twitch.tv PRIVMSG #simstreamer :\u{1}ACTION @Ann waves 🎉\u{1}";
        let payload = chat_message_payload(line).unwrap();
        assert_eq!(payload["text"], "@Ann waves 🎉");
        assert_eq!(payload["is_action"], true);
        assert_eq!(payload["is_mod"], true);
        assert_eq!(payload["is_subscriber"], true);
        assert_eq!(payload["first_msg"], true);
        assert_eq!(
            payload["badge_info"],
            json!([{"set": "subscriber", "version": "14"}])
        );
        assert_eq!(
            payload["reply"],
            json!({
                "parent_msg_id": "m1",
                "parent_user_id": "1001",
                "parent_user_login": "ann",
                "parent_display_name": "Ann",
                "parent_text": "hello there;) ",
                "thread_parent_msg_id": "m1"
            })
        );
    }

    #[test]
    fn the_accounts_own_messages_are_told_apart() {
        let ours = chat_message_payload(
            "@user-id=42;id=m1 :simbot!simbot@simbot.tmi.twitch.tv PRIVMSG #simstreamer :hi",
        )
        .unwrap();
        assert!(is_own_message(&ours, "42", "simbot"));
        assert!(!is_own_message(&ours, "43", "simbot"), "the id decides");
        let untagged = chat_message_payload(":SimBot!simbot@x PRIVMSG #c :hi").unwrap();
        assert!(is_own_message(&untagged, "42", "simbot"));
        assert!(!is_own_message(&untagged, "42", "other"));
    }

    #[test]
    fn plain_ircv3_lines_read_too_and_other_commands_do_not() {
        let payload = chat_message_payload(
            "@msgid=abc;time=2024-01-02T03:04:05.678Z :someone!u@host PRIVMSG #room :hi all",
        )
        .unwrap();
        assert_eq!(payload["id"], "abc");
        assert_eq!(payload["display_name"], "someone");
        assert_eq!(payload["user_id"], Value::Null);
        assert_eq!(payload["sent_at"], 1_704_164_645_678i64);
        assert_eq!(payload["badges"], json!([]));

        assert_eq!(
            chat_message_payload(":tmi.twitch.tv PING :x"),
            Err(ChatParseError::NotPrivmsg("PING".into()))
        );
        assert_eq!(
            chat_message_payload(":n!n@n PRIVMSG #c"),
            Err(ChatParseError::MissingText)
        );
        assert_eq!(
            chat_message_payload(":tmi.twitch.tv PRIVMSG #c :x"),
            Err(ChatParseError::MissingSender)
        );
        assert_eq!(
            chat_message_payload(":n!n@n PRIVMSG c :x"),
            Err(ChatParseError::MissingChannel)
        );
    }

    #[test]
    fn emote_positions_count_characters_not_bytes() {
        let emotes = emotes(Some(&"emotesv2_abc:2-6".to_owned()), "é Kappa");
        assert_eq!(emotes[0]["name"], "Kappa");
        let outside = super::emotes(Some(&"1:10-14".to_owned()), "short");
        assert_eq!(outside[0]["name"], Value::Null);
    }
}
