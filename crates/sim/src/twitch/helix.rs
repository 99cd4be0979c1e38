//! The Helix API (`api.twitch.tv/helix`), under `/helix`.
//!
//! Every call goes through [`run`]: `Authorization: Bearer <token>` must name
//! a live token, `Client-Id` must be the client the token was issued to, and
//! one point is taken from the token's bucket (client + user; refilled
//! continuously at `helix_points_per_minute`). Every answer carries
//! `Ratelimit-Limit`, `Ratelimit-Remaining` and `Ratelimit-Reset` (epoch
//! seconds when the bucket is full again); an empty bucket answers 429.
//! Then the endpoint checks its scope (401 `Missing scope: …`) and its
//! parameters (400 naming the parameter) and answers `{"data": [...]}`.

use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use super::auth::{self, TokenInfo};
use super::{
    ClipState, Sim, SimBan, SimClip, SimShoutout, State, UserState, eventsub, irc, random_token,
    rfc3339,
};

/// A Helix error: `{"error": "<reason phrase>", "status": N, "message": "..."}`.
#[derive(Debug)]
pub(crate) struct HelixError {
    status: StatusCode,
    message: String,
}

impl HelixError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> HelixError {
        HelixError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for HelixError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "message": self.message,
        });
        (self.status, axum::Json(body)).into_response()
    }
}

fn bad_request(message: impl Into<String>) -> HelixError {
    HelixError::new(StatusCode::BAD_REQUEST, message)
}

fn unauthorized(message: impl Into<String>) -> HelixError {
    HelixError::new(StatusCode::UNAUTHORIZED, message)
}

/// A points bucket.
pub(crate) struct Bucket {
    points: f64,
    last: Instant,
}

/// What an endpoint gets.
pub(crate) struct Call {
    token: TokenInfo,
    query: Vec<(String, String)>,
    body: Bytes,
}

impl Call {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
            .collect()
    }

    fn required(&self, name: &str) -> Result<&str, HelixError> {
        self.param(name)
            .ok_or_else(|| bad_request(format!("Missing required parameter \"{name}\"")))
    }

    fn require_scope(&self, scope: &str) -> Result<(), HelixError> {
        if self.token.has_scope(scope) {
            Ok(())
        } else {
            Err(unauthorized(format!("Missing scope: {scope}")))
        }
    }

    /// The token's user id (a user access token is required).
    fn user_id(&self) -> Result<&str, HelixError> {
        self.token
            .user_id
            .as_deref()
            .ok_or_else(|| unauthorized("This endpoint requires a user access token"))
    }

    fn json(&self) -> Result<Value, HelixError> {
        if self.body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&self.body)
            .map_err(|_| bad_request("The request body is not valid JSON"))
    }

    fn first(&self, default: usize) -> Result<usize, HelixError> {
        match self.param("first") {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
                _ => Err(bad_request(
                    "The value in \"first\" must be between 1 and 100",
                )),
            },
        }
    }

    fn offset(&self) -> Result<usize, HelixError> {
        match self.param("after") {
            None => Ok(0),
            Some(cursor) => decode_cursor(cursor).ok_or_else(|| bad_request("Invalid cursor")),
        }
    }
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"o": offset}).to_string())
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let value: Value = serde_json::from_slice(&raw).ok()?;
    value.get("o")?.as_u64().map(|o| o as usize)
}

type Endpoint = fn(&mut State, &Call) -> Result<Response, HelixError>;

