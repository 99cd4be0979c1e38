//! The tool server: one [`ToolServer`] per MCP session (stdio, a legacy
//! HTTP session) or per request (stateless 2026-07-28 HTTP). It holds no
//! state of its own beyond the engine: the tools are computed from the
//! registry and the connections in the caller's [`Scope`] on every
//! `tools/list`, so a connection added or removed shows at once, and a
//! watcher turns `connection.*` events into `notifications/tools/list_changed`
//! (on the session for legacy peers, on `subscriptions/listen` streams for
//! 2026-07-28 peers).
//!
//! An action call goes through [`Engine::submit_to_connections`] (one job
//! per account, validated once) and waits a bounded time for the jobs,
//! forwarding `x.media.progress` and job completions as progress
//! notifications when the caller gave a progress token.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    Implementation, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ServerCapabilities, ServerConfig,
    SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use serde_json::{Value, json};
use switchboard_core::{Connection, Event, Job, JobState, StatusKind};
use switchboard_runtime::{Engine, EngineError, FieldError};
use switchboard_store::EventFilter;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::McpConfig;
use crate::scope::Scope;
use crate::tools::{self, Accounts};

const RECENT_EVENTS_URI: &str = "switchboard://events/recent";

/// The MCP tool server over one engine.
#[derive(Clone)]
pub struct ToolServer {
    engine: Arc<Engine>,
    config: Arc<McpConfig>,
    /// The scope when the transport carries none (stdio: the owner's own
    /// process). HTTP requests carry theirs, set by the API's bearer check.
    default_scope: Option<Scope>,
    /// Events subscribed to before a `subscriptions/listen` is acknowledged
    /// (the SDK acknowledges before calling [`ServerHandler::listen`]), so a
    /// change made right after the acknowledgment is not lost.
    listen_events: Arc<std::sync::Mutex<Option<Receiver<Arc<Event>>>>>,
}

impl ToolServer {
    pub fn new(engine: Arc<Engine>, config: Arc<McpConfig>, default_scope: Option<Scope>) -> Self {
        ToolServer {
            engine,
            config,
            default_scope,
            listen_events: Default::default(),
        }
    }

    fn scope(&self, extensions: &rmcp::model::Extensions) -> Result<Scope, ErrorData> {
        if let Some(parts) = extensions.get::<http::request::Parts>() {
            if let Some(scope) = parts.extensions.get::<Scope>() {
                return Ok(scope.clone());
            }
            return Err(ErrorData::invalid_request(
                "this request carries no authenticated token",
                None,
            ));
        }
        self.default_scope.clone().ok_or_else(|| {
            ErrorData::invalid_request("this request carries no authenticated token", None)
        })
    }

    /// The connections the scope may act on, as they are now.
    async fn connections(&self, scope: &Scope) -> Result<Vec<Connection>, ErrorData> {
        let all = self.engine.list_connections().await.map_err(internal)?;
        let allowed = scope.allowed(self.engine.store()).await.map_err(internal)?;
        Ok(all
            .into_iter()
            .map(|view| view.connection)
            .filter(|c| allowed.as_ref().is_none_or(|ids| ids.contains(&c.id)))
            .collect())
    }

    /// Every tool the scope sees: the built-ins, and the actions of each
    /// connector that has a connection in scope.
    fn tools_for(&self, connections: &[Connection]) -> Vec<Tool> {
        let mut tools = tools::builtin_tools(!self.config.media_dirs.is_empty());
        for manifest in self.engine.registry().manifests() {
            let accounts: Vec<&Connection> = connections
                .iter()
                .filter(|c| c.connector == manifest.name)
                .collect();
            if accounts.is_empty() {
                continue;
            }
            for action in &manifest.actions {
                tools.push(tools::action_tool(manifest, action, &accounts));
            }
        }
        tools
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let scope = self.scope(&context.extensions)?;
        let connections = self.connections(&scope).await?;
        let arguments = request.arguments.unwrap_or_default();
        match request.name.as_ref() {
            tools::LIST_CONNECTIONS => Ok(self.list_connections(&connections)),
            tools::CONNECT => self.connect(&connections, &arguments).await,
            tools::JOB_STATUS => self.job_status(&connections, &arguments).await,
            tools::UPLOAD_MEDIA => self.upload_media(&arguments).await,
            name => {
                self.run_action(name, arguments, &connections, context)
                    .await
            }
        }
    }

