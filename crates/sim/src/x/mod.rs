//! A loopback simulator of the X (Twitter) API v2, its OAuth 2.0 and OAuth 1.0a
//! authorization servers and its v2 media upload, speaking the real wire
//! protocol so that an unchanged X client can talk to it by swapping base URLs.
//!
//! # What is simulated
//!
//! | Area | Endpoints | Module |
//! | --- | --- | --- |
//! | OAuth 2.0 authorization code + PKCE | `GET/POST /i/oauth2/authorize`, `POST /2/oauth2/token`, `POST /2/oauth2/revoke` | [`auth`] |
//! | OAuth 1.0a (RFC 5849, HMAC-SHA1) | `POST /oauth/request_token`, `GET/POST /oauth/authorize`, `GET /oauth/authenticate`, `POST /oauth/access_token` | [`auth`] |
//! | Posts and users | `POST /2/tweets`, `GET/DELETE /2/tweets/{id}`, `GET /2/tweets/search/recent`, `GET /2/users/me`, `GET /2/users/{id}/mentions`, `GET /2/users/{id}/tweets` | `api` |
//! | Media upload v2 | `POST /2/media/upload/initialize`, `POST /2/media/upload/{id}/append`, `POST /2/media/upload/{id}/finalize`, `GET /2/media/upload?command=STATUS` | [`media`] |
//! | Rate limits | `x-rate-limit-*` headers and 429 on every API endpoint, per endpoint and per user | [`limits`] |
//! | Weighted text length | twitter-text config v3 (URLs 23, wide characters 2, emoji 2) | [`text`] |
//! | Spec conformance | [`check_request_against_spec`] against the official OpenAPI document | [`spec`] |
//!
//! Every API request is authorized with either `Authorization: Bearer <OAuth 2.0
//! user access token>` or an OAuth 1.0a `Authorization: OAuth ...` header whose
//! HMAC-SHA1 signature, timestamp and nonce are verified. Request query
//! parameters and JSON bodies are validated against the official OpenAPI
//! document before the handler runs, so an unknown field or a wrong type gets
//! X's `400 Invalid Request` problem, as it would from X.
//!
//! # How to drive it
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::x::{Fault, XSim, XSimConfig};
//! let sim = XSim::start(XSimConfig::default()).await?;
//! // Point the client's API, upload and OAuth base URLs at `sim.base_url()`.
//! // A browser can open `{base_url}/i/oauth2/authorize?...` and press
//! // "Authorize app"; tests add `auto_approve=1` and follow the 302 instead.
//! sim.inject(Fault::Status { path_prefix: "POST /2/tweets".into(), status: 503, times: 1 });
//! let posts = sim.posts(); // what went out
//! let requests = sim.requests(); // what the client sent, for spec checks
//! sim.stop().await;
//! # Ok(()) }
//! ```
//!
//! The default configuration seeds one OAuth 2.0 client, one OAuth 1.0a
//! consumer and two users with "direct entry" credentials (see
//! [`XSimConfig::default`]), so `switchboard demo` works with no setup.
//!
//! # Faults
//!
//! [`XSim::inject`] queues [`Fault`]s matched on `"[METHOD ]/path/prefix"`:
//! an answered error status, a delay, a dropped connection (the socket is closed
//! without a response: the simulator's listener wraps every accepted socket in a
//! kill switch that the request's handler can pull), exhausted rate limits, and
//! failed media processing. [`XSim::expire_access_tokens`] and
//! [`XSim::revoke_refresh_tokens`] model the two ways an account's grant dies.
//!
//! # Threading model and shutdown
//!
//! All state lives in one `std::sync::Mutex` that is never held across an
//! `.await`; handlers lock, mutate and unlock. The server runs on a spawned
//! task with axum's graceful shutdown; [`XSim::stop`] signals it and waits.
//!
//! # Simplifications
//!
//! One app-wide clock (real time), no app-level 24-hour caps, recent search
//! understands plain terms, quoted phrases, `from:`, `to:`, `@mention`,
//! `is:reply`, `is:retweet` and `-` negation (other operators are ignored), and
//! media is checked by magic bytes rather than decoded.

mod api;
pub mod auth;
mod error;
pub mod limits;
pub mod media;
mod server;
pub mod spec;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use limits::{Endpoint, RateLimit, RateLimits};
pub use spec::check_request_against_spec;
pub use text::weighted_length;

