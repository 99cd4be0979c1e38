//! The HTTP server's bounds against slow and stalled clients: a slowloris
//! of 1,000 sockets does not keep a normal client from being served, and
//! the server closes the stalled sockets after the header timeout; a body
//! that stops arriving gets 408; with every connection slot taken, a new
//! client waits for one rather than being refused.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Daemon, Db, Fixture};

const STALLED: usize = 1000;

fn addr(daemon: &Daemon) -> SocketAddr {
    daemon
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("the daemon listens on an address")
}

/// Open `count` connections that each send half a request line and stop.
async fn stall(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        socket
            .write_all(b"GET /api/v1/health HTT")
            .await
            .expect("send a partial request line");
        sockets.push(socket);
    }
    sockets
}

/// Whether the server closed the socket (end of stream or reset) before
/// `bound`; a stalled socket never gets an answer otherwise.
async fn closed_by_server(mut socket: TcpStream, bound: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(bound, read).await.unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_does_not_starve_clients_and_its_sockets_are_closed() {
    let mut fixture = Fixture::new(Db::Sqlite)
        .await
        .with_env("SWITCHBOARD_HTTP__HEADER_TIMEOUT_MS", "2000");
    let daemon = fixture.start().await;
    let sockets = stall(addr(&daemon), STALLED).await;

    // A normal client is served while the stalled sockets are open.
    let health = daemon.send(daemon.http.get(daemon.api("/health"))).await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body["status"], "ok");

    // Every stalled socket is closed by the server (the bound is only a
    // guard against hanging: the header timeout is 2 s).
    let closed = join_all(
        sockets
            .into_iter()
            .map(|s| closed_by_server(s, Duration::from_secs(60))),
    )
    .await;
    let still_open = closed.iter().filter(|c| !**c).count();
    assert_eq!(still_open, 0, "{still_open} stalled sockets left open");

    // And the daemon still serves.
    assert_eq!(
        daemon
            .send(daemon.http.get(daemon.api("/health")))
            .await
            .status,
        200
    );
    assert!(
        !daemon.output().contains("cannot accept"),
        "{}",
        daemon.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_gets_408_and_creates_nothing() {
    let mut fixture = Fixture::new(Db::Sqlite)
        .await
        .with_env("SWITCHBOARD_HTTP__BODY_TIMEOUT_MS", "500");
    let daemon = fixture.start().await;
    let mut socket = TcpStream::connect(addr(&daemon)).await.unwrap();
    let body = br#"{"connector":"echo","label":"slow"}"#;
    let head = format!(
        "POST /api/v1/connections HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        daemon.token,
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body[..10]).await.unwrap();
    // The rest never comes: the daemon answers and closes.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), socket.read_to_end(&mut answer))
        .await
        .expect("the daemon answers a stalled body")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(answer.contains("\"field\":\"body\""), "{answer}");
    assert_eq!(daemon.get("/connections").await.body, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_slot_taken_a_new_client_waits_and_is_served() {
    let mut fixture = Fixture::new(Db::Sqlite)
        .await
        .with_env("SWITCHBOARD_HTTP__MAX_CONNECTIONS", "8")
        .with_env("SWITCHBOARD_HTTP__HEADER_TIMEOUT_MS", "1000");
    let daemon = fixture.start().await;
    let sockets = stall(addr(&daemon), 8).await;
    // Slots free as the stalled sockets time out; the client is then
    // accepted from the listen queue, not refused.
    let health = daemon.send(daemon.http.get(daemon.api("/health"))).await;
    assert_eq!(health.status, 200, "{}", health.body);
    let closed = join_all(
        sockets
            .into_iter()
            .map(|s| closed_by_server(s, Duration::from_secs(60))),
    )
    .await;
    assert!(closed.iter().all(|c| *c), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_limits_are_settings_checked_at_start() {
    let mut fixture = Fixture::new(Db::Sqlite)
        .await
        .with_env("SWITCHBOARD_HTTP__HEADER_TIMEOUT_MS", "0");
    let output = fixture
        .try_start()
        .await
        .err()
        .expect("a zero timeout is refused");
    assert!(output.contains("http.header_timeout_ms"), "{output}");
}
