//! Error answers shaped like X's.
//!
//! X API v2 answers most failures with a problem object (`title`, `detail`,
//! `type`, `status`); validation failures add an `errors` array; the OAuth
//! endpoints answer RFC 6749 style `{"error", "error_description"}` and the
//! OAuth 1.0a endpoints the v1.1 `{"errors":[{"code","message"}]}` shape.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The problem `type` X uses for invalid requests (as spelled in the OpenAPI document).
pub(crate) const INVALID_REQUEST_TYPE: &str = "https://api.x.com/2/problems/invalid-request";
pub(crate) const NOT_FOUND_TYPE: &str = "https://api.x.com/2/problems/resource-not-found";

/// An answer that is not a success: a status, an X-shaped JSON body and
/// optional extra headers (rate-limit headers ride here on a 429).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    fn new(status: StatusCode, body: Value) -> ApiError {
        ApiError {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// X's generic problem: `{"title","detail","type":"about:blank","status"}`.
    pub fn blank(status: StatusCode, detail: &str) -> ApiError {
        let title = status.canonical_reason().unwrap_or("Error");
        ApiError::new(
            status,
            json!({"title": title, "detail": detail, "type": "about:blank", "status": status.as_u16()}),
        )
    }

    /// Missing, expired, revoked or badly signed credentials.
    pub fn unauthorized() -> ApiError {
        ApiError::blank(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    pub fn forbidden(detail: &str) -> ApiError {
        ApiError::blank(StatusCode::FORBIDDEN, detail)
    }

    pub fn too_many_requests() -> ApiError {
        ApiError::blank(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests")
    }

    /// A status injected by a fault.
    pub fn injected(status: u16) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let detail = status.canonical_reason().unwrap_or("Injected failure");
        ApiError::blank(status, detail)
    }

    /// `400 Invalid Request` with one `errors` entry per message.
    pub fn invalid_request<S: AsRef<str>>(messages: &[S]) -> ApiError {
        let errors: Vec<Value> = messages
            .iter()
            .map(|m| json!({"message": m.as_ref()}))
            .collect();
        ApiError::new(
            StatusCode::BAD_REQUEST,
            json!({
                "errors": errors,
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": INVALID_REQUEST_TYPE,
            }),
        )
    }

    /// `400 Invalid Request` for one named parameter.
    pub fn invalid_parameter(parameter: &str, value: &str, message: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            json!({
                "errors": [{"parameters": {parameter: [value]}, "message": message}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": INVALID_REQUEST_TYPE,
            }),
        )
    }

    /// A resource that does not exist, X style (`Not Found Error`).
    pub fn not_found(resource_type: &str, parameter: &str, value: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            json!({
                "errors": [not_found_problem(resource_type, parameter, value)],
                "title": "Not Found Error",
                "detail": format!("Could not find {resource_type} with {parameter}: [{value}]."),
                "type": NOT_FOUND_TYPE,
            }),
        )
    }

    /// No route for this method and path.
    pub fn no_route() -> ApiError {
        ApiError::blank(StatusCode::NOT_FOUND, "Not Found")
    }

    /// RFC 6749 token endpoint error, as X spells them.
    pub fn oauth2(status: StatusCode, error: &str, description: &str) -> ApiError {
        ApiError::new(
            status,
            json!({"error": error, "error_description": description}),
        )
    }

    /// OAuth 1.0a endpoint error in the v1.1 shape (code 32: could not authenticate).
    pub fn oauth1(status: StatusCode, code: u32, message: &str) -> ApiError {
        ApiError::new(
            status,
            json!({"errors": [{"code": code, "message": message}]}),
        )
    }

    pub fn with_headers(mut self, headers: Vec<(HeaderName, HeaderValue)>) -> ApiError {
        self.headers.extend(headers);
        self
    }
}

/// One entry of an `errors` array for a missing resource.
pub(crate) fn not_found_problem(resource_type: &str, parameter: &str, value: &str) -> Value {
    json!({
        "value": value,
        "detail": format!("Could not find {resource_type} with {parameter}: [{value}]."),
        "title": "Not Found Error",
        "resource_type": resource_type,
        "parameter": parameter,
        "resource_id": value,
        "type": NOT_FOUND_TYPE,
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // X sends its problem objects as plain JSON, not application/problem+json.
        let mut response = (self.status, self.body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}