/// Everything the simulator needs to know up front. Every field has a default
/// that mirrors X (see [`XSimConfig::default`]); tests shrink the windows.
#[derive(Clone, Debug)]
pub struct XSimConfig {
    /// Address to bind; the default `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    /// OAuth 2.0 clients (apps) allowed to run the authorization code flow.
    pub oauth2_clients: Vec<OAuth2Client>,
    /// OAuth 1.0a consumers (API key and secret pairs).
    pub oauth1_consumers: Vec<OAuth1Consumer>,
    /// Accounts that exist on the simulated X.
    pub users: Vec<SeedUser>,
    /// Per-endpoint, per-user request budgets.
    pub rate_limits: RateLimits,
    /// Lifetime of an OAuth 2.0 access token (X: 7200 s).
    pub access_token_lifetime: Duration,
    /// Lifetime of an OAuth 2.0 authorization code (X: 30 s).
    pub authorization_code_lifetime: Duration,
    /// How far an OAuth 1.0a `oauth_timestamp` may be from the simulator's clock.
    pub oauth1_timestamp_window: Duration,
    /// When a spent refresh token is presented again, revoke the whole grant
    /// (every access and refresh token issued from that authorization), the way
    /// a rotating-refresh-token server reacts to suspected token theft. When
    /// false only the spent token is refused.
    pub revoke_grant_on_refresh_reuse: bool,
    /// The same text by the same author inside this window is a duplicate (403).
    pub duplicate_window: Duration,
    /// Media upload and processing behaviour.
    pub media: MediaConfig,
    /// Longest weighted post text (X: 280 for accounts without Premium).
    pub max_weighted_length: usize,
    /// Bodies longer than this are cut in [`RecordedRequest::body`].
    pub record_body_limit: usize,
}

/// An OAuth 2.0 client registered with the simulated X developer portal.
#[derive(Clone, Debug)]
pub struct OAuth2Client {
    pub client_id: String,
    /// `Some` for a confidential client (token calls must use HTTP Basic),
    /// `None` for a public client (`client_id` in the form body).
    pub client_secret: Option<String>,
    /// Registered callback URLs; empty accepts any `redirect_uri`.
    pub redirect_uris: Vec<String>,
}

/// An OAuth 1.0a consumer ("API key and secret").
#[derive(Clone, Debug)]
pub struct OAuth1Consumer {
    pub consumer_key: String,
    pub consumer_secret: String,
}

/// An account on the simulated X, optionally with credentials that can be
/// used without running an authorization flow ("direct entry").
#[derive(Clone, Debug)]
pub struct SeedUser {
    /// Numeric user id, as a string (X ids do not fit in a JSON double).
    pub id: String,
    pub username: String,
    pub name: String,
    /// Pre-issued OAuth 1.0a access token and secret, valid with any configured consumer.
    pub oauth1_access_token: Option<(String, String)>,
    /// Pre-issued OAuth 2.0 bearer token with every scope; it never expires
    /// unless [`XSim::expire_access_tokens`] is called.
    pub oauth2_access_token: Option<String>,
}

/// Media upload and processing knobs.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// `processing_info.check_after_secs` handed to clients.
    pub check_after_secs: u64,
    /// Time from FINALIZE until a video or GIF reaches `succeeded`.
    pub processing_time: Duration,
    /// How long an upload (and its media id) stays usable.
    pub expires_after: Duration,
}

