//! Posts and users: create, reply, quote, delete, look up, recent search,
//! `users/me`, a user's mentions and a user's own posts.
//!
//! Every handler goes through [`call`], which does what X does before any
//! endpoint logic: authenticate (401), count the request against the user's
//! budget for the endpoint (429, headers on every answer), check OAuth 2.0
//! scopes (403) and validate the request against the OpenAPI document (400).
//!
//! `POST /2/tweets` enforces: media, poll, quote and card are mutually
//! exclusive; text is required unless media is attached; the weighted length
//! is at most 280 ([`super::text`]); reply and quote targets exist; attached
//! media is ready and owned ([`super::media::check_attachable`]); and the same
//! text by the same author inside the duplicate window is refused with X's
//! `403 "You are not allowed to create a Tweet with duplicate content."`.

use std::collections::HashSet;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{self, Caller};
use super::error::{ApiError, not_found_problem};
use super::limits::Endpoint;
use super::server::Incoming;
use super::spec::{self, RequestView};
use super::{NewPost, Sim, SimPost, SimUser, State as SimState, media, text};

const WRITE_SCOPES: &[&str] = &["tweet.read", "tweet.write", "users.read"];
const READ_SCOPES: &[&str] = &["tweet.read", "users.read"];

/// Authenticate, rate-limit, check scopes and the spec, then run `handle`
/// under the state lock. Rate-limit headers ride on every answer past
/// authentication.
pub(crate) fn call<F>(
    sim: &Sim,
    req: &Incoming,
    endpoint: Endpoint,
    scopes: &[&str],
    handle: F,
) -> Response
where
    F: FnOnce(&mut SimState, &Caller) -> Result<(StatusCode, Value), ApiError>,
{
    let mut state = sim.lock();
    let caller = match auth::authenticate(&mut state, req, sim.base_url()) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let budget = state.config.rate_limits.get(endpoint);
    let headers = match state
        .limits
        .take(endpoint, &caller.user_id, budget, SystemTime::now())
    {
        Ok(quota) => quota.headers(),
        Err(quota) => {
            return ApiError::too_many_requests()
                .with_headers(quota.headers())
                .into_response();
        }
    };
    if !caller.has_scopes(scopes) {
        let detail = format!(
            "Forbidden: this endpoint needs the OAuth 2.0 scopes [{}].",
            scopes.join(" ")
        );
        return ApiError::forbidden(&detail)
            .with_headers(headers)
            .into_response();
    }
    let query = auth::form_pairs(req.uri.query().unwrap_or("").as_bytes());
    let view = RequestView {
        method: req.method.as_str(),
        path: req.uri.path(),
        query: &query,
        content_type: Some(req.content_type()),
        body: &req.body,
        body_truncated: false,
        authorization_scheme: None,
    };
    if let Err(problem) = spec::check(&view) {
        return ApiError::invalid_request(&[problem])
            .with_headers(headers)
            .into_response();
    }
    match handle(&mut state, &caller) {
        Ok((status, body)) => {
            let mut response = (status, Json(body)).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value);
            }
            response
        }
        Err(e) => e.with_headers(headers).into_response(),
    }
}

