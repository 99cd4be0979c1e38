//! X credentials: OAuth 1.0a user context and OAuth 2.0 with PKCE, the two
//! authorization flows, and the single-flight refresh of OAuth 2.0 tokens.
//!
//! # Refresh, exactly once
//!
//! X's refresh tokens rotate: each refresh returns a new one and spends the
//! old; spending one twice revokes the whole grant and the account must be
//! connected again. So a refresh is only ever made under
//! `RuntimeEnv::lock("x-oauth2-refresh")`, which is an in-process mutex per
//! connection plus, on PostgreSQL, an advisory lock shared by every process.
//! Whoever holds it first reloads the tokens from the vault (another caller
//! or process may have refreshed while it waited) and refreshes only if
//! they still need it, then writes the new pair back before letting go. Fifty
//! callers that all find the token about to expire cause one refresh call.
//!
//! Tokens are refreshed ahead of expiry (5-minute margin) before actions and
//! after a 401. A refused refresh token (`invalid_grant`, or X's
//! `invalid_request` for a spent one) means the grant is gone: the
//! connection goes to `needs_reauth` with a message saying to reconnect.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use switchboard_core::time::now_ms;
use switchboard_core::{RuntimeEnv, Secrets};

/// Names of the connection secrets.
pub mod secret {
    /// OAuth 1.0a consumer key ("API Key" in X's developer portal).
    pub const API_KEY: &str = "api_key";
    /// OAuth 1.0a consumer secret ("API Key Secret").
    pub const API_SECRET: &str = "api_secret";
    /// OAuth 1.0a user access token.
    pub const ACCESS_TOKEN: &str = "access_token";
    /// OAuth 1.0a user access token secret.
    pub const ACCESS_TOKEN_SECRET: &str = "access_token_secret";
    /// OAuth 2.0 client secret, for a confidential client.
    pub const OAUTH2_CLIENT_SECRET: &str = "oauth2_client_secret";
    /// OAuth 2.0 user access token.
    pub const OAUTH2_ACCESS_TOKEN: &str = "oauth2_access_token";
    /// OAuth 2.0 refresh token (needs the `offline.access` scope).
    pub const OAUTH2_REFRESH_TOKEN: &str = "oauth2_refresh_token";
    /// When the OAuth 2.0 access token expires, epoch milliseconds.
    pub const OAUTH2_EXPIRES_AT: &str = "oauth2_expires_at";
}

/// The scopes asked for in the OAuth 2.0 flow.
pub const SCOPES: &[&str] = &[
    "tweet.read",
    "tweet.write",
    "users.read",
    "offline.access",
    "media.write",
];

/// Refresh this long before the access token expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

const REFRESH_LOCK: &str = "x-oauth2-refresh";

/// Which of X's two user-context schemes a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    #[default]
    Oauth2,
    Oauth1,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The grant is gone; the user must connect the account again.
    #[error("{0}")]
    NeedsReauth(String),
    /// Settings or secrets are missing or wrong.
    #[error("{0}")]
    Misconfigured(String),
    /// The authorization server could not be reached or failed.
    #[error("{0}")]
    Unavailable(String),
}

/// Where X's authorization endpoints are.
#[derive(Debug, Clone)]
pub struct AuthEndpoints {
    /// `https://x.com/i/oauth2/authorize`
    pub oauth2_authorize: String,
    /// `https://api.x.com/2/oauth2/token`
    pub oauth2_token: String,
    /// `https://api.x.com/oauth/request_token`
    pub oauth1_request_token: String,
    /// `https://api.x.com/oauth/authorize`
    pub oauth1_authorize: String,
    /// `https://api.x.com/oauth/access_token`
    pub oauth1_access_token: String,
}

impl AuthEndpoints {
    pub fn new(api: &str, authorize: &str) -> AuthEndpoints {
        let api = api.trim_end_matches('/');
        AuthEndpoints {
            oauth2_authorize: authorize.to_owned(),
            oauth2_token: format!("{api}/2/oauth2/token"),
            oauth1_request_token: format!("{api}/oauth/request_token"),
            oauth1_authorize: format!("{api}/oauth/authorize"),
            oauth1_access_token: format!("{api}/oauth/access_token"),
        }
    }
}

fn required(secrets: &Secrets, name: &str, hint: &str) -> Result<SecretString, AuthError> {
    secrets
        .get(name)
        .filter(|s| !s.expose_secret().trim().is_empty())
        .cloned()
        .ok_or_else(|| AuthError::NeedsReauth(format!("secret `{name}` is not set; {hint}")))
}