impl Default for XSimConfig {
    /// One confidential OAuth 2.0 client (`sim-client-id` / `sim-client-secret`),
    /// one OAuth 1.0a consumer (`sim-consumer-key` / `sim-consumer-secret`) and
    /// two users: `switchboard_demo` (id `1000000000000000001`, direct-entry
    /// tokens `sim-demo-oauth1-token` / `sim-demo-oauth1-secret` and bearer
    /// `sim-demo-bearer`) and `sim_friend` (id `1000000000000000002`, tokens
    /// `sim-friend-oauth1-token` / `sim-friend-oauth1-secret`, bearer
    /// `sim-friend-bearer`). Limits and lifetimes are X's.
    fn default() -> Self {
        XSimConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            oauth2_clients: vec![OAuth2Client {
                client_id: "sim-client-id".into(),
                client_secret: Some("sim-client-secret".into()),
                redirect_uris: Vec::new(),
            }],
            oauth1_consumers: vec![OAuth1Consumer {
                consumer_key: "sim-consumer-key".into(),
                consumer_secret: "sim-consumer-secret".into(),
            }],
            users: vec![
                SeedUser {
                    id: "1000000000000000001".into(),
                    username: "switchboard_demo".into(),
                    name: "Switchboard Demo".into(),
                    oauth1_access_token: Some((
                        "sim-demo-oauth1-token".into(),
                        "sim-demo-oauth1-secret".into(),
                    )),
                    oauth2_access_token: Some("sim-demo-bearer".into()),
                },
                SeedUser {
                    id: "1000000000000000002".into(),
                    username: "sim_friend".into(),
                    name: "Sim Friend".into(),
                    oauth1_access_token: Some((
                        "sim-friend-oauth1-token".into(),
                        "sim-friend-oauth1-secret".into(),
                    )),
                    oauth2_access_token: Some("sim-friend-bearer".into()),
                },
            ],
            rate_limits: RateLimits::default(),
            access_token_lifetime: Duration::from_secs(7200),
            authorization_code_lifetime: Duration::from_secs(30),
            oauth1_timestamp_window: Duration::from_secs(300),
            revoke_grant_on_refresh_reuse: true,
            duplicate_window: Duration::from_secs(24 * 3600),
            media: MediaConfig::default(),
            max_weighted_length: text::MAX_WEIGHTED_LENGTH,
            record_body_limit: 8 * 1024 * 1024,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            check_after_secs: 1,
            processing_time: Duration::from_secs(3),
            expires_after: Duration::from_secs(86_400),
        }
    }
}

/// A post stored by the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimPost {
    pub id: String,
    pub author_id: String,
    pub text: String,
    pub reply_to: Option<String>,
    pub quote_of: Option<String>,
    pub media_ids: Vec<String>,
    pub poll_options: Vec<String>,
    /// RFC 3339 with milliseconds, UTC, as X renders `created_at`.
    pub created_at: String,
}

/// One HTTP request as the simulator received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Arrival order, starting at 0.
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased; `authorization` is reduced to its scheme
    /// (`Bearer`, `OAuth`, `Basic`) so secrets never reach test output.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// True when `body` was cut at [`XSimConfig::record_body_limit`].
    pub body_truncated: bool,
    /// The status answered, or `None` if the connection was dropped.
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// First header value with that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A fault to inject. `path_prefix` is a path prefix, optionally preceded by a
/// method and a space: `"/2/media"` matches every media call, `"POST /2/tweets"`
/// matches only post creation (and, being a prefix, `POST /2/tweets...`).
/// `times` is how many matching requests the fault affects.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and an X-shaped problem body.
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
    /// Close the connection without writing any response.
    Drop { path_prefix: String, times: usize },
    /// Every user's budget on `endpoint` is spent until `reset_in` from now.
    RateLimitExhausted {
        endpoint: Endpoint,
        reset_in: Duration,
    },
    /// The next `times` videos or GIFs finalized end in processing state `failed`.
    MediaProcessingFailure { times: usize },
}