/// `POST /2/tweets`
pub(crate) async fn create_post(State(sim): State<Sim>, req: Incoming) -> Response {
    call(
        &sim,
        &req,
        Endpoint::CreatePost,
        WRITE_SCOPES,
        |state, caller| {
            let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
                ApiError::invalid_request(&[format!("Request body is not valid JSON: {e}")])
            })?;
            let text = body["text"].as_str().unwrap_or("").to_owned();
            let reply_to = body
                .pointer("/reply/in_reply_to_tweet_id")
                .and_then(Value::as_str);
            let quote_of = body["quote_tweet_id"].as_str();
            let media_ids: Vec<String> = body
                .pointer("/media/media_ids")
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let poll_options: Vec<String> = body
                .pointer("/poll/options")
                .and_then(Value::as_array)
                .map(|o| {
                    o.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();

            let attachments = [
                ("media", !media_ids.is_empty()),
                ("poll", body.get("poll").is_some()),
                ("quote_tweet_id", quote_of.is_some()),
                ("card_uri", body.get("card_uri").is_some()),
            ];
            let present: Vec<&str> = attachments
                .iter()
                .filter(|(_, on)| *on)
                .map(|(n, _)| *n)
                .collect();
            if present.len() > 1 {
                return Err(ApiError::invalid_request(&[format!(
                    "You can only attach one of media, poll, quote_tweet_id or card_uri; this request has {}.",
                    present.join(" and ")
                )]));
            }
            if text.trim().is_empty() && media_ids.is_empty() {
                return Err(ApiError::invalid_request(&[
                    "Post text is required unless media is attached.",
                ]));
            }
            let max = state.config.max_weighted_length;
            let length = text::weighted_length(&text);
            if length > max {
                return Err(ApiError::invalid_request(&[format!(
                    "Your Tweet text is too long. For more information on how Twitter determines text length see https://github.com/twitter/twitter-text. (weighted length {length}, limit {max})"
                )]));
            }
            if let Some(target) = reply_to
                && state.post(target).is_none()
            {
                return Err(ApiError::forbidden(
                    "You attempted to reply to a Tweet that is deleted or not visible to you.",
                ));
            }
            if let Some(target) = quote_of
                && state.post(target).is_none()
            {
                return Err(ApiError::forbidden(
                    "You attempted to quote a Tweet that is deleted or not visible to you.",
                ));
            }
            media::check_attachable(state, caller, &media_ids)?;
            let window = state.config.duplicate_window;
            let duplicate = !text.trim().is_empty()
                && state.posts.values().any(|p| {
                    p.post.author_id == caller.user_id
                        && p.post.text == text
                        && p.created.elapsed() < window
                });
            if duplicate {
                return Err(ApiError::forbidden(
                    "You are not allowed to create a Tweet with duplicate content.",
                ));
            }
            let post = state.store_post(NewPost {
                author_id: caller.user_id.clone(),
                text,
                reply_to: reply_to.map(str::to_owned),
                quote_of: quote_of.map(str::to_owned),
                media_ids,
                poll_options,
            });
            Ok((
                StatusCode::CREATED,
                json!({"data": {
                    "id": post.id,
                    "text": post.text,
                    "edit_history_tweet_ids": [post.id],
                    "edit_history_post_ids": [post.id],
                }}),
            ))
        },
    )
}

/// `DELETE /2/tweets/{id}`
pub(crate) async fn delete_post(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    req: Incoming,
) -> Response {
    call(
        &sim,
        &req,
        Endpoint::DeletePost,
        WRITE_SCOPES,
        |state, caller| {
            let author = state
                .post(&id)
                .map(|p| p.post.author_id.clone())
                .ok_or_else(|| ApiError::not_found("tweet", "id", &id))?;
            if author != caller.user_id {
                return Err(ApiError::forbidden(
                    "You are not allowed to delete a Tweet that is not yours.",
                ));
            }
            if let Ok(n) = id.parse::<u64>() {
                state.posts.remove(&n);
            }
            state.deleted.push(id);
            Ok((StatusCode::OK, json!({"data": {"deleted": true}})))
        },
    )
}

/// `GET /2/tweets/{id}`
pub(crate) async fn get_post(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    req: Incoming,
) -> Response {
    call(&sim, &req, Endpoint::GetPost, READ_SCOPES, |state, _| {
        let view = View::from_query(&req);
        match state.post(&id) {
            Some(p) => {
                let post = p.post.clone();
                let mut body = json!({"data": post_json(state, &post, &view)});
                add_includes(state, &mut body, std::slice::from_ref(&post), &view);
                Ok((StatusCode::OK, body))
            }
            None => Ok((
                StatusCode::OK,
                json!({"errors": [not_found_problem("tweet", "id", &id)]}),
            )),
        }
    })
}