macro_rules! endpoint {
    ($f:expr) => {
        |AxumState(sim): AxumState<Sim>, headers: HeaderMap, uri: Uri, body: Bytes| {
            run(sim, headers, uri, body, $f)
        }
    };
}

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route("/helix/users", get(endpoint!(users)))
        .route("/helix/games", get(endpoint!(games)))
        .route(
            "/helix/search/categories",
            get(endpoint!(search_categories)),
        )
        .route(
            "/helix/channels",
            get(endpoint!(get_channels)).patch(endpoint!(modify_channel)),
        )
        .route("/helix/streams", get(endpoint!(streams)))
        .route("/helix/chat/messages", post(endpoint!(send_chat_message)))
        .route("/helix/chat/shoutouts", post(endpoint!(shoutout)))
        .route(
            "/helix/clips",
            post(endpoint!(create_clip)).get(endpoint!(get_clips)),
        )
        .route("/helix/moderation/bans", post(endpoint!(ban)))
        .route("/helix/channels/followers", get(endpoint!(followers)))
        .route("/helix/subscriptions", get(endpoint!(subscriptions)))
        .route(
            "/helix/eventsub/subscriptions",
            post(endpoint!(create_eventsub))
                .get(endpoint!(list_eventsub))
                .delete(endpoint!(delete_eventsub)),
        )
}

/// Authentication, the points bucket, then the endpoint.
async fn run(sim: Sim, headers: HeaderMap, uri: Uri, body: Bytes, endpoint: Endpoint) -> Response {
    let mut state = sim.lock();
    let Some(token) = auth::presented_token(&headers, &["Bearer"]) else {
        return unauthorized("OAuth token is missing").into_response();
    };
    let client_id = headers
        .get("client-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(info) = state.auth.lookup(&token, &state.users) else {
        return unauthorized("Invalid OAuth token").into_response();
    };
    match client_id {
        None => return unauthorized("Client-Id header required").into_response(),
        Some(id) if id != info.client_id => {
            return unauthorized("Client ID and OAuth token do not match").into_response();
        }
        Some(_) => {}
    }
    let limit = state.config.helix_points_per_minute.max(1);
    let key = (
        info.client_id.clone(),
        info.user_id.clone().unwrap_or_default(),
    );
    let now = Instant::now();
    let rate = f64::from(limit) / 60.0;
    let bucket = state.buckets.entry(key).or_insert(Bucket {
        points: f64::from(limit),
        last: now,
    });
    bucket.points = (bucket.points + now.duration_since(bucket.last).as_secs_f64() * rate)
        .min(f64::from(limit));
    bucket.last = now;
    let allowed = bucket.points >= 1.0;
    if allowed {
        bucket.points -= 1.0;
    }
    let remaining = bucket.points.floor() as u64;
    let until_full = (f64::from(limit) - bucket.points) / rate;
    let reset = SystemTime::now() + Duration::from_secs_f64(until_full.max(0.0));
    let reset = reset
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .unwrap_or(0);
    let mut response = if allowed {
        let call = Call {
            token: info,
            query: uri
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
            body,
        };
        match endpoint(&mut state, &call) {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    } else {
        HelixError::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response()
    };
    let h = response.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(limit));
    h.insert("ratelimit-remaining", HeaderValue::from(remaining));
    h.insert("ratelimit-reset", HeaderValue::from(reset));
    response
}

