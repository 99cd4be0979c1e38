//! Extractors whose every failure is a problem+json naming the field, so no
//! framework rejection (a `text/plain` 400) ever reaches a client:
//!
//! - [`ApiJson`]: too large (413), not JSON (415), malformed or followed by
//!   anything but whitespace (400), wrong shape (422 with the path of the
//!   offending field, via serde_path_to_error);
//! - [`ApiQuery`]: a value of the wrong type, an unknown or repeated key
//!   (query structs deny unknown fields) is a 400 naming the key;
//! - [`ApiPath`]: a path segment that does not parse (an event id too large
//!   for a 64-bit integer) is a 400 naming the segment.
//!
//! Raw uploads (media) are streamed by their handler instead, under their
//! own limit, and [`drain`] what is left after a refusal.

use axum::body::BodyDataStream;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest body accepted, set by the router.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// How much of an oversized body is read and thrown away before answering
/// 413. Answering while the client is still sending makes most clients
/// (reqwest, browsers) see a reset connection instead of the 413; reading a
/// bounded amount lets them finish and read the answer.
const DRAIN_CAP: usize = 32 * 1024 * 1024;

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body is larger than the daemon accepts (limits.body_bytes)",
    )
    .with_field("body", "send a smaller body")
}

/// Read and throw away what is left of a refused body, up to [`DRAIN_CAP`],
/// so that the client finishes sending and reads the answer (see there).
pub(crate) async fn drain(body: &mut BodyDataStream) {
    let mut total = 0usize;
    while let Some(Ok(chunk)) = body.next().await {
        total += chunk.len();
        if total > DRAIN_CAP {
            return;
        }
    }
}

/// Read the body up to `limit`; an oversized body is drained (up to
/// [`DRAIN_CAP`]) and rejected with 413.
async fn read_body(request: Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    let mut total = 0usize;
    let mut chunks = request.into_body().into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(body_read_error)?;
        total += chunk.len();
        if total > DRAIN_CAP {
            return Err(too_large());
        }
        if total <= limit {
            body.extend_from_slice(&chunk);
        }
    }
    if total > limit {
        return Err(too_large());
    }
    Ok(body)
}

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(1024 * 1024);
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime == "application/json" || mime.ends_with("+json")
            });
        let bytes = read_body(request, limit).await?;
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            )
            .with_field("Content-Type", "use application/json"));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
        // Anything but whitespace after the value (`{...} xyz`) makes the
        // body malformed, not a valid object with a tail.
        deserializer.end().map_err(|e| malformed_json(&e))?;
        Ok(ApiJson(value))
    }
}

fn malformed_json(error: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "malformed_json",
        format!("the body is not valid JSON: {error}"),
    )
    .with_field("body", error.to_string())
}

fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return malformed_json(&inner);
    }
    let message = inner.to_string();
    let field = field_of(&path, &message).unwrap_or_else(|| "body".to_owned());
    ApiError::invalid(&field, message)
}

/// The field a serde error is about: its path, plus the name serde reports
/// a missing or unknown field by (at its parent).
fn field_of(path: &str, message: &str) -> Option<String> {
    let mut field = if path == "." || path == "?" {
        String::new()
    } else {
        path.to_owned()
    };
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|m| m.split('`').next());
    if let Some(name) = named
        && !field.ends_with(name)
    {
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(name);
    }
    (!field.is_empty()).then_some(field)
}

fn body_read_error(error: axum::Error) -> ApiError {
    let text = error.to_string();
    let timed_out = std::error::Error::source(&error)
        .is_some_and(|e| e.is::<tower_http::timeout::TimeoutError>())
        || error.into_inner().is::<tower_http::timeout::TimeoutError>();
    if timed_out {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body stopped arriving (http.body_timeout_ms)",
        )
        .with_field("body", "send the whole body without pausing");
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_body",
        format!("the body could not be read: {text}"),
    )
    .with_field("body", "send the whole body")
}

/// A 400 about a query or path parameter.
pub(crate) fn bad_parameter(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        format!("{field}: {message}"),
    )
    .with_field(field, message)
}

/// The query string, deserialized into `T`. Query structs deny unknown
/// fields, so a misspelt filter is refused instead of silently ignored.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let path = error.path().to_string();
                let message = error.into_inner().to_string();
                let field = field_of(&path, &message).unwrap_or_else(|| "query".to_owned());
                bad_parameter(&field, message)
            })
    }
}

/// The path parameters, deserialized into `T`.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                let names: Vec<String> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|raw| raw.iter().map(|(k, _)| k.to_owned()).collect())
                    .unwrap_or_default();
                Err(path_error(&rejection, &names))
            }
        }
    }
}

fn path_error(rejection: &PathRejection, names: &[String]) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(failed) = rejection else {
        return ApiError::internal(rejection);
    };
    let unnamed = || names.first().cloned().unwrap_or_else(|| "path".to_owned());
    let (field, message) = match failed.kind() {
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => (key.clone(), not_a(value, expected_type)),
        ErrorKind::ParseErrorAtIndex {
            index,
            value,
            expected_type,
        } => (
            names.get(*index).cloned().unwrap_or_else(unnamed),
            not_a(value, expected_type),
        ),
        ErrorKind::ParseError {
            value,
            expected_type,
        } => (unnamed(), not_a(value, expected_type)),
        ErrorKind::InvalidUtf8InPathParam { key } => (key.clone(), "use UTF-8".to_owned()),
        ErrorKind::DeserializeError {
            key,
            value,
            message,
        } => (key.clone(), format!("`{value}`: {message}")),
        _ => (unnamed(), failed.body_text()),
    };
    bad_parameter(&field, message)
}

fn not_a(value: &str, expected_type: &str) -> String {
    let what = if expected_type.starts_with('i') || expected_type.starts_with('u') {
        format!("a whole number that fits {expected_type}")
    } else {
        expected_type.to_owned()
    };
    format!("`{value}` is not {what}")
}

/// A page size: `limit` when given (1 to `max`), else `default`. Out of
/// range is refused, not silently clamped, so a client learns the bound.
pub(crate) fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(bad_parameter(
            "limit",
            format!("{n} is out of range; give 1 to {max} (default {default})"),
        )),
    }
}
