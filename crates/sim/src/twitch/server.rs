//! The HTTP front: routes, request recording, fault injection, and the
//! hand-made WebSocket upgrade for `/irc` and `/eventsub/ws`.
//!
//! axum answers the HTTP upgrade itself (101 with `Sec-WebSocket-Accept`);
//! hyper hands over the raw connection, which tokio-tungstenite wraps as a
//! server-side WebSocket without a second handshake. The socket task then
//! owns the connection for as long as it lives.

use std::future::Future;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{RecordedRequest, Sim, auth, eventsub, helix, irc};

/// Largest request body accepted.
const MAX_BODY: usize = 4 * 1024 * 1024;

pub(crate) type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

pub(crate) async fn serve(
    listener: TcpListener,
    sim: Sim,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let app = router(sim);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "twitch simulator stopped with an error");
    }
}

fn router(sim: Sim) -> Router {
    Router::new()
        .route("/oauth2/authorize", get(auth::authorize).post(auth::decide))
        .route("/oauth2/token", post(auth::token))
        .route("/oauth2/validate", get(auth::validate))
        .route("/oauth2/revoke", post(auth::revoke))
        .route("/irc", get(irc::upgrade))
        .route("/eventsub/ws", get(eventsub::upgrade))
        .merge(helix::routes())
        .fallback(|| async {
            helix::HelixError::new(StatusCode::NOT_FOUND, "Not Found").into_response()
        })
        .layer(middleware::from_fn_with_state(sim.clone(), front_door))
        .with_state(sim)
}

/// Record the request, apply matching faults, then hand it on.
async fn front_door(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return helix::HelixError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
                .into_response();
        }
    };
    let (seq, (delay, status)) = {
        let mut state = sim.lock();
        state.prune();
        let seq = state.next_request_seq;
        state.next_request_seq += 1;
        let limit = state.config.record_body_limit;
        let mut recorded = record(&parts.method, &parts.uri, &parts.headers, &bytes, limit);
        recorded.seq = seq;
        state.requests.push(recorded);
        (
            seq,
            state.take_faults(parts.method.as_str(), parts.uri.path()),
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let response = match status {
        Some(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            helix::HelixError::new(status, "injected fault").into_response()
        }
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    let mut state = sim.lock();
    if let Some(entry) = state.requests.iter_mut().rev().find(|r| r.seq == seq) {
        entry.status = Some(response.status().as_u16());
    }
    response
}

fn record(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    limit: usize,
) -> RecordedRequest {
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let headers = headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or("").to_owned();
            if name == header::AUTHORIZATION {
                let scheme = value.split_whitespace().next().unwrap_or("").to_owned();
                (name.as_str().to_owned(), scheme)
            } else {
                (name.as_str().to_owned(), value)
            }
        })
        .collect();
    let mut body = body.to_vec();
    body.truncate(limit);
    RecordedRequest {
        seq: 0,
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query,
        headers,
        body,
        status: None,
    }
}

/// Answer a WebSocket upgrade and run `serve` on the socket. `subprotocol`
/// is echoed when the client offers it.
pub(crate) fn upgrade<F, Fut>(mut request: Request, subprotocol: Option<&str>, serve: F) -> Response
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let headers = request.headers();
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "Bad Request", "status": 400, "message": "WebSocket upgrade required"})),
        )
            .into_response();
    };
    if !is_upgrade {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(|p| p.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let chosen = subprotocol.filter(|p| offered.iter().any(|o| o == p));
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                serve(socket).await;
            }
            Err(error) => tracing::debug!(%error, "websocket upgrade failed"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = chosen.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}