fn ok(body: Value) -> Result<Response, HelixError> {
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

fn no_content() -> Result<Response, HelixError> {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn user_for(state: &State, id: &str, field: &str) -> Result<UserState, HelixError> {
    state
        .user(id)
        .cloned()
        .ok_or_else(|| bad_request(format!("The ID in {field} is not valid")))
}

fn profile_image(login: &str) -> String {
    format!("https://static-cdn.jtvnw.net/jtv_user_pictures/{login}-profile_image-300x300.png")
}

fn box_art(id: &str) -> String {
    format!("https://static-cdn.jtvnw.net/ttv-boxart/{id}-{{width}}x{{height}}.jpg")
}

// ----- users, games, channels -----

fn users(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let ids = call.params("id");
    let logins = call.params("login");
    if ids.len() + logins.len() > 100 {
        return Err(bad_request(
            "The request may specify at most 100 IDs and logins",
        ));
    }
    let wanted: Vec<&UserState> = if ids.is_empty() && logins.is_empty() {
        let id = call
            .token
            .user_id
            .as_deref()
            .ok_or_else(|| bad_request("Must provide an ID, Login or OAuth Token"))?;
        state.user(id).into_iter().collect()
    } else {
        state
            .users
            .iter()
            .filter(|u| {
                ids.contains(&u.id.as_str())
                    || logins.iter().any(|l| l.eq_ignore_ascii_case(&u.login))
            })
            .collect()
    };
    let data: Vec<Value> = wanted
        .iter()
        .map(|u| {
            let mut user = json!({
                "id": u.id,
                "login": u.login,
                "display_name": u.display_name,
                "type": "",
                "broadcaster_type": u.broadcaster_type,
                "description": format!("{} on the switchboard Twitch simulator.", u.display_name),
                "profile_image_url": profile_image(&u.login),
                "offline_image_url": "",
                "view_count": 0,
                "created_at": rfc3339(u.created_at, 0),
            });
            if call.token.user_id.as_deref() == Some(u.id.as_str())
                && call.token.has_scope("user:read:email")
            {
                user["email"] = json!(format!("{}@example.invalid", u.login));
            }
            user
        })
        .collect();
    ok(json!({"data": data}))
}

fn game_json(g: &super::TwitchGame) -> Value {
    json!({"id": g.id, "name": g.name, "box_art_url": box_art(&g.id), "igdb_id": g.igdb_id})
}

fn games(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let ids = call.params("id");
    let names = call.params("name");
    let igdb = call.params("igdb_id");
    if ids.is_empty() && names.is_empty() && igdb.is_empty() {
        return Err(bad_request(
            "The request must specify the id or name or igdb_id query parameter",
        ));
    }
    let data: Vec<Value> = state
        .config
        .games
        .iter()
        .filter(|g| {
            ids.contains(&g.id.as_str())
                || names.iter().any(|n| n.eq_ignore_ascii_case(&g.name))
                || (!g.igdb_id.is_empty() && igdb.contains(&g.igdb_id.as_str()))
        })
        .map(game_json)
        .collect();
    ok(json!({"data": data}))
}

fn search_categories(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let query = call.required("query")?.to_lowercase();
    let first = call.first(20)?;
    let data: Vec<Value> = state
        .config
        .games
        .iter()
        .filter(|g| g.name.to_lowercase().contains(&query))
        .take(first)
        .map(|g| json!({"id": g.id, "name": g.name, "box_art_url": box_art(&g.id)}))
        .collect();
    ok(json!({"data": data, "pagination": {}}))
}

fn channel_json(state: &State, id: &str) -> Value {
    let user = state.user(id);
    let channel = state.sim_channel(id);
    json!({
        "broadcaster_id": id,
        "broadcaster_login": channel.login,
        "broadcaster_name": user.map(|u| u.display_name.clone()).unwrap_or_default(),
        "broadcaster_language": channel.language,
        "game_id": channel.game_id,
        "game_name": channel.game_name,
        "title": channel.title,
        "delay": 0,
        "tags": channel.tags,
        "content_classification_labels": [],
        "is_branded_content": false,
    })
}

fn get_channels(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let ids = call.params("broadcaster_id");
    if ids.is_empty() {
        return Err(bad_request("Missing required parameter \"broadcaster_id\""));
    }
    let data: Vec<Value> = ids
        .iter()
        .filter(|id| state.user(id).is_some())
        .map(|id| channel_json(state, id))
        .collect();
    ok(json!({"data": data}))
}

fn modify_channel(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let broadcaster_id = call.required("broadcaster_id")?.to_owned();
    call.require_scope("channel:manage:broadcast")?;
    if call.user_id()? != broadcaster_id {
        return Err(unauthorized(
            "The ID in broadcaster_id must match the user ID found in the request's OAuth token.",
        ));
    }
    let body = call.json()?;
    let Some(fields) = body.as_object() else {
        return Err(bad_request("The request body must be a JSON object"));
    };
    let known = [
        "game_id",
        "title",
        "broadcaster_language",
        "tags",
        "delay",
        "content_classification_labels",
        "is_branded_content",
    ];
    if !fields.keys().any(|k| known.contains(&k.as_str())) {
        return Err(bad_request("The request must update at least one field"));
    }
    let title = match fields.get("title") {
        None => None,
        Some(Value::String(t)) if t.trim().is_empty() => {
            return Err(bad_request("The title field may not be empty"));
        }
        Some(Value::String(t)) if t.chars().count() > 140 => {
            return Err(bad_request("The title field may not exceed 140 characters"));
        }
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(bad_request("The title field must be a string")),
    };
    let game_id = match fields.get("game_id") {
        None => None,
        Some(Value::String(g)) if g.is_empty() || g == "0" => Some(String::new()),
        Some(Value::String(g)) if state.config.games.iter().any(|x| &x.id == g) => Some(g.clone()),
        Some(Value::String(g)) => return Err(bad_request(format!("The game_id {g} is not valid"))),
        Some(_) => return Err(bad_request("The game_id field must be a string")),
    };
    let tags = match fields.get("tags") {
        None => None,
        Some(Value::Array(items)) => {
            if items.len() > 10 {
                return Err(bad_request(
                    "The tags field may contain a maximum of 10 tags",
                ));
            }
            let mut tags = Vec::new();
            for item in items {
                let Some(tag) = item.as_str() else {
                    return Err(bad_request("The tags field must be an array of strings"));
                };
                if tag.is_empty() || tag.chars().count() > 25 {
                    return Err(bad_request(format!(
                        "The tag \"{tag}\" must be 1 to 25 characters long"
                    )));
                }
                if !tag.chars().all(char::is_alphanumeric) {
                    return Err(bad_request(format!(
                        "The tag \"{tag}\" may contain only letters and numbers"
                    )));
                }
                tags.push(tag.to_owned());
            }
            Some(tags)
        }
        Some(_) => return Err(bad_request("The tags field must be an array of strings")),
    };
    let language = match fields.get("broadcaster_language") {
        None => None,
        Some(Value::String(l)) => Some(l.clone()),
        Some(_) => {
            return Err(bad_request(
                "The broadcaster_language field must be a string",
            ));
        }
    };
    let channel = state
        .channels
        .get_mut(&broadcaster_id)
        .ok_or_else(|| bad_request("The ID in broadcaster_id is not valid"))?;
    if let Some(title) = title {
        channel.title = title;
    }
    if let Some(game_id) = game_id {
        channel.game_id = game_id;
    }
    if let Some(tags) = tags {
        channel.tags = tags;
    }
    if let Some(language) = language {
        channel.language = language;
    }
    eventsub::channel_update(state, &broadcaster_id);
    no_content()
}

fn streams(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let ids = call.params("user_id");
    let logins = call.params("user_login");
    let first = call.first(20)?;
    let data: Vec<Value> = state
        .users
        .iter()
        .filter(|u| {
            (ids.is_empty() && logins.is_empty())
                || ids.contains(&u.id.as_str())
                || logins.iter().any(|l| l.eq_ignore_ascii_case(&u.login))
        })
        .filter_map(|u| state.channels.get(&u.id).map(|c| (u, c)))
        .filter(|(_, c)| !c.title.is_empty())
        .take(first)
        .map(|(u, c)| {
            json!({
                "id": c.stream_id,
                "user_id": u.id,
                "user_login": u.login,
                "user_name": u.display_name,
                "game_id": c.game_id,
                "game_name": state.game_name(&c.game_id),
                "type": "live",
                "title": c.title,
                "tags": c.tags,
                "viewer_count": c.viewer_count,
                "started_at": rfc3339(c.live_since, 0),
                "language": c.language,
                "thumbnail_url": format!("https://static-cdn.jtvnw.net/previews-ttv/live_user_{}-{{width}}x{{height}}.jpg", u.login),
                "tag_ids": [],
                "is_mature": false,
            })
        })
        .collect();
    ok(json!({"data": data, "pagination": {}}))
}

// ----- chat -----

pub(crate) fn active_ban<'a>(
    state: &'a State,
    broadcaster_id: &str,
    user_id: &str,
) -> Option<&'a SimBan> {
    state.bans.iter().rev().find(|b| {
        b.broadcaster_id == broadcaster_id
            && b.user_id == user_id
            && match b.duration {
                None => true,
                Some(secs) => {
                    b.at.elapsed().unwrap_or_default() < Duration::from_secs(u64::from(secs))
                }
            }
    })
}

