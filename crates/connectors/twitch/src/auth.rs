//! Twitch credentials: the OAuth 2.0 authorization code flow, token
//! validation, and the single-flight refresh of user access tokens.
//!
//! # Why not the `oauth2` or `twitch_oauth2` crates
//!
//! `twitch_oauth2` reads its endpoints from process-wide environment
//! variables (`TWITCH_OAUTH2_URL`, behind its `mock_api` feature), so one
//! process cannot talk to Twitch and to a simulator, or to two simulators.
//! The `oauth2` crate takes URLs, but Twitch's token answer carries `scope`
//! as a JSON array (RFC 6749 says a space-separated string) and its errors
//! as `{"status":400,"message":"Invalid refresh token"}` (RFC 6749 says
//! `{"error":"invalid_grant"}`), so both its standard response and error
//! types would have to be replaced; what is left is one form POST, written
//! out here. Both error shapes are understood.
//!
//! # Refresh, exactly once
//!
//! A refresh is only ever made under `RuntimeEnv::lock("twitch-oauth2-refresh")`
//! (an in-process mutex per connection plus, on PostgreSQL, an advisory lock
//! shared by every process). Whoever holds it first reloads the tokens from
//! the vault (another caller or process may have refreshed while it waited)
//! and refreshes only if they still need it, then writes the new pair back
//! before letting go. Twitch may rotate the refresh token (public clients
//! always do; spending an old one twice can revoke the grant), so the pair
//! is always stored together. Tokens are refreshed ahead of expiry
//! ([`REFRESH_MARGIN`]) and after any 401; a refused refresh token means the
//! grant is gone: `needs_reauth`, with a message saying to reconnect.
//!
//! # Validation
//!
//! Twitch requires apps to validate user tokens when they start and then
//! hourly (`GET /oauth2/validate`, `Authorization: OAuth <token>`); the
//! answer also says who the token belongs to, its scopes and how long it
//! has left, which is how a token pasted from the Twitch CLI (no
//! `expires_at`) learns its expiry.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use switchboard_core::time::now_ms;
use switchboard_core::{RuntimeEnv, Secrets};

/// Names of the connection secrets.
pub mod secret {
    /// The Twitch application's client secret (developer console).
    pub const CLIENT_SECRET: &str = "client_secret";
    /// The user access token.
    pub const ACCESS_TOKEN: &str = "access_token";
    /// The refresh token; may change on every refresh.
    pub const REFRESH_TOKEN: &str = "refresh_token";
    /// When the access token expires, epoch milliseconds.
    pub const EXPIRES_AT: &str = "expires_at";
}

/// The scopes asked for in the authorization flow, and what needs them.
pub const SCOPES: &[&str] = &[
    // Chat over IRC: read and speak.
    "chat:read",
    "chat:edit",
    // `POST /helix/chat/messages` (twitch.send_chat).
    "user:write:chat",
    // `channel.follow` v2 and `GET /channels/followers`.
    "moderator:read:followers",
    // `channel.subscribe`, `.subscription.message`, `.subscription.gift`.
    "channel:read:subscriptions",
    // `channel.cheer`.
    "bits:read",
    // twitch.shoutout.
    "moderator:manage:shoutouts",
    // twitch.update_channel.
    "channel:manage:broadcast",
    // twitch.create_clip.
    "clips:edit",
    // twitch.ban, twitch.timeout.
    "moderator:manage:banned_users",
];

/// Refresh this long before the access token expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

const REFRESH_LOCK: &str = "twitch-oauth2-refresh";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The grant is gone; the user must connect the account again.
    #[error("{0}")]
    NeedsReauth(String),
    /// Settings or secrets are missing or wrong.
    #[error("{0}")]
    Misconfigured(String),
    /// Twitch could not be reached or failed.
    #[error("{0}")]
    Unavailable(String),
}

/// Where Twitch's authorization server is (`https://id.twitch.tv`).
#[derive(Debug, Clone)]
pub struct IdEndpoints {
    pub authorize: String,
    pub token: String,
    pub validate: String,
}

