//! The X connector end to end: a real daemon process talks to the X
//! simulator (running in this test process) over loopback, on SQLite and on
//! PostgreSQL. Every request the daemon sends X is checked against X's
//! official OpenAPI document.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_sim::x::{
    Endpoint, Fault, MediaConfig, RateLimit, RateLimits, XSim, XSimConfig,
    check_request_against_spec,
};

use crate::common::{Daemon, Db, Fixture};
use crate::on_both_databases;

/// A daemon whose X base URLs point at a fresh simulator.
async fn x_daemon(db: Db, config: XSimConfig) -> (Fixture, Daemon, XSim) {
    let sim = XSim::start(config).await.unwrap();
    let mut fixture = Fixture::new(db)
        .await
        .with_env("SWITCHBOARD_SERVICES__X_API", sim.base_url())
        .with_env(
            "SWITCHBOARD_SERVICES__X_AUTHORIZE",
            &format!("{}/i/oauth2/authorize", sim.base_url()),
        );
    let daemon = fixture.start().await;
    (fixture, daemon, sim)
}

fn fast_media() -> XSimConfig {
    XSimConfig {
        media: MediaConfig {
            check_after_secs: 1,
            processing_time: Duration::from_millis(300),
            ..MediaConfig::default()
        },
        ..XSimConfig::default()
    }
}

/// An OAuth 1.0a connection entered directly for a seeded simulator user.
async fn oauth1_connection(daemon: &Daemon, label: &str, user: &str) -> String {
    let id = daemon
        .create_connection(json!({
            "connector": "x", "label": label,
            "settings": { "auth": "oauth1" },
            "secrets": {
                "api_key": "sim-consumer-key",
                "api_secret": "sim-consumer-secret",
                "access_token": format!("sim-{user}-oauth1-token"),
                "access_token_secret": format!("sim-{user}-oauth1-secret"),
            }
        }))
        .await;
    daemon.wait_status(&id, "connected").await;
    id
}

/// An OAuth 2.0 connection authorized through the simulator's consent page.
async fn oauth2_connection(daemon: &Daemon, label: &str) -> String {
    let id = daemon
        .create_connection(json!({
            "connector": "x", "label": label,
            "settings": { "auth": "oauth2", "client_id": "sim-client-id" },
            "secrets": { "oauth2_client_secret": "sim-client-secret" }
        }))
        .await;
    let started = daemon
        .post(&format!("/connections/{id}/connect"), json!({}))
        .await;
    let callback = approve(started.body["authorize_url"].as_str().unwrap()).await;
    let page = daemon.http.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    daemon.wait_status(&id, "connected").await;
    id
}

fn no_redirects() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Approve on the simulator; returns the daemon callback URL X sends the
/// browser to.
async fn approve(authorize_url: &str) -> String {
    let response = no_redirects()
        .get(format!("{authorize_url}&auto_approve=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    response.headers()["location"].to_str().unwrap().to_owned()
}

async fn upload(daemon: &Daemon, bytes: Vec<u8>) -> crate::common::Reply {
    daemon
        .send(
            daemon
                .http
                .post(daemon.api("/media"))
                .bearer_auth(&daemon.token)
                .body(bytes),
        )
        .await
}

fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.resize(len, 7);
    bytes
}

fn mp4(len: usize) -> Vec<u8> {
    let mut bytes = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    bytes.resize(len, 0x42);
    bytes
}

fn assert_spec_clean(sim: &XSim) {
    for req in sim.requests() {
        if let Err(e) = check_request_against_spec(&req) {
            panic!(
                "{} {} does not conform to X's OpenAPI document: {e}",
                req.method, req.path
            );
        }
    }
}

async fn post_ok(daemon: &Daemon, connection: &str, params: Value) -> Value {
    let job = daemon.submit(connection, "x.post", params).await;
    let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}\n{}", daemon.output());
    done["result"].clone()
}