fn send_chat_message(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    call.require_scope("user:write:chat")?;
    let body = call.json()?;
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .or_else(|| call.param(name))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let broadcaster_id = field("broadcaster_id")
        .ok_or_else(|| bad_request("Missing required parameter \"broadcaster_id\""))?;
    let sender_id = field("sender_id")
        .ok_or_else(|| bad_request("Missing required parameter \"sender_id\""))?;
    let message =
        field("message").ok_or_else(|| bad_request("Missing required parameter \"message\""))?;
    if message.chars().count() > 500 {
        return Err(bad_request("The message may not exceed 500 characters"));
    }
    if call.user_id()? != sender_id {
        return Err(unauthorized(
            "The sender_id in the body must match the user ID found in the request's OAuth token.",
        ));
    }
    let channel = user_for(state, &broadcaster_id, "broadcaster_id")?;
    let sender = user_for(state, &sender_id, "sender_id")?;
    let reply_to = field("reply_parent_message_id");
    if let Some(parent) = &reply_to
        && !irc::known_message(state, parent)
    {
        return Err(bad_request(
            "The reply_parent_message_id is not a known message",
        ));
    }
    if let Some(ban) = active_ban(state, &channel.id, &sender.id) {
        let (code, text) = match ban.duration {
            None => (
                "msg_banned",
                format!(
                    "You are permanently banned from talking in {}.",
                    channel.login
                ),
            ),
            Some(_) => ("msg_timedout", "You are timed out.".to_owned()),
        };
        return ok(
            json!({"data": [{"message_id": "", "is_sent": false, "drop_reason": {"code": code, "message": text}}]}),
        );
    }
    match irc::client_message(
        state,
        &sender,
        &channel,
        &message,
        reply_to.as_deref(),
        irc::Origin::Helix,
    ) {
        Ok(id) => ok(json!({"data": [{"message_id": id, "is_sent": true, "drop_reason": null}]})),
        Err(irc::Refused::RateLimited) => ok(json!({"data": [{
            "message_id": "",
            "is_sent": false,
            "drop_reason": {
                "code": "msg_ratelimit",
                "message": "Your message was not sent because you are sending messages too quickly.",
            },
        }]})),
    }
}

