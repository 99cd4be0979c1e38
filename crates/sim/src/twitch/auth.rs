//! The `id.twitch.tv` stand-in: OAuth 2.0 authorization code (and implicit)
//! flow, token, refresh with rotating refresh tokens, client credentials,
//! validate and revoke.
//!
//! A *grant* is one user's authorization of one client: the code exchange
//! starts it, each refresh continues it. Every refresh spends the refresh
//! token it was given and hands out a new one. Presenting a spent token is
//! what a token thief (or a client racing itself) does; the answer is
//! Twitch's `400 Invalid refresh token`, and with
//! [`TwitchSimConfig::revoke_grant_on_refresh_reuse`](super::TwitchSimConfig::revoke_grant_on_refresh_reuse)
//! every token of the grant dies too.
//!
//! Bodies are Twitch's: `{"status":400,"message":"Invalid refresh token"}`,
//! `{"status":401,"message":"invalid access token"}`, and token responses
//! with `scope` as an array and `token_type` `bearer`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::{Sim, TwitchClient, TwitchSimConfig, UserState, random_token};

/// What an access token stands for.
#[derive(Clone, Debug)]
pub(crate) struct TokenInfo {
    pub client_id: String,
    /// `None` for an app access token.
    pub user_id: Option<String>,
    pub login: Option<String>,
    pub scopes: Vec<String>,
    pub expires_in: u64,
}

impl TokenInfo {
    pub(crate) fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

struct Code {
    client_id: String,
    redirect_uri: String,
    user_id: String,
    scopes: Vec<String>,
    expires: Instant,
}

struct AccessToken {
    client_id: String,
    user_id: Option<String>,
    scopes: Vec<String>,
    expires: Instant,
    grant: u64,
    revoked: bool,
}

struct RefreshToken {
    client_id: String,
    user_id: String,
    scopes: Vec<String>,
    grant: u64,
    spent: bool,
    revoked: bool,
}

/// Clients, codes and tokens.
pub(crate) struct AuthState {
    clients: Vec<TwitchClient>,
    codes: HashMap<String, Code>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    next_grant: u64,
    access_lifetime: Duration,
}

impl AuthState {
    pub(crate) fn seeded(config: &TwitchSimConfig, users: &[UserState]) -> AuthState {
        let mut auth = AuthState {
            clients: config.clients.clone(),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            next_grant: 1,
            access_lifetime: config.access_token_lifetime,
        };
        for seed in &config.seeded_tokens {
            let Some(user) = users
                .iter()
                .find(|u| u.login.eq_ignore_ascii_case(&seed.login))
            else {
                tracing::warn!(login = %seed.login, "seeded twitch token for an unknown user");
                continue;
            };
            let grant = auth.new_grant();
            auth.access.insert(
                seed.access_token.clone(),
                AccessToken {
                    client_id: seed.client_id.clone(),
                    user_id: Some(user.id.clone()),
                    scopes: seed.scopes.clone(),
                    expires: Instant::now() + config.access_token_lifetime,
                    grant,
                    revoked: false,
                },
            );
            auth.refresh.insert(
                seed.refresh_token.clone(),
                RefreshToken {
                    client_id: seed.client_id.clone(),
                    user_id: user.id.clone(),
                    scopes: seed.scopes.clone(),
                    grant,
                    spent: false,
                    revoked: false,
                },
            );
        }
        auth
    }

    fn new_grant(&mut self) -> u64 {
        self.next_grant += 1;
        self.next_grant
    }

    fn client(&self, client_id: &str) -> Option<&TwitchClient> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    /// A live (unexpired, unrevoked) access token.
    pub(crate) fn lookup(&self, token: &str, users: &[UserState]) -> Option<TokenInfo> {
        let t = self.access.get(token)?;
        let now = Instant::now();
        if t.revoked || t.expires <= now {
            return None;
        }
        let login = t
            .user_id
            .as_ref()
            .and_then(|id| users.iter().find(|u| &u.id == id))
            .map(|u| u.login.clone());
        Some(TokenInfo {
            client_id: t.client_id.clone(),
            user_id: t.user_id.clone(),
            login,
            scopes: t.scopes.clone(),
            expires_in: t.expires.duration_since(now).as_secs(),
        })
    }