impl IdEndpoints {
    pub fn new(id_base: &str) -> IdEndpoints {
        let base = id_base.trim_end_matches('/');
        IdEndpoints {
            authorize: format!("{base}/oauth2/authorize"),
            token: format!("{base}/oauth2/token"),
            validate: format!("{base}/oauth2/validate"),
        }
    }
}

/// One token set as it is in the vault.
#[derive(Clone)]
pub struct Tokens {
    pub access: SecretString,
    pub refresh: Option<SecretString>,
    /// Epoch milliseconds; `None` when unknown (treated as not expiring;
    /// validation fills it in).
    pub expires_at: Option<i64>,
}

fn non_empty(secrets: &Secrets, name: &str) -> Option<SecretString> {
    secrets
        .get(name)
        .filter(|s| !s.expose_secret().trim().is_empty())
        .cloned()
}

impl Tokens {
    pub fn from_secrets(secrets: &Secrets) -> Result<Tokens, AuthError> {
        let access = non_empty(secrets, secret::ACCESS_TOKEN).ok_or_else(|| {
            AuthError::NeedsReauth(
                "this Twitch account is not authorized yet: connect it (POST /api/v1/connections/{id}/connect) and approve it on Twitch, or set the access_token and refresh_token secrets".into(),
            )
        })?;
        Ok(Tokens {
            access,
            refresh: non_empty(secrets, secret::REFRESH_TOKEN),
            expires_at: secrets
                .get(secret::EXPIRES_AT)
                .and_then(|s| s.expose_secret().trim().parse().ok()),
        })
    }

    /// True when the access token expires within `margin` from now.
    pub fn expires_within(&self, margin: Duration) -> bool {
        expires_within(self.expires_at, now_ms(), margin)
    }

    fn into_secrets(self) -> Vec<(String, SecretString)> {
        let mut out = vec![(secret::ACCESS_TOKEN.to_owned(), self.access)];
        if let Some(refresh) = self.refresh {
            out.push((secret::REFRESH_TOKEN.to_owned(), refresh));
        }
        if let Some(at) = self.expires_at {
            out.push((
                secret::EXPIRES_AT.to_owned(),
                SecretString::from(at.to_string()),
            ));
        }
        out
    }
}

/// The expiry rule, with the clock passed in: expired when fewer than
/// `margin` remain. An unknown expiry never counts as expired (a 401 will
/// say so, and validation learns the real expiry).
pub fn expires_within(expires_at: Option<i64>, now: i64, margin: Duration) -> bool {
    expires_at.is_some_and(|at| at - now <= margin.as_millis() as i64)
}

/// The Twitch application.
#[derive(Clone)]
pub struct App {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

impl App {
    pub fn new(client_id: Option<&str>, secrets: &Secrets) -> Result<App, AuthError> {
        let client_id = client_id.filter(|c| !c.trim().is_empty()).ok_or_else(|| {
            AuthError::Misconfigured(
                "set settings.client_id to your Twitch application's client id (dev.twitch.tv/console)".into(),
            )
        })?;
        Ok(App {
            client_id: client_id.trim().to_owned(),
            client_secret: non_empty(secrets, secret::CLIENT_SECRET),
        })
    }
}

/// A reqwest error without its URL.
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection refused or unreachable"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off"
    } else {
        "the connection failed"
    };
    kind.to_owned()
}

