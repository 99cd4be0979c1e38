//! The handlers. Each one extracts, calls the engine, and maps the result.

use std::convert::Infallible;

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde_json::Value;
use std::collections::BTreeMap;
use switchboard_core::{Event, JobState};
use switchboard_runtime::{
    NewConnection, SubmitJob as DomainSubmit, UpdateConnection as DomainUpdate,
};
use switchboard_store::{Backend, EventFilter, JobFilter};
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::extract::{self, ApiJson, ApiPath, ApiQuery};
use crate::model::*;
use crate::{ApiState, openapi_router};

pub(crate) fn public() -> OpenApiRouter<ApiState> {
    openapi_router().routes(routes!(health))
}

pub(crate) fn protected() -> OpenApiRouter<ApiState> {
    openapi_router()
        .routes(routes!(list_connectors))
        .routes(routes!(get_connector))
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(
            get_connection,
            update_connection,
            delete_connection
        ))
        .routes(routes!(set_settings))
        .routes(routes!(set_secrets))
        .routes(routes!(get_status))
        .routes(routes!(restart_connection))
        .routes(routes!(test_connection))
        .routes(routes!(connect_connection))
        .routes(routes!(list_jobs, submit_job))
        .routes(routes!(get_job))
        .routes(routes!(retry_job))
        .routes(routes!(submit_action))
        .routes(routes!(list_media, upload_media))
        .routes(routes!(get_media, delete_media))
        .routes(routes!(media_content))
        .routes(routes!(list_events))
        .routes(routes!(stream_events))
        .routes(routes!(rotate_key))
        .merge(crate::webhooks::routes())
        .merge(crate::agents::routes())
        .merge(crate::archive::routes())
        .merge(crate::rules::routes())
}

pub(crate) async fn not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "there is no endpoint at {}; the API is described at /api/v1/openapi.json",
            uri.path()
        ),
    )
    .with_field("path", "use a path listed in /api/v1/openapi.json")
}

/// Liveness and identity of the daemon. Needs no token.
#[utoipa::path(get, path = "/health", tag = "system", security(()),
    responses((status = 200, body = Health), (status = 503, body = Problem)))]
async fn health(State(state): State<ApiState>) -> Result<Json<Health>, ApiError> {
    let store = state.engine.store();
    store.ping().await.map_err(|e| {
        tracing::error!(error = %e, "health check: database unreachable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database does not answer",
        )
    })?;
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        node_id: state.engine.node_id().to_owned(),
        database: match store.backend() {
            Backend::Sqlite => "sqlite".into(),
            Backend::Postgres => "postgres".into(),
        },
        uptime_ms: state.started.elapsed().as_millis() as u64,
    }))
}

/// The connectors this build knows, with their settings, secrets, triggers and actions.
#[utoipa::path(get, path = "/connectors", tag = "connectors",
    responses((status = 200, body = Vec<ConnectorView>), (status = 401, body = Problem)))]
async fn list_connectors(State(state): State<ApiState>) -> Json<Vec<ConnectorView>> {
    Json(
        state
            .engine
            .connectors()
            .into_iter()
            .map(Into::into)
            .collect(),
    )
}

#[utoipa::path(get, path = "/connectors/{name}", tag = "connectors",
    responses((status = 200, body = ConnectorView), (status = 404, body = Problem)))]
async fn get_connector(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ConnectorView>, ApiError> {
    Ok(Json(state.engine.connector(&name)?.into()))
}

#[utoipa::path(get, path = "/connections", tag = "connections",
    responses((status = 200, body = Vec<ConnectionView>), (status = 401, body = Problem)))]
async fn list_connections(
    State(state): State<ApiState>,
) -> Result<Json<Vec<ConnectionView>>, ApiError> {
    let views = state.engine.list_connections().await?;
    Ok(Json(views.into_iter().map(Into::into).collect()))
}

/// Create a connection; its runtime starts at once when enabled.
#[utoipa::path(post, path = "/connections", tag = "connections", request_body = CreateConnection,
    responses((status = 201, body = ConnectionView), (status = 413, body = Problem), (status = 422, body = Problem), (status = 409, body = Problem)))]
