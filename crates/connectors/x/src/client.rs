//! One account's HTTP client for X API v2: signs or bears every request,
//! passes it through the rate-limit gate, retries once after a 401 with a
//! refreshed OAuth 2.0 token, and turns X's answers into [`XError`]s that
//! say what happens next (wait for the window, reconnect, retry, give up).

use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use switchboard_core::ActionError;

use crate::auth::{AuthError, OAuth1Keys, REFRESH_MARGIN, TokenKeeper, without_url};
use crate::limits::{LimitHeaders, RateGate};

/// How an account proves who it is.
pub enum Credentials {
    OAuth1(OAuth1Keys),
    OAuth2(TokenKeeper),
}

#[derive(Debug, thiserror::Error)]
pub enum XError {
    /// The endpoint's budget is spent; call again after `retry_after`.
    #[error("X's rate limit for {endpoint} is spent; waiting {:.0}s for the window to reset", retry_after.as_secs_f64())]
    RateLimited {
        endpoint: &'static str,
        retry_after: Duration,
    },
    /// The credentials are no good; the user must reconnect.
    #[error("{0}")]
    NeedsReauth(String),
    /// X failed or could not be reached; worth retrying with backoff.
    #[error("{0}")]
    Transient(String),
    /// X refused the request itself (4xx); retrying cannot help.
    #[error("X refused the request (HTTP {status}): {detail}")]
    Rejected { status: u16, detail: String },
}

impl From<AuthError> for XError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::NeedsReauth(m) | AuthError::Misconfigured(m) => XError::NeedsReauth(m),
            AuthError::Unavailable(m) => XError::Transient(m),
        }
    }
}

impl From<XError> for ActionError {
    fn from(e: XError) -> Self {
        match e {
            XError::RateLimited { retry_after, .. } => ActionError::RateLimited {
                message: e.to_string(),
                // A little spread so that jobs waiting on one window do not
                // all wake in the same millisecond (the gate admits them in
                // order anyway).
                retry_after: retry_after + Duration::from_millis(rand::random_range(50..500)),
            },
            XError::NeedsReauth(m) => ActionError::NeedsReauth(m),
            XError::Transient(m) => ActionError::transient(m),
            XError::Rejected { .. } => ActionError::Permanent(e.to_string()),
        }
    }
}

/// A request body.
pub enum Body {
    Empty,
    Json(Value),
    /// One multipart media segment (`segment_index`, `media`).
    Segment {
        index: u64,
        bytes: Vec<u8>,
    },
}

/// One call to X.
pub struct Call {
    pub method: Method,
    /// Path below the API base, such as `/2/tweets`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Body,
    /// The rate-limit bucket, such as `POST /2/tweets`.
    pub endpoint: &'static str,
    /// Refresh an OAuth 2.0 token expiring within this long before calling.
    pub margin: Duration,
    pub timeout: Duration,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>, endpoint: &'static str) -> Call {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::Empty,
            endpoint,
            margin: REFRESH_MARGIN,
            timeout: Duration::from_secs(30),
        }
    }

    pub fn query(mut self, name: &str, value: impl ToString) -> Call {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn json(mut self, body: Value) -> Call {
        self.body = Body::Json(body);
        self
    }
}

pub struct XClient {
    http: reqwest::Client,
    api: String,
    credentials: Credentials,
    pub(crate) gate: RateGate,
}

/// X's problem bodies: `{"title","detail"}` or `{"errors":[{"message"}]}`.
fn detail_of(body: &Value, fallback: &str) -> String {
    let text = body["detail"]
        .as_str()
        .or_else(|| body["errors"][0]["message"].as_str())
        .or_else(|| body["errors"][0]["detail"].as_str())
        .or_else(|| body["title"].as_str())
        .or_else(|| body["error_description"].as_str())
        .unwrap_or(fallback);
    text.chars().take(300).collect()
}

impl XClient {
    pub fn new(http: reqwest::Client, api: &str, credentials: Credentials) -> XClient {
        XClient {
            http,
            api: api.trim_end_matches('/').to_owned(),
            credentials,
            gate: RateGate::default(),
        }
    }

