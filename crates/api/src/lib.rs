//! The REST API under `/api/v1`, described by an OpenAPI document generated
//! from these handlers and served at `/api/v1/openapi.json`.
//!
//! Handlers are thin: extract, call the [`Engine`], map the result. Every
//! error leaves as `application/problem+json` ([`error::ApiError`]) with a
//! stable `code` and, for bad input, the fields at fault. Internal errors are
//! logged and never shown.
//!
//! **API boundary:** request and response bodies are the types in [`model`],
//! converted explicitly from the domain types.

pub mod agents;
pub mod archive;
pub mod auth;
mod document;
pub mod error;
mod extract;
pub mod model;
mod routes;
mod rules;
mod serve;
mod webhooks;

use std::sync::Arc;
use std::time::Instant;

pub use serve::{HttpLimits, serve};

use auth::BearerScheme;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use switchboard_runtime::Engine;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub engine: Arc<Engine>,
    pub started: Instant,
    /// The daemon's URL as the user's browser reaches it (OAuth callbacks).
    pub public_url: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "switchboard",
        description = "Connections, jobs and events of a switchboard daemon. Authenticate with `Authorization: Bearer <token>`. Errors are application/problem+json (RFC 9457) with a stable `code` and, for bad input, `errors[].field`.",
    ),
    servers((url = "/api/v1", description = "this daemon")),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    tags(
        (name = "system", description = "Health and the API description"),
        (name = "connectors", description = "Kinds of service this build can connect to"),
        (name = "connections", description = "Accounts and instances, their settings, secrets and status"),
        (name = "jobs", description = "Durable action invocations"),
        (name = "actions", description = "One action on several connections at once"),
        (name = "media", description = "Images and videos for actions to publish"),
        (name = "events", description = "The event log and its live stream"),
        (name = "vault", description = "The secret store"),
        (name = "webhooks", description = "The delivery history of hooks (deliveries go to POST /hooks/{name}, outside /api/v1)"),
        (name = "agents", description = "Tokens for AI agents, scoped to connections, accepted at /mcp only"),
        (name = "archive", description = "What connections keep as it arrives (Twitch followers, subscriptions, raids, cheers), as JSON or CSV"),
    )
)]
struct ApiDoc;

/// Options of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub body_limit: usize,
    /// The daemon's URL as a browser reaches it, for OAuth callbacks.
    pub public_url: String,
    /// The MCP server at `/mcp` (streamable HTTP), if served.
    pub mcp: Option<switchboard_mcp::McpConfig>,
    /// Ends `/mcp` sessions when the daemon stops.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// The router: `/api/v1/...` plus the OpenAPI document.
pub fn router(engine: Arc<Engine>, options: ApiOptions) -> Router {
    let state = ApiState {
        engine,
        started: Instant::now(),
        public_url: options.public_url.clone(),
    };
    let (protected, mut doc) = routes::protected().split_for_parts();
    let (public, public_doc) = routes::public().split_for_parts();
    doc.merge(public_doc);
    let mut doc = ApiDoc::openapi().merge_from(doc);
    document::declare_problems(&mut doc);
    let protected = protected.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    let doc = Arc::new(doc);
    let api = Router::new()
        .merge(protected)
        .merge(public)
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn(error::problem_for_every_error))
        .with_state(state.clone());
    let callbacks = Router::new()
        .route(
            "/oauth/{connector}/callback",
            axum::routing::get(routes::oauth_callback),
        )
        .with_state(state.clone());
    let mut router = Router::new();
    if let Some(mcp) = options.mcp.clone() {
        let service =
            switchboard_mcp::http_service(state.engine.clone(), mcp, options.shutdown.clone());
        router = router.nest_service(
            "/mcp",
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    auth::require_mcp_token,
                ))
                .service(service),
        );
    }
    router
        .nest("/api/v1", api)
        .merge(callbacks)
        .nest("/hooks", webhooks::receiver().with_state(state.clone()))
        .layer(axum::Extension(extract::BodyLimit(options.body_limit)))
        .layer(DefaultBodyLimit::max(options.body_limit))
        .layer(TraceLayer::new_for_http())
}

/// The OpenAPI document, for tests and tooling that want it without a server.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes::protected().split_for_parts();
    let (_, public_doc) = routes::public().split_for_parts();
    doc.merge(public_doc);
    let mut doc = ApiDoc::openapi().merge_from(doc);
    document::declare_problems(&mut doc);
    doc
}

pub(crate) fn openapi_router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
}
