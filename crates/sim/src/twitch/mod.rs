//! A loopback simulator of Twitch: its OAuth server (`id.twitch.tv`), the
//! Helix API (`api.twitch.tv/helix`), chat over IRC-on-WebSocket
//! (`irc-ws.chat.twitch.tv`) and EventSub over WebSocket
//! (`eventsub.wss.twitch.tv/ws`), speaking the real wire protocols so that an
//! unchanged Twitch client talks to it by swapping base URLs.
//!
//! # What is simulated
//!
//! | Area | Endpoints | Module |
//! | --- | --- | --- |
//! | OAuth 2.0 authorization code, refresh (rotating), client credentials, validate, revoke | `GET/POST /oauth2/authorize`, `POST /oauth2/token`, `GET /oauth2/validate`, `POST /oauth2/revoke` | [`auth`] |
//! | Helix | `/helix/users`, `/games`, `/search/categories`, `/channels` (GET, PATCH), `/streams`, `/chat/messages`, `/chat/shoutouts`, `/clips` (POST, GET), `/moderation/bans`, `/channels/followers`, `/subscriptions`, `/eventsub/subscriptions` (POST, GET, DELETE) | `helix` |
//! | Helix rate limit | a points bucket per client and user (`Ratelimit-Limit/-Remaining/-Reset`, 429) | `helix` |
//! | Chat | `ws://…/irc`: `CAP`, `PASS`/`NICK` (001–004, 375/372/376, `GLOBALUSERSTATE`), `JOIN` (353/366, `USERSTATE`, `ROOMSTATE`), `PART`, `PRIVMSG` with Twitch's tags, `USERNOTICE` (sub, resub, subgift, submysterygift, raid), `CLEARCHAT`, `PING`/`PONG`, `RECONNECT`, the send rate limit (`msg_ratelimit`) | [`irc`] |
//! | EventSub | `ws://…/eventsub/ws`: `session_welcome`, `session_keepalive`, `notification`, `session_reconnect` (subscriptions carried over, nothing lost), close codes 4003 and 4004, `websocket_disconnected` subscriptions after a drop | [`eventsub`] |
//! | Activity | [`TwitchSim::start_demo_script`]: scripted chatters, follows, subs, raids | `script` |
//!
//! Every Helix call needs `Authorization: Bearer <token>` and a `Client-Id`
//! header naming the client the token was issued to; scopes are checked per
//! endpoint, and error bodies are Twitch's
//! (`{"error":"Unauthorized","status":401,"message":"Invalid OAuth token"}`).
//!
//! # How to drive it
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::twitch::{ChatterMessage, Fault, TwitchSim, TwitchSimConfig};
//! let sim = TwitchSim::start(TwitchSimConfig::default()).await?;
//! // id.twitch.tv = sim.base_url(), api.twitch.tv/helix = sim.helix_url(),
//! // irc-ws.chat.twitch.tv = sim.irc_url(), eventsub.wss.twitch.tv/ws = sim.eventsub_url().
//! // The seeded token pair `sim-demo-twitch-access` / `sim-demo-twitch-refresh`
//! // (client `sim-twitch-client`) belongs to `simstreamer` and has every scope.
//! let id = sim.send_chat(ChatterMessage::new("simstreamer", "chatter_ann", "Kappa hi!"));
//! sim.follow("simstreamer", "new_viewer");          // Helix followers + channel.follow
//! sim.raid("raider_ray", "simstreamer", 42);         // channel.raid + USERNOTICE
//! sim.eventsub_reconnect();                          // session_reconnect to every socket
//! sim.inject(Fault::Status { path_prefix: "POST /helix/clips".into(), status: 503, times: 1 });
//! let sent = sim.chat_messages("simstreamer");       // what clients said in chat
//! sim.stop().await;
//! # Ok(()) }
//! ```
//!
//! A browser can open `{base_url}/oauth2/authorize?...` and press
//! "Authorize"; tests add `auto_approve=1` (and `login=` to choose the user)
//! and follow the 302 instead.
//!
//! # Faults
//!
//! [`TwitchSim::inject`] queues [`Fault`]s matched on `"[METHOD ]/path/prefix"`
//! (an answered status with a Helix-shaped body, or a delay).
//! [`TwitchSim::expire_access_tokens`], [`TwitchSim::revoke_access_tokens`]
//! and [`TwitchSim::revoke_refresh_tokens`] kill grants;
//! [`TwitchSim::eventsub_reconnect`], [`TwitchSim::drop_eventsub`],
//! [`TwitchSim::irc_reconnect`] and [`TwitchSim::drop_irc`] end sockets the
//! way Twitch does; [`TwitchSim::set_duplicate_deliveries`] and
//! [`TwitchSim::redeliver_last`] exercise at-least-once delivery. A spent
//! refresh token presented again is refused and, by default, revokes the
//! whole grant ([`TwitchSimConfig::revoke_grant_on_refresh_reuse`]).
//!
//! # Threading model and shutdown
//!
//! All state lives in one `std::sync::Mutex` that is never held across an
//! `.await`. One axum server on one port serves HTTP; the two WebSocket paths
//! are upgraded by hand (hyper's upgrade plus tokio-tungstenite), and every
//! socket is served by its own task that owns the socket and reads an
//! unbounded channel of outgoing frames. Test-control methods lock the state,
//! change it and push frames into those channels, so they are synchronous and
//! never block on a socket. A shutdown `watch` reaches every task;
//! [`TwitchSim::stop`] signals it, closes every socket (1001) and waits for the
//! server task.
//!
//! # Simplifications
//!
//! One app-wide real-time clock; every channel is live; the chat limit is one
//! sliding window per sender (the moderator budget applies when the sender
//! is the target channel's broadcaster or one of its moderators), and over it
//! a message is dropped (never a 30-minute lock-out); no whispers, no JOIN
//! rate limit, no EventSub webhooks or conduits, no subscription cost limits,
//! and `RECONNECT` on chat does not close the socket by itself (the client
//! is expected to reconnect and close it).

