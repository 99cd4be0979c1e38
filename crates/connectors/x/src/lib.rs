//! The `x` connector: one X (Twitter) account per connection.
//!
//! * **Auth** (`auth.rs`): OAuth 2.0 authorization code with PKCE (S256),
//!   the default, with tokens refreshed single-flight ahead of expiry; or
//!   OAuth 1.0a user context, by the three-legged flow or by entering the
//!   four values directly. Settings `auth` picks the scheme.
//! * **Client** (`client.rs`, `limits.rs`): every request signed or borne,
//!   passed through a per-endpoint rate-limit gate fed by X's
//!   `x-rate-limit-*` headers, retried once after a 401 with a fresh token.
//! * **Actions** (`actions.rs`, `media.rs`): `x.post` (text, reply, quote,
//!   poll, up to 4 images or a GIF or a video from the media store, uploaded
//!   in chunks with progress events), `x.delete`, `x.search_recent`, `x.me`.
//!   Posting checks for an earlier attempt's post before sending again.
//! * **Triggers** (`triggers.rs`): `x.mention` and `x.search.match` pollers
//!   with durable cursors; off unless configured.
//!
//! Base URLs come from the daemon's `services` configuration (`x_api`,
//! `x_authorize`, and the token endpoints `x_token`,
//! `x_oauth1_request_token`, `x_oauth1_authorize`, `x_oauth1_access_token`,
//! which default to paths under `x_api`), so the same code talks to X, to a
//! self-hosted OAuth proxy or to the simulator.

mod actions;
pub mod auth;
mod client;
mod limits;
pub mod media;
mod triggers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_core::{
    ActionCall, ActionError, ActionSpec, AuthKind, AuthorizeFlow, AuthorizeRequest, AuthorizeStart,
    Connector, ConnectorError, ConnectorManifest, ParamsContext, RuntimeContext, SecretSpec,
    Session, TriggerSpec,
};
use tokio_util::sync::CancellationToken;

pub use actions::{MAX_WEIGHTED_LENGTH, weighted_length};
use auth::{AuthEndpoints, AuthError, AuthMode, OAuth1Keys, OAuth2App, OAuth2Tokens, TokenKeeper};
use client::{Call, Credentials, XClient, XError};
pub use triggers::{MentionsSettings, SearchWatch};

/// Settings of an X connection (see the settings schema in [`manifest`]).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct XSettings {
    pub auth: AuthMode,
    pub client_id: Option<String>,
    pub mentions: MentionsSettings,
    pub search_watches: Vec<SearchWatch>,
}

/// The account a session acts as.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Identity {
    pub id: String,
    pub username: String,
    pub name: String,
}

const IDENTITY_STATE: &str = "identity";

fn post_id_schema(description: &str) -> Value {
    json!({"type": "string", "pattern": "^[0-9]{1,19}$", "description": description})
}

fn interval_schema() -> Value {
    json!({"type": "integer", "minimum": 15, "maximum": 86400, "description": "Seconds between polls (default 60). Mind the endpoint's rate limit."})
}

fn post_payload_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "text": {"type": "string"},
            "author_id": {"type": "string"},
            "created_at": {"type": "string"},
            "conversation_id": {"type": "string"},
            "account": {"type": "string", "description": "Username of the watching account."},
            "is_self": {"type": "boolean", "description": "Posted by the watching account itself; rules skip it unless `on.include_self` is true."},
            "watch": {"type": "string"},
            "query": {"type": "string"}
        }
    })
}