// ---------------------------------------------------------------------------
// OAuth 1.0a
// ---------------------------------------------------------------------------

/// The four OAuth 1.0a values of one account.
#[derive(Clone)]
pub struct OAuth1Keys {
    pub api_key: SecretString,
    pub api_secret: SecretString,
    pub token: SecretString,
    pub token_secret: SecretString,
}

impl OAuth1Keys {
    pub fn from_secrets(secrets: &Secrets) -> Result<OAuth1Keys, AuthError> {
        let hint = "set api_key, api_secret, access_token and access_token_secret, or run the connect flow";
        Ok(OAuth1Keys {
            api_key: required(secrets, secret::API_KEY, hint)?,
            api_secret: required(secrets, secret::API_SECRET, hint)?,
            token: required(secrets, secret::ACCESS_TOKEN, hint)?,
            token_secret: required(secrets, secret::ACCESS_TOKEN_SECRET, hint)?,
        })
    }

    /// The `Authorization: OAuth ...` header for a request: HMAC-SHA1 over
    /// the method, the URL without its query, and the query parameters (a
    /// JSON or multipart body is not signed, per RFC 5849).
    pub fn authorization(&self, method: &str, url: &str, query: &[(String, String)]) -> String {
        sign(
            method,
            url,
            query,
            (&self.api_key, &self.api_secret),
            Some((&self.token, &self.token_secret)),
            None,
            None,
        )
    }
}

fn sign(
    method: &str,
    url: &str,
    params: &[(String, String)],
    client: (&SecretString, &SecretString),
    token: Option<(&SecretString, &SecretString)>,
    callback: Option<&str>,
    verifier: Option<&str>,
) -> String {
    let mut builder = oauth1_request::Builder::<_, _>::new(
        oauth1_request::Credentials::new(client.0.expose_secret(), client.1.expose_secret()),
        oauth1_request::HmacSha1::new(),
    );
    if let Some((token, token_secret)) = token {
        builder.token(oauth1_request::Credentials::new(
            token.expose_secret(),
            token_secret.expose_secret(),
        ));
    }
    builder.callback(callback).verifier(verifier);
    let params = oauth1_request::ParameterList::new(params.to_vec());
    builder.authorize(method, url, &params)
}

fn parse_form(body: &str) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

async fn oauth1_post(
    http: &reqwest::Client,
    url: &str,
    authorization: String,
) -> Result<std::collections::HashMap<String, String>, AuthError> {
    let response = http
        .post(url)
        .header(reqwest::header::AUTHORIZATION, authorization)
        .send()
        .await
        .map_err(|e| AuthError::Unavailable(format!("X is unreachable: {}", without_url(&e))))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_server_error() {
        return Err(AuthError::Unavailable(format!(
            "X answered HTTP {status} to the OAuth 1.0a call"
        )));
    }
    if !status.is_success() {
        return Err(AuthError::NeedsReauth(format!(
            "X refused the OAuth 1.0a call (HTTP {status}): {}; check api_key and api_secret and start the connection again",
            body.chars().take(200).collect::<String>()
        )));
    }
    Ok(parse_form(&body))
}

/// Start OAuth 1.0a: get a request token, and the URL the user approves it at.
pub async fn begin_oauth1(
    http: &reqwest::Client,
    endpoints: &AuthEndpoints,
    secrets: &Secrets,
    redirect_uri: &str,
) -> Result<(String, String, SecretString), AuthError> {
    let hint = "set the api_key and api_secret secrets (from X's developer portal) first";
    let key = required(secrets, secret::API_KEY, hint).map_err(misconfigured)?;
    let key_secret = required(secrets, secret::API_SECRET, hint).map_err(misconfigured)?;
    let authorization = sign(
        "POST",
        &endpoints.oauth1_request_token,
        &[],
        (&key, &key_secret),
        None,
        Some(redirect_uri),
        None,
    );
    let answer = oauth1_post(http, &endpoints.oauth1_request_token, authorization).await?;
    let token = answer.get("oauth_token").cloned().ok_or_else(|| {
        AuthError::Unavailable("X's request token answer has no oauth_token".into())
    })?;
    let token_secret = answer.get("oauth_token_secret").cloned().ok_or_else(|| {
        AuthError::Unavailable("X's request token answer has no oauth_token_secret".into())
    })?;
    let mut url = url::Url::parse(&endpoints.oauth1_authorize)
        .map_err(|e| AuthError::Misconfigured(format!("bad OAuth 1.0a authorize URL: {e}")))?;
    url.query_pairs_mut().append_pair("oauth_token", &token);
    Ok((url.to_string(), token, SecretString::from(token_secret)))
}