pub mod auth;
pub mod eventsub;
mod helix;
pub mod irc;
mod script;
mod server;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Every scope Twitch defines that the simulator knows about; the seeded demo
/// token carries all of them.
pub const ALL_SCOPES: &[&str] = &[
    "analytics:read:extensions",
    "analytics:read:games",
    "bits:read",
    "channel:bot",
    "channel:edit:commercial",
    "channel:manage:broadcast",
    "channel:manage:moderators",
    "channel:manage:polls",
    "channel:manage:predictions",
    "channel:manage:raids",
    "channel:manage:redemptions",
    "channel:manage:vips",
    "channel:moderate",
    "channel:read:editors",
    "channel:read:goals",
    "channel:read:hype_train",
    "channel:read:polls",
    "channel:read:predictions",
    "channel:read:redemptions",
    "channel:read:subscriptions",
    "channel:read:vips",
    "chat:edit",
    "chat:read",
    "clips:edit",
    "moderation:read",
    "moderator:manage:announcements",
    "moderator:manage:banned_users",
    "moderator:manage:chat_messages",
    "moderator:manage:shoutouts",
    "moderator:read:chatters",
    "moderator:read:followers",
    "user:bot",
    "user:read:chat",
    "user:read:email",
    "user:write:chat",
    "whispers:read",
];

/// Everything the simulator needs to know up front. Every field has a default
/// that mirrors Twitch (see [`TwitchSimConfig::default`]); tests shrink the
/// windows.
#[derive(Clone, Debug)]
pub struct TwitchSimConfig {
    /// Address to bind; the default `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    /// Registered applications (Twitch developer console).
    pub clients: Vec<TwitchClient>,
    /// Accounts that exist on the simulated Twitch. Each one has a channel.
    pub users: Vec<TwitchUser>,
    /// Token pairs issued before start, as if minted with the Twitch CLI.
    pub seeded_tokens: Vec<SeedToken>,
    /// Categories known to `/helix/games` and `/helix/search/categories`.
    pub games: Vec<TwitchGame>,
    /// Lifetime of a user access token (Twitch: about 4 hours, 14400 s).
    pub access_token_lifetime: Duration,
    /// Lifetime of an app access token from `client_credentials` (Twitch: about 60 days).
    pub app_access_token_lifetime: Duration,
    /// Lifetime of an authorization code (Twitch: 10 minutes).
    pub authorization_code_lifetime: Duration,
    /// When a spent refresh token is presented again, revoke the whole grant
    /// (every token issued from that authorization). When false only the
    /// spent token is refused.
    pub revoke_grant_on_refresh_reuse: bool,
    /// Chat send limit for an ordinary sender (Twitch: 20 per 30 s).
    pub chat_limit: ChatLimit,
    /// Chat send limit for the broadcaster and the channel's moderators (Twitch: 100 per 30 s).
    pub chat_limit_moderator: ChatLimit,
    /// How often the server sends `PING :tmi.twitch.tv` (Twitch: about every 5 minutes).
    pub irc_ping_interval: Duration,
    /// A chat client that sends nothing for this long after a server PING is dropped.
    pub irc_pong_timeout: Duration,
    /// EventSub keepalive window (Twitch: 10 s by default, 10–600 with
    /// `?keepalive_timeout_seconds=`): the time to subscribe after the
    /// welcome, and the longest silence before a `session_keepalive`.
    pub eventsub_keepalive: Duration,
    /// Time a client has to connect to `reconnect_url` (Twitch: 30 s).
    pub eventsub_reconnect_grace: Duration,
    /// Time from `POST /helix/clips` until `GET /helix/clips` shows the clip.
    pub clip_ready_after: Duration,
    /// A broadcaster may send one shoutout per this window (Twitch: 2 minutes).
    pub shoutout_cooldown: Duration,
    /// The same target may get a shoutout once per this window (Twitch: 60 minutes).
    pub shoutout_target_cooldown: Duration,
    /// Helix point bucket per client and user (Twitch: 800 per minute).
    pub helix_points_per_minute: u32,
    /// Send every EventSub notification twice with the same `message_id`.
    pub duplicate_deliveries: bool,
    /// Pause between two lines of [`TwitchSim::start_demo_script`].
    pub demo_script_interval: Duration,
    /// Bodies longer than this are cut in [`RecordedRequest::body`].
    pub record_body_limit: usize,
}

/// A send limit: `messages` per sliding window of `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatLimit {
    pub messages: u32,
    pub per: Duration,
}

