//! Agent tokens (`/api/v1/agents`, admin token only): create one scoped to
//! connections (the token is in the answer once, never again), list, revoke.
//! Agent tokens work at `/mcp` only; the REST API refuses them with 403.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use switchboard_core::time::now_ms;
use switchboard_store::Agent;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiState, openapi_router};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    openapi_router()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(revoke_agent))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// A name to recognise the agent by, such as `claude-desktop`.
    pub name: String,
    /// Ids of the connections the agent may act on (at least one).
    pub connections: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub connections: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        AgentView {
            id: a.id,
            name: a.name,
            connections: a.connections,
            created_at: a.created_at,
            revoked_at: a.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAgent {
    #[serde(flatten)]
    pub agent: AgentView,
    /// The token, shown this once: give it to the agent as its bearer token for `/mcp`.
    pub token: String,
}

/// Create an agent token scoped to connections.
#[utoipa::path(post, path = "/agents", tag = "agents", request_body = CreateAgent,
    responses((status = 201, body = CreatedAgent), (status = 422, body = Problem)))]
async fn create_agent(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<CreateAgent>,
) -> Result<(StatusCode, Json<CreatedAgent>), ApiError> {
    let store = state.engine.store();
    let name = body.name.trim().to_owned();
    let mut error: Option<ApiError> = None;
    let mut fail = |field: &str, message: String| {
        error = Some(match error.take() {
            None => ApiError::invalid(field, message),
            Some(e) => e.with_field(field, message),
        });
    };
    if name.is_empty() || name.chars().count() > 100 {
        fail("name", "give a name of 1 to 100 characters".into());
    }
    if body.connections.is_empty() {
        fail(
            "connections",
            "name at least one connection id the agent may act on".into(),
        );
    }
    let mut ids: Vec<String> = Vec::new();
    for (i, id) in body.connections.iter().enumerate() {
        let field = format!("connections[{i}]");
        if ids.contains(id) {
            fail(&field, format!("connection `{id}` is named twice"));
            continue;
        }
        match store
            .get_connection(id)
            .await
            .map_err(|e| ApiError::internal(&e))?
        {
            Some(_) => ids.push(id.clone()),
            None => fail(&field, format!("connection `{id}` does not exist")),
        }
    }
    if let Some(error) = error {
        return Err(error);
    }
    let (token, agent) = crate::auth::create_agent_token(store, &name, &ids)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAgent {
            agent: agent.into(),
            token: token.expose_secret().to_owned(),
        }),
    ))
}

/// Every agent token (never the tokens themselves), revoked ones too.
#[utoipa::path(get, path = "/agents", tag = "agents",
    responses((status = 200, body = Vec<AgentView>)))]
async fn list_agents(State(state): State<ApiState>) -> Result<Json<Vec<AgentView>>, ApiError> {
    let agents = state
        .engine
        .store()
        .list_agents()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(agents.into_iter().map(Into::into).collect()))
}

/// Revoke an agent token; its next request is refused.
#[utoipa::path(delete, path = "/agents/{id}", tag = "agents",
    responses((status = 204), (status = 404, body = Problem)))]
async fn revoke_agent(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let revoked = state
        .engine
        .store()
        .revoke_agent(&id, now_ms())
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("there is no live agent token `{id}` (GET /api/v1/agents lists them)"),
        ))
    }
}