/// Finish OAuth 1.0a: trade the approved request token for access tokens.
pub async fn finish_oauth1(
    http: &reqwest::Client,
    endpoints: &AuthEndpoints,
    secrets: &Secrets,
    request_token: &str,
    request_token_secret: &SecretString,
    verifier: &str,
) -> Result<Vec<(String, SecretString)>, AuthError> {
    let hint = "set the api_key and api_secret secrets first";
    let key = required(secrets, secret::API_KEY, hint).map_err(misconfigured)?;
    let key_secret = required(secrets, secret::API_SECRET, hint).map_err(misconfigured)?;
    let request_token = SecretString::from(request_token.to_owned());
    let authorization = sign(
        "POST",
        &endpoints.oauth1_access_token,
        &[],
        (&key, &key_secret),
        Some((&request_token, request_token_secret)),
        None,
        Some(verifier),
    );
    let answer = oauth1_post(http, &endpoints.oauth1_access_token, authorization).await?;
    let token = answer.get("oauth_token").cloned().ok_or_else(|| {
        AuthError::Unavailable("X's access token answer has no oauth_token".into())
    })?;
    let token_secret = answer.get("oauth_token_secret").cloned().ok_or_else(|| {
        AuthError::Unavailable("X's access token answer has no oauth_token_secret".into())
    })?;
    Ok(vec![
        (secret::ACCESS_TOKEN.into(), SecretString::from(token)),
        (
            secret::ACCESS_TOKEN_SECRET.into(),
            SecretString::from(token_secret),
        ),
    ])
}

fn misconfigured(e: AuthError) -> AuthError {
    AuthError::Misconfigured(e.to_string())
}

// ---------------------------------------------------------------------------
// OAuth 2.0
// ---------------------------------------------------------------------------

/// One OAuth 2.0 token set as it is in the vault.
#[derive(Clone)]
pub struct OAuth2Tokens {
    pub access: SecretString,
    pub refresh: Option<SecretString>,
    /// Epoch milliseconds; `None` when unknown (treated as not expiring).
    pub expires_at: Option<i64>,
}

impl OAuth2Tokens {
    pub fn from_secrets(secrets: &Secrets) -> Result<OAuth2Tokens, AuthError> {
        let access = required(
            secrets,
            secret::OAUTH2_ACCESS_TOKEN,
            "this account is not authorized yet: start the connection (POST /api/v1/connections/{id}/connect) and approve it on X",
        )?;
        Ok(OAuth2Tokens {
            access,
            refresh: secrets.get(secret::OAUTH2_REFRESH_TOKEN).cloned(),
            expires_at: secrets
                .get(secret::OAUTH2_EXPIRES_AT)
                .and_then(|s| s.expose_secret().trim().parse().ok()),
        })
    }

    /// True when the access token expires within `margin` from now.
    pub fn expires_within(&self, margin: Duration) -> bool {
        self.expires_at
            .is_some_and(|at| at - now_ms() <= margin.as_millis() as i64)
    }

    fn into_secrets(self) -> Vec<(String, SecretString)> {
        let mut out = vec![(secret::OAUTH2_ACCESS_TOKEN.to_owned(), self.access)];
        if let Some(refresh) = self.refresh {
            out.push((secret::OAUTH2_REFRESH_TOKEN.to_owned(), refresh));
        }
        if let Some(at) = self.expires_at {
            out.push((
                secret::OAUTH2_EXPIRES_AT.to_owned(),
                SecretString::from(at.to_string()),
            ));
        }
        out
    }
}

/// The app's OAuth 2.0 client.
#[derive(Clone)]
pub struct OAuth2App {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

type XTokenResponse = StandardTokenResponse<EmptyExtraTokenFields, BasicTokenType>;

/// A `BasicClient` with its authorize and token endpoints set.
type XOAuth2Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    XTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

impl OAuth2App {
    pub fn new(client_id: Option<&str>, secrets: &Secrets) -> Result<OAuth2App, AuthError> {
        let client_id = client_id.filter(|c| !c.trim().is_empty()).ok_or_else(|| {
            AuthError::Misconfigured(
                "set settings.client_id to your X app's OAuth 2.0 client id".into(),
            )
        })?;
        Ok(OAuth2App {
            client_id: client_id.to_owned(),
            client_secret: secrets.get(secret::OAUTH2_CLIENT_SECRET).cloned(),
        })
    }