/// An application registered with the simulated Twitch.
#[derive(Clone, Debug)]
pub struct TwitchClient {
    pub client_id: String,
    pub client_secret: String,
    /// Registered OAuth redirect URLs; empty accepts any loopback `http` URL
    /// (`localhost`, `127.0.0.1`, `[::1]`, any port and path).
    pub redirect_uris: Vec<String>,
}

/// A Twitch account (and its channel).
#[derive(Clone, Debug)]
pub struct TwitchUser {
    /// Numeric id, as a string (Twitch ids are strings on the wire).
    pub id: String,
    pub login: String,
    pub display_name: String,
    /// `""`, `"affiliate"` or `"partner"`.
    pub broadcaster_type: String,
    /// Chat name colour (`#RRGGBB`), empty when never set.
    pub color: String,
    /// Logins of the channels this user moderates.
    pub moderator_of: Vec<String>,
}

/// A token pair issued before start.
#[derive(Clone, Debug)]
pub struct SeedToken {
    pub login: String,
    pub client_id: String,
    pub access_token: String,
    pub refresh_token: String,
    pub scopes: Vec<String>,
}

/// A category (game).
#[derive(Clone, Debug)]
pub struct TwitchGame {
    pub id: String,
    pub name: String,
    pub igdb_id: String,
}

impl TwitchUser {
    pub fn new(id: &str, login: &str, display_name: &str, color: &str) -> TwitchUser {
        TwitchUser {
            id: id.into(),
            login: login.into(),
            display_name: display_name.into(),
            broadcaster_type: String::new(),
            color: color.into(),
            moderator_of: Vec::new(),
        }
    }
}

impl Default for TwitchSimConfig {
    /// One confidential client `sim-twitch-client` / `sim-twitch-secret` (any
    /// loopback redirect URI); users `simstreamer` (id `1000`, affiliate, the
    /// demo channel), `chatter_ann` (1001), `chatter_bob` (1002, moderator of
    /// simstreamer), `chatter_cat` (1003), `chatter_dan` (1004), `raider_ray`
    /// (1005, a channel that raids) and `switchboard_bot` (1006); one
    /// pre-issued token pair for simstreamer with [`ALL_SCOPES`]: access
    /// `sim-demo-twitch-access`, refresh `sim-demo-twitch-refresh`. Limits,
    /// lifetimes and cooldowns are Twitch's.
    fn default() -> Self {
        let mut bob = TwitchUser::new("1002", "chatter_bob", "ChatterBob", "#1E90FF");
        bob.moderator_of = vec!["simstreamer".into()];
        let mut streamer = TwitchUser::new("1000", "simstreamer", "SimStreamer", "#9146FF");
        streamer.broadcaster_type = "affiliate".into();
        let mut ray = TwitchUser::new("1005", "raider_ray", "Raider_Ray", "#FF4500");
        ray.broadcaster_type = "partner".into();
        let game = |id: &str, name: &str, igdb: &str| TwitchGame {
            id: id.into(),
            name: name.into(),
            igdb_id: igdb.into(),
        };
        TwitchSimConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            clients: vec![TwitchClient {
                client_id: "sim-twitch-client".into(),
                client_secret: "sim-twitch-secret".into(),
                redirect_uris: Vec::new(),
            }],
            users: vec![
                streamer,
                TwitchUser::new("1001", "chatter_ann", "ChatterAnn", "#FF69B4"),
                bob,
                TwitchUser::new("1003", "chatter_cat", "chatter_cat", ""),
                TwitchUser::new("1004", "chatter_dan", "ChatterDan", "#2E8B57"),
                ray,
                TwitchUser::new("1006", "switchboard_bot", "switchboard_bot", "#00FF7F"),
            ],
            seeded_tokens: vec![SeedToken {
                login: "simstreamer".into(),
                client_id: "sim-twitch-client".into(),
                access_token: "sim-demo-twitch-access".into(),
                refresh_token: "sim-demo-twitch-refresh".into(),
                scopes: ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            }],
            games: vec![
                game("509658", "Just Chatting", ""),
                game("1469308723", "Software and Game Development", ""),
                game("509670", "Science & Technology", ""),
                game("509660", "Art", ""),
                game("26936", "Music", ""),
                game("27471", "Minecraft", "121"),
                game("33214", "Fortnite", "1905"),
                game("32982", "Grand Theft Auto V", "1020"),
                game("21779", "League of Legends", "115"),
                game("516575", "VALORANT", "126459"),
            ],
            access_token_lifetime: Duration::from_secs(14_400),
            app_access_token_lifetime: Duration::from_secs(5_184_000),
            authorization_code_lifetime: Duration::from_secs(600),
            revoke_grant_on_refresh_reuse: true,
            chat_limit: ChatLimit {
                messages: 20,
                per: Duration::from_secs(30),
            },
            chat_limit_moderator: ChatLimit {
                messages: 100,
                per: Duration::from_secs(30),
            },
            irc_ping_interval: Duration::from_secs(300),
            irc_pong_timeout: Duration::from_secs(10),
            eventsub_keepalive: Duration::from_secs(10),
            eventsub_reconnect_grace: Duration::from_secs(30),
            clip_ready_after: Duration::from_secs(5),
            shoutout_cooldown: Duration::from_secs(120),
            shoutout_target_cooldown: Duration::from_secs(3600),
            helix_points_per_minute: 800,
            duplicate_deliveries: false,
            demo_script_interval: Duration::from_secs(4),
            record_body_limit: 1024 * 1024,
        }
    }
}

