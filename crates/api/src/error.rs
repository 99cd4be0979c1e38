//! `application/problem+json` (RFC 9457) errors.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use switchboard_runtime::{EngineError, FieldError, MediaError};
use utoipa::ToSchema;

/// One field at fault.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemField {
    /// Dotted path of the field, such as `settings.work_ms`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// An error body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:switchboard:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn unauthorized(detail: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
            .with_field("Authorization", detail)
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("{field}: {message}"),
        )
        .with_field(field, message)
    }

    pub fn with_field(mut self, field: &str, message: impl Into<String>) -> ApiError {
        self.errors.push(FieldError::new(field, message));
        self
    }

    /// Log the real error; show only that something failed inside.
    pub fn internal(error: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(%error, "internal error answering a request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the daemon hit an internal error; the details are in its log",
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        match error {
            EngineError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            EngineError::Invalid(errors) => {
                let detail = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                ApiError {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    code: "invalid_input",
                    detail,
                    errors,
                }
            }
            EngineError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            EngineError::Authorization(message) => {
                ApiError::new(StatusCode::BAD_REQUEST, "authorization_failed", message)
            }
            EngineError::Upstream(message) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "upstream_failed", message)
            }
            EngineError::Media(error @ MediaError::TooLarge { limit }) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                error.code(),
                error.to_string(),
            )
            .with_field("body", format!("send a file of at most {limit} bytes")),
            EngineError::Media(error @ MediaError::UnsupportedType) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                error.code(),
                error.to_string(),
            )
            .with_field("body", error.to_string()),
            EngineError::Media(error @ MediaError::Interrupted(_)) => {
                ApiError::new(StatusCode::BAD_REQUEST, error.code(), error.to_string())
                    .with_field("body", "send the whole file")
            }
            other if other.code() == "key_from_environment" => ApiError::new(
                StatusCode::CONFLICT,
                "key_from_environment",
                other.to_string(),
            ),
            other => ApiError::internal(&other),
        }
    }
}

fn title(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("Error").to_owned()
}

impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Problem {
        Problem {
            kind: format!("urn:switchboard:problem:{}", error.code),
            title: title(error.status),
            status: error.status.as_u16(),
            detail: error.detail,
            code: error.code.to_owned(),
            errors: error
                .errors
                .into_iter()
                .map(|e| ProblemField {
                    field: e.field,
                    message: e.message,
                })
                .collect(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let problem = Problem::from(self);
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// How much of a framework error's text body is kept as the problem's detail.
const BARE_BODY_CAP: usize = 4096;

/// The last line of the contract: an error answered by something other than
/// [`ApiError`] (the router's 405, a layer's 408 or 413) is rewritten as
/// problem+json, keeping its headers (`Allow` on a 405). Handlers and the
/// extractors in [`crate::extract`] already answer problems; this catches
/// what the framework answers by itself.
pub(crate) async fn problem_for_every_error(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            ApiError::new(
                status,
                "method_not_allowed",
                format!("{method} is not allowed here; this endpoint answers {allow}"),
            )
            .with_field("method", format!("use {allow}"))
        }
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "body_too_large",
            "the request body is larger than the daemon accepts (limits.body_bytes)",
        )
        .with_field("body", "send a smaller body"),
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            status,
            "timeout",
            "the request took too long to arrive (http.body_timeout_ms)",
        )
        .with_field("body", "send the whole request without pausing"),
        _ => {
            let text = axum::body::to_bytes(body, BARE_BODY_CAP)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                .unwrap_or_default();
            let detail = if text.is_empty() { title(status) } else { text };
            if status.is_server_error() {
                ApiError::internal(&detail)
            } else {
                ApiError::new(status, "bad_request", detail).with_field("request", "see the detail")
            }
        }
    };
    let mut problem = error.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}