async fn oauth2_connect_post_everything_and_delete(db: Db) {
    let (_fixture, daemon, sim) = x_daemon(db, fast_media()).await;
    let id = daemon
        .create_connection(json!({
            "connector": "x", "label": "main",
            "settings": { "auth": "oauth2", "client_id": "sim-client-id" },
            "secrets": { "oauth2_client_secret": "sim-client-secret" }
        }))
        .await;
    let status = daemon.wait_status(&id, "needs_reauth").await;
    assert!(
        status["reason"].as_str().unwrap().contains("connect"),
        "{status}"
    );
    let pid = daemon.pid();

    let started = daemon
        .post(&format!("/connections/{id}/connect"), json!({}))
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let authorize_url = started.body["authorize_url"].as_str().unwrap();
    assert!(
        authorize_url.contains("code_challenge_method=S256"),
        "{authorize_url}"
    );
    let callback = approve(authorize_url).await;
    assert!(
        callback.starts_with(&format!("{}/oauth/x/callback", daemon.url)),
        "{callback}"
    );

    let began = Instant::now();
    let page = daemon.http.get(&callback).send().await.unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "{}",
        page.text().await.unwrap()
    );
    daemon.wait_status(&id, "connected").await;
    println!(
        "x oauth2 ({db:?}): callback to connected in {} ms",
        began.elapsed().as_millis()
    );
    assert_eq!(daemon.pid(), pid, "no restart");
    // The transition is in the event log too (published just after the
    // status changes).
    let mut events = Value::Null;
    for _ in 0..100 {
        events = daemon
            .get(&format!(
                "/events?connection_id={id}&type=connection.status&limit=100"
            ))
            .await
            .body;
        if events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["payload"]["status"] == "connected")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["payload"]["status"] == "connected"),
        "{events}"
    );

    // The same state again: single use.
    let reused = daemon.http.get(&callback).send().await.unwrap();
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert!(reused.text().await.unwrap().contains("already used"));

    post_everything_and_delete(&daemon, &sim, &id).await;
    assert_spec_clean(&sim);
}

/// Text, a reply, a quote, an image and a video, each job `succeeded` with
/// the post id; then the quote is deleted.
async fn post_everything_and_delete(daemon: &Daemon, sim: &XSim, id: &str) {
    let text = post_ok(daemon, id, json!({"text": "hello from the suite"})).await;
    let first = text["id"].as_str().unwrap().to_owned();
    let reply = post_ok(daemon, id, json!({"text": "a reply", "reply_to": first})).await;
    let quote = post_ok(daemon, id, json!({"text": "a quote", "quote_of": first})).await;
    let image = upload(daemon, png(4000)).await;
    assert_eq!(image.status, StatusCode::CREATED, "{}", image.body);
    let with_image = post_ok(
        daemon,
        id,
        json!({"text": "an image", "media": [image.body["id"]]}),
    )
    .await;
    let video = upload(daemon, mp4(5 * 1024 * 1024)).await;
    assert_eq!(video.status, StatusCode::CREATED, "{}", video.body);
    let with_video = post_ok(
        daemon,
        id,
        json!({"text": "a video", "media": [video.body["id"]]}),
    )
    .await;

    let posts = sim.posts();
    let find = |v: &Value| {
        posts
            .iter()
            .find(|p| p.id == v["id"].as_str().unwrap())
            .unwrap()
            .clone()
    };
    assert_eq!(find(&reply).reply_to.as_deref(), Some(first.as_str()));
    assert_eq!(find(&quote).quote_of.as_deref(), Some(first.as_str()));
    assert_eq!(find(&with_image).media_ids.len(), 1);
    assert_eq!(find(&with_video).media_ids.len(), 1);

    let job = daemon
        .submit(id, "x.delete", json!({"id": quote["id"]}))
        .await;
    let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        sim.deleted_post_ids(),
        vec![quote["id"].as_str().unwrap().to_owned()]
    );

    // Video progress was published as events.
    let progress = daemon
        .get("/events?type=x.media.progress&limit=1000")
        .await
        .body;
    assert!(
        progress
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["payload"]["phase"] == "processing"),
        "{progress}"
    );
}