/// A chat message spoken by a scripted chatter ([`TwitchSim::send_chat`]).
#[derive(Clone, Debug, Default)]
pub struct ChatterMessage {
    /// Channel login, with or without `#`.
    pub channel: String,
    /// Sender login; unknown logins become new users.
    pub login: String,
    pub text: String,
    /// Bits cheered with the message (adds the `bits` tag).
    pub bits: Option<u32>,
    /// Id of the message this one replies to (adds the `reply-parent-*` tags).
    pub reply_to: Option<String>,
    /// Badges as `(name, version)`, e.g. `("subscriber", "12")`, `("bits", "100")`.
    pub badges: Vec<(String, String)>,
    /// Emotes as `(emote id, [(first, last)])` in character positions. Empty:
    /// well-known global emotes (`Kappa`, `Keepo`, `LUL`, ...) are found in the text.
    pub emotes: Vec<(String, Vec<(usize, usize)>)>,
    /// Sets `first-msg=1`.
    pub first_message: bool,
}

impl ChatterMessage {
    pub fn new(channel: &str, login: &str, text: &str) -> ChatterMessage {
        ChatterMessage {
            channel: channel.into(),
            login: login.into(),
            text: text.into(),
            ..ChatterMessage::default()
        }
    }
}

/// How a client's chat message reached the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatVia {
    Irc,
    Helix,
}

/// A chat message a client sent (over IRC or `POST /helix/chat/messages`).
#[derive(Clone, Debug)]
pub struct SimChatMessage {
    /// The message id (also on the delivered PRIVMSG's `id` tag); empty when dropped.
    pub id: String,
    /// Channel login.
    pub channel: String,
    /// Sender login.
    pub sender: String,
    pub text: String,
    pub at: SystemTime,
    pub via: ChatVia,
    /// False when the chat limit dropped it.
    pub delivered: bool,
    pub reply_to: Option<String>,
}

/// A channel's settings as Helix reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimChannel {
    pub broadcaster_id: String,
    pub login: String,
    pub title: String,
    pub game_id: String,
    pub game_name: String,
    pub tags: Vec<String>,
    pub language: String,
}

/// A shoutout sent through Helix.
#[derive(Clone, Debug)]
pub struct SimShoutout {
    pub from_broadcaster_id: String,
    pub to_broadcaster_id: String,
    pub moderator_id: String,
    pub at: SystemTime,
}

/// A clip created through Helix.
#[derive(Clone, Debug)]
pub struct SimClip {
    pub id: String,
    pub broadcaster_id: String,
    pub creator_id: String,
    pub created_at: SystemTime,
    /// True once `clip_ready_after` has passed (`GET /helix/clips` shows it).
    pub ready: bool,
}

/// A ban or timeout issued through Helix.
#[derive(Clone, Debug)]
pub struct SimBan {
    pub broadcaster_id: String,
    pub moderator_id: String,
    pub user_id: String,
    /// Seconds for a timeout, `None` for a ban.
    pub duration: Option<u32>,
    pub reason: String,
    pub at: SystemTime,
}

/// An EventSub subscription as the simulator keeps it.
#[derive(Clone, Debug)]
pub struct SimEventSubSubscription {
    pub id: String,
    /// The subscription type, such as `channel.follow`.
    pub kind: String,
    pub version: String,
    pub condition: Value,
    pub session_id: String,
    /// `enabled` or `websocket_disconnected`.
    pub status: String,
}

/// One HTTP request as the simulator received it (WebSocket upgrades included).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Arrival order, starting at 0.
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased; `authorization` is reduced to its scheme
    /// (`Bearer`, `OAuth`) so secrets never reach test output.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// First header value with that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// First query value with that name.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A fault to inject. `path_prefix` is a path prefix, optionally preceded by
/// a method and a space: `"/helix/clips"` matches every clip call, `"POST
/// /helix/chat/messages"` only sending chat. `times` is how many matching
/// requests the fault affects.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and a Helix-shaped body.
    Status {
        path_prefix: String,
        status: u16,
        times: usize,
    },
    /// Wait this long before handling the request.
    Delay {
        path_prefix: String,
        delay: Duration,
        times: usize,
    },
}