async fn create_connection(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<CreateConnection>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    let view = state
        .engine
        .create_connection(NewConnection {
            connector: body.connector,
            label: body.label,
            enabled: body.enabled,
            settings: body.settings,
            secrets: body.secrets,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[utoipa::path(get, path = "/connections/{id}", tag = "connections",
    responses((status = 200, body = ConnectionView), (status = 404, body = Problem)))]
async fn get_connection(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(state.engine.get_connection(&id).await?.into()))
}

/// Change label, enabled or settings. The runtime restarts in place with them.
#[utoipa::path(patch, path = "/connections/{id}", tag = "connections", request_body = UpdateConnection,
    responses((status = 200, body = ConnectionView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn update_connection(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateConnection>,
) -> Result<Json<ConnectionView>, ApiError> {
    let view = state
        .engine
        .update_connection(
            &id,
            DomainUpdate {
                label: body.label,
                enabled: body.enabled,
                settings: body.settings,
            },
        )
        .await?;
    Ok(Json(view.into()))
}

/// Delete a connection, its secrets and its data key.
#[utoipa::path(delete, path = "/connections/{id}", tag = "connections",
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_connection(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_connection(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the settings. The runtime restarts in place with them.
#[utoipa::path(put, path = "/connections/{id}/settings", tag = "connections", request_body = Object,
    responses((status = 200, body = ConnectionView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn set_settings(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(settings): ApiJson<Value>,
) -> Result<Json<ConnectionView>, ApiError> {
    let update = DomainUpdate {
        settings: Some(settings),
        ..Default::default()
    };
    Ok(Json(
        state.engine.update_connection(&id, update).await?.into(),
    ))
}

/// Set or delete secrets (write-only: values are never returned). The
/// runtime restarts in place with them.
#[utoipa::path(put, path = "/connections/{id}/secrets", tag = "connections", request_body(content = BTreeMap<String, Option<String>>, description = "A string sets the secret, null deletes it"),
    responses((status = 200, body = ConnectionView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn set_secrets(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(SetSecrets(secrets)): ApiJson<SetSecrets>,
) -> Result<Json<ConnectionView>, ApiError> {
    let changes: BTreeMap<String, Option<SecretString>> = secrets;
    Ok(Json(state.engine.set_secrets(&id, changes).await?.into()))
}

#[utoipa::path(get, path = "/connections/{id}/status", tag = "connections",
    responses((status = 200, body = StatusView), (status = 404, body = Problem)))]
async fn get_status(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StatusView>, ApiError> {
    let view: ConnectionView = state.engine.get_connection(&id).await?.into();
    Ok(Json(view.status))
}

/// Restart the runtime with its current settings and secrets.
#[utoipa::path(post, path = "/connections/{id}/restart", tag = "connections",
    responses((status = 200, body = ConnectionView), (status = 404, body = Problem)))]
async fn restart_connection(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(state.engine.restart_connection(&id).await?.into()))
}

/// What `POST /connections/{id}/test` found.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct ConnectionTestView {
    /// The check ran and the service answered as it should.
    ok: bool,
    /// The connection's status after the check: `disconnected`,
    /// `connecting`, `connected`, `degraded`, `needs_reauth` or `error`.
    status: String,
    /// What was checked and how it went, or why it was not checked.
    detail: String,
    /// What the service said (who the credentials act as, its version...).
    #[schema(value_type = Option<Object>)]
    result: Option<Value>,
}

/// Run the connector's own read-only check on the live connection (X
/// `users/me`, Twitch token validation, OBS `GetVersion`; for the local
/// machine and webhooks, the settings check). Not a job: nothing is queued.
/// A connection that is not connected is not checked; the answer says its
/// status and why.
#[utoipa::path(post, path = "/connections/{id}/test", tag = "connections",
    responses((status = 200, body = ConnectionTestView), (status = 404, body = Problem)))]
async fn test_connection(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConnectionTestView>, ApiError> {
    let check = state.engine.test_connection(&id).await?;
    Ok(Json(ConnectionTestView {
        ok: check.ok,
        status: check.status.to_string(),
        detail: check.detail,
        result: check.result,
    }))
}

#[utoipa::path(get, path = "/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, body = Vec<JobView>), (status = 422, body = Problem)))]
async fn list_jobs(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<JobQuery>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    let job_state = match query.state.as_deref() {
        Some(s) => Some(s.parse::<JobState>().map_err(|e| {
            ApiError::invalid(
                "state",
                format!("{e}; use queued, running, succeeded, failed or dead"),
            )
        })?),
        None => None,
    };
    let filter = JobFilter {
        state: job_state,
        connection_id: query.connection_id,
        before_id: query.before,
        limit: extract::page_limit(query.limit, 100, 1000)?,
    };
    let jobs = state.engine.list_jobs(&filter).await?;
    Ok(Json(jobs.into_iter().map(Into::into).collect()))
}

/// Queue an action as a durable job. Answers 201 for a new job and 200 with
/// the first job when the idempotency key was used before.
#[utoipa::path(post, path = "/jobs", tag = "jobs", request_body = SubmitJob,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same as `idempotency_key` in the body")),
    responses((status = 201, body = JobView), (status = 200, body = JobView), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn submit_job(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SubmitJob>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let idempotency_key = idempotency_key(&headers, body.idempotency_key)?;
    let (job, created) = state
        .engine
        .submit_job(DomainSubmit {
            connection_id: body.connection_id,
            action: body.action,
            params: body.params,
            idempotency_key,
            max_attempts: body.max_attempts,
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(job.into())))
}

/// The idempotency key from the `Idempotency-Key` header or the body (the
/// same if both are given).
fn idempotency_key(headers: &HeaderMap, body: Option<String>) -> Result<Option<String>, ApiError> {
    let header_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::invalid("Idempotency-Key", "use printable ASCII"))
        })
        .transpose()?;
    match (header_key, body) {
        (Some(h), Some(b)) if h != b => Err(ApiError::invalid(
            "idempotency_key",
            "the Idempotency-Key header and the body's idempotency_key differ; send one",
        )),
        (h, b) => Ok(h.or(b)),
    }
}

/// Queue an action on several connections of its connector at once (for
/// example `x.post` on every enabled X account): the ones in `connections`,
/// or every enabled one. The params are validated once, before anything is
/// written; then one job is queued per connection. Answers 201 when a job
/// was queued, 200 when the idempotency key returned earlier jobs; an entry
/// that could not be queued carries its `error` without hiding the others.
#[utoipa::path(post, path = "/actions/{action}", tag = "actions", request_body = SubmitAction,
    params(
        ("action" = String, Path, description = "Action name, such as `x.post`; its prefix names the connector"),
        ("Idempotency-Key" = Option<String>, Header, description = "Same as `idempotency_key` in the body"),
    ),
    responses((status = 201, body = ActionJobs), (status = 200, body = ActionJobs), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn submit_action(
    State(state): State<ApiState>,
    ApiPath(action): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SubmitAction>,
) -> Result<(StatusCode, Json<ActionJobs>), ApiError> {
    let idempotency_key = idempotency_key(&headers, body.idempotency_key)?;
    let outcomes = state
        .engine
        .submit_to_connections(&action, body.params, body.connections, idempotency_key)
        .await?;
    let mut created_any = false;
    let mut queued_any = false;
    let mut first_error = None;
    let mut jobs = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let (job, error) = match outcome.outcome {
            Ok((job, created)) => {
                queued_any = true;
                created_any |= created;
                (Some(job.into()), None)
            }
            Err(error) => {
                let error = ApiError::from(error);
                let (status, code) = (error.status, error.code);
                let problem = Problem::from(error);
                first_error.get_or_insert_with(|| (status, code, problem.clone()));
                (None, Some(problem))
            }
        };
        jobs.push(ConnectionJobView {
            connection_id: outcome.connection_id,
            label: outcome.label,
            job,
            error,
        });
    }
    if !queued_any && let Some((status, code, problem)) = first_error {
        // Nothing was queued at all: answer with the (first) reason.
        let mut error = ApiError::new(
            status,
            code,
            format!("no job was queued: {}", problem.detail),
        );
        for field in problem.errors {
            error = error.with_field(&field.field, field.message);
        }
        return Err(error);
    }
    let status = if created_any {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ActionJobs { jobs })))
}