    fn issue(
        &mut self,
        client_id: &str,
        user_id: &str,
        scopes: &[String],
        grant: u64,
    ) -> (String, String) {
        let access = random_token(30);
        let refresh = random_token(50);
        self.access.insert(
            access.clone(),
            AccessToken {
                client_id: client_id.to_owned(),
                user_id: Some(user_id.to_owned()),
                scopes: scopes.to_vec(),
                expires: Instant::now() + self.access_lifetime,
                grant,
                revoked: false,
            },
        );
        self.refresh.insert(
            refresh.clone(),
            RefreshToken {
                client_id: client_id.to_owned(),
                user_id: user_id.to_owned(),
                scopes: scopes.to_vec(),
                grant,
                spent: false,
                revoked: false,
            },
        );
        (access, refresh)
    }

    fn revoke_grant(&mut self, grant: u64) {
        for t in self.access.values_mut().filter(|t| t.grant == grant) {
            t.revoked = true;
        }
        for t in self.refresh.values_mut().filter(|t| t.grant == grant) {
            t.revoked = true;
        }
    }

    pub(crate) fn expire_access_tokens(&mut self) {
        let now = Instant::now();
        for t in self.access.values_mut() {
            t.expires = now;
        }
    }

    pub(crate) fn revoke_refresh_tokens_of(&mut self, user_id: &str) {
        for t in self.refresh.values_mut().filter(|t| t.user_id == user_id) {
            t.revoked = true;
        }
    }

    pub(crate) fn revoke_access_tokens_of(&mut self, user_id: &str) {
        for t in self
            .access
            .values_mut()
            .filter(|t| t.user_id.as_deref() == Some(user_id))
        {
            t.revoked = true;
        }
    }

    pub(crate) fn prune(&mut self, now: Instant) {
        self.codes.retain(|_, c| c.expires > now);
    }
}

/// `302 Found`, as id.twitch.tv redirects.
fn found(target: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, target.to_owned())]).into_response()
}

fn twitch_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"status": status.as_u16(), "message": message})),
    )
        .into_response()
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Registered URL, or (none registered) any loopback `http` URL.
fn redirect_allowed(client: &TwitchClient, redirect_uri: &str) -> bool {
    if !client.redirect_uris.is_empty() {
        return client.redirect_uris.iter().any(|u| u == redirect_uri);
    }
    match url::Url::parse(redirect_uri) {
        Ok(url) => {
            url.scheme() == "http"
                && matches!(
                    url.host_str(),
                    Some("localhost") | Some("127.0.0.1") | Some("[::1]")
                )
        }
        Err(_) => false,
    }
}

fn with_params(redirect_uri: &str, params: &[(&str, &str)], fragment: bool) -> String {
    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().filter(|(_, v)| !v.is_empty()))
        .finish();
    if fragment {
        format!("{redirect_uri}#{encoded}")
    } else if redirect_uri.contains('?') {
        format!("{redirect_uri}&{encoded}")
    } else {
        format!("{redirect_uri}?{encoded}")
    }
}