fn require_moderator(
    state: &State,
    call: &Call,
    broadcaster: &UserState,
) -> Result<String, HelixError> {
    let moderator_id = call.required("moderator_id")?.to_owned();
    if call.user_id()? != moderator_id {
        return Err(unauthorized(
            "The ID in moderator_id must match the user ID found in the request's OAuth token.",
        ));
    }
    if !state.is_moderator(&broadcaster.login, &moderator_id) {
        return Err(HelixError::new(
            StatusCode::FORBIDDEN,
            "The user in moderator_id is not one of the broadcaster's moderators.",
        ));
    }
    Ok(moderator_id)
}

fn shoutout(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let from_id = call.required("from_broadcaster_id")?.to_owned();
    let to_id = call.required("to_broadcaster_id")?.to_owned();
    call.required("moderator_id")?;
    call.require_scope("moderator:manage:shoutouts")?;
    let from = user_for(state, &from_id, "from_broadcaster_id")?;
    let to = user_for(state, &to_id, "to_broadcaster_id")?;
    let moderator_id = require_moderator(state, call, &from)?;
    if from.id == to.id {
        return Err(bad_request(
            "The broadcaster may not give themselves a Shoutout.",
        ));
    }
    let cooldown = state.config.shoutout_cooldown;
    let target_cooldown = state.config.shoutout_target_cooldown;
    let since = |at: SystemTime| at.elapsed().unwrap_or_default();
    if state
        .shoutouts
        .iter()
        .any(|s| s.from_broadcaster_id == from.id && since(s.at) < cooldown)
    {
        return Err(HelixError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "The broadcaster may not send a Shoutout more than once every 2 minutes.",
        ));
    }
    if state.shoutouts.iter().any(|s| {
        s.from_broadcaster_id == from.id
            && s.to_broadcaster_id == to.id
            && since(s.at) < target_cooldown
    }) {
        return Err(HelixError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "The broadcaster may not send the same broadcaster a Shoutout more than once every 60 minutes.",
        ));
    }
    state.shoutouts.push(SimShoutout {
        from_broadcaster_id: from.id,
        to_broadcaster_id: to.id,
        moderator_id,
        at: SystemTime::now(),
    });
    no_content()
}