    fn client(&self, endpoints: &AuthEndpoints) -> Result<XOAuth2Client, AuthError> {
        let bad = |what: &str, e: url::ParseError| {
            AuthError::Misconfigured(format!("bad X {what} URL: {e}"))
        };
        let mut client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(
                AuthUrl::new(endpoints.oauth2_authorize.clone())
                    .map_err(|e| bad("authorize", e))?,
            )
            .set_token_uri(
                TokenUrl::new(endpoints.oauth2_token.clone()).map_err(|e| bad("token", e))?,
            );
        if let Some(secret) = &self.client_secret {
            // A confidential client: X wants HTTP Basic on the token endpoint
            // (the crate's default auth type when a secret is set).
            client = client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
        }
        Ok(client)
    }
}

/// The authorization server's answer mapped to what the user must do.
fn token_error<E: std::error::Error + 'static>(
    e: RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
    during: &str,
) -> AuthError {
    match e {
        RequestTokenError::ServerResponse(response) => {
            let detail = response
                .error_description()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            match response.error() {
                // X answers a spent or revoked refresh token with
                // `invalid_request`; the standard says `invalid_grant`.
                BasicErrorResponseType::InvalidGrant | BasicErrorResponseType::InvalidRequest => {
                    AuthError::NeedsReauth(format!(
                        "X refused the {during} ({}{detail}); reconnect this account",
                        response.error()
                    ))
                }
                BasicErrorResponseType::InvalidClient
                | BasicErrorResponseType::UnauthorizedClient => AuthError::NeedsReauth(format!(
                    "X refused the app's client credentials during the {during} ({}{detail}); check settings.client_id and the oauth2_client_secret secret, then reconnect",
                    response.error()
                )),
                other => {
                    AuthError::Unavailable(format!("X refused the {during} ({other}{detail})"))
                }
            }
        }
        RequestTokenError::Request(e) => {
            AuthError::Unavailable(format!("X's token endpoint is unreachable: {e}"))
        }
        RequestTokenError::Parse(e, _) => {
            AuthError::Unavailable(format!("X's token answer could not be read: {e}"))
        }
        RequestTokenError::Other(m) => AuthError::Unavailable(m),
    }
}

fn tokens_from(response: &XTokenResponse, previous_refresh: Option<SecretString>) -> OAuth2Tokens {
    OAuth2Tokens {
        access: SecretString::from(response.access_token().secret().to_owned()),
        refresh: response
            .refresh_token()
            .map(|r| SecretString::from(r.secret().to_owned()))
            .or(previous_refresh),
        expires_at: response
            .expires_in()
            .map(|d| now_ms() + d.as_millis() as i64),
    }
}

/// An error type for the HTTP adapter below.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// oauth2's HTTP client over our reqwest 0.13 client (the crate's own reqwest
/// feature pins reqwest 0.12; STACK.md).
async fn oauth_http(
    http: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(without_url(&e)))?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| HttpError(without_url(&e)))?;
    builder
        .body(body.to_vec())
        .map_err(|e| HttpError(e.to_string()))
}

/// A reqwest error without its URL (which may carry query secrets elsewhere).
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

/// Start the OAuth 2.0 PKCE flow: (authorize URL, state, PKCE verifier).
pub fn begin_oauth2(
    app: &OAuth2App,
    endpoints: &AuthEndpoints,
    redirect_uri: &str,
) -> Result<(String, String, SecretString), AuthError> {
    let client = app.client(endpoints)?.set_redirect_uri(
        RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| AuthError::Misconfigured(format!("bad callback URL: {e}")))?,
    );
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
        .set_pkce_challenge(challenge)
        .url();
    Ok((
        url.to_string(),
        state.secret().to_owned(),
        SecretString::from(verifier.secret().to_owned()),
    ))
}

/// Finish the OAuth 2.0 flow: exchange the code (with the PKCE verifier).
pub async fn finish_oauth2(
    http: &reqwest::Client,
    app: &OAuth2App,
    endpoints: &AuthEndpoints,
    redirect_uri: &str,
    code: &str,
    verifier: &SecretString,
) -> Result<Vec<(String, SecretString)>, AuthError> {
    let client = app.client(endpoints)?.set_redirect_uri(
        RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| AuthError::Misconfigured(format!("bad callback URL: {e}")))?,
    );
    let http = http.clone();
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()))
        .request_async(&|request| oauth_http(http.clone(), request))
        .await
        .map_err(|e| token_error(e, "authorization code"))?;
    Ok(tokens_from(&response, None).into_secrets())
}

/// The OAuth 2.0 tokens of one running connection, refreshed single-flight.
pub struct TokenKeeper {
    app: OAuth2App,
    endpoints: AuthEndpoints,
    http: reqwest::Client,
    env: Arc<dyn RuntimeEnv>,
    tokens: RwLock<OAuth2Tokens>,
}

