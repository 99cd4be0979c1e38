//! Automation throughput: signed webhook -> rule -> durable job ->
//! `system.http_request` to a local sink, on SQLite and on PostgreSQL.
//! A benchmark binary that prints figures and asserts nothing about them.
//!
//! For each database: a daemon (in this process, listening on loopback), a
//! `webhook` connection (HMAC-SHA256), a `system` connection allowed to call
//! 127.0.0.1, a rule `webhook.received -> system.http_request`, and a sink.
//! N webhooks are sent, 16 at a time; each carries its send time. Reported:
//! webhooks accepted per second, end-to-end events per second (first send to
//! last sink hit), and p50/p99 latency from the webhook's receipt to the
//! sink's receipt of the dispatched request.
//!
//! `cargo bench -p switchboard --bench rules`; `SWITCHBOARD_BENCH_EVENTS`
//! sets N (default 1000); PostgreSQL as in the throughput bench
//! (`SWITCHBOARD_BENCH_POSTGRES_URL`, a throwaway `sb_bench_*` database).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard::daemon;
use switchboard_core::StatusKind;
use switchboard_runtime::NewConnection;

const DEFAULT_EVENTS: usize = 1000;
const CONCURRENCY: usize = 16;
/// Events sent one at a time for the latency figure.
const SEQUENTIAL: usize = 100;
const SECRET: &str = "bench-hook-secret";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