    fn list_connections(&self, connections: &[Connection]) -> CallToolResult {
        let list: Vec<Value> = connections
            .iter()
            .map(|c| {
                let tools: Vec<String> = self
                    .engine
                    .registry()
                    .manifest(&c.connector)
                    .map(|m| {
                        m.actions
                            .iter()
                            .map(|a| tools::tool_name(&a.name))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "id": c.id,
                    "label": c.label,
                    "connector": c.connector,
                    "enabled": c.enabled,
                    "status": c.status.kind,
                    "reason": c.status.reason,
                    "tools": tools,
                })
            })
            .collect();
        success(json!({ "connections": list }))
    }

    async fn connect(
        &self,
        connections: &[Connection],
        arguments: &rmcp::model::JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let name = match tools::required_string(arguments, tools::ACCOUNT) {
            Ok(name) => name,
            Err(e) => return Ok(field_errors(&[e])),
        };
        let Some(connection) = find_account(connections, None, &name) else {
            return Ok(not_in_scope(tools::ACCOUNT, &name, connections, None));
        };
        match self
            .engine
            .begin_authorization(&connection.id, &self.config.public_url)
            .await
        {
            Ok(started) => Ok(success(json!({
                "account": connection.label,
                "connection_id": connection.id,
                "authorize_url": started.authorize_url,
                "expires_at": started.expires_at,
                "next": "Show authorize_url to the user and ask them to open it and approve; the account is live as soon as they do (check with list_connections).",
            }))),
            Err(error) => Ok(engine_error(&error)),
        }
    }

    async fn job_status(
        &self,
        connections: &[Connection],
        arguments: &rmcp::model::JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let id = match tools::required_string(arguments, "job_id") {
            Ok(id) => id,
            Err(e) => return Ok(field_errors(&[e])),
        };
        let job = match self.engine.get_job(&id).await {
            Ok(job) => job,
            Err(EngineError::NotFound { .. }) => {
                return Ok(error_text(format!(
                    "no job `{id}` among the accounts this token may use"
                )));
            }
            Err(error) => return Ok(engine_error(&error)),
        };
        let Some(connection) = connections.iter().find(|c| c.id == job.connection_id) else {
            return Ok(error_text(format!(
                "no job `{id}` among the accounts this token may use"
            )));
        };
        Ok(success(job_view(&job, &connection.label)))
    }