/// `GET /2/tweets/search/recent`
pub(crate) async fn search_recent(State(sim): State<Sim>, req: Incoming) -> Response {
    call(
        &sim,
        &req,
        Endpoint::SearchRecent,
        READ_SCOPES,
        |state, _| {
            let view = View::from_query(&req);
            let query = Query::parse(view.param("query").unwrap_or(""), state);
            let matches: Vec<SimPost> = state
                .posts
                .values()
                .rev()
                .map(|p| &p.post)
                .filter(|p| query.matches(state, p))
                .cloned()
                .collect();
            list_response(state, matches, &view, 10)
        },
    )
}

/// `GET /2/users/me`
pub(crate) async fn users_me(State(sim): State<Sim>, req: Incoming) -> Response {
    call(
        &sim,
        &req,
        Endpoint::UsersMe,
        &["users.read", "tweet.read"],
        |state, caller| {
            let view = View::from_query(&req);
            let user = state
                .user(&caller.user_id)
                .ok_or_else(ApiError::unauthorized)?;
            Ok((
                StatusCode::OK,
                json!({"data": user_json(user, &view.user_fields)}),
            ))
        },
    )
}

/// `GET /2/users/{id}/mentions`: posts by others that mention `@username` or
/// reply to one of the user's posts, newest first.
pub(crate) async fn mentions(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    req: Incoming,
) -> Response {
    call(&sim, &req, Endpoint::Mentions, READ_SCOPES, |state, _| {
        let view = View::from_query(&req);
        let Some(user) = state.user(&id).cloned() else {
            return Ok((
                StatusCode::OK,
                json!({"errors": [not_found_problem("user", "id", &id)]}),
            ));
        };
        let handle = format!("@{}", user.username.to_ascii_lowercase());
        let matches: Vec<SimPost> = state
            .posts
            .values()
            .rev()
            .map(|p| &p.post)
            .filter(|p| p.author_id != user.id)
            .filter(|p| {
                mentions_handle(&p.text, &handle)
                    || p.reply_to
                        .as_deref()
                        .and_then(|r| state.post(r))
                        .is_some_and(|parent| parent.post.author_id == user.id)
            })
            .cloned()
            .collect();
        list_response(state, matches, &view, 10)
    })
}

