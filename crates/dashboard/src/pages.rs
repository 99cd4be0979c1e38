//! The pages, rendered with maud (which escapes every interpolated value).
//! Each page is complete without JavaScript for reading; `app.js` makes it
//! live (status changes, new events) and sends the state-changing requests.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::Value;
use switchboard_api::model::{ConnectionView, EventView, JobView};
use switchboard_core::JobState;
use switchboard_store::{EventFilter, JobFilter};

use crate::{DashState, SignedIn, assets, form};

const STATUSES: [&str; 6] = [
    "disconnected",
    "connecting",
    "connected",
    "degraded",
    "needs_reauth",
    "error",
];

fn layout(title: &str, page: &str, csrf: Option<&str>, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="color-scheme" content="light dark";
                    @if let Some(csrf) = csrf { meta name="csrf-token" content=(csrf); }
                    title { (title) " · switchboard" }
                    link rel="icon" href=(assets::url("icon.svg")) type="image/svg+xml";
                    link rel="stylesheet" href=(assets::url("app.css"));
                    script type="module" src=(assets::url("app.js")) {}
                }
                body data-page=(page) {
                    a.skip href="#main" { "Skip to content" }
                    @if let Some(csrf) = csrf {
                        header.top {
                            a.brand href="/" { "switchboard" }
                            nav aria-label="Main" {
                                a href="/" aria-current=[(page == "connections").then_some("page")] { "Connections" }
                                a href="/jobs" aria-current=[(page == "jobs").then_some("page")] { "Jobs" }
                                a href="/events" aria-current=[(page == "events").then_some("page")] { "Events" }
                            }
                            span #live.live data-state="connecting" role="status" { "Live: connecting…" }
                            form.signout method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                    main #main { (body) }
                }
            }
        }
        .into_string(),
    )
}

fn time(ms: i64) -> Markup {
    let iso = chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    html! { time data-ms=(ms) title=(iso) { (iso) } }
}

fn internal(error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "dashboard: could not render a page");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "switchboard could not read its data; the details are in its log",
    )
        .into_response()
}

pub(crate) fn login(csrf: &str, message: Option<&str>) -> Html<String> {
    layout(
        "Sign in",
        "login",
        None,
        html! {
            section.signin {
                h1 { "Sign in to switchboard" }
                p { "Open the login link that " code { "switchboard serve" } " printed, or paste the admin token." }
                @if let Some(message) = message { p.error #login-error role="alert" { (message) } }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    div.field {
                        label for="token" { "Admin token" }
                        input #token type="password" name="token" autocomplete="current-password" required
                            aria-describedby=[message.map(|_| "login-error")];
                    }
                    button.primary type="submit" { "Sign in" }
                }
            }
        },
    )
}

fn status_badge(status: &str, reason: Option<&str>, since: i64) -> Markup {
    let status = if STATUSES.contains(&status) {
        status
    } else {
        "error"
    };
    html! {
        div.status data-status=(status) {
            span.shape aria-hidden="true" {}
            span.status-text { (status.replace('_', " ")) }
            span.since { " since " (time(since)) }
        }
        p.reason { @if let Some(r) = reason { (r) } }
    }
}

fn card(c: &ConnectionView, auth: &str, secret_names: &[String]) -> Markup {
    let can_connect = auth == "oauth2" || auth == "oauth1";
    html! {
        article.card id={ "c-" (c.id) } data-id=(c.id) data-label=(c.label) aria-labelledby={ "h-" (c.id) } {
            header {
                h2 id={ "h-" (c.id) } { (c.label) }
                span.connector { (c.connector) }
                @if !c.enabled { span.pill { "disabled" } }
            }
            (status_badge(&c.status.status, c.status.reason.as_deref(), c.status.since))
            @if !secret_names.is_empty() {
                p.secrets-set {
                    "Secrets: "
                    @for (i, name) in secret_names.iter().enumerate() {
                        @if i > 0 { ", " }
                        @if c.secrets_set.contains(name) { span.set data-secret=(name) { (name) " ✓ set" } }
                        @else { span.unset data-secret=(name) { (name) " not set" } }
                    }
                }
            }
            div.actions {
                @if can_connect { button.primary type="button" data-action="connect" { "Connect" } }
                @if c.enabled { button type="button" data-action="disable" { "Disable" } }
                @else { button type="button" data-action="enable" { "Enable" } }
                button type="button" data-action="restart" { "Restart" }
                button.danger type="button" data-action="delete" { "Delete" }
                a href={ "/jobs?connection=" (c.id) } { "Jobs" }
                a href={ "/events?connection=" (c.id) } { "Events" }
            }
            @if !secret_names.is_empty() {
                details.replace {
                    summary { "Replace a secret" }
                    form.secret-form {
                        div.field {
                            label for={ "sn-" (c.id) } { "Secret" }
                            select id={ "sn-" (c.id) } name="name" {
                                @for name in secret_names { option value=(name) { (name) } }
                            }
                        }
                        div.field {
                            label for={ "sv-" (c.id) } { "New value" }
                            input id={ "sv-" (c.id) } type="password" name="value" autocomplete="new-password" required;
                        }
                        button.primary type="submit" { "Save secret" }
                        p.field-error role="alert" {}
                    }
                }
            }
            p.card-error role="alert" {}
        }
    }
}