/// A running simulator. Dropping it without [`TwitchSim::stop`] aborts the server task.
pub struct TwitchSim {
    base_url: String,
    sim: Sim,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TwitchSim {
    /// Bind `config.bind` and start serving.
    pub async fn start(config: TwitchSimConfig) -> std::io::Result<TwitchSim> {
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let sim = Sim::new(config, shutdown_rx.clone());
        let task = tokio::spawn(server::serve(listener, sim.clone(), shutdown_rx));
        tracing::debug!(%base_url, "twitch simulator listening");
        Ok(TwitchSim {
            base_url,
            sim,
            shutdown,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, the `https://id.twitch.tv` stand-in.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `{base_url}/helix`, the `https://api.twitch.tv/helix` stand-in.
    pub fn helix_url(&self) -> String {
        format!("{}/helix", self.base_url)
    }

    /// `ws://127.0.0.1:PORT/irc`, the `wss://irc-ws.chat.twitch.tv:443` stand-in.
    pub fn irc_url(&self) -> String {
        format!("{}/irc", self.ws_base())
    }

    /// `ws://127.0.0.1:PORT/eventsub/ws`, the `wss://eventsub.wss.twitch.tv/ws` stand-in.
    pub fn eventsub_url(&self) -> String {
        format!("{}/eventsub/ws", self.ws_base())
    }

    fn ws_base(&self) -> String {
        self.base_url.replacen("http://", "ws://", 1)
    }

    // ----- chat -----

    /// A scripted chatter speaks: every chat client joined to the channel gets
    /// the PRIVMSG with Twitch's full tag set, and `channel.chat.message`
    /// subscriptions are notified. Returns the message id.
    pub fn send_chat(&self, message: ChatterMessage) -> String {
        let mut state = self.sim.lock();
        irc::speak(&mut state, message)
    }

    /// What clients sent to `channel` (over IRC or Helix), oldest first,
    /// dropped ones included.
    pub fn chat_messages(&self, channel: &str) -> Vec<SimChatMessage> {
        let channel = channel_login(channel);
        self.sim
            .lock()
            .chat
            .sent
            .iter()
            .filter(|m| m.channel == channel)
            .cloned()
            .collect()
    }

    /// How many client messages the chat limit dropped.
    pub fn chat_violations(&self) -> usize {
        self.sim.lock().chat.violations
    }

    /// Authenticated chat connections joined to `channel`.
    pub fn irc_clients_joined(&self, channel: &str) -> usize {
        let channel = channel_login(channel);
        self.sim.lock().chat.joined_count(&channel)
    }

    /// Send `:tmi.twitch.tv RECONNECT` to every chat connection.
    pub fn irc_reconnect(&self) {
        self.sim
            .lock()
            .chat
            .broadcast_control(irc::Control::Reconnect);
    }

    /// Close every chat socket abruptly (no close frame).
    pub fn drop_irc(&self) {
        self.sim.lock().chat.broadcast_control(irc::Control::Drop);
    }

    // ----- channel activity -----

    /// `user` follows `channel`: Helix followers and `channel.follow`.
    /// Returns the notification's message id (the first one if several
    /// subscriptions matched, an unused fresh id if none did).
    pub fn follow(&self, channel: &str, user: &str) -> String {
        let mut state = self.sim.lock();
        eventsub::follow(&mut state, channel, user)
    }

    /// `user` subscribes to `channel` at `tier` (`"1000"`, `"2000"`, `"3000"`):
    /// Helix subscriptions, `channel.subscribe` and a `sub` USERNOTICE.
    pub fn subscribe(&self, channel: &str, user: &str, tier: &str) -> String {
        let mut state = self.sim.lock();
        eventsub::subscribe(&mut state, channel, user, tier)
    }

    /// `user` shares a resubscription of `months` cumulative months with a
    /// message: `channel.subscription.message` and a `resub` USERNOTICE.
    pub fn resubscribe(&self, channel: &str, user: &str, months: u32, text: &str) -> String {
        let mut state = self.sim.lock();
        eventsub::resubscribe(&mut state, channel, user, months, text)
    }

    /// `gifter` gifts `total` subscriptions at `tier` to viewers of `channel`:
    /// `channel.subscription.gift`, a `channel.subscribe` (is_gift) per
    /// recipient, Helix subscriptions and the `submysterygift`/`subgift`
    /// USERNOTICEs. Recipients are chatters without a subscription, then
    /// fresh users. Returns the gift notification's message id.
    pub fn gift(&self, channel: &str, gifter: &str, total: u32, tier: &str) -> String {
        let mut state = self.sim.lock();
        eventsub::gift(&mut state, channel, gifter, total, tier)
    }

    /// `from` raids `to` with `viewers`: `channel.raid` (matched on either
    /// side's condition) and a `raid` USERNOTICE in `to`'s chat.
    pub fn raid(&self, from: &str, to: &str, viewers: u32) -> String {
        let mut state = self.sim.lock();
        eventsub::raid(&mut state, from, to, viewers)
    }

    /// `user` cheers `bits` in `channel`: `channel.cheer` and a PRIVMSG with
    /// the `bits` tag (the text gets a `Cheer<bits>` cheermote if it has none).
    pub fn cheer(&self, channel: &str, user: &str, bits: u32, text: &str) -> String {
        let mut state = self.sim.lock();
        eventsub::cheer(&mut state, channel, user, bits, text)
    }

    // ----- EventSub sockets -----

    /// Send `session_reconnect` to every connected EventSub socket.
    pub fn eventsub_reconnect(&self) {
        let mut state = self.sim.lock();
        let base = self.ws_base();
        eventsub::reconnect_all(&mut state, &base);
    }

    /// Close every EventSub socket abruptly (no close frame); their
    /// subscriptions become `websocket_disconnected`.
    pub fn drop_eventsub(&self) {
        eventsub::drop_all(&mut self.sim.lock());
    }

    /// Send each of the last `n` notifications again, with the same
    /// `message_id`, to its session's current socket.
    pub fn redeliver_last(&self, n: usize) {
        eventsub::redeliver_last(&mut self.sim.lock(), n);
    }

    /// Turn the "every notification twice" knob on or off.
    pub fn set_duplicate_deliveries(&self, on: bool) {
        self.sim.lock().config.duplicate_deliveries = on;
    }

    /// Every EventSub subscription ever created and not deleted.
    pub fn eventsub_subscriptions(&self) -> Vec<SimEventSubSubscription> {
        self.sim
            .lock()
            .eventsub
            .subscriptions
            .iter()
            .map(|s| s.public())
            .collect()
    }

    /// EventSub sockets currently open.
    pub fn eventsub_sessions_open(&self) -> usize {
        self.sim.inner.eventsub_open.load(Ordering::SeqCst)
    }

    // ----- tokens -----

    /// Expire every access token issued so far (seeded ones too).
    pub fn expire_access_tokens(&self) {
        self.sim.lock().auth.expire_access_tokens();
    }

    /// Revoke every refresh token of `login` (the next refresh gets 400).
    pub fn revoke_refresh_tokens(&self, login: &str) {
        let mut state = self.sim.lock();
        if let Some(id) = state.user_by_login(login).map(|u| u.id.clone()) {
            state.auth.revoke_refresh_tokens_of(&id);
        }
    }

    /// Revoke every access token of `login` (validate and Helix get 401).
    pub fn revoke_access_tokens(&self, login: &str) {
        let mut state = self.sim.lock();
        if let Some(id) = state.user_by_login(login).map(|u| u.id.clone()) {
            state.auth.revoke_access_tokens_of(&id);
        }
    }

    /// Calls to `POST /oauth2/token` (any grant, any outcome).
    pub fn token_calls(&self) -> usize {
        self.sim.lock().token_calls
    }

    /// Calls to `POST /oauth2/token` with `grant_type=refresh_token`.
    pub fn refresh_calls(&self) -> usize {
        self.sim.lock().refresh_calls
    }

    /// Calls to `GET /oauth2/validate`.
    pub fn validate_calls(&self) -> usize {
        self.sim.lock().validate_calls
    }

    // ----- faults and records -----

    /// Queue a fault.
    pub fn inject(&self, fault: Fault) {
        self.sim.lock().faults.push(fault);
    }

    /// Forget every queued fault.
    pub fn clear_faults(&self) {
        self.sim.lock().faults.clear();
    }

    /// Every HTTP request received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.sim.lock().requests.clone()
    }

    /// A channel's title, category and tags (by login), if the user exists.
    pub fn channel(&self, login: &str) -> Option<SimChannel> {
        let state = self.sim.lock();
        let user = state.user_by_login(login)?;
        Some(state.sim_channel(&user.id))
    }

    /// Shoutouts sent through Helix, oldest first.
    pub fn shoutouts(&self) -> Vec<SimShoutout> {
        self.sim.lock().shoutouts.clone()
    }

    /// Clips created through Helix, oldest first.
    pub fn clips(&self) -> Vec<SimClip> {
        let state = self.sim.lock();
        let ready_after = state.config.clip_ready_after;
        state
            .clips
            .iter()
            .map(|c| SimClip {
                ready: c.created.elapsed() >= ready_after,
                ..c.clip.clone()
            })
            .collect()
    }

    /// Bans and timeouts issued through Helix, oldest first.
    pub fn bans(&self) -> Vec<SimBan> {
        self.sim.lock().bans.clone()
    }

    /// Start a task that keeps the demo channel busy: a chatter speaks every
    /// [`TwitchSimConfig::demo_script_interval`] (badges, emotes, now and
    /// then bits or a reply), with a follow, a sub and a raid early on and
    /// more of them later. It stops with the simulator; a second call does
    /// nothing.
    pub fn start_demo_script(&self) {
        if self.sim.inner.script_started.swap(1, Ordering::SeqCst) == 0 {
            tokio::spawn(script::run(self.sim.clone()));
        }
    }

    /// Stop serving: close every socket (1001) and wait for the server task
    /// (at most a few seconds).
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        // Socket tasks answer the shutdown signal themselves; give them a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.sim.inner.sockets_open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TwitchSim {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The shared handle every handler and socket task gets.
#[derive(Clone)]
pub(crate) struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// Open WebSocket connections of any kind (for `stop`).
    sockets_open: AtomicUsize,
    eventsub_open: AtomicUsize,
    script_started: AtomicUsize,
}

impl Sim {
    fn new(config: TwitchSimConfig, shutdown: tokio::sync::watch::Receiver<bool>) -> Sim {
        Sim {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(config)),
                shutdown,
                sockets_open: AtomicUsize::new(0),
                eventsub_open: AtomicUsize::new(0),
                script_started: AtomicUsize::new(0),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn shutdown(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.shutdown.clone()
    }

    /// Counts one open socket until dropped.
    pub(crate) fn socket_guard(&self, eventsub: bool) -> SocketGuard {
        self.inner.sockets_open.fetch_add(1, Ordering::SeqCst);
        if eventsub {
            self.inner.eventsub_open.fetch_add(1, Ordering::SeqCst);
        }
        SocketGuard {
            sim: self.clone(),
            eventsub,
        }
    }
}

pub(crate) struct SocketGuard {
    sim: Sim,
    eventsub: bool,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.sim.inner.sockets_open.fetch_sub(1, Ordering::SeqCst);
        if self.eventsub {
            self.sim.inner.eventsub_open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A user as the simulator keeps it.
#[derive(Clone, Debug)]
pub(crate) struct UserState {
    pub id: String,
    pub login: String,
    pub display_name: String,
    pub broadcaster_type: String,
    pub color: String,
    pub moderator_of: Vec<String>,
    pub created_at: SystemTime,
}

pub(crate) struct ChannelState {
    pub title: String,
    pub game_id: String,
    pub language: String,
    pub tags: Vec<String>,
    pub live_since: SystemTime,
    pub stream_id: String,
    pub viewer_count: u32,
}

pub(crate) struct FollowState {
    pub user_id: String,
    pub at: SystemTime,
}

#[derive(Clone)]
pub(crate) struct SubState {
    pub user_id: String,
    pub tier: String,
    pub gifter_id: Option<String>,
    pub cumulative_months: u32,
}

pub(crate) struct ClipState {
    pub clip: SimClip,
    pub created: Instant,
    pub title: String,
    pub game_id: String,
}

/// Everything mutable, behind one lock.
pub(crate) struct State {
    pub config: TwitchSimConfig,
    pub users: Vec<UserState>,
    next_user_id: u64,
    /// By broadcaster id.
    pub channels: HashMap<String, ChannelState>,
    /// By broadcaster id, oldest first.
    pub followers: HashMap<String, Vec<FollowState>>,
    /// By broadcaster id.
    pub subscriptions: HashMap<String, Vec<SubState>>,
    /// `(broadcaster id, gifter id)` → gifts so far.
    pub gift_totals: HashMap<(String, String), u32>,
    pub shoutouts: Vec<SimShoutout>,
    pub clips: Vec<ClipState>,
    pub bans: Vec<SimBan>,
    pub auth: auth::AuthState,
    pub buckets: HashMap<(String, String), helix::Bucket>,
    pub chat: irc::ChatState,
    pub eventsub: eventsub::EventSubState,
    pub faults: Vec<Fault>,
    pub requests: Vec<RecordedRequest>,
    pub next_request_seq: u64,
    pub token_calls: usize,
    pub refresh_calls: usize,
    pub validate_calls: usize,
}

impl State {
    fn new(config: TwitchSimConfig) -> State {
        // Accounts "created" a while ago, so created_at looks like Twitch's.
        let created_at = SystemTime::now() - Duration::from_secs(3 * 365 * 86_400);
        let users: Vec<UserState> = config
            .users
            .iter()
            .map(|u| UserState {
                id: u.id.clone(),
                login: u.login.to_ascii_lowercase(),
                display_name: u.display_name.clone(),
                broadcaster_type: u.broadcaster_type.clone(),
                color: u.color.clone(),
                moderator_of: u.moderator_of.iter().map(|c| channel_login(c)).collect(),
                created_at,
            })
            .collect();
        let next_user_id = users
            .iter()
            .filter_map(|u| u.id.parse::<u64>().ok())
            .max()
            .unwrap_or(1000)
            + 100;
        let live_since = SystemTime::now() - Duration::from_secs(1800);
        let mut channels = HashMap::new();
        for user in &users {
            channels.insert(
                user.id.clone(),
                ChannelState {
                    title: format!("{} live on the switchboard simulator", user.display_name),
                    game_id: "1469308723".into(),
                    language: "en".into(),
                    tags: vec!["English".into(), "Simulated".into()],
                    live_since,
                    stream_id: format!("4{:010}", rand::random::<u32>()),
                    viewer_count: 20 + rand::random::<u32>() % 200,
                },
            );
        }
        let auth = auth::AuthState::seeded(&config, &users);
        State {
            config,
            users,
            next_user_id,
            channels,
            followers: HashMap::new(),
            subscriptions: HashMap::new(),
            gift_totals: HashMap::new(),
            shoutouts: Vec::new(),
            clips: Vec::new(),
            bans: Vec::new(),
            auth,
            buckets: HashMap::new(),
            chat: irc::ChatState::default(),
            eventsub: eventsub::EventSubState::default(),
            faults: Vec::new(),
            requests: Vec::new(),
            next_request_seq: 0,
            token_calls: 0,
            refresh_calls: 0,
            validate_calls: 0,
        }
    }

    pub(crate) fn user(&self, id: &str) -> Option<&UserState> {
        self.users.iter().find(|u| u.id == id)
    }

    pub(crate) fn user_by_login(&self, login: &str) -> Option<&UserState> {
        let login = channel_login(login);
        self.users.iter().find(|u| u.login == login)
    }

    /// The user with that login, created (with a channel) if unknown.
    pub(crate) fn user_or_create(&mut self, login: &str) -> UserState {
        if let Some(user) = self.user_by_login(login) {
            return user.clone();
        }
        let login = channel_login(login);
        self.next_user_id += 1;
        let user = UserState {
            id: self.next_user_id.to_string(),
            display_name: login.clone(),
            login,
            broadcaster_type: String::new(),
            color: String::new(),
            moderator_of: Vec::new(),
            created_at: SystemTime::now(),
        };
        self.channels.insert(
            user.id.clone(),
            ChannelState {
                title: String::new(),
                game_id: String::new(),
                language: "en".into(),
                tags: Vec::new(),
                live_since: SystemTime::now(),
                stream_id: format!("4{:010}", rand::random::<u32>()),
                viewer_count: 0,
            },
        );
        self.users.push(user.clone());
        user
    }

    /// Broadcaster of the channel, or one of its moderators.
    pub(crate) fn is_moderator(&self, channel_login: &str, user_id: &str) -> bool {
        match self.user(user_id) {
            Some(u) => {
                u.login == channel_login || u.moderator_of.iter().any(|c| c == channel_login)
            }
            None => false,
        }
    }

    pub(crate) fn game_name(&self, id: &str) -> String {
        self.config
            .games
            .iter()
            .find(|g| g.id == id)
            .map(|g| g.name.clone())
            .unwrap_or_default()
    }

    pub(crate) fn sim_channel(&self, broadcaster_id: &str) -> SimChannel {
        let user = self.user(broadcaster_id);
        let channel = self.channels.get(broadcaster_id);
        SimChannel {
            broadcaster_id: broadcaster_id.to_owned(),
            login: user.map(|u| u.login.clone()).unwrap_or_default(),
            title: channel.map(|c| c.title.clone()).unwrap_or_default(),
            game_id: channel.map(|c| c.game_id.clone()).unwrap_or_default(),
            game_name: channel
                .map(|c| self.game_name(&c.game_id))
                .unwrap_or_default(),
            tags: channel.map(|c| c.tags.clone()).unwrap_or_default(),
            language: channel.map(|c| c.language.clone()).unwrap_or_default(),
        }
    }

    /// Consume the faults that match this request: the summed delay and at
    /// most one status.
    pub(crate) fn take_faults(&mut self, method: &str, path: &str) -> (Duration, Option<u16>) {
        let mut delay = Duration::ZERO;
        let mut status = None;
        for fault in &mut self.faults {
            match fault {
                Fault::Delay {
                    path_prefix,
                    delay: d,
                    times,
                } if *times > 0 && fault_matches(path_prefix, method, path) => {
                    *times -= 1;
                    delay += *d;
                }
                Fault::Status {
                    path_prefix,
                    status: s,
                    times,
                } if *times > 0 && status.is_none() && fault_matches(path_prefix, method, path) => {
                    *times -= 1;
                    status = Some(*s);
                }
                _ => {}
            }
        }
        self.faults.retain(|f| match f {
            Fault::Status { times, .. } | Fault::Delay { times, .. } => *times > 0,
        });
        (delay, status)
    }

    /// Keep long-running demos small.
    pub(crate) fn prune(&mut self) {
        const KEEP: usize = 20_000;
        if self.requests.len() > KEEP {
            let excess = self.requests.len() - KEEP;
            self.requests.drain(..excess);
        }
        if self.chat.sent.len() > KEEP {
            let excess = self.chat.sent.len() - KEEP;
            self.chat.sent.drain(..excess);
        }
        self.auth.prune(Instant::now());
    }
}

fn fault_matches(pattern: &str, method: &str, path: &str) -> bool {
    match pattern.split_once(' ') {
        Some((m, prefix)) => m.eq_ignore_ascii_case(method) && path.starts_with(prefix.trim()),
        None => path.starts_with(pattern),
    }
}

/// `#SimStreamer` → `simstreamer`.
pub(crate) fn channel_login(channel: &str) -> String {
    channel.trim().trim_start_matches('#').to_ascii_lowercase()
}

/// Milliseconds since the Unix epoch (`tmi-sent-ts`).
pub(crate) fn epoch_millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// RFC 3339 in UTC with `fraction_digits` digits after the seconds (0: none).
/// EventSub uses nanoseconds (9), Helix whole seconds (0).
pub(crate) fn rfc3339(t: SystemTime, fraction_digits: usize) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if fraction_digits > 0 {
        let nanos = format!("{:09}", since.subsec_nanos());
        out.push('.');
        out.push_str(&nanos[..fraction_digits.min(9)]);
    }
    out.push('Z');
    out
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian, UTC).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A random alphanumeric token of `len` characters (Twitch tokens are 30
/// lower-case alphanumerics).
pub(crate) fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rand::random::<u8>() as usize % ALPHABET.len()] as char)
        .collect()
}

/// A fresh UUID v4 as Twitch renders message and subscription ids.
pub(crate) fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Resolves once the shutdown signal is set (the guard `wait_for` returns is
/// dropped here, so callers stay `Send`).
pub(crate) async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Bounded history helper.
pub(crate) fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, keep: usize) {
    queue.push_back(item);
    while queue.len() > keep {
        queue.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_timestamps_like_twitch() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(rfc3339(t, 9), "2023-11-14T22:13:20.123456789Z");
        assert_eq!(rfc3339(t, 0), "2023-11-14T22:13:20Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap, 0), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn fault_patterns_match_method_and_prefix() {
        assert!(fault_matches("/helix/clips", "GET", "/helix/clips"));
        assert!(fault_matches("POST /helix/clips", "post", "/helix/clips"));
        assert!(!fault_matches("POST /helix/clips", "GET", "/helix/clips"));
        assert!(!fault_matches("/helix/users", "GET", "/helix/clips"));
    }
}