    async fn upload_media(
        &self,
        arguments: &rmcp::model::JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let (path, data, name) = match (
            tools::optional_string(arguments, "path"),
            tools::optional_string(arguments, "base64"),
            tools::optional_string(arguments, "name"),
        ) {
            (Ok(p), Ok(d), Ok(n)) => (p, d, n),
            (p, d, n) => {
                let errors: Vec<FieldError> =
                    [p.err(), d.err(), n.err()].into_iter().flatten().collect();
                return Ok(field_errors(&errors));
            }
        };
        let uploaded = match (path, data) {
            (Some(_), Some(_)) | (None, None) => {
                return Ok(field_errors(&[FieldError::new(
                    "path",
                    "give exactly one of `path` and `base64`",
                )]));
            }
            (None, Some(data)) => {
                let bytes = match base64::engine::general_purpose::STANDARD
                    .decode(data.trim().as_bytes())
                {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        return Ok(field_errors(&[FieldError::new(
                            "base64",
                            format!("is not valid base64: {e}"),
                        )]));
                    }
                };
                let mut body = futures::stream::iter([Ok::<_, std::io::Error>(bytes)]);
                self.engine.upload_media(name, &mut body).await
            }
            (Some(path), None) => {
                let file = match self.config.allowed_file(&path).await {
                    Ok(file) => file,
                    Err(message) => return Ok(field_errors(&[FieldError::new("path", message)])),
                };
                let name = name.or_else(|| {
                    std::path::Path::new(&path)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                });
                let mut body = tokio_util::io::ReaderStream::new(file);
                self.engine.upload_media(name, &mut body).await
            }
        };
        match uploaded {
            Ok(info) => Ok(success(json!({
                "media_id": info.id,
                "mime_type": info.mime_type,
                "size": info.size,
                "name": info.name,
            }))),
            Err(error) => Ok(engine_error(&error)),
        }
    }

    async fn run_action(
        &self,
        name: &str,
        arguments: rmcp::model::JsonObject,
        connections: &[Connection],
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let Some((manifest, action)) = self.engine.registry().manifests().find_map(|m| {
            m.actions
                .iter()
                .find(|a| tools::tool_name(&a.name) == name)
                .map(|a| (m, a))
        }) else {
            return Ok(error_text(format!(
                "there is no tool `{name}`; call tools/list for the tools you have"
            )));
        };
        let accounts: Vec<&Connection> = connections
            .iter()
            .filter(|c| c.connector == manifest.name)
            .collect();
        if accounts.is_empty() {
            return Ok(error_text(format!(
                "`{name}` acts on {} accounts, and none is in this token's scope; ask the owner to connect one \
                 and include it (`switchboard agents create NAME --connections ID`)",
                manifest.display_name
            )));
        }
        let takes_account = action
            .params_schema
            .pointer(&format!("/properties/{}", tools::ACCOUNT))
            .is_some();
        let (named, params) = match tools::split_arguments(Some(arguments), takes_account) {
            Ok(split) => split,
            Err(errors) => return Ok(field_errors(&errors)),
        };
        let unfit = tools::check_arguments(&action.params_schema, &params);
        if !unfit.is_empty() {
            return Ok(field_errors(&unfit));
        }
        let targets: Vec<&Connection> = match named {
            Accounts::Every => {
                let enabled: Vec<&Connection> =
                    accounts.iter().copied().filter(|c| c.enabled).collect();
                if enabled.is_empty() {
                    return Ok(error_text(format!(
                        "every {} account in scope is disabled ({}); name one with `account`, or ask the owner to enable one",
                        manifest.display_name,
                        accounts
                            .iter()
                            .map(|c| c.label.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                enabled
            }
            Accounts::Named(names) => {
                let mut targets = Vec::new();
                for (field, name) in &names {
                    match find_account(connections, Some(&manifest.name), name) {
                        Some(c) => targets.push(c),
                        None => {
                            return Ok(not_in_scope(
                                field,
                                name,
                                connections,
                                Some(&manifest.name),
                            ));
                        }
                    }
                }
                targets
            }
        };
        // Accounts that cannot act now get their answer at once and no job:
        // a post must not wait, unseen, for a person to reconnect an account.
        let (targets, blocked): (Vec<&Connection>, Vec<&Connection>) = targets
            .into_iter()
            .partition(|c| blocked_reason(c).is_none());
        let mut results = Vec::new();
        for connection in blocked {
            results.push(self.blocked_entry(connection).await);
        }
        if targets.is_empty() {
            let body = json!({ "action": action.name, "results": results });
            return Ok(CallToolResult::structured_error(body));
        }
        let ids: Vec<String> = targets.iter().map(|c| c.id.clone()).collect();
        let labels: BTreeMap<String, String> = targets
            .iter()
            .map(|c| (c.id.clone(), c.label.clone()))
            .collect();

        // Subscribe before submitting so no completion is missed.
        let events = self.engine.subscribe_events();
        let queued = match self
            .engine
            .submit_to_connections(&action.name, params, Some(ids), None)
            .await
        {
            Ok(queued) => queued,
            Err(error) => return Ok(engine_error(&error)),
        };
        let mut entries = Vec::new();
        let mut waiting = BTreeMap::new();
        for item in queued {
            match item.outcome {
                Ok((job, _)) => {
                    waiting.insert(job.id.clone(), item.connection_id.clone());
                    entries.push((item.connection_id, Some(job.id), None));
                }
                Err(error) => entries.push((item.connection_id, None, Some(error.to_string()))),
            }
        }
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| Progress::new(context.peer.clone(), token));
        let finished = self.wait_for(waiting, events, progress, &context.ct).await;

        let mut succeeded = 0;
        let mut pending = 0;
        for (connection_id, job_id, queue_error) in entries {
            let label = labels.get(&connection_id).cloned().unwrap_or_default();
            let Some(job_id) = job_id else {
                results.push(json!({
                    "account": label, "connection_id": connection_id, "state": "not_queued",
                    "error": queue_error,
                }));
                continue;
            };
            let job = match finished.get(&job_id) {
                Some(job) => job.clone(),
                None => self.engine.get_job(&job_id).await.map_err(internal)?,
            };
            match job.state {
                JobState::Succeeded => succeeded += 1,
                s if !s.is_final() => pending += 1,
                _ => {}
            }
            results.push(job_view(&job, &label));
        }
        let body = json!({ "action": action.name, "results": results });
        Ok(if succeeded == 0 && pending == 0 {
            CallToolResult::structured_error(body)
        } else {
            success(body)
        })
    }

    /// The answer for an account that cannot act now (see [`blocked_reason`]):
    /// nothing was queued for it; an account that needs re-authorization
    /// comes with a fresh connect link (as the `connect` tool makes).
    async fn blocked_entry(&self, connection: &Connection) -> Value {
        let (state, error) = blocked_reason(connection).unwrap_or_default();
        let mut entry = json!({
            "account": connection.label,
            "connection_id": connection.id,
            "state": state,
            "error": error,
            "queued": false,
        });
        if state == "needs_reauth" {
            match self
                .engine
                .begin_authorization(&connection.id, &self.config.public_url)
                .await
            {
                Ok(started) => {
                    entry["authorize_url"] = json!(started.authorize_url);
                    entry["next"] = json!(
                        "Show authorize_url to the user and ask them to open it and approve, then call this tool again for this account."
                    );
                }
                Err(error) => {
                    entry["next"] = json!(format!(
                        "the owner must give this account new credentials: {error}"
                    ));
                }
            }
        }
        entry
    }

    /// Wait (bounded by `mcp.wait_secs`) until every job is final; returns
    /// the final ones.
    async fn wait_for(
        &self,
        mut waiting: BTreeMap<String, String>,
        mut events: tokio::sync::broadcast::Receiver<Arc<Event>>,
        mut progress: Option<Progress>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> BTreeMap<String, Job> {
        let total = waiting.len();
        let mut done = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + self.config.wait;
        let mut recheck = true;
        while !waiting.is_empty() {
            if recheck {
                recheck = false;
                let ids: Vec<String> = waiting.keys().cloned().collect();
                for id in ids {
                    if let Ok(job) = self.engine.get_job(&id).await
                        && job.state.is_final()
                    {
                        waiting.remove(&id);
                        done.insert(id, job);
                    }
                }
                if let Some(p) = progress.as_mut() {
                    p.jobs(done.len(), total).await;
                }
                continue;
            }
            let event = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(deadline) => break,
                event = events.recv() => event,
            };
            match event {
                Ok(event) => {
                    let job_id = event.payload["job_id"].as_str().unwrap_or_default();
                    if !waiting.contains_key(job_id) {
                        continue;
                    }
                    if event.kind == switchboard_core::event::JOB_FINISHED {
                        recheck = true;
                    } else if event.kind == "x.media.progress"
                        && let Some(p) = progress.as_mut()
                    {
                        p.media(&event.payload).await;
                    }
                }
                Err(RecvError::Lagged(_)) => recheck = true,
                Err(RecvError::Closed) => break,
            }
        }
        done
    }

    /// Send `notifications/tools/list_changed` through `notify` whenever the
    /// scope's tools change, until `notify` fails or `stop` resolves.
    /// `early`: events subscribed to before the watcher was promised to the
    /// peer; a connection change among them that happened before the first
    /// look is announced (the peer may not have seen it).
    async fn watch_tools<F, Fut>(
        &self,
        scope: Scope,
        early: Option<Receiver<Arc<Event>>>,
        notify: F,
        stop: impl Future<Output = ()>,
    ) where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let had_early = early.is_some();
        let mut events = early.unwrap_or_else(|| self.engine.subscribe_events());
        let mut last = self.fingerprint(&scope).await;
        if had_early {
            let mut missed = false;
            loop {
                match events.try_recv() {
                    Ok(event) => missed |= event.kind.starts_with("connection."),
                    Err(TryRecvError::Lagged(_)) => missed = true,
                    Err(_) => break,
                }
            }
            if missed && !notify().await {
                return;
            }
        }
        let mut tick = tokio::time::interval(self.config.tools_recheck);
        tick.tick().await;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
                event = events.recv() => match event {
                    Ok(event) if event.kind.starts_with("connection.") => {}
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
            }
            if !scope.is_live(self.engine.store()).await {
                return;
            }
            let now = self.fingerprint(&scope).await;
            if now != last {
                last = now;
                if !notify().await {
                    return;
                }
            }
        }
    }

    async fn fingerprint(&self, scope: &Scope) -> Option<String> {
        let connections = self.connections(scope).await.ok()?;
        serde_json::to_string(&self.tools_for(&connections)).ok()
    }
}

/// Progress notifications for one tool call (only when the caller asked,
/// with a progress token).
struct Progress {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    sent: f64,
}

impl Progress {
    fn new(peer: Peer<RoleServer>, token: ProgressToken) -> Progress {
        Progress {
            peer,
            token,
            sent: 0.0,
        }
    }

    async fn send(&mut self, message: String) {
        self.sent += 1.0;
        let mut param = ProgressNotificationParam::new(self.token.clone(), self.sent);
        param.message = Some(message);
        if let Err(error) = self.peer.notify_progress(param).await {
            tracing::debug!(%error, "could not send a progress notification");
        }
    }

    async fn jobs(&mut self, done: usize, total: usize) {
        self.send(format!("{done} of {total} jobs finished")).await;
    }

    async fn media(&mut self, payload: &Value) {
        let phase = payload["phase"].as_str().unwrap_or("uploading");
        let message = match payload["percent"].as_u64() {
            Some(percent) => format!("media {phase}: {percent}%"),
            None => format!(
                "media {phase}: {} of {} bytes",
                payload["bytes_sent"], payload["total_bytes"]
            ),
        };
        self.send(message).await;
    }
}

fn find_account<'a>(
    connections: &'a [Connection],
    connector: Option<&str>,
    name: &str,
) -> Option<&'a Connection> {
    let name = name.trim();
    let of_kind = |c: &&Connection| connector.is_none_or(|k| c.connector == k);
    connections
        .iter()
        .filter(of_kind)
        .find(|c| c.id == name)
        .or_else(|| connections.iter().filter(of_kind).find(|c| c.label == name))
}