/// `GET /2/users/{id}/tweets`: the user's own posts, newest first.
pub(crate) async fn user_posts(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    req: Incoming,
) -> Response {
    call(&sim, &req, Endpoint::UserPosts, READ_SCOPES, |state, _| {
        let view = View::from_query(&req);
        if state.user(&id).is_none() {
            return Ok((
                StatusCode::OK,
                json!({"errors": [not_found_problem("user", "id", &id)]}),
            ));
        }
        let exclude: HashSet<String> = view
            .param("exclude")
            .map(|e| e.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        let matches: Vec<SimPost> = state
            .posts
            .values()
            .rev()
            .map(|p| &p.post)
            .filter(|p| p.author_id == id)
            .filter(|p| !(exclude.contains("replies") && p.reply_to.is_some()))
            .cloned()
            .collect();
        list_response(state, matches, &view, 10)
    })
}

/// The query parameters that shape an answer.
struct View {
    query: Vec<(String, String)>,
    post_fields: HashSet<String>,
    user_fields: HashSet<String>,
    expansions: HashSet<String>,
}

impl View {
    fn from_query(req: &Incoming) -> View {
        let query = auth::form_pairs(req.uri.query().unwrap_or("").as_bytes());
        let list = |names: &[&str]| -> HashSet<String> {
            query
                .iter()
                .filter(|(k, _)| names.contains(&k.as_str()))
                .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
                .collect()
        };
        View {
            post_fields: list(&["tweet.fields", "post.fields"]),
            user_fields: list(&["user.fields"]),
            expansions: list(&["expansions"]),
            query,
        }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Page through `posts` (newest first) honouring `since_id`, `until_id`,
/// `max_results` and `pagination_token`/`next_token`.
fn list_response(
    state: &SimState,
    posts: Vec<SimPost>,
    view: &View,
    default_max: usize,
) -> Result<(StatusCode, Value), ApiError> {
    let id_param = |name: &str| view.param(name).and_then(|v| v.parse::<u64>().ok());
    let since = id_param("since_id");
    let until = id_param("until_id");
    let max = view
        .param("max_results")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(default_max);
    let token = view
        .param("pagination_token")
        .or_else(|| view.param("next_token"));
    let older_than = match token {
        Some(t) => Some(
            t.strip_prefix("sim_")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid_parameter(
                        "pagination_token",
                        t,
                        "The pagination token is invalid.",
                    )
                })?,
        ),
        None => None,
    };
    let id = |p: &SimPost| p.id.parse::<u64>().unwrap_or(0);
    let eligible: Vec<SimPost> = posts
        .into_iter()
        .filter(|p| since.is_none_or(|s| id(p) > s))
        .filter(|p| until.is_none_or(|u| id(p) < u))
        .filter(|p| older_than.is_none_or(|o| id(p) < o))
        .collect();
    let more = eligible.len() > max;
    let page: Vec<SimPost> = eligible.into_iter().take(max).collect();
    if page.is_empty() {
        return Ok((StatusCode::OK, json!({"meta": {"result_count": 0}})));
    }
    let data: Vec<Value> = page.iter().map(|p| post_json(state, p, view)).collect();
    let mut meta = json!({
        "result_count": page.len(),
        "newest_id": page[0].id,
        "oldest_id": page[page.len() - 1].id,
    });
    if more {
        meta["next_token"] = json!(format!("sim_{}", page[page.len() - 1].id));
    }
    let mut body = json!({"data": data, "meta": meta});
    add_includes(state, &mut body, &page, view);
    Ok((StatusCode::OK, body))
}

fn post_json(state: &SimState, post: &SimPost, view: &View) -> Value {
    let mut out = json!({
        "id": post.id,
        "text": post.text,
        "edit_history_tweet_ids": [post.id],
    });
    let wants = |f: &str| view.post_fields.contains(f);
    if wants("author_id") || view.expansions.contains("author_id") {
        out["author_id"] = json!(post.author_id);
    }
    if wants("created_at") {
        out["created_at"] = json!(post.created_at);
    }
    if wants("conversation_id") {
        out["conversation_id"] = json!(conversation_root(state, post));
    }
    if wants("in_reply_to_user_id")
        && let Some(parent) = post.reply_to.as_deref().and_then(|r| state.post(r))
    {
        out["in_reply_to_user_id"] = json!(parent.post.author_id);
    }
    if wants("referenced_tweets") {
        let mut refs = Vec::new();
        if let Some(r) = &post.reply_to {
            refs.push(json!({"type": "replied_to", "id": r}));
        }
        if let Some(q) = &post.quote_of {
            refs.push(json!({"type": "quoted", "id": q}));
        }
        if !refs.is_empty() {
            out["referenced_tweets"] = json!(refs);
        }
    }
    if wants("attachments") && !post.media_ids.is_empty() {
        let keys: Vec<String> = post
            .media_ids
            .iter()
            .map(|id| {
                state
                    .uploads
                    .get(id)
                    .map_or_else(|| format!("3_{id}"), |u| u.media_key.clone())
            })
            .collect();
        out["attachments"] = json!({"media_keys": keys});
    }
    if wants("public_metrics") {
        out["public_metrics"] = json!({"retweet_count": 0, "reply_count": 0, "like_count": 0, "quote_count": 0, "bookmark_count": 0, "impression_count": 0});
    }
    out
}

fn conversation_root(state: &SimState, post: &SimPost) -> String {
    let mut current = post.clone();
    for _ in 0..1000 {
        match current.reply_to.as_deref().and_then(|r| state.post(r)) {
            Some(parent) => current = parent.post.clone(),
            None => break,
        }
    }
    current.reply_to.unwrap_or(current.id)
}

fn add_includes(state: &SimState, body: &mut Value, posts: &[SimPost], view: &View) {
    if !view.expansions.contains("author_id") {
        return;
    }
    let mut seen = HashSet::new();
    let users: Vec<Value> = posts
        .iter()
        .filter(|p| seen.insert(p.author_id.clone()))
        .filter_map(|p| state.user(&p.author_id))
        .map(|u| user_json(u, &view.user_fields))
        .collect();
    body["includes"] = json!({ "users": users });
}

fn user_json(user: &SimUser, fields: &HashSet<String>) -> Value {
    let mut out = json!({"id": user.id, "name": user.name, "username": user.username});
    let wants = |f: &str| fields.contains(f);
    if wants("created_at") {
        out["created_at"] = json!(user.created_at);
    }
    if wants("description") {
        out["description"] = json!(format!("Simulated account {}", user.name));
    }
    if wants("profile_image_url") {
        out["profile_image_url"] =
            json!("https://abs.twimg.com/sticky/default_profile_images/default_profile_normal.png");
    }
    if wants("protected") {
        out["protected"] = json!(false);
    }
    if wants("verified") {
        out["verified"] = json!(false);
    }
    if wants("public_metrics") {
        out["public_metrics"] = json!({"followers_count": 0, "following_count": 0, "tweet_count": 0, "listed_count": 0, "like_count": 0});
    }
    out
}

/// True when `text` contains `handle` (lower-case, with `@`) as a whole word.
fn mentions_handle(text: &str, handle: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.match_indices(handle).any(|(at, _)| {
        let before_ok = lower[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let after_ok = lower[at + handle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        before_ok && after_ok
    })
}

/// Recent search query: terms and quoted phrases (AND), `-` negation,
/// `from:`, `to:`, `@mention`, `is:reply`, `is:retweet`. Other operators
/// are ignored.
struct Query {
    clauses: Vec<(bool, Clause)>,
}

enum Clause {
    Text(String),
    From(Option<String>),
    To(Option<String>),
    Mention(String),
    IsReply,
    IsRetweet,
    Ignored,
}

impl Query {
    fn parse(input: &str, state: &SimState) -> Query {
        let mut clauses = Vec::new();
        for token in tokenize(input) {
            let (negated, token) = match token.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => (true, rest.to_owned()),
                _ => (false, token),
            };
            let lower = token.to_ascii_lowercase();
            let clause = if let Some(name) = lower.strip_prefix("from:") {
                Clause::From(state.user_id(name))
            } else if let Some(name) = lower.strip_prefix("to:") {
                Clause::To(state.user_id(name))
            } else if lower == "is:reply" {
                Clause::IsReply
            } else if lower == "is:retweet" {
                Clause::IsRetweet
            } else if lower.starts_with('@') && lower.len() > 1 {
                Clause::Mention(lower)
            } else if lower == "or"
                || (lower.contains(':') && !lower.contains(' ') && !lower.contains("://"))
            {
                Clause::Ignored
            } else {
                Clause::Text(lower)
            };
            clauses.push((negated, clause));
        }
        Query { clauses }
    }

    fn matches(&self, state: &SimState, post: &SimPost) -> bool {
        let text = post.text.to_lowercase();
        self.clauses.iter().all(|(negated, clause)| {
            let hit = match clause {
                Clause::Text(t) => text.contains(t.as_str()),
                Clause::From(user) => user.as_deref() == Some(post.author_id.as_str()),
                Clause::To(user) => post
                    .reply_to
                    .as_deref()
                    .and_then(|r| state.post(r))
                    .is_some_and(|parent| Some(parent.post.author_id.as_str()) == user.as_deref()),
                Clause::Mention(handle) => mentions_handle(&post.text, handle),
                Clause::IsReply => post.reply_to.is_some(),
                Clause::IsRetweet => false,
                Clause::Ignored => return true,
            };
            hit != *negated
        })
    }
}

/// Split on whitespace, keeping `"quoted phrases"` (and `-"negated phrases"`) whole.
fn tokenize(input: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in input.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_whole_handles() {
        assert!(mentions_handle("hi @Sim_Friend!", "@sim_friend"));
        assert!(!mentions_handle("hi @sim_friendly", "@sim_friend"));
        assert!(!mentions_handle("mail x@sim_friend", "@sim_friend"));
    }

    #[test]
    fn tokenizes_phrases() {
        assert_eq!(
            tokenize(r#"from:me "hello world" -spam"#),
            vec!["from:me", "hello world", "-spam"]
        );
    }
}