#[tokio::main]
async fn main() {
    let events = std::env::var("SWITCHBOARD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_EVENTS);
    println!(
        "switchboard automation bench: webhook -> rule -> job -> http request, {events} events"
    );
    match run(None, events).await {
        Ok(line) => println!("sqlite: {line}"),
        Err(error) => println!("sqlite: FAILED: {error:#}"),
    }
    println!("{}", postgres(events).await);
}

async fn postgres(events: usize) -> String {
    use sqlx::postgres::PgPoolOptions;
    let admin_url = std::env::var("SWITCHBOARD_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let admin = match PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&admin_url)
        .await
    {
        Ok(pool) => pool,
        Err(error) => return format!("postgres: skipped, cannot connect: {error}"),
    };
    let name = format!(
        "sb_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
    {
        return format!("postgres: skipped, cannot create a database: {error}");
    }
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => admin_url.clone(),
    };
    let line = match run(Some(url), events).await {
        Ok(line) => format!("postgres: {line}"),
        Err(error) => format!("postgres: FAILED: {error:#}"),
    };
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await;
    admin.close().await;
    line
}

async fn wait_connected(engine: &switchboard_runtime::Engine, id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match engine.supervisor().status(id) {
            Some(s) if s.kind == StatusKind::Connected => return Ok(()),
            status if Instant::now() > deadline => bail!("{id} did not connect: {status:?}"),
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

async fn run(database_url: Option<String>, events: usize) -> anyhow::Result<String> {
    // The sink records when each dispatched request arrives.
    let hits: Arc<Mutex<Vec<(u128, u128)>>> = Arc::default();
    let log = hits.clone();
    let app = axum::Router::new().route(
        "/sink",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let log = log.clone();
            async move {
                let received = body["received_us"].as_f64().unwrap_or(0.0) as u128;
                log.lock().unwrap().push((received, now_us()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = listener.local_addr()?;
    let sink = format!("http://{sink_addr}/sink");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir()?;
    let rules_file = dir.path().join("rules.yaml");
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        listen: "127.0.0.1:0".into(),
        database_url,
        ..Config::default()
    };
    config.jobs.workers = 32;
    config.rules.file = Some(rules_file.clone());
    let settings = config.resolve()?;
    let running = daemon::start(&settings)
        .await
        .context("the daemon did not start")?;
    let engine = running.engine.clone();
    let hook = engine
        .create_connection(NewConnection {
            connector: "webhook".into(),
            label: "bench-hook".into(),
            enabled: true,
            settings: json!({"name": "bench", "auth": "hmac_sha256"}),
            secrets: [("secret".to_owned(), SECRET.to_owned().into())].into(),
        })
        .await?;
    let machine = engine
        .create_connection(NewConnection {
            connector: "system".into(),
            label: "bench-machine".into(),
            enabled: true,
            // The sink runs in this process, which the daemon would otherwise
            // refuse to call as "itself": name it exactly.
            settings: json!({"http_allow": [sink_addr.to_string()]}),
            secrets: Default::default(),
        })
        .await?;
    wait_connected(&engine, &hook.connection.id).await?;
    wait_connected(&engine, &machine.connection.id).await?;
    std::fs::write(
        &rules_file,
        format!(
            r#"rules:
  - name: forward
    on: {{ event: webhook.received, connection: bench-hook }}
    do:
      - action: system.http_request
        connection: bench-machine
        params:
          method: POST
          url: "{sink}"
          json: {{ received_us: "{{{{ event.payload.received_at * 1000 }}}}", n: "{{{{ event.payload.body.n }}}}" }}
"#
        ),
    )?;
    engine
        .reload_rules_file()
        .await
        .context("the bench rule does not load")?;

    let url = format!("http://{}/hooks/bench", running.addr);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let accepted = futures::stream::iter(0..events)
        .map(|n| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let body = json!({"n": n}).to_string();
                let signature = switchboard_connector_system::auth::sign_hmac_sha256(
                    SECRET.as_bytes(),
                    body.as_bytes(),
                );
                http.post(&url)
                    .header("content-type", "application/json")
                    .header("X-Hub-Signature-256", signature)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 202)
                    .unwrap_or(false)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    let accept_time = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while hits.lock().unwrap().len() < accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total = started.elapsed();
    let burst_hits = hits.lock().unwrap().len();

    // One event at a time on an idle daemon: webhook sent -> request at the sink.
    let mut single_ms = Vec::new();
    for n in 0..SEQUENTIAL {
        let before = hits.lock().unwrap().len();
        let body = json!({"n": events + n}).to_string();
        let signature = switchboard_connector_system::auth::sign_hmac_sha256(
            SECRET.as_bytes(),
            body.as_bytes(),
        );
        let sent = now_us();
        let ok = http
            .post(&url)
            .header("content-type", "application/json")
            .header("X-Hub-Signature-256", signature)
            .body(body)
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 202);
        if !ok {
            bail!("a sequential webhook was not accepted");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = hits.lock().unwrap().get(before).map(|(_, at)| *at);
            if let Some(at) = arrived {
                single_ms.push(at.saturating_sub(sent) as f64 / 1000.0);
                break;
            }
            if Instant::now() > deadline {
                bail!("a sequential event did not reach the sink within 10 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    single_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let hits = hits.lock().unwrap()[..burst_hits].to_vec();
    let jobs = engine
        .list_jobs(&switchboard_store::JobFilter {
            limit: 100_000,
            ..Default::default()
        })
        .await?;
    let runs = engine
        .list_runs(&switchboard_store::RunFilter {
            limit: 100_000,
            ..Default::default()
        })
        .await?;
    let failed: Vec<String> = jobs
        .iter()
        .filter_map(|j| j.error.as_ref().map(|e| e.message.clone()))
        .take(1)
        .collect();
    let run_errors: Vec<String> = runs
        .iter()
        .filter_map(|r| r.error.clone())
        .take(1)
        .collect();
    running.stop().await;
    if burst_hits < accepted {
        bail!(
            "{} of {accepted} requests reached the sink; {} runs, {} jobs; first job error: {failed:?}; first run error: {run_errors:?}",
            hits.len(),
            runs.len(),
            jobs.len()
        );
    }

    let mut latencies: Vec<f64> = hits
        .iter()
        .filter(|(received, _)| *received > 0)
        .map(|(received, at)| at.saturating_sub(*received) as f64 / 1000.0)
        .collect();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let single =
        |p: f64| single_ms[((single_ms.len() as f64 * p) as usize).min(single_ms.len() - 1)];
    Ok(format!(
        "burst of {events}: accepted {:.0}/s, end to end {:.0} events/s (receipt -> dispatch under that load p50 {:.0} ms, p99 {:.0} ms); one at a time ({SEQUENTIAL}): webhook sent -> request at the sink p50 {:.1} ms, p99 {:.1} ms",
        accepted as f64 / accept_time.as_secs_f64(),
        hits.len() as f64 / total.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        single(0.50),
        single(0.99),
    ))
}