    /// Send a call; the JSON answer on 2xx (`Null` for an empty one).
    pub async fn send(&self, call: Call) -> Result<Value, XError> {
        let ticket = self
            .gate
            .admit(call.endpoint)
            .await
            .map_err(|retry_after| XError::RateLimited {
                endpoint: call.endpoint,
                retry_after,
            })?;
        let url = format!("{}{}", self.api, call.path);
        let mut rejected_token: Option<SecretString> = None;
        loop {
            let (authorization, bearer) = match &self.credentials {
                Credentials::OAuth1(keys) => (
                    keys.authorization(call.method.as_str(), &url, &call.query),
                    None,
                ),
                Credentials::OAuth2(keeper) => {
                    let token = match &rejected_token {
                        Some(rejected) => keeper.after_rejection(rejected).await?,
                        None => keeper.access_token(call.margin).await?,
                    };
                    (format!("Bearer {}", token.expose_secret()), Some(token))
                }
            };
            let mut request = self
                .http
                .request(call.method.clone(), &url)
                .header(reqwest::header::AUTHORIZATION, authorization)
                .timeout(call.timeout);
            if !call.query.is_empty() {
                request = request.query(&call.query);
            }
            request = match &call.body {
                Body::Empty => request,
                Body::Json(body) => request.json(body),
                Body::Segment { index, bytes } => request.multipart(
                    reqwest::multipart::Form::new()
                        .text("segment_index", index.to_string())
                        .part(
                            "media",
                            reqwest::multipart::Part::bytes(bytes.clone())
                                .file_name("media")
                                .mime_str("application/octet-stream")
                                .expect("a static MIME type parses"),
                        ),
                ),
            };
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    return Err(XError::Transient(format!(
                        "{} {}: {}",
                        call.method,
                        call.path,
                        without_url(&e)
                    )));
                }
            };
            let status = response.status().as_u16();
            let limits = LimitHeaders::read(response.headers());
            let text = response.text().await.map_err(|e| {
                XError::Transient(format!(
                    "{} {}: {}",
                    call.method,
                    call.path,
                    without_url(&e)
                ))
            })?;
            let body: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            match status {
                200..=299 => {
                    ticket.finish(status, limits);
                    return Ok(body);
                }
                401 if bearer.is_some() && rejected_token.is_none() => {
                    // One retry with a refreshed token.
                    rejected_token = bearer;
                    continue;
                }
                401 => {
                    ticket.finish(status, limits);
                    return Err(XError::NeedsReauth(format!(
                        "X rejected this account's credentials ({}); reconnect this account",
                        detail_of(&body, "Unauthorized")
                    )));
                }
                429 => {
                    ticket.finish(status, limits);
                    let retry_after = self
                        .gate
                        .blocked_for(call.endpoint)
                        .unwrap_or(Duration::from_secs(1));
                    return Err(XError::RateLimited {
                        endpoint: call.endpoint,
                        retry_after,
                    });
                }
                500..=599 => {
                    ticket.finish(status, limits);
                    return Err(XError::Transient(format!(
                        "X answered HTTP {status} to {} {}: {}",
                        call.method,
                        call.path,
                        detail_of(&body, "server error")
                    )));
                }
                _ => {
                    ticket.finish(status, limits);
                    return Err(XError::Rejected {
                        status,
                        detail: detail_of(&body, "no detail given"),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn problem_details_are_read_from_every_shape_x_uses() {
        assert_eq!(
            detail_of(
                &json!({"title": "Forbidden", "detail": "duplicate content"}),
                "-"
            ),
            "duplicate content"
        );
        assert_eq!(
            detail_of(
                &json!({"errors": [{"message": "Rate limit exceeded", "code": 88}]}),
                "-"
            ),
            "Rate limit exceeded"
        );
        assert_eq!(detail_of(&json!("plain text"), "fallback"), "fallback");
    }

    #[test]
    fn rate_limits_become_waits_that_spend_no_attempt() {
        let error: ActionError = XError::RateLimited {
            endpoint: "POST /2/tweets",
            retry_after: Duration::from_secs(5),
        }
        .into();
        match error {
            ActionError::RateLimited { retry_after, .. } => {
                assert!(retry_after >= Duration::from_secs(5));
                assert!(retry_after < Duration::from_secs(6));
            }
            other => panic!("{other:?}"),
        }
        let error: ActionError = XError::Rejected {
            status: 403,
            detail: "no".into(),
        }
        .into();
        assert!(!error.is_retryable());
    }
}
