//! The rules endpoints (`/api/v1/rules/...`) and the event trace, with their
//! bodies. Handlers are thin: parse, call the engine, map the result.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::Event;
use switchboard_runtime::rules::{
    DryRunRule, QueueView as DomainQueue, RuleDef, RuleView as DomainRule, RulesFormat,
};
use switchboard_store::{RuleRun, RunFilter};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::model::{EventView, JobView};
use crate::{ApiState, openapi_router};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    openapi_router()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, replace_rule, delete_rule))
        .routes(routes!(enable_rule))
        .routes(routes!(disable_rule))
        .routes(routes!(validate_rules))
        .routes(routes!(test_rules))
        .routes(routes!(reload_rules))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(list_vars))
        .routes(routes!(set_var, delete_var))
        .routes(routes!(list_queues))
        .routes(routes!(pause_queue))
        .routes(routes!(resume_queue))
        .routes(routes!(trace_event))
}

// ---------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------

/// A rule. See the README for the fields (`name`, `enabled`, `on`, `if`,
/// `do`, `cooldown`, `debounce_ms`, `queue`, `set`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleBody {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub definition: Value,
    /// `file` or `api`.
    pub source: String,
}

impl From<DomainRule> for RuleBody {
    fn from(r: DomainRule) -> Self {
        RuleBody {
            definition: serde_json::to_value(&r.def).expect("a rule serializes"),
            source: serde_json::to_value(r.source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    pub rules: Vec<RuleBody>,
    /// Problems of the rules file's current text, when it is rejected (the
    /// rules it had before keep running).
    #[schema(value_type = Option<Vec<Object>>)]
    pub file_errors: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesText {
    /// The rules, as a rules file would hold them.
    pub text: String,
    /// `yaml` (default) or `toml`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub format: Option<RulesFormat>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidRules {
    pub rules: Vec<String>,
}

/// An event to try rules with: an event exactly as the event log shows it
/// (`GET /events`, `events tail --json`), or just its `type`, `payload` and
/// `connection_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestEvent {
    /// The event's id in the log (0 when left out).
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened, epoch milliseconds (now when left out).
    #[serde(default)]
    pub at: Option<i64>,
    #[serde(default)]
    pub connection_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesTest {
    pub text: String,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub format: Option<RulesFormat>,
    pub event: TestEvent,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RulesTestResult {
    /// Per rule: whether it matches, and the jobs it would create.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<DryRunRule>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reloaded {
    pub rules: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunBody {
    pub id: String,
    pub rule: String,
    pub event_id: i64,
    pub queue: Option<String>,
    pub priority: i64,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub state: String,
    /// The rendered actions with the ids of the jobs they created.
    #[schema(value_type = Vec<Object>)]
    pub actions: Value,
    pub next_action: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<RuleRun> for RunBody {
    fn from(r: RuleRun) -> Self {
        RunBody {
            id: r.id,
            rule: r.rule,
            event_id: r.event_id,
            queue: r.queue,
            priority: r.priority,
            state: r.state,
            actions: r.actions,
            next_action: r.next_action,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// Only runs of this rule.
    pub rule: Option<String>,
    /// Only runs this event started.
    pub event_id: Option<i64>,
    /// Only runs in this state.
    pub state: Option<String>,
    /// At most this many (default 100, at most 10000).
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VarValue {
    #[schema(value_type = Object)]
    pub value: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueBody {
    pub name: String,
    pub waiting: i64,
    pub running: i64,
    pub paused: bool,
}

impl From<DomainQueue> for QueueBody {
    fn from(q: DomainQueue) -> Self {
        QueueBody {
            name: q.name,
            waiting: q.waiting,
            running: q.running,
            paused: q.paused,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunTraceBody {
    pub run: RunBody,
    pub jobs: Vec<JobView>,
}

/// An event, the rule runs it started and their jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTraceBody {
    pub event: EventView,
    pub runs: Vec<RunTraceBody>,
}

fn parse_rule(body: Value) -> Result<RuleDef, ApiError> {
    serde_path_to_error::deserialize::<_, RuleDef>(body).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." {
            "body".to_owned()
        } else {
            field
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("{field}: {}", e.inner()),
        )
        .with_field(&field, e.inner().to_string())
    })
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

/// Every rule (from the rules file and the API), and the file's problems if
/// its current text is rejected.
#[utoipa::path(get, path = "/rules", tag = "rules", responses((status = 200, body = RuleList)))]
async fn list_rules(State(state): State<ApiState>) -> Json<RuleList> {
    Json(RuleList {
        rules: state
            .engine
            .list_rules()
            .into_iter()
            .map(Into::into)
            .collect(),
        file_errors: state
            .engine
            .rules_file_errors()
            .map(|e| serde_json::to_value(e).expect("errors serialize")),
    })
}

/// Add a rule. The whole rule set is validated with it; nothing changes if
/// anything is wrong.
#[utoipa::path(post, path = "/rules", tag = "rules", request_body = Object,
    responses((status = 201, body = RuleBody), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_rule(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<RuleBody>), ApiError> {
    let def = parse_rule(body)?;
    if state.engine.get_rule(&def.name).is_ok() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "a rule named `{}` exists; PUT /api/v1/rules/{} replaces it",
                def.name, def.name
            ),
        ));
    }
    let (view, _) = state.engine.put_rule(def).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[utoipa::path(get, path = "/rules/{name}", tag = "rules",
    responses((status = 200, body = RuleBody), (status = 404, body = Problem)))]
async fn get_rule(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RuleBody>, ApiError> {
    Ok(Json(state.engine.get_rule(&name)?.into()))
}

/// Create or replace an API rule.
#[utoipa::path(put, path = "/rules/{name}", tag = "rules", request_body = Object,
    responses((status = 200, body = RuleBody), (status = 201, body = RuleBody), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn replace_rule(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<RuleBody>), ApiError> {
    let def = parse_rule(body)?;
    if def.name != name {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!(
                "the body names rule `{}` but the URL names `{name}`",
                def.name
            ),
        )
        .with_field("name", "use the same name as in the URL"));
    }
    let (view, created) = state.engine.put_rule(def).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view.into())))
}

#[utoipa::path(delete, path = "/rules/{name}", tag = "rules",
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_rule(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_rule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/rules/{name}/enable", tag = "rules",
    responses((status = 200, body = RuleBody), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn enable_rule(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RuleBody>, ApiError> {
    Ok(Json(
        state.engine.set_rule_enabled(&name, true).await?.into(),
    ))
}

#[utoipa::path(post, path = "/rules/{name}/disable", tag = "rules",
    responses((status = 200, body = RuleBody), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn disable_rule(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RuleBody>, ApiError> {
    Ok(Json(
        state.engine.set_rule_enabled(&name, false).await?.into(),
    ))
}

/// Check a rules text as if it were the rules file; 422 lists every problem
/// with its rule, field and line.
#[utoipa::path(post, path = "/rules/validate", tag = "rules", request_body = RulesText,
    responses((status = 200, body = ValidRules), (status = 422, body = Problem)))]
async fn validate_rules(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<RulesText>,
) -> Result<Json<ValidRules>, ApiError> {
    let rules = state
        .engine
        .validate_rules_text(&body.text, body.format.unwrap_or(RulesFormat::Yaml))
        .await?;
    Ok(Json(ValidRules { rules }))
}

/// Dry run: which rules of the text an event would start and the jobs they
/// would create, with rendered parameters. Nothing is sent or stored.
#[utoipa::path(post, path = "/rules/test", tag = "rules", request_body = RulesTest,
    responses((status = 200, body = RulesTestResult), (status = 422, body = Problem)))]
async fn test_rules(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<RulesTest>,
) -> Result<Json<RulesTestResult>, ApiError> {
    let event = Event {
        id: body.event.id.unwrap_or(0),
        kind: body.event.kind,
        connection_id: body.event.connection_id,
        payload: body.event.payload,
        at: body.event.at.unwrap_or_else(switchboard_core::time::now_ms),
    };
    let results = state
        .engine
        .dry_run_rules(&body.text, body.format.unwrap_or(RulesFormat::Yaml), event)
        .await?;
    Ok(Json(RulesTestResult { results }))
}

/// Re-read the rules file now (it is also watched).
#[utoipa::path(post, path = "/rules/reload", tag = "rules",
    responses((status = 200, body = Reloaded), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn reload_rules(State(state): State<ApiState>) -> Result<Json<Reloaded>, ApiError> {
    Ok(Json(Reloaded {
        rules: state.engine.reload_rules_file().await?,
    }))
}

/// Rule runs, newest first.
#[utoipa::path(get, path = "/rules/runs", tag = "rules", params(RunQuery),
    responses((status = 200, body = Vec<RunBody>)))]
async fn list_runs(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> Result<Json<Vec<RunBody>>, ApiError> {
    let runs = state
        .engine
        .list_runs(&RunFilter {
            rule: query.rule,
            event_id: query.event_id,
            state: query.state,
            limit: crate::extract::page_limit(query.limit, 100, 10_000)?,
        })
        .await?;
    Ok(Json(runs.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, path = "/rules/runs/{id}", tag = "rules",
    responses((status = 200, body = RunBody), (status = 404, body = Problem)))]
async fn get_run(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RunBody>, ApiError> {
    Ok(Json(state.engine.get_run(&id).await?.into()))
}

/// The variables rules read and set.
#[utoipa::path(get, path = "/rules/vars", tag = "rules", responses((status = 200, body = Object)))]
async fn list_vars(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.engine.rule_vars().await?))
}

#[utoipa::path(put, path = "/rules/vars/{name}", tag = "rules", request_body = VarValue,
    responses((status = 204), (status = 422, body = Problem)))]
async fn set_var(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<VarValue>,
) -> Result<StatusCode, ApiError> {
    state.engine.set_rule_var(&name, Some(body.value)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/rules/vars/{name}", tag = "rules", responses((status = 204)))]
async fn delete_var(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.set_rule_var(&name, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The rule queues: runs waiting and running, paused or not.
#[utoipa::path(get, path = "/rules/queues", tag = "rules", responses((status = 200, body = Vec<QueueBody>)))]
async fn list_queues(State(state): State<ApiState>) -> Result<Json<Vec<QueueBody>>, ApiError> {
    Ok(Json(
        state
            .engine
            .list_queues()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Pause a queue: its running run finishes, no new one starts.
#[utoipa::path(post, path = "/rules/queues/{name}/pause", tag = "rules", responses((status = 204)))]
async fn pause_queue(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.set_queue_paused(&name, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/rules/queues/{name}/resume", tag = "rules", responses((status = 204)))]
async fn resume_queue(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.set_queue_paused(&name, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What an event caused: the rule runs it started and their jobs.
#[utoipa::path(get, path = "/events/{id}/trace", tag = "events",
    params(("id" = i64, Path, description = "The event's id in the log")),
    responses((status = 200, body = EventTraceBody), (status = 404, body = Problem)))]
async fn trace_event(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<EventTraceBody>, ApiError> {
    let trace = state.engine.trace_event(id).await?;
    Ok(Json(EventTraceBody {
        event: EventView::from(&trace.event),
        runs: trace
            .runs
            .into_iter()
            .map(|r| RunTraceBody {
                run: r.run.into(),
                jobs: r.jobs.into_iter().map(Into::into).collect(),
            })
            .collect(),
    }))
}