fn not_in_scope(
    field: &str,
    name: &str,
    connections: &[Connection],
    connector: Option<&str>,
) -> CallToolResult {
    let usable: Vec<String> = connections
        .iter()
        .filter(|c| connector.is_none_or(|k| c.connector == k))
        .map(|c| format!("`{}` ({})", c.label, c.id))
        .collect();
    let what = connector.map(|k| format!("`{k}` ")).unwrap_or_default();
    error_text(format!(
        "`{field}`: `{name}` is not a {what}account this token may use; it may use: {}",
        if usable.is_empty() {
            "none".to_owned()
        } else {
            usable.join(", ")
        }
    ))
}

/// Why an account cannot act now, as `(state, message)`, or None when it
/// can (connected, connecting, degraded). Those that cannot get no job.
fn blocked_reason(connection: &Connection) -> Option<(&'static str, String)> {
    let detail = connection
        .status
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    if !connection.enabled {
        return Some((
            "disabled",
            "disabled: this account is disabled; ask the owner to enable it. Nothing was queued for it."
                .to_owned(),
        ));
    }
    match connection.status.kind {
        StatusKind::NeedsReauth => Some((
            "needs_reauth",
            format!("needs_reauth: reconnect this account{detail}. Nothing was queued for it."),
        )),
        StatusKind::Error | StatusKind::Disconnected => Some((
            "unavailable",
            format!(
                "{}: this account cannot act now{detail}; try again once it is connected. Nothing was queued for it.",
                connection.status.kind
            ),
        )),
        StatusKind::Connecting | StatusKind::Connected | StatusKind::Degraded => None,
    }
}