async fn oauth1_three_legged_flow_then_everything(db: Db) {
    let (_fixture, daemon, sim) = x_daemon(db, fast_media()).await;
    let id = daemon
        .create_connection(json!({
            "connector": "x", "label": "legacy",
            "settings": { "auth": "oauth1" },
            "secrets": { "api_key": "sim-consumer-key", "api_secret": "sim-consumer-secret" }
        }))
        .await;
    daemon.wait_status(&id, "needs_reauth").await;
    let started = daemon
        .post(&format!("/connections/{id}/connect"), json!({}))
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let callback = approve(started.body["authorize_url"].as_str().unwrap()).await;
    assert!(callback.contains("oauth_verifier="), "{callback}");
    let page = daemon.http.get(&callback).send().await.unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "{}",
        page.text().await.unwrap()
    );
    daemon.wait_status(&id, "connected").await;
    post_everything_and_delete(&daemon, &sim, &id).await;
    assert_spec_clean(&sim);
}

async fn fifty_actions_on_an_expiring_token_refresh_once(db: Db) {
    let (_fixture, daemon, sim) = x_daemon(db, XSimConfig::default()).await;
    let id = oauth2_connection(&daemon, "expiring").await;

    // One minute left: inside the five-minute refresh margin.
    let soon = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000)
        .to_string();
    let reply = daemon
        .put(
            &format!("/connections/{id}/secrets"),
            json!({"oauth2_expires_at": soon}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    daemon.wait_status(&id, "connected").await;
    let before = sim.token_calls();
    let submits = (0..50).map(|_| daemon.submit(&id, "x.me", json!({})));
    let jobs = futures::future::join_all(submits).await;
    for job in &jobs {
        let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "succeeded", "{done}");
    }
    assert_eq!(sim.token_calls() - before, 1, "exactly one refresh");

    // A revoked grant: needs_reauth, and jobs wait instead of failing.
    sim.revoke_refresh_tokens("switchboard_demo");
    sim.expire_access_tokens();
    let job = daemon.submit(&id, "x.me", json!({})).await;
    let status = daemon.wait_status(&id, "needs_reauth").await;
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("reconnect this account"),
        "{status}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = daemon
        .get(&format!("/jobs/{}", job["id"].as_str().unwrap()))
        .await
        .body;
    assert_eq!(waiting["state"], "queued", "{waiting}");
    assert!(waiting["waiting_reason"].is_string(), "{waiting}");
}

/// A self-hosted OAuth proxy in front of the simulator's token endpoint, at
/// a path of its own: returns its URL and how many requests passed through.
async fn token_proxy(upstream: String) -> (String, Arc<AtomicUsize>) {
    use axum::http::{HeaderMap, header};
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let forward = move |headers: HeaderMap, body: axum::body::Bytes| {
        let (upstream, counted) = (upstream.clone(), counted.clone());
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut request = reqwest::Client::new().post(&upstream).body(body);
            for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
                if let Some(value) = headers.get(&name) {
                    request = request.header(name.as_str(), value.as_bytes());
                }
            }
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            let body = answer.bytes().await.unwrap();
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
        }
    };
    let app = axum::Router::new().route("/proxy/x/token", axum::routing::post(forward));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/proxy/x/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

async fn a_token_url_set_apart_from_x_api_is_used(db: Db) {
    let sim = XSim::start(XSimConfig::default()).await.unwrap();
    let (token_url, hits) = token_proxy(format!("{}/2/oauth2/token", sim.base_url())).await;
    let mut fixture = Fixture::new(db)
        .await
        .with_env("SWITCHBOARD_SERVICES__X_API", sim.base_url())
        .with_env(
            "SWITCHBOARD_SERVICES__X_AUTHORIZE",
            &format!("{}/i/oauth2/authorize", sim.base_url()),
        )
        .with_env("SWITCHBOARD_SERVICES__X_TOKEN", &token_url);
    let daemon = fixture.start().await;
    // The code exchange goes through the proxy ...
    let id = oauth2_connection(&daemon, "proxied").await;
    assert!(hits.load(Ordering::SeqCst) >= 1, "the proxy saw no request");
    // ... and so does a refresh.
    let soon = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000)
        .to_string();
    let reply = daemon
        .put(
            &format!("/connections/{id}/secrets"),
            json!({"oauth2_expires_at": soon}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    daemon.wait_status(&id, "connected").await;
    let before = hits.load(Ordering::SeqCst);
    let job = daemon.submit(&id, "x.me", json!({})).await;
    let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        hits.load(Ordering::SeqCst) - before,
        1,
        "one refresh, proxied"
    );
    // Every token call the simulator answered came through the proxy.
    assert_eq!(sim.token_calls(), hits.load(Ordering::SeqCst));
}