// ----- clips -----

/// Clip slugs look like `AwkwardHelplessSalamanderSwiftRage-x1y2z3`.
fn clip_slug() -> String {
    const ADJECTIVES: &[&str] = &[
        "Awkward", "Brave", "Clever", "Dizzy", "Eager", "Fancy", "Gentle", "Happy",
    ];
    const ANIMALS: &[&str] = &[
        "Salamander",
        "Otter",
        "Penguin",
        "Falcon",
        "Badger",
        "Lynx",
        "Koala",
        "Walrus",
    ];
    const EMOTES: &[&str] = &[
        "SwiftRage",
        "Kappa",
        "PogChamp",
        "BibleThump",
        "Kreygasm",
        "LUL",
    ];
    let pick = |list: &[&'static str]| list[rand::random::<u8>() as usize % list.len()];
    format!(
        "{}{}{}{}-{}",
        pick(ADJECTIVES),
        pick(ADJECTIVES),
        pick(ANIMALS),
        pick(EMOTES),
        random_token(16)
    )
}

fn create_clip(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let broadcaster_id = call.required("broadcaster_id")?.to_owned();
    call.require_scope("clips:edit")?;
    let creator_id = call.user_id()?.to_owned();
    let broadcaster = user_for(state, &broadcaster_id, "broadcaster_id")?;
    let channel = state.sim_channel(&broadcaster.id);
    let id = clip_slug();
    state.clips.push(ClipState {
        clip: SimClip {
            id: id.clone(),
            broadcaster_id: broadcaster.id,
            creator_id,
            created_at: SystemTime::now(),
            ready: false,
        },
        created: Instant::now(),
        title: channel.title,
        game_id: channel.game_id,
    });
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(
            json!({"data": [{"id": id, "edit_url": format!("https://clips.twitch.tv/{id}/edit")}]}),
        ),
    )
        .into_response())
}

