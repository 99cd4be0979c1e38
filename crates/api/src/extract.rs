//! A JSON body extractor whose every failure is a problem+json naming the
//! field: too large (413), not JSON (415/400), wrong shape (422 with the path
//! of the offending field, via serde_path_to_error). Raw uploads (media) are
//! streamed by their handler instead, under their own limit, and [`drain`]
//! what is left after a refusal.

use axum::body::BodyDataStream;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
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
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("the body could not be read: {e}"),
            )
            .with_field("body", "send the whole body")
        })?;
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
        match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(value) => Ok(ApiJson(value)),
            Err(error) => {
                let path = error.path().to_string();
                let inner = error.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed_json",
                        format!("the body is not valid JSON: {inner}"),
                    )
                    .with_field("body", inner.to_string()));
                }
                let message = inner.to_string();
                let mut field = if path == "." { String::new() } else { path };
                // serde reports a missing field at its parent; name the field itself.
                if let Some(missing) = message
                    .strip_prefix("missing field `")
                    .and_then(|m| m.split('`').next())
                {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(missing);
                }
                if field.is_empty() {
                    field = "body".to_owned();
                }
                Err(ApiError::invalid(&field, message))
            }
        }
    }
}