#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    responses((status = 200, body = JobView), (status = 404, body = Problem)))]
async fn get_job(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.engine.get_job(&id).await?.into()))
}

/// Queue a failed or dead job again.
#[utoipa::path(post, path = "/jobs/{id}/retry", tag = "jobs",
    responses((status = 200, body = JobView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn retry_job(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.engine.retry_job(&id).await?.into()))
}

/// Upload a media file (image or video) for actions to publish. Send the raw
/// bytes as the body (any `Content-Type`; the type is read from the bytes).
/// The same bytes always get the same id, and are stored once.
#[utoipa::path(post, path = "/media", tag = "media", params(MediaUploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The file's bytes: JPEG, PNG, WEBP, GIF, MP4 or MOV, at most `limits.media_bytes`"),
    responses((status = 201, body = MediaView), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn upload_media(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<MediaUploadQuery>,
    request: Request,
) -> Result<(StatusCode, Json<MediaView>), ApiError> {
    let mut body = request.into_body().into_data_stream();
    match state.engine.upload_media(query.name, &mut body).await {
        Ok(info) => Ok((StatusCode::CREATED, Json(info.into()))),
        Err(error) => {
            extract::drain(&mut body).await;
            Err(error.into())
        }
    }
}

/// The media files, newest first.
#[utoipa::path(get, path = "/media", tag = "media",
    responses((status = 200, body = Vec<MediaView>)))]