/// Start the authorization code flow: (authorize URL, state).
pub fn begin(
    app: &App,
    endpoints: &IdEndpoints,
    redirect_uri: &str,
) -> Result<(String, String), AuthError> {
    let state: String = {
        use rand::Rng;
        let bytes: [u8; 24] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let mut url = url::Url::parse(&endpoints.authorize)
        .map_err(|e| AuthError::Misconfigured(format!("bad Twitch authorize URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &SCOPES.join(" "))
        .append_pair("state", &state);
    Ok((url.to_string(), state))
}

/// Twitch's token answer (`scope` is an array).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// What the token endpoint's refusal means for the user. `during` names the
/// grant (`refresh token`, `authorization code`).
pub(crate) fn token_refusal(status: u16, body: &str, during: &str) -> AuthError {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = parsed["message"]
        .as_str()
        .or_else(|| parsed["error_description"].as_str())
        .or_else(|| parsed["error"].as_str())
        .unwrap_or("no detail given");
    let message: String = message.chars().take(200).collect();
    let code = parsed["error"].as_str().unwrap_or("");
    if status >= 500 || status == 429 {
        return AuthError::Unavailable(format!(
            "Twitch's token endpoint answered HTTP {status} to the {during}: {message}"
        ));
    }
    let lower = message.to_ascii_lowercase();
    if lower.contains("client") || code == "invalid_client" || code == "unauthorized_client" {
        return AuthError::NeedsReauth(format!(
            "Twitch refused the application's credentials during the {during} ({message}); check settings.client_id and the client_secret secret, then reconnect this account"
        ));
    }
    AuthError::NeedsReauth(format!(
        "Twitch refused the {during} ({message}); reconnect this account"
    ))
}

async fn token_request(
    http: &reqwest::Client,
    endpoints: &IdEndpoints,
    app: &App,
    grant: &[(&str, &str)],
    during: &str,
) -> Result<TokenAnswer, AuthError> {
    let mut form: Vec<(&str, &str)> = vec![("client_id", app.client_id.as_str())];
    if let Some(secret) = &app.client_secret {
        form.push(("client_secret", secret.expose_secret()));
    }
    form.extend_from_slice(grant);
    let response = http
        .post(&endpoints.token)
        .form(&form)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| {
            AuthError::Unavailable(format!(
                "Twitch's token endpoint is unreachable: {}",
                without_url(&e)
            ))
        })?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(token_refusal(status, &body, during));
    }
    serde_json::from_str(&body).map_err(|e| {
        AuthError::Unavailable(format!("Twitch's token answer could not be read: {e}"))
    })
}

fn tokens_from(answer: TokenAnswer, previous_refresh: Option<SecretString>) -> Tokens {
    Tokens {
        access: SecretString::from(answer.access_token),
        refresh: answer
            .refresh_token
            .filter(|r| !r.is_empty())
            .map(SecretString::from)
            .or(previous_refresh),
        expires_at: answer.expires_in.map(|s| now_ms() + s * 1000),
    }
}

/// Finish the flow: exchange the code for tokens (the secrets to store).
pub async fn finish(
    http: &reqwest::Client,
    app: &App,
    endpoints: &IdEndpoints,
    redirect_uri: &str,
    code: &str,
) -> Result<Vec<(String, SecretString)>, AuthError> {
    let answer = token_request(
        http,
        endpoints,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ],
        "authorization code",
    )
    .await?;
    Ok(tokens_from(answer, None).into_secrets())
}

/// Who a token belongs to, as `/oauth2/validate` says.
#[derive(Debug, Clone, Deserialize)]
pub struct Validation {
    pub client_id: String,
    pub login: String,
    pub user_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Seconds left.
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// `GET /oauth2/validate`: `Ok(None)` when Twitch says the token is invalid.
pub async fn validate(
    http: &reqwest::Client,
    endpoints: &IdEndpoints,
    token: &SecretString,
) -> Result<Option<Validation>, AuthError> {
    let response = http
        .get(&endpoints.validate)
        .header(
            reqwest::header::AUTHORIZATION,
            format!("OAuth {}", token.expose_secret()),
        )
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| {
            AuthError::Unavailable(format!(
                "Twitch's validate endpoint is unreachable: {}",
                without_url(&e)
            ))
        })?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    match status {
        200..=299 => serde_json::from_str(&body).map(Some).map_err(|e| {
            AuthError::Unavailable(format!("Twitch's validate answer could not be read: {e}"))
        }),
        401 => Ok(None),
        _ => Err(AuthError::Unavailable(format!(
            "Twitch's validate endpoint answered HTTP {status}"
        ))),
    }
}

/// The tokens of one running connection, refreshed single-flight.
pub struct TokenKeeper {
    app: App,
    endpoints: IdEndpoints,
    http: reqwest::Client,
    env: Arc<dyn RuntimeEnv>,
    tokens: RwLock<Tokens>,
}

impl TokenKeeper {
    pub fn new(
        app: App,
        endpoints: IdEndpoints,
        http: reqwest::Client,
        env: Arc<dyn RuntimeEnv>,
        tokens: Tokens,
    ) -> TokenKeeper {
        TokenKeeper {
            app,
            endpoints,
            http,
            env,
            tokens: RwLock::new(tokens),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.app.client_id
    }

    fn current(&self) -> Tokens {
        self.tokens.read().expect("token lock poisoned").clone()
    }

    /// An access token valid for at least `margin`, refreshing if needed.
    pub async fn access_token(&self, margin: Duration) -> Result<SecretString, AuthError> {
        let tokens = self.current();
        if !tokens.expires_within(margin) {
            return Ok(tokens.access);
        }
        self.refresh(|stored| !stored.expires_within(margin)).await
    }

    /// Twitch refused `rejected` (a 401): get a different token, refreshing
    /// if nobody has yet.
    pub async fn after_rejection(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, AuthError> {
        let rejected = rejected.expose_secret().to_owned();
        self.refresh(move |stored| stored.access.expose_secret() != rejected)
            .await
    }

    /// Validate the current token (refreshing once if Twitch calls it
    /// invalid) and learn its expiry when the vault does not know it.
    pub async fn validate(&self) -> Result<Validation, AuthError> {
        let token = self.access_token(Duration::ZERO).await?;
        let validation = match validate(&self.http, &self.endpoints, &token).await? {
            Some(validation) => validation,
            None => {
                let fresh = self.after_rejection(&token).await?;
                validate(&self.http, &self.endpoints, &fresh)
                    .await?
                    .ok_or_else(|| {
                        AuthError::NeedsReauth(
                            "Twitch says this account's access token is invalid even after a refresh; reconnect this account".into(),
                        )
                    })?
            }
        };
        if validation.client_id != self.app.client_id {
            return Err(AuthError::Misconfigured(format!(
                "the access token was issued to client id `{}`, but settings.client_id is `{}`; set it to the token's client id",
                validation.client_id, self.app.client_id
            )));
        }
        if self.current().expires_at.is_none()
            && let Some(seconds) = validation.expires_in.filter(|s| *s > 0)
        {
            self.learn_expiry(now_ms() + seconds * 1000).await;
        }
        Ok(validation)
    }

    /// Record an expiry learnt from validation, under the refresh lock and
    /// only for the token it was learnt for.
    async fn learn_expiry(&self, expires_at: i64) {
        let token = self.current().access;
        let Ok(_guard) = self.env.lock(REFRESH_LOCK).await else {
            return;
        };
        let Ok(secrets) = self.env.load_secrets().await else {
            return;
        };
        let Ok(stored) = Tokens::from_secrets(&secrets) else {
            return;
        };
        if stored.access.expose_secret() != token.expose_secret() || stored.expires_at.is_some() {
            return;
        }
        let change = vec![(
            secret::EXPIRES_AT.to_owned(),
            Some(SecretString::from(expires_at.to_string())),
        )];
        if let Err(error) = self.env.store_secrets(change).await {
            tracing::warn!(%error, "could not store the Twitch token's expiry");
        }
        self.tokens.write().expect("token lock poisoned").expires_at = Some(expires_at);
    }

    /// Refresh under the cross-process lock unless the stored tokens already
    /// satisfy `good_enough` (someone refreshed while we waited).
    async fn refresh(
        &self,
        good_enough: impl Fn(&Tokens) -> bool,
    ) -> Result<SecretString, AuthError> {
        let _guard = self
            .env
            .lock(REFRESH_LOCK)
            .await
            .map_err(AuthError::Unavailable)?;
        let secrets = self
            .env
            .load_secrets()
            .await
            .map_err(AuthError::Unavailable)?;
        let stored = Tokens::from_secrets(&secrets)?;
        if good_enough(&stored) {
            *self.tokens.write().expect("token lock poisoned") = stored.clone();
            return Ok(stored.access);
        }
        let refresh = stored.refresh.clone().ok_or_else(|| {
            AuthError::NeedsReauth(
                "the Twitch access token is no longer valid and there is no refresh token; reconnect this account".into(),
            )
        })?;
        tracing::info!("refreshing the Twitch access token");
        let answer = token_request(
            &self.http,
            &self.endpoints,
            &self.app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose_secret()),
            ],
            "refresh token",
        )
        .await?;
        let fresh = tokens_from(answer, Some(refresh));
        // The old refresh token may be spent now: the new pair must reach
        // the vault, or the account is lost at the next restart.
        let changes: Vec<_> = fresh
            .clone()
            .into_secrets()
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let mut stored_ok = false;
        for attempt in 1..=5u64 {
            match self.env.store_secrets(changes.clone()).await {
                Ok(()) => {
                    stored_ok = true;
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, attempt, "could not store the refreshed Twitch tokens; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        }
        if !stored_ok {
            tracing::error!(
                "the refreshed Twitch tokens are only in memory; they are lost at the next restart"
            );
        }
        *self.tokens.write().expect("token lock poisoned") = fresh.clone();
        Ok(fresh.access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_judged_with_a_margin() {
        let now = 1_700_000_000_000;
        assert!(!expires_within(None, now, REFRESH_MARGIN));
        assert!(expires_within(Some(now + 60_000), now, REFRESH_MARGIN));
        assert!(expires_within(Some(now + 300_000), now, REFRESH_MARGIN));
        assert!(!expires_within(Some(now + 300_001), now, REFRESH_MARGIN));
        assert!(!expires_within(
            Some(now + 4 * 3_600_000),
            now,
            REFRESH_MARGIN
        ));
        assert!(expires_within(Some(now - 1), now, Duration::ZERO));
        assert!(!expires_within(Some(now + 1), now, Duration::ZERO));
    }

    #[test]
    fn twitch_and_rfc_refusals_both_ask_to_reconnect() {
        for (status, body) in [
            (400, r#"{"status":400,"message":"Invalid refresh token"}"#),
            (
                400,
                r#"{"error":"invalid_grant","error_description":"bad"}"#,
            ),
            (401, "not json"),
        ] {
            match token_refusal(status, body, "refresh token") {
                AuthError::NeedsReauth(m) => {
                    assert!(m.contains("reconnect this account"), "{m}")
                }
                other => panic!("{status} {body}: {other:?}"),
            }
        }
        match token_refusal(
            403,
            r#"{"status":403,"message":"invalid client secret"}"#,
            "x",
        ) {
            AuthError::NeedsReauth(m) => assert!(m.contains("client_secret"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            token_refusal(503, "", "refresh token"),
            AuthError::Unavailable(_)
        ));
    }

    #[test]
    fn the_authorize_url_asks_for_every_scope_with_a_fresh_state() {
        let app = App {
            client_id: "cid".into(),
            client_secret: None,
        };
        let endpoints = IdEndpoints::new("https://id.twitch.tv/");
        let (url, state) = begin(
            &app,
            &endpoints,
            "http://127.0.0.1:7700/oauth/twitch/callback",
        )
        .unwrap();
        let url = url::Url::parse(&url).unwrap();
        assert_eq!(url.path(), "/oauth2/authorize");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["state"], state);
        assert_eq!(q["scope"], SCOPES.join(" "));
        assert_eq!(
            q["redirect_uri"],
            "http://127.0.0.1:7700/oauth/twitch/callback"
        );
        assert_eq!(state.len(), 48);
        let (_, other) = begin(&app, &endpoints, "http://x/cb").unwrap();
        assert_ne!(state, other);
    }

    #[test]
    fn token_answers_with_a_scope_array_are_read() {
        let answer: TokenAnswer = serde_json::from_str(
            r#"{"access_token":"a","expires_in":14124,"refresh_token":"r","scope":["chat:read","bits:read"],"token_type":"bearer"}"#,
        )
        .unwrap();
        let before = now_ms();
        let tokens = tokens_from(answer, None);
        assert_eq!(tokens.access.expose_secret(), "a");
        assert_eq!(tokens.refresh.unwrap().expose_secret(), "r");
        assert!(tokens.expires_at.unwrap() >= before + 14_124_000);
        // A refresh that returns no refresh token keeps the old one.
        let answer: TokenAnswer = serde_json::from_str(r#"{"access_token":"b"}"#).unwrap();
        let tokens = tokens_from(answer, Some(SecretString::from("old")));
        assert_eq!(tokens.refresh.unwrap().expose_secret(), "old");
        assert_eq!(tokens.expires_at, None);
    }
}