impl TokenKeeper {
    pub fn new(
        app: OAuth2App,
        endpoints: AuthEndpoints,
        http: reqwest::Client,
        env: Arc<dyn RuntimeEnv>,
        tokens: OAuth2Tokens,
    ) -> TokenKeeper {
        TokenKeeper {
            app,
            endpoints,
            http,
            env,
            tokens: RwLock::new(tokens),
        }
    }

    fn current(&self) -> OAuth2Tokens {
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

    /// X refused `rejected` with a 401: get a different token, refreshing if
    /// nobody has yet.
    pub async fn after_rejection(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, AuthError> {
        let rejected = rejected.expose_secret().to_owned();
        self.refresh(move |stored| stored.access.expose_secret() != rejected)
            .await
    }

    /// Refresh under the cross-process lock unless the stored tokens already
    /// satisfy `good_enough` (someone refreshed while we waited).
    async fn refresh(
        &self,
        good_enough: impl Fn(&OAuth2Tokens) -> bool,
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
        let stored = OAuth2Tokens::from_secrets(&secrets)?;
        if good_enough(&stored) {
            *self.tokens.write().expect("token lock poisoned") = stored.clone();
            return Ok(stored.access);
        }
        let refresh = stored.refresh.clone().ok_or_else(|| {
            AuthError::NeedsReauth(
                "the X access token expired and there is no refresh token (the offline.access scope was not granted); reconnect this account".into(),
            )
        })?;
        let client = self.app.client(&self.endpoints)?;
        let http = self.http.clone();
        tracing::info!("refreshing the X access token");
        let response = client
            .exchange_refresh_token(&RefreshToken::new(refresh.expose_secret().to_owned()))
            .request_async(&|request| oauth_http(http.clone(), request))
            .await
            .map_err(|e| token_error(e, "refresh token"))?;
        let fresh = tokens_from(&response, Some(refresh));
        // The old refresh token is spent now: the new pair must reach the
        // vault, or the account is lost at the next restart.
        let changes: Vec<_> = fresh
            .clone()
            .into_secrets()
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let mut stored_ok = false;
        for attempt in 1..=5 {
            match self.env.store_secrets(changes.clone()).await {
                Ok(()) => {
                    stored_ok = true;
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, attempt, "could not store the refreshed X tokens; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        }
        if !stored_ok {
            tracing::error!(
                "the refreshed X tokens are only in memory; they are lost at the next restart"
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
        let tokens = |at: Option<i64>| OAuth2Tokens {
            access: SecretString::from("a"),
            refresh: None,
            expires_at: at,
        };
        assert!(!tokens(None).expires_within(REFRESH_MARGIN));
        assert!(tokens(Some(now_ms() + 60_000)).expires_within(REFRESH_MARGIN));
        assert!(!tokens(Some(now_ms() + 3_600_000)).expires_within(REFRESH_MARGIN));
        assert!(tokens(Some(now_ms() - 1)).expires_within(Duration::ZERO));
    }

    #[test]
    fn oauth1_signs_query_parameters_and_not_the_body() {
        let keys = OAuth1Keys {
            api_key: SecretString::from("key"),
            api_secret: SecretString::from("secret"),
            token: SecretString::from("token"),
            token_secret: SecretString::from("token-secret"),
        };
        let header = keys.authorization(
            "GET",
            "https://api.x.com/2/tweets/search/recent",
            &[("query".into(), "rust lang".into())],
        );
        assert!(header.starts_with("OAuth "), "{header}");
        for part in [
            "oauth_consumer_key=\"key\"",
            "oauth_token=\"token\"",
            "oauth_signature_method=\"HMAC-SHA1\"",
            "oauth_signature=",
        ] {
            assert!(header.contains(part), "{header} lacks {part}");
        }
        assert!(
            !header.contains("secret"),
            "no secret in the header: {header}"
        );
        assert!(
            !header.contains("query="),
            "query parameters are signed, not sent in the header"
        );
    }

    #[test]
    fn the_pkce_flow_asks_for_every_scope_with_s256() {
        let app = OAuth2App {
            client_id: "client".into(),
            client_secret: None,
        };
        let endpoints = AuthEndpoints::new("https://api.x.com", "https://x.com/i/oauth2/authorize");
        let (url, state, verifier) =
            begin_oauth2(&app, &endpoints, "http://127.0.0.1:7700/oauth/x/callback").unwrap();
        let url = url::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], state);
        assert_eq!(q["client_id"], "client");
        assert_eq!(q["scope"], SCOPES.join(" "));
        assert!(verifier.expose_secret().len() >= 43);
    }
}