fn get_clips(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let ids = call.params("id");
    let broadcaster = call.param("broadcaster_id");
    let game = call.param("game_id");
    if ids.is_empty() && broadcaster.is_none() && game.is_none() {
        return Err(bad_request(
            "The request must specify one of broadcaster_id, game_id or id",
        ));
    }
    let ready_after = state.config.clip_ready_after;
    let first = call.first(20)?;
    let data: Vec<Value> = state
        .clips
        .iter()
        .filter(|c| c.created.elapsed() >= ready_after)
        .filter(|c| {
            ids.contains(&c.clip.id.as_str())
                || broadcaster == Some(c.clip.broadcaster_id.as_str())
                || game == Some(c.game_id.as_str())
        })
        .take(first)
        .map(|c| {
            let id = &c.clip.id;
            let name = |uid: &str| state.user(uid).map(|u| u.display_name.clone()).unwrap_or_default();
            json!({
                "id": id,
                "url": format!("https://clips.twitch.tv/{id}"),
                "embed_url": format!("https://clips.twitch.tv/embed?clip={id}"),
                "broadcaster_id": c.clip.broadcaster_id,
                "broadcaster_name": name(&c.clip.broadcaster_id),
                "creator_id": c.clip.creator_id,
                "creator_name": name(&c.clip.creator_id),
                "video_id": "",
                "game_id": c.game_id,
                "language": "en",
                "title": c.title,
                "view_count": 0,
                "created_at": rfc3339(c.clip.created_at, 0),
                "thumbnail_url": format!("https://clips-media-assets2.twitch.tv/{id}-preview-480x272.jpg"),
                "duration": 30.0,
                "vod_offset": null,
                "is_featured": false,
            })
        })
        .collect();
    ok(json!({"data": data, "pagination": {}}))
}

// ----- moderation -----

fn ban(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let broadcaster_id = call.required("broadcaster_id")?.to_owned();
    call.required("moderator_id")?;
    call.require_scope("moderator:manage:banned_users")?;
    let broadcaster = user_for(state, &broadcaster_id, "broadcaster_id")?;
    let moderator_id = require_moderator(state, call, &broadcaster)?;
    let body = call.json()?;
    let data = body
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| bad_request("Missing required parameter \"data\""))?;
    let user_id = data
        .get("user_id")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_request("Missing required parameter \"data.user_id\""))?;
    let user = user_for(state, user_id, "user_id")?;
    let duration = match data.get("duration") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let secs = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| bad_request("The duration field must be a number"))?;
            if !(1..=1_209_600).contains(&secs) {
                return Err(bad_request(
                    "The value in the duration field is not valid (1 to 1209600 seconds)",
                ));
            }
            Some(secs as u32)
        }
    };
    if user.id == broadcaster.id || state.is_moderator(&broadcaster.login, &user.id) {
        return Err(bad_request(
            "The user specified in the user_id field may not be banned.",
        ));
    }
    if active_ban(state, &broadcaster.id, &user.id).is_some_and(|b| b.duration.is_none()) {
        return Err(bad_request(
            "The user specified in the user_id field is already banned.",
        ));
    }
    let reason = data
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let at = SystemTime::now();
    state.bans.push(SimBan {
        broadcaster_id: broadcaster.id.clone(),
        moderator_id: moderator_id.clone(),
        user_id: user.id.clone(),
        duration,
        reason,
        at,
    });
    irc::clearchat(state, &broadcaster, &user, duration);
    let end_time = duration.map(|d| rfc3339(at + Duration::from_secs(u64::from(d)), 0));
    ok(json!({"data": [{
        "broadcaster_id": broadcaster.id,
        "moderator_id": moderator_id,
        "user_id": user.id,
        "created_at": rfc3339(at, 0),
        "end_time": end_time,
    }]}))
}

// ----- followers and subscriptions -----

fn page(total: usize, offset: usize, first: usize) -> Value {
    if offset + first < total {
        json!({"cursor": encode_cursor(offset + first)})
    } else {
        json!({})
    }
}

