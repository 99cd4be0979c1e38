//! The automation hot path side by side: switchboard (SQLite, PostgreSQL)
//! against Node-RED doing the same work, with the same sink and the same
//! load generator, runs interleaved. A benchmark binary: it prints figures
//! and ratios and asserts nothing about them.
//!
//! The work: a JSON webhook (`{"name", "amount", "sent_us"}`), a rule with a
//! condition (`amount >= 5`) and a template (`"Thank you {name}!"`), and an
//! HTTP POST of the rendered JSON to a sink on loopback. switchboard runs it
//! durably (webhook delivery, event, rule run, job and result committed) and
//! answers 202 once the delivery is stored; Node-RED's flow
//! (`bench/node-red/flows.json`: http in → switch → template → http request
//! → http response) answers 202 after the sink has answered, keeping nothing.
//!
//! Each figure is the median over the rounds (`SWITCHBOARD_BENCH_ROUNDS`,
//! default 3); in each round every target runs once, in turn:
//! - one webhook at a time (`SEQUENTIAL`): sent → request at the sink, p50/p99;
//! - a burst of `SWITCHBOARD_BENCH_EVENTS` (1000) from 16 senders: completed
//!   at the sink per second, and sent → sink latency p50/p99 under it;
//! - webhooks accepted per second with 50 connections (answers, not completions);
//! - CPU time per end-to-end event during the burst (the daemon's process;
//!   for PostgreSQL also the server's processes);
//! - cold start (spawn → health answers) and RSS after the runs.
//!
//! Run it with `bench/automation.sh`, which installs Node 24 and Node-RED
//! into `bench/.cache` and builds the release binary; or by hand with
//! `SWITCHBOARD_BIN`, `NODE_BIN` and `NODE_RED_HOME` (Node-RED is skipped,
//! saying so, without them).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SEQUENTIAL: usize = 200;
const BURST_SENDERS: usize = 16;
const ACCEPT_SENDERS: usize = 50;
const DEFAULT_EVENTS: usize = 1000;
const DEFAULT_ROUNDS: usize = 3;
const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one target measured in one round.
#[derive(Debug, Clone, Default)]
struct Figures {
    single_p50_ms: f64,
    single_p99_ms: f64,
    burst_per_s: f64,
    burst_p50_ms: f64,
    burst_p99_ms: f64,
    accept_per_s: f64,
    cpu_ms_per_event: f64,
    db_cpu_ms_per_event: Option<f64>,
    cold_start_ms: f64,
    rss_mib: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Sqlite,
    Postgres,
    NodeRed,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Sqlite => "switchboard (SQLite)",
            Target::Postgres => "switchboard (PostgreSQL)",
            Target::NodeRed => "Node-RED",
        }
    }
}

