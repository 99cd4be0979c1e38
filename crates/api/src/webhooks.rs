//! Webhooks over HTTP: the receiving endpoint `POST /hooks/{name}` (outside
//! `/api/v1`, no bearer token: each hook has its own auth) and the delivery
//! history under `/api/v1/webhooks/{connection_id}/deliveries`, with their
//! bodies. Handlers are thin: the engine verifies, records and publishes.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_runtime::WebhookError;
use switchboard_store::{Delivery, DeliveryFilter, Verdict};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiState, extract, openapi_router};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    openapi_router()
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
}

/// The receiving endpoint, merged outside `/api/v1`.
/// `/hooks/{name}`, nested at `/hooks`: every error there is problem+json
/// too (an unknown path 404, a GET 405).
pub(crate) fn receiver() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/{name}", axum::routing::post(receive))
        .fallback(crate::routes::not_found)
        .layer(axum::middleware::from_fn(
            crate::error::problem_for_every_error,
        ))
}

/// The answer to an accepted delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAccepted {
    /// The delivery's record in the hook's history.
    pub id: String,
    /// The sender's delivery id, or one given on receipt.
    pub delivery_id: String,
    /// The `webhook.received` event.
    pub event_id: i64,
}

/// One delivery of a hook.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub connection_id: String,
    pub hook: String,
    /// The sender's delivery id (`webhook-id`, `X-GitHub-Delivery`), or the
    /// one given on receipt.
    pub delivery_id: Option<String>,
    /// Epoch milliseconds.
    pub received_at: i64,
    /// `accepted` or `rejected`.
    pub verdict: String,
    /// For a refused delivery: `signature`, `timestamp`, `replay`,
    /// `header`, `secret` or `body_size`.
    pub failed_check: Option<String>,
    pub reason: Option<String>,
    /// Header names in lower case; those carrying credentials removed.
    #[schema(value_type = Object)]
    pub headers: Value,
    /// The body (only when one delivery is fetched): JSON when it parses,
    /// else text, else base64 (see `body_encoding`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
    /// `json`, `text` or `base64`, with `body`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<String>,
    /// Bytes sent (as far as read, for a body over the limit).
    pub body_size: i64,
    /// The `webhook.received` event of an accepted delivery.
    pub event_id: Option<i64>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        let (body, body_encoding) = match d.body {
            None => (None, None),
            Some(bytes) => {
                let (value, encoding) = match serde_json::from_slice::<Value>(&bytes) {
                    Ok(value) if !bytes.is_empty() => (value, "json"),
                    _ => match String::from_utf8(bytes) {
                        Ok(text) => (Value::String(text), "text"),
                        Err(e) => (
                            Value::String(
                                base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
                            ),
                            "base64",
                        ),
                    },
                };
                (Some(value), Some(encoding.to_owned()))
            }
        };
        DeliveryView {
            id: d.id,
            connection_id: d.connection_id,
            hook: d.hook,
            delivery_id: d.delivery_id,
            received_at: d.received_at,
            verdict: d.verdict.as_str().to_owned(),
            failed_check: d.failed_check,
            reason: d.reason,
            headers: d.headers,
            body,
            body_encoding,
            body_size: d.body_size,
            event_id: d.event_id,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// Only `accepted` or only `rejected` deliveries.
    pub verdict: Option<String>,
    /// Page backwards: only deliveries older than this id.
    pub before: Option<String>,
    /// At most this many (default 50, max 1000).
    pub limit: Option<i64>,
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> ApiError {
        match error {
            WebhookError::NotFound(name) => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_hook",
                format!("there is no enabled hook named `{name}`"),
            )
            .with_field(
                "name",
                "create a webhook connection with this settings.name, or enable it",
            ),
            WebhookError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than this hook accepts ({limit} bytes)"),
            )
            .with_field("body", format!("send at most {limit} bytes")),
            WebhookError::BadBody(message) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("the body could not be read: {message}"),
            )
            .with_field("body", "send the whole body"),
            WebhookError::Rejected {
                check,
                field,
                message,
            } => {
                let code = match check.as_str() {
                    "signature" => "bad_signature",
                    "timestamp" => "stale_timestamp",
                    "replay" => "replayed_delivery",
                    "header" => "missing_header",
                    "secret" => "hook_without_secret",
                    _ => "webhook_rejected",
                };
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    code,
                    format!("the delivery was refused ({check}): {message}"),
                )
                .with_field(&field, message)
            }
            WebhookError::Engine(error) => error.into(),
        }
    }
}

/// Receive a delivery for the hook `name`: 202 when accepted (the
/// `webhook.received` event is published), 401 naming the failed check,
/// 404 for an unknown hook, 413 for a body over the hook's limit. Every
/// delivery is recorded in the hook's history.
pub(crate) async fn receive(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    request: Request,
) -> Response {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = request.into_body().into_data_stream();
    match state
        .engine
        .receive_webhook(&name, headers, &mut body)
        .await
    {
        Ok(receipt) => (
            StatusCode::ACCEPTED,
            Json(WebhookAccepted {
                id: receipt.id,
                delivery_id: receipt.delivery_id,
                event_id: receipt.event_id,
            }),
        )
            .into_response(),
        Err(error) => {
            // Let the sender finish sending, so it reads the answer.
            extract::drain(&mut body).await;
            let mut response = ApiError::from(error).into_response();
            // The hook's own auth failed, not a bearer token.
            response.headers_mut().remove(header::WWW_AUTHENTICATE);
            response
        }
    }
}

/// A hook's deliveries, newest first, without bodies.
#[utoipa::path(get, path = "/webhooks/{connection_id}/deliveries", tag = "webhooks", params(DeliveryQuery),
    responses((status = 200, body = Vec<DeliveryView>), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_deliveries(
    State(state): State<ApiState>,
    ApiPath(connection_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let verdict =
        match query.verdict.as_deref() {
            Some(v) => Some(v.parse::<Verdict>().map_err(|e| {
                ApiError::invalid("verdict", format!("{e}; use accepted or rejected"))
            })?),
            None => None,
        };
    let deliveries = state
        .engine
        .list_webhook_deliveries(&DeliveryFilter {
            connection_id,
            verdict,
            before_id: query.before,
            limit: extract::page_limit(query.limit, 50, 1000)?,
        })
        .await?;
    Ok(Json(deliveries.into_iter().map(Into::into).collect()))
}

/// One delivery with its headers and body.
#[utoipa::path(get, path = "/webhooks/{connection_id}/deliveries/{id}", tag = "webhooks",
    responses((status = 200, body = DeliveryView), (status = 404, body = Problem)))]
async fn get_delivery(
    State(state): State<ApiState>,
    ApiPath((connection_id, id)): ApiPath<(String, String)>,
) -> Result<Json<DeliveryView>, ApiError> {
    Ok(Json(
        state
            .engine
            .get_webhook_delivery(&connection_id, &id)
            .await?
            .into(),
    ))
}
