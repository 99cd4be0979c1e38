//! Twitch chat over IRC-on-WebSocket (`irc-ws.chat.twitch.tv`), at `/irc`.
//!
//! Text frames carry one or more `\r\n`-terminated IRC lines. A session goes:
//! `CAP REQ :twitch.tv/tags twitch.tv/commands twitch.tv/membership` (ACK),
//! `PASS oauth:<token>` + `NICK <login>` (001–004, 375, 372, 376 and, with
//! `twitch.tv/commands`, `GLOBALUSERSTATE`; a bad token gets `NOTICE * :Login
//! authentication failed` and the socket closes; `justinfan…` logs in
//! anonymously, read-only), `JOIN #channel` (JOIN echo, 353, 366,
//! `USERSTATE`, `ROOMSTATE`), then `PRIVMSG`s both ways. Tags are sent only
//! to clients that asked for `twitch.tv/tags`; `USERSTATE`, `ROOMSTATE`,
//! `USERNOTICE`, `CLEARCHAT` and `RECONNECT` only with `twitch.tv/commands`.
//!
//! **Send limit.** Each sender has one sliding window of accepted messages
//! (IRC and `POST /helix/chat/messages` together). Over
//! [`chat_limit`](super::TwitchSimConfig::chat_limit) (or
//! `chat_limit_moderator` when the sender is the channel's broadcaster or
//! moderator) the message is not delivered, counts as a violation and the
//! sender gets `@msg-id=msg_ratelimit NOTICE`.
//!
//! **Liveness.** The server sends `PING :tmi.twitch.tv` every
//! `irc_ping_interval` and drops a client that stays silent for
//! `irc_pong_timeout` after it; a client `PING` is answered with `PONG`.
//!
//! Tag values are escaped per IRCv3 ([`escape_tag_value`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Instant, SystemTime};

use axum::extract::{Request, State as AxumState};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::server::{self, Socket};
use super::{
    ChatVia, ChatterMessage, Sim, SimChatMessage, State, UserState, channel_login, epoch_millis,
    eventsub, push_bounded, uuid,
};