fn followers(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let broadcaster_id = call.required("broadcaster_id")?.to_owned();
    let broadcaster = user_for(state, &broadcaster_id, "broadcaster_id")?;
    let first = call.first(20)?;
    let offset = call.offset()?;
    let all: Vec<&super::FollowState> = state
        .followers
        .get(&broadcaster.id)
        .map(|f| f.iter().rev().collect())
        .unwrap_or_default();
    let total = all.len();
    // Without the scope, or as a non-moderator, Twitch answers the total only.
    let may_list = call.token.has_scope("moderator:read:followers")
        && call
            .token
            .user_id
            .as_deref()
            .is_some_and(|id| state.is_moderator(&broadcaster.login, id));
    if !may_list {
        return ok(json!({"total": total, "data": [], "pagination": {}}));
    }
    let filtered: Vec<&&super::FollowState> = match call.param("user_id") {
        Some(user_id) => all.iter().filter(|f| f.user_id == user_id).collect(),
        None => all.iter().collect(),
    };
    let data: Vec<Value> = filtered
        .iter()
        .skip(offset)
        .take(first)
        .filter_map(|f| {
            let user = state.user(&f.user_id)?;
            Some(json!({
                "user_id": user.id,
                "user_login": user.login,
                "user_name": user.display_name,
                "followed_at": rfc3339(f.at, 0),
            }))
        })
        .collect();
    ok(json!({"total": total, "data": data, "pagination": page(filtered.len(), offset, first)}))
}

fn subscriptions(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let broadcaster_id = call.required("broadcaster_id")?.to_owned();
    call.require_scope("channel:read:subscriptions")?;
    if call.user_id()? != broadcaster_id {
        return Err(unauthorized(
            "The ID in broadcaster_id must match the user ID found in the request's OAuth token.",
        ));
    }
    let broadcaster = user_for(state, &broadcaster_id, "broadcaster_id")?;
    let first = call.first(20)?;
    let offset = call.offset()?;
    let user_ids = call.params("user_id");
    let subs: Vec<super::SubState> = state
        .subscriptions
        .get(&broadcaster.id)
        .cloned()
        .unwrap_or_default();
    let points: u32 = subs
        .iter()
        .map(|s| match s.tier.as_str() {
            "2000" => 2,
            "3000" => 6,
            _ => 1,
        })
        .sum();
    let total = subs.len();
    let filtered: Vec<&super::SubState> = subs
        .iter()
        .filter(|s| user_ids.is_empty() || user_ids.contains(&s.user_id.as_str()))
        .collect();
    let data: Vec<Value> = filtered
        .iter()
        .skip(offset)
        .take(first)
        .filter_map(|s| {
            let user = state.user(&s.user_id)?;
            let gifter = s.gifter_id.as_deref().and_then(|g| state.user(g));
            Some(json!({
                "broadcaster_id": broadcaster.id,
                "broadcaster_login": broadcaster.login,
                "broadcaster_name": broadcaster.display_name,
                "gifter_id": gifter.map(|g| g.id.clone()).unwrap_or_default(),
                "gifter_login": gifter.map(|g| g.login.clone()).unwrap_or_default(),
                "gifter_name": gifter.map(|g| g.display_name.clone()).unwrap_or_default(),
                "is_gift": gifter.is_some(),
                "plan_name": format!("Channel Subscription ({})", broadcaster.login),
                "tier": s.tier,
                "user_id": user.id,
                "user_name": user.display_name,
                "user_login": user.login,
            }))
        })
        .collect();
    ok(json!({
        "data": data,
        "pagination": page(filtered.len(), offset, first),
        "points": points,
        "total": total,
    }))
}

// ----- eventsub/subscriptions -----

fn create_eventsub(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    let body = call.json()?;
    let created = eventsub::create_subscription(state, &call.token, &body)?;
    Ok((StatusCode::ACCEPTED, axum::Json(created)).into_response())
}

fn list_eventsub(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    ok(eventsub::list_subscriptions(
        state,
        &call.token,
        &call.query,
    )?)
}

fn delete_eventsub(state: &mut State, call: &Call) -> Result<Response, HelixError> {
    eventsub::delete_subscription(state, &call.token, call.param("id"))?;
    no_content()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(40)), Some(40));
        assert_eq!(decode_cursor("not a cursor"), None);
    }
}