/// The sink: records each request's `sent_us` and when it arrived.
#[derive(Clone, Default)]
struct Sink {
    hits: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl Sink {
    async fn start(&self) -> anyhow::Result<String> {
        let log = self.hits.clone();
        let app = axum::Router::new().route(
            "/sink",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let log = log.clone();
                async move {
                    let sent = body["sent_us"].as_u64().unwrap_or(0);
                    log.lock().unwrap().push((sent, now_us()));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(format!("http://{addr}/sink"))
    }

    fn len(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    fn take(&self) -> Vec<(u64, u64)> {
        std::mem::take(&mut *self.hits.lock().unwrap())
    }

    async fn wait_for(&self, count: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.len() < count {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        true
    }
}

/// A running target: a child process and the URL webhooks go to.
struct Running {
    child: Child,
    hook_url: String,
    cold_start: Duration,
    database: Option<(String, sqlx::PgPool)>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM first: a graceful stop, as a user would.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
        if let Some((name, admin)) = self.database.take() {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&admin)
            .await;
            admin.close().await;
        }
    }
}

/// User plus system CPU time of a process, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at `) `.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks * 1000.0 / 100.0 // USER_HZ is 100 on Linux
}

/// CPU time of every PostgreSQL server process.
fn postgres_cpu_ms() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_ms)
        .sum()
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_healthy(http: &reqwest::Client, url: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn start_switchboard(
    bin: &Path,
    postgres: bool,
    sink: &str,
    http: &reqwest::Client,
) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut database = None;
    let mut command = Command::new(bin);
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("SWITCHBOARD_DATA_DIR", dir.path())
        .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if postgres {
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(POSTGRES_ADMIN)
            .await
            .context("PostgreSQL at 127.0.0.1:5432")?;
        let name = format!(
            "sb_versus_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await?;
        command.env(
            "SWITCHBOARD_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{name}"),
        );
        database = Some((name, admin));
    }
    let started = Instant::now();
    let mut child = command.spawn().context("cannot start switchboard")?;
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(
        http,
        &format!("{base}/api/v1/health"),
        Duration::from_secs(30),
    )
    .await?;
    let cold_start = started.elapsed();
    // The admin token is printed before the ready line.
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut token = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(t) = line
            .split(": ")
            .nth(1)
            .filter(|_| line.contains("admin token"))
        {
            token = Some(t.trim().to_owned());
        }
        if line.contains("listening on") {
            break;
        }
    }
    let token = token.context("the daemon printed no admin token")?;
    let api = |path: &str| format!("{base}/api/v1{path}");
    let create = |body: Value| {
        let http = http.clone();
        let url = api("/connections");
        let token = token.clone();
        async move {
            let r = http.post(url).bearer_auth(token).json(&body).send().await?;
            if !r.status().is_success() {
                bail!("creating a connection: {}", r.text().await?);
            }
            anyhow::Ok(r.json::<Value>().await?)
        }
    };
    create(json!({"connector": "webhook", "label": "bench-hook",
        "settings": {"name": "bench", "auth": "none"}}))
    .await?;
    let sink_addr = sink
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    create(json!({"connector": "system", "label": "bench-machine",
        "settings": {"http_allow": [sink_addr]}}))
    .await?;
    let rule = json!({
        "name": "thank",
        "on": {"event": "webhook.received", "connection": "bench-hook"},
        "if": "event.payload.body.amount >= 5",
        "do": [{
            "action": "system.http_request",
            "connection": "bench-machine",
            "params": {
                "method": "POST",
                "url": sink,
                "json": {
                    "text": "Thank you {{ event.payload.body.name }}!",
                    "sent_us": "{{ event.payload.body.sent_us }}"
                }
            }
        }]
    });
    let r = http
        .post(api("/rules"))
        .bearer_auth(&token)
        .json(&rule)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("creating the rule: {}", r.text().await?);
    }
    // Both connections connected before the load starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list: Value = http
            .get(api("/connections"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let all = list.as_array().cloned().unwrap_or_default();
        let connected = all
            .iter()
            .filter(|c| c["status"]["status"] == "connected")
            .count();
        if connected >= 2 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the bench connections did not connect: {list}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Running {
        child,
        hook_url: format!("{base}/hooks/bench"),
        cold_start,
        database,
        _dir: dir,
    })
}

async fn start_node_red(
    node: &Path,
    home: &Path,
    sink: &str,
    http: &reqwest::Client,
) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let template = std::fs::read_to_string(flows_file())?;
    std::fs::write(
        dir.path().join("flows.json"),
        template.replace("__SINK_URL__", sink),
    )?;
    let red = home.join("node_modules/node-red/red.js");
    let started = Instant::now();
    let child = Command::new(node)
        .arg(&red)
        .arg("--userDir")
        .arg(dir.path())
        .arg("--port")
        .arg(port.to_string())
        .arg(dir.path().join("flows.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start Node-RED ({})", red.display()))?;
    let hook_url = format!("http://127.0.0.1:{port}/hooks/bench");
    // Healthy: the flow answers (the editor comes up before the flows).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probe = http
            .post(&hook_url)
            .json(&json!({"name": "probe", "amount": 1, "sent_us": 0}))
            .send()
            .await;
        if probe.is_ok_and(|r| r.status().as_u16() == 202) {
            break;
        }
        if Instant::now() > deadline {
            bail!("Node-RED's flow did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Running {
        child,
        hook_url,
        cold_start: started.elapsed(),
        database: None,
        _dir: dir,
    })
}