/// Escape a tag value per IRCv3 message tags: `;` → `\:`, space → `\s`,
/// `\` → `\\`, CR → `\r`, LF → `\n`.
pub fn escape_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`escape_tag_value`]; an unknown escape yields the
/// character itself and a trailing lone `\` is dropped, as IRCv3 says.
pub fn unescape_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('\\') => out.push('\\'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Well-known global emotes found in scripted messages when no emotes are given.
const GLOBAL_EMOTES: &[(&str, &str)] = &[
    ("Kappa", "25"),
    ("Keepo", "1902"),
    ("Kreygasm", "41"),
    ("BibleThump", "86"),
    ("ResidentSleeper", "245"),
    ("HeyGuys", "30259"),
    ("SeemsGood", "64138"),
    ("VoHiYo", "81274"),
    ("LUL", "425618"),
    ("PogChamp", "305954156"),
    ("<3", "555555584"),
];

/// Twitch's `emotes` tag: `25:0-4,12-16/1902:6-10` (character positions).
fn emotes_tag(text: &str, given: &[(String, Vec<(usize, usize)>)]) -> String {
    find_emotes(text, given)
        .iter()
        .map(|(id, ranges)| {
            let ranges: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
            format!("{id}:{}", ranges.join(","))
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The given emotes, or the well-known global emotes found in the text.
pub(crate) fn find_emotes(
    text: &str,
    given: &[(String, Vec<(usize, usize)>)],
) -> Vec<(String, Vec<(usize, usize)>)> {
    let mut found: Vec<(String, Vec<(usize, usize)>)> = given.to_vec();
    if found.is_empty() {
        let mut position = 0usize;
        for word in text.split(' ') {
            let len = word.chars().count();
            if let Some((_, id)) = GLOBAL_EMOTES.iter().find(|(name, _)| *name == word) {
                let range = (position, position + len - 1);
                match found.iter_mut().find(|(i, _)| i == id) {
                    Some((_, ranges)) => ranges.push(range),
                    None => found.push(((*id).to_owned(), vec![range])),
                }
            }
            position += len + 1;
        }
    }
    found
}

/// One IRC line to render per client (with or without tags).
#[derive(Clone, Debug)]
pub(crate) struct Line {
    tags: Vec<(String, String)>,
    prefix: String,
    command: String,
    params: Vec<String>,
    trailing: Option<String>,
    /// Only for clients with `twitch.tv/commands`.
    needs_commands: bool,
}

impl Line {
    fn new(prefix: &str, command: &str, params: &[&str], trailing: Option<&str>) -> Line {
        Line {
            tags: Vec::new(),
            prefix: prefix.to_owned(),
            command: command.to_owned(),
            params: params.iter().map(|p| (*p).to_owned()).collect(),
            trailing: trailing.map(str::to_owned),
            needs_commands: false,
        }
    }

    fn tags(mut self, mut tags: Vec<(String, String)>) -> Line {
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        self.tags = tags;
        self
    }

    fn commands_only(mut self) -> Line {
        self.needs_commands = true;
        self
    }

    fn render(&self, with_tags: bool) -> String {
        let mut out = String::new();
        if with_tags && !self.tags.is_empty() {
            out.push('@');
            let tags: Vec<String> = self
                .tags
                .iter()
                .map(|(k, v)| format!("{k}={}", escape_tag_value(v)))
                .collect();
            out.push_str(&tags.join(";"));
            out.push(' ');
        }
        if !self.prefix.is_empty() {
            out.push(':');
            out.push_str(&self.prefix);
            out.push(' ');
        }
        out.push_str(&self.command);
        for p in &self.params {
            out.push(' ');
            out.push_str(p);
        }
        if let Some(trailing) = &self.trailing {
            out.push_str(" :");
            out.push_str(trailing);
        }
        out.push_str("\r\n");
        out
    }
}

/// Out-of-band orders for a chat connection.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Control {
    /// Send `:tmi.twitch.tv RECONNECT`.
    Reconnect,
    /// Close the socket with no close frame.
    Drop,
}

enum Out {
    Text(String),
    Control(Control),
}

struct IrcClient {
    tx: mpsc::UnboundedSender<Out>,
    login: Option<String>,
    user_id: Option<String>,
    anonymous: bool,
    can_send: bool,
    tags: bool,
    commands: bool,
    membership: bool,
    joined: HashSet<String>,
}

impl IrcClient {
    fn send_line(&self, line: &Line) {
        if line.needs_commands && !self.commands {
            return;
        }
        let _ = self.tx.send(Out::Text(line.render(self.tags)));
    }
}

struct HistoryEntry {
    id: String,
    user_id: String,
    login: String,
    display_name: String,
    text: String,
    /// The thread's first message (itself when not a reply).
    thread: (String, String, String, String),
}

/// Chat connections, what clients sent, recent messages (for reply tags) and
/// the send windows.
#[derive(Default)]
pub(crate) struct ChatState {
    clients: HashMap<u64, IrcClient>,
    next_connection: u64,
    pub sent: Vec<SimChatMessage>,
    history: VecDeque<HistoryEntry>,
    send_times: HashMap<String, VecDeque<Instant>>,
    pub violations: usize,
}

impl ChatState {
    pub(crate) fn joined_count(&self, channel: &str) -> usize {
        self.clients
            .values()
            .filter(|c| c.login.is_some() && c.joined.contains(channel))
            .count()
    }

    pub(crate) fn broadcast_control(&self, control: Control) {
        for client in self.clients.values() {
            let _ = client.tx.send(Out::Control(control));
        }
    }

    fn deliver(&self, channel: &str, line: &Line, exclude: Option<u64>) {
        for (id, client) in &self.clients {
            if Some(*id) != exclude && client.login.is_some() && client.joined.contains(channel) {
                client.send_line(line);
            }
        }
    }
}

/// A user's standing in a channel, for badges and `mod`/`subscriber` tags.
fn role_badges(state: &State, channel: &UserState, user: &UserState) -> Vec<(String, String)> {
    let mut badges = Vec::new();
    if user.id == channel.id {
        badges.push(("broadcaster".to_owned(), "1".to_owned()));
    } else if user.moderator_of.contains(&channel.login) {
        badges.push(("moderator".to_owned(), "1".to_owned()));
    }
    if let Some(sub) = state
        .subscriptions
        .get(&channel.id)
        .and_then(|subs| subs.iter().find(|s| s.user_id == user.id))
    {
        badges.push(("subscriber".to_owned(), sub.cumulative_months.to_string()));
    }
    badges
}

struct Privmsg<'a> {
    channel: &'a UserState,
    user: &'a UserState,
    id: &'a str,
    text: &'a str,
    bits: Option<u32>,
    reply_to: Option<&'a str>,
    badges: Vec<(String, String)>,
    emotes: &'a [(String, Vec<(usize, usize)>)],
    first_message: bool,
    client_nonce: Option<String>,
}

fn user_prefix(login: &str) -> String {
    format!("{login}!{login}@{login}.tmi.twitch.tv")
}

/// Build a PRIVMSG with Twitch's tag set and remember it for replies.
fn privmsg_line(state: &mut State, m: Privmsg<'_>) -> Line {
    let badges = m.badges;
    let is_mod = m.user.moderator_of.contains(&m.channel.login)
        || badges.iter().any(|(b, _)| b == "moderator");
    let sub = badges
        .iter()
        .find(|(b, _)| b == "subscriber" || b == "founder");
    let badge_info = sub.map(|(b, v)| format!("{b}/{v}")).unwrap_or_default();
    let badges_tag = badges
        .iter()
        .map(|(b, v)| format!("{b}/{v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut tags: Vec<(String, String)> = vec![
        ("badge-info".into(), badge_info),
        ("badges".into(), badges_tag),
        ("color".into(), m.user.color.clone()),
        ("display-name".into(), m.user.display_name.clone()),
        ("emotes".into(), emotes_tag(m.text, m.emotes)),
        (
            "first-msg".into(),
            if m.first_message { "1" } else { "0" }.into(),
        ),
        ("flags".into(), String::new()),
        ("id".into(), m.id.to_owned()),
        ("mod".into(), if is_mod { "1" } else { "0" }.into()),
        ("returning-chatter".into(), "0".into()),
        ("room-id".into(), m.channel.id.clone()),
        (
            "subscriber".into(),
            if sub.is_some() { "1" } else { "0" }.into(),
        ),
        (
            "tmi-sent-ts".into(),
            epoch_millis(SystemTime::now()).to_string(),
        ),
        ("turbo".into(), "0".into()),
        ("user-id".into(), m.user.id.clone()),
        ("user-type".into(), if is_mod { "mod" } else { "" }.into()),
    ];
    if let Some(bits) = m.bits {
        tags.push(("bits".into(), bits.to_string()));
    }
    if let Some(nonce) = m.client_nonce {
        tags.push(("client-nonce".into(), nonce));
    }
    let mut thread = (
        m.id.to_owned(),
        m.user.id.clone(),
        m.user.login.clone(),
        m.user.display_name.clone(),
    );
    if let Some(parent) = m
        .reply_to
        .and_then(|id| state.chat.history.iter().find(|h| h.id == id))
    {
        tags.extend([
            (
                "reply-parent-display-name".into(),
                parent.display_name.clone(),
            ),
            ("reply-parent-msg-body".into(), parent.text.clone()),
            ("reply-parent-msg-id".into(), parent.id.clone()),
            ("reply-parent-user-id".into(), parent.user_id.clone()),
            ("reply-parent-user-login".into(), parent.login.clone()),
            (
                "reply-thread-parent-display-name".into(),
                parent.thread.3.clone(),
            ),
            ("reply-thread-parent-msg-id".into(), parent.thread.0.clone()),
            (
                "reply-thread-parent-user-id".into(),
                parent.thread.1.clone(),
            ),
            (
                "reply-thread-parent-user-login".into(),
                parent.thread.2.clone(),
            ),
        ]);
        thread = parent.thread.clone();
    }
    push_bounded(
        &mut state.chat.history,
        HistoryEntry {
            id: m.id.to_owned(),
            user_id: m.user.id.clone(),
            login: m.user.login.clone(),
            display_name: m.user.display_name.clone(),
            text: m.text.to_owned(),
            thread,
        },
        2000,
    );
    Line::new(
        &user_prefix(&m.user.login),
        "PRIVMSG",
        &[&format!("#{}", m.channel.login)],
        Some(m.text),
    )
    .tags(tags)
}

/// EventSub's `reply` object for a reply to `parent_id`, if that message is known.
pub(crate) fn reply_json(state: &State, parent_id: &str) -> Option<serde_json::Value> {
    let parent = state.chat.history.iter().find(|h| h.id == parent_id)?;
    Some(json!({
        "parent_message_id": parent.id,
        "parent_message_body": parent.text,
        "parent_user_id": parent.user_id,
        "parent_user_name": parent.display_name,
        "parent_user_login": parent.login,
        "thread_message_id": parent.thread.0,
        "thread_user_id": parent.thread.1,
        "thread_user_name": parent.thread.3,
        "thread_user_login": parent.thread.2,
    }))
}

/// Whether a message with this id was seen recently (for reply checks).
pub(crate) fn known_message(state: &State, id: &str) -> bool {
    state.chat.history.iter().any(|h| h.id == id)
}

/// A scripted chatter speaks (see `TwitchSim::send_chat`).
pub(crate) fn speak(state: &mut State, message: ChatterMessage) -> String {
    let channel = state.user_or_create(&message.channel);
    let user = state.user_or_create(&message.login);
    let id = uuid();
    let badges = if message.badges.is_empty() {
        role_badges(state, &channel, &user)
    } else {
        message.badges.clone()
    };
    let line = privmsg_line(
        state,
        Privmsg {
            channel: &channel,
            user: &user,
            id: &id,
            text: &message.text,
            bits: message.bits,
            reply_to: message.reply_to.as_deref(),
            badges: badges.clone(),
            emotes: &message.emotes,
            first_message: message.first_message,
            client_nonce: None,
        },
    );
    state.chat.deliver(&channel.login, &line, None);
    eventsub::chat_message(
        state,
        &channel,
        &user,
        &id,
        &message.text,
        message.bits,
        &badges,
        message.reply_to.as_deref(),
    );
    id
}

/// Why a client's message was not delivered.
pub(crate) enum Refused {
    RateLimited,
}

/// Where a client's message came from.
pub(crate) enum Origin {
    /// A chat connection (it does not get its own message back).
    Irc {
        connection: u64,
        client_nonce: Option<String>,
    },
    Helix,
}

/// A client (over IRC or Helix) sends a chat message: the send window, then
/// delivery to every other joined connection and `channel.chat.message`.
pub(crate) fn client_message(
    state: &mut State,
    sender: &UserState,
    channel: &UserState,
    text: &str,
    reply_to: Option<&str>,
    origin: Origin,
) -> Result<String, Refused> {
    let (via, exclude, client_nonce) = match origin {
        Origin::Irc {
            connection,
            client_nonce,
        } => (ChatVia::Irc, Some(connection), client_nonce),
        Origin::Helix => (ChatVia::Helix, None, None),
    };
    let now = Instant::now();
    let limit = if state.is_moderator(&channel.login, &sender.id) {
        state.config.chat_limit_moderator
    } else {
        state.config.chat_limit
    };
    let keep = state
        .config
        .chat_limit
        .per
        .max(state.config.chat_limit_moderator.per);
    let window = state
        .chat
        .send_times
        .entry(sender.login.clone())
        .or_default();
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= keep)
    {
        window.pop_front();
    }
    let in_window = window
        .iter()
        .filter(|t| now.duration_since(**t) < limit.per)
        .count();
    let mut record = SimChatMessage {
        id: String::new(),
        channel: channel.login.clone(),
        sender: sender.login.clone(),
        text: text.to_owned(),
        at: SystemTime::now(),
        via,
        delivered: false,
        reply_to: reply_to.map(str::to_owned),
    };
    if in_window >= limit.messages as usize {
        state.chat.violations += 1;
        state.chat.sent.push(record);
        return Err(Refused::RateLimited);
    }
    window.push_back(now);
    let id = uuid();
    let badges = role_badges(state, channel, sender);
    let line = privmsg_line(
        state,
        Privmsg {
            channel,
            user: sender,
            id: &id,
            text,
            bits: None,
            reply_to,
            badges: badges.clone(),
            emotes: &[],
            first_message: false,
            client_nonce,
        },
    );
    state.chat.deliver(&channel.login, &line, exclude);
    eventsub::chat_message(state, channel, sender, &id, text, None, &badges, reply_to);
    record.id = id.clone();
    record.delivered = true;
    state.chat.sent.push(record);
    Ok(id)
}

/// A USERNOTICE (sub, resub, subgift, submysterygift, raid) in `channel`.
pub(crate) fn usernotice(
    state: &State,
    channel: &UserState,
    user: &UserState,
    msg_id: &str,
    params: Vec<(String, String)>,
    system_msg: &str,
    text: Option<&str>,
) {
    let badges = role_badges(state, channel, user);
    let sub = badges.iter().find(|(b, _)| b == "subscriber");
    let mut tags: Vec<(String, String)> = vec![
        (
            "badge-info".into(),
            sub.map(|(b, v)| format!("{b}/{v}")).unwrap_or_default(),
        ),
        (
            "badges".into(),
            badges
                .iter()
                .map(|(b, v)| format!("{b}/{v}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("color".into(), user.color.clone()),
        ("display-name".into(), user.display_name.clone()),
        (
            "emotes".into(),
            text.map(|t| emotes_tag(t, &[])).unwrap_or_default(),
        ),
        ("flags".into(), String::new()),
        ("id".into(), uuid()),
        ("login".into(), user.login.clone()),
        ("mod".into(), "0".into()),
        ("msg-id".into(), msg_id.into()),
        ("room-id".into(), channel.id.clone()),
        (
            "subscriber".into(),
            if sub.is_some() { "1" } else { "0" }.into(),
        ),
        ("system-msg".into(), system_msg.into()),
        (
            "tmi-sent-ts".into(),
            epoch_millis(SystemTime::now()).to_string(),
        ),
        ("user-id".into(), user.id.clone()),
        ("user-type".into(), String::new()),
    ];
    tags.extend(params);
    let line = Line::new(
        "tmi.twitch.tv",
        "USERNOTICE",
        &[&format!("#{}", channel.login)],
        text,
    )
    .tags(tags)
    .commands_only();
    state.chat.deliver(&channel.login, &line, None);
}

/// `CLEARCHAT` for a ban or timeout.
pub(crate) fn clearchat(
    state: &State,
    channel: &UserState,
    user: &UserState,
    duration: Option<u32>,
) {
    let mut tags = vec![
        ("room-id".to_owned(), channel.id.clone()),
        ("target-user-id".to_owned(), user.id.clone()),
        (
            "tmi-sent-ts".to_owned(),
            epoch_millis(SystemTime::now()).to_string(),
        ),
    ];
    if let Some(d) = duration {
        tags.push(("ban-duration".into(), d.to_string()));
    }
    let line = Line::new(
        "tmi.twitch.tv",
        "CLEARCHAT",
        &[&format!("#{}", channel.login)],
        Some(&user.login),
    )
    .tags(tags)
    .commands_only();
    state.chat.deliver(&channel.login, &line, None);
}

// ----- the socket -----

pub(crate) async fn upgrade(AxumState(sim): AxumState<Sim>, request: Request) -> Response {
    server::upgrade(request, Some("irc"), move |socket| serve(sim, socket))
}

/// A parsed client line.
struct ClientLine {
    tags: HashMap<String, String>,
    command: String,
    params: Vec<String>,
}

fn parse_client_line(line: &str) -> Option<ClientLine> {
    let mut rest = line.trim_end_matches(['\r', '\n']);
    let mut tags = HashMap::new();
    if let Some(stripped) = rest.strip_prefix('@') {
        let (raw, after) = stripped.split_once(' ')?;
        for pair in raw.split(';') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            tags.insert(k.to_owned(), unescape_tag_value(v));
        }
        rest = after.trim_start();
    }
    if let Some(stripped) = rest.strip_prefix(':') {
        rest = stripped
            .split_once(' ')
            .map(|(_, r)| r)
            .unwrap_or("")
            .trim_start();
    }
    let (head, trailing) = match rest.split_once(" :") {
        Some((head, trailing)) => (head, Some(trailing)),
        None => (rest, None),
    };
    let mut words = head.split_whitespace();
    let command = words.next()?.to_ascii_uppercase();
    let mut params: Vec<String> = words.map(str::to_owned).collect();
    if let Some(trailing) = trailing {
        params.push(trailing.to_owned());
    } else if let Some(stripped) = head.strip_prefix(':') {
        params.push(stripped.to_owned());
    }
    Some(ClientLine {
        tags,
        command,
        params,
    })
}

enum Flow {
    Continue,
    /// Send what was produced, then close the socket.
    Close,
}

struct Session {
    connection: u64,
    pass: Option<String>,
}

async fn serve(sim: Sim, socket: Socket) {
    let _guard = sim.socket_guard(false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (connection, ping_interval, pong_timeout) = {
        let mut state = sim.lock();
        state.chat.next_connection += 1;
        let id = state.chat.next_connection;
        state.chat.clients.insert(
            id,
            IrcClient {
                tx,
                login: None,
                user_id: None,
                anonymous: false,
                can_send: false,
                tags: false,
                commands: false,
                membership: false,
                joined: HashSet::new(),
            },
        );
        (
            id,
            state.config.irc_ping_interval,
            state.config.irc_pong_timeout,
        )
    };
    let mut session = Session {
        connection,
        pass: None,
    };
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = sim.shutdown();
    let mut next_ping = tokio::time::Instant::now() + ping_interval;
    let mut pong_deadline: Option<tokio::time::Instant> = None;
    loop {
        let wake = pong_deadline.unwrap_or(next_ping);
        tokio::select! {
            _ = super::stopped(&mut shutdown) => {
                let _ = sink.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Away,
                    reason: "server shutting down".into(),
                }))).await;
                break;
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    pong_deadline = None;
                    let (out, flow) = {
                        let mut state = sim.lock();
                        let mut out = String::new();
                        let mut flow = Flow::Continue;
                        for line in text.split('\n') {
                            if line.trim().is_empty() {
                                continue;
                            }
                            if let Flow::Close = handle_line(&mut state, &mut session, line, &mut out) {
                                flow = Flow::Close;
                                break;
                            }
                        }
                        (out, flow)
                    };
                    if !out.is_empty() && sink.send(Message::text(out)).await.is_err() {
                        break;
                    }
                    if let Flow::Close = flow {
                        let _ = sink.close().await;
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Out::Text(text)) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Out::Control(Control::Reconnect)) => {
                    let commands = sim.lock().chat.clients.get(&connection).is_some_and(|c| c.commands);
                    if commands && sink.send(Message::text(":tmi.twitch.tv RECONNECT\r\n")).await.is_err() {
                        break;
                    }
                }
                // Abrupt: both halves are dropped below, the TCP socket closes
                // with no close frame.
                Some(Out::Control(Control::Drop)) | None => break,
            },
            _ = tokio::time::sleep_until(wake) => {
                if pong_deadline.is_some() {
                    tracing::debug!(connection, "chat client did not answer PING: dropping it");
                    break;
                }
                if sink.send(Message::text("PING :tmi.twitch.tv\r\n")).await.is_err() {
                    break;
                }
                let now = tokio::time::Instant::now();
                pong_deadline = Some(now + pong_timeout);
                next_ping = now + ping_interval;
            }
        }
    }
    sim.lock().chat.clients.remove(&connection);
}

