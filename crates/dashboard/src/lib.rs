//! The web dashboard, served by the daemon at `/` on the API's port.
//!
//! Pages are rendered on the server with **maud** (chosen over askama for the
//! lighter build: one proc-macro crate, templates checked by the compiler as
//! Rust, no template files to locate at build time). A little hand-written
//! JavaScript (`assets/app.js`, one ES module) does the live parts: the SSE
//! stream, fetch calls, the OAuth popup. Every asset is embedded
//! ([`assets`]); nothing comes from a CDN and nothing needs Node.
//!
//! **Sign-in.** An owner (admin) token typed into the sign-in form, or a
//! one-time login link (`/login?code=…`, single use, 10 minutes) that `serve`
//! and `demo` print. Agent tokens are refused. A session is a random id in an
//! `HttpOnly; SameSite=Strict` cookie (`Secure` when the public URL is
//! https); the server keeps only hashes ([`session`]).
//!
//! **How the browser reaches the REST API.** It never sends the session
//! cookie to `/api/v1`, which accepts only bearer tokens (so a
//! cookie-authenticated request there is refused). The dashboard's proxy at
//! `/ui/api/v1/…` checks the session and, for every state-changing method,
//! the `X-CSRF-Token` header against the session's synchronizer token, then
//! hands the request to the same in-process API router marked with
//! [`switchboard_api::auth::DashboardOwner`] (an extension: no client can
//! set one). Validation, problem+json errors and the event stream are the
//! API's own.
//!
//! **Invariant:** the browser never receives a secret: pages show only which
//! secrets are set, and the API never returns their values.
//!
//! Every dashboard response carries a strict Content-Security-Policy (no
//! inline script or style), `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer`.

pub mod assets;
pub mod form;
mod pages;
pub mod session;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use switchboard_runtime::Engine;
use switchboard_store::TokenRole;
use tower::ServiceExt;

use session::{LOGIN_CODE_TTL, MemorySessions, Session, SessionStore, hash, random_value};

const SESSION_COOKIE: &str = "sb_session";
const LOGIN_CSRF_COOKIE: &str = "sb_login_csrf";
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Options of the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// The daemon's URL as the user's browser reaches it: login links start
    /// with it, and an `https` one makes the session cookie `Secure`.
    pub public_url: String,
}

/// The dashboard of one daemon process: its sessions and login codes.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<Engine>,
    sessions: Arc<dyn SessionStore>,
    public_url: String,
    secure: bool,
}

/// What dashboard handlers reach: the dashboard and the API router it
/// forwards to.
#[derive(Clone)]
struct DashState {
    dashboard: Dashboard,
    api: Router,
}

impl Dashboard {
    /// A dashboard keeping its sessions in memory ([`MemorySessions`]).
    pub fn new(engine: Arc<Engine>, options: DashboardOptions) -> Dashboard {
        Dashboard::with_sessions(engine, options, Arc::new(MemorySessions::default()))
    }

    pub fn with_sessions(
        engine: Arc<Engine>,
        options: DashboardOptions,
        sessions: Arc<dyn SessionStore>,
    ) -> Dashboard {
        let public_url = options.public_url.trim_end_matches('/').to_owned();
        Dashboard {
            inner: Arc::new(Inner {
                engine,
                sessions,
                secure: public_url.starts_with("https://"),
                public_url,
            }),
        }
    }

    /// Mint a one-time login link (single use, 10 minutes). The code is
    /// returned once, in the link; only its hash is kept.
    pub fn login_link(&self) -> String {
        let code = random_value();
        self.inner
            .sessions
            .insert_code(hash(&code), Instant::now() + LOGIN_CODE_TTL);
        format!("{}/login?code={code}", self.inner.public_url)
    }

    /// `api` (the REST API router) with the dashboard's pages, assets and
    /// its session-checked proxy to `api` added.
    pub fn router(&self, api: Router) -> Router {
        let state = DashState {
            dashboard: self.clone(),
            api: api.clone(),
        };
        let pages = Router::new()
            .route("/", get(pages::connections))
            .route("/connections/new", get(pages::new_connection))
            .route("/jobs", get(pages::jobs))
            .route("/jobs/{id}", get(pages::job))
            .route("/events", get(pages::events))
            .route("/events/{id}", get(pages::event_trace))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                require_session,
            ));
        let dashboard = Router::new()
            .merge(pages)
            .route("/login", get(login_page).post(login_with_token))
            .route("/logout", post(logout))
            .route("/assets/{name}", get(assets::serve))
            .route("/ui/api/v1/{*rest}", any(proxy))
            .layer(axum::middleware::from_fn(security_headers))
            .with_state(state);
        api.merge(dashboard)
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let id_hash = hash(&id);
        let session = self
            .inner
            .sessions
            .touch_session(&id_hash, Instant::now())?;
        Some((id_hash, session))
    }

    fn start_session(&self, token_id: String) -> String {
        let id = random_value();
        self.inner.sessions.insert_session(
            hash(&id),
            Session {
                csrf: random_value(),
                token_id,
            },
            Instant::now(),
        );
        let secure = if self.inner.secure { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}")
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }
}

/// The value of one cookie. Hand-written: the dashboard reads two cookies
/// it sets itself, which does not warrant a cookie-jar dependency.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The signed-in session, for page handlers.
#[derive(Clone)]
pub(crate) struct SignedIn(pub Session);