async fn a_429_storm_costs_one_call_per_window(db: Db) {
    let config = XSimConfig {
        rate_limits: RateLimits {
            create_post: RateLimit {
                limit: 1000,
                window: Duration::from_secs(2),
            },
            ..RateLimits::default()
        },
        ..XSimConfig::default()
    };
    let (_fixture, daemon, sim) = x_daemon(db, config).await;
    let id = oauth1_connection(&daemon, "stormy", "demo").await;
    sim.inject(Fault::RateLimitExhausted {
        endpoint: Endpoint::CreatePost,
        reset_in: Duration::from_secs(3),
    });
    let submits =
        (0..30).map(|n| daemon.submit(&id, "x.post", json!({"text": format!("storm {n}")})));
    let jobs = futures::future::join_all(submits).await;
    for job in &jobs {
        let done = daemon.wait_job(job["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(
            done["attempts"], 1,
            "waiting for a window spends no attempt: {done}"
        );
    }
    let refused = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/2/tweets" && r.status == Some(429))
        .count();
    assert_eq!(
        refused, 1,
        "one probe hit the spent window; nobody else called"
    );
    assert_eq!(sim.posts().len(), 30);
}

async fn sigkill_during_200_posts_posts_each_text_once(db: Db) {
    let config = XSimConfig {
        rate_limits: RateLimits::uniform(RateLimit::per_15_minutes(10_000)),
        ..XSimConfig::default()
    };
    let (mut fixture, daemon, sim) = x_daemon(db, config).await;
    let id = oauth1_connection(&daemon, "crashy", "demo").await;
    sim.inject(Fault::Delay {
        path_prefix: "POST /2/tweets".into(),
        delay: Duration::from_millis(20),
        times: 1000,
    });
    let mut job_ids = Vec::new();
    for chunk in (0..200).collect::<Vec<_>>().chunks(25) {
        let submits = chunk
            .iter()
            .map(|n| daemon.submit(&id, "x.post", json!({"text": format!("post number {n}")})));
        for job in futures::future::join_all(submits).await {
            job_ids.push(job["id"].as_str().unwrap().to_owned());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.posts().len() < 40 {
        assert!(
            Instant::now() < deadline,
            "posts do not go out\n{}",
            daemon.output()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    daemon.kill9();
    assert!(
        sim.posts().len() < 200,
        "the kill came too late to test anything"
    );

    let daemon = fixture.start().await;
    let mut recovered = 0;
    for id in &job_ids {
        let done = daemon.wait_job(id).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        recovered += done["recovered"].as_i64().unwrap_or(0);
    }
    // Usually the kill interrupts posts in flight (then `recovered` > 0 and
    // those jobs looked themselves up before posting); either way, every
    // text must be on X exactly once.
    println!("x crash test: {recovered} job(s) recovered after the kill");
    let mut counts: HashMap<String, usize> = HashMap::new();
    for post in sim.posts() {
        *counts.entry(post.text).or_default() += 1;
    }
    assert_eq!(counts.len(), 200, "every text is on X");
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "posted twice: {doubled:?}");
}

async fn posting_without_an_account_goes_to_every_enabled_one(db: Db) {
    let (_fixture, daemon, sim) = x_daemon(db, XSimConfig::default()).await;
    let demo = oauth1_connection(&daemon, "demo", "demo").await;
    let friend = oauth1_connection(&daemon, "friend", "friend").await;
    // The first post X sees is refused: one account fails, the other not.
    sim.inject(Fault::Status {
        path_prefix: "POST /2/tweets".into(),
        status: 403,
        times: 1,
    });
    let reply = daemon
        .post(
            "/actions/x.post",
            json!({"params": {"text": "to everyone"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let jobs = reply.body["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2, "{}", reply.body);
    let mut outcomes = HashMap::new();
    for entry in &jobs {
        let done = daemon.wait_job(entry["job"]["id"].as_str().unwrap()).await;
        outcomes.insert(entry["connection_id"].as_str().unwrap().to_owned(), done);
    }
    let states: Vec<&str> = [&demo, &friend]
        .iter()
        .map(|c| outcomes[*c]["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"succeeded") && states.contains(&"failed"),
        "{outcomes:?}"
    );
    assert_eq!(sim.posts().len(), 1);
    let failed = outcomes.values().find(|j| j["state"] == "failed").unwrap();
    assert!(
        failed["error"]["message"].as_str().unwrap().contains("403"),
        "{failed}"
    );
}

/// A 422 whose problem body mentions every fragment (field names, reasons).
fn assert_refused(reply: &crate::common::Reply, fragments: &[&str]) {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let body = reply.body.to_string();
    for fragment in fragments {
        assert!(body.contains(fragment), "{fragment:?} not in {body}");
    }
}

async fn bad_input_is_refused_and_nothing_is_posted(db: Db) {
    let (_fixture, daemon, sim) = x_daemon(db, XSimConfig::default()).await;
    let id = oauth1_connection(&daemon, "careful", "demo").await;
    let submit = |params: Value| {
        daemon.post(
            "/jobs",
            json!({"connection_id": id, "action": "x.post", "params": params}),
        )
    };
    // 141 CJK characters weigh 282.
    let long = submit(json!({"text": "字".repeat(141)})).await;
    assert_refused(&long, &["params.text", "282"]);
    let unknown =
        submit(json!({"text": "hi", "media": ["0123456789abcdef0123456789abcdef"]})).await;
    assert_refused(&unknown, &["params.media[0]", "upload the file first"]);

    let text_file = upload(&daemon, b"just some text, not an image".to_vec()).await;
    assert_eq!(
        text_file.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        text_file.body
    );

    // 6 MB is over X's image limit (5 MB): refused before any job exists.
    let big = upload(&daemon, png(6 * 1024 * 1024)).await;
    assert_eq!(big.status, StatusCode::CREATED, "{}", big.body);
    let oversized = submit(json!({"text": "big", "media": [big.body["id"]]})).await;
    assert_refused(&oversized, &["params.media[0]", "at most 5 MB"]);

    let video = upload(&daemon, mp4(2000)).await;
    let small = upload(&daemon, png(2000)).await;
    let both =
        submit(json!({"text": "two kinds", "media": [small.body["id"], video.body["id"]]})).await;
    assert_refused(&both, &["only media"]);

    let unknown_state = daemon
        .http
        .get(format!(
            "{}/oauth/x/callback?state=forged&code=abc",
            daemon.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_state.status(), StatusCode::BAD_REQUEST);

    let jobs = daemon.get("/jobs?limit=100").await.body;
    assert_eq!(jobs.as_array().unwrap().len(), 0, "{jobs}");
    assert!(sim.posts().is_empty());
}

on_both_databases!(
    oauth2_connect_post_everything_and_delete,
    oauth1_three_legged_flow_then_everything,
    fifty_actions_on_an_expiring_token_refresh_once,
    a_429_storm_costs_one_call_per_window,
    sigkill_during_200_posts_posts_each_text_once,
    posting_without_an_account_goes_to_every_enabled_one,
    bad_input_is_refused_and_nothing_is_posted,
    a_token_url_set_apart_from_x_api_is_used,
);

fn cli(fixture: &Fixture, daemon: &Daemon) -> std::process::Command {
    let mut command = fixture.command();
    command
        .env("SWITCHBOARD_URL", &daemon.url)
        .env("SWITCHBOARD_TOKEN", &daemon.token);
    command
}

/// A new user's path through the CLI: add an account, connect it through
/// the consent page, upload an image, post to every account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_adds_connects_uploads_and_posts() {
    use std::io::{BufRead, BufReader};
    let (fixture, daemon, sim) = x_daemon(Db::Sqlite, fast_media()).await;
    let out = cli(&fixture, &daemon)
        .env("X_CLIENT_SECRET", "sim-client-secret")
        .args([
            "--json",
            "connections",
            "add",
            "x",
            "--label",
            "cli",
            "--set",
            "auth=oauth2",
            "--set",
            "client_id=sim-client-id",
            "--secret",
            "oauth2_client_secret=env:X_CLIENT_SECRET",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut connect = cli(&fixture, &daemon)
        .args(["connections", "connect", &id, "--wait"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(connect.stdout.take().unwrap()).lines();
    let link = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.trim()
                .starts_with("http")
                .then(|| line.trim().to_owned())
        })
        .expect("the CLI prints the link");
    let page = reqwest::get(format!("{link}&auto_approve=1"))
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(connect.wait().unwrap().success());
    assert!(rest.iter().any(|l| l.contains("connected")), "{rest:?}");

    let image = fixture.data_dir().join("dot.png");
    std::fs::write(&image, png(2000)).unwrap();
    let out = cli(&fixture, &daemon)
        .args([
            "post",
            "posted from the CLI",
            "--media",
            image.to_str().unwrap(),
            "--wait",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let posts = sim.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].text, "posted from the CLI");
    assert_eq!(posts[0].media_ids.len(), 1);
    assert!(stdout.contains(&posts[0].id), "{stdout}");
    assert_spec_clean(&sim);
}

/// Two daemons share one PostgreSQL database and both run the account:
/// when X rejects the token, the two processes still refresh it once
/// between them (a rotating refresh token spent twice kills the grant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_refresh_a_shared_account_once() {
    let (mut fixture, first, sim) = x_daemon(Db::Postgres, XSimConfig::default()).await;
    let id = oauth2_connection(&first, "shared").await;
    let second = fixture.start().await;
    second.wait_status(&id, "connected").await;

    // Every token X issued so far stops working; calls are slow enough that
    // both processes take jobs.
    sim.expire_access_tokens();
    sim.inject(Fault::Delay {
        path_prefix: "GET /2/users/me".into(),
        delay: Duration::from_millis(100),
        times: 200,
    });
    let before = sim.token_calls();
    let submits = (0..50).map(|_| first.submit(&id, "x.me", json!({})));
    let jobs = futures::future::join_all(submits).await;
    for job in &jobs {
        let done = first.wait_job(job["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "succeeded", "{done}");
    }
    assert_eq!(
        sim.token_calls() - before,
        1,
        "one refresh across both processes"
    );
    for (name, daemon) in [("first", &first), ("second", &second)] {
        assert!(
            daemon.output().contains("action=x.me"),
            "the {name} process ran some of the jobs"
        );
    }
}

/// `post` with one connected and one never-authorized account (as in the
/// demo): it posts from the one, names the other with what to do, queues
/// nothing for it (not even on repeated runs) and exits 0; with only the
/// unauthorized account chosen it posts nothing and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_skips_an_account_that_needs_reauthorization() {
    let (fixture, daemon, sim) = x_daemon(Db::Sqlite, XSimConfig::default()).await;
    oauth1_connection(&daemon, "ready", "demo").await;
    let new = daemon
        .create_connection(json!({
            "connector": "x", "label": "demo-x-new",
            "settings": { "auth": "oauth2", "client_id": "sim-client-id" },
            "secrets": { "oauth2_client_secret": "sim-client-secret" }
        }))
        .await;
    daemon.wait_status(&new, "needs_reauth").await;
    for round in 0..2 {
        let text = format!("round {round}");
        let out = cli(&fixture, &daemon)
            .args(["post", &text, "--wait"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stderr.contains(&format!(
                "demo-x-new: needs_reauth — reconnect this account: switchboard connections connect {new}"
            )),
            "{stderr}"
        );
        assert!(sim.posts().iter().any(|p| p.text == text), "{stdout}");
    }
    let out = cli(&fixture, &daemon)
        .args(["post", "nowhere", "--account", "demo-x-new"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing was posted"), "{stderr}");
    let jobs = daemon.get(&format!("/jobs?connection_id={new}")).await.body;
    assert_eq!(
        jobs,
        json!([]),
        "nothing was queued for the unauthorized account"
    );
    assert_eq!(sim.posts().len(), 2);
}