/// A running simulator. Dropping it without [`XSim::stop`] aborts the server task.
pub struct XSim {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base_url: String,
    sim: Sim,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl XSim {
    /// Bind `config.bind` and start serving.
    pub async fn start(config: XSimConfig) -> std::io::Result<XSim> {
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let sim = Sim::new(config, base_url.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server::serve(listener, sim.clone(), rx));
        tracing::debug!(%base_url, "x simulator listening");
        Ok(XSim {
            base_url,
            sim,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Every live (not deleted) post, oldest first.
    pub fn posts(&self) -> Vec<SimPost> {
        self.sim
            .lock()
            .posts
            .values()
            .map(|p| p.post.clone())
            .collect()
    }

    /// Ids of posts deleted through the API.
    pub fn deleted_post_ids(&self) -> Vec<String> {
        self.sim.lock().deleted.clone()
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.sim.lock().requests.clone()
    }

    /// How many times the OAuth 2.0 token endpoint was called (any grant, any outcome).
    pub fn token_calls(&self) -> usize {
        self.sim.lock().token_calls
    }

    /// Queue a fault.
    pub fn inject(&self, fault: Fault) {
        self.sim.lock().inject(fault);
    }

    /// Forget every queued fault and exhausted rate limit.
    pub fn clear_faults(&self) {
        let mut state = self.sim.lock();
        state.faults.clear();
        state.limits.clear_exhausted();
        state.media_failures = 0;
    }

    /// Revoke every refresh token held for `user` (an id or a username): the
    /// next refresh gets X's `invalid_request` answer.
    pub fn revoke_refresh_tokens(&self, user: &str) {
        let mut state = self.sim.lock();
        if let Some(id) = state.user_id(user) {
            state.oauth2.revoke_refresh_tokens_of(&id);
        }
    }

    /// Expire every OAuth 2.0 access token issued so far (seeded ones too): the
    /// next API call with any of them gets 401.
    pub fn expire_access_tokens(&self) {
        self.sim.lock().oauth2.expire_access_tokens();
    }

    /// Store a post as `author` (id or username) without going through the API,
    /// e.g. a mention from another account. Panics if the author is unknown.
    pub fn create_post_as(&self, author: &str, text: &str, reply_to: Option<&str>) -> SimPost {
        let mut state = self.sim.lock();
        let author_id = state
            .user_id(author)
            .unwrap_or_else(|| panic!("no simulated user {author}"));
        state.store_post(NewPost {
            author_id,
            text: text.to_owned(),
            reply_to: reply_to.map(str::to_owned),
            quote_of: None,
            media_ids: Vec::new(),
            poll_options: Vec::new(),
        })
    }

    /// Stop serving and wait for the server task (at most a few seconds).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for XSim {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The shared handle every handler gets.
#[derive(Clone)]
pub(crate) struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    base_url: String,
}

impl Sim {
    fn new(config: XSimConfig, base_url: String) -> Sim {
        Sim {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(config)),
                base_url,
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

    pub(crate) fn base_url(&self) -> &str {
        &self.inner.base_url
    }
}

/// A user as the simulator keeps it.
#[derive(Clone, Debug)]
pub(crate) struct SimUser {
    pub id: String,
    pub username: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Clone, Debug)]
pub(crate) struct StoredPost {
    pub post: SimPost,
    pub created: Instant,
}

pub(crate) struct NewPost {
    pub author_id: String,
    pub text: String,
    pub reply_to: Option<String>,
    pub quote_of: Option<String>,
    pub media_ids: Vec<String>,
    pub poll_options: Vec<String>,
}

/// Everything mutable, behind one lock.
pub(crate) struct State {
    pub config: XSimConfig,
    pub users: Vec<SimUser>,
    /// Live posts by numeric id (ids grow with time, so this is chronological).
    pub posts: BTreeMap<u64, StoredPost>,
    pub deleted: Vec<String>,
    next_id: u64,
    pub oauth2: auth::OAuth2State,
    pub oauth1: auth::OAuth1State,
    pub limits: limits::RateLimiter,
    pub uploads: HashMap<String, media::Upload>,
    pub media_failures: usize,
    pub faults: Vec<Fault>,
    pub requests: Vec<RecordedRequest>,
    pub next_request_seq: u64,
    pub token_calls: usize,
}

impl State {
    fn new(config: XSimConfig) -> State {
        let created_at = rfc3339(SystemTime::now());
        let users = config
            .users
            .iter()
            .map(|u| SimUser {
                id: u.id.clone(),
                username: u.username.clone(),
                name: u.name.clone(),
                created_at: created_at.clone(),
            })
            .collect();
        let oauth2 = auth::OAuth2State::seeded(&config);
        let oauth1 = auth::OAuth1State::seeded(&config);
        // Snowflake-sized ids that grow: since_id and until_id work as on X.
        let next_id = 1_900_000_000_000_000_000 + u64::from(rand::random::<u16>()) * 1_000_000;
        State {
            config,
            users,
            posts: BTreeMap::new(),
            deleted: Vec::new(),
            next_id,
            oauth2,
            oauth1,
            limits: limits::RateLimiter::default(),
            uploads: HashMap::new(),
            media_failures: 0,
            faults: Vec::new(),
            requests: Vec::new(),
            next_request_seq: 0,
            token_calls: 0,
        }
    }

    /// A fresh id, larger than every id handed out before.
    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1 + u64::from(rand::random::<u8>());
        self.next_id
    }

    pub(crate) fn user(&self, id: &str) -> Option<&SimUser> {
        self.users.iter().find(|u| u.id == id)
    }

    /// Resolve an id or a username (with or without `@`) to a user id.
    pub(crate) fn user_id(&self, id_or_name: &str) -> Option<String> {
        let name = id_or_name.trim_start_matches('@');
        self.users
            .iter()
            .find(|u| u.id == id_or_name || u.username.eq_ignore_ascii_case(name))
            .map(|u| u.id.clone())
    }

    pub(crate) fn store_post(&mut self, new: NewPost) -> SimPost {
        let id = self.next_id();
        let post = SimPost {
            id: id.to_string(),
            author_id: new.author_id,
            text: new.text,
            reply_to: new.reply_to,
            quote_of: new.quote_of,
            media_ids: new.media_ids,
            poll_options: new.poll_options,
            created_at: rfc3339(SystemTime::now()),
        };
        self.posts.insert(
            id,
            StoredPost {
                post: post.clone(),
                created: Instant::now(),
            },
        );
        post
    }

    pub(crate) fn post(&self, id: &str) -> Option<&StoredPost> {
        id.parse::<u64>().ok().and_then(|n| self.posts.get(&n))
    }

    fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::RateLimitExhausted { endpoint, reset_in } => {
                self.limits.exhaust(endpoint, SystemTime::now() + reset_in)
            }
            Fault::MediaProcessingFailure { times } => self.media_failures += times,
            other => self.faults.push(other),
        }
    }

    /// Consume the faults that match this request: the summed delay, then at
    /// most one terminal action (status or drop).
    pub(crate) fn take_faults(&mut self, method: &str, path: &str) -> FaultPlan {
        let mut plan = FaultPlan::default();
        for fault in &mut self.faults {
            let (prefix, times) = match fault {
                Fault::Status {
                    path_prefix, times, ..
                }
                | Fault::Delay {
                    path_prefix, times, ..
                }
                | Fault::Drop { path_prefix, times } => (path_prefix.as_str(), times),
                _ => continue,
            };
            if *times == 0 || !fault_matches(prefix, method, path) {
                continue;
            }
            match fault {
                Fault::Delay { delay, times, .. } => {
                    *times -= 1;
                    plan.delay += *delay;
                }
                Fault::Status { status, times, .. } if plan.terminal.is_none() => {
                    *times -= 1;
                    plan.terminal = Some(Terminal::Status(*status));
                }
                Fault::Drop { times, .. } if plan.terminal.is_none() => {
                    *times -= 1;
                    plan.terminal = Some(Terminal::Drop);
                }
                _ => {}
            }
        }
        self.faults.retain(|f| match f {
            Fault::Status { times, .. }
            | Fault::Delay { times, .. }
            | Fault::Drop { times, .. } => *times > 0,
            _ => false,
        });
        plan
    }

    /// Drop expired one-time artefacts so a long-running demo stays small.
    pub(crate) fn prune(&mut self) {
        let now = Instant::now();
        self.oauth2.prune(now);
        self.oauth1.prune(now, self.config.oauth1_timestamp_window);
        let expires_after = self.config.media.expires_after;
        self.uploads
            .retain(|_, upload| now.duration_since(upload.created) < expires_after);
        const KEEP_REQUESTS: usize = 50_000;
        if self.requests.len() > KEEP_REQUESTS {
            let excess = self.requests.len() - KEEP_REQUESTS;
            self.requests.drain(..excess);
        }
    }
}

fn fault_matches(pattern: &str, method: &str, path: &str) -> bool {
    match pattern.split_once(' ') {
        Some((m, prefix)) => m.eq_ignore_ascii_case(method) && path.starts_with(prefix.trim()),
        None => path.starts_with(pattern),
    }
}

#[derive(Default, Debug)]
pub(crate) struct FaultPlan {
    pub delay: Duration,
    pub terminal: Option<Terminal>,
}

#[derive(Debug)]
pub(crate) enum Terminal {
    Status(u16),
    Drop,
}

/// Seconds since the Unix epoch.
pub(crate) fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2024-05-01T12:00:00.000Z`, the way X renders `created_at`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
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

/// A random URL-safe token of `bytes` random bytes.
pub(crate) fn random_token(bytes: usize) -> String {
    use base64::Engine as _;
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_created_at_like_x() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn fault_patterns_match_method_and_prefix() {
        assert!(fault_matches("/2/tweets", "POST", "/2/tweets"));
        assert!(fault_matches("/2/tweets", "GET", "/2/tweets/search/recent"));
        assert!(fault_matches("POST /2/tweets", "post", "/2/tweets"));
        assert!(!fault_matches(
            "POST /2/tweets",
            "GET",
            "/2/tweets/search/recent"
        ));
        assert!(!fault_matches("/2/media", "POST", "/2/tweets"));
    }
}