async fn require_session(
    State(state): State<DashState>,
    mut request: Request,
    next: Next,
) -> Response {
    match state.dashboard.session(request.headers()) {
        Some((_, session)) => {
            request.extensions_mut().insert(SignedIn(session));
            next.run(request).await
        }
        None => Redirect::to("/login").into_response(),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    code: Option<String>,
}

fn login_form_response(status: StatusCode, message: Option<&str>) -> Response {
    let csrf = random_value();
    let mut response = (status, pages::login(&csrf, message)).into_response();
    let cookie = format!("{LOGIN_CSRF_COOKIE}={csrf}; Path=/login; HttpOnly; SameSite=Strict");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn signed_in_redirect(set_cookie: &str) -> Response {
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(set_cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn login_page(
    State(state): State<DashState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let dashboard = &state.dashboard;
    match query.code {
        Some(code) => {
            if dashboard
                .inner
                .sessions
                .take_code(&hash(&code), Instant::now())
            {
                tracing::info!("dashboard: signed in with a login link");
                signed_in_redirect(&dashboard.start_session("login-link".into()))
            } else {
                login_form_response(
                    StatusCode::UNAUTHORIZED,
                    Some(
                        "This login link was already used or has expired: a link works once, for 10 minutes. Sign in with the admin token below, or restart switchboard for a new link.",
                    ),
                )
            }
        }
        None if dashboard.session(&headers).is_some() => Redirect::to("/").into_response(),
        None => login_form_response(StatusCode::OK, None),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    csrf: String,
}

async fn login_with_token(
    State(state): State<DashState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same_token(&expected, &form.csrf) {
        return login_form_response(
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired or came from another site. Try again from this page."),
        );
    }
    let token = form.token.trim();
    if token.is_empty() {
        return login_form_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Enter the admin token (it starts with sb_)."),
        );
    }
    let found = state
        .dashboard
        .engine()
        .store()
        .find_token(&switchboard_api::auth::hash_token(token))
        .await;
    match found {
        Ok(Some(t)) if t.role == TokenRole::Admin => {
            tracing::info!(token = %t.name, "dashboard: signed in with a token");
            signed_in_redirect(&state.dashboard.start_session(t.id))
        }
        Ok(Some(_)) => login_form_response(
            StatusCode::FORBIDDEN,
            Some(
                "This is an agent token: agents work only through MCP (/mcp) and cannot sign in to the dashboard. Sign in with the admin token.",
            ),
        ),
        Ok(None) => login_form_response(
            StatusCode::UNAUTHORIZED,
            Some(
                "This token is not valid: it is unknown or revoked. Use the admin token printed at first start, or the login link printed by `switchboard serve`.",
            ),
        ),
        Err(error) => {
            tracing::error!(%error, "dashboard: could not look up a token");
            login_form_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("switchboard could not check the token; the details are in its log."),
            )
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(
    State(state): State<DashState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    // Without a session (or from another site, whose request carries no
    // cookie) there is nothing to end, and no cookie is touched.
    let Some((id_hash, session)) = state.dashboard.session(&headers) else {
        return Redirect::to("/login").into_response();
    };
    if !session::same_token(&session.csrf, &form.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "the sign-out form is missing its CSRF token; sign out from the dashboard's own button",
        )
            .into_response();
    }
    state.dashboard.inner.sessions.remove_session(&id_hash);
    let mut response = Redirect::to("/login").into_response();
    let secure = if state.dashboard.inner.secure {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:switchboard:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// `/ui/api/v1/<rest>` → the API's `/api/v1/<rest>`, for a signed-in
/// browser; state-changing methods need the session's CSRF token in
/// `X-CSRF-Token`, and a request another site started is refused outright.
async fn proxy(State(state): State<DashState>, request: Request) -> Response {
    let Some((_, session)) = state.dashboard.session(request.headers()) else {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the dashboard session ended; sign in again at /login",
        );
    };
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe {
        let cross_site = request
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "cross-site");
        let token_ok = request
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| session::same_token(v, &session.csrf));
        if cross_site || !token_ok {
            return problem(
                StatusCode::FORBIDDEN,
                "csrf",
                "this request is missing the dashboard's CSRF token (X-CSRF-Token) or came from another site; reload the page and try again",
            );
        }
    }
    // The original (still percent-encoded) path and query, minus `/ui`.
    let target = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .and_then(|pq| pq.strip_prefix("/ui"))
        .unwrap_or("/api/v1/")
        .to_owned();
    let Ok(uri) = target.parse::<Uri>() else {
        return problem(StatusCode::BAD_REQUEST, "bad_path", "the path is not valid");
    };
    // A fresh request: the extensions of this route (its path parameters)
    // must not reach the API's own routing.
    let (parts, body) = request.into_parts();
    let mut forwarded = Request::new(body);
    *forwarded.method_mut() = parts.method;
    *forwarded.uri_mut() = uri;
    *forwarded.version_mut() = parts.version;
    *forwarded.headers_mut() = parts.headers;
    let headers = forwarded.headers_mut();
    headers.remove(header::COOKIE);
    headers.remove(header::AUTHORIZATION);
    headers.remove("x-csrf-token");
    if let Some(peer) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        forwarded.extensions_mut().insert(*peer);
    }
    forwarded
        .extensions_mut()
        .insert(switchboard_api::auth::DashboardOwner::new());
    match state.api.clone().oneshot(forwarded).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_cookie_among_several() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sb_session=xyz; b=2"),
        );
        assert_eq!(cookie(&headers, "sb_session").as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "sb_login_csrf"), None);
    }
}