fn flows_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/node-red/flows.json")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn send(http: &reqwest::Client, url: &str, n: usize) -> bool {
    let body = json!({"name": format!("donor-{n}"), "amount": 5 + n % 10, "sent_us": now_us()});
    http.post(url)
        .json(&body)
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() == 202)
}

async fn measure(
    target: Target,
    running: &Running,
    sink: &Sink,
    http: &reqwest::Client,
    events: usize,
) -> anyhow::Result<Figures> {
    let url = running.hook_url.clone();
    sink.take();

    // One at a time.
    let mut single = Vec::with_capacity(SEQUENTIAL);
    for n in 0..SEQUENTIAL {
        let before = sink.len();
        let sent = now_us();
        if !send(http, &url, n).await {
            bail!("a webhook was not accepted");
        }
        if !sink.wait_for(before + 1, Duration::from_secs(30)).await {
            bail!("a webhook did not reach the sink within 30 s");
        }
        let at = sink.hits.lock().unwrap()[before].1;
        single.push(at.saturating_sub(sent) as f64 / 1000.0);
    }
    single.sort_by(|a, b| a.total_cmp(b));
    sink.take();

    // A burst from 16 senders.
    let pid = running.pid();
    let cpu_before = cpu_ms(pid);
    let db_before = (target == Target::Postgres).then(postgres_cpu_ms);
    let started = Instant::now();
    let accepted = futures::stream::iter(0..events)
        .map(|n| {
            let http = http.clone();
            let url = url.clone();
            async move { send(&http, &url, n).await }
        })
        .buffer_unordered(BURST_SENDERS)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    if !sink.wait_for(accepted, Duration::from_secs(300)).await {
        bail!(
            "{} of {accepted} burst webhooks reached the sink",
            sink.len()
        );
    }
    let burst_time = started.elapsed();
    let cpu = cpu_ms(pid) - cpu_before;
    let db_cpu = db_before.map(|before| postgres_cpu_ms() - before);
    let mut latencies: Vec<f64> = sink
        .take()
        .iter()
        .map(|(sent, at)| at.saturating_sub(*sent) as f64 / 1000.0)
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));

    // Accept rate with 50 connections (then let the pipeline drain).
    let started = Instant::now();
    let accepted_50 = futures::stream::iter(0..events)
        .map(|n| {
            let http = http.clone();
            let url = url.clone();
            async move { send(&http, &url, n).await }
        })
        .buffer_unordered(ACCEPT_SENDERS)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    let accept_time = started.elapsed();
    sink.wait_for(accepted_50, Duration::from_secs(300)).await;
    sink.take();

    Ok(Figures {
        single_p50_ms: percentile(&single, 0.50),
        single_p99_ms: percentile(&single, 0.99),
        burst_per_s: accepted as f64 / burst_time.as_secs_f64(),
        burst_p50_ms: percentile(&latencies, 0.50),
        burst_p99_ms: percentile(&latencies, 0.99),
        accept_per_s: accepted_50 as f64 / accept_time.as_secs_f64(),
        cpu_ms_per_event: cpu / accepted.max(1) as f64,
        db_cpu_ms_per_event: db_cpu.map(|c| c / accepted.max(1) as f64),
        cold_start_ms: running.cold_start.as_secs_f64() * 1000.0,
        rss_mib: rss_mib(pid),
    })
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let events = env_usize("SWITCHBOARD_BENCH_EVENTS", DEFAULT_EVENTS);
    let rounds = env_usize("SWITCHBOARD_BENCH_ROUNDS", DEFAULT_ROUNDS);
    let bin = std::env::var_os("SWITCHBOARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/switchboard")
        });
    let node = std::env::var_os("NODE_BIN").map(PathBuf::from);
    let node_red = std::env::var_os("NODE_RED_HOME").map(PathBuf::from);
    let mut targets = vec![Target::Sqlite, Target::Postgres];
    match (&node, &node_red) {
        (Some(_), Some(_)) => targets.push(Target::NodeRed),
        _ => println!(
            "Node-RED: skipped (set NODE_BIN and NODE_RED_HOME, or run bench/automation.sh)"
        ),
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let sink = Sink::default();
    let sink_url = sink.start().await?;
    println!(
        "automation side by side: webhook -> rule (condition + template) -> HTTP POST to a sink; {events} events a burst, {rounds} rounds interleaved; switchboard {}",
        bin.display()
    );
    let mut results: Vec<(Target, Figures)> = Vec::new();
    for round in 1..=rounds {
        for &target in &targets {
            let running = match target {
                Target::Sqlite => start_switchboard(&bin, false, &sink_url, &http).await,
                Target::Postgres => start_switchboard(&bin, true, &sink_url, &http).await,
                Target::NodeRed => {
                    start_node_red(
                        node.as_ref().unwrap(),
                        node_red.as_ref().unwrap(),
                        &sink_url,
                        &http,
                    )
                    .await
                }
            };
            let running = match running {
                Ok(r) => r,
                Err(error) => {
                    println!("round {round}, {}: did not start: {error:#}", target.name());
                    continue;
                }
            };
            let figures = measure(target, &running, &sink, &http, events).await;
            running.stop().await;
            match figures {
                Ok(f) => {
                    println!("round {round}, {}: {f:?}", target.name());
                    results.push((target, f));
                }
                Err(error) => println!("round {round}, {}: FAILED: {error:#}", target.name()),
            }
        }
    }

    let med = |target: Target, pick: fn(&Figures) -> f64| {
        median(
            results
                .iter()
                .filter(|(t, _)| *t == target)
                .map(|(_, f)| pick(f)),
        )
    };
    type Row = (&'static str, fn(&Figures) -> f64, bool);
    let rows: [Row; 9] = [
        ("burst: completed at the sink (/s)", |f| f.burst_per_s, true),
        ("burst: sent -> sink p50 (ms)", |f| f.burst_p50_ms, false),
        ("burst: sent -> sink p99 (ms)", |f| f.burst_p99_ms, false),
        (
            "one at a time: sent -> sink p50 (ms)",
            |f| f.single_p50_ms,
            false,
        ),
        (
            "one at a time: sent -> sink p99 (ms)",
            |f| f.single_p99_ms,
            false,
        ),
        (
            "webhooks accepted, 50 connections (/s)",
            |f| f.accept_per_s,
            true,
        ),
        (
            "CPU per end-to-end event (ms)",
            |f| f.cpu_ms_per_event,
            false,
        ),
        ("cold start to healthy (ms)", |f| f.cold_start_ms, false),
        ("RSS after the runs (MiB)", |f| f.rss_mib, false),
    ];
    println!();
    print!("| median of {rounds} | ");
    for t in &targets {
        print!("{} | ", t.name());
    }
    if targets.contains(&Target::NodeRed) {
        print!("SQLite vs Node-RED | PostgreSQL vs Node-RED |");
    }
    println!();
    for (label, pick, higher_is_better) in rows {
        print!("| {label} | ");
        for &t in &targets {
            print!("{:.1} | ", med(t, pick));
        }
        if targets.contains(&Target::NodeRed) {
            let red = med(Target::NodeRed, pick);
            for t in [Target::Sqlite, Target::Postgres] {
                let ours = med(t, pick);
                // A ratio above 1 is switchboard ahead.
                let ratio = if higher_is_better {
                    ours / red
                } else {
                    red / ours
                };
                print!("{ratio:.2}x | ");
            }
        }
        println!();
    }
    let db = median(
        results
            .iter()
            .filter_map(|(t, f)| (*t == Target::Postgres).then_some(f.db_cpu_ms_per_event?)),
    );
    println!("\nPostgreSQL server CPU per end-to-end event (ms), on top of the daemon's: {db:.1}");
    println!("(ratios: above 1.00x means switchboard is ahead)");
    Ok(())
}