fn handle_line(state: &mut State, session: &mut Session, raw: &str, out: &mut String) -> Flow {
    let Some(line) = parse_client_line(raw) else {
        return Flow::Continue;
    };
    let connection = session.connection;
    let (login, logged_in) = match state.chat.clients.get(&connection) {
        Some(c) => (
            c.login.clone().unwrap_or_else(|| "*".into()),
            c.login.is_some(),
        ),
        None => return Flow::Close,
    };
    let emit = |out: &mut String, line: Line| out.push_str(&line.render(true));
    match line.command.as_str() {
        "CAP" => {
            let sub = line.params.first().map(|s| s.to_ascii_uppercase());
            match sub.as_deref() {
                Some("REQ") => {
                    let wanted = line.params.get(1).cloned().unwrap_or_default();
                    let known = [
                        "twitch.tv/tags",
                        "twitch.tv/commands",
                        "twitch.tv/membership",
                    ];
                    let all_known = wanted.split_whitespace().all(|c| known.contains(&c));
                    if all_known && let Some(client) = state.chat.clients.get_mut(&connection) {
                        for cap in wanted.split_whitespace() {
                            match cap {
                                "twitch.tv/tags" => client.tags = true,
                                "twitch.tv/commands" => client.commands = true,
                                _ => client.membership = true,
                            }
                        }
                    }
                    let verdict = if all_known { "ACK" } else { "NAK" };
                    emit(
                        out,
                        Line::new("tmi.twitch.tv", "CAP", &["*", verdict], Some(&wanted)),
                    );
                }
                Some("LS") => emit(
                    out,
                    Line::new(
                        "tmi.twitch.tv",
                        "CAP",
                        &["*", "LS"],
                        Some("twitch.tv/tags twitch.tv/commands twitch.tv/membership"),
                    ),
                ),
                _ => {}
            }
        }
        "PASS" => session.pass = line.params.first().cloned(),
        "NICK" => {
            if logged_in {
                return Flow::Continue;
            }
            let nick = line
                .params
                .first()
                .map(|n| n.to_ascii_lowercase())
                .unwrap_or_default();
            return login_client(state, session, &nick, out);
        }
        "PING" => {
            let arg = line
                .params
                .first()
                .cloned()
                .unwrap_or_else(|| "tmi.twitch.tv".into());
            emit(
                out,
                Line::new("tmi.twitch.tv", "PONG", &["tmi.twitch.tv"], Some(&arg)),
            );
        }
        "PONG" | "USER" => {}
        "QUIT" => return Flow::Close,
        _ if !logged_in => {}
        "JOIN" => {
            let channels = line.params.first().cloned().unwrap_or_default();
            for channel in channels.split(',').filter(|c| !c.is_empty()) {
                join(state, connection, &login, &channel_login(channel), out);
            }
        }
        "PART" => {
            let channels = line.params.first().cloned().unwrap_or_default();
            for channel in channels.split(',').filter(|c| !c.is_empty()) {
                let channel = channel_login(channel);
                if let Some(client) = state.chat.clients.get_mut(&connection)
                    && client.joined.remove(&channel)
                {
                    emit(
                        out,
                        Line::new(
                            &user_prefix(&login),
                            "PART",
                            &[&format!("#{channel}")],
                            None,
                        ),
                    );
                }
            }
        }
        "PRIVMSG" => privmsg(state, connection, &line, out),
        other => emit(
            out,
            Line::new(
                "tmi.twitch.tv",
                "421",
                &[&login, other],
                Some("Unknown command"),
            ),
        ),
    }
    Flow::Continue
}

