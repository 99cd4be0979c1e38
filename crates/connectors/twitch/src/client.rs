//! One account's Helix client: every request carries `Client-Id` and a
//! bearer token from the [`TokenKeeper`]; a 401 refreshes once and retries
//! once; Twitch's answers become [`HelixError`]s that say what happens next.
//!
//! Hand-rolled over reqwest rather than `twitch_api`'s `HelixClient`, whose
//! base URL is a process-wide environment variable (`TWITCH_HELIX_URL`,
//! behind its `mock_api` feature) and which would cost the build about two
//! minutes of CPU on our profile for the dozen endpoints used here.

use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use switchboard_core::ActionError;
use switchboard_core::time::now_ms;

use crate::auth::{AuthError, REFRESH_MARGIN, TokenKeeper, without_url};

#[derive(Debug, thiserror::Error)]
pub enum HelixError {
    /// Twitch's budget for this call is spent (or a cooldown runs).
    #[error("Twitch is rate limiting {endpoint}: {message}; retrying in {:.0}s", retry_after.as_secs_f64())]
    RateLimited {
        endpoint: String,
        message: String,
        retry_after: Duration,
    },
    /// The credentials are no good; the user must reconnect.
    #[error("{0}")]
    NeedsReauth(String),
    /// Twitch failed or could not be reached; worth retrying with backoff.
    #[error("{0}")]
    Transient(String),
    /// Twitch refused the request itself (4xx); retrying cannot help.
    #[error("Twitch refused {endpoint} (HTTP {status}): {message}")]
    Rejected {
        endpoint: String,
        status: u16,
        message: String,
    },
}

impl From<AuthError> for HelixError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::NeedsReauth(m) | AuthError::Misconfigured(m) => HelixError::NeedsReauth(m),
            AuthError::Unavailable(m) => HelixError::Transient(m),
        }
    }
}

impl From<HelixError> for ActionError {
    fn from(e: HelixError) -> Self {
        match e {
            HelixError::RateLimited { retry_after, .. } => ActionError::RateLimited {
                message: e.to_string(),
                retry_after,
            },
            HelixError::NeedsReauth(m) => ActionError::NeedsReauth(m),
            HelixError::Transient(m) => ActionError::transient(m),
            HelixError::Rejected { .. } => ActionError::Permanent(e.to_string()),
        }
    }
}

