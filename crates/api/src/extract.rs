//! A JSON body extractor whose every failure is a problem+json naming the
//! field: too large (413), not JSON (415/400), wrong shape (422 with the path
//! of the offending field, via serde_path_to_error).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime == "application/json" || mime.ends_with("+json")
            });
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "body_too_large", "the request body is larger than the daemon accepts (limits.body_bytes)")
                    .with_field("body", "send a smaller body")
            } else {
                ApiError::new(status, "bad_body", rejection.body_text()).with_field("body", "send the whole body")
            }
        })?;
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
                    return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {inner}"))
                        .with_field("body", inner.to_string()));
                }
                let message = inner.to_string();
                let mut field = if path == "." { String::new() } else { path };
                // serde reports a missing field at its parent; name the field itself.
                if let Some(missing) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
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