fn login_client(state: &mut State, session: &Session, nick: &str, out: &mut String) -> Flow {
    let connection = session.connection;
    let (login, user_id, anonymous, can_send) = if nick.starts_with("justinfan") {
        (nick.to_owned(), None, true, false)
    } else {
        let Some(token) = session
            .pass
            .as_deref()
            .and_then(|p| p.strip_prefix("oauth:"))
        else {
            out.push_str(":tmi.twitch.tv NOTICE * :Improperly formatted auth\r\n");
            return Flow::Close;
        };
        match state.auth.lookup(token, &state.users) {
            Some(info)
                if info.login.is_some()
                    && (info.has_scope("chat:read") || info.has_scope("user:read:chat")) =>
            {
                (
                    info.login.clone().unwrap_or_default(),
                    info.user_id.clone(),
                    false,
                    info.has_scope("chat:edit") || info.has_scope("user:write:chat"),
                )
            }
            _ => {
                out.push_str(":tmi.twitch.tv NOTICE * :Login authentication failed\r\n");
                return Flow::Close;
            }
        }
    };
    let commands = match state.chat.clients.get_mut(&connection) {
        Some(client) => {
            client.login = Some(login.clone());
            client.user_id = user_id.clone();
            client.anonymous = anonymous;
            client.can_send = can_send;
            client.commands
        }
        None => return Flow::Close,
    };
    for (code, text) in [
        ("001", "Welcome, GLHF!"),
        ("002", "Your host is tmi.twitch.tv"),
        ("003", "This server is rather new"),
        ("004", "-"),
        ("375", "-"),
        ("372", "You are in a maze of twisty passages, all alike."),
        ("376", ">"),
    ] {
        out.push_str(&Line::new("tmi.twitch.tv", code, &[&login], Some(text)).render(true));
    }
    if commands
        && !anonymous
        && let Some(user) = user_id.as_deref().and_then(|id| state.user(id))
    {
        let line = Line::new("tmi.twitch.tv", "GLOBALUSERSTATE", &[], None).tags(vec![
            ("badge-info".into(), String::new()),
            ("badges".into(), String::new()),
            ("color".into(), user.color.clone()),
            ("display-name".into(), user.display_name.clone()),
            ("emote-sets".into(), "0".into()),
            ("user-id".into(), user.id.clone()),
            ("user-type".into(), String::new()),
        ]);
        out.push_str(&line.render(tags_of(state, connection)));
    }
    Flow::Continue
}