pub(crate) async fn connections(
    State(state): State<DashState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
) -> Response {
    let engine = state.dashboard.engine();
    let list = match engine.list_connections().await {
        Ok(list) => list,
        Err(error) => return internal(&error),
    };
    let connectors = engine.connectors();
    let views: Vec<ConnectionView> = list.into_iter().map(Into::into).collect();
    layout(
        "Connections",
        "connections",
        Some(&session.csrf),
        html! {
            div.heading {
                h1 { "Connections" }
                a.button.primary href="/connections/new" { "Add a connection" }
            }
            @if views.is_empty() {
                section.empty {
                    p { "No connections yet — add one: an X or Twitch account, an OBS Studio, a schedule or a webhook." }
                    a.button.primary href="/connections/new" { "Add a connection" }
                }
            }
            section.cards #cards {
                @for c in &views {
                    @let manifest = connectors.iter().find(|m| m.name == c.connector);
                    @let auth = manifest.map(|m| serde_json::to_value(m.auth).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()).unwrap_or_default();
                    @let secrets: Vec<String> = manifest.map(|m| m.secrets.iter().map(|s| s.name.clone()).collect()).unwrap_or_default();
                    (card(c, &auth, &secrets))
                }
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct NewQuery {
    connector: Option<String>,
}

pub(crate) async fn new_connection(
    State(state): State<DashState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
    Query(query): Query<NewQuery>,
) -> Response {
    let engine = state.dashboard.engine();
    let chosen = query
        .connector
        .as_deref()
        .and_then(|n| engine.connector(n).ok());
    let body = match chosen {
        None => html! {
            h1 { "Add a connection" }
            p { "Pick what to connect." }
            ul.connectors {
                @for m in engine.connectors() {
                    li {
                        a.connector-choice href={ "/connections/new?connector=" (m.name) } {
                            strong { (m.display_name) }
                            span { (m.description) }
                        }
                    }
                }
            }
        },
        Some(m) => html! {
            p { a href="/connections/new" { "← all connectors" } }
            h1 { "Add " (m.display_name) }
            p { (m.description) }
            form #new-connection data-connector=(m.name) novalidate {
                div.field {
                    label for="f-label" { "label" span.req { " (required)" } }
                    input #f-label type="text" name="label" data-field="label" required autocomplete="off"
                        aria-describedby="f-label-help f-label-error";
                    p.help #f-label-help { "A name you choose, such as my-x-account." }
                    p.field-error #f-label-error role="alert" {}
                }
                div.field.check {
                    label for="f-enabled" { "enabled" }
                    input #f-enabled type="checkbox" name="enabled" checked;
                }
                fieldset.group {
                    legend { "Settings" }
                    (form::fields(&m.settings_schema, "settings"))
                }
                @if !m.secrets.is_empty() {
                    fieldset.group {
                        legend { "Secrets" }
                        p.help { "Write-only: once saved, a secret is never shown again, only whether it is set." }
                        @for s in &m.secrets {
                            @let path = format!("secrets.{}", s.name);
                            @let id = format!("f-secrets-{}", s.name);
                            div.field {
                                label for=(id) { (s.name) @if s.required { span.req { " (required)" } } }
                                input id=(id) type="password" name=(path) data-field=(path) data-kind="secret"
                                    autocomplete="new-password" aria-describedby={ (id) "-help " (id) "-error" };
                                p.help id={ (id) "-help" } { (s.description) }
                                p.field-error id={ (id) "-error" } role="alert" {}
                            }
                        }
                    }
                }
                p.form-error role="alert" {}
                button.primary type="submit" { "Add connection" }
            }
        },
    };
    layout("Add a connection", "new", Some(&session.csrf), body).into_response()
}

#[derive(Deserialize)]
pub(crate) struct JobsQuery {
    state: Option<String>,
    connection: Option<String>,
    action: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

pub(crate) async fn jobs(
    State(state): State<DashState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
    Query(query): Query<JobsQuery>,
) -> Response {
    let engine = state.dashboard.engine();
    let job_state = non_empty(&query.state).and_then(|s| s.parse::<JobState>().ok());
    let filter = JobFilter {
        state: job_state,
        connection_id: non_empty(&query.connection).map(str::to_owned),
        before_id: None,
        limit: 200,
    };
    let (jobs, connections) = match (
        engine.list_jobs(&filter).await,
        engine.list_connections().await,
    ) {
        (Ok(j), Ok(c)) => (j, c),
        (Err(e), _) | (_, Err(e)) => return internal(&e),
    };
    let action = non_empty(&query.action);
    let jobs: Vec<JobView> = jobs
        .into_iter()
        .filter(|j| action.is_none_or(|a| j.action == a))
        .map(Into::into)
        .collect();
    let label = |id: &str| {
        connections
            .iter()
            .find(|c| c.connection.id == id)
            .map_or_else(|| id.to_owned(), |c| c.connection.label.clone())
    };
    layout(
        "Jobs",
        "jobs",
        Some(&session.csrf),
        html! {
            h1 { "Jobs" }
            form.filters method="get" action="/jobs" {
                div.field {
                    label for="q-state" { "State" }
                    select #q-state name="state" {
                        option value="" { "any" }
                        @for s in ["queued", "running", "succeeded", "failed", "dead"] {
                            option value=(s) selected[non_empty(&query.state) == Some(s)] { (s) }
                        }
                    }
                }
                div.field {
                    label for="q-connection" { "Connection" }
                    select #q-connection name="connection" {
                        option value="" { "any" }
                        @for c in &connections {
                            option value=(c.connection.id) selected[non_empty(&query.connection) == Some(c.connection.id.as_str())] { (c.connection.label) }
                        }
                    }
                }
                div.field {
                    label for="q-action" { "Action" }
                    input #q-action type="text" name="action" value=[action] placeholder="x.post";
                }
                button type="submit" { "Filter" }
            }
            @if jobs.is_empty() {
                p.empty { "No jobs match. Jobs appear here when a rule, the API, the CLI or an agent runs an action." }
            } @else {
                div.table-wrap {
                    table.list {
                        thead { tr { th { "State" } th { "Action" } th { "Connection" } th { "Attempts" } th { "Created" } } }
                        tbody {
                            @for j in &jobs {
                                tr {
                                    td { span.state data-state=(j.state) { (j.state) } }
                                    td { a href={ "/jobs/" (j.id) } { (j.action) } }
                                    td { (label(&j.connection_id)) }
                                    td { (j.attempts) "/" (j.max_attempts) }
                                    td { (time(j.created_at)) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

fn json_block(value: &Value) -> Markup {
    html! { pre.json { (serde_json::to_string_pretty(value).unwrap_or_default()) } }
}

pub(crate) async fn job(
    State(state): State<DashState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    let engine = state.dashboard.engine();
    let job: JobView = match engine.get_job(&id).await {
        Ok(job) => job.into(),
        Err(_) => {
            return (
                StatusCode::NOT_FOUND,
                layout(
                    "Job not found",
                    "jobs",
                    Some(&session.csrf),
                    html! { h1 { "Job not found" } p { "No job " code { (id) } " exists (it may have been pruned). " a href="/jobs" { "All jobs" } } },
                ),
            )
                .into_response();
        }
    };
    let retryable = job.state == "failed" || job.state == "dead";
    layout(
        "Job",
        "job",
        Some(&session.csrf),
        html! {
            p { a href="/jobs" { "← all jobs" } }
            h1 { (job.action) " " span.state data-state=(job.state) { (job.state) } }
            dl.facts {
                dt { "Id" } dd { code { (job.id) } }
                dt { "Connection" } dd { a href={ "/jobs?connection=" (job.connection_id) } { code { (job.connection_id) } } }
                dt { "Attempts" } dd { (job.attempts) " of " (job.max_attempts) }
                dt { "Created" } dd { (time(job.created_at)) }
                @if let Some(t) = job.started_at { dt { "Started" } dd { (time(t)) } }
                @if let Some(t) = job.finished_at { dt { "Finished" } dd { (time(t)) } }
                @if let Some(w) = &job.waiting_reason { dt { "Waiting" } dd { (w) } }
            }
            h2 { "Params" }
            (json_block(&job.params))
            @if let Some(result) = &job.result { h2 { "Result" } (json_block(result)) }
            @if let Some(error) = &job.error {
                h2 { "Error" }
                p.error { code { (error.code) } " " (error.message) @if error.retryable { " (retryable)" } }
            }
            @if retryable {
                button.primary type="button" #retry data-job=(job.id) { "Retry" }
                p.form-error role="alert" {}
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    connection: Option<String>,
}

fn event_row(e: &EventView) -> Markup {
    html! {
        li.event data-id=(e.id) {
            a href={ "/events/" (e.id) } { code.kind { (e.kind) } }
            " " (time(e.at))
            @if let Some(c) = &e.connection_id { " " span.conn { (c) } }
            pre.json.payload { (e.payload.to_string()) }
        }
    }
}

pub(crate) async fn events(
    State(state): State<DashState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
    Query(query): Query<EventsQuery>,
) -> Response {
    let engine = state.dashboard.engine();
    let kind = non_empty(&query.kind).map(str::to_owned);
    let connection = non_empty(&query.connection).map(str::to_owned);
    let last = match engine.store().last_event_id().await {
        Ok(id) => id,
        Err(e) => return internal(&e),
    };
    let filter = EventFilter {
        after_id: Some((last - 200).max(0)),
        kind: kind.clone(),
        connection_id: connection.clone(),
        limit: 200,
    };
    let events: Vec<EventView> = match engine.list_events(&filter).await {
        Ok(events) => events.iter().rev().map(EventView::from).collect(),
        Err(e) => return internal(&e),
    };
    layout(
        "Events",
        "events",
        Some(&session.csrf),
        html! {
            h1 { "Events" }
            form.filters method="get" action="/events" {
                div.field {
                    label for="q-type" { "Type" }
                    input #q-type type="text" name="type" value=[kind.as_deref()] placeholder="x. or connection.status";
                }
                @if let Some(c) = &connection { input type="hidden" name="connection" value=(c); }
                button type="submit" { "Filter" }
                button type="button" #pause aria-pressed="false" { "Pause" }
            }
            p.help { "Newest first. New events appear as they happen" @if kind.is_some() { " (only this type)" } "." }
            ul.events #events data-last=(last) data-kind=[kind.as_deref()] data-connection=[connection.as_deref()] {
                @for e in &events { (event_row(e)) }
            }
            @if events.is_empty() { p.empty #no-events { "No events yet. They appear here live." } }
        },
    )
    .into_response()
}

pub(crate) async fn event_trace(
    State(state): State<DashState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
    Path(id): Path<i64>,
) -> Response {
    let engine = state.dashboard.engine();
    let trace = match engine.trace_event(id).await {
        Ok(trace) => trace,
        Err(_) => {
            return (
                StatusCode::NOT_FOUND,
                layout(
                    "Event not found",
                    "events",
                    Some(&session.csrf),
                    html! { h1 { "Event not found" } p { "No event " (id) " in the log (it may have been pruned). " a href="/events" { "All events" } } },
                ),
            )
                .into_response();
        }
    };
    let event = EventView::from(&trace.event);
    layout(
        "Event trace",
        "trace",
        Some(&session.csrf),
        html! {
            p { a href="/events" { "← all events" } }
            h1 { "Event " (event.id) ": " code { (event.kind) } }
            ol.trace {
                li.step {
                    h2 { "Trigger" }
                    p { (time(event.at)) @if let Some(c) = &event.connection_id { " on " code { (c) } } }
                    (json_block(&event.payload))
                }
                @if trace.runs.is_empty() {
                    li.step { h2 { "Rules" } p { "No rule matched this event." } }
                }
                @for run in &trace.runs {
                    li.step {
                        h2 { "Rule " code { (run.run.rule) } " " span.state data-state=(run.run.state) { (run.run.state) } }
                        @if let Some(error) = &run.run.error { p.error { (error) } }
                        @if run.jobs.is_empty() { p { "No job." } }
                        ul {
                            @for job in &run.jobs {
                                li { a href={ "/jobs/" (job.id) } { code { (job.action) } } " " span.state data-state=(job.state.to_string()) { (job.state.to_string()) } }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}