fn scopes_of(pairs: &[(String, String)]) -> Vec<String> {
    param(pairs, "scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Checks common to showing the consent page and deciding on it.
fn check_authorize(
    sim: &Sim,
    pairs: &[(String, String)],
) -> Result<(), (StatusCode, &'static str)> {
    let state = sim.lock();
    let Some(client_id) = param(pairs, "client_id") else {
        return Err((StatusCode::BAD_REQUEST, "missing client id"));
    };
    let Some(client) = state.auth.client(client_id) else {
        return Err((StatusCode::BAD_REQUEST, "invalid client"));
    };
    let redirect_uri = param(pairs, "redirect_uri").unwrap_or("");
    if !redirect_allowed(client, redirect_uri) {
        return Err((
            StatusCode::BAD_REQUEST,
            "Parameter redirect_uri does not match registered URI",
        ));
    }
    match param(pairs, "response_type") {
        Some("code") | Some("token") => Ok(()),
        _ => Err((StatusCode::BAD_REQUEST, "unsupported response type")),
    }
}

/// `GET /oauth2/authorize`: the consent page, or (with `auto_approve=1`) the
/// redirect at once.
pub(crate) async fn authorize(State(sim): State<Sim>, uri: Uri) -> Response {
    let pairs = pairs(uri.query().unwrap_or("").as_bytes());
    if let Err((status, message)) = check_authorize(&sim, &pairs) {
        return twitch_error(status, message);
    }
    if param(&pairs, "auto_approve") == Some("1") {
        return approve(&sim, &pairs);
    }
    let state = sim.lock();
    let hidden: String = [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
    ]
    .iter()
    .map(|name| {
        format!(
            r#"<input type="hidden" name="{name}" value="{}">"#,
            escape_html(param(&pairs, name).unwrap_or(""))
        )
    })
    .collect();
    let wanted = param(&pairs, "login").unwrap_or("simstreamer");
    let options: String = state
        .users
        .iter()
        .map(|u| {
            let selected = if u.login == wanted { " selected" } else { "" };
            format!(
                r#"<option value="{0}"{selected}>{1} ({0})</option>"#,
                escape_html(&u.login),
                escape_html(&u.display_name)
            )
        })
        .collect();
    let scopes: String = scopes_of(&pairs)
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", escape_html(s)))
        .collect();
    let client = escape_html(param(&pairs, "client_id").unwrap_or(""));
    Html(format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Authorize - Twitch (simulated)</title>
<style>body{{font-family:sans-serif;background:#0e0e10;color:#efeff1;display:flex;justify-content:center}}
main{{background:#18181b;padding:2em;margin-top:3em;border-radius:8px;max-width:28em}}
button{{padding:.6em 1.4em;margin-right:1em;border:0;border-radius:4px;font-weight:bold}}
.allow{{background:#9146ff;color:white}}</style></head>
<body><main>
<h1>Switchboard simulated Twitch</h1>
<p>The application <b>{client}</b> wants to access your account:</p>
<ul>{scopes}</ul>
<form method="post" action="/oauth2/authorize">{hidden}
<p><label>Sign in as <select name="login">{options}</select></label></p>
<button class="allow" type="submit" name="decision" value="authorize">Authorize</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</form></main></body></html>"#
    ))
    .into_response()
}

/// `POST /oauth2/authorize`: the consent page's buttons.
pub(crate) async fn decide(State(sim): State<Sim>, body: Bytes) -> Response {
    let pairs = pairs(&body);
    if let Err((status, message)) = check_authorize(&sim, &pairs) {
        return twitch_error(status, message);
    }
    if param(&pairs, "decision") == Some("authorize") {
        return approve(&sim, &pairs);
    }
    let redirect_uri = param(&pairs, "redirect_uri").unwrap_or("");
    let fragment = param(&pairs, "response_type") == Some("token");
    let target = with_params(
        redirect_uri,
        &[
            ("error", "access_denied"),
            ("error_description", "The user denied you access"),
            ("state", param(&pairs, "state").unwrap_or("")),
        ],
        fragment,
    );
    found(&target)
}

fn approve(sim: &Sim, pairs: &[(String, String)]) -> Response {
    let mut state = sim.lock();
    let login = param(pairs, "login").unwrap_or("simstreamer");
    let Some(user) = state.user_by_login(login).cloned() else {
        return twitch_error(StatusCode::BAD_REQUEST, "unknown login");
    };
    let client_id = param(pairs, "client_id").unwrap_or("").to_owned();
    let redirect_uri = param(pairs, "redirect_uri").unwrap_or("").to_owned();
    let scopes = scopes_of(pairs);
    let scope_text = scopes.join(" ");
    let oauth_state = param(pairs, "state").unwrap_or("").to_owned();
    if param(pairs, "response_type") == Some("token") {
        // Implicit flow: the token travels in the fragment, no refresh token.
        let grant = state.auth.new_grant();
        let (access, _) = state.auth.issue(&client_id, &user.id, &scopes, grant);
        let target = with_params(
            &redirect_uri,
            &[
                ("access_token", &access),
                ("scope", &scope_text),
                ("state", &oauth_state),
                ("token_type", "bearer"),
            ],
            true,
        );
        return found(&target);
    }
    let code = random_token(30);
    let expires = Instant::now() + state.config.authorization_code_lifetime;
    state.auth.codes.insert(
        code.clone(),
        Code {
            client_id,
            redirect_uri: redirect_uri.clone(),
            user_id: user.id,
            scopes,
            expires,
        },
    );
    let target = with_params(
        &redirect_uri,
        &[
            ("code", &code),
            ("scope", &scope_text),
            ("state", &oauth_state),
        ],
        false,
    );
    found(&target)
}

/// `POST /oauth2/token`. Twitch takes the parameters from the query string or
/// the form body; so does the simulator.
pub(crate) async fn token(State(sim): State<Sim>, uri: Uri, body: Bytes) -> Response {
    let mut pairs = pairs(uri.query().unwrap_or("").as_bytes());
    pairs.extend(self::pairs(&body));
    let mut state = sim.lock();
    state.token_calls += 1;
    let grant_type = param(&pairs, "grant_type").unwrap_or("").to_owned();
    if grant_type == "refresh_token" {
        state.refresh_calls += 1;
    }
    let Some(client_id) = param(&pairs, "client_id").map(str::to_owned) else {
        return twitch_error(StatusCode::BAD_REQUEST, "missing client id");
    };
    let Some(client) = state.auth.client(&client_id).cloned() else {
        return twitch_error(StatusCode::BAD_REQUEST, "invalid client");
    };
    match param(&pairs, "client_secret") {
        None => return twitch_error(StatusCode::BAD_REQUEST, "missing client secret"),
        Some(secret) if secret != client.client_secret => {
            return twitch_error(StatusCode::FORBIDDEN, "invalid client secret");
        }
        Some(_) => {}
    }
    let lifetime = state.config.access_token_lifetime.as_secs();
    match grant_type.as_str() {
        "authorization_code" => {
            let Some(code) = param(&pairs, "code") else {
                return twitch_error(StatusCode::BAD_REQUEST, "missing code");
            };
            // Single use: the code is gone whatever happens next.
            let Some(code) = state.auth.codes.remove(code) else {
                return twitch_error(StatusCode::BAD_REQUEST, "Invalid authorization code");
            };
            if code.expires <= Instant::now() || code.client_id != client_id {
                return twitch_error(StatusCode::BAD_REQUEST, "Invalid authorization code");
            }
            if param(&pairs, "redirect_uri") != Some(code.redirect_uri.as_str()) {
                return twitch_error(
                    StatusCode::BAD_REQUEST,
                    "Parameter redirect_uri does not match registered URI",
                );
            }
            let grant = state.auth.new_grant();
            let (access, refresh) =
                state
                    .auth
                    .issue(&client_id, &code.user_id, &code.scopes, grant);
            token_response(&access, lifetime, Some(&refresh), &code.scopes)
        }
        "refresh_token" => {
            let Some(presented) = param(&pairs, "refresh_token").map(str::to_owned) else {
                return twitch_error(StatusCode::BAD_REQUEST, "missing refresh token");
            };
            let revoke_on_reuse = state.config.revoke_grant_on_refresh_reuse;
            let Some(old) = state.auth.refresh.get_mut(&presented) else {
                return twitch_error(StatusCode::BAD_REQUEST, "Invalid refresh token");
            };
            if old.revoked || old.client_id != client_id {
                return twitch_error(StatusCode::BAD_REQUEST, "Invalid refresh token");
            }
            if old.spent {
                let grant = old.grant;
                if revoke_on_reuse {
                    tracing::debug!(
                        grant,
                        "spent twitch refresh token reused: revoking the grant"
                    );
                    state.auth.revoke_grant(grant);
                }
                return twitch_error(StatusCode::BAD_REQUEST, "Invalid refresh token");
            }
            old.spent = true;
            let (user_id, scopes, grant) = (old.user_id.clone(), old.scopes.clone(), old.grant);
            let (access, refresh) = state.auth.issue(&client_id, &user_id, &scopes, grant);
            token_response(&access, lifetime, Some(&refresh), &scopes)
        }
        "client_credentials" => {
            let access = random_token(30);
            let lifetime = state.config.app_access_token_lifetime;
            let grant = state.auth.new_grant();
            state.auth.access.insert(
                access.clone(),
                AccessToken {
                    client_id,
                    user_id: None,
                    scopes: Vec::new(),
                    expires: Instant::now() + lifetime,
                    grant,
                    revoked: false,
                },
            );
            (
                StatusCode::OK,
                axum::Json(json!({
                    "access_token": access,
                    "expires_in": lifetime.as_secs(),
                    "token_type": "bearer",
                })),
            )
                .into_response()
        }
        "" => twitch_error(StatusCode::BAD_REQUEST, "missing grant type"),
        _ => twitch_error(StatusCode::BAD_REQUEST, "unsupported grant type"),
    }
}

fn token_response(
    access: &str,
    expires_in: u64,
    refresh: Option<&str>,
    scopes: &[String],
) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({
            "access_token": access,
            "expires_in": expires_in,
            "refresh_token": refresh,
            "scope": scopes,
            "token_type": "bearer",
        })),
    )
        .into_response()
}

/// The token in `Authorization: OAuth <token>` (Twitch accepts `Bearer` too).
pub(crate) fn presented_token(headers: &HeaderMap, schemes: &[&str]) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    schemes
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// `GET /oauth2/validate`.
pub(crate) async fn validate(State(sim): State<Sim>, headers: HeaderMap) -> Response {
    let mut state = sim.lock();
    state.validate_calls += 1;
    let Some(token) = presented_token(&headers, &["OAuth", "Bearer"]) else {
        return twitch_error(StatusCode::UNAUTHORIZED, "missing authorization token");
    };
    let Some(info) = state.auth.lookup(&token, &state.users) else {
        return twitch_error(StatusCode::UNAUTHORIZED, "invalid access token");
    };
    let body = match (&info.user_id, &info.login) {
        (Some(user_id), Some(login)) => json!({
            "client_id": info.client_id,
            "login": login,
            "scopes": info.scopes,
            "user_id": user_id,
            "expires_in": info.expires_in,
        }),
        _ => json!({
            "client_id": info.client_id,
            "scopes": info.scopes,
            "expires_in": info.expires_in,
        }),
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `POST /oauth2/revoke` (form: `client_id`, `token`): 200 with an empty body.
pub(crate) async fn revoke(State(sim): State<Sim>, uri: Uri, body: Bytes) -> Response {
    let mut pairs = pairs(uri.query().unwrap_or("").as_bytes());
    pairs.extend(self::pairs(&body));
    let mut state = sim.lock();
    let Some(client_id) = param(&pairs, "client_id") else {
        return twitch_error(StatusCode::BAD_REQUEST, "missing client id");
    };
    if state.auth.client(client_id).is_none() {
        return twitch_error(StatusCode::NOT_FOUND, "client does not exist");
    }
    let Some(token) = param(&pairs, "token") else {
        return twitch_error(StatusCode::BAD_REQUEST, "missing oauth token");
    };
    if let Some(t) = state.auth.access.get_mut(token) {
        if t.client_id != client_id {
            return twitch_error(StatusCode::BAD_REQUEST, "Invalid token");
        }
        t.revoked = true;
        return StatusCode::OK.into_response();
    }
    if let Some(t) = state.auth.refresh.get_mut(token) {
        if t.client_id != client_id {
            return twitch_error(StatusCode::BAD_REQUEST, "Invalid token");
        }
        let grant = t.grant;
        state.auth.revoke_grant(grant);
        return StatusCode::OK.into_response();
    }
    twitch_error(StatusCode::BAD_REQUEST, "Invalid token")
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_are_accepted_when_none_is_registered() {
        let client = TwitchClient {
            client_id: "c".into(),
            client_secret: "s".into(),
            redirect_uris: Vec::new(),
        };
        assert!(redirect_allowed(&client, "http://localhost:8080/cb"));
        assert!(redirect_allowed(
            &client,
            "http://127.0.0.1:3000/oauth/twitch/callback"
        ));
        assert!(redirect_allowed(&client, "http://[::1]:9/x"));
        assert!(!redirect_allowed(&client, "https://evil.example/cb"));
        assert!(!redirect_allowed(&client, "not a url"));
    }
}