fn tags_of(state: &State, connection: u64) -> bool {
    state.chat.clients.get(&connection).is_some_and(|c| c.tags)
}

fn userstate_line(
    state: &State,
    channel: &UserState,
    user_id: Option<&str>,
    id: Option<&str>,
) -> Line {
    let user = user_id.and_then(|id| state.user(id));
    let badges = user
        .map(|u| role_badges(state, channel, u))
        .unwrap_or_default();
    let is_mod = badges.iter().any(|(b, _)| b == "moderator");
    let mut tags: Vec<(String, String)> = vec![
        ("badge-info".into(), String::new()),
        (
            "badges".into(),
            badges
                .iter()
                .map(|(b, v)| format!("{b}/{v}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "color".into(),
            user.map(|u| u.color.clone()).unwrap_or_default(),
        ),
        (
            "display-name".into(),
            user.map(|u| u.display_name.clone()).unwrap_or_default(),
        ),
        ("emote-sets".into(), "0".into()),
        ("mod".into(), if is_mod { "1" } else { "0" }.into()),
        (
            "subscriber".into(),
            if badges.iter().any(|(b, _)| b == "subscriber") {
                "1"
            } else {
                "0"
            }
            .into(),
        ),
        ("user-type".into(), if is_mod { "mod" } else { "" }.into()),
    ];
    if let Some(id) = id {
        tags.push(("id".into(), id.into()));
    }
    Line::new(
        "tmi.twitch.tv",
        "USERSTATE",
        &[&format!("#{}", channel.login)],
        None,
    )
    .tags(tags)
    .commands_only()
}

fn join(state: &mut State, connection: u64, login: &str, channel: &str, out: &mut String) {
    let Some(owner) = state.user_by_login(channel).cloned() else {
        let line = Line::new(
            "tmi.twitch.tv",
            "NOTICE",
            &[&format!("#{channel}")],
            Some("This channel does not exist or has been suspended."),
        )
        .tags(vec![("msg-id".into(), "msg_channel_suspended".into())]);
        out.push_str(&line.render(tags_of(state, connection)));
        return;
    };
    let (tags, commands, user_id) = match state.chat.clients.get_mut(&connection) {
        Some(client) => {
            client.joined.insert(channel.to_owned());
            (client.tags, client.commands, client.user_id.clone())
        }
        None => return,
    };
    let hash = format!("#{channel}");
    let host = format!("{login}.tmi.twitch.tv");
    out.push_str(&Line::new(&user_prefix(login), "JOIN", &[&hash], None).render(tags));
    out.push_str(&Line::new(&host, "353", &[login, "=", &hash], Some(login)).render(tags));
    out.push_str(
        &Line::new(&host, "366", &[login, &hash], Some("End of /NAMES list")).render(tags),
    );
    if commands {
        out.push_str(&userstate_line(state, &owner, user_id.as_deref(), None).render(tags));
        let roomstate = Line::new("tmi.twitch.tv", "ROOMSTATE", &[&hash], None).tags(vec![
            ("emote-only".into(), "0".into()),
            ("followers-only".into(), "-1".into()),
            ("r9k".into(), "0".into()),
            ("room-id".into(), owner.id.clone()),
            ("slow".into(), "0".into()),
            ("subs-only".into(), "0".into()),
        ]);
        out.push_str(&roomstate.render(tags));
    }
}

fn notice(channel: &str, msg_id: &str, text: &str) -> Line {
    Line::new(
        "tmi.twitch.tv",
        "NOTICE",
        &[&format!("#{channel}")],
        Some(text),
    )
    .tags(vec![("msg-id".into(), msg_id.into())])
}

fn privmsg(state: &mut State, connection: u64, line: &ClientLine, out: &mut String) {
    let (Some(target), Some(text)) = (line.params.first(), line.params.get(1)) else {
        return;
    };
    let channel_name = channel_login(target);
    let (user_id, anonymous, can_send, tags) = match state.chat.clients.get(&connection) {
        Some(c) => (c.user_id.clone(), c.anonymous, c.can_send, c.tags),
        None => return,
    };
    if anonymous {
        return; // Twitch silently ignores anonymous senders.
    }
    let (Some(sender), Some(channel)) = (
        user_id.as_deref().and_then(|id| state.user(id)).cloned(),
        state.user_by_login(&channel_name).cloned(),
    ) else {
        return;
    };
    if !can_send {
        let n = notice(
            &channel_name,
            "no_permission",
            "You don't have permission to perform that action.",
        );
        out.push_str(&n.render(tags));
        return;
    }
    if let Some(ban) = super::helix::active_ban(state, &channel.id, &sender.id) {
        let n = match ban.duration {
            None => notice(
                &channel_name,
                "msg_banned",
                &format!("You are permanently banned from talking in {channel_name}."),
            ),
            Some(_) => notice(&channel_name, "msg_timedout", "You are timed out."),
        };
        out.push_str(&n.render(tags));
        return;
    }
    let reply_to = line.tags.get("reply-parent-msg-id").cloned();
    let nonce = line.tags.get("client-nonce").cloned();
    match client_message(
        state,
        &sender,
        &channel,
        text,
        reply_to.as_deref(),
        Origin::Irc {
            connection,
            client_nonce: nonce,
        },
    ) {
        Ok(id) => {
            let commands = state
                .chat
                .clients
                .get(&connection)
                .is_some_and(|c| c.commands);
            if commands {
                out.push_str(
                    &userstate_line(state, &channel, Some(&sender.id), Some(&id)).render(tags),
                );
            }
        }
        Err(Refused::RateLimited) => {
            let n = notice(
                &channel_name,
                "msg_ratelimit",
                "Your message was not sent because you are sending messages too quickly.",
            );
            out.push_str(&n.render(tags));
        }
    }
}

/// The JSON `badges` array EventSub uses for chat messages.
pub(crate) fn badges_json(badges: &[(String, String)]) -> serde_json::Value {
    badges
        .iter()
        .map(|(set, id)| json!({"set_id": set, "id": id, "info": if set == "subscriber" { id.clone() } else { String::new() }}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_values_round_trip_through_ircv3_escaping() {
        let raw = "a; b\\c\r\nd";
        let escaped = escape_tag_value(raw);
        assert_eq!(escaped, "a\\:\\sb\\\\c\\r\\nd");
        assert_eq!(unescape_tag_value(&escaped), raw);
        assert_eq!(unescape_tag_value("x\\"), "x");
        assert_eq!(unescape_tag_value("\\q"), "q");
    }

    #[test]
    fn finds_global_emotes_by_character_position() {
        assert_eq!(
            emotes_tag("Kappa Keepo Kappa", &[]),
            "25:0-4,12-16/1902:6-10"
        );
        assert_eq!(emotes_tag("héllo Kappa", &[]), "25:6-10");
        assert_eq!(emotes_tag("no emotes here", &[]), "");
        let given = vec![("7".to_owned(), vec![(0, 1)])];
        assert_eq!(emotes_tag("Kappa", &given), "7:0-1");
    }

    #[test]
    fn parses_client_lines_with_tags_and_trailing() {
        let line = parse_client_line(
            "@reply-parent-msg-id=abc;client-nonce=n PRIVMSG #chan :hi there\r\n",
        )
        .unwrap();
        assert_eq!(line.command, "PRIVMSG");
        assert_eq!(line.params, vec!["#chan", "hi there"]);
        assert_eq!(line.tags["reply-parent-msg-id"], "abc");
        let cap = parse_client_line("CAP REQ :twitch.tv/tags twitch.tv/commands").unwrap();
        assert_eq!(cap.params, vec!["REQ", "twitch.tv/tags twitch.tv/commands"]);
        let ping = parse_client_line("PING :tmi.twitch.tv").unwrap();
        assert_eq!(ping.params, vec!["tmi.twitch.tv"]);
    }
}