fn manifest() -> ConnectorManifest {
    let secret = |name: &str, description: &str| SecretSpec {
        name: name.into(),
        description: description.into(),
        required: false,
    };
    ConnectorManifest {
        name: "x".into(),
        display_name: "X (Twitter)".into(),
        description: "Post, reply, quote, delete and search on X as one account, with images, GIFs and video; watch mentions and searches. OAuth 2.0 (PKCE) or OAuth 1.0a.".into(),
        auth: AuthKind::Oauth2,
        settings_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "auth": {"enum": ["oauth2", "oauth1"], "description": "oauth2 (default): connect through X's OAuth 2.0 consent page; needs client_id. oauth1: the four OAuth 1.0a values, entered directly or obtained through the connect flow."},
                "client_id": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Your X app's OAuth 2.0 client id (developer portal, 'Keys and tokens')."},
                "mentions": {
                    "type": "object",
                    "additionalProperties": false,
                    "description": "Emit x.mention for new mentions of this account. Off by default: no calls are made unless enabled.",
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "interval_secs": interval_schema()
                    }
                },
                "search_watches": {
                    "type": "array",
                    "maxItems": 20,
                    "description": "Recent-search queries to watch; each new match is an x.search.match event.",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["name", "query"],
                        "properties": {
                            "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                            "query": {"type": "string", "minLength": 1, "maxLength": 512, "description": "X search query, such as `switchboard -is:retweet`."},
                            "interval_secs": interval_schema()
                        }
                    }
                }
            }
        }),
        secrets: vec![
            secret(auth::secret::OAUTH2_CLIENT_SECRET, "OAuth 2.0 client secret of a confidential X app (omit for a public client)."),
            secret(auth::secret::OAUTH2_ACCESS_TOKEN, "OAuth 2.0 access token; set by the connect flow."),
            secret(auth::secret::OAUTH2_REFRESH_TOKEN, "OAuth 2.0 refresh token; set by the connect flow, rotated on every refresh."),
            secret(auth::secret::OAUTH2_EXPIRES_AT, "When the OAuth 2.0 access token expires (epoch ms); set by the connect flow."),
            secret(auth::secret::API_KEY, "OAuth 1.0a API key (consumer key)."),
            secret(auth::secret::API_SECRET, "OAuth 1.0a API key secret (consumer secret)."),
            secret(auth::secret::ACCESS_TOKEN, "OAuth 1.0a access token of the account."),
            secret(auth::secret::ACCESS_TOKEN_SECRET, "OAuth 1.0a access token secret of the account."),
        ],
        triggers: vec![
            TriggerSpec {
                event_type: "x.mention".into(),
                description: "A new post mentioning this account (settings.mentions).".into(),
                payload_schema: post_payload_schema(),
            },
            TriggerSpec {
                event_type: "x.search.match".into(),
                description: "A new post matching one of settings.search_watches.".into(),
                payload_schema: post_payload_schema(),
            },
            TriggerSpec {
                event_type: "x.media.progress".into(),
                description: "Progress of a media upload inside an x.post job.".into(),
                payload_schema: json!({
                    "type": "object",
                    "properties": {
                        "job_id": {"type": "string"},
                        "media": {"type": "string"},
                        "x_media_id": {"type": "string"},
                        "phase": {"enum": ["uploading", "processing", "succeeded"]},
                        "bytes_sent": {"type": "integer"},
                        "total_bytes": {"type": "integer"},
                        "percent": {"type": ["integer", "null"]}
                    }
                }),
            },
        ],
        actions: vec![
            ActionSpec {
                name: "x.post".into(),
                description: "Publish a post on X from this account: text (280 characters as X counts them: links 23, most CJK and emoji 2), optionally as a reply (reply_to) or a quote (quote_of), with up to 4 images or 1 GIF or 1 video (media: ids from the media store, uploaded first), or a poll. Media, poll and quote cannot be combined. Returns the post id and URL. Safe to retry: an earlier attempt's post is found instead of posting twice.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "text": {"type": "string", "maxLength": 25000, "description": "The post text."},
                        "reply_to": post_id_schema("Id of the post this one replies to."),
                        "quote_of": post_id_schema("Id of the post this one quotes."),
                        "media": {
                            "type": "array",
                            "maxItems": 4,
                            "items": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                            "description": "Media store ids (32 hex) of up to 4 images, or 1 GIF, or 1 MP4 video."
                        },
                        "poll": {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["options", "duration_minutes"],
                            "properties": {
                                "options": {"type": "array", "minItems": 2, "maxItems": 4, "items": {"type": "string", "minLength": 1, "maxLength": 25}},
                                "duration_minutes": {"type": "integer", "minimum": 5, "maximum": 10080}
                            }
                        },
                        "reply_settings": {"enum": ["following", "mentionedUsers", "subscribers", "verified"], "description": "Who may reply."}
                    },
                    "anyOf": [{"required": ["text"]}, {"required": ["media"]}]
                }),
                result_schema: json!({
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "text": {"type": "string"},
                        "account": {"type": "string"},
                        "url": {"type": "string"},
                        "media_ids": {"type": "array", "items": {"type": "string"}},
                        "recovered": {"type": "boolean", "description": "True when an earlier, interrupted attempt had already created the post."}
                    }
                }),
            },
            ActionSpec {
                name: "x.delete".into(),
                description: "Delete one of this account's posts by id. Returns {id, deleted}.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["id"],
                    "properties": {"id": post_id_schema("Id of the post to delete.")}
                }),
                result_schema: json!({"type": "object", "properties": {"id": {"type": "string"}, "deleted": {"type": "boolean"}}}),
            },
            ActionSpec {
                name: "x.search_recent".into(),
                description: "Search posts from the last 7 days with X's query syntax (for example `from:someone`, `\"exact phrase\"`, `-is:retweet`). Returns the matching posts, newest first.".into(),
                params_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["query"],
                    "properties": {
                        "query": {"type": "string", "minLength": 1, "maxLength": 512},
                        "max_results": {"type": "integer", "minimum": 10, "maximum": 100, "description": "How many posts (default 10)."}
                    }
                }),
                result_schema: json!({"type": "object", "properties": {"posts": {"type": "array"}, "result_count": {"type": "integer"}, "newest_id": {}}}),
            },
            ActionSpec {
                name: "x.me".into(),
                description: "Who this connection posts as: the account's id, username and name.".into(),
                params_schema: json!({"type": "object", "additionalProperties": false, "properties": {}}),
                result_schema: json!({"type": "object", "properties": {"id": {"type": "string"}, "username": {"type": "string"}, "name": {"type": "string"}}}),
            },
        ],
    }
}