fn job_view(job: &Job, label: &str) -> Value {
    let mut view = json!({
        "account": label,
        "connection_id": job.connection_id,
        "job_id": job.id,
        "action": job.action,
        "state": job.state,
        "attempts": job.attempts,
    });
    if let Some(result) = &job.result {
        view["result"] = result.clone();
    }
    if let Some(error) = &job.error {
        view["error"] = json!({ "code": error.code, "message": error.message });
    }
    if let Some(reason) = &job.waiting_reason {
        view["waiting_reason"] = json!(reason);
    }
    if !job.state.is_final() {
        view["next"] = json!("still running: call job_status with this job_id to follow it");
    }
    view
}

fn success(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

fn error_text(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

fn field_errors(errors: &[FieldError]) -> CallToolResult {
    error_text(tools::describe_field_errors(errors))
}

fn engine_error(error: &EngineError) -> CallToolResult {
    match error {
        EngineError::Invalid(errors) => field_errors(errors),
        EngineError::Store(_) | EngineError::Vault(_) => {
            tracing::error!(%error, "an MCP tool call failed");
            error_text("switchboard failed internally; the owner can find why in its log".into())
        }
        other => error_text(other.to_string()),
    }
}

fn internal(error: impl std::fmt::Display) -> ErrorData {
    tracing::error!(%error, "an MCP request failed");
    ErrorData::internal_error("switchboard failed internally", None)
}

impl ServerHandler for ToolServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_resources()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("switchboard", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "switchboard acts on the accounts its owner connected (X, Twitch, OBS, the local machine). \
                 Call list_connections to see them. Action tools (x_post, obs_set_scene, ...) run on every \
                 enabled account of their service unless you name one with `account`; each returns one \
                 result per account. Recent events (mentions, chat) are the resource switchboard://events/recent.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let scope = self.scope(&context.extensions)?;
        let connections = self.connections(&scope).await?;
        let mut result = ListToolsResult::with_all_items(self.tools_for(&connections));
        // The list follows the owner's connections: never serve it from a cache.
        result.ttl_ms = Some(0);
        result.cache_scope = Some(CacheScope::Private);
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call(request, &context)
            .await
            .map(CallToolResponse::from)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.scope(&context.extensions)?;
        let mut result = ListResourcesResult::with_all_items(vec![
            Resource::new(RECENT_EVENTS_URI, "recent events")
                .with_description(
                    "The latest 50 events of the accounts in scope, newest last: mentions (x.mention), chat \
                     (twitch.chat.message), scene changes, webhooks, ... Read it to react to what happened.",
                )
                .with_mime_type("application/json"),
        ]);
        result.ttl_ms = Some(0);
        result.cache_scope = Some(CacheScope::Private);
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != RECENT_EVENTS_URI {
            return Err(ErrorData::resource_not_found(
                format!(
                    "no resource `{}`; there is {RECENT_EVENTS_URI}",
                    request.uri
                ),
                None,
            ));
        }
        let scope = self.scope(&context.extensions)?;
        let ids: BTreeSet<String> = self
            .connections(&scope)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        // The latest events of the log, of the connections in scope.
        let last = self
            .engine
            .store()
            .last_event_id()
            .await
            .map_err(internal)?;
        let mut events = self
            .engine
            .list_events(&EventFilter {
                after_id: Some(last.saturating_sub(2000)),
                limit: 2000,
                ..Default::default()
            })
            .await
            .map_err(internal)?;
        events.retain(|e| {
            e.connection_id.as_ref().is_some_and(|id| ids.contains(id))
                && !e.kind.starts_with("job.")
        });
        let keep_from = events.len().saturating_sub(50);
        events.drain(..keep_from);
        let text = serde_json::to_string_pretty(&events).map_err(internal)?;
        let mut result =
            ReadResourceResult::new(vec![ResourceContents::text(text, RECENT_EVENTS_URI)]);
        result.ttl_ms = Some(0);
        result.cache_scope = Some(CacheScope::Private);
        Ok(result.into())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // A legacy (initialize) session: changes go to the session itself.
        let Ok(scope) = self.scope(&context.extensions) else {
            return;
        };
        let server = self.clone();
        let peer = context.peer.clone();
        tokio::spawn(async move {
            let closed = {
                let peer = peer.clone();
                async move {
                    while !peer.is_transport_closed() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            server
                .watch_tools(
                    scope,
                    None,
                    || {
                        let peer = peer.clone();
                        async move { peer.notify_tool_list_changed().await.is_ok() }
                    },
                    closed,
                )
                .await;
        });
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.tools_list_changed = requested.tools_list_changed;
        if accepted.tools_list_changed == Some(true) {
            *self.listen_events.lock().expect("listen events poisoned") =
                Some(self.engine.subscribe_events());
        }
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let scope = self.scope(&context.request_context().extensions)?;
        if context.accepted().tools_list_changed == Some(true) {
            let sink = context.sink();
            let early = self
                .listen_events
                .lock()
                .expect("listen events poisoned")
                .take();
            self.watch_tools(
                scope,
                early,
                || async { sink.notify_tool_list_changed().await.is_ok() },
                context.cancelled(),
            )
            .await;
        } else {
            context.cancelled().await;
        }
        Ok(())
    }
}
