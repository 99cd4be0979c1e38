//! The HTTP front: routes, request recording, fault injection, and a listener
//! whose connections can be dropped on purpose.
//!
//! A dropped connection must be real (the client sees the socket close with no
//! response), which axum cannot do from a handler. So the listener wraps every
//! accepted socket in a [`KillableStream`] and hands the handler a
//! [`Connection`] (through `ConnectInfo`) holding the same kill switch. When a
//! `Fault::Drop` matches, the front door pulls the switch: the stream refuses
//! to write the response and reports EOF, hyper gives up on the connection and
//! the socket is closed with nothing sent.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::error::ApiError;
use super::{RecordedRequest, Sim, Terminal, api, auth, media};

/// Largest request body accepted (a media chunk plus multipart framing).
const MAX_BODY: usize = 64 * 1024 * 1024;

pub(crate) async fn serve(
    listener: TcpListener,
    sim: Sim,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let app = router(sim);
    let listener = KillableListener { inner: listener };
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<Connection>(),
    )
    .with_graceful_shutdown(async {
        let _ = shutdown.await;
    })
    .await;
    if let Err(error) = result {
        tracing::warn!(%error, "x simulator stopped with an error");
    }
}

fn router(sim: Sim) -> Router {
    Router::new()
        .route(
            "/i/oauth2/authorize",
            get(auth::oauth2_authorize).post(auth::oauth2_decide),
        )
        .route("/2/oauth2/token", post(auth::oauth2_token))
        .route("/2/oauth2/revoke", post(auth::oauth2_revoke))
        .route("/oauth/request_token", post(auth::oauth1_request_token))
        .route(
            "/oauth/authorize",
            get(auth::oauth1_authorize).post(auth::oauth1_decide),
        )
        .route(
            "/oauth/authenticate",
            get(auth::oauth1_authorize).post(auth::oauth1_decide),
        )
        .route("/oauth/access_token", post(auth::oauth1_access_token))
        .route("/2/tweets", post(api::create_post))
        .route("/2/tweets/search/recent", get(api::search_recent))
        .route(
            "/2/tweets/{id}",
            get(api::get_post).delete(api::delete_post),
        )
        .route("/2/users/me", get(api::users_me))
        .route("/2/users/{id}/mentions", get(api::mentions))
        .route("/2/users/{id}/tweets", get(api::user_posts))
        .route("/2/media/upload/initialize", post(media::initialize))
        .route("/2/media/upload/{id}/append", post(media::append))
        .route("/2/media/upload/{id}/finalize", post(media::finalize))
        .route("/2/media/upload", get(media::status))
        .fallback(|| async { ApiError::no_route() })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(sim.clone(), front_door))
        .with_state(sim)
}

/// Record the request, apply matching faults, then hand it on.
async fn front_door(
    State(sim): State<Sim>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::blank(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
                .into_response();
        }
    };
    let (seq, plan) = {
        let mut state = sim.lock();
        state.prune();
        let limit = state.config.record_body_limit;
        let seq = state.next_request_seq;
        state.next_request_seq += 1;
        let mut recorded = record(&parts.method, &parts.uri, &parts.headers, &bytes, limit);
        recorded.seq = seq;
        state.requests.push(recorded);
        (
            seq,
            state.take_faults(parts.method.as_str(), parts.uri.path()),
        )
    };
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    let response = match plan.terminal {
        Some(Terminal::Drop) => {
            tracing::debug!(path = %parts.uri.path(), "dropping the connection (injected)");
            connection.kill();
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        Some(Terminal::Status(status)) => ApiError::injected(status).into_response(),
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    let mut state = sim.lock();
    // The log may have been trimmed meanwhile, so find our entry by its number.
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
    let headers = headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let value = if name == header::AUTHORIZATION {
                value.split_whitespace().next().unwrap_or("").to_owned()
            } else {
                value
            };
            (name.as_str().to_owned(), value)
        })
        .collect();
    RecordedRequest {
        seq: 0,
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query: auth::form_pairs(uri.query().unwrap_or("").as_bytes()),
        headers,
        body: body[..body.len().min(limit)].to_vec(),
        body_truncated: body.len() > limit,
        status: None,
    }
}

/// A whole request, buffered: what signature checks and handlers need.
pub(crate) struct Incoming {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Incoming {
    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// True for an `application/x-www-form-urlencoded` body (RFC 5849 signs those).
    pub fn is_form(&self) -> bool {
        self.content_type()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    }
}

impl<S: Send + Sync> FromRequest<S> for Incoming {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Incoming {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

/// The kill switch of one accepted connection, as handlers see it.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    killed: Arc<AtomicBool>,
}

impl Connection {
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, KillableListener>>
    for Connection
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().1.clone()
    }
}

pub(crate) struct KillableListener {
    inner: TcpListener,
}

impl axum::serve::Listener for KillableListener {
    type Io = KillableStream;
    type Addr = (SocketAddr, Connection);

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let killed = Arc::new(AtomicBool::new(false));
                    let io = KillableStream {
                        inner: stream,
                        killed: killed.clone(),
                    };
                    return (io, (addr, Connection { killed }));
                }
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok((
            self.inner.local_addr()?,
            Connection {
                killed: Arc::new(AtomicBool::new(false)),
            },
        ))
    }
}

/// A TCP stream that stops working once its connection is killed.
pub(crate) struct KillableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl KillableStream {
    fn killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by an injected fault",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