pub struct XConnector {
    manifest: ConnectorManifest,
    http: reqwest::Client,
    api: String,
    endpoints: AuthEndpoints,
}

impl XConnector {
    /// `api`: X's API base (`https://api.x.com`, also the OAuth 1.0a and
    /// token endpoints); `authorize`: the OAuth 2.0 consent page
    /// (`https://x.com/i/oauth2/authorize`).
    pub fn new(api: &str, authorize: &str) -> XConnector {
        XConnector::with_endpoints(api, AuthEndpoints::new(api, authorize))
    }

    /// `api`: X's API base (also where media is uploaded); `endpoints`: each
    /// authorization endpoint on its own (a self-hosted OAuth proxy, a test
    /// authorization server).
    pub fn with_endpoints(api: &str, endpoints: AuthEndpoints) -> XConnector {
        // reqwest is built without a bundled TLS provider (ring instead of aws-lc:
        // a much lighter build); install it once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        XConnector {
            manifest: manifest(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(600))
                .build()
                .expect("a default HTTP client builds"),
            api: api.trim_end_matches('/').to_owned(),
            endpoints,
        }
    }

    fn settings(value: &Value) -> Result<XSettings, ConnectorError> {
        serde_json::from_value(value.clone())
            .map_err(|e| ConnectorError::Misconfigured(format!("x settings: {e}")))
    }
}

fn connector_error(e: AuthError) -> ConnectorError {
    match e {
        AuthError::NeedsReauth(m) => ConnectorError::NeedsReauth(m),
        AuthError::Misconfigured(m) => ConnectorError::Misconfigured(m),
        AuthError::Unavailable(m) => ConnectorError::Unavailable(m),
    }
}