/// One Helix call.
pub struct Call {
    pub method: Method,
    /// Path below the Helix base, such as `/chat/messages`.
    pub path: &'static str,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Call {
    pub fn new(method: Method, path: &'static str) -> Call {
        Call {
            method,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    pub fn get(path: &'static str) -> Call {
        Call::new(Method::GET, path)
    }

    pub fn query(mut self, name: &str, value: impl ToString) -> Call {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn json(mut self, body: Value) -> Call {
        self.body = Some(body);
        self
    }

    fn endpoint(&self) -> String {
        format!("{} /helix{}", self.method, self.path)
    }
}

/// Twitch's error body: `{"error":"Unauthorized","status":401,"message":"…"}`.
pub(crate) fn message_of(body: &Value, fallback: &str) -> String {
    let text = body["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .or_else(|| body["error"].as_str())
        .unwrap_or(fallback);
    text.chars().take(300).collect()
}

/// How long to wait after a 429: `Retry-After` (seconds), or
/// `Ratelimit-Reset` (epoch seconds) when the points bucket is spent, else
/// `fallback` (an endpoint's own cooldown).
pub(crate) fn retry_after(
    headers: &reqwest::header::HeaderMap,
    now_ms: i64,
    fallback: Duration,
) -> Duration {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    if let Some(seconds) = number("retry-after") {
        return Duration::from_secs(seconds.clamp(1, 3600) as u64);
    }
    // `Ratelimit-*` describe the points bucket on every answer; they explain
    // a 429 only when the bucket is spent (a shoutout cooldown is not).
    let bucket_spent = number("ratelimit-remaining").is_none_or(|r| r <= 0);
    if let Some(reset) = number("ratelimit-reset").filter(|_| bucket_spent) {
        let wait = reset * 1000 - now_ms;
        return Duration::from_millis(wait.clamp(1000, 3_600_000) as u64);
    }
    fallback
}

pub struct HelixClient {
    http: reqwest::Client,
    base: String,
    keeper: TokenKeeper,
}

impl HelixClient {
    pub fn new(http: reqwest::Client, base: &str, keeper: TokenKeeper) -> HelixClient {
        HelixClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            keeper,
        }
    }

    pub fn keeper(&self) -> &TokenKeeper {
        &self.keeper
    }

    /// Send a call; the JSON answer on 2xx (`Null` for an empty one).
    pub async fn send(&self, call: Call) -> Result<Value, HelixError> {
        self.send_with(call, Duration::from_secs(120)).await
    }

    /// Like [`send`](Self::send), with the wait assumed after a 429 that
    /// names none (shoutout cooldowns are 2 minutes).
    pub async fn send_with(
        &self,
        call: Call,
        default_retry_after: Duration,
    ) -> Result<Value, HelixError> {
        let url = format!("{}{}", self.base, call.path);
        let endpoint = call.endpoint();
        let mut rejected: Option<SecretString> = None;
        loop {
            let token = match &rejected {
                Some(token) => self.keeper.after_rejection(token).await?,
                None => self.keeper.access_token(REFRESH_MARGIN).await?,
            };
            let mut request = self
                .http
                .request(call.method.clone(), &url)
                .header("Client-Id", self.keeper.client_id())
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", token.expose_secret()),
                )
                .timeout(Duration::from_secs(30));
            if !call.query.is_empty() {
                request = request.query(&call.query);
            }
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| HelixError::Transient(format!("{endpoint}: {}", without_url(&e))))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response
                .text()
                .await
                .map_err(|e| HelixError::Transient(format!("{endpoint}: {}", without_url(&e))))?;
            let body: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            match status {
                200..=299 => return Ok(body),
                401 if rejected.is_none() => {
                    // One refresh, one retry.
                    rejected = Some(token);
                    continue;
                }
                401 => {
                    return Err(HelixError::NeedsReauth(format!(
                        "Twitch rejected this account's token ({}) even after a refresh; reconnect this account",
                        message_of(&body, "Unauthorized")
                    )));
                }
                429 => {
                    return Err(HelixError::RateLimited {
                        message: message_of(&body, "Too Many Requests"),
                        retry_after: retry_after(&headers, now_ms(), default_retry_after),
                        endpoint,
                    });
                }
                500..=599 => {
                    return Err(HelixError::Transient(format!(
                        "Twitch answered HTTP {status} to {endpoint}: {}",
                        message_of(&body, "server error")
                    )));
                }
                _ => {
                    return Err(HelixError::Rejected {
                        endpoint,
                        status,
                        message: message_of(&body, "no detail given"),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};
    use serde_json::json;

    #[test]
    fn twitch_error_bodies_are_read() {
        assert_eq!(
            message_of(
                &json!({"error": "Unauthorized", "status": 401, "message": "Invalid OAuth token"}),
                "-"
            ),
            "Invalid OAuth token"
        );
        assert_eq!(
            message_of(&json!({"error": "Bad Request", "status": 400}), "-"),
            "Bad Request"
        );
        assert_eq!(message_of(&json!("text"), "fallback"), "fallback");
    }

    #[test]
    fn a_429_waits_for_the_reset_twitch_names() {
        let now = 1_700_000_000_000;
        let mut headers = HeaderMap::new();
        assert_eq!(
            retry_after(&headers, now, Duration::from_secs(120)),
            Duration::from_secs(120)
        );
        headers.insert("ratelimit-reset", HeaderValue::from_static("1700000007"));
        assert_eq!(
            retry_after(&headers, now, Duration::ZERO),
            Duration::from_secs(7)
        );
        // A bucket with points left did not cause the 429: a cooldown did.
        headers.insert("ratelimit-remaining", HeaderValue::from_static("799"));
        assert_eq!(
            retry_after(&headers, now, Duration::from_secs(120)),
            Duration::from_secs(120)
        );
        headers.insert("retry-after", HeaderValue::from_static("30"));
        assert_eq!(
            retry_after(&headers, now, Duration::ZERO),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn errors_map_to_what_the_job_runner_does() {
        let limited: ActionError = HelixError::RateLimited {
            endpoint: "POST /helix/chat/shoutouts".into(),
            message: "cooldown".into(),
            retry_after: Duration::from_secs(120),
        }
        .into();
        assert!(
            matches!(limited, ActionError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(120))
        );
        let rejected: ActionError = HelixError::Rejected {
            endpoint: "x".into(),
            status: 400,
            message: "no".into(),
        }
        .into();
        assert!(!rejected.is_retryable());
        let reauth: ActionError = HelixError::NeedsReauth("reconnect this account".into()).into();
        assert_eq!(reauth.code(), "needs_reauth");
    }
}