async fn list_media(State(state): State<ApiState>) -> Result<Json<Vec<MediaView>>, ApiError> {
    let list = state.engine.list_media().await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, path = "/media/{id}", tag = "media",
    responses((status = 200, body = MediaView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn get_media(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MediaView>, ApiError> {
    Ok(Json(state.engine.get_media(&id).await?.into()))
}

/// Delete a media file. Jobs still waiting to publish it will fail.
#[utoipa::path(delete, path = "/media/{id}", tag = "media",
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn delete_media(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_media(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The bytes of a media file, with its type.
#[utoipa::path(get, path = "/media/{id}/content", tag = "media",
    responses((status = 200, description = "The file's bytes", content_type = "application/octet-stream"), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn media_content(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let (info, file) = state.engine.open_media(&id).await?;
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(&info.mime_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The id is the content: it never changes.
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", info.id)) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok(response)
}

fn event_filter(query: &EventQuery) -> Result<EventFilter, ApiError> {
    Ok(EventFilter {
        after_id: query.after,
        kind: query.kind.clone(),
        connection_id: query.connection_id.clone(),
        limit: extract::page_limit(query.limit, 100, 10_000)?,
    })
}

/// Events from the log, oldest first.
#[utoipa::path(get, path = "/events", tag = "events", params(EventQuery),
    responses((status = 200, body = Vec<EventView>)))]
async fn list_events(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let events = state.engine.list_events(&event_filter(&query)?).await?;
    Ok(Json(events.iter().map(EventView::from).collect()))
}

fn matches(event: &Event, filter: &EventFilter) -> bool {
    let kind_ok = match filter.kind.as_deref() {
        None => true,
        Some(k) if k.ends_with('*') => event.kind.starts_with(k.trim_end_matches('*')),
        Some(k) if k.ends_with('.') => event.kind.starts_with(k),
        Some(k) => event.kind == k,
    };
    let connection_ok = filter
        .connection_id
        .as_ref()
        .is_none_or(|c| event.connection_id.as_ref() == Some(c));
    kind_ok && connection_ok
}

fn sse_event(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.kind.clone())
        .json_data(EventView::from(event))
        .unwrap_or_else(|_| SseEvent::default().comment("unserializable event"))
}

/// Live events as Server-Sent Events. With `after` (or `Last-Event-ID`) the
/// log from that point is replayed first, so a reconnecting client misses
/// nothing and sees nothing twice.
#[utoipa::path(get, path = "/events/stream", tag = "events", params(EventQuery),
    responses((status = 200, description = "text/event-stream of events; each SSE id is the event id", content_type = "text/event-stream")))]
async fn stream_events(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<EventQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .or(query.after);
    // Subscribe before reading the log so nothing falls between the two.
    let mut live = state.engine.subscribe_events();
    let engine = state.engine.clone();
    let mut filter = event_filter(&query)?;
    filter.limit = 1000;
    let start = match resume {
        Some(id) => id,
        None => engine
            .store()
            .last_event_id()
            .await
            .map_err(|e| ApiError::internal(&e))?,
    };
    let stream = async_stream::stream! {
        let mut last = start;
        let mut replay = resume.is_some();
        loop {
            if replay {
                loop {
                    filter.after_id = Some(last);
                    let page = match engine.list_events(&EventFilter { kind: None, connection_id: None, ..filter.clone() }).await {
                        Ok(page) => page,
                        Err(error) => {
                            tracing::error!(%error, "event stream: could not read the log");
                            return;
                        }
                    };
                    if page.is_empty() {
                        break;
                    }
                    for event in &page {
                        last = event.id;
                        if matches(event, &filter) {
                            yield Ok::<_, Infallible>(sse_event(event));
                        }
                    }
                }
                replay = false;
            }
            match live.recv().await {
                Ok(event) => {
                    if event.id > last {
                        last = event.id;
                        if matches(&event, &filter) {
                            yield Ok(sse_event(&event));
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => replay = true,
                Err(RecvError::Closed) => return,
            }
        }
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Replace the master key and re-wrap every data key, without downtime.
#[utoipa::path(post, path = "/vault/rotate-key", tag = "vault",
    responses((status = 200, body = RotateKeyResult), (status = 409, body = Problem)))]
async fn rotate_key(State(state): State<ApiState>) -> Result<Json<RotateKeyResult>, ApiError> {
    let count = state.engine.rotate_master_key().await?;
    Ok(Json(RotateKeyResult {
        data_keys_rewrapped: count,
    }))
}

/// Begin the authorization flow (OAuth) of a connection. Open the returned
/// URL in a browser; when the service sends the user back, the connection
/// goes live with the new tokens, no restart. The link is single use and
/// expires after 10 minutes.
#[utoipa::path(post, path = "/connections/{id}/connect", tag = "connections",
    responses((status = 200, body = AuthorizationView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 502, body = Problem)))]
async fn connect_connection(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AuthorizationView>, ApiError> {
    let started = state
        .engine
        .begin_authorization(&id, &state.public_url)
        .await?;
    Ok(Json(AuthorizationView {
        authorize_url: started.authorize_url,
        expires_at: started.expires_at,
    }))
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title} · switchboard</title></head>\
         <body style=\"font-family: sans-serif; max-width: 40em; margin: 4em auto\"><h1>{title}</h1><p>{message}</p></body></html>",
        title = escape_html(title),
        message = escape_html(message),
    );
    (status, axum::response::Html(body)).into_response()
}

/// Where a service sends the user back after an authorization. The `state`
/// (single use, 10 minutes) is the credential here, so no bearer token.
pub(crate) async fn oauth_callback(
    State(state): State<ApiState>,
    ApiPath(connector): ApiPath<String>,
    ApiQuery(params): ApiQuery<BTreeMap<String, String>>,
) -> Response {
    match state
        .engine
        .finish_authorization(&connector, &params, &state.public_url)
        .await
    {
        Ok(view) => page(
            StatusCode::OK,
            "Connected",
            &format!(
                "{} ({}) is connected. You can close this window.",
                view.connection.label, view.connection.connector
            ),
        ),
        Err(error) => {
            let api: ApiError = error.into();
            tracing::warn!(connector = %connector, code = api.code, "authorization callback rejected");
            let status = if api.status.is_server_error() {
                api.status
            } else {
                StatusCode::BAD_REQUEST
            };
            page(status, "Not connected", &api.detail)
        }
    }
}