/// `GET /2/users/me`.
pub(crate) async fn fetch_identity(client: &XClient, margin: Duration) -> Result<Identity, XError> {
    let mut call = Call::new(Method::GET, "/2/users/me", "GET /2/users/me");
    call.margin = margin;
    let answer = client.send(call).await?;
    let data = &answer["data"];
    match (data["id"].as_str(), data["username"].as_str()) {
        (Some(id), Some(username)) => Ok(Identity {
            id: id.to_owned(),
            username: username.to_owned(),
            name: data["name"].as_str().unwrap_or(username).to_owned(),
        }),
        _ => Err(XError::Transient("X's users/me answer has no id".into())),
    }
}

#[async_trait]
impl Connector for XConnector {
    fn manifest(&self) -> &ConnectorManifest {
        &self.manifest
    }

    async fn connect(&self, ctx: RuntimeContext) -> Result<Arc<dyn Session>, ConnectorError> {
        let settings = Self::settings(&ctx.settings)?;
        let credentials = match settings.auth {
            AuthMode::Oauth1 => Credentials::OAuth1(
                OAuth1Keys::from_secrets(&ctx.secrets).map_err(connector_error)?,
            ),
            AuthMode::Oauth2 => {
                if !ctx.secrets.contains_key(auth::secret::OAUTH2_ACCESS_TOKEN) {
                    return Err(ConnectorError::NeedsReauth(format!(
                        "this account is not authorized yet: run `switchboard connections connect {}` and approve it on X",
                        ctx.connection_id
                    )));
                }
                let tokens = OAuth2Tokens::from_secrets(&ctx.secrets).map_err(connector_error)?;
                let app = OAuth2App::new(settings.client_id.as_deref(), &ctx.secrets)
                    .map_err(connector_error)?;
                Credentials::OAuth2(TokenKeeper::new(
                    app,
                    self.endpoints.clone(),
                    self.http.clone(),
                    ctx.env.clone(),
                    tokens,
                ))
            }
        };
        let client = XClient::new(self.http.clone(), &self.api, credentials);
        // Verify the credentials and learn who we are. The token is only
        // refreshed here if it has already expired; actions refresh ahead.
        let identity = match fetch_identity(&client, Duration::ZERO).await {
            Ok(identity) => {
                if let Err(error) = ctx
                    .env
                    .store_state(IDENTITY_STATE, Some(json!(identity)))
                    .await
                {
                    tracing::warn!(%error, "could not remember the X identity");
                }
                identity
            }
            Err(XError::RateLimited { retry_after, .. }) => {
                // users/me allows 75 calls per 15 minutes: a connection that
                // restarts often falls back on the identity it saw last.
                let known = ctx
                    .env
                    .load_state(IDENTITY_STATE)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|v| serde_json::from_value::<Identity>(v).ok());
                match known {
                    Some(identity) => identity,
                    None => {
                        return Err(ConnectorError::Unavailable(format!(
                            "X's users/me rate limit is spent; retrying in {:.0}s",
                            retry_after.as_secs_f64()
                        )));
                    }
                }
            }
            Err(XError::NeedsReauth(m)) => return Err(ConnectorError::NeedsReauth(m)),
            Err(XError::Transient(m)) => return Err(ConnectorError::Unavailable(m)),
            Err(e @ XError::Rejected { .. }) => {
                return Err(ConnectorError::Misconfigured(e.to_string()));
            }
        };
        tracing::info!(account = %identity.username, "X account connected");
        Ok(Arc::new(XSession {
            settings,
            client,
            identity,
            uploads: media::UploadCache::default(),
            ctx,
        }))
    }

    fn callback_state_params(&self) -> &'static [&'static str] {
        &["state", "oauth_token", "denied"]
    }

    async fn begin_authorization(
        &self,
        request: AuthorizeRequest,
    ) -> Result<AuthorizeStart, ConnectorError> {
        let settings = Self::settings(&request.settings)?;
        let start = match settings.auth {
            AuthMode::Oauth2 => {
                let app = OAuth2App::new(settings.client_id.as_deref(), &request.secrets)
                    .map_err(connector_error)?;
                let (url, state, verifier) =
                    auth::begin_oauth2(&app, &self.endpoints, &request.redirect_uri)
                        .map_err(connector_error)?;
                AuthorizeStart {
                    authorize_url: url,
                    state,
                    flow_secret: verifier,
                    flow_data: json!({ "mode": "oauth2" }),
                }
            }
            AuthMode::Oauth1 => {
                let (url, token, token_secret) = auth::begin_oauth1(
                    &self.http,
                    &self.endpoints,
                    &request.secrets,
                    &request.redirect_uri,
                )
                .await
                .map_err(|e| match e {
                    AuthError::NeedsReauth(m) => ConnectorError::Misconfigured(m),
                    other => connector_error(other),
                })?;
                AuthorizeStart {
                    authorize_url: url,
                    state: token,
                    flow_secret: token_secret,
                    flow_data: json!({ "mode": "oauth1" }),
                }
            }
        };
        Ok(start)
    }

    async fn finish_authorization(
        &self,
        request: AuthorizeRequest,
        flow: AuthorizeFlow,
        params: &BTreeMap<String, String>,
    ) -> Result<Vec<(String, SecretString)>, ConnectorError> {
        let missing = |name: &str| {
            ConnectorError::Misconfigured(format!(
                "X's callback carries no `{name}`; start the connection again"
            ))
        };
        let reauth_as_config = |e: AuthError| match e {
            AuthError::NeedsReauth(m) => ConnectorError::Misconfigured(m),
            other => connector_error(other),
        };
        match flow.flow_data["mode"].as_str() {
            Some("oauth1") => {
                let token = params
                    .get("oauth_token")
                    .ok_or_else(|| missing("oauth_token"))?;
                let verifier = params
                    .get("oauth_verifier")
                    .ok_or_else(|| missing("oauth_verifier"))?;
                auth::finish_oauth1(
                    &self.http,
                    &self.endpoints,
                    &request.secrets,
                    token,
                    &flow.flow_secret,
                    verifier,
                )
                .await
                .map_err(reauth_as_config)
            }
            _ => {
                let settings = Self::settings(&request.settings)?;
                let app = OAuth2App::new(settings.client_id.as_deref(), &request.secrets)
                    .map_err(connector_error)?;
                let code = params.get("code").ok_or_else(|| missing("code"))?;
                auth::finish_oauth2(
                    &self.http,
                    &app,
                    &self.endpoints,
                    &request.redirect_uri,
                    code,
                    &flow.flow_secret,
                )
                .await
                .map_err(reauth_as_config)
            }
        }
    }

    async fn check_params(
        &self,
        action: &str,
        params: &Value,
        ctx: &dyn ParamsContext,
    ) -> Result<(), Vec<(String, String)>> {
        let errors = match action {
            "x.post" => actions::check_post(params, ctx).await,
            _ => Vec::new(),
        };
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

pub(crate) struct XSession {
    pub(crate) settings: XSettings,
    pub(crate) client: XClient,
    pub(crate) identity: Identity,
    pub(crate) uploads: media::UploadCache,
    pub(crate) ctx: RuntimeContext,
}

#[async_trait]
impl Session for XSession {
    async fn run(&self, cancel: CancellationToken) -> Result<(), ConnectorError> {
        self.run_triggers(cancel).await
    }

    async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError> {
        match call.action.as_str() {
            "x.post" => self.post(&call).await,
            "x.delete" => self.delete(&call).await,
            "x.search_recent" => self.search_recent(&call).await,
            "x.me" => self.me().await,
            other => Err(ActionError::InvalidParams {
                field: "action".into(),
                message: format!("x has no action `{other}`"),
            }),
        }
    }

    /// `GET /2/users/me`: who the credentials act as.
    async fn check(&self) -> Result<Value, ActionError> {
        self.me().await
    }
}
